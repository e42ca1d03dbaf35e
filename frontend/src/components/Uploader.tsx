import { useRef, useState, type DragEvent, type ReactNode } from 'react';
import { api } from '../api/client';
import type { RefusedFile, SlotRequest, UploadSlot } from '../api/types';
import { labelCounts, pickedFromDataTransfer, pickedFromFileList, type PickedFile } from '../lib/folders';
import { matchSlots, runQueue, summarize, xhrSend, type UploadItem } from '../lib/uploadQueue';
import { bytes, plural } from '../lib/format';
import { ErrorNotice, Notice, ProgressBar } from './ui';

const SLOT_BATCH = 100;
const COMPLETE_BATCH = 500;
const ACCEPT = '.png,.jpg,.jpeg,.tif,.tiff,.dcm,image/png,image/jpeg,image/tiff,application/dicom';

export type UploadPhase = 'idle' | 'preparing' | 'uploading' | 'finishing' | 'done';

/**
 * One upload run: ask the hub for upload links in batches, send each item's bytes straight to site
 * storage (a few at a time, each with its progress), then tell the hub which items arrived so the
 * site agent checks them. `request` names an item in the slots request; `send` sends its bytes
 * through the slot the hub answered (an image, or an image and its masks).
 */
export function useUploadRun({ datasetId, ensureDataset, onIngestStarted, request, send }: {
  datasetId: string | number | null;
  ensureDataset?: () => Promise<string | number>;
  onIngestStarted: (imageIds: (number | string)[]) => void;
  request: (item: UploadItem) => SlotRequest;
  send: (item: UploadItem, slot: UploadSlot, onProgress: (loaded: number) => void) => Promise<void>;
}) {
  const [items, setItems] = useState<UploadItem[]>([]);
  const [phase, setPhase] = useState<UploadPhase>('idle');
  const [error, setError] = useState<unknown>(null);
  const slots = useRef(new Map<string, UploadSlot>());
  const completed = useRef(new Set<number | string>());
  const target = useRef<string | number | null>(datasetId);
  target.current = datasetId ?? target.current;

  const reset = () => {
    setError(null);
    setItems([]);
    setPhase('idle');
  };

  const start = async (queue: UploadItem[]) => {
    setError(null);
    setPhase('preparing');
    slots.current.clear();
    completed.current.clear();
    setItems(queue);
    try {
      target.current ??= ensureDataset ? await ensureDataset() : null;
      const datasetId = target.current;
      if (datasetId == null) throw new Error('There is no dataset to add these images to. Reload the page and try again.');
      for (let i = 0; i < queue.length; i += SLOT_BATCH) {
        const batch = queue.slice(i, i + SLOT_BATCH);
        const answer = await api.post<{ slots: UploadSlot[]; refused?: RefusedFile[] }>(`/datasets/${datasetId}/upload-slots/`, {
          files: batch.map(request),
          add_labels: batch.some((item) => item.label),
        });
        const matched = matchSlots(batch, answer.slots, answer.refused ?? []);
        for (const item of batch) {
          const slot = matched.slots.get(item.key);
          if (slot) {
            slots.current.set(item.key, slot);
            item.imageId = slot.image_id;
          } else {
            item.state = 'refused';
            item.error = matched.refused.get(item.key) ?? 'The hub turned this file away.';
          }
        }
        setItems([...queue]);
      }
    } catch (err) {
      // Nothing was sent: show the chosen files again so "Upload" can simply be pressed again.
      setError(err);
      setItems([]);
      setPhase('idle');
      return;
    }
    await upload(queue);
  };

  const upload = async (queue: UploadItem[]) => {
    setPhase('uploading');
    const final = await runQueue(
      queue,
      (item, onProgress) => {
        const slot = slots.current.get(item.key);
        if (!slot) return Promise.reject(new Error('No upload link for this file. Start the upload again.'));
        return send(item, slot, onProgress);
      },
      setItems,
      3,
    );
    setPhase('finishing');
    const done = final
      .filter((item) => item.state === 'done' && item.imageId != null && !completed.current.has(item.imageId))
      .map((item) => item.imageId!);
    try {
      for (let i = 0; i < done.length; i += COMPLETE_BATCH) {
        const chunk = done.slice(i, i + COMPLETE_BATCH);
        await api.post(`/datasets/${target.current}/uploads/complete/`, { image_ids: chunk });
        chunk.forEach((id) => completed.current.add(id));
      }
      if (done.length) onIngestStarted(done);
    } catch (err) {
      setError(err);
    }
    setPhase('done');
  };

  return { items, phase, error, busy: phase === 'preparing' || phase === 'uploading' || phase === 'finishing', start, retryFailed: () => upload(items), reset };
}

