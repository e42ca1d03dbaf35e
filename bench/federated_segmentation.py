"""Federated U-Net over 3 BUSI shards against pooled training (issue 18), same total budget.

BUSI benign + malignant (``pollen_agent.ml.segmentation.data.load_busi``; ``$POLLEN_BUSI_DIR``
or ``../shared/data/busi-256``) gets a fixed seeded 70/10/20 split by image (BUSI has no
patient ids, so one woman's images may sit in two splits), and its training and validation
images are dealt into 3 simulated sites by image (each class dealt evenly). Every setting
trains the way a site's cross-site round trains (``pollen_agent.jobs.federated``: the
segmentation job's own steps, ``site_steps``, the recipe's loop through ``train_datasets``,
cosine-decayed rate across rounds) and combines with the hub's own code
(``pollen.federation.aggregation``), in-process, with no hub:

- ``pooled``: one U-Net on every site's images together for R x E epochs (the baseline; it
  needs the images to leave the sites, which Pollen never does);
- ``local-only site-N``: each site alone, R x E epochs on its own images;
- ``fedavg``: R rounds, every site E local epochs from the combined weights, averaged by
  sample count (BatchNorm statistics too; its counters take the largest);
- ``relay``: R rounds, the weights visit site 1, 2, 3 in turn, E epochs each.

Same total budget: in every setting each training image is seen R x E times. Each model is
scored on the same test images by the job's own test check (``SegmentationSteps.evaluate``,
mirror TTA, at the images' own size): mean Dice per image (every image here has a lesion).

``python -m bench.federated_segmentation [--plan full|reduced|quick] [--seed N]
[--settings pooled,local,fedavg,relay]`` prints one table. ``run(quick)`` returns the rows for
``python -m bench`` (full plan, or the seconds-long quick one whose figures mean nothing).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from bench.report import REPO

for _folder in ("workers", "platform"):
    if str(REPO / _folder) not in sys.path:
        sys.path.insert(0, str(REPO / _folder))

from bench.report import render_table, row  # noqa: E402

NAME = "federated segmentation"
ARCH = "unet_efficientnet_lite0"
LABELS = ["background", "lesion"]
SITES = 3
SETTINGS = ("pooled", "local", "fedavg", "relay")
TEST_SHARE, VAL_SHARE = 0.2, 0.1


@dataclass(frozen=True)
class Plan:
    input_size: int
    rounds: int
    local_epochs: int
    lr: float
    batch_size: int
    limit: int | None  # images per BUSI class (None: all)
    source: str = "imagenet"


PLANS = {
    # The setting: 256 px, as a one-click job; 10 passes over each image in all.
    "full": Plan(256, 5, 2, 1e-3, 8, None),
    # What a shared 2-core CPU runs in minutes: 80 images of each class at 128 px, 3 passes.
    "reduced": Plan(128, 3, 1, 1e-3, 8, 80),
    # A smoke run: a handful of images at 64 px; the figures mean nothing.
    "quick": Plan(64, 2, 1, 3e-3, 4, 30),
}


def split_by_image(classes: list[str], seed: int) -> tuple[list[str], list[int]]:
    """Each image's split (70/10/20, seeded, each class apart) and its site (dealt in turn)."""
    rng = np.random.default_rng(seed)
    splits, sites = [""] * len(classes), [0] * len(classes)
    for name in sorted(set(classes)):
        members = rng.permutation([i for i, c in enumerate(classes) if c == name])
        n_test, n_val = round(TEST_SHARE * len(members)), round(VAL_SHARE * len(members))
        for rank, i in enumerate(members):
            splits[i] = "test" if rank < n_test else "val" if rank < n_test + n_val else "train"
            sites[i] = rank % SITES
    return splits, sites


def _splits(images: list, masks: list, chosen: list[int], split_of: list[str]) -> dict[str, Any]:
    from pollen_agent.jobs.images import SplitImages

    out = {name: SplitImages() for name in ("train", "val", "test")}
    for i in chosen:
        part = out[split_of[i]]
        part.images.append(images[i])
        part.masks.append(masks[i])
        part.ids.append(i)
    return out


