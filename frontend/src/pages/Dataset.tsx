import { useState, type FormEvent } from 'react';
import { api, ApiError, type Page } from '../api/client';
import type { Dataset, DatasetImage, DatasetStats, DeletionImpact, Membership, RefusedFile, UploadSlot } from '../api/types';
import { Link, navigate, useDocumentTitle } from '../router';
import { ErrorNotice, Loading, Notice, Pager, useApi, useInterval } from '../components/ui';
import { Uploader } from '../components/Uploader';
import { FindingPanel } from '../components/FindingChoice';
import { MaskUploader } from '../components/MaskUploader';
import { MaskGallery } from '../components/MaskGallery';
import { MaskSettings } from '../components/MaskSettings';
import { SegmentationStatsPanel } from '../components/SegmentationStats';
import { ZipImport } from '../components/ZipImport';
import { plural, rejectionInWords } from '../lib/format';
import { isSegmentation, maskClassesInWords } from '../lib/segmentation';
import { xhrSend } from '../lib/uploadQueue';
import { modalityName } from './Datasets';

const PAGE_SIZE = 50;
const SPLIT_NAMES: Record<string, string> = { train: 'Learning', val: 'Tuning', test: 'Final check' };
const STATUS_NAMES: Record<string, string> = {
  accepted: 'Ready',
  pending: 'Being checked',
  rejected: 'Turned away',
  expired: 'Upload not finished',
};

/** An image's status in the words the page uses; a slot still waiting for its file is not being checked. */
export const statusName = (image: Pick<DatasetImage, 'status' | 'upload_expires_at'>) =>
  image.status === 'pending' && image.upload_expires_at ? 'Waiting for the file' : STATUS_NAMES[image.status] ?? image.status;

/** The CSV download of a dataset's image list (cells a spreadsheet would run are quoted by the hub). */
export const exportUrl = (datasetId: number | string) => `/api/v1/datasets/${datasetId}/export/`;

