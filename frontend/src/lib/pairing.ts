/**
 * Pair picked files into images and their masks, in the browser, before anything is uploaded: the
 * same rules the site agent applies to a zip (workers/pollen_agent/ingest/pairing.py), so a folder
 * dropped on the page and the same folder zipped pair alike. Pure functions over paths; the caller
 * keeps whatever it likes (a File) beside each path.
 *
 * - A folder named images, image, img or imgs holds images; one named masks, mask, labels,
 *   annotations, gt or ground_truth (any case; spaces and hyphens read as "_") holds masks.
 * - A file's group is its folder path without that images or masks folder; the group's first
 *   folder is the image's label (`benign/images/x.png` is labelled "benign").
 * - Outside a masks folder a file is a mask by its name: `<stem>_mask` or `<stem>_mask_<n>`, or,
 *   outside an images folder too, `<stem>_<reader>` beside an image `<stem>` (CHASE_DB1's
 *   `Image_01L_1stHO.png` beside `Image_01L.jpg`); a reader is more than digits.
 * - A mask belongs to an image of its group (else to the one image of that stem anywhere); the
 *   longest image stem wins. `_mask_<n>` files are more parts of one mask (merged at the site).
 * - A CSV file at the top (columns image, mask, reader, split, patient_id, label) replaces the name
 *   rules.
 */

/** Anything with a path inside the picked folder ("busi/benign/images/a.png"). */
export interface PathLike {
  path: string;
}

export interface PairedMask<T> {
  /** Who drew it ("" when the names do not say). */
  reader: string;
  /** One file, or several parts merged into one mask at the site. */
  files: T[];
}

export interface PairedImage<T> {
  file: T;
  label: string;
  masks: PairedMask<T>[];
  patientId: string;
  split: string;
}

/** A file that will not be sent, and why, in words that say what to rename or fix. */
export interface LeftOut<T> {
  file: T;
  reason: string;
}

export interface Pairing<T> {
  images: PairedImage<T>[];
  /** Masks that pair with no image. */
  orphans: LeftOut<T>[];
  /** Files that are neither images nor masks (a checksum list, a text file), and unused files of a manifest. */
  skipped: LeftOut<T>[];
  /** Lines of the manifest that could not be used. */
  problems: string[];
  /** The manifest's name, when one was used. */
  manifest: string | null;
}

const IMAGE_FOLDERS = new Set(['images', 'image', 'img', 'imgs']);
const MASK_FOLDERS = new Set(['masks', 'mask', 'labels', 'annotations', 'gt', 'ground_truth', 'groundtruth']);
const MASK_SUFFIX = /^(.+)_mask(?:_(\d+))?$/i;
/** What the site agent can read as an image (PNG, JPEG, TIFF, DICOM). */
const IMAGE_EXTENSIONS = new Set(['png', 'jpg', 'jpeg', 'tif', 'tiff', 'dcm', 'dicom']);

const normal = (folder: string) => folder.trim().toLowerCase().replace(/[\s-]+/g, '_');

/** Whether a folder's name says it holds images or masks (then it is no label and no wrapper). */
export function isRoleFolder(folder: string): boolean {
  const name = normal(folder);
  return IMAGE_FOLDERS.has(name) || MASK_FOLDERS.has(name);
}

const partsOf = (path: string) => path.replace(/\\/g, '/').split('/').filter(Boolean);
const baseName = (path: string) => partsOf(path).pop() ?? path;
export const extensionOf = (path: string) => {
  const base = baseName(path);
  const dot = base.lastIndexOf('.');
  return dot > 0 ? base.slice(dot + 1).toLowerCase() : '';
};
/** A file's name without its extension. */
export const stemOf = (path: string) => {
  const base = baseName(path);
  const dot = base.lastIndexOf('.');
  return dot > 0 ? base.slice(0, dot) : base;
};

/**
 * How many leading folders to drop: 1 when every file sits in one folder that is not itself an
 * images or masks folder (the folder the person picked, or a zip's wrapper).
 */
