import { afterEach, describe, expect, it, vi } from 'vitest';
import { cleanup, fireEvent, render, screen, waitFor, within } from '@testing-library/react';
import type { DatasetImage, Mask, SegmentationStats } from '../api/types';
import { SegmentationStatsPanel } from './SegmentationStats';
import { MaskGallery, maskInWords } from './MaskGallery';
import { ZipImport } from './ZipImport';
import { fakeHub, refusal } from '../testing/fakeHub';
import { datasetFixture } from '../testing/fixtures';
import { sizeBinLabel } from '../lib/segmentation';

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
});

const STATS: SegmentationStats = {
  mask_classes: ['vessel'],
  images_with_mask: 28,
  images_without_mask: 2,
  empty_masks: 3,
  lesions: { total: 41, images_with_several: 9 },
  size_histogram: [
    { from: 0, to: 0.01, count: 4 }, { from: 0.01, to: 0.02, count: 0 }, { from: 0.02, to: 0.05, count: 6 },
    { from: 0.05, to: 0.1, count: 10 }, { from: 0.1, to: 0.2, count: 5 }, { from: 0.2, to: 0.5, count: 0 }, { from: 0.5, to: 1, count: 0 },
  ],
  size_median: 0.062,
  readers: [{ reader: '1stHO', accepted: 28, rejected: 0, pending: 0 }, { reader: '2ndHO', accepted: 27, rejected: 1, pending: 0 }],
  agreement: {
    images: 27, mean_dice: 0.7771, median_dice: 0.781,
    worst: [{ image_id: 9, filename: 'Image_11R.jpg', reader: '2ndHO', dice: 0.6912 }, { image_id: 4, filename: 'Image_02L.jpg', reader: '2ndHO', dice: 0.7113 }],
  },
};

describe('the statistics of a dataset’s masks', () => {
  it('counts images with and without a mask and the normal images, in plain words', () => {
    render(<SegmentationStatsPanel stats={STATS} referenceReader="1stHO" />);
    expect(within(screen.getByTestId('with-mask')).getByText('28')).toBeTruthy();
    expect(screen.getByTestId('without-mask').textContent).toMatch(/2a model learns only from images with a mask/);
    expect(screen.getByTestId('empty-masks').textContent).toMatch(/Empty masks \(normal images\)3nothing outlined/);
    expect(screen.getByTestId('mask-stats').textContent).toContain('9 images with more than one');
    expect(screen.getByTestId('mask-stats').textContent).toContain('2 ready images have no mask.');
  });

  it('draws the lesion sizes as a bar per share of the image, with the median in words', () => {
    render(<SegmentationStatsPanel stats={STATS} />);
    const rows = within(screen.getByTestId('size-histogram')).getAllByRole('row').slice(1);
    expect(rows.map((r) => r.textContent)).toEqual(['under 1 %4', '1–2 %0', '2–5 %6', '5–10 %10', '10–20 %5', '20–50 %0', '50–100 %0']);
    expect(screen.getByText(/Half the masks cover less than 6\.2% of their image/)).toBeTruthy();
  });

  it('lists the readers, their agreement (mean Dice, explained) and the images they disagree on most', () => {
    render(<SegmentationStatsPanel stats={STATS} referenceReader="1stHO" />);
    expect(screen.getByTestId('readers').textContent).toMatch(/Models learn from 1stHO’s masks/);
    const agreement = screen.getByTestId('agreement');
    expect(agreement.textContent).toMatch(/Over 27 masks drawn by a second reader, .* mean Dice of 0\.78 \(median 0\.78\)/);
    expect(agreement.textContent).toContain('Dice: how much two outlines overlap; 1 is perfect');
    const worst = within(screen.getByTestId('agreement-worst')).getAllByRole('row').slice(1);
    expect(worst.map((r) => r.textContent)).toEqual(['Image_11R.jpg2ndHO0.69', 'Image_02L.jpg2ndHO0.71']);
  });

  it('says there are no masks yet, and shows no agreement with a single reader', () => {
    const { rerender } = render(<SegmentationStatsPanel stats={{ ...STATS, images_with_mask: 0, images_without_mask: 0 }} />);
    expect(screen.getByTestId('mask-stats').textContent).toMatch(/No masks yet/);
    rerender(<SegmentationStatsPanel stats={{ ...STATS, readers: [STATS.readers[0]], agreement: { images: 0, mean_dice: null, median_dice: null, worst: [] } }} />);
    expect(screen.queryByTestId('agreement')).toBeNull();
    expect(screen.getByTestId('readers').textContent).not.toMatch(/Models learn from/);
  });

  it('names size bins as shares of the image', () => {
    expect(sizeBinLabel({ from: 0, to: 0.01 })).toBe('under 1 %');
    expect(sizeBinLabel({ from: 0.005, to: 0.015 })).toBe('0.5–1.5 %');
    expect(sizeBinLabel({ from: 0.5, to: 1.0001 })).toBe('50–100 %');
  });
});

