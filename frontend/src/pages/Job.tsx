import { useState } from 'react';
import { api, ApiError } from '../api/client';
import { FINAL_JOB_STATUSES, type Evaluation, type Job, type JobStatus, type Membership } from '../api/types';
import { Link, useDocumentTitle } from '../router';
import { ErrorNotice, Loading, ProgressBar, useApi, useInterval } from '../components/ui';
import { ConfusionMatrix, LineChart, RocCurve } from '../components/charts';
import { HeatmapLegend, SampleGallery } from '../components/Heatmaps';
import { OutlineGallery, OutlineLegend, SegmentationResult } from '../components/SegmentationResult';
import { Tile } from '../components/Tile';
import { PublishPanel } from '../components/PublishPanel';
import { ParentComparisonView } from '../components/ParentComparison';
import type { EvaluationSample } from '../api/types';
import { percent, progressFraction, retryInWords, timeLeftInWords } from '../lib/format';
import { aucGrade, calibrationError, evaluationFinding, evaluationSummary, findingTerms, rocCurves } from '../lib/metrics';
import { isSegmentation, isSegmentationResult } from '../lib/segmentation';

const STATUS_TEXT: Record<JobStatus, string> = {
  queued: 'Waiting for your site’s computer',
  running: 'Learning',
  succeeded: 'Finished',
  failed: 'Stopped with a problem',
  cancelled: 'Cancelled',
};

const PHASE_TEXT: Record<string, string> = {
  loading: 'reading the images',
  training: 'learning',
  evaluating: 'checking on images it has not seen',
  saving: 'saving the model',
};

export function StatusBadge({ status }: { status: JobStatus }) {
  return <span className={`status status-job-${status}`}>{STATUS_TEXT[status] ?? status}</span>;
}

