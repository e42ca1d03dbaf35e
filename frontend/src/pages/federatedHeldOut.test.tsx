import { afterEach, describe, expect, it, vi } from 'vitest';
import { cleanup, render, screen, within } from '@testing-library/react';
import type { FederatedJob, HeldOutCheck, HeldOutModel, Participant } from '../api/types';
import { SessionProvider } from '../session';
import { FederatedJobDetail } from './Federated';
import { aucWithRange, heldOutPending, heldOutRows } from '../lib/heldOut';
import { plainHistory } from '../lib/federation';
import { fakeHub } from '../testing/fakeHub';

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
});

function participant(site: string, site_name: string, status: Participant['status'] = 'accepted'): Participant {
  return {
    site, site_name, order: 0, status, dataset: null, dataset_name: null, train_count: 20, responded_at: null,
    work_round: null, work_state: 'idle', attempt: 0, progress: {},
  };
}

const model = (auc: number, ci: [number, number], n = 40): HeldOutModel => ({ n, auc, auc_ci: ci, accuracy: 0.8, accuracy_ci: [0.6, 0.9] });

function check(site: string, site_name: string, extra: Partial<HeldOutCheck> = {}): HeldOutCheck {
  return {
    site, site_name, status: 'succeeded', attempt: 1, federated: model(0.86, [0.78, 0.93]), local: model(0.71, [0.6, 0.8]),
    comparison: { auc_difference: 0.15, auc_difference_ci: [0.05, 0.25], verdict: 'better' }, local_source: 'first_round',
    local_note: '', error_code: '', message: '', finished_at: null, ...extra,
  };
}

const JOB: FederatedJob = {
  id: 4, name: 'Mass finder', initiator_site: 'st-anne', strategy: 'fedavg', task: 'classification', rounds: 3, local_epochs: 2, min_participants: 2,
  round_deadline_seconds: 3600, starting_point: 1, start_version: null, architecture: 'small_cnn', input_size: 64,
  label_names: ['mass', 'normal'], config: {}, status: 'succeeded', status_text: '', current_round: 3, final_version: 9,
  error_code: '', message: '',
  participants: [
    participant('st-anne', 'St Anne’s Hospital'),
    participant('borough', 'Borough General'),
    participant('site-c', 'Cottage Hospital'),
    participant('site-d', 'Dale Infirmary', 'withdrawn'),
  ],
  round_details: [],
  held_out: [
    check('st-anne', 'St Anne’s Hospital'),
    check('borough', 'Borough General', {
      status: 'failed', federated: null, local: null, comparison: null, error_code: 'no_held_out_images',
      message: 'This hospital’s dataset has no held-out (test) images.',
    }),
    check('site-c', 'Cottage Hospital', {
      local: model(0.84, [0.74, 0.92], 12), federated: model(0.85, [0.7, 0.95], 12),
      comparison: { auc_difference: 0.01, auc_difference_ci: [-0.2, 0.2], verdict: 'too_few' },
    }),
  ],
  events: [{ at: '2026-01-01T08:00:00Z', text: 'Cottage Hospital sent round 1: 14 training images, AUC 0.790 on tuning images.' }],
  created_at: '', started_at: '', finished_at: null,
};

describe('the finished model checked on each hospital’s held-out images', () => {
  it('puts each hospital’s own model beside the model trained across hospitals, in plain words', () => {
    const rows = heldOutRows(JOB);
    expect(rows.map((r) => [r.siteName, r.images, r.federated, r.local])).toEqual([
      ['St Anne’s Hospital', '40 images', '0.86 (likely 0.78–0.93)', '0.71 (likely 0.60–0.80)'],
      ['Borough General', '—', '—', '—'],
      ['Cottage Hospital', '12 images', '0.85 (likely 0.70–0.95)', '0.84 (likely 0.74–0.92)'],
      ['Dale Infirmary', '—', '—', '—'],
    ]);
    expect(rows.map((r) => r.words)).toEqual([
      'At St Anne’s Hospital, the model trained across hospitals did better than St Anne’s Hospital’s own model on the same 40 images.',
      'Could not be checked at Borough General: This hospital’s dataset has no held-out (test) images. The training itself is not affected.',
      'Too few images kept aside at Cottage Hospital (12) to tell whether the model trained across hospitals is better or worse than its own.',
      'Dale Infirmary withdrew from the training, so it was not checked there.',
    ]);
  });

  it('says so when a hospital has no model of its own, and while it is still checking', () => {
    const relay: FederatedJob = {
      ...JOB,
      held_out: [
        check('borough', 'Borough General', {
          local: null, comparison: null, local_source: '',
          local_note: 'In a relay, Borough General’s first turn started from the model of the hospital before it.',
        }),
        check('st-anne', 'St Anne’s Hospital', { status: 'running', federated: null, local: null, comparison: null }),
      ],
    };
    const rows = heldOutRows(relay);
    expect(rows[1].local).toBe('none');
    expect(rows[1].words).toMatch(/^The model trained across hospitals was checked on 40 images Borough General had kept aside\. Borough General has no model of its own to compare it with: In a relay/);
    expect(rows[0].words).toBe('Being checked at St Anne’s Hospital…');
    expect(heldOutPending(relay)).toBe(true);
    expect(heldOutPending(JOB)).toBe(false);
    expect(aucWithRange(null)).toBe('—');
  });

  it('shows the table on a finished job, with hospital names and no slug or jargon', async () => {
    const me = { username: 'anne', display_name: '', is_token: false, is_operator: false, memberships: [{ site: { slug: 'st-anne', name: 'St Anne’s Hospital', agent_last_seen_at: null }, role: 'clinician' as const }] };
    fakeHub({ 'GET /auth/me/': me, 'GET /federated-jobs/4/': JOB });
    render(<SessionProvider><FederatedJobDetail site={me.memberships[0]} id="4" /></SessionProvider>);
    const table = await screen.findByTestId('federated-held-out');
    const rows = within(table).getAllByRole('row');
    expect(rows).toHaveLength(5);
    expect(rows[1].textContent).toContain('did better than St Anne’s Hospital’s own model');
    expect(table.textContent).toMatch(/own model is the one it trained in the first round on its own images only/);
    expect(table.textContent).not.toMatch(/\b(st-anne|borough|site-c|site-d)\b|federated|FedAvg|held_out|first_round/);
  });

  it('leaves history lines the hub now writes in plain words as they are', () => {
    expect(plainHistory(JOB, JOB.events[0].text)).toBe(JOB.events[0].text);
  });
});
