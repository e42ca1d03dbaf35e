import { afterEach, describe, expect, it, vi } from 'vitest';
import { cleanup, fireEvent, render, screen, waitFor, within } from '@testing-library/react';
import type { Dataset, Membership, SiteResult } from '../api/types';
import { defaultFinding, evaluationSummary, findingTerms } from './metrics';
import { EvaluationView } from '../pages/Job';
import { SiteResultsTable } from '../pages/Marketplace';
import { CreateDataset } from '../pages/Datasets';
import { FindingPanel } from '../components/FindingChoice';
import { TrainPage } from '../pages/Train';
import { fakeHub } from '../testing/fakeHub';

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
  window.history.replaceState(null, '', '/');
});

// The demo: the finding ("malignant") is the first label.
const DEMO = ['malignant', 'benign or normal'];

describe('the finding a model looks for', () => {
  it('is never a label that says there is nothing to find', () => {
    expect(defaultFinding(DEMO)).toBe('malignant');
    expect(defaultFinding(['normal', 'pneumonia'])).toBe('pneumonia');
    expect(defaultFinding(['No finding', 'nodule'])).toBe('nodule');
    expect(defaultFinding(['abnormal', 'normal'])).toBe('abnormal');
    expect(defaultFinding(['left', 'right'])).toBe('right');
    expect(defaultFinding(['a', 'b', 'c'])).toBe('');
  });

  it('names the recorded finding in the sentences, whatever its place in the labels', () => {
    const lines = evaluationSummary({ label_names: DEMO, positive_class: 'malignant', sensitivity: 0.75, specificity: 0.9 });
    expect(lines[0]).toBe('Out of 100 patients with “malignant”, the model finds 75 (sensitivity).');
    expect(lines[1]).toBe('Out of 100 patients who are “benign or normal”, the model correctly clears 90; it raises a false alarm for 10 (specificity).');
    expect(lines.join(' ')).not.toMatch(/healthy/i);
  });

  it('says what an older evaluation measured: the second label', () => {
    const lines = evaluationSummary({ label_names: DEMO, sensitivity: 0.5 });
    expect(lines[0]).toContain('with “benign or normal”');
  });

  it('puts the finding in the tiles of an evaluation', () => {
    render(<EvaluationView evaluation={{ label_names: DEMO, positive_class: 'malignant', sensitivity: 0.75, specificity: 0.9, auc: 0.8 }} />);
    expect(screen.getByText('“malignant” found (sensitivity)')).toBeTruthy();
    expect(screen.getByText('“benign or normal” correctly cleared (specificity)')).toBeTruthy();
    expect(screen.queryByText(/Healthy/)).toBeNull();
  });

  it('has neutral words when no finding is known', () => {
    expect(findingTerms(null).sensitivity).toBe('Cases found (sensitivity)');
  });
});

const row = (version: number, finding: string, same: boolean, tta = 'hflip', sameTta = true): SiteResult => ({
  site: 'st-anne', site_name: 'St Anne’s', version, source: 'publisher_test_split', n: 10, auc: 0.8, accuracy: 0.8,
  balanced_accuracy: 0.8, sensitivity: 0.7, specificity: 0.9, positive_class: finding, same_finding: same, tta, same_tta: sameTta, ece: null, at: null,
});

/** The "Averaged over" cell of each row of a table. */
const averagedOver = (table: HTMLElement) => {
  const column = within(table).getAllByRole('columnheader').findIndex((th) => th.textContent === 'Averaged over');
  expect(column).toBeGreaterThan(-1);
  return within(table).getAllByRole('row').slice(1).map((tr) => tr.children[column].textContent);
};