export function JobPage({ site, params }: { site: Membership; params: Record<string, string> }) {
  const id = params.id;
  const job = useApi((signal) => api.get<Job>(`/jobs/${id}/`, undefined, signal), [id]);
  const [cancelError, setCancelError] = useState<unknown>(null);
  const [cancelling, setCancelling] = useState(false);
  useDocumentTitle(`Training run #${id}`);
  const live = !!job.data && !FINAL_JOB_STATUSES.includes(job.data.status);
  useInterval(job.reload, 2000, live);
  // The check's sample pictures (short-lived links, fetched when the page shows them) carry the file
  // names that the hardest images are listed by.
  const withSamples = !!job.data && job.data.model_version != null && (job.data.evaluation?.samples?.length ?? 0) > 0;
  const samples = useApi(
    (signal) => (withSamples ? api.get<{ samples: EvaluationSample[] }>(`/jobs/${id}/samples/`, undefined, signal) : Promise.resolve(null)),
    [id, withSamples],
  );

  if (job.error instanceof ApiError && job.error.isNotFound) {
    return (
      <section data-testid="no-access">
        <h1>Training run not found</h1>
        <p>It does not exist, or it belongs to a site you are not a member of. <Link to={`/sites/${site.site.slug}/jobs`}>See the training runs of {site.site.name}</Link>.</p>
      </section>
    );
  }
  if (!job.data) return job.error ? <ErrorNotice error={job.error} onRetry={job.reload} /> : <Loading what="Loading the training run" />;
  const j = job.data;
  const fraction = j.status === 'succeeded' ? 1 : progressFraction(j.progress);
  const p = j.progress ?? {};
  const outlines = isSegmentation(j);

  const cancel = async () => {
    if (!window.confirm(cancelQuestion(j))) return;
    setCancelling(true);
    setCancelError(null);
    try {
      await api.post(`/jobs/${j.id}/cancel/`);
      job.reload();
    } catch (err) {
      setCancelError(err);
    } finally {
      setCancelling(false);
    }
  };

  return (
    <section>
      <nav className="crumbs" aria-label="Breadcrumb">
        <Link to={`/sites/${site.site.slug}/jobs`}>Training runs</Link> <span aria-hidden="true">›</span> Run #{j.id}
      </nav>
      <div className="page-head">
        <div>
          <h1>Training run #{j.id}</h1>
          <p className="muted">
            {j.dataset_name ? <>On <Link to={`/sites/${site.site.slug}/datasets/${j.dataset}`}>{j.dataset_name}</Link></> : null}
            {j.starting_point_name ? ` · starting from ${j.starting_point_name}` : j.parent_version ? ' · improving an existing model' : ''}
            {j.recipe ? ` · ${recipeInWords(j)}` : ''}
          </p>
        </div>
        {live && (
          <button type="button" className="btn btn-danger" onClick={cancel} disabled={cancelling}>
            {cancelling ? 'Stopping…' : 'Stop training'}
          </button>
        )}
      </div>
      <ErrorNotice error={cancelError} />
      {job.error ? <ErrorNotice error={job.error} onRetry={job.reload} title="Could not refresh." /> : null}

      <div className="card" aria-live="polite">
        <div className="status-line">
          <StatusBadge status={j.status} />
          {live && <span data-testid="time-left">{j.status === 'queued' ? (j.queue?.text ?? 'It starts as soon as your site’s computer is free.') : timeLeftInWords(p.eta_seconds)}</span>}
        </div>
        <ProgressBar value={fraction} label="Training progress" tone={j.status === 'failed' ? 'bad' : j.status === 'succeeded' ? 'ok' : 'busy'} />
        <p className="small muted">
          {percent(fraction)} done
          {live && p.phase ? ` · ${PHASE_TEXT[p.phase] ?? p.phase}` : ''}
          {live && p.epochs ? ` · round ${Math.min(p.epoch ?? 0, p.epochs)} of ${p.epochs}` : ''}
          {live && p.steps ? ` · step ${p.step ?? 0} of ${p.steps}` : ''}
        </p>
        {retryInWords(j.attempt, j.status) && (
          <p className="small" role="status" data-testid="retry-note">{retryInWords(j.attempt, j.status)}</p>
        )}
        {j.cancel_requested && live && (
          <p className="small" role="status">
            Stopping: the current step finishes first{(j.history ?? []).length > 0 ? ', then the best model so far is checked and kept' : ''}.
          </p>
        )}
      {j.message && (
          <p className={j.status === 'failed' ? 'notice notice-error' : 'small'} role={j.status === 'failed' ? 'alert' : undefined}>
            {j.message}
          </p>
        )}
      </div>

      {(j.history ?? []).length > 0 && (
        <section className="card" aria-labelledby="curves-title">
          <h2 id="curves-title">How it learned</h2>
          <div className="grid-2">
            <LineChart title="Mistakes (loss)" xLabel="Round of learning" yLabel="Loss (lower is better)"
              series={[
                { name: 'On learning images', values: j.history.map((h) => h.train_loss), className: 'series-1' },
                ...(j.history.some((h) => h.val_loss != null)
                  ? [{ name: 'On tuning images', values: j.history.map((h) => h.val_loss ?? null), className: 'series-4' }]
                  : []),
              ]} />
            {outlines ? (
              <LineChart title="Outline overlap on tuning images (Dice)" xLabel="Round of learning" yLabel="Dice (1 is perfect)" yMax={1} yFmt={(v) => v.toFixed(1)}
                series={[{ name: 'Overlap with the expert’s outline (Dice)', values: j.history.map((h) => h.val_dice ?? null), className: 'series-2' }]} />
            ) : (
              <LineChart title="Results on tuning images" xLabel="Round of learning" yLabel="Score (higher is better)" yMax={1} yFmt={(v) => v.toFixed(1)}
                series={[
                  { name: 'Separates cases (AUC)', values: j.history.map((h) => h.val_auc ?? null), className: 'series-2' },
                  { name: 'Right answers (accuracy)', values: j.history.map((h) => h.val_accuracy ?? null), className: 'series-3' },
                ]} />
            )}
          </div>
          {outlines && <p className="small muted">Dice: how much the model’s outline overlaps the expert’s on the tuning images; 1 is perfect. It should rise as the model learns.</p>}
          {keptRoundText(j.evaluation) && <p className="small">{keptRoundText(j.evaluation)}</p>}
        </section>
      )}

      {hasEvaluation(j.evaluation) && <EvaluationView evaluation={j.evaluation} names={sampleNames(samples.data?.samples)} />}
      {j.parent_comparison && <ParentComparisonView comparison={j.parent_comparison} />}
      {j.status === 'cancelled' && j.model_version != null && (
        <p className="notice notice-warning" data-testid="stopped-early">
          Stopped early: this model is the best of the rounds of learning that ended before the run was stopped.
          You can apply it to images at your site or improve it with another run; only a run that finished can be published.
        </p>
      )}
      {withSamples && <JobSamples samples={samples} outlines={outlines} />}
      {j.status === 'succeeded' && <PublishPanel site={site} source={{ job: j }} />}
    </section>
  );
}

