import { afterEach, describe, expect, it, vi } from 'vitest';
import { cleanup, fireEvent, render, screen, waitFor } from '@testing-library/react';
import type { Job, Membership } from '../api/types';
import { cancelQuestion, JobPage, keptRoundText } from './Job';
import { JobsPage } from './Jobs';
import { fakeHub } from '../testing/fakeHub';
import { jobFixture } from '../testing/fixtures';

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
});

const SITE: Membership = { site: { slug: 'borough', name: 'Borough General', agent_last_seen_at: null }, role: 'clinician' };
const WAITING = 'Next in line; waiting for \'Chest X-ray model\' to finish.';

function job(extra: Partial<Job> = {}): Job {
  return jobFixture({
    id: 7, dataset: 2, dataset_name: 'Chest X-rays', recipe: 'full', status: 'running', progress: { phase: 'training', epoch: 3, epochs: 25 },
    message: '', history: [], evaluation: {} as Job['evaluation'], model_version: null, queue: null, ...extra,
  });
}

const rounds = (n: number) => Array.from({ length: n }, (_, i) => ({ epoch: i + 1, train_loss: 0.5, val_auc: 0.8, val_accuracy: 0.7 }));

describe('what stopping a run will do, said before it is done', () => {
  it('keeps the best model once a round has ended, and says nothing is kept before', () => {
    expect(cancelQuestion(job({ history: rounds(3) }))).toBe(
      'Stop this training run? The best model from the 3 rounds finished so far will be checked and kept, marked as stopped early. The round under way is lost.',
    );
    expect(cancelQuestion(job({ history: rounds(1) }))).toMatch(/best model from the round finished so far/);
    expect(cancelQuestion(job())).toBe('Stop this training run? No round of learning has finished yet, so nothing will be kept.');
    expect(cancelQuestion(job({ recipe: 'quick' }))).toMatch(/nothing will be kept/);
    expect(cancelQuestion(job({ status: 'queued' }))).toMatch(/not started yet, so nothing is lost/);
    expect(cancelQuestion(job({ history: rounds(25), progress: { phase: 'evaluating' } }))).toMatch(/the model is kept/);
    for (const j of [job(), job({ history: rounds(2) }), job({ recipe: 'quick' })]) {
      expect(cancelQuestion(j)).not.toMatch(/work done so far is kept/);
    }
  });

  it('asks the right question when the button is pressed', async () => {
    const hub = fakeHub({ 'GET /jobs/7/': job({ history: rounds(2) }), 'POST /jobs/7/cancel/': job({ history: rounds(2), cancel_requested: true }) });
    const confirm = vi.fn(() => true);
    vi.stubGlobal('confirm', confirm);
    render(<JobPage site={SITE} params={{ id: '7' }} />);
    fireEvent.click(await screen.findByRole('button', { name: 'Stop training' }));
    expect(confirm).toHaveBeenCalledWith(expect.stringContaining('The best model from the 2 rounds finished so far will be checked and kept'));
    await waitFor(() => expect(hub.sent('POST', '/jobs/7/cancel/')).toHaveLength(1));
  });

  it('names a kept model as stopped early, with why the run ended', async () => {
    const evaluation = { label_names: ['normal', 'pneumonia'], auc: 0.8, epochs_run: 4, kept_epoch: 4, planned_epochs: 25, stop_reason: 'cancelled' as const };
    fakeHub({ 'GET /jobs/7/': job({ status: 'cancelled', model_version: 12, history: rounds(4), evaluation, message: 'Stopped by a user after 4 of 25 rounds of learning.' }) });
    render(<JobPage site={SITE} params={{ id: '7' }} />);
    expect((await screen.findByTestId('stopped-early')).textContent).toMatch(/best of the rounds of learning that ended/);
    expect(keptRoundText(evaluation)).toBe('The model kept is the one after round 4 of 4; a user stopped the run before the 25 rounds it was planned for.');
  });
});

describe('a queued run says where it stands in line', () => {
  it('on its page', async () => {
    fakeHub({ 'GET /jobs/7/': job({ status: 'queued', progress: {}, queue: { position: 1, jobs_ahead: 0, running: ['Chest X-ray model'], text: WAITING } }) });
    render(<JobPage site={SITE} params={{ id: '7' }} />);
    expect((await screen.findByTestId('time-left')).textContent).toBe(WAITING);
  });

  it('in the list of runs', async () => {
    const third = '2nd in line; waiting for \'Chest X-ray model\' to finish and for 1 run queued before it.';
    fakeHub(
      {
        'GET /jobs/': {
          count: 2, next: null, previous: null,
          results: [
            job({ id: 9, status: 'queued', queue: { position: 2, jobs_ahead: 1, running: ['Chest X-ray model'], text: third } }),
            job({ id: 7 }),
          ],
        },
      },
      { schemaPaths: ['/jobs/'] },
    );
    render(<JobsPage site={SITE} />);
    const places = await screen.findAllByTestId('queue-place');
    expect(places.map((p) => p.textContent)).toEqual([third]);
  });
});

describe('work the site picked up again says so', () => {
  it('names the attempt while it runs, and nothing on a first attempt or once it has ended', async () => {
    fakeHub({ 'GET /jobs/7/': job({ attempt: 2 }) });
    render(<JobPage site={SITE} params={{ id: '7' }} />);
    expect((await screen.findByTestId('retry-note')).textContent).toMatch(/stopped while working on this and picked it up again \(attempt 2\)/);
    cleanup();
    fakeHub({ 'GET /jobs/7/': job({ attempt: 1 }) });
    render(<JobPage site={SITE} params={{ id: '7' }} />);
    await screen.findByTestId('time-left');
    expect(screen.queryByTestId('retry-note')).toBeNull();
  });
});
