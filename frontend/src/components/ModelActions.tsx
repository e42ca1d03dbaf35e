/** What a hospital can do with a marketplace model besides applying it: check it, take a copy, manage versions. */
import { useEffect, useState } from 'react';
import { api, type Page } from '../api/client';
import type {
  Dataset, ExportDownload, Membership, ModelExport, PublishedModelDetail, PublishedVersion, SiteEvaluation, VersionDownload,
} from '../api/types';
import { ConfirmDialog, ErrorNotice, Loading, useAction, useApi, useInterval } from './ui';
import { EvaluationView, hasEvaluation } from '../pages/Job';
import { dateTime, plural } from '../lib/format';
import { ttaInWords } from '../lib/metrics';
import { isSegmentation, outlinedClasses } from '../lib/segmentation';

const WORKING = ['queued', 'running'];

/** Poll a queued piece of site work (an evaluation, an export) until it finishes. */
function useFollow<T extends { id: number; status: string }>(path: (id: number) => string, initial: T | null = null) {
  const [item, setItem] = useState<T | null>(initial);
  const [error, setError] = useState<unknown>(null);
  useInterval(
    async () => {
      if (!item) return;
      try {
        setItem(await api.get<T>(path(item.id)));
        setError(null);
      } catch (err) {
        setError(err);
      }
    },
    2000,
    !!item && WORKING.includes(item.status),
  );
  return { item, setItem, error, setError };
}

/** Which of a dataset's labels the model knows. */
export function knownLabels(dataset: Dataset, modelLabels: string[]): string[] {
  return (dataset.label_names ?? []).filter((l) => modelLabels.includes(l));
}

/** Whether a dataset's masks mark what an outlining model outlines, in the same order (the hub's rule). */
export function sameMaskClasses(dataset: Dataset, modelLabels: string[]): boolean {
  const classes = outlinedClasses(modelLabels);
  return isSegmentation(dataset) && (dataset.mask_classes ?? []).join('\u0000') === classes.join('\u0000');
}

/** The datasets a model can be checked on: masks of its classes (outlining), or images with a label it knows. */
function checkableDatasets(datasets: Dataset[], model: PublishedModelDetail): Dataset[] {
  return isSegmentation(model)
    ? datasets.filter((d) => sameMaskClasses(d, model.label_names))
    : datasets.filter((d) => !isSegmentation(d) && knownLabels(d, model.label_names).length > 0);
}

/**
 * Evaluate at my site: run the model on one of my labelled datasets, read the result, then choose to share
 * the totals with the network or keep them private (the default).
 */
