"""Pair an archive's files into images and their masks, for a segmentation dataset.

Paths are read as ``archive.py`` leaves them, without a single wrapper folder. A file's *stem*
is its name without the extension.

Folders
- A folder named images, image, img or imgs holds images; one named masks, mask, labels,
  annotations, gt or ground_truth (any case; spaces and hyphens read as "_") holds masks.
- A file's *group* is its folder path without that images or masks folder:
  ``benign/images/x.png`` and ``benign/masks/x_mask.png`` are both in group ``benign``. The
  group's first folder is the image's label (``benign``); an image at the top has none.
- Outside a masks folder a file is a mask by its name: its stem ends in ``_mask`` or
  ``_mask_<n>``; or, outside an images folder too, it is ``<stem>_<reader>`` where ``<stem>``
  is an image of its group and ``<reader>`` is more than digits (CHASE_DB1's
  ``Image_01L_1stHO.png`` beside ``Image_01L.jpg``; ``scan_2.png`` beside ``scan.png`` stays
  an image). Anything else is an image.

Pairing: a mask belongs to an image of its group (when its group has none, to the one image
of that stem in the whole archive) when the mask's stem is
- the image's stem (in a masks folder), ``<stem>_mask`` or ``<stem>_mask_<n>``: the mask of
  reader "" (the ``_mask_<n>`` files are more parts of that reader's mask, merged at ingest);
- ``<stem>_<reader>``: that reader's mask.
When several images could own a mask the longest stem wins (``a_b_mask`` belongs to ``a_b``,
not ``a``). A mask that matches no image is refused, naming the image it was looking for.
An image without a mask comes back with none: whether that is allowed is the hub's call.

Manifest: a CSV file at the archive's top replaces the name rules. Its header (any case) names
the columns image (required), mask, reader, split, patient_id and label. Each line pairs an
image with one mask file (or none); several lines give an image several masks, and lines of
one reader are parts of one mask. A file is named by its path in the archive or, where that is
unique, its bare name. A bad line is reported by its line number and the others are kept; a
file that no usable line names is refused.
"""

from __future__ import annotations

import csv
import io
import posixpath
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from pollen_agent.errors import UserError
from pollen_agent.ingest.manifest import _decode, _delimiter

IMAGE_FOLDERS = frozenset({"images", "image", "img", "imgs"})
MASK_FOLDERS = frozenset(
    {"masks", "mask", "labels", "annotations", "gt", "ground_truth", "groundtruth"}
)
MASK_SUFFIX = re.compile(r"^(?P<stem>.+)_mask(?:_(?P<part>\d+))?$", re.IGNORECASE)
# A manifest's columns, and the other names people give them.
COLUMNS = {
    "image": ("image", "filename", "file", "image_file", "path"),
    "mask": ("mask", "mask_file", "segmentation"),
    "reader": ("reader", "observer", "annotator", "rater"),
    "split": ("split", "set", "subset"),
    "patient_id": ("patient_id", "patient"),
    "label": ("label", "class"),
}
SPLITS = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "test": "test",
    "testing": "test",
}


@dataclass(frozen=True)
class ArchiveFile:
    """A file written from the archive: its name in the zip, its path without the wrapper
    folder, and where it was stored."""

    name: str
    parts: tuple[str, ...]
    key: str
    size: int

    @property
    def stem(self) -> str:
        return posixpath.splitext(self.parts[-1])[0]

    @property
    def path(self) -> str:
        return "/".join(self.parts)


@dataclass
class PairedMask:
    reader: str
    files: list[ArchiveFile] = field(default_factory=list)


@dataclass
class PairedImage:
    file: ArchiveFile
    label: str = ""
    masks: list[PairedMask] = field(default_factory=list)
    patient_id: str = ""
    split: str = ""

    def mask_of(self, reader: str) -> PairedMask:
        """This reader's mask of the image (new and empty the first time)."""
        for mask in self.masks:
            if mask.reader == reader:
                return mask
        self.masks.append(PairedMask(reader))
        return self.masks[-1]


@dataclass
class Pairing:
    images: list[PairedImage] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (name, reason)
    # Files that went into no image: the caller removes their stored copies.
    unused: list[ArchiveFile] = field(default_factory=list)


# --- Name rules --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Placed:
    file: ArchiveFile
    group: tuple[str, ...]
    folder: str  # "images", "masks", or "" for a file in neither


def _normal(folder: str) -> str:
    return re.sub(r"[\s-]+", "_", folder.strip().lower())


def is_role_folder(folder: str) -> bool:
    """Whether a folder's name says it holds images or masks (then it is no label or wrapper)."""
    return _normal(folder) in IMAGE_FOLDERS | MASK_FOLDERS


