import { afterEach, describe, expect, it, vi } from 'vitest';
import { cleanup, fireEvent, render, screen, waitFor, within } from '@testing-library/react';
import type { Job, Membership, ParentComparison, PublishedVersion } from '../api/types';
import { ParentComparisonView, differenceInWords, withRange } from './ParentComparison';
import { PublishPanel } from './PublishPanel';
import { fakeHub, refusal, reply } from '../testing/fakeHub';
import { jobFixture } from '../testing/fixtures';

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
});

const SITE: Membership = { site: { slug: 'st-anne', name: 'St Anne’s Hospital', agent_last_seen_at: null }, role: 'clinician' };

function comparison(extra: Partial<ParentComparison> = {}): ParentComparison {
  return {
    verdict: 'worse',
    verdict_text: 'Worse than the model it started from, on the same check images.',
    check_images: 120,
    images_per_label: { normal: 60, pneumonia: 60 },
    child: { auc: 0.55, auc_ci: [0.45, 0.65], accuracy: 0.5, accuracy_ci: [0.41, 0.59], sensitivity: 0.4, sensitivity_ci: [0.28, 0.53], specificity: 0.6, specificity_ci: [0.47, 0.71] },
    parent: { auc: 0.85, auc_ci: [0.78, 0.91], accuracy: 0.8, accuracy_ci: [0.72, 0.86], sensitivity: 0.8, sensitivity_ci: [0.68, 0.88], specificity: 0.8, specificity_ci: [0.68, 0.88] },
    auc_difference: -0.3,
    auc_difference_ci: [-0.4, -0.2],
    ...extra,
  };
}

function job(parent_comparison: ParentComparison | null): Job {
  return jobFixture({
    id: 9, dataset: 3, dataset_name: 'Chest X-rays', status: 'succeeded', progress: null, message: '', history: [],
    evaluation: null, model_version: 12, parent_version: 5, parent_comparison,
  });
}

const PUBLISHED = { id: 41, published_model: 4, model_name: 'Chest X-rays (St Anne’s Hospital)', number: 1, status: 'published' } as PublishedVersion;

function hub(publish: unknown = reply(201, PUBLISHED)) {
  return fakeHub(
    { 'GET /sites/': { count: 0, next: null, previous: null, results: [] }, 'POST /marketplace/versions/': publish },
    { schemaPaths: ['/marketplace/versions/'] },
  );
}

async function openDialog() {
  fireEvent.click(await screen.findByRole('button', { name: 'Publish to the marketplace' }));
  return screen.getByRole('dialog');
}

describe('a fine-tune beside the model it started from', () => {
  it('shows both models side by side with their ranges and the verdict in plain words', () => {
    render(<ParentComparisonView comparison={comparison()} />);
    expect(screen.getByTestId('parent-verdict').textContent).toContain('Worse than the model it started from');
    const rows = within(screen.getByRole('table')).getAllByRole('row');
    expect(rows[0].textContent).toBe('ResultThis modelThe model it started from');
    const aucRow = screen.getByRole('row', { name: /separates cases/ });
    expect(aucRow.textContent).toContain('0.55 (likely between 0.45 and 0.65)');
    expect(aucRow.textContent).toContain('0.85 (likely between 0.78 and 0.91)');
    expect(screen.getByRole('row', { name: /Cases found/ }).textContent).toContain('40% (likely between 28% and 53%)');
    expect(screen.getByText(/120 check images \(60 normal, 60 pneumonia\)/)).toBeTruthy();
    expect(screen.getByText(/with the model it started from: 0.30 lower \(likely between 0.40 lower and 0.20 lower\)\./)).toBeTruthy();
  });

  it('says why when the two could not be compared, without an empty table', () => {
    render(<ParentComparisonView comparison={{ verdict: 'not_compared', verdict_text: 'It was not compared with the model it started from.', reason: 'It tells apart other labels.' }} />);
    expect(screen.getByTestId('parent-verdict').textContent).toContain('not compared with the model it started from. It tells apart other labels.');
    expect(screen.queryByRole('table')).toBeNull();
  });

  it('words a range and a difference that straddles zero', () => {
    expect(withRange(null, null, (v) => v.toFixed(2))).toBe('—');
    expect(withRange(0.7, null, (v) => v.toFixed(2))).toBe('0.70');
    expect(differenceInWords(comparison({ auc_difference: 0.02, auc_difference_ci: [-0.05, 0.09] }))).toBe(
      '0.02 higher (likely between 0.05 lower and 0.09 higher)',
    );
  });
});