/** How thorough a run is, in words: quick, thorough, or (outlining) the decoder only. */
export function recipeInWords(j: Pick<Job, 'recipe' | 'config'>): string {
  if (j.config?.freeze_encoder === true) return 'first outline in minutes (decoder only)';
  return j.recipe === 'quick' ? 'quick' : 'thorough';
}

/**
 * What stopping the run will do, in plain words: the agent keeps the best model of the rounds
 * that ended (workers/pollen_agent/ml/recipe.py), and nothing before one has.
 */
export function cancelQuestion(j: Pick<Job, 'status' | 'recipe' | 'history' | 'progress'>): string {
  if (j.status === 'queued') return 'Cancel this training run? It has not started yet, so nothing is lost.';
  if (j.progress?.phase === 'evaluating' || j.progress?.phase === 'saving') {
    return 'Stop this training run? It has already finished learning: the check under way completes and the model is kept.';
  }
  if (j.recipe === 'quick') return 'Stop this quick model? It is not finished yet, so nothing will be kept.';
  const ended = (j.history ?? []).length;
  if (ended === 0) return 'Stop this training run? No round of learning has finished yet, so nothing will be kept.';
  const rounds = ended === 1 ? 'the round' : `the ${ended} rounds`;
  return `Stop this training run? The best model from ${rounds} finished so far will be checked and kept, marked as stopped early. The round under way is lost.`;
}

/**
 * Which round of learning the finished model comes from, in plain words. The agent keeps the
 * latest round whose results on the tuning images are as good as the best, within what that
 * many images can tell apart (workers/pollen_agent/ml/recipe.py).
 */
export function keptRoundText(ev: Evaluation | null | undefined): string | null {
  if (!ev || ev.kept_epoch == null || ev.epochs_run == null) return null;
  const kept = `The model kept is the one after round ${ev.kept_epoch} of ${ev.epochs_run}`;
  const why =
    ev.stop_reason === 'early_stopping'
      ? 'learning stopped early because the tuning images showed no more improvement'
      : ev.stop_reason === 'cancelled'
        ? `a user stopped the run before the ${ev.planned_epochs ?? 'planned'} rounds it was planned for`
      : ev.stop_reason === 'time_budget' && ev.planned_epochs != null
        ? `the time limit allowed ${ev.planned_epochs} rounds`
        : null;
  const choice =
    ev.kept_epoch === ev.epochs_run
      ? ''
      : ': later rounds did worse on the tuning images';
  return `${kept}${choice}${why ? `; ${why}` : ''}.`;
}

/** A queued or running job carries an empty evaluation ({}): nothing to show yet. */
export function hasEvaluation(ev: Evaluation | null | undefined): ev is Evaluation {
  return !!ev && Array.isArray(ev.label_names) && Object.keys(ev).length > 1;
}

/** File names by image id, from a job's samples (those the hub could name). */
function sampleNames(samples: EvaluationSample[] | undefined): Map<string, string> {
  return new Map((samples ?? []).filter((s) => s.filename).map((s) => [String(s.image_id), s.filename!]));
}

