import { afterEach, describe, expect, it, vi } from 'vitest';
import { cleanup, fireEvent, render, screen, waitFor } from '@testing-library/react';
import type { MaskSlot } from '../api/types';
import { MaskUploader, matchMaskSlots } from './MaskUploader';
import { fakeHub, type Call } from '../testing/fakeHub';
import { datasetFixture } from '../testing/fixtures';

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
});

/** A file as a folder pick gives it: its path inside the picked folder, and some bytes. */
function picked(path: string, bytes = 10): File {
  const file = new File(['x'.repeat(bytes)], path.split('/').pop()!);
  Object.defineProperty(file, 'webkitRelativePath', { value: path });
  return file;
}

const maskSlot = (mask_id: number, filename: string, reader = ''): MaskSlot => ({
  mask_id, reader, filename, key: `k${mask_id}`, url: `https://storage.test/m${mask_id}`, method: 'PUT', headers: {},
});

/** The hub's answer to upload-slots: a slot per requested image, a mask slot per requested mask. */
function slotsFor(call: Call) {
  const files = (call.body as { files: { filename: string; masks: { filename: string; reader: string }[] }[] }).files;
  let maskId = 100;
  return {
    refused: [],
    slots: files.map((f, i) => ({
      image_id: 10 + i, filename: f.filename, key: `i${i}`, url: `https://storage.test/i${i}`, method: 'PUT', headers: {}, expires_in: 900,
      mask_slots: f.masks.map((m) => maskSlot(maskId++, m.filename, m.reader)),
    })),
  };
}

const FOLDER = [
  picked('us/benign/images/b1.png', 30), picked('us/benign/masks/b1_mask.png', 5), picked('us/benign/masks/b1_mask_1.png', 5),
  picked('us/normal/images/n1.png', 20), picked('us/normal/masks/n1_mask.png', 4),
  picked('us/benign/images/b2.png', 30),
  picked('us/benign/masks/B-3_mask.png', 5), picked('us/benign/images/b_3.png', 30),
  picked('us/MD5SUMS', 3),
];