describe('per-hospital results', () => {
  it('never puts versions that look for different findings in one table', () => {
    render(<SiteResultsTable rows={[row(2, 'malignant', true), row(1, 'benign or normal', false)]} labels={DEMO} />);
    const tables = screen.getAllByTestId('site-results');
    expect(tables).toHaveLength(2);
    expect(tables[0].textContent).toContain('“malignant” found (sensitivity)');
    expect(tables[1].textContent).toContain('“benign or normal” found (sensitivity)');
    expect(screen.getByText(/do not compare them with the table above/)).toBeTruthy();
  });

  it('keeps one table, named by its finding, when all rows agree', () => {
    render(<SiteResultsTable rows={[row(2, 'malignant', true), row(1, 'malignant', true)]} labels={DEMO} />);
    expect(screen.getAllByTestId('site-results')).toHaveLength(1);
    expect(screen.getByText('“malignant” found (sensitivity)')).toBeTruthy();
  });

  it('says in plain words what each row’s numbers were averaged over', () => {
    render(<SiteResultsTable rows={[row(2, 'malignant', true), row(1, 'malignant', true)]} labels={DEMO} />);
    expect(averagedOver(screen.getByTestId('site-results'))).toEqual(['the image and its mirror image', 'the image and its mirror image']);
  });

  it('never puts rows averaged another way in the table with the rest, each way in a table of its own with a warning', () => {
    const rows = [
      row(3, 'malignant', true), row(2, 'malignant', true),
      row(2, 'malignant', true, 'd4', false), row(1, 'malignant', true, 'none', false), row(1, 'malignant', true, 'd4', false),
    ];
    render(<SiteResultsTable rows={rows} labels={DEMO} />);
    const tables = screen.getAllByTestId('site-results');
    expect(tables.map(averagedOver)).toEqual([
      ['the image and its mirror image', 'the image and its mirror image'],
      ['8 turns and flips', '8 turns and flips'],
      ['the image alone'],
    ]);
    const groups = screen.getAllByTestId('site-results-group');
    expect(groups.map((g) => g.querySelector('h3')!.textContent)).toEqual([
      'Averaged over the image and its mirror image',
      'Averaged over 8 turns and flips of the image',
      'From the image alone, not averaged',
    ]);
    expect(groups[0].textContent).not.toMatch(/do not compare/);
    expect(groups[1].textContent).toMatch(/These numbers were averaged another way, so do not compare them with the table above\./);
    expect(groups[2].textContent).toMatch(/These numbers were averaged another way, so do not compare them with the tables above\./);
  });

  it('says “not recorded” for an older row and never counts it with the rows averaged like the latest version', () => {
    const older = { ...row(1, 'malignant', true), tta: undefined as unknown as string };
    render(<SiteResultsTable rows={[row(2, 'malignant', true), older]} labels={DEMO} />);
    const tables = screen.getAllByTestId('site-results');
    expect(tables.map(averagedOver)).toEqual([['the image and its mirror image'], ['not recorded']]);
    const groups = screen.getAllByTestId('site-results-group');
    expect(groups[1].querySelector('h3')!.textContent).toBe('Averaging not recorded');
    expect(groups[1].textContent).toMatch(/How these numbers were averaged was not recorded, so do not compare them with the table above\./);
  });

  it('splits by finding first, then by how the numbers were averaged', () => {
    render(<SiteResultsTable rows={[row(2, 'malignant', true), row(2, 'malignant', true, 'd4', false), row(1, 'benign or normal', false)]} labels={DEMO} />);
    const groups = screen.getAllByTestId('site-results-group');
    expect(groups.map((g) => g.querySelector('h3')!.textContent)).toEqual([
      'Versions that look for “malignant”, averaged over the image and its mirror image',
      'Versions that look for “malignant”, averaged over 8 turns and flips of the image',
      'Other versions that look for “benign or normal”, averaged over the image and its mirror image',
    ]);
    expect(groups[1].textContent).toMatch(/averaged another way/);
    expect(groups[2].textContent).toMatch(/look for a different finding/);
  });
});

const SITE = { site: { slug: 'st-anne', name: 'St Anne’s' }, role: 'clinician' } as Membership;

describe('choosing the finding', () => {
  it('asks for it when a dataset with two labels is created, with the default preselected', async () => {
    const hub = fakeHub({ 'POST /datasets/': { id: 7 } });
    render(<CreateDataset site={SITE} onCancel={() => {}} />);
    expect(screen.queryByTestId('finding-choice')).toBeNull();
    fireEvent.change(screen.getByLabelText('Name'), { target: { value: 'Breast' } });
    fireEvent.change(screen.getByLabelText(/Labels, if you know them/), { target: { value: 'malignant, benign or normal' } });
    expect(screen.getByText('Which finding should the model look for?')).toBeTruthy();
    expect((screen.getByLabelText('“malignant”') as HTMLInputElement).checked).toBe(true);
    fireEvent.click(screen.getByLabelText('“benign or normal”'));
    fireEvent.click(screen.getByRole('button', { name: 'Create dataset' }));
    await waitFor(() => expect(hub.sent('POST', '/datasets/')).toHaveLength(1));
    expect(hub.sent('POST', '/datasets/')[0].body).toMatchObject({
      label_names: DEMO,
      positive_class: 'benign or normal',
    });
  });

  it('lets the dataset page change it', async () => {
    const hub = fakeHub({ 'PATCH /datasets/4/': {} });
    const dataset = { id: 4, label_names: DEMO, positive_class: 'benign or normal' } as Dataset;
    render(<FindingPanel dataset={dataset} onChanged={() => {}} />);
    expect((screen.getByLabelText('“benign or normal”') as HTMLInputElement).checked).toBe(true);
    expect(screen.queryByRole('button', { name: 'Save the finding' })).toBeNull();
    fireEvent.click(screen.getByLabelText('“malignant”'));
    fireEvent.click(screen.getByRole('button', { name: 'Save the finding' }));
    await waitFor(() => expect(hub.sent('PATCH', '/datasets/4/')).toHaveLength(1));
    expect(hub.sent('PATCH', '/datasets/4/')[0].body).toEqual({ positive_class: 'malignant' });
  });
});

describe('training', () => {
  it('says which finding the model will look for before it starts', async () => {
    window.history.replaceState(null, '', '/sites/st-anne/train?dataset=4');
    const dataset = { id: 4, name: 'Breast', label_names: DEMO, positive_class: 'malignant', accepted_count: 40 };
    fakeHub({
      'GET /datasets/': { count: 1, next: null, previous: null, results: [dataset] },
      'GET /zoo/': { count: 0, next: null, previous: null, results: [] },
    }, { schemaPaths: ['/jobs/'] });
    render(<TrainPage site={SITE} />);
    const note = await screen.findByTestId('train-finding');
    expect(note.textContent).toContain('The model will look for “malignant”');
  });
});