export function EvaluateAtMySite({ model, site, onShared }: { model: PublishedModelDetail; site: Membership; onShared: () => void }) {
  const slug = site.site.slug;
  const version = model.latest_version!;
  const datasets = useApi((signal) => api.get<Page<Dataset>>('/datasets/', { site: slug, page_size: 100 }, signal), [slug]);
  // The newest check of this model at this site (the hub filters; the list is newest first).
  const previous = useApi(
    (signal) => api.get<Page<SiteEvaluation>>('/marketplace/evaluations/', { published_model: model.id, site: slug, page_size: 1 }, signal)
      .then((page) => page.results),
    [model.id, slug],
  );
  const follow = useFollow<SiteEvaluation>((id) => `/marketplace/evaluations/${id}/`);
  const [datasetId, setDatasetId] = useState('');
  const starting = useAction();
  const outlines = isSegmentation(model);
  const classes = outlinedClasses(model.label_names);
  const usable = checkableDatasets(datasets.data?.results ?? [], model);
  const current = follow.item ?? previous.data?.[0] ?? null;
  useEffect(() => {
    // Back on the page while a check still runs: follow it.
    const last = previous.data?.[0];
    if (last && WORKING.includes(last.status)) follow.setItem((item) => item ?? last);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [previous.data]);
  const name = (id: number | null) => datasets.data?.results.find((d) => d.id === id)?.name ?? 'a dataset';

  const start = () =>
    starting.run(async () => follow.setItem(await api.post<SiteEvaluation>('/marketplace/evaluations/', { published_version: version.id, dataset: Number(datasetId) })));

  return (
    <section className="card" aria-labelledby="evaluate-title" id="evaluate" data-testid="evaluate-here">
      <h2 id="evaluate-title">Check it on {site.site.name}’s images</h2>
      <p className="small muted">
        See how well version {version.number} works on patients at {site.site.name} before you rely on it. It runs on your site’s own
        computer; the images stay at {site.site.name}. The results are private to {site.site.name} until you choose to share them.
      </p>
      <ErrorNotice error={datasets.error} onRetry={datasets.reload} />
      {datasets.data && usable.length === 0 ? (
        outlines ? (
          <p data-testid="no-mask-dataset">
            None of {site.site.name}’s datasets has masks of {classes.map((c) => `“${c}”`).join(', ')} yet. Create a dataset with an outline
            (mask) per image that marks {classes.join(', ')}{classes.length > 1 ? ', in this order' : ''}, add images with their masks, then come back.
          </p>
        ) : (
          <p>
            None of {site.site.name}’s datasets has images labelled {model.label_names.map((l) => `“${l}”`).join(' or ')} yet. Label images
            with the model’s label names, then come back.
          </p>
        )
      ) : (
        <div className="inline-fields">
          <div className="field">
            <label htmlFor="evaluate-dataset">{outlines ? 'Images with masks' : 'Labelled images'} at {site.site.name}</label>
            <select id="evaluate-dataset" value={datasetId} onChange={(e) => setDatasetId(e.target.value)} aria-describedby="evaluate-dataset-help">
              <option value="">Choose a dataset…</option>
              {usable.map((d) => (
                <option key={d.id} value={String(d.id)}>
                  {d.name} ({plural(d.accepted_count ?? 0, 'image')}; {outlines ? `masks of ${classes.join(', ')}` : knownLabels(d, model.label_names).join(', ')})
                </option>
              ))}
            </select>
            <p className="small muted" id="evaluate-dataset-help">
              {outlines
                ? `Every image with a mask is used: the model’s outline of ${classes.join(', ')} is compared with the mask. Images without a mask are left out.`
                : `Only images labelled ${model.label_names.join(' or ')} are used: the labels this model knows.`}
            </p>
          </div>
          <div className="field field-button">
            <button type="button" className="btn btn-primary" disabled={!datasetId || starting.busy || (!!follow.item && WORKING.includes(follow.item.status))} onClick={start}>
              {starting.busy ? 'Starting…' : 'Check the model on these images'}
            </button>
          </div>
        </div>
      )}
      <ErrorNotice error={starting.error ?? follow.error} />
      {current && <EvaluationResult evaluation={current} datasetName={name(current.dataset)} site={site} outlines={outlines} onChange={(e) => { follow.setItem(e); onShared(); }} />}
    </section>
  );
}

function EvaluationResult({ evaluation, datasetName, site, outlines, onChange }: {
  evaluation: SiteEvaluation;
  datasetName: string;
  site: Membership;
  outlines: boolean;
  onChange: (e: SiteEvaluation) => void;
}) {
  const e = evaluation;
  if (WORKING.includes(e.status)) {
    return <Loading what={e.status === 'queued' ? `Waiting for ${site.site.name}’s computer` : `The model is looking at the images of “${datasetName}”`} />;
  }
  if (e.status === 'failed') {
    return (
      <div className="notice notice-error" role="alert">
        The check could not run: {e.message || `${site.site.name}’s site agent reported a problem.`} Try again; if it keeps failing, tell your
        site administrator.
      </div>
    );
  }
  const metrics = { label_names: [], ...e.metrics };
  const n = metrics.images ?? metrics.n;
  const skipped = typeof metrics.skipped_images === 'object' ? metrics.skipped_images?.without_mask ?? 0 : 0;
  const leftOut = skipped > 0 ? ` ${plural(skipped, 'image')} without a mask ${skipped === 1 ? 'was' : 'were'} left out.` : '';
  return (
    <div data-testid="evaluation-result">
      {hasEvaluation(metrics) && (
        <EvaluationView
          evaluation={metrics}
          title={`At ${site.site.name}`}
          caption={`Measured on ${n != null ? `${n} ` : ''}images of “${datasetName}”, checked ${dateTime(e.finished_at)}. The model never learned from them.${leftOut} ${ttaInWords(metrics.tta).sentence}`}
        />
      )}
      <ShareChoice evaluation={e} site={site} onChange={onChange} outlines={outlines} />
    </div>
  );
}

/** The share choice: private by default; sharing shows the totals in the model's per-hospital table. */
export function ShareChoice({ evaluation, site, onChange, outlines = false }: {
  evaluation: SiteEvaluation;
  site: Membership;
  onChange: (e: SiteEvaluation) => void;
  /** An outlining model's check: its totals are Dice, lesions found and normal images left empty. */
  outlines?: boolean;
}) {
  const { busy, error, run } = useAction();
  const set = (shared: boolean) =>
    run(async () => onChange(await api.post<SiteEvaluation>(`/marketplace/evaluations/${evaluation.id}/share/`, { shared })));
  return (
    <div className="share-choice" data-testid="share-choice">
      <h3 className="h4">Who sees these results</h3>
      <p role="status" data-testid="share-state">
        {!evaluation.shared
          ? `Private: only ${site.site.name} sees these results.`
          : outlines
            ? `Shared: every hospital that can see this model sees under “How it worked at each hospital” that ${site.site.name} checked it.`
            : `Shared: every hospital that can see this model finds ${site.site.name}’s totals in the table “How it worked at each hospital”.`}
      </p>
      <p className="small muted">
        {outlines
          ? 'Sharing shows only totals (number of images, how much the outlines overlap (Dice), lesions found and missed, normal images left empty, the lowest Dice values). Never'
          : 'Sharing shows only totals (number of images, how well it separates cases, how many cases of the finding it found and how many others it cleared, right answers). Never'}{' '}
        an image, a file name or a per-patient answer.
      </p>
      <div className="actions">
        {evaluation.shared ? (
          <button type="button" className="btn" disabled={busy} onClick={() => set(false)}>Make them private again</button>
        ) : (
          <>
            <button type="button" className="btn btn-primary" disabled={busy} onClick={() => set(true)}>Share with the network</button>
            <span className="small muted">or keep them private: nothing else to do.</span>
          </>
        )}
      </div>
      <ErrorNotice error={error} />
    </div>
  );
}

/** Take a copy: the weights as safetensors with their manifest, or an ONNX file made at my site. Every download is audited. */
export function DownloadPanel({ model, site }: { model: PublishedModelDetail; site: Membership }) {
  const version = model.latest_version!;
  const [links, setLinks] = useState<VersionDownload | null>(null);
  const [onnx, setOnnx] = useState<ExportDownload | null>(null);
  const action = useAction();
  const [which, setWhich] = useState<'links' | 'export' | 'onnx'>('links');
  const exp = useFollow<ModelExport>((id) => `/marketplace/exports/${id}/`);
  const busy = action.busy ? which : '';
  const run = (what: 'links' | 'export' | 'onnx', fn: () => Promise<void>) => {
    setWhich(what);
    return action.run(fn);
  };

  return (
    <section className="card" aria-labelledby="download-title" data-testid="download">
      <h2 id="download-title">Take a copy</h2>
      <p className="small muted">
        For research tools or your own systems. Every download is recorded in the audit log with your name and {site.site.name}
        {site.site.slug !== model.site ? `; ${model.site_name} sees that ${site.site.name} downloaded it, not who` : ''}. The links work for a few
        minutes only. Keep to the licence and intended use above.
      </p>
      <div className="actions">
        <button type="button" className="btn" disabled={!!busy} onClick={() => run('links', async () => setLinks(await api.get<VersionDownload>(`/marketplace/versions/${version.id}/download/`, { site: site.site.slug })))}>
          {busy === 'links' ? 'Preparing…' : `Download version ${version.number} (safetensors and manifest)`}
        </button>
        {!exp.item && (
          <button type="button" className="btn" disabled={!!busy} onClick={() => run('export', async () => exp.setItem(await api.post<ModelExport>(`/marketplace/versions/${version.id}/exports/`, { site: site.site.slug, format: 'onnx' })))}>
            {busy === 'export' ? 'Asking…' : 'Prepare an ONNX file'}
          </button>
        )}
      </div>
      <ErrorNotice error={action.error ?? exp.error} />
      {links && (
        <ul className="plain-list download-links" data-testid="download-links">
          <li><a href={links.weights_url} download>Weights (weights.safetensors)</a> <code className="small">sha256 {links.weights_sha256.slice(0, 16)}…</code></li>
          <li><a href={links.manifest_url} download>Manifest (manifest.json)</a> <span className="small muted">architecture, labels, input size and normalisation</span></li>
          <li><a href={links.card_url} download>Model card (card.json)</a></li>
          <li className="small muted">The links stop working after {Math.round(links.expires_in / 60)} minutes: press Download again for new ones.</li>
        </ul>
      )}
      {exp.item && WORKING.includes(exp.item.status) && (
        <Loading what={`${site.site.name}’s computer is converting the model to ONNX and checking it gives the same answers`} />
      )}
      {exp.item?.status === 'failed' && (
        <div className="notice notice-error" role="alert">
          The ONNX file could not be made: {exp.item.message || 'your site reported a problem.'}{' '}
          <button type="button" className="btn btn-small" onClick={() => exp.setItem(null)}>Try again</button>
        </div>
      )}
      {exp.item?.status === 'succeeded' && (
        <p data-testid="onnx-ready">
          The ONNX file is ready and checked.{' '}
          {onnx ? (
            <a href={onnx.onnx_url} download>Download model.onnx</a>
          ) : (
            <button type="button" className="btn btn-small" disabled={!!busy} onClick={() => run('onnx', async () => setOnnx(await api.get<ExportDownload>(`/marketplace/exports/${exp.item!.id}/download/`, { site: site.site.slug })))}>
              Get the download link
            </button>
          )}
        </p>
      )}
    </section>
  );
}

type VersionAction = 'deprecate' | 'withdraw';

const ACTION_TEXT: Record<VersionAction, { button: string; title: (n: number) => string; body: string; confirm: string }> = {
  deprecate: {
    button: 'Mark as outdated',
    title: (n) => `Mark version ${n} as outdated?`,
    body:
      'It stays usable, but everyone who opens it is told that a newer version is advised. Hospitals already using it can carry on. ' +
      'Publish a newer version first, so that people have something to move to.',
    confirm: 'Mark as outdated',
  },
  withdraw: {
    button: 'Withdraw',
    title: (n) => `Withdraw version ${n}?`,
    body:
      'Nobody can apply, improve, check or download it any more, including hospitals that use it today. Its card and results stay ' +
      'visible, with your reason, so that people know why. This cannot be undone.',
    confirm: 'Withdraw it for everyone',
  },
};

/** For the version's publisher and the publishing site's administrators (the hub says: `can_manage`): deprecate or withdraw, after saying what happens. */
export function VersionActions({ version, onChanged }: { version: PublishedVersion; onChanged: () => void }) {
  const [action, setAction] = useState<VersionAction | null>(null);
  const can: VersionAction[] = [
    ...(version.status === 'published' ? (['deprecate'] as VersionAction[]) : []),
    ...(['published', 'deprecated', 'pending'].includes(version.status) ? (['withdraw'] as VersionAction[]) : []),
  ];
  if (!can.length) return <span className="muted">—</span>;
  return (
    <>
      <div className="actions actions-tight">
        {can.map((a) => (
          <button key={a} type="button" className={`btn btn-small ${a === 'withdraw' ? 'btn-danger' : ''}`} onClick={() => setAction(a)}
            aria-label={`${ACTION_TEXT[a].button}: version ${version.number}`}>
            {ACTION_TEXT[a].button}
          </button>
        ))}
      </div>
      {action && (
        <ConfirmDialog
          title={ACTION_TEXT[action].title(version.number)}
          confirmLabel={ACTION_TEXT[action].confirm}
          danger={action === 'withdraw'}
          reasonLabel="Reason (shown on the model page)"
          onClose={() => setAction(null)}
          onConfirm={async (reason) => {
            await api.post<PublishedVersion>(`/marketplace/versions/${version.id}/${action}/`, { reason });
            setAction(null);
            onChanged();
          }}
        >
          <p>{ACTION_TEXT[action].body}</p>
        </ConfirmDialog>
      )}
    </>
  );
}