describe('adding images with their masks', () => {
  it('shows before sending what pairs, which images lack a mask and which masks match no image, with what to rename', async () => {
    const hub = fakeHub({});
    render(<MaskUploader dataset={datasetFixture()} onIngestStarted={() => {}} send={vi.fn()} />);
    fireEvent.change(screen.getByTestId('folder-input'), { target: { files: FOLDER } });
    expect((await screen.findByTestId('pairing-summary')).textContent).toBe('2 images with 3 mask files.');
    const unpaired = screen.getByTestId('unpaired-images').textContent!;
    expect(unpaired).toMatch(/2 images have no mask\. This dataset needs a mask with every image, so they will not be sent/);
    expect(unpaired).toContain('b2.png has no mask: add b2_mask.png beside it, or b2.png in a masks folder.');
    expect(screen.getByTestId('orphan-masks').textContent).toContain('B-3_mask.png looks like the mask of b_3.png, but the names differ: rename it b_3_mask.png.');
    expect(screen.getByTestId('skipped-files').textContent).toContain('MD5SUMS is not an image');
    expect(screen.getByRole('list', { name: 'Labels from folders' }).textContent).toBe('benign: 1normal: 1');
    expect(screen.getByRole('button', { name: 'Upload 2 images with their masks' })).toBeTruthy();
    expect(hub.calls.filter((c) => c.method !== 'GET')).toEqual([]);
  });

  it('asks for a link per image and per mask, sends every file to its own link, then has the site check them', async () => {
    const hub = fakeHub({ 'POST /datasets/4/upload-slots/': slotsFor, 'POST /datasets/4/uploads/complete/': { queued: 2 } });
    const sent: [string, string][] = [];
    const send = vi.fn(async (file: Blob, slot: { url: string }, onProgress: (n: number) => void) => {
      onProgress(file.size);
      sent.push([(file as File).name, slot.url]);
    });
    const onIngestStarted = vi.fn();
    render(<MaskUploader dataset={datasetFixture()} onIngestStarted={onIngestStarted} send={send} />);
    fireEvent.change(screen.getByTestId('folder-input'), { target: { files: FOLDER } });
    fireEvent.click(await screen.findByRole('button', { name: 'Upload 2 images with their masks' }));
    await waitFor(() => expect(onIngestStarted).toHaveBeenCalledWith([10, 11]));
    expect(hub.sent('POST', '/datasets/4/upload-slots/')[0].body).toEqual({
      files: [
        { filename: 'b1.png', size_bytes: 30, label: 'benign', masks: [{ filename: 'b1_mask.png', reader: '', size_bytes: 5 }, { filename: 'b1_mask_1.png', reader: '', size_bytes: 5 }] },
        { filename: 'n1.png', size_bytes: 20, label: 'normal', masks: [{ filename: 'n1_mask.png', reader: '', size_bytes: 4 }] },
      ],
      add_labels: true,
    });
    // Images go up a few at a time; each image's own files go one after the other, the image first.
    expect(sent.filter(([name]) => name.startsWith('b1'))).toEqual([
      ['b1.png', 'https://storage.test/i0'], ['b1_mask.png', 'https://storage.test/m100'], ['b1_mask_1.png', 'https://storage.test/m101'],
    ]);
    expect(sent.filter(([name]) => name.startsWith('n1'))).toEqual([['n1.png', 'https://storage.test/i1'], ['n1_mask.png', 'https://storage.test/m102']]);
    expect(sent).toHaveLength(5);
    expect(hub.sent('POST', '/datasets/4/uploads/complete/')[0].body).toEqual({ image_ids: [10, 11] });
    expect((await screen.findByText(/2 images and their masks sent/)).textContent).toMatch(/with their outlines/);
    const bar = screen.getByRole('progressbar', { name: 'Upload of us/benign/images/b1.png' });
    expect(bar.getAttribute('aria-valuenow')).toBe('100');
  });

  it('sends images without a mask too when the dataset allows it, saying a model learns only from masked images', async () => {
    const hub = fakeHub({ 'POST /datasets/4/upload-slots/': slotsFor, 'POST /datasets/4/uploads/complete/': { queued: 1 } });
    render(<MaskUploader dataset={datasetFixture({ masks_required: false })} onIngestStarted={() => {}} send={vi.fn(async () => {})} />);
    fireEvent.change(screen.getByTestId('folder-input'), { target: { files: [picked('f/a.png'), picked('f/b.png'), picked('f/b_mask.png')] } });
    expect((await screen.findByTestId('unpaired-images')).textContent).toMatch(/They will be added without a mask; a model learns only from images with a mask/);
    fireEvent.click(screen.getByRole('button', { name: 'Upload 2 images with their masks' }));
    await waitFor(() => expect(hub.sent('POST', '/datasets/4/upload-slots/')).toHaveLength(1));
    const files = (hub.sent('POST', '/datasets/4/upload-slots/')[0].body as { files: { filename: string; masks: unknown[] }[] }).files;
    expect(files.map((f) => [f.filename, f.masks.length])).toEqual([['a.png', 0], ['b.png', 1]]);
  });

  it('shows the hub’s refusal next to the image it concerns, and sends the others', async () => {
    fakeHub({
      'POST /datasets/4/upload-slots/': (call: Call) => {
        const answer = slotsFor(call);
        return { slots: answer.slots.slice(1), refused: [{ filename: 'b1.png', code: 'file_too_large', reason: 'The mask b1_mask.png is larger than 200 MB.' }] };
      },
      'POST /datasets/4/uploads/complete/': { queued: 1 },
    });
    const send = vi.fn(async () => {});
    render(<MaskUploader dataset={datasetFixture()} onIngestStarted={() => {}} send={send} />);
    fireEvent.change(screen.getByTestId('folder-input'), { target: { files: FOLDER } });
    fireEvent.click(await screen.findByRole('button', { name: 'Upload 2 images with their masks' }));
    expect((await screen.findByText('The mask b1_mask.png is larger than 200 MB.')).className).toContain('field-error');
    await waitFor(() => expect(send).toHaveBeenCalledTimes(2));
  });
});

describe('which picked file each mask link is for', () => {
  it('matches by reader and file name, so two readers’ masks of the same name never swap', () => {
    const masks = [{ reader: 'r1', file: { name: 'a.png' } }, { reader: 'r2', file: { name: 'a.png' } }];
    const matched = matchMaskSlots(masks, [maskSlot(2, 'a.png', 'r2'), maskSlot(1, 'a.png', 'r1')]);
    expect(matched.map((m) => [m.slot.mask_id, m.file === masks[1].file])).toEqual([[2, true], [1, false]]);
    expect(() => matchMaskSlots(masks, [maskSlot(3, 'other.png')])).toThrow(/was not among the files picked/);
  });
});
