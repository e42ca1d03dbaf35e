/**
 * Add images with their masks to a segmentation dataset: pick files or a folder, see how they pair
 * (and what does not) before anything is sent, then send each image and its masks straight to site
 * storage with their progress.
 */
import { useRef, useState } from 'react';
import type { Dataset, MaskSlot, SlotRequest, UploadSlot } from '../api/types';
import type { PickedFile } from '../lib/folders';
import { missingMaskAdvice, pairPicked, readersOf, type Pairing, type PairedImage } from '../lib/pairing';
import { readerName } from '../lib/segmentation';
import { xhrSend, type UploadItem } from '../lib/uploadQueue';
import { bytes, plural } from '../lib/format';
import { FilePicker, FolderLabels, PreviewActions, UploadProgress, useUploadRun } from './Uploader';
import { ErrorNotice, Loading } from './ui';

const SHOWN = 50;

interface Pair {
  image: File;
  masks: { reader: string; file: File }[];
  patientId: string;
}

/** The image's mask files in the order the slots request names them: reader by reader, parts in order. */
export const maskFiles = (image: PairedImage<PickedFile>) =>
  image.masks.flatMap((m) => m.files.map((f) => ({ reader: m.reader, file: f.file })));

/**
 * Which picked mask file each of the hub's mask slots is for: the same reader and file name, taken
 * in order (two parts of one mask may not share a name, but two readers' masks may).
 */
export function matchMaskSlots<F extends { name: string }>(masks: { reader: string; file: F }[], slots: MaskSlot[]): { file: F; slot: MaskSlot }[] {
  const free = [...masks];
  return slots.map((slot) => {
    const at = free.findIndex((m) => m.reader === slot.reader && m.file.name === slot.filename);
    if (at < 0) throw new Error(`The hub named a mask (${slot.filename}) that was not among the files picked for this image. Start the upload again.`);
    return { file: free.splice(at, 1)[0].file, slot };
  });
}

type Send = (file: Blob, slot: { url: string; method: string; headers: Record<string, string> }, onProgress: (loaded: number) => void) => Promise<void>;

/** Send an image, then each of its masks, reporting the bytes of all of them as one progress. */
async function sendPair(pair: Pair, slot: UploadSlot, onProgress: (loaded: number) => void, send: Send) {
  const masks = matchMaskSlots(pair.masks, slot.mask_slots ?? []);
  await send(pair.image, slot, onProgress);
  let sent = pair.image.size;
  for (const { file, slot: maskSlot } of masks) {
    const before = sent;
    await send(file, maskSlot, (loaded) => onProgress(before + loaded));
    sent += file.size;
  }
}