export function DatasetPage({ site, params }: { site: Membership; params: Record<string, string> }) {
  const id = params.id;
  const ds = useApi((signal) => api.get<Dataset>(`/datasets/${id}/`, undefined, signal), [id]);
  const stats = useApi((signal) => api.get<DatasetStats>(`/datasets/${id}/stats/`, undefined, signal), [id]);
  const [imagesTick, setImagesTick] = useState(0);
  const [expectIngest, setExpectIngest] = useState(false);
  useDocumentTitle(ds.data?.name ?? 'Dataset');

  const pending = (ds.data?.pending_count ?? 0) > 0;
  const refreshAll = () => {
    ds.reload();
    stats.reload();
    setImagesTick((t) => t + 1);
  };
  // Poll while the site agent is still checking images.
  useInterval(
    () => {
      refreshAll();
      if (!pending) setExpectIngest(false);
    },
    3000,
    pending || expectIngest,
  );

  if (ds.error instanceof ApiError && ds.error.isNotFound) {
    return (
      <section data-testid="no-access">
        <h1>Dataset not found</h1>
        <p>
          This dataset does not exist, or it belongs to a site you are not a member of.{' '}
          <Link to={`/sites/${site.site.slug}/datasets`}>Back to the datasets of {site.site.name}</Link>.
        </p>
      </section>
    );
  }
  if (ds.error) return <ErrorNotice error={ds.error} onRetry={ds.reload} />;
  if (!ds.data) return <Loading what="Loading the dataset" />;
  const d = ds.data;
  const outlines = isSegmentation(d);
  const readers = (stats.data?.segmentation?.readers ?? []).map((r) => r.reader);
  const ingestStarted = () => { setExpectIngest(true); refreshAll(); };

  return (
    <section>
      <nav className="crumbs" aria-label="Breadcrumb">
        <Link to={`/sites/${site.site.slug}/datasets`}>Datasets</Link> <span aria-hidden="true">›</span> {d.name}
      </nav>
      <div className="page-head">
        <div>
          <h1>{d.name}</h1>
          {d.description && <p className="muted">{d.description}</p>}
          <p className="small muted">
            {d.modality ? `${modalityName(d.modality)} · ` : ''}
            {outlines ? `Masks mark ${maskClassesInWords(d.mask_classes)} · ` : ''}
            {plural(d.accepted_count ?? 0, 'image')} ready
            {d.pending_count ? ` · ${d.pending_count} being checked` : ''}
            {d.rejected_count ? ` · ${d.rejected_count} turned away` : ''}
            {d.uploading_count ? ` · ${d.uploading_count} waiting for their file` : ''}
            {d.unfinished_count ? ` · ${plural(d.unfinished_count, 'upload')} not finished` : ''}
          </p>
        </div>
        <div className="actions">
          <Link className="btn btn-primary" to={`/sites/${site.site.slug}/train?dataset=${d.id}`}>
            Train a model on this dataset
          </Link>
        </div>
      </div>
      {pending && (
        <Notice>
          Your site is checking {plural(d.pending_count, 'new image')}. This page updates by itself.
        </Notice>
      )}

      {outlines ? (
        <>
          <div className="grid-2">
            <MaskUploader dataset={d} onIngestStarted={ingestStarted} />
            <SegmentationStatsPanel stats={stats.data?.segmentation} referenceReader={d.reference_reader} error={stats.error} onRetry={stats.reload} />
          </div>
          <ZipImport dataset={d} onImported={ingestStarted} />
          <MaskSettings key={`${d.mask_classes.join('|')}-${d.masks_required}-${d.reference_reader}`} dataset={d} readers={readers} onChanged={refreshAll} />
          <StatsPanel datasetId={d.id} stats={stats.data} error={stats.error} onRetry={stats.reload} onChanged={refreshAll} outlines />
        </>
      ) : (
        <>
          <div className="grid-2">
            <Uploader datasetId={d.id} onIngestStarted={ingestStarted} />
            <StatsPanel datasetId={d.id} stats={stats.data} error={stats.error} onRetry={stats.reload} onChanged={refreshAll} />
          </div>
          <ZipImport dataset={d} onImported={ingestStarted} />
          <FindingPanel key={`${d.id}-${d.positive_class}-${d.label_names.join('|')}`} dataset={d} onChanged={refreshAll} />
        </>
      )}
      <UnfinishedUploads datasetId={d.id} count={d.unfinished_count ?? 0} tick={imagesTick} onChanged={ingestStarted} />
      {outlines && <MaskGallery dataset={d} readers={readers} tick={imagesTick} />}
      <ImagesPanel dataset={d} tick={imagesTick} onChanged={refreshAll} />
      <RejectedPanel datasetId={d.id} tick={imagesTick} count={d.rejected_count} />
      <ManifestPanel datasetId={d.id} onDone={refreshAll} />
      <DangerZone site={site} dataset={d} />
    </section>
  );
}

function StatsPanel({ datasetId, stats, error, onRetry, onChanged, outlines = false }: {
  datasetId: number | string;
  stats: DatasetStats | null;
  error: unknown;
  onRetry: () => void;
  onChanged: () => void;
  /** A segmentation dataset: labels are optional, and the sets matter for the masks. */
  outlines?: boolean;
}) {
  return (
    <section className="card" aria-labelledby="stats-title">
      <h2 id="stats-title">Labels and sets</h2>
      <ErrorNotice error={error} onRetry={onRetry} />
      {!stats && !error && <Loading what="Counting" />}
      {stats && stats.labels.length === 0 && <p className="muted">No labelled images yet.</p>}
      {stats && stats.labels.length > 0 && (
        <>
          <div className="table-wrap">
          <table className="table" data-testid="label-stats">
            <thead>
              <tr>
                <th scope="col">Label</th>
                <th scope="col" className="num">Images</th>
                <th scope="col" className="num" title="Images the model learns from">Learning</th>
                <th scope="col" className="num" title="Images used to tune training">Tuning</th>
                <th scope="col" className="num" title="Images kept aside for the final check">Final check</th>
              </tr>
            </thead>
            <tbody>
              {stats.labels.map((row) => (
                <tr key={row.label}>
                  <th scope="row">{row.label || <em>no label</em>}</th>
                  <td className="num">{row.count}</td>
                  <td className="num">{row.train}</td>
                  <td className="num">{row.val}</td>
                  <td className="num">{row.test}</td>
                </tr>
              ))}
            </tbody>
          </table>
          </div>
          <LabelBalance labels={stats.labels} />
          <SplitRedraw datasetId={datasetId} labels={stats.labels} onDone={onChanged} outlines={outlines} />
        </>
      )}
      {stats && !outlines && (stats.unlabelled ?? 0) > 0 && (
        <p className="small warning-text">
          {plural(stats.unlabelled!, 'ready image')} {stats.unlabelled === 1 ? 'has' : 'have'} no label yet. Give {stats.unlabelled === 1 ? 'it' : 'them'} one in the list below (tick several to label them together).
        </p>
      )}
      {stats && (stats.status?.accepted ?? 0) > 0 && (
        <p className="small muted">
          {plural(stats.patients.count, 'patient')}.{' '}
          {stats.patients.images_without_patient > 0
            ? `${plural(stats.patients.images_without_patient, 'image')} have no patient id: add one so a patient’s images never land in both the learning and the final-check set.`
            : 'Every image has a patient id, so no patient is in two sets.'}
        </p>
      )}
      {stats && (stats.rejected_by_reason?.length ?? 0) > 0 && (
        <p className="small muted">
          Turned away: {stats.rejected_by_reason!.map((r) => `${r.count} × ${r.code.replace(/_/g, ' ')}`).join(', ')}.
        </p>
      )}
    </section>
  );
}

