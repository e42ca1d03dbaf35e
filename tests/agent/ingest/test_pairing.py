"""Segmentation archives: files paired into images and masks by folders, names or a manifest."""

from __future__ import annotations

import io
import zipfile

import pytest
from ingest_images import noise, png, shared_data

from pollen_agent.errors import UserError
from pollen_agent.ingest.archive import extract_zip
from pollen_agent.ingest.pairing import ArchiveFile, pair_by_name

DEST = "datasets/1/images/zip-1"


def _zip(entries: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return out.getvalue()


def _masks(entry) -> list[tuple[str, list[str]]]:
    return [(m.reader, m.names) for m in entry.masks]


def _files(*paths: str) -> list[ArchiveFile]:
    return [ArchiveFile(p, tuple(p.split("/")), f"k/{p}", 1) for p in paths]


def test_the_busi_layout_pairs_by_folder_and_name_and_merges_a_second_mask(store):
    root = shared_data("busi-256")
    chosen = {
        "benign": ["benign (1)", "benign (100)"],
        "malignant": ["malignant (1)"],
        "normal": ["normal (1)"],
    }
    entries = {}
    for label, stems in chosen.items():
        for stem in stems:
            masks = sorted((root / label / "masks").glob(f"{stem}_mask*.png"))
            for path in [root / label / "images" / f"{stem}.png", *masks]:
                entries[f"busi-256/{path.relative_to(root)}"] = path.read_bytes()
    assert "busi-256/benign/masks/benign (100)_mask_1.png" in entries
    result = extract_zip(store, _zip(entries), dest_prefix=DEST, segmentation=True)
    assert result.rejected == []
    by_name = {e.name.split("/")[-1]: e for e in result.entries}
    assert set(by_name) == {f"{s}.png" for stems in chosen.values() for s in stems}
    assert {n: e.label for n, e in by_name.items()} == {
        "benign (1).png": "benign",
        "benign (100).png": "benign",
        "malignant (1).png": "malignant",
        "normal (1).png": "normal",
    }
    assert _masks(by_name["benign (100).png"]) == [
        (
            "",
            [
                "busi-256/benign/masks/benign (100)_mask.png",
                "busi-256/benign/masks/benign (100)_mask_1.png",
            ],
        )
    ]
    assert _masks(by_name["normal (1).png"]) == [
        ("", ["busi-256/normal/masks/normal (1)_mask.png"])
    ]
    entry = by_name["benign (1).png"]
    assert entry.key == f"{DEST}/benign/images/benign (1).png"
    assert store.get_bytes(entry.masks[0].keys[0]) == entries[entry.masks[0].names[0]]


def test_the_chase_layout_gives_each_observer_a_mask(store):
    root = shared_data("chase-db1")
    entries = {
        f"chase-db1/{p.name}": p.read_bytes()
        for stem in ("Image_01L", "Image_01R")
        for p in sorted(root.glob(f"{stem}*"))
    }
    assert len(entries) == 6
    result = extract_zip(store, _zip(entries), dest_prefix=DEST, segmentation=True)
    assert result.rejected == []
    assert [(e.name, e.label, e.key) for e in result.entries] == [
        ("chase-db1/Image_01L.jpg", "", f"{DEST}/Image_01L.jpg"),
        ("chase-db1/Image_01R.jpg", "", f"{DEST}/Image_01R.jpg"),
    ]
    assert _masks(result.entries[0]) == [
        ("1stHO", ["chase-db1/Image_01L_1stHO.png"]),
        ("2ndHO", ["chase-db1/Image_01L_2ndHO.png"]),
    ]


def test_masks_beside_their_images_as_the_original_busi_has_them():
    pairing = pair_by_name(
        _files(
            "benign/benign (1).png",
            "benign/benign (1)_mask.png",
            "benign/benign (10).png",
            "benign/benign (10)_mask.png",
            "benign/benign (10)_mask_1.png",
        )
    )
    assert [(i.file.path, i.label, [m.files for m in i.masks]) for i in pairing.images] == [
        ("benign/benign (1).png", "benign", [_files("benign/benign (1)_mask.png")]),
        (
            "benign/benign (10).png",
            "benign",
            [_files("benign/benign (10)_mask.png", "benign/benign (10)_mask_1.png")],
        ),
    ]


def test_same_stem_in_a_masks_folder_longest_stem_wins_and_digits_are_no_reader():
    pairing = pair_by_name(
        _files(
            "Images/a.png",
            "Images/a_b.png",
            "Ground Truth/a.png",
            "Ground Truth/a_b_mask.png",
            "scan.png",
            "scan_2.png",
            "elsewhere/x.png",
            "labels/x.tif",
        )
    )
    masks = {i.file.path: [f.path for m in i.masks for f in m.files] for i in pairing.images}
    assert masks == {
        "Images/a.png": ["Ground Truth/a.png"],
        "Images/a_b.png": ["Ground Truth/a_b_mask.png"],
        "scan.png": [],
        "scan_2.png": [],
        "elsewhere/x.png": ["labels/x.tif"],  # no image in its group: the one 'x' anywhere
    }
    assert pairing.rejected == []


def test_a_mask_without_an_image_is_refused_and_not_kept(store):
    data = _zip(
        {
            "images/lesion 1.png": png(noise((4, 4))),
            "masks/lesion 1_mask.png": png(noise((4, 4))),
            "masks/lesion 2_mask.png": png(noise((4, 4))),
        }
    )
    result = extract_zip(store, data, dest_prefix=DEST, segmentation=True)
    [(name, reason)] = result.rejected
    assert name == "masks/lesion 2_mask.png"
    assert reason.startswith("masks/lesion 2_mask.png is a mask")
    assert "no image named 'lesion 2'" in reason and "<image>_mask.png" in reason
    assert not store.exists(f"{DEST}/masks/lesion 2_mask.png")
    assert [e.name for e in result.entries] == ["images/lesion 1.png"]


MANIFEST = """Image;MASK;Reader;Split;Patient ID;Label
images/p1 left.png;masks/p1 left a.png;anna;train;P1;benign
p1 left.png;masks/p1 left b.png;ben;;P1;
images/p2.png;masks/p2.png;;TEST;P2;malignant
images/p2.png;;;;P9;
images/p3.png;masks/missing.png;;;P3;
images/p4.png;;;later;;
nowhere.png;;;;;
"""


def test_a_manifest_pairs_and_reports_bad_lines_by_number(store):
    files = {
        f"export/{name}": png(noise((4, 4)))
        for name in (
            "images/p1 left.png",
            "images/p2.png",
            "images/p3.png",
            "images/p4.png",
            "images/p5.png",
            "masks/p1 left a.png",
            "masks/p1 left b.png",
            "masks/p2.png",
        )
    }
    data = _zip({"export/manifest.csv": MANIFEST.encode("utf-8-sig"), **files})
    result = extract_zip(store, data, dest_prefix=DEST, segmentation=True)
    entries = {e.name: e for e in result.entries}
    assert list(entries) == [
        "export/images/p1 left.png",
        "export/images/p2.png",
        "export/images/p3.png",
    ]
    p1 = entries["export/images/p1 left.png"]
    assert (p1.patient_id, p1.split, p1.label) == ("P1", "train", "benign")
    assert _masks(p1) == [
        ("anna", ["export/masks/p1 left a.png"]),
        ("ben", ["export/masks/p1 left b.png"]),
    ]
    p2 = entries["export/images/p2.png"]
    assert (p2.patient_id, p2.split, p2.label) == ("P2", "test", "malignant")
    assert entries["export/images/p3.png"].masks == []  # its mask was not found: kept without
    reasons = [r for _, r in result.rejected]
    assert (
        "export/manifest.csv, line 5: it gives images/p2.png the patient_id 'P9', but line 4 "
        "gave 'P2'." in reasons
    )
    assert any(
        r.startswith("export/manifest.csv, line 6: masks/missing.png is not among") for r in reasons
    )
    assert any("line 7: the split must be train, val or test" in r for r in reasons)
    assert any("line 8: nowhere.png is not among the archive" in r for r in reasons)
    assert {n for n, _ in result.rejected if n != "export/manifest.csv"} == {
        "export/images/p4.png",
        "export/images/p5.png",
    }
    assert not store.exists(f"{DEST}/images/p5.png")
    assert not store.exists(f"{DEST}/manifest.csv")  # the manifest is no image


def test_a_manifest_without_an_image_column_refuses_the_archive_before_writing(store):
    data = _zip({"pairs.csv": b"picture,mask\na.png,b.png\n", "a.png": png(noise((4, 4)))})
    with pytest.raises(UserError, match=r"pairs\.csv: .* no image column") as exc:
        extract_zip(store, data, dest_prefix=DEST, segmentation=True)
    assert exc.value.code == "invalid_manifest"
    assert list(store.list()) == []


def test_a_classification_archive_still_needs_label_folders(store):
    data = _zip({"a.png": png(noise((4, 4))), "cats/b.png": png(noise((4, 4)))})
    result = extract_zip(store, data, dest_prefix=DEST)
    assert [(e.label, e.masks) for e in result.entries] == [("cats", None)]
    assert "label folder" in result.rejected[0][1]