export function MaskUploader({ dataset, onIngestStarted, send = xhrSend }: {
  dataset: Dataset;
  onIngestStarted: (imageIds: (number | string)[]) => void;
  /** How a file reaches site storage (its upload link); tests pass their own. */
  send?: Send;
}) {
  const [pairing, setPairing] = useState<Pairing<PickedFile> | null>(null);
  const [pairingNow, setPairingNow] = useState(false);
  const [useFolders, setUseFolders] = useState(true);
  const pairs = useRef(new Map<string, Pair>());
  const run = useUploadRun({
    datasetId: dataset.id,
    onIngestStarted,
    request: (item): SlotRequest => {
      const pair = pairs.current.get(item.key)!;
      return {
        filename: pair.image.name,
        size_bytes: pair.image.size,
        ...(item.label ? { label: item.label } : {}),
        ...(pair.patientId ? { patient_id: pair.patientId } : {}),
        masks: pair.masks.map((m) => ({ filename: m.file.name, reader: m.reader, size_bytes: m.file.size })),
      };
    },
    send: (item, slot, onProgress) => sendPair(pairs.current.get(item.key)!, slot, onProgress, send),
  });

  const choose = async (list: PickedFile[]) => {
    run.reset();
    setPairing(null);
    if (!list.length) return;
    setPairingNow(true);
    setPairing(await pairPicked(list, (p) => p.file.text()));
    setPairingNow(false);
  };

  const withMask = pairing?.images.filter((i) => i.masks.length > 0) ?? [];
  const withoutMask = pairing?.images.filter((i) => i.masks.length === 0) ?? [];
  const toSend = dataset.masks_required ? withMask : pairing?.images ?? [];
  const readers = readersOf(withMask);
  const maskCount = withMask.reduce((n, i) => n + i.masks.reduce((m, mask) => m + mask.files.length, 0), 0);
  const totalBytes = toSend.reduce((sum, i) => sum + i.file.file.size + maskFiles(i).reduce((s, m) => s + m.file.size, 0), 0);
  const labelCounts = [...toSend.reduce((m, i) => m.set(i.label || null, (m.get(i.label || null) ?? 0) + 1), new Map<string | null, number>())]
    .map(([label, count]) => ({ label, count }))
    .sort((a, b) => (a.label ?? '').localeCompare(b.label ?? ''));
  const splitIgnored = toSend.some((i) => i.split);

  const start = () => {
    pairs.current.clear();
    const queue: UploadItem[] = toSend.map((image, i) => {
      const key = `${i}:${image.file.path}`;
      const masks = maskFiles(image);
      pairs.current.set(key, { image: image.file.file, masks, patientId: image.patientId });
      const size = image.file.file.size + masks.reduce((s, m) => s + m.file.size, 0);
      return { key, name: image.file.path, size, label: useFolders && image.label ? image.label : null, loaded: 0, state: 'waiting' };
    });
    void run.start(queue);
  };

  return (
    <section className="card" aria-labelledby="mask-upload-title">
      <h2 id="mask-upload-title">Add images with their masks</h2>
      <FilePicker busy={run.busy || pairingNow} onPicked={(list) => void choose(list)} what="images and masks">
        <p>
          <strong>Drop a folder of images and their masks here.</strong> Pollen pairs them by name before sending
          anything: <code>images/</code> and <code>masks/</code> folders with the same names, <code>name_mask.png</code> beside
          <code> name.png</code>, or one mask per reader such as <code>Image_01L_1stHO.png</code>.
        </p>
        <p className="small muted">
          Masks are PNG: black (0) is background, and {dataset.mask_classes.length > 1 ? 'the values 1, 2, … mark ' + dataset.mask_classes.join(', ') : `white (or 1) marks ${dataset.mask_classes[0] ?? 'what to find'}`}.
          Sub-folders above them (for example <code>benign/</code>) become labels. Everything goes straight to your hospital’s storage.
        </p>
      </FilePicker>

      {pairingNow && <Loading what="Pairing images with their masks" />}
      {pairing && run.phase === 'idle' && run.items.length === 0 && (
        <div className="upload-preview" data-testid="pairing-preview">
          {pairing.manifest && !pairing.problems.length && <p className="small">Paired by the list <code>{pairing.manifest}</code>.</p>}
          {pairing.problems.length > 0 && (
            <div className="notice notice-warning" role="alert" data-testid="pairing-problems">
              <p>{pairing.images.length ? 'Some lines of the list could not be used; fix them and pick the files again:' : 'The files could not be paired:'}</p>
              <ul className="pairing-list">{pairing.problems.slice(0, SHOWN).map((p) => <li key={p}>{p}</li>)}</ul>
            </div>
          )}
          <p data-testid="pairing-summary">
            {plural(withMask.length, 'image')} with {plural(maskCount, 'mask file')}
            {readers.some(Boolean) ? ` from ${plural(readers.length, 'reader')} (${readers.map(readerName).join(', ')})` : ''}.
          </p>
          {withoutMask.length > 0 && (
            <div className={`notice ${dataset.masks_required ? 'notice-warning' : 'notice-info'}`} data-testid="unpaired-images">
              <p>
                {plural(withoutMask.length, 'image')} {withoutMask.length === 1 ? 'has' : 'have'} no mask.{' '}
                {dataset.masks_required
                  ? 'This dataset needs a mask with every image, so they will not be sent. Add their masks (or change this under Mask settings), then pick the files again:'
                  : 'They will be added without a mask; a model learns only from images with a mask. To pair them, rename or add their masks:'}
              </p>
              <ul className="pairing-list small">
                {withoutMask.slice(0, SHOWN).map((i) => <li key={i.file.path}>{missingMaskAdvice(i.file.path)}</li>)}
              </ul>
              {withoutMask.length > SHOWN && <p className="small muted">…and {withoutMask.length - SHOWN} more.</p>}
            </div>
          )}
          {pairing.orphans.length > 0 && (
            <div className="notice notice-warning" data-testid="orphan-masks">
              <p>{plural(pairing.orphans.length, 'mask')} {pairing.orphans.length === 1 ? 'matches' : 'match'} no image and will not be sent:</p>
              <ul className="pairing-list small">{pairing.orphans.slice(0, SHOWN).map((o) => <li key={o.file.path}>{o.reason}</li>)}</ul>
              {pairing.orphans.length > SHOWN && <p className="small muted">…and {pairing.orphans.length - SHOWN} more.</p>}
            </div>
          )}
          {pairing.skipped.length > 0 && (
            <details className="small" data-testid="skipped-files">
              <summary>{plural(pairing.skipped.length, 'file')} left out</summary>
              <ul className="pairing-list">{pairing.skipped.slice(0, SHOWN).map((s) => <li key={s.file.path}>{s.reason}</li>)}</ul>
            </details>
          )}
          {splitIgnored && (
            <p className="small muted">
              The list’s split column is used only when the files come as a zip (below); sent this way, your site draws the
              sets by patient.
            </p>
          )}
          <FolderLabels counts={labelCounts} use={useFolders} onUse={setUseFolders} />
          <PreviewActions label={`Upload ${plural(toSend.length, 'image')} with ${toSend.length === 1 ? 'its' : 'their'} masks`} onStart={start}
            onClear={() => setPairing(null)} disabled={!toSend.length} note={<span className="small muted">{bytes(totalBytes)}</span>} />
        </div>
      )}

      <ErrorNotice error={run.error} />
      <UploadProgress items={run.items} phase={run.phase} onRetry={run.retryFailed}
        sentText={(done) => `${plural(done, 'image')} and ${done === 1 ? 'its masks' : 'their masks'} sent. Your site is now checking them; they appear below with their outlines.`} />
    </section>
  );
}
