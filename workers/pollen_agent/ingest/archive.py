"""Safe extraction of a zip for bulk import: one sub-folder per label.

``cats/001.png`` (or ``cats/left/001.png``) gets label ``cats``. A single wrapping folder (what
"compress folder" makes) is ignored. Entries that escape the folder, links,
encrypted entries and suspiciously compressible entries are refused one by
one with a reason; an archive that would expand past the limits is refused
whole before anything is written.

For a segmentation dataset the files are then paired into images and their masks
(``pairing.py``: by folders and names, or by a CSV manifest at the archive's top); files may
sit at the top, and a mask that pairs with no image is refused and not kept.
"""

from __future__ import annotations

import io
import posixpath
import stat
import zipfile
from dataclasses import dataclass, field
from typing import BinaryIO

from pollen_agent.errors import UserError
from pollen_agent.ingest.manifest import MAX_MANIFEST_BYTES
from pollen_agent.ingest.pairing import (
    ArchiveFile,
    Pairing,
    is_role_folder,
    pair_by_manifest,
    pair_by_name,
    read_manifest,
)
from pollen_agent.storage.base import Storage, validate_prefix
from pollen_contracts.limits import MAX_FILENAME_CHARS, MAX_UPLOAD_BYTES
from pollen_contracts.local_signing import key_problem
from pollen_contracts.reports import ArchiveMask

MAX_FILES = 20_000
MAX_TOTAL_BYTES = 8 * 1024**3
MAX_RATIO = 100  # image formats compress ~1-10x; bombs compress 1000x
RATIO_FLOOR_BYTES = 1024 * 1024  # tiny files may compress well; they harm nobody
JUNK_NAMES = {".DS_Store", "Thumbs.db", "desktop.ini"}
CHUNK = 1024 * 1024


@dataclass
class ArchiveEntry:
    name: str  # as written in the zip
    key: str  # where it was stored
    label: str
    size: int
    masks: list[ArchiveMask] | None = None  # segmentation: the image's paired masks
    patient_id: str = ""  # segmentation: what a manifest said of the image
    split: str = ""


@dataclass
class ArchiveResult:
    entries: list[ArchiveEntry] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (name, reason)
    skipped: list[str] = field(default_factory=list)  # folders and OS junk


@dataclass(frozen=True)
class ArchiveLimits:
    max_files: int = MAX_FILES
    max_total_bytes: int = MAX_TOTAL_BYTES
    max_entry_bytes: int = MAX_UPLOAD_BYTES
    max_ratio: float = MAX_RATIO


def _is_junk(name: str) -> bool:
    parts = name.split("/")
    return parts[0] == "__MACOSX" or parts[-1] in JUNK_NAMES or parts[-1].startswith("._")


def _entry_problem(info: zipfile.ZipInfo, limits: ArchiveLimits) -> str | None:
    name = info.filename
    mode = info.external_attr >> 16
    if name.startswith("/") or "\\" in name or (len(name) > 1 and name[1] == ":"):
        return "has an absolute path; refused"
    if ".." in name.split("/"):
        return "points outside the archive ('..'); refused"
    if stat.S_ISLNK(mode):
        return "is a symbolic link; refused"
    if info.flag_bits & 0x1:
        return "is password-protected; zip it again without a password"
    if info.file_size > limits.max_entry_bytes:
        return f"is larger than the {limits.max_entry_bytes // 1024**2} MB per-file limit"
    ratio = info.file_size / max(info.compress_size, 1)
    if info.file_size > RATIO_FLOOR_BYTES and ratio > limits.max_ratio:
        return f"compresses {ratio:.0f}:1, which no medical image does; refused as a zip bomb"
    longest = max(name.split("/"), key=len)
    if len(longest) > MAX_FILENAME_CHARS:
        return (
            f"has a name of {len(longest)} characters; names may have at most "
            f"{MAX_FILENAME_CHARS} characters, so shorten it and zip it again"
        )
    if key_problem(name):
        return "has a name that cannot be stored"
    return None


def _strip_wrapper(names: list[str], *, segmentation: bool = False) -> int:
    """How many leading folders to drop: 1 when every file sits in one wrapper folder
    that itself holds label folders (or, for segmentation, any files but an images or
    masks folder's)."""
    tops = {n.split("/")[0] for n in names}
    if len(tops) != 1 or not names:
        return 0
    if segmentation:
        inside = all("/" in n for n in names) and not is_role_folder(tops.pop())
        return int(inside)
    return int(all(n.count("/") >= 2 for n in names))


def _check_archive(infos: list[zipfile.ZipInfo], archive_size: int, limits: ArchiveLimits) -> None:
    if len(infos) > limits.max_files:
        raise UserError(
            f"The archive holds {len(infos):,} files, over the {limits.max_files:,} limit; "
            "split it into smaller archives.",
            code="archive_too_many_files",
        )
    total = sum(i.file_size for i in infos)
    if total > limits.max_total_bytes:
        raise UserError(
            f"The archive would expand to {total / 1024**3:.1f} GB, over the "
            f"{limits.max_total_bytes / 1024**3:.0f} GB limit; split it.",
            code="archive_too_large",
        )
    if total > RATIO_FLOOR_BYTES and total / max(archive_size, 1) > limits.max_ratio:
        raise UserError(
            "The archive expands more than any set of medical images would "
            f"({total / max(archive_size, 1):.0f}:1); it was refused as a zip bomb.",
            code="archive_bomb",
        )