/** A finished check in words and numbers: a segmentation model's outlines, or a classifier's answers. */
export function EvaluationView({ evaluation, title, caption, names }: {
  evaluation: Evaluation;
  title?: string;
  caption?: string;
  /** File names by image id, for the hardest images of an outlining model. */
  names?: Map<string, string>;
}) {
  if (isSegmentationResult(evaluation)) return <SegmentationResult evaluation={evaluation} title={title} caption={caption} names={names} />;
  return <ClassificationView evaluation={evaluation} title={title} caption={caption} />;
}

function ClassificationView({ evaluation, title = 'How well it works', caption }: { evaluation: Evaluation; title?: string; caption?: string }) {
  const ev = evaluation;
  const summary = evaluationSummary(ev);
  const curves = rocCurves(ev);
  const ece = calibrationError(ev);
  const pair = evaluationFinding(ev);
  const terms = findingTerms(pair?.finding, pair?.other);
  return (
    <section className="card" aria-labelledby="evaluation-title" data-testid="evaluation">
      <h2 id="evaluation-title">{title}</h2>
      <p className="small muted">
        {caption ?? `Measured on ${ev.n != null ? `${ev.n} ` : ''}final-check images: patients the model never saw while learning.`}
      </p>
      {(ev.warnings ?? []).map((w) => (
        <div key={w} className="notice notice-warning">{w}</div>
      ))}
      <ul className="summary">
        {summary.map((line) => <li key={line}>{line}</li>)}
      </ul>
      <dl className="tiles">
        <Tile term="How well it separates cases (AUC)" value={ev.auc != null ? ev.auc.toFixed(2) : '—'} note={aucGrade(ev.auc)} />
        {ev.sensitivity != null && <Tile term={terms.sensitivity} value={percent(ev.sensitivity)} />}
        {ev.specificity != null && <Tile term={terms.specificity} value={percent(ev.specificity)} />}
        <Tile term="Right answers (accuracy)" value={percent(ev.accuracy)} note={ev.balanced_accuracy != null ? `${percent(ev.balanced_accuracy)} balanced across labels` : undefined} />
        {ece != null && (
          <Tile term="How trustworthy its confidence is" value={percent(ece, 1)} note="average gap between stated and real confidence; lower is better" />
        )}
      </dl>
      <div className="grid-2">
        {curves.length > 0 && <RocCurve curves={curves} auc={ev.auc ?? null} />}
        {(ev.confusion_matrix?.length ?? 0) > 0 && <ConfusionMatrix matrix={ev.confusion_matrix!} labels={ev.label_names} />}
      </div>
    </section>
  );
}

/** Sample predictions with heatmap overlays: links are short-lived, so fetch them when the page shows them. */
function JobSamples({ samples, outlines }: {
  samples: { data: { samples: EvaluationSample[] } | null; loading: boolean; error: unknown; reload: () => void };
  outlines: boolean;
}) {
  if (outlines) {
    return (
      <section className="card" aria-labelledby="samples-title">
        <h2 id="samples-title">The model’s outlines on check images</h2>
        <p className="small muted">Check images with the model’s outline and the expert’s drawn over each. The images stay in your site’s storage.</p>
        <OutlineLegend />
        {samples.loading && !samples.data && <Loading what="Fetching the outlines from your site" />}
        <ErrorNotice error={samples.error} onRetry={samples.reload} title="The outlines could not be fetched from your site." />
        {samples.data && <OutlineGallery samples={samples.data.samples} />}
      </section>
    );
  }
  return (
    <section className="card" aria-labelledby="samples-title">
      <h2 id="samples-title">Where the model looked</h2>
      <p className="small muted">Check images the model was most sure about, with its answer and a heatmap over each. The images stay in your site’s storage.</p>
      <HeatmapLegend />
      {samples.loading && !samples.data && <Loading what="Fetching the heatmaps from your site" />}
      <ErrorNotice error={samples.error} onRetry={samples.reload} title="The heatmaps could not be fetched from your site." />
      {samples.data && <SampleGallery samples={samples.data.samples} />}
    </section>
  );
}
