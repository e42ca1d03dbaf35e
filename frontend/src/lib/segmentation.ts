/** Segmentation (outlining) in plain words: what Dice means, mask sizes, readers, and the result's shapes. */
import type { Evaluation, HistogramBin } from '../api/types';
import { percent } from './format';

export const DICE_IN_WORDS = 'Dice: how much two outlines overlap; 1 is perfect, 0 is no overlap at all.';
export const MODEL_DICE_IN_WORDS = 'Dice: how much the model’s outline overlaps the expert’s; 1 is perfect, 0 is no overlap at all.';

/** Whether a dataset, job, model or result is about outlining (segmentation) rather than labelling whole images. */
export function isSegmentation(thing: { task?: string | null } | null | undefined): boolean {
  return thing?.task === 'segmentation';
}

/** Whether an evaluation holds a segmentation model's numbers (older payloads lack `task` but carry Dice). */
export function isSegmentationResult(ev: Evaluation | null | undefined): boolean {
  return !!ev && (ev.task === 'segmentation' || (ev.task == null && ev.dice !== undefined && ev.auc === undefined));
}

/**
 * The colour each mask class is drawn in on the site's overlays (workers/pollen_agent/ingest/masks.py:
 * CLASS_COLOURS, in order, for values 1, 2, ...).
 */
const CLASS_COLOURS = ['yellow', 'light blue', 'pink', 'green', 'purple', 'orange'];
export const classColour = (index: number) => CLASS_COLOURS[index % CLASS_COLOURS.length];

/** "lesion (yellow), vessel (light blue)". */
export function maskClassesInWords(classes: string[]): string {
  return classes.map((name, i) => `${name} (${classColour(i)})`).join(', ');
}

/** A reader's name for people: masks whose file names name nobody belong to "the unnamed reader". */
export const readerName = (reader: string) => reader || 'unnamed reader';

/** A histogram's bins, whichever shape was sent: a list of {from, to, count} or {edges, counts}. */
export function histogramBins(h: Evaluation['dice_histogram'] | HistogramBin[] | null | undefined): HistogramBin[] {
  if (!h) return [];
  if (Array.isArray(h)) return h.filter((b) => Number.isFinite(b.from) && Number.isFinite(b.to));
  const { edges = [], counts = [] } = h;
  return counts.slice(0, Math.max(0, edges.length - 1)).map((count, i) => ({ from: edges[i], to: edges[i + 1], count }));
}

const share = (fraction: number) => {
  const pct = fraction * 100;
  return pct < 10 && !Number.isInteger(pct) ? pct.toFixed(1).replace(/\.0$/, '') : pct.toFixed(0);
};

/** A bin of the share of the image a mask covers: "under 1 %", "1–2 %", "50–100 %". */
export function sizeBinLabel(bin: Pick<HistogramBin, 'from' | 'to'>): string {
  if (bin.from <= 0) return `under ${share(bin.to)} %`;
  return `${share(bin.from)}–${share(Math.min(1, bin.to))} %`;
}

/** A bin of Dice: "0.0–0.1". */
export const diceBinLabel = (bin: Pick<HistogramBin, 'from' | 'to'>) => `${bin.from.toFixed(1)}–${bin.to.toFixed(1)}`;

/** A Dice with two decimals, or a dash. */
export const dice = (value: number | null | undefined) => (value == null || !Number.isFinite(value) ? '—' : value.toFixed(2));

/** "95 % range 0.76 to 0.83", or null without a range. */
export function rangeInWords(ci: [number, number] | null | undefined): string | null {
  if (!ci || ci.length !== 2 || !ci.every(Number.isFinite)) return null;
  return `95 % range ${dice(ci[0])} to ${dice(ci[1])}`;
}

/** Plain sentences for a segmentation result: overlap, lesions found and missed, normal images left empty. */
export function segmentationSummary(ev: Evaluation): string[] {
  const lines: string[] = [];
  if (ev.dice != null) {
    const range = rangeInWords(ev.dice_ci);
    lines.push(`On average, the model’s outline overlaps the expert’s with a Dice of ${dice(ev.dice)}${range ? ` (${range})` : ''}.`);
  }
  if (ev.lesion_dice != null && ev.lesion_images) {
    lines.push(`On the ${ev.lesion_images} images with something to outline, the Dice is ${dice(ev.lesion_dice)}.`);
  }
  const d = ev.detection;
  if (d && d.found + d.missed > 0) {
    const falses = d.false ? ` It also drew ${d.false === 1 ? '1 area that is not a lesion' : `${d.false} areas that are not lesions`}.` : ' It drew no area that is not a lesion.';
    lines.push(`Out of ${d.found + d.missed} lesions, the model found ${d.found} and missed ${d.missed}.${falses}`);
  }
  if (ev.empty_images && ev.empty_correct_fraction != null) {
    const n = Math.round(ev.empty_correct_fraction * ev.empty_images);
    lines.push(`Out of ${ev.empty_images} normal images (nothing to outline), the model correctly drew nothing on ${n} (${percent(ev.empty_correct_fraction)}).`);
  }
  return lines;
}

/** A share of an image in words: "4.2 %", "12 %", "less than 0.1 %", "0 %". */
export function areaShare(fraction: number): string {
  const pct = fraction * 100;
  if (pct > 0 && pct < 0.1) return 'less than 0.1 %';
  return `${pct.toFixed(1).replace(/\.0$/, '')} %`;
}

/** An outlining model's classes, background left out (its first output is the background). */
export function outlinedClasses(labelNames: string[]): string[] {
  return labelNames.filter((l, i) => !(i === 0 && l === 'background'));
}

/**
 * What the model outlined on one image, in a sentence: "The outlined lesion covers 4.2 % of the
 * image; 1 region." Several classes are listed with their shares; nothing drawn says so.
 */
export function areaInWords(answer: { area_fraction: Record<string, number>; regions: number }, classes: string[] = []): string {
  const names = [...classes.filter((c) => c in answer.area_fraction), ...Object.keys(answer.area_fraction).filter((c) => !classes.includes(c))];
  const drawn = names.filter((c) => (answer.area_fraction[c] ?? 0) > 0);
  if (drawn.length === 0 || answer.regions === 0) return 'The model outlined nothing on this image.';
  const regions = `${answer.regions} ${answer.regions === 1 ? 'region' : 'regions'}`;
  if (drawn.length === 1) return `The outlined ${drawn[0]} covers ${areaShare(answer.area_fraction[drawn[0]])} of the image; ${regions}.`;
  const shares = drawn.map((c) => `${c} ${areaShare(answer.area_fraction[c])}`).join(', ');
  return `The outlined areas cover ${shares} of the image; ${regions}.`;
}

/** How undecided the model was over one image (mean normalised entropy, 0..1), in a sentence. */
export function uncertaintyInWords(meanUncertainty: number | null | undefined): string | null {
  if (meanUncertainty == null || !Number.isFinite(meanUncertainty)) return null;
  return `How unsure the model was: ${areaShare(meanUncertainty)} on average over the image (0 % is sure everywhere, 100 % undecided everywhere). The uncertainty map shows where.`;
}

/** "0 background, 1 lesion": what each number in a mask PNG means. */
export function classNumbersInWords(labelNames: string[]): string {
  const names = labelNames[0] === 'background' ? labelNames : ['background', ...labelNames];
  return names.map((name, i) => `${i} ${name}`).join(', ');
}