/** Drop files or whole folders, or choose them; `children` says what to drop. */
export function FilePicker({ busy, onPicked, children, accept = ACCEPT, what = 'image files' }: {
  busy: boolean;
  onPicked: (files: PickedFile[]) => void;
  children: ReactNode;
  accept?: string;
  /** Named by the file chooser's label: "Choose image files". */
  what?: string;
}) {
  const [dragging, setDragging] = useState(false);
  const fileInput = useRef<HTMLInputElement>(null);
  const folderInput = useRef<HTMLInputElement>(null);
  const onDrop = async (event: DragEvent) => {
    event.preventDefault();
    setDragging(false);
    if (busy) return;
    onPicked(await pickedFromDataTransfer(event.dataTransfer));
  };
  return (
    <div
      className={`dropzone ${dragging ? 'dropzone-active' : ''}`}
      onDragOver={(e) => {
        e.preventDefault();
        setDragging(true);
      }}
      onDragLeave={() => setDragging(false)}
      onDrop={onDrop}
      data-testid="dropzone"
    >
      {children}
      <div className="actions">
        <button type="button" className="btn" onClick={() => fileInput.current?.click()} disabled={busy}>
          Choose files…
        </button>
        <button type="button" className="btn" onClick={() => folderInput.current?.click()} disabled={busy}>
          Choose a folder…
        </button>
      </div>
      <input ref={fileInput} type="file" multiple accept={accept} hidden aria-label={`Choose ${what}`}
        data-testid="file-input" onChange={(e) => e.target.files && onPicked(pickedFromFileList(e.target.files))} />
      <input ref={folderInput} type="file" multiple hidden aria-label="Choose a folder of images"
        data-testid="folder-input" {...({ webkitdirectory: '' } as Record<string, string>)}
        onChange={(e) => e.target.files && onPicked(pickedFromFileList(e.target.files))} />
    </div>
  );
}

/** The chips "label: count" of the labels folder names give, with the choice to use them. */
export function FolderLabels({ counts, use, onUse }: {
  counts: { label: string | null; count: number }[];
  use: boolean;
  onUse: (use: boolean) => void;
}) {
  if (!counts.some((c) => c.label)) return null;
  return (
    <>
      <label className="check">
        <input type="checkbox" checked={use} onChange={(e) => onUse(e.target.checked)} />
        Use folder names as labels
      </label>
      {use && (
        <ul className="chips" aria-label="Labels from folders">
          {counts.map((c) => (
            <li key={c.label ?? ''} className="chip">
              {c.label ?? 'no label'}: {c.count}
            </li>
          ))}
        </ul>
      )}
    </>
  );
}

/** Below a preview of the picked files: send them, or clear the choice. `note` sits between the two buttons. */
export function PreviewActions({ label, onStart, onClear, disabled = false, note }: {
  label: string;
  onStart: () => void;
  onClear: () => void;
  disabled?: boolean;
  note?: ReactNode;
}) {
  return (
    <div className="actions">
      <button type="button" className="btn btn-primary" onClick={onStart} disabled={disabled}>
        {label}
      </button>
      {note}
      <button type="button" className="btn" onClick={onClear}>
        Clear
      </button>
    </div>
  );
}