/** Labels that training would refuse: fewer than 2 learning images, or none to tune or check on. */
export function shortLabels(labels: DatasetStats['labels']): string[] {
  const present = labels.filter((l) => l.label && l.count > 0);
  if (present.length < 2) return [];
  return present.filter((l) => l.train < 2 || l.val < 1 || l.test < 1).map((l) => l.label);
}

/** A segmentation dataset's sets that training would refuse (all images together): fewer than 2 learning images, or none to tune or check on. */
export function shortSets(labels: DatasetStats['labels']): string[] {
  const total = (split: 'train' | 'val' | 'test') => labels.reduce((n, l) => n + l[split], 0);
  if (!labels.some((l) => l.count > 0)) return [];
  return total('train') < 2 || total('val') < 1 || total('test') < 1 ? ['the images'] : [];
}

export function SplitRedraw({ datasetId, labels, onDone, outlines = false }: {
  datasetId: number | string;
  labels: DatasetStats['labels'];
  onDone: () => void;
  outlines?: boolean;
}) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [moved, setMoved] = useState<number | null>(null);
  const short = outlines ? shortSets(labels) : shortLabels(labels);
  if (short.length === 0 && moved === null) return null;
  const redraw = async () => {
    setBusy(true);
    setError(null);
    try {
      const answer = await api.post<{ moved_images: number }>(`/datasets/${datasetId}/redraw-split/`);
      setMoved(answer.moved_images);
      onDone();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <div className="split-redraw" data-testid="split-redraw">
      {short.length > 0 && (
        <>
          <p className="small warning-text">
            {outlines ? 'A set has' : `${short.map((l) => `‘${l}’`).join(', ')} ${short.length === 1 ? 'has' : 'have'}`} too few images{outlines ? '' : ' in a set'}
            (at least 2 for learning and 1 each for tuning and the final check), so training cannot start yet.
            Pollen shares patients between the sets by chance: you can draw again, keeping each patient’s images
            together. This is possible until a model is trained on this dataset.
          </p>
          <button type="button" className="btn" onClick={redraw} disabled={busy}>
            {busy ? 'Drawing…' : 'Draw the split again'}
          </button>
        </>
      )}
      {moved !== null && !error && (
        <p className="small" role="status">
          {moved === 0 ? 'The split already works; nothing moved.' : `Done: ${plural(moved, 'image')} moved to another set.`}
        </p>
      )}
      <ErrorNotice error={error} />
    </div>
  );
}

