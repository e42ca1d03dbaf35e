"""Segmentation masks at ingest: each mask refused or handled by file, with the user's name and
what to fix; accepted masks stored as class indexes, described, and compared between readers."""

from __future__ import annotations

import io

import numpy as np
import pytest
from ingest_images import jpeg, noise, png, shared_data
from PIL import Image
from scipy import ndimage

from pollen_agent.errors import UserError
from pollen_agent.ingest.ingest import ingest_batch, ingest_one
from pollen_agent.ingest.masks import MaskItem, Segmentation, dice, mask_stats, read_mask

THUMBS = "datasets/1/thumbnails/"
MASKS = "datasets/1/masks/"
LESION = Segmentation(("background", "lesion"))
ORGANS = Segmentation(("background", "liver", "tumour"))


def _save(image: Image.Image, fmt: str = "PNG") -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt)
    return out.getvalue()


def _disc(shape=(20, 30), centre=(10, 12), radius=5, value=255, dtype=np.uint8) -> np.ndarray:
    rows, cols = np.ogrid[: shape[0], : shape[1]]
    inside = (rows - centre[0]) ** 2 + (cols - centre[1]) ** 2 <= radius**2
    return (inside * value).astype(dtype)


def _ingest(store, masks, *, segmentation=LESION, image=None, name="scan 1 (left).png", **kw):
    """Ingest one image with its masks: ``masks`` is a list of readers, each a list of
    ``(filename, bytes)`` parts (or ``(filename, bytes, reader)`` for the first part)."""
    store.put_bytes("datasets/1/images/img.png", png(noise((20, 30)) if image is None else image))
    items = []
    for index, parts in enumerate(masks):
        keys = []
        for part, (_name, data, *_) in enumerate(parts):
            keys.append(f"datasets/1/images/m{index}-{part}.png")
            store.put_bytes(keys[-1], data)
        reader = parts[0][2] if len(parts[0]) > 2 else ""
        filenames = tuple(p[0] for p in parts)
        items.append(
            MaskItem(mask_id=10 + index, keys=tuple(keys), filenames=filenames, reader=reader)
        )
    return ingest_one(
        store,
        "datasets/1/images/img.png",
        thumbnail_prefix=THUMBS,
        image_id=1,
        filename=name,
        masks=items,
        segmentation=segmentation,
        mask_prefix=MASKS,
        **kw,
    )


def _stored(store, verdict) -> np.ndarray:
    with Image.open(io.BytesIO(store.get_bytes(verdict["key"]))) as mask:
        assert mask.mode == "L"
        return np.asarray(mask)


