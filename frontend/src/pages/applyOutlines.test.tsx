import { afterEach, describe, expect, it, onTestFinished, vi } from 'vitest';
import { cleanup, fireEvent, render, screen, waitFor, within } from '@testing-library/react';
import type { Membership, Prediction, PredictionResult, PublishedModel } from '../api/types';
import { ApplyPage, PredictionView } from './Apply';
import { fakeHub, reply, type Routes } from '../testing/fakeHub';
import { datasetFixture } from '../testing/fixtures';
import { areaInWords, areaShare, classNumbersInWords, uncertaintyInWords } from '../lib/segmentation';

// jsdom has no IntersectionObserver: every row counts as seen at once (useSeen's fallback).
afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
  vi.restoreAllMocks();
});

const SITE: Membership = { site: { slug: 'st-anne', name: 'St Anne', agent_last_seen_at: null }, role: 'clinician' };

const OUTLINER: PublishedModel = {
  id: 5, name: 'Lesion outliner', site: 'st-anne', site_name: 'St Anne', modality: 'ultrasound', task: 'segmentation',
  architecture: 'unet_efficientnet_lite0', label_names: ['background', 'lesion'], visibility: 'consortium', named_sites: null,
  intended_use: '', limitations: '', version_count: 1, created_at: '', updated_at: '',
  latest_version: { id: 12, number: 1, status: 'published', auc: null, dice: 0.8, task: 'segmentation', positive_class: '', weights_sha256: '', published_at: '' },
};

const page = <T,>(results: T[]) => ({ count: results.length, next: null, previous: null, results });

const links = (id: number, sig = 'a') => ({
  mask: `https://s.test/${id}-mask.png?${sig}`,
  overlay: `https://s.test/${id}-overlay.png?${sig}`,
  probability: `https://s.test/${id}-probability.png?${sig}`,
  uncertainty: `https://s.test/${id}-uncertainty.png?${sig}`,
});

function outlined(id: number, filename: string, area: number, regions: number, sig = 'a'): PredictionResult {
  return {
    image_id: id, filename, width: 256, height: 256, tta: 'hflip',
    segmentation: {
      mask_key: `predictions/21/${id}-mask.png`, overlay_key: `predictions/21/${id}-overlay.png`,
      probability_key: `predictions/21/${id}-probability.png`, uncertainty_key: `predictions/21/${id}-uncertainty.png`,
      class_pixels: { lesion: Math.round(area * 65536) }, area_fraction: { lesion: area }, regions, mean_uncertainty: 0.031,
    },
    segmentation_urls: links(id, sig),
  };
}

function prediction(extra: Partial<Prediction> = {}): Prediction {
  return {
    id: 21, site: 'st-anne', status: 'succeeded', attempt: 1, published_version: 12, model_version: null, dataset: 4, task: 'segmentation',
    label_names: ['background', 'lesion'], tta: false, heatmap: false, images: 3, timings: {}, error_code: '', message: '',
    created_at: '', finished_at: '',
    results: [
      outlined(31, 'case-1.png', 0.042, 1),
      outlined(32, 'normal-7.png', 0, 0),
      { image_id: 33, filename: 'broken.png', error: { code: 'unreadable', message: 'broken.png is not an image the site can read.' } },
    ],
    ...extra,
  };
}

function showPrediction(routes: Routes = {}, datasetId: number | null = null, extra: Partial<Prediction> = {}) {
  const hub = fakeHub({ 'POST /datasets/4/thumbnails/': { urls: { 31: 'https://s.test/t31.png', 32: 'https://s.test/t32.png' }, mask_urls: {} }, ...routes });
  render(<PredictionView prediction={prediction(extra)} names={new Map()} datasetId={datasetId} />);
  return hub;
}

const rows = () => within(screen.getByTestId('prediction-results')).getAllByTestId('prediction-result');

