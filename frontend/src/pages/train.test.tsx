import { afterEach, describe, expect, it, vi } from 'vitest';
import { cleanup, fireEvent, render, screen, waitFor } from '@testing-library/react';
import type { Membership, ZooEntry } from '../api/types';
import { TrainPage } from './Train';
import { fakeHub, type Call } from '../testing/fakeHub';
import { datasetFixture, jobFixture } from '../testing/fixtures';

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
  window.history.replaceState(null, '', '/');
});

const SITE: Membership = { site: { slug: 'st-anne', name: 'St Anne', agent_last_seen_at: null }, role: 'clinician' };
const entry = (id: number, name: string, task: string, recommended = false): ZooEntry => ({
  id, slug: `e${id}`, name, architecture: 'x', task, source: 'imagenet', description: '', licence: '', input_size: 224, recommended, weights_sha256: '',
});
const ZOO = [
  entry(1, 'Efficient image model', 'classification', true),
  entry(2, 'Tiny test network', 'classification'),
  entry(3, 'Outlining model (U-Net), recommended for masks', 'segmentation', true),
  entry(4, 'Outlining model (U-Net), no pre-training', 'segmentation'),
];
const DATASETS = [
  datasetFixture({ id: 5, name: 'Lesion outlines', accepted_count: 40 }),
  datasetFixture({ id: 6, name: 'Chest X-rays', task: 'classification', mask_classes: [], label_names: ['normal', 'pneumonia'], positive_class: 'pneumonia', accepted_count: 20 }),
];

function hub() {
  vi.stubGlobal('scrollTo', () => {}); // starting a run navigates to its page
  return fakeHub(
    {
      'GET /datasets/': { count: 2, next: null, previous: null, results: DATASETS },
      // A hub that filters by task, as GET /zoo/?task= does.
      'GET /zoo/': (call: Call) => ({ count: 4, next: null, previous: null, results: ZOO.filter((e) => !call.query.task || e.task === call.query.task) }),
      'POST /jobs/': jobFixture({ id: 31 }),
    },
    { schemaPaths: ['/jobs/'] },
  );
}

async function openFor(datasetId: number) {
  window.history.replaceState(null, '', `/sites/st-anne/train?dataset=${datasetId}`);
  render(<TrainPage site={SITE} />);
  await screen.findByRole('option', { name: /Lesion outlines/ });
}

describe('training on a segmentation dataset', () => {
  it('offers only outlining starting points, the recommended one chosen, and no quick recipe', async () => {
    const h = hub();
    await openFor(5);
    const recommended = await screen.findByRole('radio', { name: /Outlining model \(U-Net\), recommended for masks/ });
    await waitFor(() => expect((recommended as HTMLInputElement).checked).toBe(true));
    expect(screen.queryByRole('radio', { name: /Tiny test network/ })).toBeNull();
    expect(h.sent('GET', '/zoo/').at(-1)!.query.task).toBe('segmentation');
    expect(screen.queryByRole('radio', { name: /^Quick/ })).toBeNull();
    expect(screen.getByRole('radio', { name: /Thorough.*recommended/ })).toHaveProperty('checked', true);
    expect(screen.getByTestId('train-outlines').textContent).toMatch(/learn to outline lesion/);
  });

  it('sends freeze_encoder for “First outline in minutes (decoder only)”, and never the quick recipe', async () => {
    const h = hub();
    await openFor(5);
    await waitFor(() => expect((screen.getByRole('radio', { name: /recommended for masks/ }) as HTMLInputElement).checked).toBe(true));
    fireEvent.click(screen.getByRole('radio', { name: /First outline in minutes/ }));
    fireEvent.click(screen.getByRole('button', { name: 'Start training' }));
    await waitFor(() => expect(h.sent('POST', '/jobs/')).toHaveLength(1));
    expect(h.sent('POST', '/jobs/')[0].body).toEqual({ dataset: 5, starting_point: 3, recipe: 'full', advanced: { freeze_encoder: true } });
  });

  it('trains the whole model when Thorough stays chosen', async () => {
    const h = hub();
    await openFor(5);
    await waitFor(() => expect((screen.getByRole('radio', { name: /recommended for masks/ }) as HTMLInputElement).checked).toBe(true));
    fireEvent.click(screen.getByRole('button', { name: 'Start training' }));
    await waitFor(() => expect(h.sent('POST', '/jobs/')).toHaveLength(1));
    expect(h.sent('POST', '/jobs/')[0].body).toEqual({ dataset: 5, starting_point: 3, recipe: 'full' });
  });
});

describe('training on a classification dataset', () => {
  it('keeps the labelling starting points and the quick recipe, and switches when the dataset changes', async () => {
    const h = hub();
    await openFor(6);
    await waitFor(() => expect((screen.getByRole('radio', { name: /Efficient image model/ }) as HTMLInputElement).checked).toBe(true));
    expect(screen.getByRole('radio', { name: /^Quick/ })).toBeTruthy();
    expect(screen.queryByTestId('outline-choices')).toBeNull();
    expect(screen.queryByRole('radio', { name: /Outlining model/ })).toBeNull();

    fireEvent.change(screen.getByLabelText('1. Images to learn from'), { target: { value: '5' } });
    await waitFor(() => expect((screen.getByRole('radio', { name: /recommended for masks/ }) as HTMLInputElement).checked).toBe(true));
    expect(screen.queryByRole('radio', { name: /Efficient image model/ })).toBeNull();
    fireEvent.change(screen.getByLabelText('1. Images to learn from'), { target: { value: '6' } });
    await waitFor(() => expect((screen.getByRole('radio', { name: /Efficient image model/ }) as HTMLInputElement).checked).toBe(true));
    fireEvent.click(screen.getByRole('radio', { name: /^Quick/ }));
    fireEvent.click(screen.getByRole('button', { name: 'Start training' }));
    await waitFor(() => expect(h.sent('POST', '/jobs/')).toHaveLength(1));
    expect(h.sent('POST', '/jobs/')[0].body).toEqual({ dataset: 6, starting_point: 1, recipe: 'quick' });
  });
});
