/**
 * Import a zip: the browser sends it straight to site storage, the site agent unpacks it there (and,
 * for a segmentation dataset, pairs images with their masks), then checks each image as an upload.
 */
import { useState, type FormEvent } from 'react';
import { api } from '../api/client';
import type { ArchiveImport, ArchiveSlot, Dataset } from '../api/types';
import { bytes, plural, rejectionInWords } from '../lib/format';
import { isSegmentation } from '../lib/segmentation';
import { xhrSend } from '../lib/uploadQueue';
import { ErrorNotice, Notice, ProgressBar, useInterval } from './ui';

const SHOWN = 100;

/** What a zip for this dataset holds, in words (the layouts the site agent pairs: workers/pollen_agent/ingest/pairing.py). */
export function ZipLayouts({ dataset }: { dataset: Pick<Dataset, 'task'> }) {
  if (!isSegmentation(dataset)) {
    return (
      <p className="small">
        A zip with one folder per label, for example <code>normal/</code> and <code>pneumonia/</code>, each holding its images.
      </p>
    );
  }
  return (
    <div className="small" data-testid="zip-layouts">
      <p>A zip of images and their masks, laid out in one of these ways:</p>
      <ul>
        <li>an <code>images/</code> folder and a <code>masks/</code> folder, each mask named like its image (<code>images/case1.png</code> and <code>masks/case1.png</code> or <code>masks/case1_mask.png</code>);</li>
        <li>each mask beside its image, named <code>case1_mask.png</code>; a mask in several parts as <code>case1_mask_1.png</code>, <code>case1_mask_2.png</code> (they are joined into one);</li>
        <li>one mask per reader beside the image, named after the reader: <code>Image_01L.jpg</code> with <code>Image_01L_1stHO.png</code> and <code>Image_01L_2ndHO.png</code>;</li>
        <li>any layout, with a CSV list at the top of the zip whose columns are <code>image</code>, <code>mask</code> and, if you like, <code>reader</code>, <code>split</code> (train, val or test) and <code>patient_id</code>.</li>
      </ul>
      <p>
        Folders above these (for example <code>benign/</code> and <code>malignant/</code>) become labels. Masks are PNG files: black (0)
        is background, and the values 1, 2, … (or white, for a single kind) mark what to find. A mask without its image is
        turned away with its name, and the rest of the zip is kept.
      </p>
    </div>
  );
}

export function ZipImport({ dataset, onImported, send = xhrSend }: {
  dataset: Pick<Dataset, 'id' | 'task'>;
  /** Called once the site has unpacked the zip: its images are now being checked. */
  onImported: () => void;
  /** How the zip reaches site storage (its upload link); tests pass their own. */
  send?: (file: Blob, slot: ArchiveSlot, onProgress: (loaded: number) => void) => Promise<void>;
}) {
  const [file, setFile] = useState<File | null>(null);
  const [addLabels, setAddLabels] = useState(true);
  const [loaded, setLoaded] = useState(0);
  const [phase, setPhase] = useState<'idle' | 'sending' | 'unpacking' | 'done'>('idle');
  const [archive, setArchive] = useState<ArchiveImport | null>(null);
  const [error, setError] = useState<unknown>(null);

  const follow = async () => {
    if (!archive) return;
    try {
      const now = await api.get<ArchiveImport>(`/datasets/${dataset.id}/archives/${archive.id}/`);
      setArchive(now);
      if (now.status === 'done' || now.status === 'failed') {
        setPhase('done');
        if (now.status === 'done') onImported();
      }
    } catch (err) {
      setError(err);
    }
  };
  useInterval(() => void follow(), 2000, phase === 'unpacking');

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    if (!file) return;
    setError(null);
    setArchive(null);
    setLoaded(0);
    setPhase('sending');
    try {
      const slot = await api.post<ArchiveSlot>(`/datasets/${dataset.id}/archives/`, { filename: file.name, size_bytes: file.size, add_labels: addLabels });
      await send(file, slot, setLoaded);
      setLoaded(file.size);
      setArchive(await api.post<ArchiveImport>(`/datasets/${dataset.id}/archives/${slot.archive_id}/import/`));
      setPhase('unpacking');
    } catch (err) {
      setError(err);
      setPhase('idle');
    }
  };

  const rejected = archive?.rejected ?? [];
  return (
    <details className="card" data-testid="zip-import">
      <summary>Import a zip file</summary>
      <form onSubmit={submit}>
        <ZipLayouts dataset={dataset} />
        <div className="field">
          <label htmlFor="zip-file">Zip file</label>
          <input id="zip-file" type="file" accept=".zip,application/zip" disabled={phase === 'sending' || phase === 'unpacking'}
            onChange={(e) => { setFile(e.target.files?.[0] ?? null); setPhase('idle'); setArchive(null); }} />
        </div>
        <label className="check">
          <input type="checkbox" checked={addLabels} onChange={(e) => setAddLabels(e.target.checked)} />
          Add labels from folder names that the dataset does not have yet
        </label>
        <div className="actions">
          <button type="submit" className="btn" disabled={!file || phase === 'sending' || phase === 'unpacking'}>
            {phase === 'sending' ? 'Sending…' : phase === 'unpacking' ? 'Unpacking at your site…' : 'Import the zip'}
          </button>
          {file && <span className="small muted">{bytes(file.size)}</span>}
        </div>
        {(phase === 'sending' || phase === 'unpacking') && file && (
          <>
            <ProgressBar value={phase === 'unpacking' ? 1 : loaded / (file.size || 1)} label="Upload of the zip" tone="busy" />
            <p className="small" role="status">{phase === 'sending' ? 'Sending the zip to your hospital’s storage…' : 'Your site is unpacking the zip…'}</p>
          </>
        )}
        <ErrorNotice error={error} />
        {phase === 'done' && archive?.status === 'failed' && (
          <div className="notice notice-error" role="alert">
            The zip could not be used: {archive.message || 'your site reported a problem.'} Nothing from it was added.
          </div>
        )}
        {phase === 'done' && archive?.status === 'done' && (
          <Notice kind="success">
            {plural(archive.image_count, 'image')} unpacked{isSegmentation(dataset) ? ' with their masks' : ''}. Your site is now checking them; they appear below.
          </Notice>
        )}
        {rejected.length > 0 && (
          <div className="notice notice-warning" data-testid="zip-rejected">
            <p>{plural(rejected.length, 'file')} in the zip could not be used; the rest were kept:</p>
            <ul className="pairing-list small">
              {rejected.slice(0, SHOWN).map((r, i) => <li key={`${r.filename}-${i}`}>{rejectionInWords(r.filename, r.reason)}</li>)}
            </ul>
            {rejected.length > SHOWN && <p className="small muted">…and {rejected.length - SHOWN} more.</p>}
          </div>
        )}
      </form>
    </details>
  );
}