describe('an outlining model’s answers, in words', () => {
  it('says how much of the image the outline covers and in how many regions', () => {
    expect(areaInWords({ area_fraction: { lesion: 0.042 }, regions: 1 }, ['lesion'])).toBe('The outlined lesion covers 4.2 % of the image; 1 region.');
    expect(areaInWords({ area_fraction: { lesion: 0.12, cyst: 0.0004 }, regions: 3 }, ['lesion', 'cyst']))
      .toBe('The outlined areas cover lesion 12 %, cyst less than 0.1 % of the image; 3 regions.');
    expect(areaInWords({ area_fraction: { lesion: 0 }, regions: 0 }, ['lesion'])).toBe('The model outlined nothing on this image.');
    expect(areaShare(0.5)).toBe('50 %');
    expect(uncertaintyInWords(0.031)).toMatch(/^How unsure the model was: 3\.1 % on average over the image \(0 % is sure everywhere/);
    expect(uncertaintyInWords(undefined)).toBeNull();
    expect(classNumbersInWords(['background', 'lesion', 'cyst'])).toBe('0 background, 1 lesion, 2 cyst');
  });
});

describe('an outlining model’s prediction', () => {
  it('shows each image’s outline over the plain image, faded by one slider, with its area, how unsure and the mask', async () => {
    const hub = showPrediction({}, 4);
    expect(screen.getByRole('heading', { name: 'What the model outlined' })).toBeTruthy();
    const [first, normal, broken] = rows();
    expect(within(first).getByRole('heading', { name: 'case-1.png' })).toBeTruthy();
    expect(within(first).getByTestId('outline-area').textContent).toBe('The outlined lesion covers 4.2 % of the image; 1 region.');
    expect(within(first).getByTestId('outline-unsure').textContent).toMatch(/How unsure the model was: 3\.1 %/);
    expect(within(normal).getByTestId('outline-area').textContent).toBe('The model outlined nothing on this image.');
    const mask = within(first).getByRole('link', { name: 'Mask (PNG, class numbers)' });
    expect(mask.getAttribute('href')).toBe('https://s.test/31-mask.png?a');
    expect(first.textContent).toContain('Each pixel holds its class number: 0 background, 1 lesion.');
    expect(broken.textContent).toContain('broken.png is not an image the site can read.');
    expect(within(broken).queryByRole('img')).toBeNull();

    // The plain images: one request for every row in view (not the one the model could not read).
    const plain = await within(first).findByRole('img', { name: 'case-1.png, without the outline' });
    expect(plain.getAttribute('src')).toBe('https://s.test/t31.png');
    expect(hub.sent('POST', '/datasets/4/thumbnails/')).toHaveLength(1);
    expect(hub.sent('POST', '/datasets/4/thumbnails/')[0].body).toEqual({ image_ids: [31, 32] });
    const outline = within(first).getByRole('img', { name: 'The model’s outline over case-1.png' });
    expect(outline.getAttribute('src')).toBe('https://s.test/31-overlay.png?a');
    expect(outline.style.opacity).toBe('1');
    const slider = screen.getByRole('slider', { name: 'Strength over the image' });
    fireEvent.change(slider, { target: { value: '40' } });
    expect(outline.style.opacity).toBe('0.4');
    expect(slider.getAttribute('aria-valuetext')).toBe('40 %: the outline faded');
    expect(screen.getByTestId('outline-layer-legend').textContent).toBe('Yellow: the model’s outline.');
  });

  it('lays the image and its outline side by side, and shows the probability or uncertainty map instead', async () => {
    showPrediction({}, 4);
    const first = rows()[0];
    await within(first).findByRole('img', { name: 'case-1.png, without the outline' });
    fireEvent.click(screen.getByRole('checkbox', { name: 'Side by side with the image' }));
    const pair = within(first).getByTestId('side-by-side');
    expect(within(pair).getAllByRole('img').map((i) => i.getAttribute('src'))).toEqual(['https://s.test/t31.png', 'https://s.test/31-overlay.png?a']);
    expect(pair.textContent).toBe('The imageThe outline');
    expect(screen.queryByRole('slider')).toBeNull(); // nothing to fade side by side

    fireEvent.click(screen.getByRole('radio', { name: 'How likely (probability map)' }));
    const map = within(first).getByRole('img', { name: 'Map of how likely each part of case-1.png is to be lesion: bright is likely' });
    expect(map.getAttribute('src')).toBe('https://s.test/31-probability.png?a');
    expect(screen.getByTestId('outline-layer-legend').textContent).toMatch(/^Bright yellow: the model is sure this part is lesion/);
    fireEvent.click(screen.getByRole('radio', { name: 'How unsure (uncertainty map)' }));
    fireEvent.click(screen.getByRole('checkbox', { name: 'Side by side with the image' }));
    const unsure = within(first).getByRole('img', { name: 'Map of where the model was unsure on case-1.png: bright is unsure' });
    expect(unsure.getAttribute('src')).toBe('https://s.test/31-uncertainty.png?a');
    expect(within(first).getByTestId('outline-layers')).toBeTruthy();
  });

  it('shows the outline alone, and says why, when the images are in no dataset', async () => {
    const hub = showPrediction({}, null, { dataset: null });
    const first = rows()[0];
    expect(within(first).getAllByRole('img').map((i) => i.getAttribute('alt'))).toEqual(['The model’s outline over case-1.png']);
    expect(screen.queryByRole('slider')).toBeNull();
    expect(screen.getByTestId('outline-controls').textContent).toMatch(/not in a dataset, so the image without the outline cannot be shown/);
    expect(hub.sent('POST', '/datasets/')).toHaveLength(0);
  });

  it('shows the outline alone when the site gives no plain image', async () => {
    showPrediction({ 'POST /datasets/4/thumbnails/': reply(503, { error: { code: 'agent_offline', message: 'The site is offline.' } }) }, 4);
    const first = rows()[0];
    await waitFor(() => expect(within(first).getAllByRole('img').map((i) => i.getAttribute('alt'))).toEqual(['The model’s outline over case-1.png']));
    expect(within(first).queryByTestId('outline-layers')).toBeNull();
  });

  it('asks once for fresh links when the pictures’ links have lapsed', async () => {
    const hub = showPrediction({ 'GET /predictions/21/': prediction({ results: [outlined(31, 'case-1.png', 0.042, 1, 'b'), outlined(32, 'normal-7.png', 0, 0, 'b')] }) });
    for (const img of screen.getAllByRole('img')) fireEvent.error(img);
    const first = rows()[0];
    await waitFor(() => expect(within(first).getByRole('img').getAttribute('src')).toBe('https://s.test/31-overlay.png?b'));
    expect(hub.sent('GET', '/predictions/21/')).toHaveLength(1);
  });

  it('gets a fresh mask link before a download clicked minutes later', async () => {
    const hub = showPrediction({ 'GET /predictions/21/': prediction({ results: [outlined(31, 'case-1.png', 0.042, 1, 'late')] }) });
    const mask = within(rows()[0]).getByRole('link', { name: 'Mask (PNG, class numbers)' }) as HTMLAnchorElement;
    const stay = (e: Event) => e.preventDefault(); // jsdom cannot follow a link
    document.addEventListener('click', stay);
    onTestFinished(() => document.removeEventListener('click', stay));
    fireEvent.click(mask); // fresh links: followed as they are
    expect(hub.sent('GET', '/predictions/21/')).toHaveLength(0);
    const now = Date.now();
    vi.spyOn(Date, 'now').mockReturnValue(now + 5 * 60_000);
    fireEvent.click(mask);
    await waitFor(() => expect(mask.getAttribute('href')).toBe('https://s.test/31-mask.png?late'));
    expect(hub.sent('GET', '/predictions/21/')).toHaveLength(1);
  });

  it('names how the answers were averaged and never shows the heatmap legend', () => {
    showPrediction();
    expect(screen.getByTestId('prediction-tta').textContent).toBe('Each image’s answers were averaged over the image and its mirror image.');
    expect(screen.getByTestId('prediction-results').textContent).not.toMatch(/Bright colours \(orange, yellow\) mark/);
  });
});

describe('the apply form with an outlining model', () => {
  it('says what will be produced, offers no heatmap and asks for none', async () => {
    const hub = fakeHub({
      'GET /marketplace/models/': page([OUTLINER]),
      'GET /datasets/': page([datasetFixture({ accepted_count: 40 })]),
      'POST /predictions/': reply(202, prediction({ status: 'queued', results: [] })),
      'GET /predictions/21/': prediction(),
      'POST /datasets/4/thumbnails/': { urls: {}, mask_urls: {} },
    }, { schemaPaths: ['/predictions/'] });
    render(<ApplyPage site={SITE} />);
    const option = await screen.findByRole('option', { name: /Lesion outliner/ });
    expect(option.textContent).toBe('Lesion outliner — St Anne, version 1 (outlines lesion)');
    await waitFor(() => expect((screen.getByLabelText('1. Model') as HTMLSelectElement).value).toBe('5'));
    expect(screen.getByText(/Outlines lesion on each image\./)).toBeTruthy();
    expect(screen.queryByRole('checkbox', { name: /heatmap/ })).toBeNull();
    expect(screen.getByTestId('outline-products').textContent).toMatch(
      /the model’s outline of lesion drawn over the image, a map of\s+how likely each part is to be lesion, a map of where the model was unsure.*the mask as a PNG file to download/,
    );
    fireEvent.click(screen.getByRole('radio', { name: /A dataset at St Anne/ }));
    const select = screen.getByLabelText('Dataset');
    await within(select).findByRole('option', { name: /Breast ultrasound/ });
    fireEvent.change(select, { target: { value: '4' } });
    fireEvent.click(screen.getByRole('button', { name: 'Run the model' }));
    await screen.findByRole('heading', { name: 'What the model outlined' });
    expect(hub.sent('POST', '/predictions/')[0].body).toMatchObject({ published_version: 12, dataset: 4, heatmap: false });
  });
});
