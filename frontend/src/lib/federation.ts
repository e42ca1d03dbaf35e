/** Training across hospitals in plain words: what each state means, and how far a job has come. */
import type {
  ConsentStatus, FederatedJob, FederatedRound, FederatedStatus, Participant, Strategy, WorkState,
} from '../api/types';

export const STRATEGIES: Record<Strategy, { title: string; plain: string; method: string }> = {
  fedavg: {
    title: 'All hospitals at once, then combined',
    plain:
      'In each round every hospital trains its own copy of the model on its own images, at the same time. Pollen then ' +
      'combines the copies into one model, giving more weight to hospitals with more images.',
    method: 'Federated averaging (FedAvg)',
  },
  relay: {
    title: 'From one hospital to the next',
    plain:
      'The model visits the hospitals one after another and learns at each in turn. Only one hospital trains at a time, ' +
      'so it takes longer, but each hospital simply takes its turn when its computer is free.',
    method: 'Relay (sequential)',
  },
};

export const JOB_STATUS_TEXT: Record<FederatedStatus, string> = {
  pending: 'Waiting for hospitals to accept',
  running: 'Training across hospitals',
  succeeded: 'Finished',
  failed: 'Stopped with a problem',
  cancelled: 'Cancelled',
};

export const CONSENT_TEXT: Record<ConsentStatus, string> = {
  invited: 'Waiting for its administrator',
  accepted: 'Taking part',
  declined: 'Declined',
  withdrawn: 'Withdrew',
};

export const WORK_TEXT: Record<WorkState, string> = {
  idle: 'Waiting for its turn',
  queued: 'Waiting for the hospital’s computer',
  training: 'Training on its own images',
  sent: 'Sent its update',
  failed: 'Could not finish this round',
  missed: 'Missed the deadline',
};

/** Status classes shared with training runs, so colours mean the same everywhere. */
export const STATUS_CLASS: Record<FederatedStatus, string> = {
  pending: 'status-job-queued',
  running: 'status-job-running',
  succeeded: 'status-job-succeeded',
  failed: 'status-job-failed',
  cancelled: 'status-job-cancelled',
};

export const CONSENT_CLASS: Record<ConsentStatus, string> = {
  invited: 'status-pending',
  accepted: 'status-accepted',
  declined: 'status-rejected',
  withdrawn: 'status-rejected',
};

export const DEADLINES: [number, string][] = [
  [15 * 60, '15 minutes'],
  [60 * 60, '1 hour'],
  [4 * 60 * 60, '4 hours'],
  [24 * 60 * 60, '1 day'],
  [3 * 24 * 60 * 60, '3 days'],
  [7 * 24 * 60 * 60, '7 days'],
];

/** "45 seconds", "15 minutes", "1 hour", "2 days". */
export function durationWords(seconds: number): string {
  const units: [number, string][] = [[86400, 'day'], [3600, 'hour'], [60, 'minute']];
  for (const [size, name] of units) {
    if (seconds >= size && seconds % size === 0) {
      const n = seconds / size;
      return `${n} ${name}${n === 1 ? '' : 's'}`;
    }
  }
  if (seconds >= 60) return `${Math.round(seconds / 60)} minutes`;
  return `${seconds} seconds`;
}

export type SiteAnswer = 'sent' | 'refused' | 'failed' | 'missed' | 'working' | 'waiting';

export const ANSWER_TEXT: Record<SiteAnswer, string> = {
  sent: 'answered',
  refused: 'its trained model was refused',
  failed: 'could not finish',
  missed: 'did not answer in time',
  working: 'training',
  waiting: 'not its turn yet',
};

/** How one site stands in one round: answered, refused, failed, missed the deadline, or still at work. */
export function siteAnswer(job: FederatedJob, round: FederatedRound, slug: string): SiteAnswer {
  const update = round.updates.find((u) => u.site === slug);
  if (update) return update.status === 'accepted' ? 'sent' : update.status === 'rejected' ? 'refused' : 'failed';
  if (round.status !== 'running') return 'missed';
  if (job.strategy === 'relay' && round.number > 0 && round.current_site && round.current_site !== slug) {
    const order = round.expected_sites;
    return order.indexOf(slug) > order.indexOf(round.current_site) ? 'waiting' : 'missed';
  }
  return 'working';
}

/** 0..1: finished training rounds, plus the share of the current round that the sites have done. */
export function federatedProgress(job: FederatedJob): number {
  if (job.status === 'succeeded') return 1;
  if (!job.rounds) return 0;
  const training = job.round_details.filter((r) => r.number > 0);
  const done = training.filter((r) => r.status === 'done').length;
  const current = training.find((r) => r.status === 'running' || r.status === 'aggregating');
  let partial = 0;
  if (current && current.expected_sites.length) {
    const shares = current.expected_sites.map((slug) => {
      if (current.updates.some((u) => u.site === slug)) return 1;
      const p = job.participants.find((x) => x.site === slug);
      return p && p.work_round === current.number && p.work_state === 'training' ? clamp(p.progress?.fraction ?? 0) : 0;
    });
    partial = shares.reduce((a, b) => a + b, 0) / shares.length;
  }
  return clamp((done + partial) / job.rounds);
}

