import { afterEach, describe, expect, it, vi } from 'vitest';
import { cleanup, fireEvent, render, screen, waitFor } from '@testing-library/react';
import type { DatasetStats } from '../api/types';
import { SplitRedraw, shortLabels } from './Dataset';
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