const mask = (id: number, reader: string, extra: Partial<Mask> = {}): Mask => ({
  id, reader, filenames: [`m${id}.png`], status: 'accepted', reject_code: '', reject_reason: '',
  stats: { empty: false, foreground_fraction: 0.032, components: 1 }, agreement_dice: null, ...extra,
});
const image = (id: number, filename: string, masks: Mask[], extra: Partial<DatasetImage> = {}): DatasetImage => ({
  id, filename, label: '', patient_id: '', split: 'train', status: 'accepted', reject_code: '', reject_reason: '', sha256: '',
  size_bytes: 10, width: 256, height: 256, channels: 1, modality: '', created_at: '2026-01-01T00:00:00Z', upload_expires_at: null, masks, ...extra,
});

describe('images with their masks outlined', () => {
  const IMAGES = [
    image(1, 'Image_01L.jpg', [mask(11, '1stHO'), mask(12, '2ndHO', { agreement_dice: 0.8123 })]),
    image(2, 'Image_01R.jpg', [mask(21, '1stHO', { stats: { empty: true, foreground_fraction: 0, components: 0 } }),
      mask(22, '2ndHO', { status: 'rejected', reject_code: 'mask_size_mismatch', reject_reason: 'The mask is 900 × 900 pixels but its image 999 × 960: export it again at the image’s size.' })]),
  ];
  const routes = {
    'GET /datasets/4/images/': { count: 2, next: null, previous: null, results: IMAGES },
    'POST /datasets/4/thumbnails/': {
      urls: { 1: 'https://s.test/t1', 2: 'https://s.test/t2' },
      mask_urls: { 11: 'https://s.test/o11', 12: 'https://s.test/o12', 21: 'https://s.test/o21' },
    },
  };

  it('shows the reference reader’s outline over each image, and the other reader on request', async () => {
    const hub = fakeHub(routes);
    render(<MaskGallery dataset={datasetFixture({ reference_reader: '1stHO' })} readers={['1stHO', '2ndHO']} tick={0} />);
    const first = await screen.findByAltText('Image_01L.jpg with its mask by 1stHO outlined');
    expect(first.getAttribute('src')).toBe('https://s.test/o11');
    expect(screen.getByAltText('Image_01R.jpg with its mask by 1stHO outlined').getAttribute('src')).toBe('https://s.test/o21');
    expect(screen.getByText('Empty: nothing outlined (a normal image)')).toBeTruthy();
    expect(hub.sent('POST', '/datasets/4/thumbnails/')[0].body).toEqual({ image_ids: [1, 2] });

    fireEvent.click(within(screen.getByTestId('reader-switch')).getByLabelText('2ndHO'));
    expect(screen.getByAltText('Image_01L.jpg with its mask by 2ndHO outlined').getAttribute('src')).toBe('https://s.test/o12');
    expect(screen.getByText('Agrees with the reference reader: Dice 0.81')).toBeTruthy();
    // The 2nd reader's mask of Image_01R was turned away: the plain image, and why.
    expect(screen.getByAltText('Image_01R.jpg').getAttribute('src')).toBe('https://s.test/t2');
  });

  it('names every mask turned away, with its reader, file and reason', async () => {
    fakeHub(routes);
    render(<MaskGallery dataset={datasetFixture()} readers={['1stHO', '2ndHO']} tick={0} />);
    expect((await screen.findByTestId('mask-rejected')).textContent).toBe(
      'Mask by 2ndHO (m22.png) turned away: The mask is 900 × 900 pixels but its image 999 × 960: export it again at the image’s size.',
    );
  });

  it('shows the plain images when the masks are switched off, and offers no reader switch for one reader', async () => {
    fakeHub({ ...routes, 'GET /datasets/4/images/': { count: 1, next: null, previous: null, results: [image(1, 'a.png', [mask(11, '')])] } });
    render(<MaskGallery dataset={datasetFixture()} readers={['']} tick={0} />);
    expect((await screen.findByAltText('a.png with its mask outlined')).getAttribute('src')).toBe('https://s.test/o11');
    expect(screen.queryByTestId('reader-switch')).toBeNull();
    fireEvent.click(screen.getByLabelText('Show the masks over the images'));
    expect(screen.getByAltText('a.png').getAttribute('src')).toBe('https://s.test/t1');
    expect(maskInWords(mask(1, '', { stats: { empty: false, foreground_fraction: 0.25, components: 3 } }))).toBe('3 outlined areas, 25% of the image');
  });
});