def _read_capped(zf: zipfile.ZipFile, info: zipfile.ZipInfo, cap: int) -> bytes:
    """Read an entry, trusting neither its declared size nor its compression."""
    out = bytearray()
    with zf.open(info) as member:
        while chunk := member.read(CHUNK):
            out += chunk
            if len(out) > cap:
                raise UserError("expands beyond its declared size; refused", code="archive_bomb")
    return bytes(out)


def extract_zip(
    storage: Storage,
    source: bytes | BinaryIO,
    *,
    dest_prefix: str,
    limits: ArchiveLimits | None = None,
    segmentation: bool = False,
) -> ArchiveResult:
    """Write each image in the zip to ``dest_prefix/<label>/<file>``; report the rest.

    With ``segmentation`` masks are written too and paired with their images (each entry's
    ``masks``). Raises UserError only when the archive as a whole is unusable (not a zip,
    too many files, too large once expanded, an unreadable manifest).
    """
    limits = limits or ArchiveLimits()
    dest_prefix = validate_prefix(dest_prefix).rstrip("/")
    fh = io.BytesIO(source) if isinstance(source, bytes | bytearray) else source
    archive_size = fh.seek(0, io.SEEK_END)
    fh.seek(0)
    try:
        zf = zipfile.ZipFile(fh)
    except (zipfile.BadZipFile, OSError) as exc:
        raise UserError(
            "The file is not a valid zip archive (it may be damaged or incomplete).",
            code="invalid_archive",
        ) from exc
    result = ArchiveResult()
    with zf:
        infos = zf.infolist()
        _check_archive(infos, archive_size, limits)
        files = [i for i in infos if not i.is_dir() and not _is_junk(i.filename)]
        result.skipped = [i.filename for i in infos if i.is_dir() or _is_junk(i.filename)]
        depth = _strip_wrapper([i.filename for i in files], segmentation=segmentation)
        manifest = _manifest(zf, files, depth) if segmentation else None
        if manifest is not None:
            files.remove(manifest[0])
        written = _write_entries(
            storage, zf, files, depth, dest_prefix, limits, result, segmentation
        )
    if not segmentation:
        result.entries = [ArchiveEntry(f.name, f.key, f.parts[0], f.size) for f in written]
        return result
    if manifest is None:
        pairing = pair_by_name(written)
    else:
        pairing = pair_by_manifest(written, manifest[0].filename, manifest[1])
    _keep_pairs(storage, result, pairing)
    return result


def _write_entries(
    storage: Storage,
    zf: zipfile.ZipFile,
    files: list[zipfile.ZipInfo],
    depth: int,
    dest_prefix: str,
    limits: ArchiveLimits,
    result: ArchiveResult,
    segmentation: bool,
) -> list[ArchiveFile]:
    """Write each usable entry to storage; refusals go into ``result.rejected``."""
    written: list[ArchiveFile] = []
    keys: set[str] = set()
    remaining = limits.max_total_bytes
    for info in files:
        problem = _entry_problem(info, limits)
        parts = info.filename.split("/")[depth:]
        if problem is None and len(parts) < 2 and not segmentation:
            problem = (
                "is not inside a label folder (put each image in a folder named after its label)"
            )
        if problem is None:
            key = posixpath.join(dest_prefix, *parts)
            # A key the storage refuses is this entry's problem, never the archive's.
            if key_problem(key):
                problem = "has a path too long or unusual to be stored; shorten it"
            elif key in keys:
                problem = "appears twice in the archive; the first copy was kept"
        if problem:
            result.rejected.append((info.filename, f"{info.filename} {problem}."))
            continue
        try:
            data = _read_capped(zf, info, min(info.file_size, remaining))
        except UserError as exc:
            result.rejected.append((info.filename, f"{info.filename} {exc.message}."))
            continue
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
            result.rejected.append(
                (info.filename, f"{info.filename} is damaged in the archive ({exc}).")
            )
            continue
        remaining -= len(data)
        storage.put_bytes(key, data)
        keys.add(key)
        written.append(ArchiveFile(info.filename, tuple(parts), key, len(data)))
    return written


def _manifest(
    zf: zipfile.ZipFile, files: list[zipfile.ZipInfo], depth: int
) -> tuple[zipfile.ZipInfo, list[tuple[int, dict[str, str]]]] | None:
    """The CSV manifest at the archive's top, read before any file is written."""
    found = [
        i
        for i in files
        if len(i.filename.split("/")[depth:]) == 1 and i.filename.lower().endswith(".csv")
    ]
    if not found:
        return None
    if len(found) > 1:
        names = ", ".join(i.filename for i in found[:4])
        raise UserError(
            f"The archive has several CSV files at its top ({names}); keep one manifest "
            "pairing images with their masks.",
            code="invalid_manifest",
        )
    try:
        data = _read_capped(zf, found[0], MAX_MANIFEST_BYTES)
    except UserError as exc:
        raise UserError(f"{found[0].filename} {exc.message}.", code="invalid_manifest") from exc
    return found[0], read_manifest(found[0].filename, data)


def _keep_pairs(storage: Storage, result: ArchiveResult, pairing: Pairing) -> None:
    """Report the paired images; remove the stored copies of files that paired with nothing."""
    for file in pairing.unused:
        storage.delete(file.key)
    result.rejected += pairing.rejected
    for image in pairing.images:
        masks = [
            ArchiveMask(
                names=[f.name for f in m.files], keys=[f.key for f in m.files], reader=m.reader
            )
            for m in image.masks
        ]
        result.entries.append(
            ArchiveEntry(
                image.file.name,
                image.file.key,
                image.label,
                image.file.size,
                masks=masks,
                patient_id=image.patient_id,
                split=image.split,
            )
        )