describe('publishing a fine-tune', () => {
  it('warns when it did worse and publishes only once the user confirms', async () => {
    const fake = hub();
    render(<PublishPanel site={SITE} source={{ job: job(comparison()) }} />);
    const dialog = await openDialog();
    const warning = within(dialog).getByTestId('publish-comparison-warning');
    expect(warning.textContent).toContain('Worse than the model it started from');
    expect(warning.textContent).toContain('On 120 check images it scored AUC 0.55; the model it started from scored 0.85.');
    const publish = within(dialog).getByRole('button', { name: 'Publish' });
    expect((publish as HTMLButtonElement).disabled).toBe(true);
    fireEvent.click(within(warning).getByRole('checkbox'));
    fireEvent.click(publish);
    await waitFor(() => expect(fake.sent('POST', '/marketplace/versions/')).toHaveLength(1));
    expect(fake.sent('POST', '/marketplace/versions/')[0].body).toMatchObject({ job: 9, acknowledge_comparison: true });
    expect((await screen.findByTestId('publish-status')).textContent).toContain('is published');
  });

  it('asks nothing when the fine-tune is at least as good', async () => {
    const fake = hub();
    render(<PublishPanel site={SITE} source={{ job: job(comparison({ verdict: 'better', verdict_text: 'Better than the model it started from.' })) }} />);
    const dialog = await openDialog();
    expect(within(dialog).queryByTestId('publish-comparison-warning')).toBeNull();
    fireEvent.click(within(dialog).getByRole('button', { name: 'Publish' }));
    await waitFor(() => expect(fake.sent('POST', '/marketplace/versions/')).toHaveLength(1));
    expect(fake.sent('POST', '/marketplace/versions/')[0].body).not.toHaveProperty('acknowledge_comparison');
  });

  it('shows the hub’s warning when it refuses, then sends the confirmation', async () => {
    let tries = 0;
    const fake = hub(() =>
      ++tries === 1
        ? refusal(409, 'comparison_warning', 'Too few check images to tell. To publish it anyway, send acknowledge_comparison: true.')
        : reply(201, PUBLISHED),
    );
    render(<PublishPanel site={SITE} source={{ job: job(null) }} />);
    const dialog = await openDialog();
    fireEvent.click(within(dialog).getByRole('button', { name: 'Publish' }));
    const warning = await within(dialog).findByTestId('publish-comparison-warning');
    expect(warning.textContent).toContain('Too few check images to tell.');
    expect((within(dialog).getByRole('button', { name: 'Publish' }) as HTMLButtonElement).disabled).toBe(true);
    fireEvent.click(within(warning).getByRole('checkbox'));
    fireEvent.click(within(dialog).getByRole('button', { name: 'Publish' }));
    await waitFor(() => expect(fake.sent('POST', '/marketplace/versions/')).toHaveLength(2));
    expect(fake.sent('POST', '/marketplace/versions/')[1].body).toMatchObject({ acknowledge_comparison: true });
  });
});

/** An outlining fine-tune beside its parent, as the site agent reports it (workers/pollen_agent/ml/compare.py). */
function diceComparison(extra: Partial<ParentComparison> = {}): ParentComparison {
  return {
    verdict: 'worse',
    verdict_text: 'Worse than the model it started from, on the same check images.',
    metric: 'dice',
    check_images: 40,
    child: { dice: 0.71, dice_ci: [0.66, 0.76] },
    parent: { dice: 0.78, dice_ci: [0.74, 0.82] },
    dice_difference: -0.07,
    dice_difference_ci: [-0.11, -0.03],
    ...extra,
  };
}

describe('an outlining fine-tune beside the model it started from', () => {
  it('compares the mean Dice with its ranges, never an AUC', () => {
    render(<ParentComparisonView comparison={diceComparison()} />);
    const rows = within(screen.getByRole('table')).getAllByRole('row');
    expect(rows.map((r) => r.textContent)).toEqual([
      'ResultThis modelThe model it started from',
      'Overlap with the expert’s outline (mean Dice; 1 is perfect)0.71 (likely between 0.66 and 0.76)0.78 (likely between 0.74 and 0.82)',
    ]);
    expect(screen.getByText(/same 40 check images:/)).toBeTruthy();
    expect(screen.getByTestId('parent-difference').textContent).toBe(
      'This model’s mean Dice compared image for image with the model it started from: 0.07 lower (likely between 0.11 lower and 0.03 lower).',
    );
    expect(document.body.textContent).not.toMatch(/AUC/);
  });

  it('reads a comparison stored before it named its metric by the numbers it carries', () => {
    const { metric: _metric, ...older } = diceComparison({ dice_difference: 0.02, dice_difference_ci: [-0.01, 0.05] });
    expect(differenceInWords(older)).toBe('0.02 higher (likely between 0.01 lower and 0.05 higher)');
  });

  it('says Dice in the publish warning', async () => {
    hub();
    render(<PublishPanel site={SITE} source={{ job: job(diceComparison()) }} />);
    const dialog = await openDialog();
    const warning = within(dialog).getByTestId('publish-comparison-warning');
    expect(warning.textContent).toContain('On 40 check images it scored a mean Dice of 0.71; the model it started from scored 0.78.');
    expect(warning.textContent).not.toMatch(/AUC/);
  });
});
