/** The upload queue: sends files straight to site storage a few at a time, tracking per-file progress. */

export type UploadState = 'waiting' | 'uploading' | 'done' | 'failed' | 'refused';

export interface UploadItem {
  key: string;
  name: string;
  size: number;
  label: string | null;
  loaded: number;
  state: UploadState;
  error?: string;
  imageId?: number | string;
}

export type SendFn = (item: UploadItem, onProgress: (loaded: number) => void) => Promise<void>;

export interface QueueSummary {
  total: number;
  done: number;
  failed: number;
  refused: number;
  uploading: number;
  waiting: number;
  bytesTotal: number;
  bytesLoaded: number;
  fraction: number;
}

export function summarize(items: readonly UploadItem[]): QueueSummary {
  const s: QueueSummary = { total: items.length, done: 0, failed: 0, refused: 0, uploading: 0, waiting: 0, bytesTotal: 0, bytesLoaded: 0, fraction: 0 };
  for (const item of items) {
    s[item.state] += 1;
    if (item.state === 'refused') continue; // the hub turned it away: it is not part of the upload
    s.bytesTotal += item.size;
    s.bytesLoaded += item.state === 'done' ? item.size : Math.min(item.loaded, item.size);
  }
  s.fraction = s.bytesTotal > 0 ? s.bytesLoaded / s.bytesTotal : s.total > 0 ? s.done / s.total : 0;
  return s;
}

/**
 * Run `send` over every waiting item, at most `concurrency` at a time. One file failing never stops
 * the others. `onChange` receives a fresh array after every change, ready for React state.
 */
export async function runQueue(
  initial: readonly UploadItem[],
  send: SendFn,
  onChange: (items: UploadItem[]) => void,
  concurrency = 3,
): Promise<UploadItem[]> {
  let items = initial.map((item) => ({ ...item }));
  const update = (key: string, patch: Partial<UploadItem>) => {
    items = items.map((item) => (item.key === key ? { ...item, ...patch } : item));
    onChange(items);
  };
  const pending = items.filter((item) => item.state === 'waiting' || item.state === 'failed').map((i) => i.key);
  let next = 0;
  const worker = async () => {
    while (next < pending.length) {
      const key = pending[next++];
      update(key, { state: 'uploading', loaded: 0, error: undefined });
      const item = items.find((i) => i.key === key)!;
      try {
        await send(item, (loaded) => update(key, { loaded }));
        update(key, { state: 'done', loaded: item.size });
      } catch (err) {
        update(key, { state: 'failed', error: err instanceof Error ? err.message : String(err) });
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, pending.length)) }, worker));
  return items;
}

/**
 * Pair each requested file with its upload slot. The hub answers slots and refusals each in request
 * order, naming files by their base name, so one walk through the request pairs them.
 */
export function matchSlots<S extends { filename: string }, R extends { filename: string; reason: string }>(
  requested: readonly { key: string; name: string }[],
  slots: readonly S[],
  refused: readonly R[],
): { slots: Map<string, S>; refused: Map<string, string> } {
  const out = { slots: new Map<string, S>(), refused: new Map<string, string>() };
  let s = 0;
  let r = 0;
  for (const item of requested) {
    const base = item.name.replace(/\\/g, '/').split('/').pop()!.trim();
    if (s < slots.length && slots[s].filename === base) out.slots.set(item.key, slots[s++]);
    else if (r < refused.length && (refused[r].filename === base || refused[r].filename === item.name)) out.refused.set(item.key, refused[r++].reason);
    else if (s < slots.length) out.slots.set(item.key, slots[s++]);
    else if (r < refused.length) out.refused.set(item.key, refused[r++].reason);
    else out.refused.set(item.key, 'The hub did not give this file an upload link. Try it again.');
  }
  return out;
}

/** Send one file with XMLHttpRequest, whose upload events give real progress (fetch has none). */
export function xhrSend(
  file: Blob,
  slot: { url: string; method: string; headers: Record<string, string> },
  onProgress: (loaded: number) => void,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open(slot.method || 'PUT', slot.url);
    for (const [name, value] of Object.entries(slot.headers ?? {})) xhr.setRequestHeader(name, value);
    xhr.upload.onprogress = (event) => onProgress(event.loaded);
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) resolve();
      else reject(new Error(storageErrorMessage(xhr.status)));
    };
    xhr.onerror = () => reject(new Error(storageErrorMessage(0)));
    xhr.ontimeout = () => reject(new Error(storageErrorMessage(0)));
    xhr.send(file);
  });
}

export function storageErrorMessage(status: number): string {
  if (status === 0) return 'Could not reach your site’s storage. Check the network and press “Retry failed files”.';
  if (status === 401 || status === 403) return 'Site storage refused the file: its upload link may have expired. Press “Retry failed files” to get a new link.';
  if (status === 413) return 'The file is too large for site storage. Remove it or ask your site administrator about size limits.';
  return `Site storage answered with an error (${status}). Press “Retry failed files”; if it keeps failing, tell your site administrator.`;
}
