import { afterEach, describe, expect, it, vi } from 'vitest';
import { cleanup, fireEvent, render, screen, waitFor } from '@testing-library/react';
import type { Dataset, DatasetStats, DeletionImpact, Membership } from '../api/types';
import { DangerZone, SplitRedraw, UnfinishedUploads, exportUrl, shortLabels, statusName } from './Dataset';
import { fakeHub, refusal } from '../testing/fakeHub';

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
});

const row = (label: string, train: number, val: number, test: number) => ({ label, count: train + val + test, train, val, test });
const FINE: DatasetStats['labels'] = [row('benign', 14, 3, 3), row('malignant', 12, 2, 2)];
const UNLUCKY: DatasetStats['labels'] = [row('benign', 14, 3, 3), row('malignant', 15, 0, 1)];

describe('drawing the split again', () => {
  it('finds the labels training would refuse, and none while there is only one label', () => {
    expect(shortLabels(FINE)).toEqual([]);
    expect(shortLabels(UNLUCKY)).toEqual(['malignant']);
    expect(shortLabels([row('benign', 1, 0, 0), row('malignant', 0, 0, 0)])).toEqual([]);
    expect(shortLabels([row('benign', 5, 1, 1), row('malignant', 1, 1, 1)])).toEqual(['malignant']);
  });

  it('stays out of the way when every label has images in every set', () => {
    fakeHub({});
    render(<SplitRedraw datasetId={4} labels={FINE} onDone={() => {}} />);
    expect(screen.queryByTestId('split-redraw')).toBeNull();
  });

  it('explains the problem in plain words, draws again on one click and says what moved', async () => {
    const hub = fakeHub({ 'POST /datasets/4/redraw-split/': { moved_images: 6, labels: FINE } });
    const onDone = vi.fn();
    render(<SplitRedraw datasetId={4} labels={UNLUCKY} onDone={onDone} />);
    const box = screen.getByTestId('split-redraw');
    expect(box.textContent).toMatch(/‘malignant’ has too few images in a set/);
    expect(box.textContent).toMatch(/keeping each patient’s images together/);
    fireEvent.click(screen.getByRole('button', { name: 'Draw the split again' }));
    expect(await screen.findByRole('status')).toHaveProperty('textContent', 'Done: 6 images moved to another set.');
    expect(hub.sent('POST', '/datasets/4/redraw-split/')).toHaveLength(1);
    expect(onDone).toHaveBeenCalledTimes(1);
  });

  it('shows the hub’s reason when the split is frozen, and changes nothing', async () => {
    const message = "A model was trained on this dataset (job 'first'), so its test images must stay unseen and the split cannot change. To train with another split, make a new dataset with these images.";
    fakeHub({ 'POST /datasets/4/redraw-split/': refusal(409, 'split_frozen', message) });
    const onDone = vi.fn();
    render(<SplitRedraw datasetId={4} labels={UNLUCKY} onDone={onDone} />);
    fireEvent.click(screen.getByRole('button', { name: 'Draw the split again' }));
    expect((await screen.findByRole('alert')).textContent).toContain('make a new dataset');
    await waitFor(() => expect((screen.getByRole('button', { name: 'Draw the split again' }) as HTMLButtonElement).disabled).toBe(false));
    expect(onDone).not.toHaveBeenCalled();
    expect(screen.queryByRole('status')).toBeNull();
  });
});

const DATASET: Dataset = {
  id: 4, site: 'st-anne', name: 'Demo chest', description: '', modality: 'xray', task: 'classification', label_names: ['normal', 'pneumonia'], positive_class: 'pneumonia',
  mask_classes: [], masks_required: false, reference_reader: '',
  image_count: 6, accepted_count: 4, rejected_count: 0, pending_count: 0, uploading_count: 0, unfinished_count: 2, status: 'active', created_at: '2026-01-01T00:00:00Z',
};
const member = (role: 'admin' | 'clinician'): Membership =>
  ({ site: { slug: 'st-anne', name: "St Anne's" }, role }) as Membership;
const IMPACT: DeletionImpact = {
  dataset: { id: 4, name: 'Demo chest' },
  images: 6,
  jobs: [{ id: 9, name: 'Chest screen run', status: 'succeeded' }],
  model_versions: [{ id: 12, name: 'Chest screen' }],
  published_versions: [{ id: 3, model_name: 'Chest screen', number: 1, status: 'published' }],
  evaluations: [],
  predictions: [],
  federated_jobs: [],
  blocking: [],
  can_delete: true,
  summary: 'Deleting removes its 6 images. The 1 model trained on it stay usable.',
};

