import { useState } from 'react';
import { api, type Page } from '../api/client';
import { FINAL_JOB_STATUSES, type Job, type Membership } from '../api/types';
import { Link, useDocumentTitle } from '../router';
import { ErrorNotice, FeatureGate, Loading, Pager, ProgressBar, useApi, useInterval } from '../components/ui';
import { dateTime, progressFraction } from '../lib/format';
import { StatusBadge } from './Job';
import { isSegmentation } from '../lib/segmentation';

const PAGE_SIZE = 20;

export function JobsPage({ site }: { site: Membership }) {
  useDocumentTitle(`Training runs · ${site.site.name}`);
  return (
    <FeatureGate path="/jobs/" what="Training" title="Training runs">
      <JobsList site={site} />
    </FeatureGate>
  );
}

function JobsList({ site }: { site: Membership }) {
  const [page, setPage] = useState(1);
  const jobs = useApi((signal) => api.get<Page<Job>>('/jobs/', { site: site.site.slug, page, page_size: PAGE_SIZE }, signal), [site.site.slug, page]);
  const active = (jobs.data?.results ?? []).some((j) => !FINAL_JOB_STATUSES.includes(j.status));
  useInterval(jobs.reload, 5000, active);

  return (
    <section>
      <div className="page-head">
        <h1>Training runs</h1>
        <Link className="btn btn-primary" to={`/sites/${site.site.slug}/train`}>Train a model</Link>
      </div>
      <ErrorNotice error={jobs.error} onRetry={jobs.reload} />
      {jobs.loading && !jobs.data && <Loading what="Loading training runs" />}
      {jobs.data && jobs.data.results.length === 0 && (
        <div className="empty"><p>No training runs yet. <Link to={`/sites/${site.site.slug}/train`}>Train your first model</Link>.</p></div>
      )}
      {jobs.data && jobs.data.results.length > 0 && (
        <div className="table-wrap">
          <table className="table">
            <thead>
              <tr><th scope="col">Run</th><th scope="col">Dataset</th><th scope="col">Status</th><th scope="col">Progress</th><th scope="col">Result on check images</th><th scope="col">Started</th></tr>
            </thead>
            <tbody>
              {jobs.data.results.map((job) => (
                <tr key={job.id}>
                  <td><Link to={`/sites/${site.site.slug}/jobs/${job.id}`}>Run #{job.id}</Link></td>
                  <td>{job.dataset_name ?? `Dataset ${job.dataset}`}</td>
                  <td>
                    <StatusBadge status={job.status} />
                    {job.status === 'queued' && job.queue && <span className="small muted block" data-testid="queue-place">{job.queue.text}</span>}
                  </td>
                  <td className="progress-cell">
                    <ProgressBar value={job.status === 'succeeded' ? 1 : progressFraction(job.progress)} label={`Progress of run ${job.id}`} />
                  </td>
                  <td data-testid="job-result">{resultInWords(job)}</td>
                  <td>{dateTime(job.created_at)}</td>
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

/** A finished run's headline number, named: how well it separates cases (AUC), or how well its outlines overlap (Dice). */
export function resultInWords(job: Pick<Job, 'task' | 'evaluation'>): string {
  const ev = job.evaluation;
  if (isSegmentation(job)) return ev?.dice != null ? `Outline overlap (Dice) ${ev.dice.toFixed(2)}` : '—';
  return ev?.auc != null ? `Separates cases (AUC) ${ev.auc.toFixed(2)}` : '—';
}
