import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { cleanup, fireEvent, render, screen, waitFor, within } from '@testing-library/react';
import type { Membership, Prediction, PredictionResult, PublishedModel } from '../api/types';
import { ApplyPage, PredictionView } from './Apply';
import { fakeHub, reply, type Routes } from '../testing/fakeHub';
import { INBOX_NAME } from '../lib/inbox';

const BOROUGH: Membership = { site: { slug: 'borough', name: 'Borough General', agent_last_seen_at: null }, role: 'clinician' };

const MODEL: PublishedModel = {
  id: 4, name: 'Mass finder', site: 'st-anne', site_name: 'St Anne’s Hospital', modality: 'xray', task: 'classification',
  architecture: 'small_cnn', label_names: ['mass', 'normal'], visibility: 'consortium', named_sites: null, intended_use: '',
  limitations: '', version_count: 1, created_at: '', updated_at: '',
  latest_version: { id: 11, number: 1, status: 'published', auc: 0.9, dice: null, task: 'classification', positive_class: 'mass', weights_sha256: '', published_at: '' },
};

const page = <T,>(results: T[]) => ({ count: results.length, next: null, previous: null, results });

const DATASET = { id: 6, site: 'borough', name: 'Mammograms 2026', label_names: ['mass', 'normal'], accepted_count: 63, image_count: 63, rejected_count: 0, pending_count: 0, description: '', modality: 'xray', created_at: '' };

function prediction(extra: Partial<Prediction> = {}): Prediction {
  return {
    id: 21, site: 'borough', status: 'queued', published_version: 11, model_version: null, dataset: 6, label_names: ['mass', 'normal'],
    tta: false, heatmap: true, images: 63, results: [], error_code: '', message: '', created_at: '', finished_at: null, ...extra,
  } as Prediction;
}

function results(n: number): PredictionResult[] {
  return Array.from({ length: n }, (_, i) => ({
    image_id: 795 + i, filename: `patient-${i}-left-CC.png`, probabilities: { mass: 0.7, normal: 0.3 },
    overlay_url: `https://storage.test/overlays/${795 + i}.png?sig=abc`,
  }));
}

/** A stand-in for the browser's IntersectionObserver: the test says which rows scroll into view. */
class FakeObserver {
  static all: FakeObserver[] = [];
  elements = new Set<Element>();
  constructor(private readonly callback: IntersectionObserverCallback) {
    FakeObserver.all.push(this);
  }
  observe(el: Element) { this.elements.add(el); }
  unobserve(el: Element) { this.elements.delete(el); }
  disconnect() { this.elements.clear(); }
  static scrollIntoView(el: Element) {
    for (const o of FakeObserver.all.filter((x) => x.elements.has(el))) {
      o.callback([{ isIntersecting: true, target: el } as unknown as IntersectionObserverEntry], o as unknown as IntersectionObserver);
    }
  }
}

beforeEach(() => {
  FakeObserver.all = [];
  vi.stubGlobal('IntersectionObserver', FakeObserver);
});
afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
});

function renderApply(routes: Routes) {
  const hub = fakeHub(
    { 'GET /marketplace/models/': page([MODEL]), 'GET /datasets/': page([DATASET]), ...routes },
    { schemaPaths: ['/predictions/'] },
  );
  render(<ApplyPage site={BOROUGH} />);
  return hub;
}

describe('Apply a model: new images', () => {
  it('creates nothing when the page is merely opened', async () => {
    const hub = renderApply({ 'GET /datasets/': page([]) });
    await screen.findByRole('option', { name: /Mass finder/ });
    await screen.findByTestId('dropzone');
    await waitFor(() => expect(hub.sent('GET', '/marketplace/models/')).toHaveLength(1));
    expect(hub.calls.filter((c) => c.method !== 'GET')).toEqual([]);
  });

  it('makes the holding dataset only when the first images are sent, then asks for upload links in it', async () => {
    const hub = renderApply({
      'GET /datasets/': page([]),
      'POST /datasets/': reply(201, { ...DATASET, id: 9, name: INBOX_NAME, label_names: [] }),
      'POST /datasets/9/upload-slots/': { slots: [], refused: [{ filename: 'new.png', code: 'duplicate', reason: 'Already here.' }] },
    });
    const file = new File([new Uint8Array([1, 2, 3])], 'new.png', { type: 'image/png' });
    fireEvent.change(await screen.findByTestId('file-input'), { target: { files: [file] } });
    fireEvent.click(await screen.findByRole('button', { name: 'Upload 1 image' }));
    await waitFor(() => expect(hub.sent('POST', '/datasets/9/upload-slots/')).toHaveLength(1));
    const created = hub.calls.filter((c) => c.method === 'POST' && c.path === '/datasets/');
    expect(created).toHaveLength(1);
    expect(created[0].body).toMatchObject({ site: 'borough', name: INBOX_NAME });
    expect(hub.calls.indexOf(created[0])).toBeLessThan(hub.calls.indexOf(hub.sent('POST', '/datasets/9/upload-slots/')[0]));
  });
});