function LabelBalance({ labels }: { labels: DatasetStats['labels'] }) {
  const total = labels.reduce((s, l) => s + l.count, 0) || 1;
  const smallest = Math.min(...labels.map((l) => l.count));
  return (
    <div className="balance" aria-label="Share of each label">
      <div className="balance-bar" aria-hidden="true">
        {labels.map((l, i) => (
          <span key={l.label} className={`seg seg-${i % 6}`} style={{ width: `${(l.count / total) * 100}%` }} title={`${l.label}: ${l.count}`} />
        ))}
      </div>
      {labels.length > 1 && smallest < 20 && (
        <p className="small warning-text">Some labels have fewer than 20 images. Add more for a more reliable model.</p>
      )}
    </div>
  );
}

function ImagesPanel({ dataset, tick, onChanged }: { dataset: Dataset; tick: number; onChanged: () => void }) {
  const [status, setStatus] = useState('');
  const [label, setLabel] = useState('');
  const [split, setSplit] = useState('');
  const [patient, setPatient] = useState('');
  const [page, setPage] = useState(1);
  const [selected, setSelected] = useState<Set<string>>(new Set());
  const [bulkLabel, setBulkLabel] = useState('');
  const [actionError, setActionError] = useState<unknown>(null);
  const [message, setMessage] = useState('');
  const images = useApi(
    (signal) =>
      api.get<Page<DatasetImage>>(`/datasets/${dataset.id}/images/`, { status, label, split, patient_id: patient, page, page_size: PAGE_SIZE }, signal),
    [dataset.id, status, label, split, patient, page, tick],
  );
  const rows = images.data?.results ?? [];
  const thumbIds = rows.filter((r) => r.status === 'accepted').map((r) => r.id);
  const thumbs = useApi(
    () =>
      thumbIds.length
        ? api.post<{ urls: Record<string, string> }>(`/datasets/${dataset.id}/thumbnails/`, { image_ids: thumbIds }).catch(() => ({ urls: {} as Record<string, string> }))
        : Promise.resolve({ urls: {} as Record<string, string> }),
    [dataset.id, thumbIds.join(',')],
  );
  const allSelected = rows.length > 0 && rows.every((r) => selected.has(String(r.id)));
  const toggle = (rowId: string) =>
    setSelected((prev) => {
      const next = new Set(prev);
      if (next.has(rowId)) next.delete(rowId);
      else next.add(rowId);
      return next;
    });

  const applyBulk = async (event: FormEvent) => {
    event.preventDefault();
    setActionError(null);
    try {
      await api.post(`/datasets/${dataset.id}/images/bulk-label/`, { image_ids: [...selected].map(idValue), label: bulkLabel.trim() });
      setMessage(`Labelled ${plural(selected.size, 'image')} “${bulkLabel.trim()}”.`);
      setSelected(new Set());
      onChanged();
    } catch (err) {
      setActionError(err);
    }
  };

  return (
    <section className="card" aria-labelledby="images-title">
      <h2 id="images-title">Images</h2>
      <form className="filters" onSubmit={(e) => e.preventDefault()} aria-label="Filter images">
        <div className="field">
          <label htmlFor="f-status">Status</label>
          <select id="f-status" value={status} onChange={(e) => { setStatus(e.target.value); setPage(1); }}>
            <option value="">All</option>
            <option value="accepted">Ready</option>
            <option value="pending">Being checked</option>
            <option value="rejected">Turned away</option>
            <option value="expired">Upload not finished</option>
          </select>
        </div>
        <div className="field">
          <label htmlFor="f-label">Label</label>
          <select id="f-label" value={label} onChange={(e) => { setLabel(e.target.value); setPage(1); }}>
            <option value="">All</option>
            {dataset.label_names.map((name) => (
              <option key={name} value={name}>{name}</option>
            ))}
          </select>
        </div>
        <div className="field">
          <label htmlFor="f-split">Set</label>
          <select id="f-split" value={split} onChange={(e) => { setSplit(e.target.value); setPage(1); }}>
            <option value="">All</option>
            {Object.entries(SPLIT_NAMES).map(([value, name]) => (
              <option key={value} value={value}>{name}</option>
            ))}
          </select>
        </div>
        <div className="field">
          <label htmlFor="f-patient">Patient id</label>
          <input id="f-patient" value={patient} onChange={(e) => { setPatient(e.target.value); setPage(1); }} />
        </div>
      </form>

      {selected.size > 0 && (
        <form className="bulkbar" onSubmit={applyBulk} aria-label="Label selected images">
          <span>{plural(selected.size, 'image')} selected.</span>
          <label htmlFor="bulk-label">New label</label>
          <input id="bulk-label" list="label-names" required value={bulkLabel} onChange={(e) => setBulkLabel(e.target.value)} />
          <button type="submit" className="btn btn-primary btn-small" disabled={!bulkLabel.trim()}>Apply label</button>
          <button type="button" className="btn btn-small" onClick={() => setSelected(new Set())}>Clear selection</button>
        </form>
      )}
      <datalist id="label-names">
        {dataset.label_names.map((name) => <option key={name} value={name} />)}
      </datalist>
      <ErrorNotice error={actionError} />
      {message && <p role="status" className="small">{message}</p>}
      <ErrorNotice error={images.error} onRetry={images.reload} />
      {images.loading && !images.data && <Loading what="Loading images" />}
      {images.data && rows.length === 0 && <p className="muted">No images match. Add images above, or change the filters.</p>}
      {rows.length > 0 && (
        <div className="table-wrap">
          <table className="table images-table">
            <thead>
              <tr>
                <th scope="col">
                  <input type="checkbox" aria-label="Select all images on this page" checked={allSelected}
                    onChange={() => setSelected(allSelected ? new Set() : new Set(rows.map((r) => String(r.id))))} />
                </th>
                <th scope="col">Image</th>
                <th scope="col">Label</th>
                <th scope="col">Patient id</th>
                <th scope="col">Set</th>
                <th scope="col">Status</th>
              </tr>
            </thead>
            <tbody>
              {rows.map((img) => (
                <ImageRow key={img.id} datasetId={dataset.id} image={img} thumbnail={thumbs.data?.urls[String(img.id)]} selected={selected.has(String(img.id))}
                  onToggle={() => toggle(String(img.id))} onSaved={onChanged} />
              ))}
            </tbody>
          </table>
        </div>
      )}
      {images.data && <Pager page={page} count={images.data.count} pageSize={PAGE_SIZE} onPage={setPage} />}
    </section>
  );
}

