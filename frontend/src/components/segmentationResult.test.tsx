import { afterEach, describe, expect, it, vi } from 'vitest';
import { cleanup, render, screen, waitFor, within } from '@testing-library/react';
import type { Job, Membership } from '../api/types';
import { SegmentationResult } from './SegmentationResult';
import { EvaluationView, JobPage, recipeInWords } from '../pages/Job';
import { resultInWords } from '../pages/Jobs';
import { histogramBins, isSegmentationResult, segmentationSummary } from '../lib/segmentation';
import { fakeHub } from '../testing/fakeHub';
import { EVALUATION, jobFixture } from '../testing/fixtures';

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
});


describe('a segmentation model’s result card', () => {
  it('gives Dice with its 95 % range, IoU, HD95, lesions found and normal images left empty, each explained', () => {
    render(<SegmentationResult evaluation={EVALUATION} />);
    const card = screen.getByTestId('segmentation-result');
    expect(card.textContent).toContain('Dice: how much the model’s outline overlaps the expert’s; 1 is perfect');
    expect(screen.getByTestId('tile-dice').textContent).toBe('Overlap with the expert’s outline (Dice)0.8095 % range 0.77 to 0.83; average over all check images; 1 is perfect');
    expect(card.textContent).toContain('Shared area (IoU)0.71');
    expect(card.textContent).toContain('Distance between the outlines (HD95)9.9 pixels');
    expect(screen.getByTestId('tile-lesions').textContent).toBe('Lesions found118 of 13214 missed; 9 areas drawn where there is no lesion (0.06 per image)');
    expect(screen.getByTestId('tile-empty').textContent).toBe('Normal images correctly left empty80%of 30 images with nothing to outline');
    expect(card.textContent).toContain('Measured on 160 final-check images');
  });

  it('says the same in sentences a clinician reads', () => {
    expect(segmentationSummary(EVALUATION)).toEqual([
      'On average, the model’s outline overlaps the expert’s with a Dice of 0.80 (95 % range 0.77 to 0.83).',
      'On the 130 images with something to outline, the Dice is 0.79.',
      'Out of 132 lesions, the model found 118 and missed 14. It also drew 9 areas that are not lesions.',
      'Out of 30 normal images (nothing to outline), the model correctly drew nothing on 24 (80%).',
    ]);
  });

  it('draws the Dice distribution as bars and lists the hardest images with what went wrong', () => {
    render(<SegmentationResult evaluation={EVALUATION} />);
    const rows = within(screen.getByTestId('dice-histogram')).getAllByRole('row').slice(1);
    expect(rows.map((r) => r.textContent)).toEqual([
      '0.0–0.16', '0.1–0.21', '0.2–0.30', '0.3–0.42', '0.4–0.53', '0.5–0.64', '0.6–0.78', '0.7–0.820', '0.8–0.946', '0.9–1.070',
    ]);
    expect(within(screen.getByTestId('worst-cases')).getAllByRole('listitem').map((li) => li.textContent)).toEqual([
      'Image 311: Dice 0.00 (a normal image where the model drew something)',
      'Image 87: Dice 0.04 (the model drew nothing on this lesion)',
    ]);
  });

  it('reads a histogram sent as bins or as edges and counts alike', () => {
    const bins = [{ from: 0, to: 0.5, count: 2 }, { from: 0.5, to: 1, count: 5 }];
    expect(histogramBins(bins)).toEqual(bins);
    expect(histogramBins({ edges: [0, 0.5, 1], counts: [2, 5] })).toEqual(bins);
    expect(histogramBins(null)).toEqual([]);
  });

  it('is what a finished check shows for an outlining model, and never for a classifier', () => {
    render(<EvaluationView evaluation={EVALUATION} />);
    expect(screen.getByTestId('segmentation-result')).toBeTruthy();
    expect(screen.queryByTestId('evaluation')).toBeNull();
    cleanup();
    render(<EvaluationView evaluation={{ label_names: ['normal', 'mass'], auc: 0.9, accuracy: 0.8 }} />);
    expect(screen.getByTestId('evaluation')).toBeTruthy();
    expect(isSegmentationResult({ label_names: [], dice: 0.7 })).toBe(true);
    expect(isSegmentationResult({ label_names: [], auc: 0.7 })).toBe(false);
  });
});

const SITE: Membership = { site: { slug: 'st-anne', name: 'St Anne', agent_last_seen_at: null }, role: 'clinician' };

