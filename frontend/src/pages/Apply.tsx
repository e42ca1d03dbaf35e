import { useCallback, useEffect, useMemo, useRef, useState } from 'react';
import { api, type Page } from '../api/client';
import {
  USABLE_VERSION_STATUSES, type Dataset, type DatasetImage, type Membership, type Prediction, type PredictionResult, type PublishedModel,
  type TtaPolicy,
} from '../api/types';
import { Link, useDocumentTitle, useLocation } from '../router';
import { ErrorNotice, FeatureGate, Loading, Notice, useApi } from '../components/ui';
import { Uploader } from '../components/Uploader';
import { ProbabilityBars } from '../components/ProbabilityBars';
import { HeatmapLegend } from '../components/Heatmaps';
import { imageProblem, OutlineResults, type PictureLinks } from '../components/OutlineResults';
import { plural, rejectionInWords, retryInWords } from '../lib/format';
import { INBOX_NAME, inboxEnsure } from '../lib/inbox';
import { usePollLoop } from '../lib/poll';
import { useSeen } from '../lib/seen';
import { isSegmentation, outlinedClasses } from '../lib/segmentation';
import { ttaInWords, ttaPolicy } from '../lib/metrics';

export { INBOX_NAME };

/** How long the hub may hold one request for a running prediction (it answers as soon as it is done). */
const PREDICTION_WAIT_SECONDS = 10;

export function ApplyPage({ site }: { site: Membership }) {
  useDocumentTitle(`Apply a model · ${site.site.name}`);
  return (
    <FeatureGate path="/predictions/" what="Applying models to your images" title="Apply a model">
      <ApplyForm site={site} />
    </FeatureGate>
  );
}