export function wrapperDepth(paths: string[]): number {
  if (!paths.length) return 0;
  const tops = new Set(paths.map((p) => partsOf(p)[0]));
  if (tops.size !== 1) return 0;
  return paths.every((p) => partsOf(p).length > 1) && !isRoleFolder([...tops][0]) ? 1 : 0;
}

interface Placed<T> {
  file: T;
  parts: string[];
  stem: string;
  group: string;
  firstFolder: string;
  folder: 'images' | 'masks' | '';
}

function place<T extends PathLike>(file: T, depth: number): Placed<T> {
  const parts = partsOf(file.path).slice(depth);
  const folders = parts.slice(0, -1);
  const roles = folders.map((f, i) => (isRoleFolder(f) ? i : -1)).filter((i) => i >= 0);
  let folder: Placed<T>['folder'] = '';
  if (roles.length) {
    const last = roles[roles.length - 1];
    folder = MASK_FOLDERS.has(normal(folders[last])) ? 'masks' : 'images';
    folders.splice(last, 1);
  }
  return { file, parts, stem: stemOf(file.path), group: folders.join('\u0000'), firstFolder: folders[0] ?? '', folder };
}

interface Owner {
  stem: string;
  reader: string;
}

/** Every reading of a mask's stem as (image stem, reader), the longest image stem first. */
function owners(stem: string, inMasksFolder: boolean): Owner[] {
  const out: Owner[] = inMasksFolder ? [{ stem, reader: '' }] : [];
  const suffix = MASK_SUFFIX.exec(stem);
  if (suffix) out.push({ stem: suffix[1], reader: '' });
  for (let cut = stem.length - 1; cut >= 0; cut--) {
    if (stem[cut] !== '_') continue;
    const reader = stem.slice(cut + 1);
    if (reader && !/^\d+$/.test(reader) && !MASK_SUFFIX.test(`x_${reader}`)) out.push({ stem: stem.slice(0, cut), reader });
  }
  return out.sort((a, b) => b.stem.length - a.stem.length); // stable: "_mask" before a reader
}

function isMaskByName<T>(p: Placed<T>, images: Map<string, unknown>): boolean {
  if (p.folder === 'masks' || MASK_SUFFIX.test(p.stem)) return true;
  if (p.folder === 'images') return false; // beside images only the "_mask" suffix makes a mask
  return owners(p.stem, false).some((o) => o.reader && images.has(o.stem));
}

const maskOf = <T,>(image: PairedImage<T>, reader: string): PairedMask<T> => {
  let mask = image.masks.find((m) => m.reader === reader);
  if (!mask) image.masks.push((mask = { reader, files: [] }));
  return mask;
};

const partNumber = (stem: string) => Number(MASK_SUFFIX.exec(stem)?.[2] ?? 0);

/** Pair by folders and names (this module's rules); images keep the order they were picked in. */
export function pairByName<T extends PathLike>(files: readonly T[], depth = wrapperDepth(files.map((f) => f.path))): Pairing<T> {
  const placed = files.map((f) => place(f, depth));
  const groups = new Map<string, Map<string, PairedImage<T>>>();
  const imageOf = new Map<T, PairedImage<T>>();
  const masks: Placed<T>[] = [];
  // Shortest stems first, so an image is known before the files named after it.
  for (const p of [...placed].sort((a, b) => a.stem.length - b.stem.length)) {
    if (!groups.has(p.group)) groups.set(p.group, new Map());
    const inGroup = groups.get(p.group)!;
    if (isMaskByName(p, inGroup)) {
      masks.push(p);
      continue;
    }
    const image: PairedImage<T> = { file: p.file, label: p.firstFolder, masks: [], patientId: '', split: '' };
    if (!inGroup.has(p.stem)) inGroup.set(p.stem, image);
    imageOf.set(p.file, image);
  }
  const images = files.filter((f) => imageOf.has(f)).map((f) => imageOf.get(f)!);
  const anywhere = uniqueStems(images);
  const pairing: Pairing<T> = { images, orphans: [], skipped: [], problems: [], manifest: null };
  const byPart = (a: Placed<T>, b: Placed<T>) => partNumber(a.stem) - partNumber(b.stem) || (a.file.path < b.file.path ? -1 : a.file.path > b.file.path ? 1 : 0);
  for (const p of masks.sort(byPart)) {
    const match = matchMask(p, groups.get(p.group)) ?? matchMask(p, anywhere);
    if (!match) {
      pairing.orphans.push({ file: p.file, reason: orphanReason(p, images) });
      continue;
    }
    maskOf(match[0], match[1]).files.push(p.file);
  }
  return pairing;
}