def load_sites(plan: Plan, seed: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The pooled splits and each site's (the test split is shared: every model is scored on it)."""
    from pollen_agent.ml.segmentation.data import load_busi

    images, masks, names = load_busi(("benign", "malignant"), limit=plan.limit)
    split_of, site_of = split_by_image([n.split("/")[0] for n in names], seed)
    everything = list(range(len(images)))
    pooled = _splits(images, masks, everything, split_of)
    sites = []
    for site in range(SITES):
        own = [i for i in everything if site_of[i] == site and split_of[i] != "test"]
        shard = _splits(images, masks, own, split_of)
        shard["test"] = pooled["test"]
        sites.append(shard)
    return pooled, sites


class Trainer:
    """One site's training exactly as its cross-site round trains, and the job's test check."""

    def __init__(self, plan: Plan, seed: int) -> None:
        from pollen_agent.jobs.federated import site_steps
        from pollen_agent.ml.zoo import get_spec
        from pollen_contracts.specs import FederatedRoundSpec

        self.plan, self.seed = plan, seed
        spec = FederatedRoundSpec.from_dict(
            {
                "federated_job_id": 0,
                "round": 1,
                "rounds": plan.rounds,
                "site": "bench",
                "dataset_id": 0,
                "label_names": LABELS,
                "architecture": ARCH,
                "input_size": plan.input_size,
                "local_epochs": plan.local_epochs,
                "batch_size": plan.batch_size,
                "learning_rate": plan.lr,
                "seed": seed,
                "checkpoint_key": "",
                "lease_seconds": 0,
                "weights": {"kind": "hub_file", "url": "-", "sha256": "0" * 64},
                "update": {"url": "-", "method": "PUT", "headers": {}},
                "task": "segmentation",
            }
        )
        self.steps = site_steps(spec, spec.weights)
        self.arch = get_spec(ARCH)

    def start(self) -> dict[str, Any]:
        """The common starting weights (numpy), seeded."""
        import torch

        from pollen_agent.ml.zoo import build_model

        torch.manual_seed(self.seed)
        model = build_model(ARCH, len(LABELS), source=self.plan.source)
        return {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}

    def model(self, weights: dict[str, np.ndarray]) -> Any:
        import torch

        from pollen_agent.ml.zoo import build_model

        model = build_model(ARCH, len(LABELS), source="random")
        model.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in weights.items()})
        return model

    def train(
        self, weights: dict[str, np.ndarray], splits: dict[str, Any], *, epochs: int, lr: float
    ) -> tuple[dict[str, np.ndarray], int]:
        """Train from ``weights`` on ``splits``; the trained weights and the images trained on."""
        from pollen_agent.jobs.federated import round_config, train_datasets

        plan = self.plan
        config = self.steps.config(
            round_config(
                epochs=epochs,
                lr=lr,
                input_size=plan.input_size,
                batch_size=plan.batch_size,
                seed=self.seed,
            )
        )
        train_ds, val_ds = self.steps.datasets(config, splits)
        result = train_datasets(
            self.model(weights), train_ds, val_ds, config, objective=self.steps.objective()
        )
        return {k: v.numpy() for k, v in result.state.items()}, result.sample_count

    def score(self, weights: dict[str, np.ndarray], splits: dict[str, Any]) -> dict[str, float]:
        report = self.steps.evaluate(
            self.model(weights).eval(), splits, self.arch.mean, self.arch.std
        )
        return {"test_dice": float(report["dice"])}


def federated(
    trainer: Trainer, start: dict[str, np.ndarray], sites: list[dict[str, Any]], strategy: str
) -> dict[str, np.ndarray]:
    """R rounds of FedAvg or relay, combined with the hub's own code."""
    from pollen.federation.aggregation import fedavg, relay
    from pollen_agent.jobs.federated import round_learning_rate

    plan = trainer.plan
    combined = start
    for number in range(1, plan.rounds + 1):
        lr = round_learning_rate(plan.lr, number, plan.rounds)
        updates, incoming = [], combined
        for shard in sites:
            updates.append(trainer.train(incoming, shard, epochs=plan.local_epochs, lr=lr))
            if strategy == "relay":
                incoming = updates[-1][0]
        combined = fedavg(updates) if strategy == "fedavg" else relay(updates)
    return combined