def _place(file: ArchiveFile) -> _Placed:
    folders = list(file.parts[:-1])
    roles = [i for i, f in enumerate(folders) if is_role_folder(f)]
    if not roles:
        return _Placed(file, tuple(folders), "")
    role = "masks" if _normal(folders[roles[-1]]) in MASK_FOLDERS else "images"
    del folders[roles[-1]]
    return _Placed(file, tuple(folders), role)


@dataclass(frozen=True)
class _Owner:
    """An image stem a mask's stem may belong to, and as which reader's mask."""

    stem: str
    reader: str = ""


def _owners(stem: str, *, in_masks_folder: bool) -> list[_Owner]:
    """Every reading of a mask's stem, the longest image stem first."""
    owners = [_Owner(stem)] if in_masks_folder else []
    suffix = MASK_SUFFIX.match(stem)
    if suffix:
        owners.append(_Owner(suffix["stem"]))
    cuts = [i for i, char in enumerate(stem) if char == "_"]
    for cut in reversed(cuts):
        reader = stem[cut + 1 :]
        if reader and not reader.isdigit() and not MASK_SUFFIX.match("x_" + reader):
            owners.append(_Owner(stem[:cut], reader=reader))
    return sorted(owners, key=lambda owner: -len(owner.stem))  # stable: "_mask" before a reader


def _is_mask_by_name(placed: _Placed, images: Mapping[str, object]) -> bool:
    if placed.folder == "masks" or MASK_SUFFIX.match(placed.file.stem):
        return True
    if placed.folder == "images":  # beside images only the "_mask" suffix makes a mask
        return False
    owners = _owners(placed.file.stem, in_masks_folder=False)
    return any(owner.reader and owner.stem in images for owner in owners)


def pair_by_name(files: Sequence[ArchiveFile]) -> Pairing:
    """Pair by folders and names (this module's docstring); images keep the archive's order."""
    placed = [_place(f) for f in files]
    groups: dict[tuple[str, ...], dict[str, PairedImage]] = {}
    masks: list[_Placed] = []
    image_of: dict[ArchiveFile, PairedImage] = {}
    # Shortest stems first, so an image is known before the files named after it.
    for p in sorted(placed, key=lambda p: len(p.file.stem)):
        in_group = groups.setdefault(p.group, {})
        if _is_mask_by_name(p, in_group):
            masks.append(p)
            continue
        image = PairedImage(p.file, label=p.group[0] if p.group else "")
        in_group.setdefault(p.file.stem, image)
        image_of[p.file] = image
    pairing = Pairing(images=[image_of[f] for f in files if f in image_of])
    anywhere = _unique_stems(pairing.images)
    for p in sorted(masks, key=_part_order):
        match = _match(p, groups.get(p.group, {})) or _match(p, anywhere)
        if match is None:
            pairing.rejected.append((p.file.name, _orphan_reason(p)))
            pairing.unused.append(p.file)
            continue
        image, reader = match
        image.mask_of(reader).files.append(p.file)
    return pairing


def _unique_stems(images: Iterable[PairedImage]) -> dict[str, PairedImage]:
    seen: dict[str, list[PairedImage]] = {}
    for image in images:
        seen.setdefault(image.file.stem, []).append(image)
    return {stem: found[0] for stem, found in seen.items() if len(found) == 1}


def _part_order(placed: _Placed) -> tuple[int, str]:
    """A reader's parts in order: ``x_mask`` before ``x_mask_1`` before ``x_mask_2``."""
    suffix = MASK_SUFFIX.match(placed.file.stem)
    return (int(suffix["part"] or 0) if suffix else 0, placed.file.name)


def _match(placed: _Placed, images: Mapping[str, PairedImage]) -> tuple[PairedImage, str] | None:
    for owner in _owners(placed.file.stem, in_masks_folder=placed.folder == "masks"):
        if owner.stem in images:
            return images[owner.stem], owner.reader
    return None


def _orphan_reason(placed: _Placed) -> str:
    suffix = MASK_SUFFIX.match(placed.file.stem)
    expected = suffix["stem"] if suffix else placed.file.stem
    return (
        f"{placed.file.name} is a mask, but the archive has no image named '{expected}' "
        "(with any extension) beside it or in an images folder; name masks "
        "<image>_mask.png after their image, or pair them in a manifest.csv."
    )


# --- Manifest ----------------------------------------------------------------------------------


class _LineProblem(Exception):
    """What is wrong with one line of a manifest, in words (a sentence without its line)."""


class _Lookup:
    """Finds a manifest's file names among the archive's files: path, or a unique bare name."""

    def __init__(self, files: Sequence[ArchiveFile]) -> None:
        self.by_path = {f.name: f for f in files} | {f.path: f for f in files}
        self.by_base: dict[str, list[ArchiveFile]] = {}
        for f in files:
            self.by_base.setdefault(f.parts[-1], []).append(f)

    def find(self, ref: str) -> ArchiveFile:
        ref = ref.replace("\\", "/").strip("/")
        while ref.startswith("./"):
            ref = ref[2:]
        if ref in self.by_path:
            return self.by_path[ref]
        found = self.by_base.get(ref, [])
        if len(found) > 1:
            paths = ", ".join(f.path for f in found[:3])
            raise _LineProblem(f"{ref} matches several files ({paths}); write its folder too.")
        if not found:
            raise _LineProblem(
                f"{ref} is not among the archive's files; check its name and folder."
            )
        return found[0]