function uniqueStems<T extends PathLike>(images: PairedImage<T>[]): Map<string, PairedImage<T>> {
  const seen = new Map<string, PairedImage<T>[]>();
  for (const image of images) {
    const stem = stemOf(image.file.path);
    seen.set(stem, [...(seen.get(stem) ?? []), image]);
  }
  return new Map([...seen].filter(([, found]) => found.length === 1).map(([stem, found]) => [stem, found[0]]));
}

function matchMask<T>(p: Placed<T>, images: Map<string, PairedImage<T>> | undefined): [PairedImage<T>, string] | null {
  if (!images) return null;
  for (const owner of owners(p.stem, p.folder === 'masks')) {
    const image = images.get(owner.stem);
    if (image) return [image, owner.reader];
  }
  return null;
}

/** Spelling differences people make by hand: case, spaces, hyphens and underscores. */
const loose = (stem: string) => stem.toLowerCase().replace(/[\s_-]+/g, '');

function orphanReason<T extends PathLike>(p: Placed<T>, images: PairedImage<T>[]): string {
  const expected = MASK_SUFFIX.exec(p.stem)?.[1] ?? p.stem;
  const name = baseName(p.file.path);
  const near = images.find((image) => image.masks.length === 0 && loose(stemOf(image.file.path)) === loose(expected));
  if (near) {
    const stem = stemOf(near.file.path);
    return `${name} looks like the mask of ${baseName(near.file.path)}, but the names differ: rename it ${stem}_mask.png.`;
  }
  return `${name} is a mask, but there is no image named “${expected}” (with any extension) beside it or in an images folder. Add that image, or rename the mask after its image (<image name>_mask.png); otherwise it is left out.`;
}

/** What to do about an image that has no mask, in words. */
export function missingMaskAdvice(path: string): string {
  const stem = stemOf(path);
  return `${baseName(path)} has no mask: add ${stem}_mask.png beside it, or ${stem}.png in a masks folder.`;
}

// --- Manifest ------------------------------------------------------------------------------------

const COLUMNS: Record<string, string[]> = {
  image: ['image', 'filename', 'file', 'image_file', 'path'],
  mask: ['mask', 'mask_file', 'segmentation'],
  reader: ['reader', 'observer', 'annotator', 'rater'],
  split: ['split', 'set', 'subset'],
  patient_id: ['patient_id', 'patient'],
  label: ['label', 'class'],
};
const SPLITS: Record<string, string> = {
  train: 'train', training: 'train', val: 'val', valid: 'val', validation: 'val', test: 'test', testing: 'test',
};

export type ManifestLines = [number, Record<string, string>][];

/** Split CSV text into rows of cells (quotes, doubled quotes, CR/LF/CRLF line ends), with each row's line number. */
export function csvRows(text: string, delimiter: string): [number, string[]][] {
  const rows: [number, string[]][] = [];
  let row: string[] = [];
  let cell = '';
  let quoted = false;
  let line = 1;
  let start = 1;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') { cell += '"'; i++; }
      else if (c === '"') quoted = false;
      else { if (c === '\n') line++; cell += c; }
    } else if (c === '"') quoted = true;
    else if (c === delimiter) { row.push(cell); cell = ''; }
    else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i++;
      row.push(cell);
      rows.push([start, row]);
      row = [];
      cell = '';
      start = ++line;
    } else cell += c;
  }
  if (cell || row.length) rows.push([start, [...row, cell]]);
  return rows;
}

