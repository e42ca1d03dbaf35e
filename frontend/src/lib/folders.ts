/** Files dropped or chosen by the user, with the label taken from their folder when there is one. */
export interface PickedFile {
  file: File;
  /** Path inside the dropped folder, e.g. "xrays/pneumonia/a.png"; just the file name for loose files. */
  path: string;
  /** The folder directly containing the file, when it came from a folder. */
  folderLabel: string | null;
}

const IGNORED = /^(\.|__MACOSX$|Thumbs\.db$|desktop\.ini$)/i;

/** The label a file gets from its folder: the name of the folder that directly contains it. */
export function labelFromPath(path: string): string | null {
  const parts = path.split('/').filter(Boolean);
  if (parts.length < 2) return null;
  return parts[parts.length - 2];
}

export function isIgnoredPath(path: string): boolean {
  return path.split('/').some((part) => IGNORED.test(part));
}

export function pickedFromFileList(files: Iterable<File>): PickedFile[] {
  const out: PickedFile[] = [];
  for (const file of files) {
    const path = (file as File & { webkitRelativePath?: string }).webkitRelativePath || file.name;
    if (isIgnoredPath(path)) continue;
    out.push({ file, path, folderLabel: labelFromPath(path) });
  }
  return out;
}

/** Walk dropped items, descending into folders (Chrome, Edge, Safari and Firefox support entries). */
export async function pickedFromDataTransfer(dt: DataTransfer): Promise<PickedFile[]> {
  const entries: FileSystemEntry[] = [];
  const loose: File[] = [];
  for (const item of Array.from(dt.items ?? [])) {
    if (item.kind !== 'file') continue;
    const entry = item.webkitGetAsEntry?.();
    if (entry) entries.push(entry);
    else {
      const file = item.getAsFile();
      if (file) loose.push(file);
    }
  }
  if (entries.length === 0) return pickedFromFileList(loose.length ? loose : Array.from(dt.files ?? []));
  const out: PickedFile[] = [];
  for (const entry of entries) await walk(entry, '', out);
  return out.concat(pickedFromFileList(loose));
}

async function walk(entry: FileSystemEntry, prefix: string, out: PickedFile[]): Promise<void> {
  const path = prefix ? `${prefix}/${entry.name}` : entry.name;
  if (isIgnoredPath(path)) return;
  if (entry.isFile) {
    const file = await new Promise<File>((resolve, reject) => (entry as FileSystemFileEntry).file(resolve, reject));
    out.push({ file, path, folderLabel: labelFromPath(path) });
    return;
  }
  const reader = (entry as FileSystemDirectoryEntry).createReader();
  // readEntries returns at most ~100 entries per call; keep reading until it returns none.
  for (;;) {
    const batch = await new Promise<FileSystemEntry[]>((resolve, reject) => reader.readEntries(resolve, reject));
    if (batch.length === 0) break;
    for (const child of batch) await walk(child, path, out);
  }
}

/** Count files per folder label, for the preview shown before upload. */
export function labelCounts(files: PickedFile[]): { label: string | null; count: number }[] {
  const counts = new Map<string | null, number>();
  for (const f of files) counts.set(f.folderLabel, (counts.get(f.folderLabel) ?? 0) + 1);
  return [...counts.entries()]
    .map(([label, count]) => ({ label, count }))
    .sort((a, b) => (a.label ?? '').localeCompare(b.label ?? ''));
}
