"""Parse a label manifest: a CSV with a header ``filename,label,patient_id``.

Excel habits are tolerated: a UTF-8 byte-order mark, ``;`` or tab separators,
header case and spaces. Problems are reported per row, by line number, so a
clinician can fix the file in one pass.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass, field

from pollen_agent.errors import UserError

REQUIRED = ("filename", "label")
KNOWN = ("filename", "label", "patient_id")
MAX_MANIFEST_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class ManifestRow:
    line: int
    filename: str
    label: str
    patient_id: str


@dataclass(frozen=True)
class ManifestError:
    line: int
    message: str


@dataclass
class Manifest:
    rows: list[ManifestRow] = field(default_factory=list)
    errors: list[ManifestError] = field(default_factory=list)
    unknown_columns: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def _decode(data: bytes | str) -> str:
    if isinstance(data, str):
        return data.removeprefix("\ufeff")
    if len(data) > MAX_MANIFEST_BYTES:
        raise UserError("The manifest is larger than 16 MB.", code="invalid_manifest")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UserError(
            "The manifest is not UTF-8 text. In Excel, save it as 'CSV UTF-8'.",
            code="invalid_manifest",
        ) from exc


def _delimiter(header_line: str) -> str:
    counts = {d: header_line.count(d) for d in (",", ";", "\t")}
    return max(counts, key=lambda d: counts[d]) if any(counts.values()) else ","


def parse_manifest(data: bytes | str, *, available: Iterable[str] | None = None) -> Manifest:
    """Parse the manifest; with ``available`` (uploaded file names), flag missing files.

    Raises UserError only when the file cannot be used at all (no header,
    a required column missing, not text).
    """
    text = _decode(data)
    lines = text.splitlines()
    first = next((line for line in lines if line.strip()), "")
    # newline="": lines may end with CR (old Mac exports), LF or CRLF.
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(first))
    header: list[str] | None = None
    manifest = Manifest()
    present = None if available is None else set(available)
    first_seen: dict[str, int] = {}
    for row in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if header is None:
            header = [cell.strip().lower().replace(" ", "_") for cell in row]
            missing = [c for c in REQUIRED if c not in header]
            if missing:
                raise UserError(
                    f"The manifest's first line must be a header naming the columns "
                    f"{', '.join(KNOWN)}; it lacks {', '.join(missing)}.",
                    code="invalid_manifest",
                )
            manifest.unknown_columns = [c for c in header if c not in KNOWN]
            continue
        _add_row(manifest, header, row, line, present, first_seen)
    if header is None:
        raise UserError("The manifest is empty.", code="invalid_manifest")
    return manifest


def _add_row(
    manifest: Manifest,
    header: list[str],
    row: list[str],
    line: int,
    present: set[str] | None,
    first_seen: dict[str, int],
) -> None:
    if len(row) > len(header):
        manifest.errors.append(
            ManifestError(
                line, f"line {line} has {len(row)} values but the header has {len(header)}."
            )
        )
        return
    values = {name: (row[i].strip() if i < len(row) else "") for i, name in enumerate(header)}
    filename, label = values["filename"], values["label"]
    if not filename:
        manifest.errors.append(ManifestError(line, f"line {line} has no filename."))
        return
    problem = None
    if not label:
        problem = f"line {line} ({filename}) has an empty label."
    elif filename in first_seen:
        problem = f"line {line}: {filename} is already listed on line {first_seen[filename]}."
    elif present is not None and filename not in present:
        problem = f"line {line}: {filename} is not among the uploaded files."
    first_seen.setdefault(filename, line)
    if problem:
        manifest.errors.append(ManifestError(line, problem))
        return
    manifest.rows.append(ManifestRow(line, filename, label, values.get("patient_id", "")))
