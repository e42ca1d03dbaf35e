/**
 * Training across hospitals: the model travels, the images stay. Each hospital trains on its own images
 * at its own site; only the model's weights and summary numbers go through the hub.
 */
import { useState } from 'react';
import { api, ApiError, type Page } from '../api/client';
import {
  FINAL_FEDERATED_STATUSES, type Dataset, type FederatedJob, type FederatedRound, type Membership, type Participant,
} from '../api/types';
import { Link, useDocumentTitle } from '../router';
import { ConfirmDialog, ErrorNotice, FeatureGate, Loading, Pager, ProgressBar, useAction, useApi, useInterval } from '../components/ui';
import { LineChart } from '../components/charts';
import { PublishPanel } from '../components/PublishPanel';
import { HeldOutTable } from '../components/HeldOutTable';
import { heldOutPending } from '../lib/heldOut';
import { useSession } from '../session';
import { dateTime, percent, plural } from '../lib/format';
import {
  ANSWER_TEXT, CONSENT_CLASS, CONSENT_TEXT, JOB_STATUS_TEXT, STATUS_CLASS, STRATEGIES, WORK_TEXT, awaitsAnswer,
  durationWords, federatedProgress, participantOf, plainHistory, roundSummary, roundWords, sameLabels, siteAnswer,
} from '../lib/federation';
import { withoutInbox } from '../lib/inbox';

const PAGE_SIZE = 50;

export const FEDERATED_INTRO =
  'The model travels, the images stay: each hospital trains the model on its own images, on its own computer. ' +
  'Only the model itself and summary numbers (image counts, how well it did) travel between hospitals.';

export function FederatedStatusBadge({ job }: { job: FederatedJob }) {
  return <span className={`status ${STATUS_CLASS[job.status]}`}>{JOB_STATUS_TEXT[job.status] ?? job.status_text}</span>;
}

function ConsentBadge({ participant }: { participant: Participant }) {
  return <span className={`status ${CONSENT_CLASS[participant.status]}`}>{CONSENT_TEXT[participant.status]}</span>;
}

export function FederatedPage({ site }: { site: Membership }) {
  useDocumentTitle(`Across hospitals · ${site.site.name}`);
  return (
    <FeatureGate path="/federated-jobs/" what="Training across hospitals" title="Train across hospitals">
      <FederatedList key={site.site.slug} site={site} />
    </FeatureGate>
  );
}