describe('Apply to a dataset', () => {
  async function runOnDataset() {
    fireEvent.change(await screen.findByLabelText('1. Model'), { target: { value: '4' } });
    fireEvent.click(screen.getByRole('radio', { name: /A dataset at Borough General/ }));
    const select = screen.getByLabelText('Dataset');
    await within(select).findByRole('option', { name: /Mammograms 2026/ });
    fireEvent.change(select, { target: { value: '6' } });
    fireEvent.click(screen.getByRole('button', { name: 'Run the model' }));
  }

  it('keeps one request open at a time while the model runs, however long the hub holds each one', async () => {
    let open = 0;
    let mostOpen = 0;
    let asked = 0;
    const hub = renderApply({
      'POST /predictions/': reply(202, prediction()),
      'GET /predictions/21/': async () => {
        open += 1;
        mostOpen = Math.max(mostOpen, open);
        asked += 1;
        // The hub holds a long-poll while the model runs (here 1.6 s, longer than the old 1.5 s interval).
        const held = asked === 1 ? 1600 : 0;
        await new Promise((r) => setTimeout(r, held));
        open -= 1;
        return asked === 1 ? prediction({ status: 'running' }) : prediction({ status: 'succeeded', results: results(63) });
      },
    });
    await runOnDataset();
    await screen.findByTestId('prediction-results', undefined, { timeout: 5000 });
    expect(mostOpen).toBe(1);
    expect(hub.sent('GET', '/predictions/21/')).toHaveLength(2);
    expect(hub.sent('GET', '/predictions/21/').every((c) => c.query.wait === '10')).toBe(true);
  });

  it('names each result by its file and loads a heatmap only when its row scrolls into view, once', async () => {
    const hub = renderApply({
      'POST /predictions/': reply(202, prediction({ status: 'succeeded', results: results(63) })),
    });
    await runOnDataset();
    const list = await screen.findByTestId('prediction-results');
    const rows = within(list).getAllByTestId('prediction-result');
    expect(rows).toHaveLength(63);
    expect(rows[0].textContent).toContain('patient-0-left-CC.png');
    expect(list.textContent).not.toMatch(/Image 795/);
    expect(list.querySelectorAll('img')).toHaveLength(0); // nothing below the fold is fetched yet

    FakeObserver.scrollIntoView(rows[0]);
    FakeObserver.scrollIntoView(rows[1]);
    await waitFor(() => expect(list.querySelectorAll('img')).toHaveLength(2));
    const first = list.querySelector('img')!;
    expect(first.getAttribute('src')).toBe('https://storage.test/overlays/795.png?sig=abc');
    FakeObserver.scrollIntoView(rows[0]); // scrolled past again: the same image, not a new request
    expect(list.querySelectorAll('img')).toHaveLength(2);
    expect(list.querySelector('img')).toBe(first);
    expect(hub.sent('GET', '/predictions/21/')).toHaveLength(0); // a finished answer needs no polling
  });

  it('says in plain words that the option averages the views the model was trained on, and sends it', async () => {
    const hub = renderApply({ 'POST /predictions/': reply(202, prediction()) });
    const option = await screen.findByRole('checkbox', { name: /average/i });
    expect(option.parentElement!.textContent).toMatch(/over the views the model learned from \(for models trained here: the image and its mirror image\)/);
    expect(option.parentElement!.textContent).not.toMatch(/turned/);
    fireEvent.click(option);
    await runOnDataset();
    await waitFor(() => expect(hub.sent('POST', '/predictions/')).toHaveLength(1));
    expect(hub.sent('POST', '/predictions/')[0].body).toMatchObject({ tta: true });
  });

  it('says in plain words how each result set’s likelihoods were averaged', async () => {
    const answered = (rows: PredictionResult[]) => renderApply({ 'POST /predictions/': reply(202, prediction({ status: 'succeeded', tta: true, results: rows })) });
    const averaged = async () => (await screen.findByTestId('prediction-tta')).textContent;
    answered(results(3).map((r) => ({ ...r, tta: 'hflip' as const })));
    await runOnDataset();
    expect(await averaged()).toBe('Each image’s answers were averaged over the image and its mirror image.');
    cleanup();
    answered(results(2).map((r) => ({ ...r, tta: 'none' as const })));
    await runOnDataset();
    expect(await averaged()).toBe('Each image was looked at once, as it is: its answers were not averaged.');
    cleanup();
    answered([...results(2).map((r) => ({ ...r, tta: 'd4' as const })), ...results(1)]);
    await runOnDataset();
    expect(await averaged()).toBe('Averaged over: 8 turns and flips (2 images); not recorded (1 image).');
    cleanup();
    answered(results(2)); // results stored before the site recorded it
    await runOnDataset();
    expect(await averaged()).toBe('How each image’s answers were averaged was not recorded.');
  });

  it('shows the agent’s sentence for an image the model could not read', async () => {
    renderApply({
      'POST /predictions/': reply(202, prediction({
        status: 'succeeded', heatmap: false,
        results: [{ image_id: 801, filename: 'scan.dcm', error: { code: 'unreadable', message: 'This DICOM file holds no image.' } }],
      })),
    });
    await runOnDataset();
    const list = await screen.findByTestId('prediction-results');
    expect(list.textContent).toContain('scan.dcm');
    expect(list.textContent).toContain('This DICOM file holds no image.');
  });
});

describe('the holding dataset for checked images', () => {
  it('is left out of the datasets one may train on', async () => {
    const { withoutInbox } = await import('../lib/inbox');
    const listed = withoutInbox(page([DATASET, { ...DATASET, id: 9, name: INBOX_NAME }]));
    expect(listed.results.map((d) => d.name)).toEqual(['Mammograms 2026']);
  });
});

describe('a prediction the site picked up again', () => {
  it('says so while it waits, and not on its first attempt', () => {
    render(<PredictionView prediction={prediction({ status: 'queued', attempt: 2 })} names={new Map()} />);
    expect(screen.getByTestId('retry-note').textContent).toMatch(/picked it up again \(attempt 2\)/);
    cleanup();
    render(<PredictionView prediction={prediction({ status: 'running', attempt: 1 })} names={new Map()} />);
    expect(screen.queryByTestId('retry-note')).toBeNull();
  });
});