/** A manifest's lines as [line number, {column: value}]; throws an Error in words when it cannot be used at all. */
export function readManifest(name: string, text: string): ManifestLines {
  const clean = text.replace(/^\uFEFF/, '');
  const first = clean.split(/\r\n|\r|\n/).find((l) => l.trim()) ?? '';
  const counts = [',', ';', '\t'].map((d) => [d, first.split(d).length - 1] as const);
  const delimiter = counts.some(([, n]) => n) ? counts.reduce((a, b) => (b[1] > a[1] ? b : a))[0] : ',';
  const aliases = new Map(Object.entries(COLUMNS).flatMap(([column, names]) => names.map((n) => [n, column] as const)));
  let columns: Map<number, string> | null = null;
  const lines: ManifestLines = [];
  for (const [line, row] of csvRows(clean, delimiter)) {
    if (!row.some((cell) => cell.trim())) continue;
    if (!columns) {
      columns = new Map(row.flatMap((cell, i) => (aliases.has(normal(cell)) ? [[i, aliases.get(normal(cell))!] as const] : [])));
      if (![...columns.values()].includes('image')) {
        throw new Error(`${name}: its first line must name the columns (${Object.keys(COLUMNS).join(', ')}); it has no image column.`);
      }
      continue;
    }
    lines.push([line, Object.fromEntries([...columns].filter(([i]) => i < row.length).map(([i, column]) => [column, row[i].trim()]))]);
  }
  if (!columns) throw new Error(`${name}: the list is empty.`);
  return lines;
}

class LineProblem extends Error {}

/** Pair as a manifest's lines say; images keep the order they were picked in. */
export function pairByManifest<T extends PathLike>(
  files: readonly T[],
  manifestName: string,
  lines: ManifestLines,
  depth = wrapperDepth(files.map((f) => f.path)),
): Pairing<T> {
  const pathOf = (f: T) => partsOf(f.path).slice(depth).join('/');
  const byPath = new Map<string, T>([...files.map((f) => [f.path, f] as const), ...files.map((f) => [pathOf(f), f] as const)]);
  const byBase = new Map<string, T[]>();
  for (const f of files) byBase.set(baseName(f.path), [...(byBase.get(baseName(f.path)) ?? []), f]);
  const find = (raw: string): T => {
    let ref = raw.replace(/\\/g, '/').replace(/^\/+|\/+$/g, '');
    while (ref.startsWith('./')) ref = ref.slice(2);
    const exact = byPath.get(ref);
    if (exact) return exact;
    const found = byBase.get(ref) ?? [];
    if (found.length > 1) throw new LineProblem(`${ref} matches several files (${found.slice(0, 3).map(pathOf).join(', ')}); write its folder too.`);
    if (!found.length) throw new LineProblem(`${ref} is not among the files you picked; check its name and folder.`);
    return found[0];
  };
  const images = new Map<T, PairedImage<T>>();
  const imageLines = new Map<T, number>();
  const maskLines = new Map<T, number>();
  const pairing: Pairing<T> = { images: [], orphans: [], skipped: [], problems: [], manifest: manifestName };
  const useLine = (line: number, values: Record<string, string>) => {
    if (!values.image) throw new LineProblem('it names no image.');
    const file = find(values.image);
    if (maskLines.has(file)) throw new LineProblem(`${pathOf(file)} is a mask on line ${maskLines.get(file)}; it cannot be an image too.`);
    const split = values.split ?? '';
    if (split && !SPLITS[split.toLowerCase()]) throw new LineProblem(`the split must be train, val or test (or empty), not “${split}”.`);
    const image = images.get(file) ?? { file, label: '', masks: [], patientId: '', split: '' };
    if (!imageLines.has(file)) imageLines.set(file, line);
    const wanted: ['patientId' | 'split' | 'label', string, string][] = [
      ['patientId', 'patient_id', values.patient_id ?? ''],
      ['split', 'split', SPLITS[split.toLowerCase()] ?? ''],
      ['label', 'label', values.label ?? ''],
    ];
    for (const [key, column, value] of wanted) {
      if (value && image[key] && value !== image[key]) {
        throw new LineProblem(`it gives ${pathOf(file)} the ${column} “${value}”, but line ${imageLines.get(file)} gave “${image[key]}”.`);
      }
    }
    for (const [key, , value] of wanted) image[key] = value || image[key];
    images.set(file, image);
    if (!values.mask) return;
    const mask = find(values.mask);
    if (imageLines.has(mask)) throw new LineProblem(`${pathOf(mask)} is an image on line ${imageLines.get(mask)}; it cannot be a mask too.`);
    if (maskLines.has(mask)) throw new LineProblem(`the mask ${pathOf(mask)} is already used on line ${maskLines.get(mask)}.`);
    maskLines.set(mask, line);
    maskOf(image, values.reader ?? '').files.push(mask);
  };
  for (const [line, values] of lines) {
    try {
      useLine(line, values);
    } catch (err) {
      if (!(err instanceof LineProblem)) throw err;
      pairing.problems.push(`${manifestName}, line ${line}: ${err.message}`);
    }
  }
  for (const f of files) {
    const image = images.get(f);
    if (image) {
      image.label ||= place(f, depth).firstFolder;
      pairing.images.push(image);
    } else if (!maskLines.has(f)) {
      pairing.skipped.push({ file: f, reason: `${baseName(f.path)} is not named on any usable line of ${manifestName}: add a line for it, or leave it out.` });
    }
  }
  return pairing;
}