function FederatedList({ site }: { site: Membership }) {
  const slug = site.site.slug;
  const [page, setPage] = useState(1);
  // This page is about one of my sites: the hub lists (and counts, for the pages) only its jobs.
  const jobs = useApi((signal) => api.get<Page<FederatedJob>>('/federated-jobs/', { site: slug, page, page_size: PAGE_SIZE }, signal), [slug, page]);
  const mine = jobs.data?.results ?? [];
  const invitations = mine.filter((j) => awaitsAnswer(j, slug));
  const active = mine.some((j) => !FINAL_FEDERATED_STATUSES.includes(j.status));
  useInterval(jobs.reload, 5000, active);

  return (
    <section>
      <div className="page-head">
        <div>
          <h1>Training across hospitals</h1>
          <p className="muted measure">{FEDERATED_INTRO}</p>
        </div>
        <Link className="btn btn-primary" to={`/sites/${slug}/federated/new`}>Start training across hospitals</Link>
      </div>
      <ErrorNotice error={jobs.error} onRetry={jobs.reload} />
      {jobs.loading && !jobs.data && <Loading what="Loading training across hospitals" />}

      {invitations.length > 0 && (
        <section className="card card-attention" aria-labelledby="invitations-title" data-testid="invitations">
          <h2 id="invitations-title">Invitations waiting for {site.site.name}</h2>
          <ul className="plain-list">
            {invitations.map((j) => (
              <li key={j.id}>
                <Link to={`/sites/${slug}/federated/${j.id}`}>{j.name}</Link>{' '}
                <span className="small muted">
                  from {participantOf(j, j.initiator_site)?.site_name ?? j.initiator_site} · {plural(j.rounds, 'round')} ·
                  labels {j.label_names.join(', ')}
                </span>{' '}
                <span className="small">
                  {site.role === 'admin' ? 'Open it to accept or decline.' : `An administrator of ${site.site.name} must accept or decline.`}
                </span>
              </li>
            ))}
          </ul>
        </section>
      )}

      {jobs.data && mine.length === 0 && (
        <div className="empty">
          <h2>Nothing yet</h2>
          <p>
            Train one model with other hospitals, without sending them a single image.{' '}
            <Link to={`/sites/${slug}/federated/new`}>Invite other hospitals</Link> to start.
          </p>
        </div>
      )}
      {mine.length > 0 && (
        <div className="table-wrap">
          <table className="table" data-testid="federated-list">
            <caption className="visually-hidden">Training across hospitals that {site.site.name} takes part in</caption>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Hospitals</th>
                <th scope="col">Status</th>
              </tr>
            </thead>
            <tbody>
              {mine.map((j) => (
                <tr key={j.id}>
                  <td className="name-cell">
                    <Link to={`/sites/${slug}/federated/${j.id}`}>{j.name}</Link>
                    <span className="small muted block">{STRATEGIES[j.strategy]?.title ?? j.strategy} · proposed {dateTime(j.created_at)}</span>
                  </td>
                  <td>
                    <ul className="plain-list small">
                      {j.participants.map((p) => (
                        <li key={p.site} className="site-consent">{p.site_name}: <ConsentBadge participant={p} /></li>
                      ))}
                    </ul>
                  </td>
                  <td className="progress-cell">
                    <FederatedStatusBadge job={j} />
                    <ProgressBar value={federatedProgress(j)} label={`Progress of ${j.name}`} tone={j.status === 'failed' ? 'bad' : j.status === 'succeeded' ? 'ok' : 'busy'} />
                    <span className="small muted">{roundWords(j)}</span>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {jobs.data && <Pager page={page} count={jobs.data.count} pageSize={PAGE_SIZE} onPage={setPage} />}
    </section>
  );
}

export function FederatedJobPage({ site, params }: { site: Membership; params: Record<string, string> }) {
  return (
    <FeatureGate path="/federated-jobs/" what="Training across hospitals" title="Train across hospitals">
      <FederatedJobDetail site={site} id={params.id} />
    </FeatureGate>
  );
}

export function FederatedJobDetail({ site, id }: { site: Membership; id: string }) {
  const { me } = useSession();
  const job = useApi((signal) => api.get<FederatedJob>(`/federated-jobs/${id}/`, undefined, signal), [id]);
  const [cancelling, setCancelling] = useState(false);
  const [withdrawing, setWithdrawing] = useState(false);
  useDocumentTitle(job.data ? job.data.name : 'Training across hospitals');
  // A finished job still changes while the hospitals check it on their held-out images.
  const live = !!job.data && (!FINAL_FEDERATED_STATUSES.includes(job.data.status) || heldOutPending(job.data));
  useInterval(job.reload, 3000, live);
  const slug = site.site.slug;

  if (job.error instanceof ApiError && job.error.isNotFound) {
    return (
      <section data-testid="no-access">
        <h1>Not found</h1>
        <p>
          This training across hospitals does not exist, or {site.site.name} does not take part in it.{' '}
          <Link to={`/sites/${slug}/federated`}>See what {site.site.name} takes part in</Link>.
        </p>
      </section>
    );
  }
  if (!job.data) return job.error ? <ErrorNotice error={job.error} onRetry={job.reload} /> : <Loading what="Loading" />;
  const j = job.data;
  const strategy = STRATEGIES[j.strategy];
  const initiator = participantOf(j, j.initiator_site);
  const mine = participantOf(j, slug);
  const adminOf = new Set((me?.memberships ?? []).filter((m) => m.role === 'admin').map((m) => m.site.slug));
  // The hub lets only the starting site's administrators stop the whole training; a site that
  // accepted may take its own part back (withdraw), and the others go on without it.
  const canCancel = live && adminOf.has(j.initiator_site);
  const canWithdraw = live && mine?.status === 'accepted' && slug !== j.initiator_site && adminOf.has(slug);

  return (
    <section>
      <nav className="crumbs" aria-label="Breadcrumb">
        <Link to={`/sites/${slug}/federated`}>Training across hospitals</Link> <span aria-hidden="true">›</span> {j.name}
      </nav>
      <div className="page-head">
        <div>
          <h1>{j.name}</h1>
          <p className="muted">
            Proposed by {initiator?.site_name ?? j.initiator_site} · tells apart {j.label_names.join(', ')} ·{' '}
            {plural(j.rounds, 'round')} of {plural(j.local_epochs, 'learning pass', 'learning passes')} at each hospital · each
            hospital has {durationWords(j.round_deadline_seconds)} per round
          </p>
        </div>
        {canCancel && (
          <button type="button" className="btn btn-danger" onClick={() => setCancelling(true)}>
            Stop this training
          </button>
        )}
        {canWithdraw && (
          <button type="button" className="btn btn-danger" onClick={() => setWithdrawing(true)}>
            Withdraw {site.site.name}
          </button>
        )}
      </div>
      {withdrawing && (
        <ConfirmDialog
          title={`Withdraw ${site.site.name}?`}
          confirmLabel={`Withdraw ${site.site.name}`}
          danger
          onClose={() => setWithdrawing(false)}
          onConfirm={async () => {
            job.setData(await api.post<FederatedJob>(`/federated-jobs/${j.id}/withdraw/`, { site: slug }));
            setWithdrawing(false);
          }}
        >
          <p>
            {site.site.name} stops its current round and takes no further part. The other hospitals go on without it. This
            cannot be undone.
          </p>
        </ConfirmDialog>
      )}
      {cancelling && (
        <ConfirmDialog
          title="Stop training across hospitals?"
          confirmLabel="Stop it for every hospital"
          danger
          onClose={() => setCancelling(false)}
          onConfirm={async () => {
            job.setData(await api.post<FederatedJob>(`/federated-jobs/${j.id}/cancel/`));
            setCancelling(false);
          }}
        >
          <p>
            Every hospital stops its current round. Rounds already combined are kept, but no final model is made. To go on
            later, start a new one.
          </p>
        </ConfirmDialog>
      )}
      {job.error ? <ErrorNotice error={job.error} onRetry={job.reload} title="Could not refresh." /> : null}

      <div className="card" aria-live="polite" data-testid="federated-status">
        <div className="status-line">
          <FederatedStatusBadge job={j} />
          <span>{roundWords(j)}</span>
        </div>
        <ProgressBar value={federatedProgress(j)} label="Progress across hospitals" tone={j.status === 'failed' ? 'bad' : j.status === 'succeeded' ? 'ok' : 'busy'} />
        <p className="small muted">
          {percent(federatedProgress(j))} done · {strategy?.title ?? j.strategy}
          {strategy ? <> <span className="method">({strategy.method})</span></> : null}
        </p>
        {j.message && (
          <p className={j.status === 'failed' ? 'notice notice-error' : 'small'} role={j.status === 'failed' ? 'alert' : undefined}>
            {j.message}
            {j.status === 'failed' && ' Check that each hospital’s site agent is running, then start the training again.'}
          </p>
        )}
        <p className="small muted">{strategy?.plain}</p>
      </div>

      {mine && awaitsAnswer(j, slug) && <Invitation site={site} job={j} onAnswered={(next) => job.setData(next)} />}

      <section className="card" aria-labelledby="sites-title">
        <h2 id="sites-title">Hospitals</h2>
        <SitesTable job={j} />
      </section>

      <RoundsView job={j} />
      <HeldOutTable job={j} />

      {j.status === 'succeeded' && j.final_version != null && j.initiator_site === slug && (
        <PublishPanel site={site} source={{ modelVersion: j.final_version, name: j.name }} />
      )}
      {j.status === 'succeeded' && j.initiator_site !== slug && (
        <p className="small muted">
          The final model is kept at {initiator?.site_name ?? j.initiator_site}, which started this training. Ask them to publish
          it to the marketplace so that {site.site.name} can apply it.
        </p>
      )}

      {j.events.length > 0 && (
        <details className="card">
          <summary>History ({plural(j.events.length, 'entry', 'entries')})</summary>
          <ol className="history small">
            {[...j.events].reverse().map((e, i) => (
              <li key={`${e.at}-${i}`}><time dateTime={e.at}>{dateTime(e.at)}</time> {plainHistory(j, e.text)}</li>
            ))}
          </ol>
        </details>
      )}
    </section>
  );
}

export function SitesTable({ job }: { job: FederatedJob }) {
  const running = job.status === 'running';
  return (
    <div className="table-wrap">
      <table className="table" data-testid="federated-sites">
        <thead>
          <tr>
            <th scope="col">Hospital</th>
            <th scope="col">Consent</th>
            <th scope="col">Learning images</th>
            <th scope="col">Now</th>
          </tr>
        </thead>
        <tbody>
          {job.participants.map((p) => (
            <tr key={p.site}>
              <th scope="row">
                {p.site_name}
                {p.site === job.initiator_site && <span className="small muted block">started it</span>}
              </th>
              <td>
                <ConsentBadge participant={p} />
                {p.responded_at && <span className="small muted block">{dateTime(p.responded_at)}</span>}
              </td>
              <td>
                {p.status === 'accepted' ? plural(p.train_count, 'image') : '—'}
                {p.dataset_name && <span className="small muted block">from “{p.dataset_name}”</span>}
              </td>
              <td>
                {running && p.status === 'accepted' ? (
                  <>
                    {WORK_TEXT[p.work_state] ?? p.work_state}
                    {p.work_state === 'training' && (
                      <ProgressBar value={p.progress?.fraction ?? 0} label={`Progress at ${p.site_name}`} />
                    )}
                  </>
                ) : (
                  <span className="muted">—</span>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

/** An invited site's administrator accepts (choosing the site's own dataset) or declines. */
export function Invitation({ site, job, onAnswered }: { site: Membership; job: FederatedJob; onAnswered: (job: FederatedJob) => void }) {
  const slug = site.site.slug;
  const isAdmin = site.role === 'admin';
  const datasets = useApi(
    (signal) => (isAdmin ? api.get<Page<Dataset>>('/datasets/', { site: slug, page_size: 100 }, signal).then(withoutInbox) : Promise.resolve(null)),
    [slug, isAdmin],
  );
  const list = datasets.data?.results ?? [];
  const matching = list.filter((d) => sameLabels(d.label_names ?? [], job.label_names));
  const [chosen, setChosen] = useState('');
  // At the proposing site (proposed by a clinician) the dataset is already named: keep it unless the admin picks another.
  const proposed = participantOf(job, slug)?.dataset;
  const dataset = chosen || (proposed != null ? String(proposed) : matching[0] ? String(matching[0].id) : '');
  const { busy, error, run } = useAction();
  const [declining, setDeclining] = useState(false);
  const fields = error instanceof ApiError ? error.fields : {};
  const accept = () =>
    run(async () => onAnswered(await api.post<FederatedJob>(`/federated-jobs/${job.id}/accept/`, { site: slug, dataset: Number(dataset) })));

  return (
    <section className="card card-attention" aria-labelledby="invitation-title" data-testid="invitation">
      <h2 id="invitation-title">{site.site.name} is invited to take part</h2>
      <p>
        If {site.site.name} accepts, its own computer trains this model on the images of one of its datasets. The images never
        leave {site.site.name}; only the model and summary numbers (how many images, how well it did) are sent back.
      </p>
      {!isAdmin && (
        <p className="notice notice-info" role="status">
          Only an administrator of {site.site.name} can accept or decline. Ask them to open this page.
        </p>
      )}
      {isAdmin && (
        <>
          <div className="field">
            <label htmlFor="accept-dataset">Images to train on at {site.site.name}</label>
            <select id="accept-dataset" value={dataset} onChange={(e) => setChosen(e.target.value)} aria-describedby="accept-dataset-help"
              aria-invalid={fields.dataset ? true : undefined}>
              <option value="">Choose a dataset…</option>
              {[...matching, ...list.filter((d) => !matching.includes(d))].map((d) => (
                <option key={d.id} value={String(d.id)}>
                  {d.name} ({plural(d.accepted_count ?? 0, 'image')}; {d.label_names.join(', ') || 'no labels'})
                </option>
              ))}
            </select>
            <p className="small muted" id="accept-dataset-help">
              Every hospital trains on the same labels: {job.label_names.join(', ')}.
              {datasets.data && matching.length === 0 && ` None of ${site.site.name}’s datasets has exactly these labels yet: create one, or relabel images, then come back.`}
            </p>
            {fields.dataset && <p className="field-error">{fields.dataset}</p>}
            <ErrorNotice error={datasets.error} onRetry={datasets.reload} />
          </div>
          <ErrorNotice error={error instanceof ApiError && fields.dataset ? null : error} />
          <div className="actions">
            <button type="button" className="btn btn-primary" disabled={busy || !dataset} onClick={accept}>
              {busy ? 'Accepting…' : `Accept for ${site.site.name}`}
            </button>
            <button type="button" className="btn btn-danger" disabled={busy} onClick={() => setDeclining(true)}>
              Decline
            </button>
          </div>
        </>
      )}
      {declining && (
        <ConfirmDialog
          title={`Decline for ${site.site.name}?`}
          confirmLabel="Decline"
          danger
          onClose={() => setDeclining(false)}
          onConfirm={async () => {
            onAnswered(await api.post<FederatedJob>(`/federated-jobs/${job.id}/decline/`, { site: slug }));
            setDeclining(false);
          }}
        >
          <p>
            {site.site.name} takes no part and none of its images are used. The others go on without it, or the training stops if
            too few hospitals are left. You cannot change this answer later.
          </p>
        </ConfirmDialog>
      )}
    </section>
  );
}

/** Rounds: who answered each one, and how the combined model did, as a chart and a table. */
export function RoundsView({ job }: { job: FederatedJob }) {
  const training = job.round_details.filter((r) => r.number > 0);
  const prep = job.round_details.find((r) => r.number === 0);
  if (!prep && training.length === 0) return null;
  const byNumber = Array.from({ length: job.rounds }, (_, i) => training.find((r) => r.number === i + 1) ?? null);
  const initiator = participantOf(job, job.initiator_site)?.site_name ?? job.initiator_site;
  const hasMetrics = training.some((r) => r.metrics?.val_auc != null || r.metrics?.val_accuracy != null);
  return (
    <section className="card" aria-labelledby="rounds-title">
      <h2 id="rounds-title">Rounds</h2>
      {hasMetrics && (
        <LineChart
          title="How the combined model did after each round"
          xLabel="Round"
          yLabel="Score (higher is better)"
          yMax={1}
          yFmt={(v) => v.toFixed(1)}
          series={[
            { name: 'Separates cases (AUC)', values: byNumber.map((r) => r?.metrics?.val_auc ?? null), className: 'series-2' },
            { name: 'Right answers (accuracy)', values: byNumber.map((r) => r?.metrics?.val_accuracy ?? null), className: 'series-3' },
          ]}
        />
      )}
      <p className="small muted">
        Scores are each hospital’s tuning images, averaged with more weight for hospitals with more images. No image left any hospital.
      </p>
      <div className="table-wrap">
        <table className="table" data-testid="federated-rounds">
          <thead>
            <tr>
              <th scope="col">Round</th>
              <th scope="col">Hospitals that answered</th>
              <th scope="col">Learning images</th>
              <th scope="col">Separates cases (AUC)</th>
              <th scope="col">Right answers</th>
            </tr>
          </thead>
          <tbody>
            {prep && (
              <tr>
                <th scope="row">Start</th>
                <td colSpan={4}>
                  {prep.status === 'done'
                    ? `The common starting model was prepared at ${initiator}.`
                    : prep.status === 'running'
                      ? `${initiator} is preparing the common starting model.`
                      : `Preparing the starting model did not finish (${prep.status}).`}
                </td>
              </tr>
            )}
            {training.map((r) => <RoundRow key={r.number} job={job} round={r} />)}
          </tbody>
        </table>
      </div>
    </section>
  );
}

function RoundRow({ job, round }: { job: FederatedJob; round: FederatedRound }) {
  const names = new Map(job.participants.map((p) => [p.site, p.site_name]));
  const m = round.metrics ?? {};
  return (
    <tr>
      <th scope="row">
        {round.number} of {job.rounds}
        <span className="small muted block round-summary">{roundSummary(job, round)}</span>
      </th>
      <td>
        <ul className="plain-list small">
          {round.expected_sites.map((slug) => {
            const answer = siteAnswer(job, round, slug);
            const update = round.updates.find((u) => u.site === slug);
            return (
              <li key={slug} className={`answer answer-${answer}`}>
                <span aria-hidden="true">{answer === 'sent' ? '✓ ' : answer === 'working' || answer === 'waiting' ? '… ' : '✗ '}</span>
                {names.get(slug) ?? slug}: {ANSWER_TEXT[answer]}
                {update?.reason ? ` (${plainHistory(job, update.reason)})` : ''}
              </li>
            );
          })}
        </ul>
      </td>
      <td>{m.training_images != null ? m.training_images.toLocaleString() : '—'}</td>
      <td>{m.val_auc != null ? m.val_auc.toFixed(2) : '—'}</td>
      <td>{m.val_accuracy != null ? percent(m.val_accuracy) : '—'}</td>
    </tr>
  );
}