describe('importing a zip', () => {
  it('explains the layouts a zip of images and masks may have', () => {
    fakeHub({});
    render(<ZipImport dataset={datasetFixture()} onImported={() => {}} />);
    const text = screen.getByTestId('zip-layouts').textContent!;
    for (const layout of ['images/ folder and a masks/ folder', 'case1_mask.png', 'Image_01L_1stHO.png', 'a CSV list at the top', 'patient_id']) {
      expect(text).toContain(layout);
    }
  });

  it('sends the zip to site storage, has the site unpack it, follows it, and lists the files it could not use', async () => {
    let polls = 0;
    const hub = fakeHub({
      'POST /datasets/4/archives/': { archive_id: 8, url: 'https://s.test/zip', method: 'PUT', headers: {} },
      'POST /datasets/4/archives/8/import/': { id: 8, filename: 'busi.zip', status: 'extracting', message: '', image_count: 0, rejected: [], add_labels: true, created_at: '' },
      'GET /datasets/4/archives/8/': () => (++polls < 2
        ? { id: 8, filename: 'busi.zip', status: 'extracting', message: '', image_count: 0, rejected: [], add_labels: true, created_at: '' }
        : { id: 8, filename: 'busi.zip', status: 'done', message: '', image_count: 12, add_labels: true, created_at: '',
          rejected: [{ filename: 'benign/masks/ghost_mask.png', reason: 'benign/masks/ghost_mask.png is a mask, but the archive has no image named \'ghost\'.' }] }),
    });
    vi.useFakeTimers({ shouldAdvanceTime: true });
    try {
      const send = vi.fn(async () => {});
      const onImported = vi.fn();
      render(<ZipImport dataset={datasetFixture()} onImported={onImported} send={send} />);
      const zip = new File(['PK'], 'busi.zip', { type: 'application/zip' });
      fireEvent.change(screen.getByLabelText('Zip file'), { target: { files: [zip] } });
      fireEvent.click(screen.getByRole('button', { name: 'Import the zip' }));
      await screen.findByText('Your site is unpacking the zip…');
      expect(hub.sent('POST', '/datasets/4/archives/')[0].body).toEqual({ filename: 'busi.zip', size_bytes: 2, add_labels: true });
      expect(send).toHaveBeenCalledWith(zip, expect.objectContaining({ url: 'https://s.test/zip' }), expect.any(Function));
      await vi.advanceTimersByTimeAsync(4500);
      await waitFor(() => expect(onImported).toHaveBeenCalledTimes(1));
      expect(screen.getByText(/12 images unpacked with their masks/)).toBeTruthy();
      expect(screen.getByTestId('zip-rejected').textContent).toContain("benign/masks/ghost_mask.png is a mask, but the archive has no image named 'ghost'.");
      expect(screen.getByTestId('zip-rejected').textContent).not.toContain('ghost_mask.png: benign');
    } finally {
      vi.useRealTimers();
    }
  });
});

