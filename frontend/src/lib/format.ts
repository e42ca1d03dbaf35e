/** Formatting helpers that turn numbers into words a clinician reads at a glance. */

/** "About 3 minutes left", "Less than a minute left", "About 1 hour 20 minutes left". */
export function timeLeftInWords(seconds: number | null | undefined): string {
  if (seconds == null || !Number.isFinite(seconds) || seconds < 0) return 'Working out how long this will take…';
  if (seconds < 45) return 'Less than a minute left';
  const minutes = Math.round(seconds / 60);
  if (minutes < 60) return `About ${minutes} ${minutes === 1 ? 'minute' : 'minutes'} left`;
  const hours = Math.floor(minutes / 60);
  const rest = minutes % 60;
  const h = `${hours} ${hours === 1 ? 'hour' : 'hours'}`;
  if (rest === 0 || hours >= 10) return `About ${h} left`;
  return `About ${h} ${rest} ${rest === 1 ? 'minute' : 'minutes'} left`;
}

/** Fraction of the work done, clamped to 0..1; derived from epochs/steps when the hub gives no fraction. */
export function progressFraction(p: {
  fraction?: number | null;
  epoch?: number | null;
  epochs?: number | null;
  step?: number | null;
  steps?: number | null;
} | null | undefined): number {
  if (!p) return 0;
  let value: number | null = null;
  if (typeof p.fraction === 'number' && Number.isFinite(p.fraction)) value = p.fraction;
  else if (p.epochs && p.epoch != null) {
    const within = p.steps && p.step != null ? p.step / p.steps : 0;
    // Epochs are reported 1-based while running: epoch 1 of 5 at step 0 is 0% done.
    value = (Math.max(0, p.epoch - 1) + within) / p.epochs;
  }
  if (value == null || Number.isNaN(value)) return 0;
  return Math.min(1, Math.max(0, value));
}

export function percent(value: number | null | undefined, digits = 0): string {
  if (value == null || !Number.isFinite(value)) return '—';
  return `${(value * 100).toFixed(digits)}%`;
}

export function bytes(size: number): string {
  if (size < 1024) return `${size} B`;
  if (size < 1024 * 1024) return `${(size / 1024).toFixed(0)} KB`;
  if (size < 1024 * 1024 * 1024) return `${(size / 1024 / 1024).toFixed(1)} MB`;
  return `${(size / 1024 / 1024 / 1024).toFixed(2)} GB`;
}

export function dateTime(iso: string | null | undefined): string {
  if (!iso) return '—';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}

/** "just now", "5 minutes ago", "3 days ago". */
export function ago(iso: string | null | undefined, now: Date = new Date()): string {
  if (!iso) return 'never';
  const seconds = (now.getTime() - new Date(iso).getTime()) / 1000;
  if (!Number.isFinite(seconds)) return 'never';
  if (seconds < 60) return 'just now';
  const units: [number, string][] = [
    [60 * 60 * 24, 'day'],
    [60 * 60, 'hour'],
    [60, 'minute'],
  ];
  for (const [size, name] of units) {
    if (seconds >= size) {
      const n = Math.floor(seconds / size);
      return `${n} ${name}${n === 1 ? '' : 's'} ago`;
    }
  }
  return 'just now';
}

export function plural(n: number, one: string, many = `${one}s`): string {
  return `${n.toLocaleString()} ${n === 1 ? one : many}`;
}

/** Why a file was turned away, naming it once: the site's reasons already begin with the file's name. */
export function rejectionInWords(filename: string, reason: string | null | undefined): string {
  const why = (reason || '').trim() || 'No reason was given.';
  // A zip's reasons begin "benign/x_mask.png is a mask, but …": the name followed by a space or a colon.
  if (!filename || why.startsWith(`${filename}:`) || why.startsWith(`${filename} `)) return why;
  return `${filename}: ${why}`;
}

/** Work the site's computer had to start again (its worker stopped: out of memory, a restart),
 * in plain words; null for a first attempt or finished work. */
export function retryInWords(attempt: number | null | undefined, status: string): string | null {
  if (!attempt || attempt < 2 || (status !== 'queued' && status !== 'running')) return null;
  return `Your site’s computer stopped while working on this and picked it up again (attempt ${attempt}). If it keeps stopping, it ends with a reason for your site IT.`;
}
