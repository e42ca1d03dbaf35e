import { afterEach, describe, expect, it, vi } from 'vitest';
import { cleanup, render, screen, within } from '@testing-library/react';
import type { FederatedJob, FederatedRound, Participant } from '../api/types';
import { SessionProvider } from '../session';
import { FederatedJobDetail } from './Federated';
import { plainHistory, roundSummary } from '../lib/federation';
import { fakeHub } from '../testing/fakeHub';

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
});

const SITES: [string, string][] = [['st-anne', 'St Anne’s Hospital'], ['borough', 'Borough General'], ['site-c', 'Cottage Hospital']];

function participant(slug: string, name: string, order: number): Participant {
  return {
    site: slug, site_name: name, order, status: 'accepted', dataset: null, dataset_name: null, train_count: 14,
    responded_at: null, work_round: null, work_state: 'idle', attempt: 0, progress: {},
  };
}

const accepted = (site: string) => ({ site, status: 'accepted' as const, sample_count: 14, metrics: {}, code: '', reason: '', created_at: '' });

function round(number: number, extra: Partial<FederatedRound> = {}): FederatedRound {
  return {
    number, status: 'done', expected_sites: SITES.map(([s]) => s), current_site: null, deadline_at: '', weights_sha256: '',
    metrics: {}, model_version: null, updates: [], started_at: '', finished_at: null, ...extra,
  };
}

const JOB: FederatedJob = {
  id: 3, name: 'Mass finder across hospitals', initiator_site: 'st-anne', strategy: 'fedavg', task: 'classification', rounds: 3, local_epochs: 1,
  min_participants: 2, round_deadline_seconds: 3600, starting_point: 1, start_version: null, architecture: 'small_cnn',
  input_size: 64, label_names: ['mass', 'normal'], config: {}, status: 'running', status_text: '', current_round: 2,
  final_version: null, error_code: '', message: '', held_out: [],
  participants: SITES.map(([slug, name], i) => participant(slug, name, i)),
  round_details: [
    round(0, { expected_sites: ['st-anne'], updates: [accepted('st-anne')] }),
    round(1, { metrics: { sites: 3, val_auc: 0.8123, val_accuracy: 0.85 }, updates: SITES.map(([s]) => accepted(s)) }),
    round(2, {
      status: 'running',
      updates: [accepted('st-anne'), { ...accepted('borough'), status: 'failed', reason: 'The global weights could not be downloaded (503).' }],
    }),
  ],
  events: [
    { at: '2026-01-01T08:00:00Z', text: 'anne-admin proposed federated averaging (sites train in parallel) across st-anne, borough, site-c.' },
    { at: '2026-01-01T08:05:00Z', text: 'Every site answered; st-anne prepares the starting weights (round 0).' },
    { at: '2026-01-01T08:06:00Z', text: 'borough started round 1 on celery@gpu-worker-7 (attempt 2).', site: 'borough' },
    { at: '2026-01-01T08:10:00Z', text: 'site-c sent round 1: 14 training images, validation AUC 0.790.', site: 'site-c' },
    { at: '2026-01-01T08:11:00Z', text: 'Round 1 combined from 3 site(s); validation AUC 0.812.' },
  ],
  created_at: '', started_at: '', finished_at: null,
};

const SLUG = /\b(st-anne|borough|site-c)\b/;
const JARGON = /FedAvg|federated averaging|aggregat|dropout|global weights|starting weights|validation AUC|site\(s\)|celery@/i;

describe('the rounds and history of a cross-site job, in plain words', () => {
  it('sums up each round with hospital names and what the combined model did', () => {
    expect(roundSummary(JOB, JOB.round_details[1])).toBe(
      'Round 1: 3 of 3 hospitals finished; the combined model told cases apart with an AUC of 0.81 and gave 85% right answers on the hospitals’ tuning images.',
    );
    expect(roundSummary(JOB, JOB.round_details[2])).toBe('Round 2: 1 of 3 hospitals finished so far.');
    const missed = round(2, { status: 'aggregating', updates: [accepted('st-anne'), accepted('site-c')] });
    expect(roundSummary(JOB, missed)).toBe('Round 2: 2 of 3 hospitals finished (without Borough General); their models are being combined into one.');
  });

  it('names hospitals, not slugs, and leaves out technical terms in the history', () => {
    const lines = JOB.events.map((e) => plainHistory(JOB, e.text));
    expect(lines).toEqual([
      'anne-admin proposed training at all hospitals at once across St Anne’s Hospital, Borough General, Cottage Hospital.',
      'Every hospital answered; St Anne’s Hospital prepares the common starting model.',
      'Borough General started round 1 (attempt 2).',
      'Cottage Hospital sent round 1: 14 training images, AUC 0.790 on tuning images.',
      'Round 1: the models of 3 hospital(s) were combined into one; AUC 0.812 on tuning images.',
    ]);
  });

  it('shows no slug or jargon anywhere in the rounds table or the history on the page', async () => {
    const me = { username: 'anne', display_name: '', is_token: false, is_operator: false, memberships: [{ site: { slug: 'st-anne', name: 'St Anne’s Hospital', agent_last_seen_at: null }, role: 'clinician' as const }] };
    fakeHub({ 'GET /auth/me/': me, 'GET /federated-jobs/3/': JOB });
    render(<SessionProvider><FederatedJobDetail site={me.memberships[0]} id="3" /></SessionProvider>);
    const rounds = await screen.findByTestId('federated-rounds');
    expect(within(rounds).getAllByRole('row')[2].textContent).toMatch(/Round 1: 3 of 3 hospitals finished/);
    expect(rounds.textContent).toMatch(/Borough General: could not finish \(The combined model could not be downloaded \(503\)\.\)/);
    const history = screen.getByText(/History/).closest('details')!;
    for (const text of [rounds.textContent ?? '', history.textContent ?? '']) {
      expect(text).not.toMatch(SLUG);
      expect(text).not.toMatch(JARGON);
    }
  });
});
