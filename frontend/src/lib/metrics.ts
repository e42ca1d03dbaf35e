import type { Evaluation, RocCurveData, TtaPolicy } from '../api/types';

// Label names that say "nothing to find": never the default finding (the hub's rule in
// platform/pollen/datasets/positive_class.py; the hub decides, this only preselects a choice).
const NEGATIVE_WORDS = new Set([
  'normal', 'benign', 'healthy', 'negative', 'control', 'controls', 'unremarkable', 'absent',
  'none', 'nothing', 'no', 'non', 'not', 'without', 'neg',
]);

export function isNegativeLabel(label: string): boolean {
  return (label.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? []).some((word) => NEGATIVE_WORDS.has(word));
}

/** The finding preselected for two labels: the one whose name does not say "nothing to find". */
export function defaultFinding(labels: string[]): string {
  if (labels.length !== 2) return '';
  const findings = labels.filter((l) => !isNegativeLabel(l));
  return findings.length === 1 ? findings[0] : labels[1];
}

/**
 * The finding an evaluation's sensitivity is about, and the other label. Evaluations made before
 * the finding was recorded measured the second label, so that is what they are said to be about.
 */
export function evaluationFinding(ev: Pick<Evaluation, 'label_names' | 'positive_class'>): { finding: string; other: string } | null {
  const labels = ev.label_names ?? [];
  if (labels.length !== 2) return null;
  const finding = ev.positive_class && labels.includes(ev.positive_class) ? ev.positive_class : labels[1];
  return { finding, other: labels.find((l) => l !== finding) ?? '' };
}

/** Names for sensitivity and specificity that say which label each is about. */
export function findingTerms(finding: string | null | undefined, other?: string | null): { sensitivity: string; specificity: string } {
  if (!finding) return { sensitivity: 'Cases found (sensitivity)', specificity: 'Others correctly cleared (specificity)' };
  return {
    sensitivity: `“${finding}” found (sensitivity)`,
    specificity: `${other ? `“${other}”` : `Not “${finding}”`} correctly cleared (specificity)`,
  };
}

/** ROC curves by label, whichever shape the payload used. */
export function rocCurves(ev: Evaluation): [string, RocCurveData][] {
  const roc = ev.roc;
  if (!roc) return [];
  if (Array.isArray((roc as RocCurveData).fpr)) {
    return [[evaluationFinding(ev)?.finding ?? 'ROC', roc as RocCurveData]];
  }
  return Object.entries(roc as Record<string, RocCurveData>).filter(([, c]) => Array.isArray(c?.fpr) && c.fpr.length > 0);
}

export function calibrationError(ev: Evaluation): number | null {
  return ev.calibration_error ?? ev.ece ?? null;
}

/** Plain-language sentences for an evaluation: what sensitivity and specificity mean in patients. */
export function evaluationSummary(ev: Evaluation): string[] {
  const lines: string[] = [];
  const labels = ev.label_names ?? [];
  const pair = evaluationFinding(ev);
  const positive = pair?.finding ?? null;
  const negative = pair?.other ?? null;
  if (labels.length > 2 && ev.per_class) {
    // Several labels: one sentence per label, each read as "this label against all the others".
    for (const name of labels) {
      const s = ev.per_class[name]?.sensitivity;
      if (s != null) lines.push(`Out of 100 patients with “${name}”, the model recognises ${Math.round(s * 100)}.`);
    }
  }
  if (ev.sensitivity != null) {
    const n = Math.round(ev.sensitivity * 100);
    lines.push(
      `Out of 100 patients ${positive ? `with “${positive}”` : 'with the condition'}, the model finds ${n} (sensitivity).`,
    );
  }
  if (ev.specificity != null) {
    const n = Math.round(ev.specificity * 100);
    lines.push(
      `Out of 100 patients ${negative ? `who are “${negative}”` : 'without the condition'}, the model correctly clears ${n}; it raises a false alarm for ${100 - n} (specificity).`,
    );
  }
  if (ev.auc != null) {
    lines.push(`Given one case of each kind, it ranks the right one higher ${Math.round(ev.auc * 100)} times out of 100 (AUC ${ev.auc.toFixed(2)}).`);
  }
  if (ev.accuracy != null) {
    lines.push(`Overall, ${Math.round(ev.accuracy * 100)} out of 100 check images get the right label (accuracy).`);
  }
  return lines;
}

/** A verbal grade for AUC, as commonly used in diagnostic-test literature. */
export function aucGrade(auc: number | null | undefined): string {
  if (auc == null) return 'not measured';
  if (auc >= 0.9) return 'excellent';
  if (auc >= 0.8) return 'good';
  if (auc >= 0.7) return 'fair';
  if (auc >= 0.6) return 'poor';
  return 'no better than chance';
}

// How the site agent averaged each image's probabilities (TtaPolicy), in plain words: a short name
// for a table cell, a heading, and a sentence. Two numbers averaged differently are never comparable.
const TTA: Record<TtaPolicy, { words: string; heading: string; sentence: string }> = {
  none: {
    words: 'the image alone',
    heading: 'From the image alone, not averaged',
    sentence: 'Each image was looked at once, as it is: its answers were not averaged.',
  },
  hflip: {
    words: 'the image and its mirror image',
    heading: 'Averaged over the image and its mirror image',
    sentence: 'Each image’s answers were averaged over the image and its mirror image.',
  },
  d4: {
    words: '8 turns and flips',
    heading: 'Averaged over 8 turns and flips of the image',
    sentence: 'Each image’s answers were averaged over 8 turns and flips of it.',
  },
};
const TTA_NOT_RECORDED = {
  words: 'not recorded',
  heading: 'Averaging not recorded',
  sentence: 'How each image’s answers were averaged was not recorded.',
};

/** The policy behind a result, or null where none was recorded (older results) or it is not one we know. */
export function ttaPolicy(tta: unknown): TtaPolicy | null {
  return typeof tta === 'string' && Object.hasOwn(TTA, tta) ? (tta as TtaPolicy) : null;
}

/** Plain words for how a result was averaged: `words` ("the image and its mirror image"), a table `heading`, a `sentence`. */
export function ttaInWords(tta: unknown): { words: string; heading: string; sentence: string } {
  const policy = ttaPolicy(tta);
  return policy ? TTA[policy] : TTA_NOT_RECORDED;
}