// --- From picked files to a pairing ----------------------------------------------------------------

/** The picked files sorted for pairing: images and masks, the CSV lists at the top, and the rest (left out). */
export function sortPicked<T extends PathLike>(files: readonly T[]): { usable: T[]; manifests: T[]; skipped: LeftOut<T>[]; depth: number } {
  const depth = wrapperDepth(files.map((f) => f.path));
  const usable: T[] = [];
  const manifests: T[] = [];
  const skipped: LeftOut<T>[] = [];
  for (const f of files) {
    const ext = extensionOf(f.path);
    if (ext === 'csv' && partsOf(f.path).length - depth === 1) manifests.push(f);
    else if (IMAGE_EXTENSIONS.has(ext)) usable.push(f);
    else skipped.push({ file: f, reason: `${baseName(f.path)} is not an image (PNG, JPEG, TIFF or DICOM), so it is left out.` });
  }
  return { usable, manifests, skipped, depth };
}

/**
 * Pair picked files: by the CSV list at the top when there is one (`readText` reads it), else by
 * names. Never throws: a list that cannot be used is reported in `problems`, and nothing is paired.
 */
export async function pairPicked<T extends PathLike>(files: readonly T[], readText: (file: T) => Promise<string>): Promise<Pairing<T>> {
  const { usable, manifests, skipped, depth } = sortPicked(files);
  if (manifests.length > 1) {
    const names = manifests.map((m) => baseName(m.path)).join(', ');
    return { images: [], orphans: [], skipped, problems: [`There are several CSV lists at the top (${names}): keep only the one that pairs images and masks.`], manifest: null };
  }
  if (manifests.length === 1) {
    const name = baseName(manifests[0].path);
    try {
      const lines = readManifest(name, await readText(manifests[0]));
      const pairing = pairByManifest(usable, name, lines, depth);
      return { ...pairing, skipped: [...skipped, ...pairing.skipped] };
    } catch (err) {
      return { images: [], orphans: [], skipped, problems: [err instanceof Error ? err.message : String(err)], manifest: name };
    }
  }
  const pairing = pairByName(usable, depth);
  return { ...pairing, skipped };
}

/** The readers named in a pairing ("" for masks whose names name nobody), in the order first met. */
export function readersOf<T>(images: PairedImage<T>[]): string[] {
  return [...new Set(images.flatMap((image) => image.masks.map((m) => m.reader)))];
}