const idValue = (id: string) => (/^\d+$/.test(id) ? Number(id) : id);

function ImageRow({ datasetId, image, thumbnail, selected, onToggle, onSaved }: {
  datasetId: string | number;
  image: DatasetImage;
  thumbnail?: string;
  selected: boolean;
  onToggle: () => void;
  onSaved: () => void;
}) {
  const [label, setLabel] = useState(image.label ?? '');
  const [patient, setPatient] = useState(image.patient_id ?? '');
  const [state, setState] = useState<'idle' | 'saving' | 'saved'>('idle');
  const [error, setError] = useState<ApiError | Error | null>(null);
  const dirty = label !== (image.label ?? '') || patient !== (image.patient_id ?? '');

  const save = async (event: FormEvent) => {
    event.preventDefault();
    setState('saving');
    setError(null);
    try {
      await api.patch(`/datasets/${datasetId}/images/${image.id}/`, { label: label.trim(), patient_id: patient.trim() });
      setState('saved');
      onSaved();
    } catch (err) {
      setError(err as Error);
      setState('idle');
    }
  };
  const fieldErrors = error instanceof ApiError ? error.fields : {};
  const formId = `img-form-${image.id}`;

  return (
    <tr className={selected ? 'row-selected' : undefined}>
      <td>
        <input type="checkbox" checked={selected} onChange={onToggle} aria-label={`Select ${image.filename}`} />
      </td>
      <td className="image-cell">
        {thumbnail ? (
          <img src={thumbnail} alt="" width={40} height={40} loading="lazy" />
        ) : (
          <span className="thumb-placeholder" aria-hidden="true" />
        )}
        <span className="file-name" title={image.filename}>{image.filename}</span>
        {image.width && image.height ? <span className="small muted"> {image.width}×{image.height}</span> : null}
      </td>
      <td>
        <form id={formId} onSubmit={save} className="inline-form">
          <label className="visually-hidden" htmlFor={`${formId}-label`}>Label of {image.filename}</label>
          <input id={`${formId}-label`} list="label-names" value={label} onChange={(e) => { setLabel(e.target.value); setState('idle'); }}
            aria-invalid={fieldErrors.label ? true : undefined} size={12} title={label} />
        </form>
        {fieldErrors.label && <p className="field-error">{fieldErrors.label}</p>}
      </td>
      <td>
        <label className="visually-hidden" htmlFor={`${formId}-patient`}>Patient id of {image.filename}</label>
        <input id={`${formId}-patient`} form={formId} value={patient} onChange={(e) => { setPatient(e.target.value); setState('idle'); }}
          aria-invalid={fieldErrors.patient_id ? true : undefined} size={10} />
        {dirty && (
          <button type="submit" form={formId} className="btn btn-small btn-primary" disabled={state === 'saving'}>
            {state === 'saving' ? 'Saving…' : 'Save'}
          </button>
        )}
        {state === 'saved' && !dirty && <span className="small ok-text" role="status"> Saved</span>}
        {error && <p className="field-error">{fieldErrors.patient_id ?? error.message}</p>}
      </td>
      <td>{image.split ? SPLIT_NAMES[image.split] ?? image.split : '—'}</td>
      <td>
        <span className={`status status-${image.status}`}>
          {statusName(image)}
        </span>
        {image.reject_reason && <p className="small">{image.reject_reason}</p>}
      </td>
    </tr>
  );
}