@dataclass
class _ManifestState:
    lookup: _Lookup
    images: dict[ArchiveFile, PairedImage] = field(default_factory=dict)
    image_lines: dict[ArchiveFile, int] = field(default_factory=dict)
    mask_lines: dict[ArchiveFile, int] = field(default_factory=dict)


ManifestLines = list[tuple[int, dict[str, str]]]


def pair_by_manifest(
    files: Sequence[ArchiveFile], manifest_name: str, lines: ManifestLines
) -> Pairing:
    """Pair as a manifest's lines (``read_manifest``) say; images keep the archive's order."""
    state = _ManifestState(_Lookup(files))
    pairing = Pairing()
    for line, values in lines:
        try:
            _use_line(state, line, values)
        except _LineProblem as problem:
            pairing.rejected.append((manifest_name, f"{manifest_name}, line {line}: {problem}"))
    groups = {f: _place(f).group for f in files}
    for f in files:
        if f in state.images:
            image = state.images[f]
            image.label = image.label or (groups[f][0] if groups[f] else "")
            pairing.images.append(image)
        elif f not in state.mask_lines:
            pairing.unused.append(f)
            pairing.rejected.append(
                (
                    f.name,
                    f"{f.name} is not named on any usable line of {manifest_name}; add a line "
                    "for it, or leave it out of the archive.",
                )
            )
    return pairing


def read_manifest(name: str, data: bytes) -> ManifestLines:
    """A manifest's lines as ``(line number, {column: value})``; UserError when it cannot be
    used at all (not text, no header, no image column), before any file is written."""
    try:
        text = _decode(data)
    except UserError as exc:
        raise UserError(f"{name}: {exc.message}", code=exc.code) from None
    first = next((line for line in text.splitlines() if line.strip()), "")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(first))
    columns: dict[int, str] | None = None
    lines: ManifestLines = []
    for row in reader:
        if not any(cell.strip() for cell in row):
            continue
        if columns is None:
            columns = _header(name, row)
            continue
        values = {column: row[i].strip() for i, column in columns.items() if i < len(row)}
        lines.append((reader.line_num, values))
    if columns is None:
        raise UserError(f"{name}: the manifest is empty.", code="invalid_manifest")
    return lines


def _header(name: str, row: list[str]) -> dict[int, str]:
    aliases = {alias: column for column, names in COLUMNS.items() for alias in names}
    columns = {i: aliases[_normal(cell)] for i, cell in enumerate(row) if _normal(cell) in aliases}
    if "image" not in columns.values():
        raise UserError(
            f"{name}: the manifest's first line must be a header naming its columns "
            f"({', '.join(COLUMNS)}); it has no image column.",
            code="invalid_manifest",
        )
    return columns


def _use_line(state: _ManifestState, line: int, values: dict[str, str]) -> None:
    if not values.get("image"):
        raise _LineProblem("it names no image.")
    file = state.lookup.find(values["image"])
    if file in state.mask_lines:
        raise _LineProblem(
            f"{file.path} is a mask on line {state.mask_lines[file]}; it cannot be an image too."
        )
    split = values.get("split", "")
    if split and split.lower() not in SPLITS:
        raise _LineProblem(f"the split must be train, val or test (or empty), not '{split}'.")
    image = state.images.get(file) or PairedImage(file)
    first = state.image_lines.setdefault(file, line)
    wanted = {
        "patient_id": values.get("patient_id", ""),
        "split": SPLITS.get(split.lower(), ""),
        "label": values.get("label", ""),
    }
    for column, value in wanted.items():
        known = getattr(image, column)
        if value and known and value != known:
            raise _LineProblem(
                f"it gives {file.path} the {column} '{value}', but line {first} gave '{known}'."
            )
    for column, value in wanted.items():
        setattr(image, column, value or getattr(image, column))
    state.images[file] = image
    if values.get("mask"):
        _add_mask(state, line, image, values["mask"], values.get("reader", ""))


def _add_mask(state: _ManifestState, line: int, image: PairedImage, ref: str, reader: str) -> None:
    mask = state.lookup.find(ref)
    if mask in state.image_lines:
        raise _LineProblem(
            f"{mask.path} is an image on line {state.image_lines[mask]}; it cannot be a mask too."
        )
    if mask in state.mask_lines:
        raise _LineProblem(
            f"the mask {mask.path} is already used on line {state.mask_lines[mask]}."
        )
    state.mask_lines[mask] = line
    image.mask_of(reader).files.append(mask)
