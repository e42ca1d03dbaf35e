"""CSV manifests: header required, BOM tolerant, clear per-row errors."""

from __future__ import annotations

import pytest

from pollen_agent.errors import UserError
from pollen_agent.ingest.manifest import parse_manifest


def test_parses_rows_with_bom_and_excel_header_style():
    data = "\ufeffFilename,Label,Patient ID\r\na.png,benign,P1\r\nb.png,malignant,\r\n".encode()
    manifest = parse_manifest(data)
    assert manifest.ok and manifest.unknown_columns == []
    assert [(r.filename, r.label, r.patient_id, r.line) for r in manifest.rows] == [
        ("a.png", "benign", "P1", 2),
        ("b.png", "malignant", "", 3),
    ]


@pytest.mark.parametrize("newline", [b"\r", b"\n", b"\r\n"], ids=["CR", "LF", "CRLF"])
def test_lines_may_end_with_cr_lf_or_crlf(newline):
    data = newline.join([b"filename,label,patient_id", b"a.png,benign,P1", b"b.png,malignant,P2"])
    manifest = parse_manifest(data + newline)
    assert manifest.ok
    assert [(r.filename, r.label, r.patient_id, r.line) for r in manifest.rows] == [
        ("a.png", "benign", "P1", 2),
        ("b.png", "malignant", "P2", 3),
    ]


def test_semicolon_separated_and_unknown_columns_reported():
    manifest = parse_manifest(b"filename;label;patient_id;notes\na.png;benign;P1;left\n")
    assert manifest.rows[0].label == "benign"
    assert manifest.unknown_columns == ["notes"]


def test_per_row_errors_name_the_line():
    data = (
        b"filename,label,patient_id\n"
        b"a.png,benign,P1\n"
        b"b.png,,P2\n"
        b"a.png,malignant,P1\n"
        b"c.png,benign,P3\n"
        b",benign,P4\n"
    )
    manifest = parse_manifest(data, available=["a.png", "b.png"])
    assert [r.filename for r in manifest.rows] == ["a.png"]
    messages = [e.message for e in manifest.errors]
    assert messages == [
        "line 3 (b.png) has an empty label.",
        "line 4: a.png is already listed on line 2.",
        "line 5: c.png is not among the uploaded files.",
        "line 6 has no filename.",
    ]


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"", "empty"),
        (b"a.png,benign\n", "header"),
        (b"filename,patient_id\na.png,P1\n", "lacks label"),
        ("filename,label\nä.png,x\n".encode("latin-1"), "UTF-8"),
    ],
)
def test_unusable_manifest(data, words):
    with pytest.raises(UserError, match=words) as exc:
        parse_manifest(data)
    assert exc.value.code == "invalid_manifest"