/** The files being sent: one progress bar for all, one per file, and what to do about failures. */
export function UploadProgress({ items, phase, onRetry, sentText }: {
  items: UploadItem[];
  phase: UploadPhase;
  onRetry: () => void;
  /** The success sentence, e.g. "20 files sent." */
  sentText: (done: number) => string;
}) {
  const summary = summarize(items);
  if (!items.length) return null;
  return (
    <div className="upload-queue" aria-live="polite">
      <div className="queue-summary">
        <ProgressBar value={summary.fraction} label="All files" tone={summary.failed ? 'bad' : undefined} />
        <p className="small">
          {phase === 'preparing' && 'Asking your site for upload links… '}
          {summary.done} of {summary.total} sent
          {summary.failed ? `, ${summary.failed} failed` : ''}
          {summary.refused ? `, ${summary.refused} not accepted` : ''}
          {phase === 'finishing' && ' · telling your site to check the images…'}
        </p>
      </div>
      {phase === 'done' && summary.refused > 0 && (
        <div className="notice notice-warning" role="alert">
          {plural(summary.refused, 'file')} could not be added; the reason is shown next to each. The rest were sent.
        </div>
      )}
      {phase === 'done' && summary.failed === 0 && summary.done > 0 && <Notice kind="success">{sentText(summary.done)}</Notice>}
      {phase === 'done' && summary.failed > 0 && (
        <div className="notice notice-warning" role="alert">
          {plural(summary.failed, 'file')} could not be sent. The others are fine.{' '}
          <button type="button" className="btn btn-small" onClick={onRetry}>
            Retry failed files
          </button>
        </div>
      )}
      <ol className="file-list">
        {items.slice(0, 200).map((item) => (
          <li key={item.key} className={`file-row file-${item.state}`}>
            <span className="file-name" title={item.name}>
              {item.name}
            </span>
            {item.label && <span className="chip">{item.label}</span>}
            <ProgressBar
              value={item.state === 'done' ? 1 : item.size ? item.loaded / item.size : 0}
              label={`Upload of ${item.name}`}
              tone={item.state === 'failed' || item.state === 'refused' ? 'bad' : item.state === 'done' ? 'ok' : 'busy'}
            />
            <span className="small file-state">
              {item.state === 'waiting' ? 'waiting' : item.state === 'uploading' ? 'sending' : item.state === 'done' ? 'sent' : item.state === 'refused' ? 'not accepted' : 'failed'}
            </span>
            {item.error && <span className="field-error file-error">{item.error}</span>}
          </li>
        ))}
      </ol>
      {items.length > 200 && <p className="small muted">…and {items.length - 200} more files.</p>}
    </div>
  );
}

/** Drop files or whole folders; they go straight to the site's storage, then the site agent checks them. */
export function Uploader({ datasetId, ensureDataset, onIngestStarted, title = 'Add images' }: {
  /** Null when the dataset is made only once images are sent: then `ensureDataset` makes (or finds) it. */
  datasetId: string | number | null;
  ensureDataset?: () => Promise<string | number>;
  /** Called with the ids of the images the site agent now checks. */
  onIngestStarted: (imageIds: (number | string)[]) => void;
  title?: string;
}) {
  const [picked, setPicked] = useState<PickedFile[]>([]);
  const [useFolders, setUseFolders] = useState(true);
  const files = useRef(new Map<string, File>());
  const run = useUploadRun({
    datasetId,
    ensureDataset,
    onIngestStarted,
    request: (item) => ({ filename: item.name.split('/').pop()!, size_bytes: item.size, ...(item.label ? { label: item.label } : {}) }),
    send: (item, slot, onProgress) => xhrSend(files.current.get(item.key)!, slot, onProgress),
  });

  const choose = (list: PickedFile[]) => {
    run.reset();
    setPicked(list);
  };

  const start = () => {
    files.current.clear();
    const queue: UploadItem[] = picked.map((p, i) => {
      const key = `${i}:${p.path}`;
      files.current.set(key, p.file);
      return { key, name: p.path, size: p.file.size, label: useFolders ? p.folderLabel : null, loaded: 0, state: 'waiting' };
    });
    void run.start(queue);
  };

  const totalBytes = picked.reduce((sum, p) => sum + p.file.size, 0);

  return (
    <section className="card" aria-labelledby="upload-title">
      <h2 id="upload-title">{title}</h2>
      <FilePicker busy={run.busy} onPicked={choose}>
        <p>
          <strong>Drop image files or whole folders here.</strong> A folder with one sub-folder per label (for example
          <code> normal/ </code> and <code> pneumonia/ </code>) labels every image for you.
        </p>
        <p className="small muted">PNG, JPEG, TIFF or DICOM. Images go straight to your hospital’s storage.</p>
      </FilePicker>

      {picked.length > 0 && run.phase === 'idle' && run.items.length === 0 && (
        <div className="upload-preview">
          <p>
            {plural(picked.length, 'file')} ({bytes(totalBytes)}) ready to send.
          </p>
          <FolderLabels counts={labelCounts(picked)} use={useFolders} onUse={setUseFolders} />
          <PreviewActions label={`Upload ${plural(picked.length, 'image')}`} onStart={start} onClear={() => setPicked([])} />
        </div>
      )}

      <ErrorNotice error={run.error} />
      <UploadProgress items={run.items} phase={run.phase} onRetry={run.retryFailed}
        sentText={(done) => `${plural(done, 'file')} sent. Your site is now checking them; they appear below as “ready” or “turned away”.`} />
    </section>
  );
}