function segJob(extra: Partial<Job> = {}): Job {
  return jobFixture({
    task: 'segmentation', label_names: ['background', 'lesion'], positive_class: '', config: { freeze_encoder: true },
    starting_point_name: 'Outlining model (U-Net), recommended for masks',
    history: [
      { epoch: 1, train_loss: 0.9, val_loss: 0.8, val_dice: 0.41 },
      { epoch: 2, train_loss: 0.6, val_loss: 0.55, val_dice: 0.66 },
    ],
    ...extra,
  });
}

describe('a segmentation training run’s page', () => {
  it('follows the outline overlap (Dice) on the tuning images while it learns, and says it trains the decoder only', async () => {
    fakeHub({ 'GET /jobs/7/': segJob({ status: 'running', progress: { phase: 'training', epoch: 3, epochs: 10 } }) });
    render(<JobPage site={SITE} params={{ id: '7' }} />);
    expect(await screen.findByRole('img', { name: 'Outline overlap on tuning images (Dice)' })).toBeTruthy();
    expect(screen.queryByRole('img', { name: 'Results on tuning images' })).toBeNull();
    expect(screen.getByText(/first outline in minutes \(decoder only\)/)).toBeTruthy();
    expect(recipeInWords({ recipe: 'full', config: {} })).toBe('thorough');
  });

  it('is listed among the runs by its Dice, named, never in a column of AUCs', () => {
    expect(resultInWords(segJob({ evaluation: EVALUATION }))).toBe('Outline overlap (Dice) 0.80');
    expect(resultInWords(jobFixture({ evaluation: { label_names: ['a', 'b'], auc: 0.912 } }))).toBe('Separates cases (AUC) 0.91');
    expect(resultInWords(segJob({ evaluation: null }))).toBe('—');
  });

  it('shows the result card and the model’s outlines on check images once finished', async () => {
    const samples = [{ image_id: 5, overlay_key: 'jobs/x/samples/5.png', overlay_url: 'https://s.test/5.png', dice: 0.91 }];
    const hub = fakeHub({
      'GET /jobs/7/': segJob({ status: 'succeeded', model_version: 3, evaluation: { ...EVALUATION, samples } }),
      'GET /jobs/7/samples/': { samples },
    });
    render(<JobPage site={SITE} params={{ id: '7' }} />);
    expect(await screen.findByTestId('segmentation-result')).toBeTruthy();
    const gallery = await screen.findByTestId('sample-outlines');
    expect(within(gallery).getByRole('img').getAttribute('src')).toBe('https://s.test/5.png');
    expect(gallery.textContent).toContain('Overlap with the expert (Dice): 0.91');
    expect(screen.getByTestId('outline-legend').textContent).toMatch(/Yellow: the model’s outline\. Light blue: the expert’s outline/);
    expect(screen.queryByTestId('sample-heatmaps')).toBeNull();
    expect(hub.sent('GET', '/jobs/7/samples/')).toHaveLength(1);
  });
});

describe('the hardest check images by name', () => {
  it('lists them by the file names the job’s samples carry, and by number where none is known', async () => {
    const samples = [
      { image_id: 311, overlay_key: 'jobs/x/samples/311.png', overlay_url: 'https://s.test/311.png', dice: 0, filename: 'normal-12.png' },
      { image_id: 5, overlay_key: 'jobs/x/samples/5.png', overlay_url: 'https://s.test/5.png', dice: 0.91, filename: null },
    ];
    fakeHub({
      'GET /jobs/7/': segJob({ status: 'succeeded', model_version: 3, evaluation: { ...EVALUATION, samples } }),
      'GET /jobs/7/samples/': { samples },
    });
    render(<JobPage site={SITE} params={{ id: '7' }} />);
    const worst = await screen.findByTestId('worst-cases');
    await waitFor(() => expect(within(worst).getAllByRole('listitem')[0].textContent).toBe('normal-12.png: Dice 0.00 (a normal image where the model drew something)'));
    expect(within(worst).getAllByRole('listitem')[1].textContent).toBe('Image 87: Dice 0.04 (the model drew nothing on this lesion)');
    const gallery = await screen.findByTestId('sample-outlines');
    expect(within(gallery).getAllByRole('img').map((i) => i.getAttribute('alt'))).toEqual([
      'The model’s outline over check image normal-12.png', 'The model’s outline over check image 5',
    ]);
  });

  it('gives only the lowest Dice values when the check names no image', () => {
    const { worst: _worst, ...aggregates } = EVALUATION;
    render(<SegmentationResult evaluation={{ ...aggregates, worst_dice: [0.01, 0.2] }} />);
    expect(screen.getByTestId('worst-dice').textContent).toContain('The lowest overlaps (Dice) among the check images: 0.01, 0.20.');
    expect(screen.queryByTestId('worst-cases')).toBeNull();
  });
});