function RejectedPanel({ datasetId, tick, count }: { datasetId: string | number; tick: number; count: number }) {
  const rejected = useApi(
    (signal) => (count > 0 ? api.get<Page<DatasetImage>>(`/datasets/${datasetId}/images/`, { status: 'rejected', page_size: 100 }, signal) : Promise.resolve(null)),
    [datasetId, tick, count],
  );
  if (!count) return null;
  return (
    <section className="card" aria-labelledby="rejected-title">
      <h2 id="rejected-title">Files turned away ({count})</h2>
      <p className="muted small">
        These files were not added. Fix them (for example export them again as PNG or DICOM) and drop them again; the
        rest of each batch was not affected.
      </p>
      <ErrorNotice error={rejected.error} onRetry={rejected.reload} />
      {rejected.data && (
        <ul className="rejected-list" data-testid="rejected-list">
          {rejected.data.results.map((img) => (
            <li key={img.id}>{rejectionInWords(img.filename, img.reject_reason)}</li>
          ))}
        </ul>
      )}
    </section>
  );
}

function ManifestPanel({ datasetId, onDone }: { datasetId: string | number; onDone: () => void }) {
  const [csv, setCsv] = useState('');
  const [error, setError] = useState<unknown>(null);
  const [addLabels, setAddLabels] = useState(true);
  const [result, setResult] = useState('');
  const [problems, setProblems] = useState<{ line?: number; filename?: string; reason: string }[]>([]);
  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setError(null);
    setResult('');
    setProblems([]);
    try {
      const answer = await api.post<{ updated?: number; problems?: { line?: number; filename?: string; reason: string }[]; unknown_columns?: string[] }>(
        `/datasets/${datasetId}/manifest/`, { csv, add_labels: addLabels });
      const unknown = answer?.unknown_columns?.length ? ` Columns ignored: ${answer.unknown_columns.join(', ')}.` : '';
      setResult(`Updated ${plural(answer?.updated ?? 0, 'image')}.${unknown}`);
      setProblems(answer?.problems ?? []);
      onDone();
    } catch (err) {
      setError(err);
    }
  };
  return (
    <details className="card">
      <summary>Set labels and patient ids from a spreadsheet (CSV)</summary>
      <form onSubmit={submit}>
        <p className="small muted">
          One row per image with the columns <code>filename,label,patient_id</code>. Export it from your spreadsheet as CSV.
        </p>
        <div className="field">
          <label htmlFor="manifest-file">CSV file</label>
          <input id="manifest-file" type="file" accept=".csv,text/csv" onChange={async (e) => setCsv((await e.target.files?.[0]?.text()) ?? '')} />
        </div>
        <div className="field">
          <label htmlFor="manifest-text">Or paste it here</label>
          <textarea id="manifest-text" rows={4} value={csv} onChange={(e) => setCsv(e.target.value)} placeholder={'filename,label,patient_id\nimg001.png,pneumonia,P-0001'} />
        </div>
        <label className="check">
          <input type="checkbox" checked={addLabels} onChange={(e) => setAddLabels(e.target.checked)} />
          Add labels that the dataset does not have yet
        </label>
        <ErrorNotice error={error} />
        {result && <p role="status">{result}</p>}
        {problems.length > 0 && (
          <div className="notice notice-warning">
            <p>Some rows were skipped. Fix them in the spreadsheet and apply the list again:</p>
            <ul>
              {problems.slice(0, 50).map((p, i) => (
                <li key={i}>{p.line ? `Line ${p.line}` : ''}{p.filename ? ` ${p.filename}` : ''}: {p.reason}</li>
              ))}
            </ul>
          </div>
        )}
        <button type="submit" className="btn" disabled={!csv.trim()}>Apply the list</button>
        <p className="small">
          <a href={exportUrl(datasetId)} download>Download the current list (CSV)</a> to edit it in a spreadsheet.
        </p>
      </form>
    </details>
  );
}