describe('a segmentation dataset’s page', () => {
  it('offers images with masks, the mask statistics, the zip layouts and the outlined images, and no finding choice', async () => {
    const stats = { labels: [{ label: '', count: 30, train: 20, val: 4, test: 6 }], status: { accepted: 30, rejected: 0, pending: 0 }, patients: { count: 0, images_without_patient: 30 }, sizes: {}, rejected_by_reason: [], unlabelled: 30, segmentation: STATS };
    fakeHub({
      // Labels from folders (benign, malignant): a classification dataset would ask which is the finding.
      'GET /datasets/4/': datasetFixture({ mask_classes: ['vessel'], label_names: ['benign', 'malignant'], accepted_count: 30 }),
      'GET /datasets/4/stats/': stats,
      'GET /datasets/4/images/': { count: 1, next: null, previous: null, results: [image(1, 'Image_01L.jpg', [mask(11, '1stHO'), mask(12, '2ndHO')])] },
      'POST /datasets/4/thumbnails/': { urls: { 1: 'https://s.test/t1' }, mask_urls: { 11: 'https://s.test/o11', 12: 'https://s.test/o12' } },
    });
    const { DatasetPage } = await import('../pages/Dataset');
    render(<DatasetPage site={{ site: { slug: 'st-anne', name: 'St Anne', agent_last_seen_at: null }, role: 'clinician' }} params={{ id: '4' }} />);
    expect((await screen.findByRole('heading', { name: 'Add images with their masks' }))).toBeTruthy();
    expect(screen.getByText(/Masks mark vessel \(yellow\)/)).toBeTruthy();
    expect((await screen.findByTestId('agreement')).textContent).toContain('0.78');
    expect(screen.getByTestId('zip-layouts')).toBeTruthy();
    expect(await screen.findByAltText('Image_01L.jpg with its mask by 1stHO outlined')).toBeTruthy();
    expect(screen.getByTestId('reader-switch')).toBeTruthy();
    expect(screen.queryByText(/no label yet/)).toBeNull();
    expect(screen.queryByRole('heading', { name: 'What the model looks for' })).toBeNull();
  });
});

describe('mask settings', () => {
  it('adds kinds of marks at the end, sets the reference reader, and shows why the hub refuses a change', async () => {
    const { MaskSettings } = await import('./MaskSettings');
    const hub = fakeHub({ 'PATCH /datasets/4/': datasetFixture() });
    const onChanged = vi.fn();
    render(<MaskSettings dataset={datasetFixture()} readers={['1stHO', '2ndHO']} onChanged={onChanged} />);
    fireEvent.change(screen.getByLabelText(/Add kinds of marks/), { target: { value: 'calcification' } });
    fireEvent.change(screen.getByLabelText(/Whose masks models learn from/), { target: { value: '2ndHO' } });
    fireEvent.click(screen.getByRole('button', { name: 'Save mask settings' }));
    await waitFor(() => expect(onChanged).toHaveBeenCalled());
    expect(hub.sent('PATCH', '/datasets/4/')[0].body).toEqual({ mask_classes: ['lesion', 'calcification'], masks_required: true, reference_reader: '2ndHO' });
    cleanup();

    const message = 'Masks already use these classes\' values: you may add classes at the end, but not rename, reorder or remove them.';
    fakeHub({ 'PATCH /datasets/4/': refusal(409, 'mask_classes_in_use', message) });
    render(<MaskSettings dataset={datasetFixture()} readers={[]} onChanged={() => {}} />);
    fireEvent.change(screen.getByLabelText(/Add kinds of marks/), { target: { value: 'cyst' } });
    fireEvent.click(screen.getByRole('button', { name: 'Save mask settings' }));
    expect(await screen.findByText(message)).toBeTruthy();
    fireEvent.change(screen.getByLabelText(/Add kinds of marks/), { target: { value: 'Lesion' } });
    fireEvent.click(screen.getByRole('button', { name: 'Save mask settings' }));
    expect(screen.getByText('“Lesion” is listed twice: name each kind of mark once.')).toBeTruthy();
  });
});