function ApplyForm({ site }: { site: Membership }) {
  const { search } = useLocation();
  const slug = site.site.slug;
  const models = useApi((signal) => api.get<Page<PublishedModel>>('/marketplace/models/', { page_size: 100, sort: 'name' }, signal), []);
  const usable = (models.data?.results ?? []).filter((m) => m.latest_version && USABLE_VERSION_STATUSES.includes(m.latest_version.status));
  const [modelId, setModelId] = useState(search.get('model') ?? '');
  const model = usable.find((m) => String(m.id) === modelId) ?? null;
  const outlines = isSegmentation(model);
  const [source, setSource] = useState<'new' | 'dataset'>('new');
  const [datasetId, setDatasetId] = useState('');
  const [heatmap, setHeatmap] = useState(true);
  const [tta, setTta] = useState(false);
  const [imageIds, setImageIds] = useState<(number | string)[]>([]);
  const [prediction, setPrediction] = useState<Prediction | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);

  const datasets = useApi((signal) => api.get<Page<Dataset>>('/datasets/', { site: slug, page_size: 100 }, signal), [slug]);
  const inbox = useInbox(slug);
  const checked = useChecked(inbox.dataset?.id ?? null, imageIds);

  useEffect(() => {
    if (!modelId && usable.length === 1) setModelId(String(usable[0].id));
  }, [usable, modelId]);

  const live = !!prediction && isRunning(prediction);
  // One request at a time for the whole page: the hub holds it until the prediction is done (or
  // PREDICTION_WAIT_SECONDS pass), and the next one is sent only after its answer.
  usePollLoop(
    async (signal) => {
      if (!prediction) return true;
      try {
        const next = await api.get<Prediction>(`/predictions/${prediction.id}/`, { wait: PREDICTION_WAIT_SECONDS }, signal);
        setPrediction(next);
        setError(null);
        return !isRunning(next);
      } catch (err) {
        if ((err as Error).name !== 'AbortError') setError(err);
        return false;
      }
    },
    1000,
    live,
    prediction?.id,
  );

  const accepted = checked.images.filter((i) => i.status === 'accepted');
  const stillChecking = imageIds.length > 0 && checked.images.filter((i) => i.status !== 'pending').length < imageIds.length;
  const ready = !!model && (source === 'new' ? accepted.length > 0 && !stillChecking : !!datasetId);

  const run = async () => {
    if (!model?.latest_version) return;
    setBusy(true);
    setError(null);
    setPrediction(null);
    try {
      const body = {
        published_version: model.latest_version.id,
        site: slug,
        // An outlining model's answers always come with their maps: there is no heatmap to ask for.
        heatmap: outlines ? false : heatmap,
        tta,
        ...(source === 'new' ? { images: accepted.map((i) => ({ image_id: Number(i.id) })) } : { dataset: Number(datasetId) }),
      };
      setPrediction(await api.post<Prediction>('/predictions/', body));
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  const names = useMemo(() => new Map(checked.images.map((i) => [String(i.id), i.filename])), [checked.images]);

  return (
    <section>
      <h1>Apply a model</h1>
      <p className="muted">
        Run a model from the marketplace on images at {site.site.name}. The images stay in your hospital’s storage; the model runs
        on your site’s own computer.
      </p>

      <div className="card">
        <h2><label htmlFor="apply-model">1. Model</label></h2>
        <ErrorNotice error={models.error} onRetry={models.reload} />
        {models.loading && !models.data && <Loading what="Loading the models you may use" />}
        {models.data && usable.length === 0 ? (
          <p>No model has been shared with {site.site.name} yet. <Link to="/marketplace">Browse the marketplace</Link> or publish one of your own training runs.</p>
        ) : (
          <select id="apply-model" value={modelId} onChange={(e) => setModelId(e.target.value)}>
            <option value="">Choose a model…</option>
            {usable.map((m) => (
              <option key={m.id} value={String(m.id)}>
                {m.name} — {m.site_name}, version {m.latest_version!.number} ({isSegmentation(m) ? `outlines ${outlinedClasses(m.label_names).join(', ')}` : m.label_names.join(' / ')})
              </option>
            ))}
          </select>
        )}
        {model && (
          <p className="small muted">
            {outlines ? `Outlines ${outlinedClasses(model.label_names).join(', ')} on each image.` : `Tells apart ${model.label_names.join(', ')}.`} {model.intended_use ? `Intended use: ${model.intended_use}` : ''}{' '}
            <Link to={`/marketplace/models/${model.id}`}>Read its model card and limitations</Link>.
          </p>
        )}
      </div>

      <fieldset className="card">
        <legend><h2>2. Images</h2></legend>
        <div className="choices choices-row">
          <label className={`choice ${source === 'new' ? 'choice-on' : ''}`}>
            <input type="radio" name="apply-source" checked={source === 'new'} onChange={() => setSource('new')} />
            <span><strong>New images</strong><span className="small muted block">Drop images here; they go straight to your site’s storage.</span></span>
          </label>
          <label className={`choice ${source === 'dataset' ? 'choice-on' : ''}`}>
            <input type="radio" name="apply-source" checked={source === 'dataset'} onChange={() => setSource('dataset')} />
            <span><strong>A dataset at {site.site.name}</strong><span className="small muted block">Every checked image in it (up to 1,000).</span></span>
          </label>
        </div>
        {source === 'new' && (
          <>
            <Uploader datasetId={inbox.dataset?.id ?? null} ensureDataset={inbox.ensure} title="Images to check"
              onIngestStarted={(ids) => { setImageIds(ids); setPrediction(null); }} />
            <p className="small muted">Images you send are kept in your site’s dataset “{INBOX_NAME}”.</p>
            {stillChecking && <Notice>Your site is checking {plural(imageIds.length, 'image')}; the model can run once they are ready.</Notice>}
            {!stillChecking && imageIds.length > 0 && (
              <p role="status" className="small">
                {plural(accepted.length, 'image')} ready{accepted.length < imageIds.length ? `; ${imageIds.length - accepted.length} turned away` : ''}.
              </p>
            )}
            {checked.images.filter((i) => i.status === 'rejected').length > 0 && (
              <div className="notice notice-warning" role="alert">
                <p>Your site turned these away; the model cannot run on them:</p>
                <ul className="small">
                  {checked.images.filter((i) => i.status === 'rejected').map((i) => (
                    <li key={String(i.id)}>{rejectionInWords(i.filename, i.reject_reason)}</li>
                  ))}
                </ul>
                <p className="small">
                  An image checked before is already in “{INBOX_NAME}”: choose “A dataset at {site.site.name}” above and pick that dataset to run
                  the model on it again.
                </p>
              </div>
            )}
          </>
        )}
        {source === 'dataset' && (
          <div className="field">
            <label htmlFor="apply-dataset">Dataset</label>
            <select id="apply-dataset" value={datasetId} onChange={(e) => setDatasetId(e.target.value)}>
              <option value="">Choose a dataset…</option>
              {datasets.data?.results.map((d) => (
                <option key={d.id} value={String(d.id)}>{d.name} ({plural(d.accepted_count ?? 0, 'image')})</option>
              ))}
            </select>
            <ErrorNotice error={datasets.error} onRetry={datasets.reload} />
          </div>
        )}
      </fieldset>

      <fieldset className="card">
        <legend><h2>3. Options</h2></legend>
        {outlines ? (
          <p className="small" data-testid="outline-products">
            For each image you get: the model’s outline of {outlinedClasses(model!.label_names).join(', ')} drawn over the image, a map of
            how likely each part is to be {outlinedClasses(model!.label_names).join(' or ')}, a map of where the model was unsure, the
            outlined area and the number of separate regions, and the mask as a PNG file to download. They stay in your site’s storage.
          </p>
        ) : (
          <label className="check">
            <input type="checkbox" checked={heatmap} onChange={(e) => setHeatmap(e.target.checked)} /> Show where the model looked (heatmap)
          </label>
        )}
        <label className="check">
          <input type="checkbox" checked={tta} onChange={(e) => setTta(e.target.checked)} /> Average each image’s answers over the views the model
          learned from (for models trained here: the image and its mirror image): steadier, a little slower
        </label>
      </fieldset>

      <div className="actions">
        <button type="button" className="btn btn-primary btn-large" disabled={!ready || busy || live} onClick={run}>
          {busy ? 'Starting…' : live ? 'Running…' : 'Run the model'}
        </button>
        {!model && <span className="small muted">Choose a model first.</span>}
      </div>
      <ErrorNotice error={error} />

      {prediction && <PredictionView prediction={prediction} names={names} datasetId={inbox.dataset?.id ?? null} />}
    </section>
  );
}

/**
 * The site's dataset that holds images brought in for checking. Opening the page makes nothing: the
 * dataset is looked up, or made, only when the person sends their first images (`ensure`).
 */
function useInbox(slug: string) {
  const [dataset, setDataset] = useState<Dataset | null>(null);
  const making = useRef<Promise<Dataset> | null>(null);
  useEffect(() => setDataset(null), [slug]);
  const ensure = useCallback(async () => {
    making.current ??= inboxEnsure(slug).finally(() => {
      making.current = null;
    });
    const ds = await making.current;
    setDataset(ds);
    return ds.id;
  }, [slug]);
  return { dataset, ensure };
}

/** Follow the site agent's checks of freshly uploaded images, one round of questions at a time. */
function useChecked(datasetId: number | string | null, ids: (number | string)[]) {
  const [images, setImages] = useState<DatasetImage[]>([]);
  const key = `${datasetId}:${ids.join(',')}`;
  useEffect(() => setImages([]), [key]);
  usePollLoop(
    async (signal) => {
      // A handful of fresh images: ask for each one (the holding dataset grows, so a list page may not show them).
      const rows = await Promise.all(
        ids.slice(0, 100).map((id) => api.get<DatasetImage>(`/datasets/${datasetId}/images/${id}/`, undefined, signal)),
      );
      setImages(rows);
      return rows.every((i) => i.status !== 'pending');
    },
    1500,
    datasetId != null && ids.length > 0,
    key,
  );
  return { images };
}

function isRunning(p: Prediction): boolean {
  return p.status === 'queued' || p.status === 'running';
}

export function PredictionView({ prediction, names, datasetId = null }: {
  prediction: Prediction;
  names: Map<string, string>;
  /** Where the images were put when they were sent (the page's holding dataset), for a prediction not run on a dataset. */
  datasetId?: number | null;
}) {
  const p = prediction;
  const links = usePictureLinks(p);
  const averaged = averagedOver(p.results);
  if (isRunning(p)) {
    return (
      <section className="card" aria-live="polite">
        <Loading what={p.status === 'queued' ? `Waiting for your site’s computer to look at ${plural(p.images, 'image')}` : `The model is looking at ${plural(p.images, 'image')}`} />
        {retryInWords(p.attempt, p.status) && <p className="small" data-testid="retry-note">{retryInWords(p.attempt, p.status)}</p>}
      </section>
    );
  }
  if (p.status === 'failed') {
    return (
      <div className="notice notice-error" role="alert">
        The model could not run: {p.message || 'your site reported a problem.'} Try again; if it keeps failing, tell your site administrator.
      </div>
    );
  }
  const outlines = isOutlining(p);
  return (
    <section className="card" aria-labelledby="results-title" data-testid="prediction-results">
      <h2 id="results-title">{outlines ? 'What the model outlined' : 'What the model says'}</h2>
      <p className="small muted">
        {outlines ? 'Outlines' : 'Likelihoods'} from this model only. They support, never replace, your clinical judgement.
      </p>
      {averaged && <p className="small muted" data-testid="prediction-tta">{averaged}</p>}
      {p.heatmap && !outlines && <HeatmapLegend />}
      {(links.error || p.overlay_links_error) && (
        <div className="notice notice-warning" role="alert">
          {outlines ? 'The outlines and maps' : 'The heatmaps'} could not be fetched: {links.error || p.overlay_links_error}
        </div>
      )}
      {outlines ? (
        <OutlineResults prediction={p} names={names} datasetId={p.dataset ?? datasetId} links={links} />
      ) : (
        <ul className="results">
          {p.results.map((r, i) => (
            <ResultRow key={String(r.image_id ?? i)} result={r} labels={p.label_names}
              name={r.filename || names.get(String(r.image_id)) || `Image ${i + 1}`}
              overlayUrl={links.url(r)} onOverlayFailed={() => void links.refresh()} />
          ))}
        </ul>
      )}
    </section>
  );
}

/** An outlining model's prediction (older answers lack `task` but carry their outlines). */
function isOutlining(p: Prediction): boolean {
  return isSegmentation(p) || p.results.some((r) => !!r.segmentation);
}

/** How the answers of one prediction were averaged, from each result's `tta` (absent from older results); '' with no answer. */
function averagedOver(results: PredictionResult[]): string {
  const counts = new Map<TtaPolicy | null, number>();
  for (const r of results.filter((x) => !x.error)) {
    const policy = ttaPolicy(r.tta);
    counts.set(policy, (counts.get(policy) ?? 0) + 1);
  }
  if (counts.size === 0) return '';
  if (counts.size === 1) return ttaInWords([...counts.keys()][0]).sentence;
  const parts = [...counts].map(([policy, n]) => `${ttaInWords(policy).words} (${plural(n, 'image')})`);
  return `Averaged over: ${parts.join('; ')}.`;
}

/**
 * Picture links (heatmaps; an outlining model's outline, maps and mask) are short-lived: when one has
 * lapsed (an image far down the list seen late, a download clicked later), ask for fresh ones. Every
 * image of the page may fail at once when the links lapse: one request serves them all, at most once a
 * minute unless `force`d.
 */
function usePictureLinks(p: Prediction): PictureLinks & { url: (r: PredictionResult) => string | null; error: string } {
  const [fresh, setFresh] = useState<Map<string, PredictionResult> | null>(null);
  const [linkedAt, setLinkedAt] = useState(() => Date.now());
  const [error, setError] = useState('');
  const asking = useRef<Promise<Map<string, PredictionResult> | null> | null>(null);
  const lastAsked = useRef(0);
  useEffect(() => setFresh(null), [p.id]);
  useEffect(() => setLinkedAt(Date.now()), [p]);
  const refresh = useCallback(async (force = false) => {
    if (asking.current) return asking.current;
    if (!force && Date.now() - lastAsked.current < 60_000) return null;
    lastAsked.current = Date.now();
    asking.current = api.get<Prediction>(`/predictions/${p.id}/`)
      .then((again) => {
        const byImage = new Map(again.results.map((r) => [String(r.image_id), r]));
        setFresh(byImage);
        setLinkedAt(Date.now());
        setError(again.overlay_links_error ?? '');
        return byImage;
      })
      .catch(() => {
        setError('your site did not answer. Reload the page to try again.');
        return null;
      })
      .finally(() => {
        asking.current = null;
      });
    return asking.current;
  }, [p.id]);
  const latest = (r: PredictionResult) => fresh?.get(String(r.image_id)) ?? r;
  return {
    url: (r) => latest(r).overlay_url || null,
    pictures: (r) => latest(r).segmentation_urls ?? {},
    refresh,
    linkedAt,
    error,
  };
}

function isSlide(r: PredictionResult): boolean {
  return !!r.sliding_window || Math.max(r.width ?? 0, r.height ?? 0) > 2048;
}

function ResultRow({ result, labels, name, overlayUrl, onOverlayFailed }: {
  result: PredictionResult;
  labels: string[];
  name: string;
  overlayUrl: string | null;
  onOverlayFailed: () => void;
}) {
  const slide = isSlide(result);
  const { ref, seen } = useSeen<HTMLLIElement>();
  const [failed, setFailed] = useState<string | null>(null);
  const error = imageProblem(result.error);
  return (
    <li className="result" ref={ref} data-testid="prediction-result">
      <div className="result-image">
        {overlayUrl && failed === overlayUrl ? (
          <div className="heatmap-missing">Heatmap could not be loaded</div>
        ) : overlayUrl ? (
          seen ? (
            <img src={overlayUrl} alt={`${slide ? 'Slide-level heatmap' : 'Heatmap'} of where the model looked on ${name}`}
              onError={() => {
                setFailed(overlayUrl);
                onOverlayFailed();
              }} />
          ) : (
            <div className="heatmap-missing" aria-hidden="true" />
          )
        ) : (
          <div className="heatmap-missing">{error ? 'No heatmap' : 'Heatmap not requested'}</div>
        )}
        {slide && <p className="small muted">Large image: read in patches; the heatmap covers the whole slide.</p>}
      </div>
      <div className="result-body">
        <h3 className="h4 long-name" title={name}>{name}</h3>
        {error ? <p className="field-error">{error}</p> : <ProbabilityBars probabilities={result.probabilities} labels={labels} />}
      </div>
    </li>
  );
}