export function UnfinishedUploads({ datasetId, count, tick, onChanged, send = xhrSend }: {
  datasetId: string | number;
  count: number;
  tick: number;
  onChanged: () => void;
  /** How a file reaches site storage (the upload link); tests pass their own. */
  send?: (file: Blob, slot: UploadSlot, onProgress: (loaded: number) => void) => Promise<void>;
}) {
  const list = useApi(
    (signal) => (count > 0
      ? api.get<Page<DatasetImage>>(`/datasets/${datasetId}/images/`, { status: 'expired', page_size: 500 }, signal)
      : Promise.resolve(null)),
    [datasetId, tick, count],
  );
  const [busy, setBusy] = useState(false);
  const [message, setMessage] = useState('');
  const [error, setError] = useState<unknown>(null);
  if (!count) return null;
  const rows = list.data?.results ?? [];

  const discard = async () => {
    setBusy(true);
    setError(null);
    try {
      const answer = await api.post<{ discarded: number }>(`/datasets/${datasetId}/uploads/discard/`, { image_ids: rows.map((r) => r.id) });
      setMessage(`Discarded ${plural(answer.discarded, 'unfinished upload')}.`);
      onChanged();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  const resume = async (files: File[]) => {
    const byName = new Map(rows.map((r) => [r.filename, r]));
    const chosen = files.filter((f) => byName.has(f.name));
    const strangers = files.length - chosen.length;
    const notAmong = strangers ? ` ${plural(strangers, 'chosen file')} ${strangers === 1 ? 'was' : 'were'} not among the unfinished uploads.` : '';
    if (!chosen.length) {
      setMessage(`None of the chosen files is among the unfinished uploads: choose files with the same names.`);
      return;
    }
    setBusy(true);
    setError(null);
    try {
      const fileFor = new Map(chosen.map((f) => [String(byName.get(f.name)!.id), f]));
      const answer = await api.post<{ slots: UploadSlot[]; refused: RefusedFile[] }>(
        `/datasets/${datasetId}/uploads/resume/`, { image_ids: chosen.map((f) => byName.get(f.name)!.id) });
      const sent: (number | string)[] = [];
      let failed = 0;
      for (const slot of answer.slots) {
        try {
          await send(fileFor.get(String(slot.image_id))!, slot, () => {});
          sent.push(slot.image_id);
        } catch {
          failed += 1;
        }
      }
      if (sent.length) await api.post(`/datasets/${datasetId}/uploads/complete/`, { image_ids: sent });
      const failedNote = failed ? ` ${plural(failed, 'file')} could not be sent: choose ${failed === 1 ? 'it' : 'them'} again.` : '';
      setMessage(`Resumed ${plural(sent.length, 'upload')}; your site is checking ${sent.length === 1 ? 'it' : 'them'}.${failedNote}${notAmong}`);
      onChanged();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <section className="card" aria-labelledby="unfinished-title" data-testid="unfinished-uploads">
      <h2 id="unfinished-title">Upload not finished ({count})</h2>
      <p className="small muted">
        These files were not sent completely before the upload was left, so they were not added. Choose the same
        files again to finish them (their labels and patient ids are kept), or discard them.
      </p>
      <ErrorNotice error={list.error ?? error} onRetry={list.error ? list.reload : undefined} />
      {rows.length > 0 && (
        <ul className="rejected-list">
          {rows.slice(0, 100).map((img) => <li key={img.id}><span className="file-name">{img.filename}</span></li>)}
        </ul>
      )}
      {rows.length > 100 && <p className="small muted">…and {plural(rows.length - 100, 'more file')}.</p>}
      <div className="field">
        <label htmlFor="resume-files">Choose the same files again to resume</label>
        <input id="resume-files" type="file" multiple disabled={busy || !rows.length}
          onChange={(e) => { const picked = [...(e.target.files ?? [])]; e.target.value = ''; void resume(picked); }} />
      </div>
      <button type="button" className="btn" disabled={busy || !rows.length} onClick={discard}>Discard these uploads</button>
      {message && <p role="status" className="small">{message}</p>}
    </section>
  );
}

export function DangerZone({ site, dataset }: { site: Membership; dataset: Dataset }) {
  const isAdmin = site.role === 'admin';
  const [open, setOpen] = useState(false);
  const [confirm, setConfirm] = useState('');
  const [error, setError] = useState<unknown>(null);
  const impact = useApi(
    (signal) => (isAdmin && open
      ? api.get<DeletionImpact>(`/datasets/${dataset.id}/deletion-impact/`, undefined, signal)
      : Promise.resolve(null)),
    [dataset.id, isAdmin, open],
  );
  const remove = async (event: FormEvent) => {
    event.preventDefault();
    try {
      await api.del(`/datasets/${dataset.id}/`);
      navigate(`/sites/${site.site.slug}/datasets`);
    } catch (err) {
      setError(err);
    }
  };
  const i = impact.data;
  return (
    <details className="card danger" data-testid="danger-zone" onToggle={(e) => setOpen((e.target as HTMLDetailsElement).open)}>
      <summary>Delete this dataset</summary>
      {!isAdmin ? (
        <p className="small">
          Only a site administrator can delete a dataset, because its images cannot be brought back. Ask your site
          administrator if this dataset should go.
        </p>
      ) : (
        <form onSubmit={remove}>
          <ErrorNotice error={impact.error} onRetry={impact.reload} />
          {open && impact.loading && !i && <Loading what="Finding what uses this dataset" />}
          {i && (
            <div data-testid="deletion-impact">
              <p className="small">{i.summary}</p>
              <DependentList title="Training jobs" items={i.jobs.map((j) => `${j.name || `Job ${j.id}`} (${j.status})`)} />
              <DependentList title="Models trained on it (kept)" items={i.model_versions.map((m) => m.name)} />
              <DependentList title="Published models (kept)"
                items={i.published_versions.map((p) => `${p.model_name} (version ${p.number}, ${p.status})`)} />
              <DependentList title="Evaluations (kept)" items={i.evaluations.map((e) => `Evaluation ${e.id} (${e.status})`)} />
              <DependentList title="Cross-site jobs" items={i.federated_jobs.map((f) => `${f.name} (${f.status})`)} />
              {i.blocking.length > 0 && (
                <div className="notice notice-warning" data-testid="deletion-blocked">
                  <p>It cannot be deleted yet:</p>
                  <ul>{i.blocking.map((reason) => <li key={reason}>{reason}</li>)}</ul>
                </div>
              )}
            </div>
          )}
          <p className="small">Type the dataset’s name to confirm.</p>
          <div className="field">
            <label htmlFor="confirm-delete">Dataset name</label>
            <input id="confirm-delete" value={confirm} onChange={(e) => setConfirm(e.target.value)} />
          </div>
          <ErrorNotice error={error} />
          <button type="submit" className="btn btn-danger" disabled={confirm !== dataset.name || !i?.can_delete}>Delete dataset</button>
        </form>
      )}
    </details>
  );
}

function DependentList({ title, items }: { title: string; items: string[] }) {
  if (!items.length) return null;
  return (
    <>
      <h3 className="small">{title}</h3>
      <ul className="small">{items.slice(0, 20).map((item, n) => <li key={n}>{item}</li>)}</ul>
      {items.length > 20 && <p className="small muted">…and {items.length - 20} more.</p>}
    </>
  );
}
