import { afterEach, describe, expect, it } from 'vitest';
import { cleanup, render, screen, within } from '@testing-library/react';
import { ConfusionMatrix, LineChart, RocCurve, rocPoints } from './charts';
import { evaluationSummary, aucGrade, rocCurves } from '../lib/metrics';
import { EvaluationView } from '../pages/Job';

afterEach(cleanup);

describe('rocPoints', () => {
  it('sorts and anchors the curve at both corners, dropping bad numbers', () => {
    expect(rocPoints([0.5, 0.1, NaN], [0.9, 0.6, 0.3])).toEqual([[0, 0], [0.1, 0.6], [0.5, 0.9], [1, 1]]);
    expect(rocPoints([], [])).toEqual([[0, 0], [1, 1]]);
  });
});

describe('RocCurve', () => {
  it('draws a labelled path from the bottom-left to the top-right', () => {
    render(<RocCurve curves={[['pneumonia', { fpr: [0, 0.2, 1], tpr: [0, 0.8, 1] }]]} auc={0.87} />);
    const svg = screen.getByRole('img', { name: /ROC curve/ });
    expect(svg.querySelector('desc')?.textContent).toMatch(/0\.87/);
    const d = screen.getByTestId('roc-path').getAttribute('d')!;
    expect(d.startsWith('M44.0,200.0')).toBe(true); // (0,0) is the bottom-left of the plot
    expect(d.endsWith('L300.0,12.0')).toBe(true); // (1,1) is the top-right
  });
});

describe('ConfusionMatrix', () => {
  it('shows counts and row shares with labelled rows and columns', () => {
    render(<ConfusionMatrix matrix={[[40, 10], [5, 45]]} labels={['normal', 'pneumonia']} />);
    const table = screen.getByTestId('confusion-matrix');
    expect(within(table).getAllByRole('columnheader').map((h) => h.textContent)).toContain('pneumonia');
    expect(within(table).getAllByRole('rowheader').map((h) => h.textContent)).toEqual(['normal', 'pneumonia']);
    const cells = within(table).getAllByRole('cell').filter((c) => c.querySelector('.count'));
    expect(cells.map((c) => c.querySelector('.count')!.textContent)).toEqual(['40', '10', '5', '45']);
    expect(cells[3].querySelector('.share')!.textContent).toBe('90%');
    expect(cells[0].className).toBe('hit');
  });
});

describe('LineChart', () => {
  it('skips missing values and draws one group per series', () => {
    const { container } = render(
      <LineChart title="Loss" xLabel="Round" yLabel="Loss" series={[{ name: 'a', values: [1, null, 0.5], className: 'series-1' }, { name: 'b', values: [], className: 'series-2' }]} />,
    );
    expect(container.querySelectorAll('g.series')).toHaveLength(1);
    expect(container.querySelectorAll('circle')).toHaveLength(2);
  });
});

describe('evaluation in plain language', () => {
  const ev = {
    accuracy: 0.85, balanced_accuracy: 0.84, auc: 0.912, sensitivity: 0.87, specificity: 0.8,
    confusion_matrix: [[40, 10], [5, 45]], roc: { pneumonia: { fpr: [0, 0.2, 1], tpr: [0, 0.87, 1] } }, ece: 0.05,
    label_names: ['normal', 'pneumonia'], n: 100, warnings: [],
  };
  it('says what sensitivity and specificity mean for 100 patients', () => {
    const lines = evaluationSummary(ev);
    expect(lines[0]).toBe('Out of 100 patients with “pneumonia”, the model finds 87 (sensitivity).');
    expect(lines[1]).toMatch(/correctly clears 80; it raises a false alarm for 20/);
    expect(aucGrade(0.912)).toBe('excellent');
    expect(aucGrade(0.55)).toBe('no better than chance');
  });
  it('renders the summary, tiles, ROC curve and matrix', () => {
    render(<EvaluationView evaluation={ev} />);
    expect(screen.getByText(/the model finds 87/)).toBeTruthy();
    expect(screen.getByText('How well it separates cases (AUC)')).toBeTruthy();
    expect(screen.getByText('0.91')).toBeTruthy();
    expect(screen.getByTestId('roc-curve')).toBeTruthy();
    expect(screen.getByTestId('confusion-matrix')).toBeTruthy();
    expect(screen.getByText('5.0%')).toBeTruthy(); // calibration, from `ece`
  });

  it('accepts the older single-curve ROC and explains several labels one by one', () => {
    expect(rocCurves({ label_names: ['a', 'b'], roc: { fpr: [0, 1], tpr: [0, 1] } })).toEqual([['b', { fpr: [0, 1], tpr: [0, 1] }]]);
    const lines = evaluationSummary({
      label_names: ['normal', 'benign', 'malignant'],
      per_class: { normal: { count: 5, sensitivity: 0.9, specificity: 0.8 }, benign: { count: 5, sensitivity: 0.5, specificity: 0.9 }, malignant: { count: 5, sensitivity: null, specificity: null } },
      auc: 0.8,
    });
    expect(lines).toContain('Out of 100 patients with “benign”, the model recognises 50.');
    expect(lines.some((l) => l.includes('malignant'))).toBe(false);
  });
});

describe('hasEvaluation', () => {
  it('treats the empty evaluation of a queued or running job as nothing to show', async () => {
    const { hasEvaluation } = await import('../pages/Job');
    expect(hasEvaluation({} as never)).toBe(false);
    expect(hasEvaluation(null)).toBe(false);
    expect(hasEvaluation({ label_names: ['a', 'b'], auc: 0.8 })).toBe(true);
  });
});

describe('keptRoundText', () => {
  const base = { label_names: ['a', 'b'] };
  it('says which round was kept and why the run ended, in plain words', async () => {
    const { keptRoundText } = await import('../pages/Job');
    expect(keptRoundText({ ...base, epochs_run: 25, kept_epoch: 25, stop_reason: 'completed' })).toBe(
      'The model kept is the one after round 25 of 25.',
    );
    expect(keptRoundText({ ...base, epochs_run: 21, kept_epoch: 13, stop_reason: 'early_stopping' })).toBe(
      'The model kept is the one after round 13 of 21: later rounds did worse on the tuning images; ' +
        'learning stopped early because the tuning images showed no more improvement.',
    );
    expect(keptRoundText({ ...base, epochs_run: 7, kept_epoch: 7, planned_epochs: 7, stop_reason: 'time_budget' })).toBe(
      'The model kept is the one after round 7 of 7; the time limit allowed 7 rounds.',
    );
  });
  it('says nothing for the quick model or older runs that did not report it', async () => {
    const { keptRoundText } = await import('../pages/Job');
    expect(keptRoundText({ ...base, epochs_run: 0 })).toBeNull();
    expect(keptRoundText(base)).toBeNull();
    expect(keptRoundText(null)).toBeNull();
  });
});
