/** A segmentation dataset's images with their masks outlined, one reader at a time, and the masks turned away with why. */
import { useId, useState } from 'react';
import { api, type Page } from '../api/client';
import type { Dataset, DatasetImage, Mask, Thumbnails } from '../api/types';
import { percent, plural } from '../lib/format';
import { dice, readerName } from '../lib/segmentation';
import { ErrorNotice, Loading, Pager, useApi } from './ui';

const PAGE_SIZE = 24;
const NO_LINKS: Thumbnails = { urls: {}, mask_urls: {} };

/** What one mask holds, in words: "Empty: nothing outlined", "1 lesion, 3.2 % of the image". */
export function maskInWords(mask: Pick<Mask, 'stats'>): string {
  const s = mask.stats ?? {};
  if (s.empty) return 'Empty: nothing outlined (a normal image)';
  const parts = [s.components != null ? plural(s.components, 'outlined area') : null, s.foreground_fraction != null ? `${percent(s.foreground_fraction, s.foreground_fraction < 0.1 ? 1 : 0)} of the image` : null];
  return parts.filter(Boolean).join(', ');
}

/** The mask to show for an image: the chosen reader's, else none (the image alone). */
export function maskFor(image: Pick<DatasetImage, 'masks'>, reader: string): Mask | null {
  return image.masks?.find((m) => m.reader === reader) ?? null;
}

/** The reader shown first: the dataset's reference reader when it drew masks, else the first. */
export function firstReader(readers: string[], reference: string): string {
  return readers.includes(reference) ? reference : readers[0] ?? '';
}

export function MaskGallery({ dataset, readers, tick }: {
  dataset: Dataset;
  /** Every reader who drew masks in this dataset (from its statistics). */
  readers: string[];
  tick: number;
}) {
  const id = useId();
  const [page, setPage] = useState(1);
  const [status, setStatus] = useState('');
  const [chosen, setChosen] = useState<string | null>(null);
  const [outlines, setOutlines] = useState(true);
  const images = useApi(
    (signal) => api.get<Page<DatasetImage>>(`/datasets/${dataset.id}/images/`, { status, page, page_size: PAGE_SIZE }, signal),
    [dataset.id, status, page, tick],
  );
  const rows = images.data?.results ?? [];
  const ids = rows.filter((r) => r.status === 'accepted').map((r) => r.id);
  // Links are short-lived: ask for them whenever the page of images changes.
  const links = useApi(
    () => (ids.length ? api.post<Thumbnails>(`/datasets/${dataset.id}/thumbnails/`, { image_ids: ids }).catch(() => NO_LINKS) : Promise.resolve(NO_LINKS)),
    [dataset.id, ids.join(',')],
  );
  const known = [...new Set([...readers, ...rows.flatMap((r) => (r.masks ?? []).map((m) => m.reader))])];
  const reader = chosen !== null && known.includes(chosen) ? chosen : firstReader(known, dataset.reference_reader);

  return (
    <section className="card" aria-labelledby={`${id}-title`} data-testid="mask-gallery">
      <h2 id={`${id}-title`}>Images and their masks</h2>
      <div className="filters">
        <div className="field">
          <label htmlFor={`${id}-status`}>Status</label>
          <select id={`${id}-status`} value={status} onChange={(e) => { setStatus(e.target.value); setPage(1); }}>
            <option value="">All</option>
            <option value="accepted">Ready</option>
            <option value="pending">Being checked</option>
            <option value="rejected">Turned away</option>
          </select>
        </div>
        <label className="check">
          <input type="checkbox" checked={outlines} onChange={(e) => setOutlines(e.target.checked)} />
          Show the masks over the images
        </label>
      </div>
      {known.length > 1 && (
        <fieldset className="reader-switch" data-testid="reader-switch">
          <legend>Masks drawn by</legend>
          {known.map((r) => (
            <label key={r} className="check">
              <input type="radio" name={`${id}-reader`} value={r} checked={r === reader} onChange={() => setChosen(r)} />
              {readerName(r)}{r === dataset.reference_reader && dataset.reference_reader ? ' (models learn from these)' : ''}
            </label>
          ))}
        </fieldset>
      )}
      <ErrorNotice error={images.error} onRetry={images.reload} />
      {images.loading && !images.data && <Loading what="Loading images" />}
      {images.data && rows.length === 0 && <p className="muted">No images here yet. Add images with their masks above.</p>}
      {rows.length > 0 && (
        <ul className="gallery mask-gallery">
          {rows.map((image) => (
            <MaskFigure key={image.id} image={image} reader={reader} outlines={outlines} links={links.data ?? NO_LINKS} />
          ))}
        </ul>
      )}
      {images.data && <Pager page={page} count={images.data.count} pageSize={PAGE_SIZE} onPage={setPage} />}
    </section>
  );
}

function MaskFigure({ image, reader, outlines, links }: { image: DatasetImage; reader: string; outlines: boolean; links: Thumbnails }) {
  const mask = maskFor(image, reader);
  const overlay = outlines && mask ? links.mask_urls[String(mask.id)] : undefined;
  const src = overlay ?? links.urls[String(image.id)];
  const turnedAway = (image.masks ?? []).filter((m) => m.status === 'rejected');
  const who = reader ? ` by ${reader}` : '';
  return (
    <li className="gallery-item" data-testid="mask-figure">
      <figure>
        {src ? (
          <img src={src} loading="lazy" width={160} height={160}
            alt={overlay ? `${image.filename} with its mask${who} outlined` : `${image.filename}${mask ? '' : ', no mask'}`} />
        ) : (
          <div className="heatmap-missing">{image.status === 'accepted' ? 'Picture not available' : image.status === 'rejected' ? 'Turned away' : 'Being checked'}</div>
        )}
        <figcaption className="small">
          <span className="file-name mask-note" title={image.filename}>{image.filename}</span>
          {image.status === 'rejected' && <span className="mask-note warning-text">Image turned away: {image.reject_reason}</span>}
          {image.status === 'accepted' && !mask && <span className="mask-note muted">No mask{who}</span>}
          {mask?.status === 'accepted' && <span className="mask-note">{maskInWords(mask)}</span>}
          {mask?.status === 'pending' && <span className="mask-note muted">Mask being checked</span>}
          {mask?.agreement_dice != null && (
            <span className="mask-note" title="Dice: how much two outlines overlap; 1 is perfect">Agrees with the reference reader: Dice {dice(mask.agreement_dice)}</span>
          )}
          {turnedAway.map((m) => (
            <span key={m.id} className="mask-note warning-text" data-testid="mask-rejected">
              Mask{m.reader ? ` by ${m.reader}` : ''} ({m.filenames.join(', ')}) turned away: {m.reject_reason}
            </span>
          ))}
        </figcaption>
      </figure>
    </li>
  );
}