def _say(text: str) -> None:
    print(f"[{NAME}] {text}", file=sys.stderr, flush=True)


def measure(plan: Plan, *, seed: int = 0, settings: tuple[str, ...] = SETTINGS) -> dict[str, Any]:
    """Train every chosen setting; each one's test Dice and seconds."""
    import torch

    torch.set_num_threads(max(1, torch.get_num_threads()))
    pooled, sites = load_sites(plan, seed)
    trainer = Trainer(plan, seed)
    start = trainer.start()
    epochs = plan.rounds * plan.local_epochs
    results: dict[str, Any] = {}
    began = time.perf_counter()

    def record(setting: str, weights: dict[str, np.ndarray], since: float) -> None:
        results[setting] = trainer.score(weights, pooled) | {"seconds": time.perf_counter() - since}
        _say(f"{setting}: {results[setting]} ({time.perf_counter() - began:.0f} s in all)")

    if "pooled" in settings:
        t0 = time.perf_counter()
        record("pooled", trainer.train(start, pooled, epochs=epochs, lr=plan.lr)[0], t0)
    if "local" in settings:
        for i, shard in enumerate(sites, start=1):
            t0 = time.perf_counter()
            own = trainer.train(start, shard, epochs=epochs, lr=plan.lr)[0]
            record(f"local-only site-{i} (n={len(shard['train'].images)})", own, t0)
    for strategy in ("fedavg", "relay"):
        if strategy in settings:
            t0 = time.perf_counter()
            record(strategy, federated(trainer, start, sites, strategy), t0)
    counts = {k: len(v.images) for k, v in pooled.items()}
    return {"results": results, "counts": counts, "seconds": time.perf_counter() - began}


def rows_of(plan_name: str, plan: Plan, measured: dict[str, Any]) -> list[dict[str, Any]]:
    results = measured["results"]
    base = results.get("pooled", {})
    out = []
    for setting, scores in results.items():
        value, baseline = scores["test_dice"], base.get("test_dice")
        ratio = round(value / baseline, 4) if baseline else None
        out.append(row(NAME, setting, "test_dice", round(value, 4), baseline, ratio))
    counts = measured["counts"]
    note = (
        f"{plan_name} plan: {ARCH} ({plan.source}) at {plan.input_size} px, batch "
        f"{plan.batch_size}; {SITES} sites; {plan.rounds} rounds x {plan.local_epochs} local "
        f"epochs, pooled and local-only {plan.rounds * plan.local_epochs} epochs; BUSI benign + "
        f"malignant, {counts['train']}/{counts['val']}/{counts['test']} train/val/test images "
        "split by image (no patient ids)"
    )
    out.append(row(NAME, "plan", "seconds", round(measured["seconds"], 1)) | {"note": note})
    return out


def run(quick: bool) -> list[dict[str, Any]]:
    """The rows for ``python -m bench`` (the full plan, or the quick smoke run)."""
    name = "quick" if quick else "full"
    plan = PLANS[name]
    try:
        measured = measure(plan)
    except FileNotFoundError as exc:
        return [row(NAME, "skipped", "", None) | {"note": f"BUSI is not available: {exc}"}]
    return rows_of(name, plan, measured)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plan", choices=sorted(PLANS), default="full")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--settings", default=",".join(SETTINGS), help=",".join(SETTINGS))
    args = parser.parse_args(argv)
    settings = tuple(s.strip() for s in args.settings.split(",") if s.strip())
    unknown = sorted(set(settings) - set(SETTINGS))
    if unknown:
        parser.error(f"unknown setting(s) {', '.join(unknown)}; choose from {', '.join(SETTINGS)}")
    plan = PLANS[args.plan]
    rows = rows_of(args.plan, plan, measure(plan, seed=args.seed, settings=settings))
    print(render_table(rows))
    print(rows[-1]["note"])


if __name__ == "__main__":
    main()
