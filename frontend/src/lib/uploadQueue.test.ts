import { describe, expect, it } from 'vitest';
import { runQueue, storageErrorMessage, summarize, type UploadItem } from './uploadQueue';
import { labelCounts, labelFromPath, pickedFromFileList } from './folders';

const item = (key: string, size = 100): UploadItem => ({ key, name: `${key}.png`, size, label: null, loaded: 0, state: 'waiting' });

describe('runQueue', () => {
  it('sends every file, never more than the concurrency limit at once, and reports progress', async () => {
    let inFlight = 0;
    let maxInFlight = 0;
    const snapshots: UploadItem[][] = [];
    const result = await runQueue(
      ['a', 'b', 'c', 'd', 'e'].map((k) => item(k)),
      async (it, onProgress) => {
        inFlight += 1;
        maxInFlight = Math.max(maxInFlight, inFlight);
        onProgress(it.size / 2);
        await new Promise((r) => setTimeout(r, 5));
        inFlight -= 1;
      },
      (items) => snapshots.push(items),
      2,
    );
    expect(maxInFlight).toBe(2);
    expect(result.every((i) => i.state === 'done' && i.loaded === i.size)).toBe(true);
    expect(snapshots.some((s) => s.some((i) => i.state === 'uploading' && i.loaded === 50))).toBe(true);
  });

  it('keeps going when one file fails, and retries only the failed ones', async () => {
    let calls: string[] = [];
    const first = await runQueue(
      [item('ok1'), item('bad'), item('ok2')],
      async (it) => {
        calls.push(it.key);
        if (it.key === 'bad') throw new Error(storageErrorMessage(403));
      },
      () => {},
    );
    expect(first.map((i) => i.state)).toEqual(['done', 'failed', 'done']);
    expect(first[1].error).toMatch(/Retry failed files/);
    const s = summarize(first);
    expect([s.done, s.failed, s.total]).toEqual([2, 1, 3]);
    calls = [];
    const second = await runQueue(first, async (it) => { calls.push(it.key); }, () => {});
    expect(calls).toEqual(['bad']);
    expect(second.map((i) => i.state)).toEqual(['done', 'done', 'done']);
  });
});

describe('summarize', () => {
  it('weights progress by bytes', () => {
    const s = summarize([
      { ...item('a', 300), state: 'done' },
      { ...item('b', 100), state: 'uploading', loaded: 50 },
    ]);
    expect(s.fraction).toBeCloseTo(350 / 400);
    expect(summarize([]).fraction).toBe(0);
  });
});

describe('folder labels', () => {
  it('takes the label from the folder that holds the file', () => {
    expect(labelFromPath('xrays/pneumonia/a.png')).toBe('pneumonia');
    expect(labelFromPath('normal/b.png')).toBe('normal');
    expect(labelFromPath('c.png')).toBeNull();
  });
  it('skips hidden and system files and counts labels', () => {
    const make = (path: string) => {
      const f = new File(['x'], path.split('/').pop()!);
      Object.defineProperty(f, 'webkitRelativePath', { value: path });
      return f;
    };
    const picked = pickedFromFileList([make('set/normal/1.png'), make('set/normal/.DS_Store'), make('set/pneumonia/2.png'), make('set/__MACOSX/x.png'), make('set/normal/3.png')]);
    expect(picked.map((p) => p.path)).toEqual(['set/normal/1.png', 'set/pneumonia/2.png', 'set/normal/3.png']);
    expect(labelCounts(picked)).toEqual([{ label: 'normal', count: 2 }, { label: 'pneumonia', count: 1 }]);
  });
});

describe('matchSlots', () => {
  it('pairs slots and refusals with the requested files in order', async () => {
    const { matchSlots } = await import('./uploadQueue');
    const requested = [
      { key: '0', name: 'set/normal/a.png' },
      { key: '1', name: 'set/normal/notes.txt' },
      { key: '2', name: 'set/pneumonia/a.png' },
    ];
    const slots = [{ filename: 'a.png', image_id: 1 }, { filename: 'a.png', image_id: 2 }];
    const refused = [{ filename: 'notes.txt', code: 'unsupported_type', reason: 'Only images can be added.' }];
    const m = matchSlots(requested, slots, refused);
    expect(m.slots.get('0')?.image_id).toBe(1);
    expect(m.slots.get('2')?.image_id).toBe(2);
    expect(m.refused.get('1')).toBe('Only images can be added.');
  });
});
