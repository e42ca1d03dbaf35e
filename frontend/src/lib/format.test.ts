import { describe, expect, it } from 'vitest';
import { ago, bytes, percent, progressFraction, rejectionInWords, retryInWords, timeLeftInWords } from './format';

describe('timeLeftInWords', () => {
  it.each([
    [null, 'Working out how long this will take…'],
    [-5, 'Working out how long this will take…'],
    [10, 'Less than a minute left'],
    [61, 'About 1 minute left'],
    [170, 'About 3 minutes left'],
    [3600, 'About 1 hour left'],
    [3600 + 20 * 60, 'About 1 hour 20 minutes left'],
    [2 * 3600 + 60, 'About 2 hours 1 minute left'],
    [12 * 3600 + 600, 'About 12 hours left'],
  ])('%s seconds → %s', (seconds, words) => {
    expect(timeLeftInWords(seconds as number | null)).toBe(words);
  });
});

describe('progressFraction', () => {
  it('prefers the hub fraction and clamps it', () => {
    expect(progressFraction({ fraction: 0.42 })).toBe(0.42);
    expect(progressFraction({ fraction: 1.7 })).toBe(1);
    expect(progressFraction({ fraction: -1 })).toBe(0);
  });
  it('derives from epochs and steps when needed', () => {
    expect(progressFraction({ epoch: 1, epochs: 4, step: 0, steps: 10 })).toBe(0);
    expect(progressFraction({ epoch: 2, epochs: 4, step: 5, steps: 10 })).toBeCloseTo(0.375);
    expect(progressFraction(null)).toBe(0);
    expect(progressFraction({})).toBe(0);
  });
});

describe('small formatters', () => {
  it('formats percent, bytes and relative time', () => {
    expect(percent(0.873)).toBe('87%');
    expect(percent(null)).toBe('—');
    expect(bytes(512)).toBe('512 B');
    expect(bytes(3 * 1024 * 1024)).toBe('3.0 MB');
    const now = new Date('2025-01-02T12:00:00Z');
    expect(ago('2025-01-02T11:55:00Z', now)).toBe('5 minutes ago');
    expect(ago('2024-12-30T12:00:00Z', now)).toBe('3 days ago');
    expect(ago(null, now)).toBe('never');
  });
});

describe('rejectionInWords', () => {
  it('names the file once when the reason already begins with it', () => {
    expect(rejectionInWords('scan.png', 'scan.png: The file is empty (0 bytes); upload it again.')).toBe(
      'scan.png: The file is empty (0 bytes); upload it again.',
    );
  });
  it('names the file once when a sentence begins with it, as a zip’s reasons do', () => {
    expect(rejectionInWords('a/x_mask.png', 'a/x_mask.png is a mask, but the archive has no image named \'x\'.')).toBe(
      'a/x_mask.png is a mask, but the archive has no image named \'x\'.',
    );
  });
  it('puts the name before a reason that lacks it', () => {
    expect(rejectionInWords('scan.png', 'The file is empty.')).toBe('scan.png: The file is empty.');
  });
  it('says when no reason was given', () => {
    expect(rejectionInWords('scan.png', '')).toBe('scan.png: No reason was given.');
  });
});

describe('retryInWords', () => {
  it('speaks only of work picked up again that is still under way', () => {
    expect(retryInWords(3, 'running')).toMatch(/picked it up again \(attempt 3\)/);
    expect(retryInWords(2, 'queued')).not.toBeNull();
    expect(retryInWords(1, 'running')).toBeNull();
    expect(retryInWords(3, 'failed')).toBeNull();
    expect(retryInWords(undefined, 'running')).toBeNull();
  });
});