def test_a_binary_mask_drawn_as_0_255_is_stored_as_class_indexes_with_its_numbers(store):
    drawn = _disc()
    result = _ingest(store, [[("scan 1 (left)_mask.png", png(drawn))]])
    assert result["status"] == "accepted", result
    [verdict] = result["masks"]
    assert verdict["status"] == "accepted" and verdict["mask_id"] == 10
    stored = _stored(store, verdict)
    assert set(np.unique(stored)) == {0, 1}
    np.testing.assert_array_equal(stored, drawn // 255)
    stats = verdict["stats"]
    assert stats["class_pixels"] == {"lesion": int((drawn > 0).sum())}
    assert stats["foreground_fraction"] == pytest.approx((drawn > 0).mean(), abs=1e-6)
    assert stats["components"] == 1 and stats["largest_component_px"] == int((drawn > 0).sum())
    assert not stats["empty"] and "agreement_dice" not in verdict


@pytest.mark.parametrize(
    "make",
    [
        lambda m: Image.fromarray(m > 0),  # mode "1"
        lambda m: Image.fromarray((m > 0).astype(np.uint8)),  # 0/1
        lambda m: Image.fromarray(np.stack([m] * 3, axis=-1)),  # grey saved as RGB
        lambda m: Image.fromarray(np.stack([m] * 3 + [np.full_like(m, 255)], axis=-1)),  # RGBA
        lambda m: Image.fromarray((m > 0).astype(np.uint16) * 65535),  # 16-bit 0/65535
        lambda m: Image.fromarray((m > 0).astype(np.uint16)),  # 16-bit 0/1
    ],
    ids=["mode-1", "0-1", "grey-as-rgb", "grey-as-rgba", "16-bit-0-65535", "16-bit-0-1"],
)
def test_every_way_of_saving_a_binary_mask_gives_the_same_classes(store, make):
    drawn = _disc()
    result = _ingest(store, [[("m.png", _save(make(drawn)))]])
    assert result["status"] == "accepted", result
    np.testing.assert_array_equal(_stored(store, result["masks"][0]), drawn // 255)


def test_a_palette_mask_is_read_by_its_indexes_not_its_colours(store):
    classes = np.zeros((20, 30), np.uint8)
    classes[2:8, 2:8], classes[10:15, 10:20] = 1, 2
    paletted = Image.fromarray(classes, mode="P")
    paletted.putpalette([0, 0, 0, 250, 10, 10, 10, 250, 10] + [0] * 759)
    result = _ingest(store, [[("organs.png", _save(paletted))]], segmentation=ORGANS)
    assert result["status"] == "accepted", result
    np.testing.assert_array_equal(_stored(store, result["masks"][0]), classes)
    assert result["masks"][0]["stats"]["class_pixels"] == {"liver": 36, "tumour": 50}


def test_a_mask_of_another_size_is_refused_naming_both_sizes(store):
    result = _ingest(
        store, [[("scan 1 (left)_mask.png", png(_disc(shape=(21, 30))))]], name="scan 1 (left).png"
    )
    [verdict] = result["masks"]
    assert verdict["status"] == "rejected" and verdict["code"] == "mask_size_mismatch"
    assert verdict["reason"].startswith("scan 1 (left)_mask.png: ")
    assert "30 x 21" in verdict["reason"] and "30 x 20" in verdict["reason"]
    assert "scan 1 (left).png" in verdict["reason"]


def test_anti_aliased_edges_are_refused_naming_the_values_found_and_allowed(store):
    drawn = _disc()
    edge = (ndimage.binary_dilation(drawn > 0) & ~(drawn > 0)).astype(bool)
    drawn[edge] = 128
    [verdict] = _ingest(store, [[("blurred_mask.png", png(drawn))]])["masks"]
    assert verdict["code"] == "mask_values_outside_label_map"
    reason = verdict["reason"]
    assert reason.startswith("blurred_mask.png: ")
    assert "0, 128, 255" in reason and f"{int(edge.sum()):,} pixels" in reason
    assert "0 for background and either 1 or 255 for lesion" in reason
    assert "anti-aliasing" in reason


def test_a_class_the_label_map_does_not_have_is_refused(store):
    classes = np.zeros((20, 30), np.uint8)
    classes[0:4, 0:4], classes[5:7, 5:7] = 2, 3
    [verdict] = _ingest(store, [[("organs.png", png(classes))]], segmentation=ORGANS)["masks"]
    assert verdict["code"] == "mask_values_outside_label_map"
    assert "values 0, 2, 3" in verdict["reason"] and "4 pixels hold" in verdict["reason"]
    assert "0 to 2 (0 = background, 1 = liver, 2 = tumour)" in verdict["reason"]
    classes[classes == 3] = 1
    assert _ingest(store, [[("organs.png", png(classes))]], segmentation=ORGANS)["status"] == (
        "accepted"
    )


def test_a_colour_mask_is_refused_and_told_to_save_greyscale(store):
    rgb = np.zeros((20, 30, 3), np.uint8)
    rgb[5:10, 5:10] = (255, 0, 0)
    [verdict] = _ingest(store, [[("red outline.png", png(rgb))]])["masks"]
    assert verdict["code"] == "mask_is_colour"
    assert verdict["reason"].startswith("red outline.png: ")
    assert "greyscale PNG whose values are class numbers" in verdict["reason"]


def test_sixteen_bit_masks_fit_the_map_or_are_refused():
    fits = np.zeros((4, 4), np.uint16)
    fits[1, 1], fits[2, 2] = 1, 2
    mask = read_mask(_save(Image.fromarray(fits)), ORGANS)
    assert mask.dtype == np.uint8 and mask.tolist() == fits.tolist()
    fits[3, 3] = 1000
    with pytest.raises(UserError, match="1000") as exc:
        read_mask(_save(Image.fromarray(fits)), ORGANS)
    assert exc.value.code == "mask_values_outside_label_map"
    # 65535 is the binary foreground of a 16-bit mask, not a class of a three-class map.
    with pytest.raises(UserError, match="65535"):
        read_mask(_save(Image.fromarray((fits > 0).astype(np.uint16) * 65535)), ORGANS)


def test_a_jpeg_mask_is_told_that_jpeg_blurs_edges():
    with pytest.raises(UserError, match="save masks as PNG") as exc:
        read_mask(jpeg(np.stack([_disc()] * 3, axis=-1)), LESION)
    assert exc.value.code == "mask_values_outside_label_map"


def test_a_file_that_is_no_image_or_never_arrived_is_refused_by_name(store):
    [verdict] = _ingest(store, [[("notes_mask.png", b"just text")]])["masks"]
    assert verdict["code"] == "unsupported_format"
    assert verdict["reason"].startswith("notes_mask.png: ")
    store.put_bytes("img.png", png(noise((20, 30))))
    item = MaskItem(mask_id=1, keys=("never/sent.png",), filenames=("lost_mask.png",))
    result = ingest_one(
        store,
        "img.png",
        thumbnail_prefix=THUMBS,
        masks=[item],
        segmentation=LESION,
        mask_prefix=MASKS,
    )
    assert result["code"] == "mask_rejected"
    assert result["masks"][0]["code"] == "missing_file"
    assert result["masks"][0]["reason"].startswith("lost_mask.png: The file was not found")


def test_an_image_without_a_mask_is_rejected_when_masks_are_required_saying_the_name(store):
    result = _ingest(store, [], name="benign (3).png")
    assert result["status"] == "rejected" and result["code"] == "mask_missing"
    assert result["reason"].startswith("benign (3).png: ")
    assert "'benign (3)_mask.png'" in result["reason"] and result["masks"] == []
    assert list(store.list(THUMBS)) == []  # nothing kept of a rejected image
    optional = Segmentation(("background", "lesion"), masks_required=False)
    assert _ingest(store, [], segmentation=optional)["status"] == "accepted"


def test_an_image_whose_only_mask_is_refused_is_rejected_quoting_the_masks_reason(store):
    result = _ingest(store, [[("x_mask.png", png(_disc(shape=(10, 10))))]], name="x.png")
    assert result["status"] == "rejected" and result["code"] == "mask_rejected"
    assert "x_mask.png: The mask is 10 x 10 pixels" in result["reason"]
    assert result["masks"][0]["code"] == "mask_size_mismatch"
    # With a second, usable mask the image stays and only the bad mask is refused.
    good = ("y_mask.png", png(_disc()), "second")
    kept = _ingest(store, [[("x_mask.png", png(_disc(shape=(10, 10))))], [good]], name="x.png")
    assert kept["status"] == "accepted"
    assert [m["status"] for m in kept["masks"]] == ["rejected", "accepted"]


def test_two_parts_giving_different_classes_to_a_pixel_conflict(store):
    first = np.zeros((20, 30), np.uint8)
    second = np.zeros((20, 30), np.uint8)
    first[2:8, 2:8], second[5:12, 5:12] = 1, 2  # overlap: rows 5-7, cols 5-7 = 9 pixels
    parts = [("liver.png", png(first)), ("tumour.png", png(second))]
    [verdict] = _ingest(store, [parts], segmentation=ORGANS)["masks"]
    assert verdict["code"] == "mask_conflict"
    assert verdict["reason"].startswith("tumour.png and liver.png ")
    assert "same 9 pixels" in verdict["reason"]
    second[5:8, 5:8] = 0  # no overlap any more: merged
    parts = [("liver.png", png(first)), ("tumour.png", png(second))]
    [merged] = _ingest(store, [parts], segmentation=ORGANS)["masks"]
    np.testing.assert_array_equal(_stored(store, merged), first + second)


def test_a_busi_lesion_in_two_files_is_their_union(store):
    folder = shared_data("busi-256") / "benign"
    image = np.asarray(Image.open(folder / "images" / "benign (100).png"))
    parts = [
        (name, (folder / "masks" / name).read_bytes())
        for name in ("benign (100)_mask.png", "benign (100)_mask_1.png")
    ]
    result = _ingest(store, [parts], image=image, name="benign (100).png")
    assert result["status"] == "accepted", result
    a, b = (np.asarray(Image.open(io.BytesIO(data))) > 0 for _, data in parts)
    assert (a & ~b).any() and (b & ~a).any()  # each file holds pixels the other lacks
    np.testing.assert_array_equal(_stored(store, result["masks"][0]), (a | b).astype(np.uint8))
    assert result["masks"][0]["stats"]["components"] >= 2


def test_two_chase_observers_agree_by_the_dice_numpy_gives(store):
    folder = shared_data("chase-db1")
    image = np.asarray(Image.open(folder / "Image_01L.jpg"))
    first, second = (folder / f"Image_01L_{r}.png" for r in ("1stHO", "2ndHO"))
    readers = [
        [(first.name, first.read_bytes(), "1stHO")],
        [(second.name, second.read_bytes(), "2ndHO")],
    ]
    a, b = np.asarray(Image.open(first)), np.asarray(Image.open(second))
    assert a.dtype == np.bool_  # mode "1", as the observers saved them
    expected = 2 * (a & b).sum() / (a.sum() + b.sum())
    result = _ingest(store, readers, image=image, name="Image_01L.jpg")
    assert result["status"] == "accepted", result
    reference, other = result["masks"]
    assert "agreement_dice" not in reference  # the first reader is the reference
    assert other["agreement_dice"] == pytest.approx(expected, abs=1e-6)
    assert 0.6 < expected < 0.95
    named = Segmentation(("background", "vessel"), reference_reader="2ndHO")
    first_reader, reference = _ingest(store, readers, image=image, segmentation=named)["masks"]
    assert "agreement_dice" not in reference
    assert first_reader["agreement_dice"] == pytest.approx(expected, abs=1e-6)


def test_stats_count_eight_connected_lesions_and_an_empty_mask():
    mask = np.zeros((6, 6), np.uint8)
    mask[0, 0] = mask[1, 1] = 1  # touching at a corner: one lesion
    mask[4:6, 4:6] = 2
    stats = mask_stats(mask, ORGANS.label_names)
    assert (stats.components, stats.largest_component_px) == (2, 4)
    assert stats.class_pixels == {"liver": 2, "tumour": 4}
    empty = mask_stats(np.zeros((6, 6), np.uint8), LESION.label_names)
    assert empty.empty and empty.components == 0 and empty.foreground_fraction == 0
    assert dice(np.zeros((3, 3), np.uint8), np.zeros((3, 3), np.uint8)) == 1.0


def test_a_retried_ingest_overwrites_the_stored_mask_and_overlay(store):
    masks = [[("m.png", png(_disc()))]]
    first = _ingest(store, masks)
    again = _ingest(store, masks)
    assert first == again
    keys = sorted(o.key for o in store.list(MASKS))
    assert keys == sorted([first["masks"][0]["key"], first["masks"][0]["thumbnail_key"]])


def test_the_overlay_is_a_small_picture_with_the_mask_in_colour(store):
    image = noise((600, 400), seed=4) // 4  # dark grey
    drawn = _disc(shape=(600, 400), centre=(300, 200), radius=100)
    result = _ingest(store, [[("m.png", png(drawn))]], image=image)
    with Image.open(io.BytesIO(store.get_bytes(result["masks"][0]["thumbnail_key"]))) as thumb:
        assert thumb.mode == "RGB" and max(thumb.size) == 256
        pixels = np.asarray(thumb).astype(int)
    coloured = np.abs(pixels[..., 0] - pixels[..., 2]) > 40
    rows, cols = np.nonzero(coloured)
    assert coloured.any() and abs(rows.mean() - 128) < 5 and abs(cols.mean() - 85) < 5


def test_masks_of_a_rejected_or_duplicate_image_are_not_kept(store):
    good = png(noise((20, 30), seed=9))
    store.put_bytes("a.png", good)
    store.put_bytes("b.png", good)
    store.put_bytes("broken.png", b"\x89PNG broken")
    for name in ("ma.png", "mb.png", "mc.png"):
        store.put_bytes(name, png(_disc()))
    results = ingest_batch(
        store,
        [(1, "a.png"), (2, "b.png"), (3, "broken.png")],
        thumbnail_prefix=THUMBS,
        names={1: "a.png", 2: "copy of a.png", 3: "broken.png"},
        masks={
            1: [MaskItem(1, ("ma.png",), ("a_mask.png",))],
            2: [MaskItem(2, ("mb.png",), ("copy of a_mask.png",))],
            3: [MaskItem(3, ("mc.png",), ("broken_mask.png",))],
        },
        segmentation=LESION,
        mask_prefix=MASKS,
    )
    assert [r["status"] for r in results] == ["accepted", "rejected", "rejected"]
    assert results[1]["code"] == "duplicate"
    for result in results[1:]:
        [verdict] = result["masks"]
        assert verdict["status"] == "rejected" and verdict["code"] == "image_rejected"
        assert verdict["reason"].startswith(("copy of a_mask.png: ", "broken_mask.png: "))
    # Only image 1's mask and overlay remain; the duplicate's were removed.
    assert len(list(store.list(MASKS))) == 2 and len(list(store.list(THUMBS))) == 1


def test_a_classification_ingest_is_unchanged(store):
    store.put_bytes("a.png", png(noise((8, 8))))
    [result] = ingest_batch(store, [(1, "a.png")], thumbnail_prefix=THUMBS)
    assert result["status"] == "accepted" and "masks" not in result