function clamp(v: number): number {
  return Number.isFinite(v) ? Math.min(1, Math.max(0, v)) : 0;
}

/** "Not started yet", "Preparing the common starting model", "Round 2 of 5". */
export function roundWords(job: FederatedJob): string {
  if (job.status === 'pending') return 'Not started yet: every hospital must answer first';
  if (job.status === 'succeeded') return `All ${job.rounds} ${job.rounds === 1 ? 'round' : 'rounds'} done`;
  const started = job.round_details.length > 0;
  if (!started) return job.status === 'running' ? 'Starting' : 'No round ran';
  if (job.current_round === 0) return `Preparing the common starting model at ${participantOf(job, job.initiator_site)?.site_name ?? job.initiator_site}`;
  return `Round ${job.current_round} of ${job.rounds}`;
}

/** The participant row of a site, if it takes part. */
export function participantOf(job: FederatedJob, slug: string): Participant | undefined {
  return job.participants.find((p) => p.site === slug);
}

/** An invitation this site still has to answer. */
export function awaitsAnswer(job: FederatedJob, slug: string): boolean {
  return job.status === 'pending' && participantOf(job, slug)?.status === 'invited';
}

export function sameLabels(a: string[], b: string[]): boolean {
  return a.length === b.length && [...a].sort().join('\u0000') === [...b].sort().join('\u0000');
}

/** Site names by slug: a clinician knows "Borough General", not "borough". */
export function siteNames(job: FederatedJob): Map<string, string> {
  return new Map(job.participants.map((p) => [p.site, p.site_name]));
}

/**
 * One round in a sentence: "Round 2: 3 of 3 hospitals finished; the combined model told cases apart with
 * an AUC of 0.81 and gave 85% right answers on the hospitals' tuning images."
 */
export function roundSummary(job: FederatedJob, round: FederatedRound): string {
  const names = siteNames(job);
  const expected = round.expected_sites.length;
  const finished = round.updates.filter((u) => u.status === 'accepted').length;
  const head = `Round ${round.number}: ${finished} of ${expected} ${expected === 1 ? 'hospital' : 'hospitals'} finished`;
  const absent = round.expected_sites
    .filter((slug) => ['refused', 'failed', 'missed'].includes(siteAnswer(job, round, slug)))
    .map((slug) => names.get(slug) ?? slug);
  const without = absent.length ? ` (without ${absent.join(' and ')})` : '';
  if (round.status === 'running') return `${head} so far.`;
  if (round.status === 'aggregating') return `${head}${without}; their models are being combined into one.`;
  if (round.status === 'done') {
    const m = round.metrics ?? {};
    const scores = [
      m.val_auc != null ? `told cases apart with an AUC of ${m.val_auc.toFixed(2)}` : '',
      m.val_accuracy != null ? `gave ${Math.round(m.val_accuracy * 100)}% right answers` : '',
    ].filter(Boolean);
    const how = scores.length ? `; the combined model ${scores.join(' and ')} on the hospitals’ tuning images` : '; their models were combined into one';
    return `${head}${without}${how}.`;
  }
  return `${head}${without}; the round ${round.status === 'cancelled' ? 'was stopped' : 'did not finish'}.`;
}

/**
 * The hub's history lines use site slugs and a few technical words; say them the way the rest of the page
 * does: hospital names, "the common starting model", "tuning images", "the combined model".
 */
const PLAIN_WORDS: [RegExp, string][] = [
  [/\bFedAvg aggregation\b/gi, 'combining'],
  [/\bfederated averaging \(sites train in parallel\)/gi, 'training at all hospitals at once'],
  [/\brelay \(the model visits each site in turn\)/gi, 'training at one hospital after another'],
  [/\bprepares the starting weights \(round 0\)/g, 'prepares the common starting model'],
  [/\bstarting weights\b/g, 'the common starting model'],
  [/\bglobal weights\b/gi, 'combined model'],
  [/\bRound (\d+) combined from (\d+) site\(s\)/g, 'Round $1: the models of $2 hospital(s) were combined into one'],
  [/\bvalidation AUC (\d+(?:\.\d+)?)/g, 'AUC $1 on tuning images'],
  [/\bThe update from\b/g, 'The trained model from'],
  [/\b(A second|A late) update from\b/g, '$1 trained model from'],
  [/\bsent its update\b/g, 'sent its trained model'],
  [/\ba dropout\b/gi, 'left out from then on'],
  [/\bsite\(s\)/g, 'hospital(s)'],
  [/\bEvery site answered\b/g, 'Every hospital answered'],
  [/\bThe worker at\b/g, 'The computer at'],
  [/ started round (\d+) on [^\s.(]+/g, ' started round $1'],
];

export function plainHistory(job: FederatedJob, text: string): string {
  let out = text;
  for (const [slug, name] of siteNames(job)) {
    out = out.replace(new RegExp(`(^|[\\s,;(])${escapeRegExp(slug)}(?=$|[\\s,;.:)'’])`, 'g'), `$1${name}`);
  }
  for (const [pattern, words] of PLAIN_WORDS) out = out.replace(pattern, words);
  return out;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
