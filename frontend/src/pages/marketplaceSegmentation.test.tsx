import { afterEach, describe, expect, it, vi } from 'vitest';
import { cleanup, fireEvent, render, screen, waitFor, within } from '@testing-library/react';
import type { Membership, PublishedModelDetail, SiteEvaluation } from '../api/types';
import { ModelPage } from './Marketplace';
import { fakeHub, refusal, type Routes } from '../testing/fakeHub';
import { datasetFixture, EVALUATION } from '../testing/fixtures';

// Its own file: whether the hub offers the marketplace is asked once per page load (apiHasPath).
afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
});

const SITE: Membership = { site: { slug: 'st-anne', name: 'St Anne', agent_last_seen_at: null }, role: 'clinician' };
const ME = { username: 'a', display_name: '', is_token: false, is_operator: false, memberships: [{ site: SITE.site, role: 'clinician' as const }] };

/** The card's metrics as the hub keeps them: aggregates and the worst Dice values, never which images. */
const { worst: _worst, ...AGGREGATES } = EVALUATION;
const CARD_METRICS = { ...AGGREGATES, worst_dice: [0, 0.04, 0.31], evaluated_on: 'test', tta: 'hflip' };

const VERSION = {
  id: 11, published_model: 4, model_name: 'Lesion outliner', site: 'st-anne', number: 1, status: 'published' as const, status_text: 'Published',
  status_reason: '', attempt: 1, model_version: null, weights_sha256: 'ab'.repeat(32), manifest_sha256: 'cd'.repeat(32), weights_bytes: 1024, auc: null,
  card: { task: 'segmentation' }, error_code: '', message: '', created_at: '', published_at: '2026-01-02T10:00:00Z', status_changed_at: null, can_manage: false,
};

function outliner(extra: Partial<PublishedModelDetail> = {}): PublishedModelDetail {
  return {
    id: 4, name: 'Lesion outliner', site: 'st-anne', site_name: 'St Anne', modality: 'ultrasound', task: 'segmentation', architecture: 'unet_efficientnet_lite0',
    label_names: ['background', 'lesion'], visibility: 'consortium', named_sites: null, intended_use: '', limitations: '',
    latest_version: { id: 11, number: 1, status: 'published', auc: null, dice: 0.8, task: 'segmentation', positive_class: '', weights_sha256: '', published_at: '' },
    version_count: 1, created_at: '', updated_at: '', versions: [VERSION],
    card: {
      task: 'segmentation', labels: ['lesion'], architecture: 'unet_efficientnet_lite0', metrics: CARD_METRICS,
      input: { size: 256, mode: 'whole', preprocessing: 'Each image’s longer side is resized to 256 pixels and the image is centred on a black square.' },
      training_data: { total_images: 780, empty_masks: 133, images_per_split: { train: { images: 546, empty_masks: 93 } } },
    },
    lineage: { parents: [], descendants: [] }, positive_class: '',
    evaluations: [
      { site: 'st-anne', site_name: 'St Anne', version: 1, source: 'publisher_test_split', n: null, auc: null, accuracy: null, balanced_accuracy: null, sensitivity: null, specificity: null, positive_class: '', same_finding: true, tta: 'hflip', same_tta: true, ece: null, at: null },
      { site: 'borough', site_name: 'Borough General', version: 1, source: 'site_evaluation', n: null, auc: null, accuracy: null, balanced_accuracy: null, sensitivity: null, specificity: null, positive_class: '', same_finding: true, tta: 'hflip', same_tta: true, ece: null, at: '2026-02-01T10:00:00Z' },
    ],
    ...extra,
  };
}

const DATASETS = {
  count: 4, next: null, previous: null,
  results: [
    datasetFixture({ id: 21, name: 'Breast ultrasound 2026', accepted_count: 40 }),
    datasetFixture({ id: 22, name: 'Retina vessels', mask_classes: ['vessel'], accepted_count: 28 }),
    datasetFixture({ id: 23, name: 'Lesions and cysts', mask_classes: ['lesion', 'cyst'], accepted_count: 12 }),
    datasetFixture({ id: 24, name: 'Mammograms', task: 'classification', label_names: ['lesion', 'normal'], mask_classes: [], accepted_count: 63 }),
  ],
};

function siteCheck(extra: Partial<SiteEvaluation> = {}): SiteEvaluation {
  return {
    id: 31, site: 'st-anne', status: 'succeeded', attempt: 1, published_version: 11, published_model: 4, dataset: 21,
    metrics: { ...AGGREGATES, images: 37, worst_dice: [0.02, 0.1], skipped_images: { without_mask: 3 }, evaluated_on: 'all accepted images with a mask', tta: 'hflip' },
    shared: false, shared_at: null, error_code: '', message: '', created_at: '', finished_at: '2026-01-03T10:00:00Z', ...extra,
  };
}

function openModel(routes: Routes = {}) {
  const hub = fakeHub({
    'GET /marketplace/models/4/': outliner(),
    'GET /datasets/': DATASETS,
    'GET /marketplace/evaluations/': { count: 0, next: null, previous: null, results: [] },
    ...routes,
  }, { schemaPaths: ['/marketplace/models/'] });
  render(<ModelPage me={ME} params={{ id: '4' }} />);
  return hub;
}

