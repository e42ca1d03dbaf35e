import type { FederatedJob } from '../api/types';
import { heldOutRows, localModelWords } from '../lib/heldOut';

const TONE_CLASS = { good: 'badge badge-ok', bad: 'badge badge-bad', neutral: '', waiting: 'muted' } as const;

/** The finished cross-site model on each hospital's held-out images, beside the model that hospital trained alone. */
export function HeldOutTable({ job }: { job: FederatedJob }) {
  if (job.status !== 'succeeded') return null;
  const rows = heldOutRows(job);
  return (
    <section className="card" aria-labelledby="held-out-title" data-testid="federated-held-out">
      <h2 id="held-out-title">Checked on images kept aside at each hospital</h2>
      <p className="small">
        Each hospital checks the final model on its own held-out images: images set aside, patient by patient, that no model
        learned from or was tuned on. Only the results come back, never an image. AUC says how well a model tells cases apart
        (1.00 is perfect, 0.50 is a coin toss); the range is where the true value likely lies (95 %).
      </p>
      <p className="small muted">{localModelWords(job)}</p>
      <div className="table-wrap">
        <table className="table">
          <thead>
            <tr>
              <th scope="col">Hospital</th>
              <th scope="col">Images kept aside</th>
              <th scope="col">Model trained across hospitals (AUC)</th>
              <th scope="col">Its own model (AUC)</th>
              <th scope="col">What this means</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((r) => (
              <tr key={r.site}>
                <th scope="row">{r.siteName}</th>
                <td>{r.images}</td>
                <td>{r.federated}</td>
                <td>{r.local}</td>
                <td><span className={TONE_CLASS[r.tone]}>{r.words}</span></td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </section>
  );
}
