"""Bulk import from zip: labels from folders; unsafe entries refused with reasons."""

from __future__ import annotations

import io
import os
import zipfile

import pytest
from ingest_images import noise, png

from pollen_agent.errors import UserError
from pollen_agent.ingest.archive import ArchiveLimits, extract_zip


def make_zip(entries, compression=zipfile.ZIP_DEFLATED):
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression) as zf:
        for entry in entries:
            if isinstance(entry, zipfile.ZipInfo):
                zf.writestr(entry, entry.comment or b"")
            else:
                zf.writestr(*entry)
    return out.getvalue()


def test_labels_come_from_folders_and_a_wrapper_folder_is_ignored(store):
    data = make_zip(
        [
            ("export/benign/1.png", png(noise((4, 4)))),
            ("export/malignant/2.png", png(noise((4, 4), seed=1))),
            ("export/malignant/left/3.png", png(noise((4, 4), seed=2))),
            ("export/.DS_Store", b"junk"),
            ("__MACOSX/export/._1.png", b"junk"),
        ]
    )
    result = extract_zip(store, data, dest_prefix="ds/1/upload")
    assert [(e.label, e.key) for e in result.entries] == [
        ("benign", "ds/1/upload/benign/1.png"),
        ("malignant", "ds/1/upload/malignant/2.png"),
        ("malignant", "ds/1/upload/malignant/left/3.png"),
    ]
    assert result.rejected == []
    assert store.exists("ds/1/upload/benign/1.png")


def test_traversal_absolute_and_symlink_entries_are_refused_the_rest_kept(store, tmp_path):
    link = zipfile.ZipInfo("cats/link.png")
    link.external_attr = 0o120777 << 16
    link.comment = b"/etc/passwd"
    data = make_zip(
        [
            ("../../evil.png", b"x"),
            ("cats/../../evil2.png", b"x"),
            ("/abs/evil.png", b"x"),
            link,
            ("loose.png", b"x"),
            ("cats/ok.png", png(noise((4, 4)))),
        ]
    )
    result = extract_zip(store, data, dest_prefix="ds/1")
    reasons = dict(result.rejected)
    assert "outside the archive" in reasons["../../evil.png"]
    assert "outside the archive" in reasons["cats/../../evil2.png"]
    assert "absolute path" in reasons["/abs/evil.png"]
    assert "symbolic link" in reasons["cats/link.png"]
    assert "label folder" in reasons["loose.png"]
    assert [e.key for e in result.entries] == ["ds/1/cats/ok.png"]
    written = [
        os.path.relpath(os.path.join(d, f), tmp_path) for d, _, fs in os.walk(tmp_path) for f in fs
    ]
    assert written == ["site-a/ds/1/cats/ok.png"]


def test_zip_bomb_is_refused_before_anything_is_written(store):
    data = make_zip([("cats/zeros.png", b"\0" * (50 * 1024 * 1024))])
    assert len(data) < 100_000
    with pytest.raises(UserError, match="zip bomb") as exc:
        extract_zip(store, data, dest_prefix="ds/1")
    assert exc.value.code == "archive_bomb"
    assert list(store.list()) == []


def test_one_bomb_entry_among_real_images_is_refused_alone(store):
    images = [(f"cats/{i}.png", png(noise((128, 128), seed=i))) for i in range(4)]
    data = make_zip([*images, ("dogs/zeros.png", b"\0" * (2 * 1024 * 1024))])
    result = extract_zip(store, data, dest_prefix="ds/1")
    assert [name for name, _ in result.rejected] == ["dogs/zeros.png"]
    assert "zip bomb" in result.rejected[0][1]
    assert len(result.entries) == 4


def test_total_size_and_file_count_limits(store):
    data = make_zip([(f"cats/{i}.png", b"x" * 100) for i in range(5)], zipfile.ZIP_STORED)
    with pytest.raises(UserError, match="split") as exc:
        extract_zip(store, data, dest_prefix="d", limits=ArchiveLimits(max_files=4))
    assert exc.value.code == "archive_too_many_files"
    with pytest.raises(UserError) as exc:
        extract_zip(store, data, dest_prefix="d", limits=ArchiveLimits(max_total_bytes=499))
    assert exc.value.code == "archive_too_large"


def test_not_a_zip(store):
    with pytest.raises(UserError, match="not a valid zip") as exc:
        extract_zip(store, b"PK\x03\x04 broken", dest_prefix="d")
    assert exc.value.code == "invalid_archive"


def test_duplicate_names_keep_the_first(store):
    with pytest.warns(UserWarning):
        data = make_zip([("cats/a.png", b"first"), ("cats/a.png", b"second")])
    result = extract_zip(store, data, dest_prefix="d")
    assert store.get_bytes("d/cats/a.png") == b"first"
    assert "appears twice" in result.rejected[0][1]
