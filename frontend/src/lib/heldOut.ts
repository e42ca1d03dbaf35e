/** A finished cross-site model on each hospital's held-out images, beside the model that hospital trained alone. */
import type { FederatedJob, HeldOutCheck, HeldOutModel, Participant } from '../api/types';

export interface HeldOutRow {
  site: string;
  siteName: string;
  /** Held-out images, or '—'. */
  images: string;
  federated: string;
  local: string;
  /** The verdict in a plain sentence. */
  words: string;
  tone: 'good' | 'bad' | 'neutral' | 'waiting';
}

/** "0.81 (likely 0.70–0.90)": an AUC with its 95 % range, or a dash. */
export function aucWithRange(model: HeldOutModel | null | undefined): string {
  if (model?.auc == null) return '—';
  const range = model.auc_ci;
  const value = model.auc.toFixed(2);
  return range && range.length === 2 ? `${value} (likely ${range[0].toFixed(2)}–${range[1].toFixed(2)})` : value;
}

function imagesWords(model: HeldOutModel | null | undefined): string {
  if (!model) return '—';
  return `${model.n} ${model.n === 1 ? 'image' : 'images'}`;
}

function checkedWords(check: HeldOutCheck): Pick<HeldOutRow, 'words' | 'tone'> {
  const name = check.site_name;
  const n = check.federated?.n ?? 0;
  if (!check.local) {
    return {
      words: `The model trained across hospitals was checked on ${n} images ${name} had kept aside. ${name} has no model of its own to compare it with: ${check.local_note || 'none was kept.'}`,
      tone: 'neutral',
    };
  }
  switch (check.comparison?.verdict) {
    case 'better':
      return { words: `At ${name}, the model trained across hospitals did better than ${name}’s own model on the same ${n} images.`, tone: 'good' };
    case 'worse':
      return { words: `At ${name}, the model trained across hospitals did worse than ${name}’s own model on the same ${n} images.`, tone: 'bad' };
    case 'no_clear_difference':
      return { words: `At ${name}, no clear difference between the model trained across hospitals and ${name}’s own model.`, tone: 'neutral' };
    default:
      return { words: `Too few images kept aside at ${name} (${n}) to tell whether the model trained across hospitals is better or worse than its own.`, tone: 'neutral' };
  }
}

function rowFor(job: FederatedJob, p: Participant): HeldOutRow {
  const base = { site: p.site, siteName: p.site_name, images: '—', federated: '—', local: '—' };
  if (p.status === 'withdrawn') return { ...base, words: `${p.site_name} withdrew from the training, so it was not checked there.`, tone: 'neutral' };
  if (p.status !== 'accepted') return { ...base, words: `${p.site_name} took no part.`, tone: 'neutral' };
  const check = (job.held_out ?? []).find((c) => c.site === p.site);
  if (!check) return { ...base, words: 'Not checked.', tone: 'neutral' };
  if (check.status === 'failed') {
    return { ...base, words: `Could not be checked at ${p.site_name}: ${check.message || 'no reason was given.'} The training itself is not affected.`, tone: 'bad' };
  }
  if (check.status !== 'succeeded') return { ...base, words: `Being checked at ${p.site_name}…`, tone: 'waiting' };
  return {
    ...base,
    images: imagesWords(check.federated),
    federated: aucWithRange(check.federated),
    local: check.local ? aucWithRange(check.local) : 'none',
    ...checkedWords(check),
  };
}

/** One row per hospital that was invited: checked, being checked, failed with the reason, withdrew or took no part. */
export function heldOutRows(job: FederatedJob): HeldOutRow[] {
  return job.participants.map((p) => rowFor(job, p));
}

/** What "its own model" means, for the table's caption. */
export function localModelWords(job: FederatedJob): string {
  const epochs = `${job.local_epochs} ${job.local_epochs === 1 ? 'pass' : 'passes'}`;
  return (
    'Each hospital’s own model is the one it trained in the first round on its own images only, from the same starting ' +
    `model (${epochs} over its images): the model it would have had without the other hospitals, after one round.` +
    (job.strategy === 'relay' ? ' When the model visits one hospital after another, only the first hospital has one.' : '')
  );
}

/** Whether some hospital is still checking the finished model (the page keeps refreshing until all have answered). */
export function heldOutPending(job: FederatedJob): boolean {
  return (job.held_out ?? []).some((c) => c.status === 'queued' || c.status === 'running');
}