describe('deleting a dataset', () => {
  it('tells a clinician that only a site administrator can delete, and offers no button', () => {
    const hub = fakeHub({});
    render(<DangerZone site={member('clinician')} dataset={DATASET} />);
    expect(screen.getByTestId('danger-zone').textContent).toMatch(/Only a site administrator can delete/);
    expect(screen.queryByRole('button', { name: 'Delete dataset' })).toBeNull();
    expect(hub.sent('GET', '/datasets/4/deletion-impact/')).toHaveLength(0);
  });

  it('shows an administrator what depends on the dataset and what is kept before deleting', async () => {
    const hub = fakeHub({
      'GET /datasets/4/deletion-impact/': IMPACT,
      'DELETE /datasets/4/': { ...IMPACT, status: 'deleting' },
    });
    render(<DangerZone site={member('admin')} dataset={DATASET} />);
    fireEvent.click(screen.getByText('Delete this dataset'));
    const impact = await screen.findByTestId('deletion-impact');
    expect(impact.textContent).toContain('stay usable');
    expect(impact.textContent).toContain('Chest screen run');
    expect(impact.textContent).toContain('Chest screen (version 1, published)');
    const button = screen.getByRole('button', { name: 'Delete dataset' }) as HTMLButtonElement;
    expect(button.disabled).toBe(true);
    fireEvent.change(screen.getByLabelText('Dataset name'), { target: { value: 'Demo chest' } });
    expect(button.disabled).toBe(false);
    fireEvent.click(button);
    await waitFor(() => expect(hub.sent('DELETE', '/datasets/4/')).toHaveLength(1));
  });

  it('names the work that blocks deletion and keeps the button disabled', async () => {
    fakeHub({
      'GET /datasets/4/deletion-impact/': {
        ...IMPACT,
        can_delete: false,
        blocking: ["The training job 'Chest screen run' is running: wait for it to finish or cancel it."],
      },
    });
    render(<DangerZone site={member('admin')} dataset={DATASET} />);
    fireEvent.click(screen.getByText('Delete this dataset'));
    expect((await screen.findByTestId('deletion-blocked')).textContent).toContain('wait for it to finish');
    fireEvent.change(screen.getByLabelText('Dataset name'), { target: { value: 'Demo chest' } });
    expect((screen.getByRole('button', { name: 'Delete dataset' }) as HTMLButtonElement).disabled).toBe(true);
  });
});

describe('uploads that were not finished', () => {
  const expired = [
    { id: 21, filename: 'a.png', label: 'normal', patient_id: 'P1', status: 'expired', reject_reason: null, width: null, height: null, split: 'train' },
    { id: 22, filename: 'b.png', label: 'normal', patient_id: 'P2', status: 'expired', reject_reason: null, width: null, height: null, split: 'train' },
  ];
  const listRoute = { 'GET /datasets/4/images/': { count: 2, next: null, previous: null, results: expired } };

  it('lists them in plain words and discards them on request', async () => {
    const hub = fakeHub({ ...listRoute, 'POST /datasets/4/uploads/discard/': { discarded: 2 } });
    const onChanged = vi.fn();
    render(<UnfinishedUploads datasetId={4} count={2} tick={0} onChanged={onChanged} />);
    const panel = await screen.findByTestId('unfinished-uploads');
    await waitFor(() => expect(panel.textContent).toContain('b.png'));
    expect(panel.textContent).toMatch(/Upload not finished/i);
    expect(hub.sent('GET', '/datasets/4/images/')[0].query.status).toBe('expired');
    fireEvent.click(screen.getByRole('button', { name: 'Discard these uploads' }));
    expect((await screen.findByRole('status')).textContent).toBe('Discarded 2 unfinished uploads.');
    expect(hub.sent('POST', '/datasets/4/uploads/discard/')[0].body).toEqual({ image_ids: [21, 22] });
    expect(onChanged).toHaveBeenCalled();
  });

  it('resumes them from the same files: new links, the files sent, then checked', async () => {
    const hub = fakeHub({
      ...listRoute,
      'POST /datasets/4/uploads/resume/': {
        slots: [{ image_id: 22, filename: 'b.png', key: 'k', url: 'https://storage.test/k', method: 'PUT', headers: {}, expires_in: 900 }],
        refused: [],
      },
      'POST /datasets/4/uploads/complete/': { queued: 1 },
    });
    const sentFiles: string[] = [];
    const send = vi.fn(async (file: Blob) => { sentFiles.push((file as File).name); });
    render(<UnfinishedUploads datasetId={4} count={2} tick={0} onChanged={() => {}} send={send} />);
    await waitFor(() => expect(screen.getByTestId('unfinished-uploads').textContent).toContain('b.png'));
    const input = screen.getByLabelText('Choose the same files again to resume');
    fireEvent.change(input, { target: { files: [new File(['x'], 'b.png'), new File(['y'], 'other.png')] } });
    expect((await screen.findByRole('status')).textContent).toBe(
      'Resumed 1 upload; your site is checking it. 1 chosen file was not among the unfinished uploads.',
    );
    expect(hub.sent('POST', '/datasets/4/uploads/resume/')[0].body).toEqual({ image_ids: [22] });
    expect(sentFiles).toEqual(['b.png']);
    expect(hub.sent('POST', '/datasets/4/uploads/complete/')[0].body).toEqual({ image_ids: [22] });
  });

  it('stays out of the way when every upload finished', () => {
    fakeHub({});
    render(<UnfinishedUploads datasetId={4} count={0} tick={0} onChanged={() => {}} />);
    expect(screen.queryByTestId('unfinished-uploads')).toBeNull();
  });
});

describe('downloading the image list', () => {
  it('links the CSV export of the dataset', () => {
    expect(exportUrl(4)).toBe('/api/v1/datasets/4/export/');
  });
});

describe('image status words', () => {
  it('never says a slot still waiting for its file is being checked', () => {
    expect(statusName({ status: 'pending', upload_expires_at: '2026-12-05T08:00:00Z' })).toBe('Waiting for the file');
    expect(statusName({ status: 'pending', upload_expires_at: null })).toBe('Being checked');
    expect(statusName({ status: 'expired', upload_expires_at: null })).toBe('Upload not finished');
  });
});