describe('an outlining model in the marketplace', () => {
  it('says what it outlines and shows its publisher’s Dice card, with no AUC column', async () => {
    openModel();
    expect((await screen.findByText(/outlines lesion/)).textContent).not.toMatch(/tells apart/);
    expect(screen.getByTestId('tile-dice').textContent).toMatch(/^Overlap with the expert’s outline \(Dice\)0\.80/);
    expect(screen.queryByRole('columnheader', { name: 'Separates cases (AUC)' })).toBeNull();
    expect(screen.queryByTestId('site-results')).toBeNull();
  });

  it('gives the card’s facts in words: what it outlines, its images and empty masks, how it reads an image', async () => {
    openModel();
    expect((await screen.findByTestId('card-outlines')).textContent).toBe('lesion');
    expect(screen.getByTestId('card-training').textContent).toBe(
      '780 images at St Anne, 133 of them with nothing to outline (an empty mask). Images never left the hospital.',
    );
    expect(screen.getByText(/unet_efficientnet_lite0, reads each image whole, fitted into 256×256 pixels/)).toBeTruthy();
    const card = screen.getByTestId('segmentation-result');
    expect(card.textContent).toContain('Measured by the publishing hospital on its own final-check images, which the model never learned from. Each image’s answers were averaged over the image and its mirror image.');
    // Which images were hardest stays at the publishing hospital: the values only.
    expect(within(card).getByTestId('worst-dice').textContent).toBe(
      'The hardest check imagesThe lowest overlaps (Dice) among the check images: 0.00, 0.04, 0.31.Which images they were stays at the hospital that checked the model.',
    );
    expect(within(card).queryByTestId('worst-cases')).toBeNull();
  });

  it('names the hospitals that shared a check instead of a table of empty cells', async () => {
    openModel();
    const checks = await screen.findByTestId('outline-checks');
    expect(within(checks).getAllByRole('listitem').map((li) => li.textContent)).toEqual([
      `Borough General checked version 1 on its own images (${new Date('2026-02-01T10:00:00Z').toLocaleDateString()}) and shared it.`,
    ]);
    expect(screen.getByTestId('no-outline-results').textContent).toMatch(/Other hospitals’ Dice is not shown here yet/);
  });

  it('reads patches for a model that reads images in squares', async () => {
    const model = outliner();
    openModel({ 'GET /marketplace/models/4/': { ...model, card: { ...model.card, input: { size: 256, mode: 'patch' } } } });
    expect(await screen.findByText(/reads images at their own resolution in overlapping 256-pixel squares/)).toBeTruthy();
  });
});

describe('checking an outlining model at my site', () => {
  it('offers only datasets whose masks mark the same classes, in the same order', async () => {
    openModel();
    const card = await screen.findByTestId('evaluate-here');
    const select = within(card).getByLabelText('Images with masks at St Anne') as HTMLSelectElement;
    await within(select).findByRole('option', { name: /Breast ultrasound 2026/ });
    expect(within(select).getAllByRole('option').map((o) => o.textContent)).toEqual([
      'Choose a dataset…', 'Breast ultrasound 2026 (40 images; masks of lesion)',
    ]);
    expect(card.textContent).toMatch(/Every image with a mask is used: the model’s outline of lesion is compared with the mask\. Images without a mask are left out\./);
  });

  it('says what to make when no dataset has masks of its classes', async () => {
    openModel({ 'GET /datasets/': { ...DATASETS, results: DATASETS.results.slice(1) } });
    expect((await screen.findByTestId('no-mask-dataset')).textContent).toMatch(/None of St Anne’s datasets has masks of “lesion” yet\. Create a dataset with an outline\s+\(mask\) per image that marks lesion/);
    expect(screen.queryByLabelText(/Images with masks/)).toBeNull();
  });

  it.each([
    ['task_mismatch', 'This model does segmentation but the dataset is labelled for classification. Choose a dataset labelled the way the model works.'],
    ['mask_classes_mismatch', 'The model outlines lesion; this dataset’s masks mark vessel. Evaluate it on masks of the same classes.'],
  ])('shows the hub’s refusal (%s) in its words', async (code, message) => {
    openModel({ 'POST /marketplace/evaluations/': refusal(400, code, message) });
    const card = await screen.findByTestId('evaluate-here');
    const select = within(card).getByLabelText('Images with masks at St Anne');
    await within(select).findByRole('option', { name: /Breast ultrasound 2026/ });
    fireEvent.change(select, { target: { value: '21' } });
    fireEvent.click(within(card).getByRole('button', { name: 'Check the model on these images' }));
    expect((await within(card).findByRole('alert')).textContent).toContain(message);
  });

  it('shows the site’s Dice card, the images left out for want of a mask, and what sharing shows', async () => {
    const hub = openModel({
      'POST /marketplace/evaluations/': siteCheck({ status: 'queued', metrics: {} }),
      'GET /marketplace/evaluations/31/': siteCheck(),
    });
    const card = await screen.findByTestId('evaluate-here');
    const select = within(card).getByLabelText('Images with masks at St Anne');
    await within(select).findByRole('option', { name: /Breast ultrasound 2026/ });
    fireEvent.change(select, { target: { value: '21' } });
    fireEvent.click(within(card).getByRole('button', { name: 'Check the model on these images' }));
    const result = await within(card).findByTestId('evaluation-result', undefined, { timeout: 6000 });
    await waitFor(() => expect(within(result).getByTestId('segmentation-result')).toBeTruthy(), { timeout: 6000 });
    expect(hub.sent('POST', '/marketplace/evaluations/')[0].body).toEqual({ published_version: 11, dataset: 21 });
    const dice = within(result).getByTestId('segmentation-result');
    expect(dice.textContent).toMatch(/Measured on 37 images of “Breast ultrasound 2026”, checked .*\. The model never learned from them\. 3 images without a mask were left out\./);
    expect(within(dice).getByTestId('worst-dice').textContent).toContain('0.02, 0.10');
    expect(within(result).getByTestId('share-choice').textContent).toMatch(/how much the outlines overlap \(Dice\), lesions found and missed/);
    expect(within(result).getByTestId('share-choice').textContent).not.toMatch(/separates cases/);
  });
});
