import type { ComparedModel, ParentComparison, ParentVerdict } from '../api/types';
import { percent } from '../lib/format';

/** Verdicts that make publishing ask for a confirmation (the hub answers 409 comparison_warning without one). */
const NEEDS_CONFIRMATION: ParentVerdict[] = ['worse', 'too_few', 'not_compared'];

const TONE: Record<ParentVerdict, string> = {
  better: 'notice-success',
  no_clear_difference: 'notice-info',
  worse: 'notice-error',
  too_few: 'notice-warning',
  not_compared: 'notice-warning',
};

export function needsConfirmation(comparison: ParentComparison | null | undefined): boolean {
  return !!comparison && NEEDS_CONFIRMATION.includes(comparison.verdict);
}

type Fmt = (v: number) => string;
const auc: Fmt = (v) => v.toFixed(2);
const share: Fmt = (v) => percent(v);

/** "0.72 (likely between 0.61 and 0.81)": a value with its 95 % range, or a dash. */
export function withRange(value: number | null | undefined, range: number[] | null | undefined, fmt: Fmt): string {
  if (value == null) return '—';
  if (!range || range.length !== 2) return fmt(value);
  return `${fmt(value)} (likely between ${fmt(range[0])} and ${fmt(range[1])})`;
}

/** The AUC difference in words, with its range, e.g. "0.30 lower (likely between 0.20 and 0.40 lower)". */
export function differenceInWords(c: ParentComparison): string | null {
  if (c.auc_difference == null) return null;
  const side = (v: number) => (Math.abs(v) < 0.005 ? 'the same' : `${Math.abs(v).toFixed(2)} ${v > 0 ? 'higher' : 'lower'}`);
  const range = c.auc_difference_ci;
  const head = side(c.auc_difference);
  return range ? `${head} (likely between ${side(range[0])} and ${side(range[1])})` : head;
}

/** How many check images there were, per label, in words. */
export function checkSetInWords(c: ParentComparison): string {
  const per = Object.entries(c.images_per_label ?? {}).map(([label, n]) => `${n} ${label}`);
  const n = c.check_images ?? 0;
  return `${n} check image${n === 1 ? '' : 's'}${per.length ? ` (${per.join(', ')})` : ''}`;
}

const ROWS: [string, keyof ComparedModel, keyof ComparedModel, Fmt][] = [
  ['How well it separates cases (AUC)', 'auc', 'auc_ci', auc],
  ['Cases found (sensitivity)', 'sensitivity', 'sensitivity_ci', share],
  ['Healthy correctly cleared (specificity)', 'specificity', 'specificity_ci', share],
  ['Right answers (accuracy)', 'accuracy', 'accuracy_ci', share],
];

/** A fine-tuned model beside the model it started from, measured on the same check images. */
export function ParentComparisonView({ comparison }: { comparison: ParentComparison }) {
  const c = comparison;
  const child = c.child ?? {};
  const parent = c.parent ?? {};
  const rows = ROWS.filter(([, key]) => child[key] != null || parent[key] != null);
  const difference = differenceInWords(c);
  return (
    <section className="card" aria-labelledby="parent-comparison-title" data-testid="parent-comparison">
      <h2 id="parent-comparison-title">Compared with the model it started from</h2>
      <p className={`notice ${TONE[c.verdict]}`} data-testid="parent-verdict">
        {c.verdict_text}
        {c.reason ? ` ${c.reason}` : ''}
      </p>
      {rows.length > 0 && (
        <>
          <p className="small muted">
            Both models were checked on the same {checkSetInWords(c)}: patients neither saw while learning. Each result shows
            the range it likely lies in (95% confidence); fewer images give wider ranges.
          </p>
          <div className="table-wrap">
          <table className="table">
            <thead>
              <tr>
                <th scope="col">Result</th>
                <th scope="col">This model</th>
                <th scope="col">The model it started from</th>
              </tr>
            </thead>
            <tbody>
              {rows.map(([term, key, rangeKey, fmt]) => (
                <tr key={key}>
                  <th scope="row">{term}</th>
                  <td>{withRange(child[key] as number | null, child[rangeKey] as number[] | null, fmt)}</td>
                  <td>{withRange(parent[key] as number | null, parent[rangeKey] as number[] | null, fmt)}</td>
                </tr>
              ))}
            </tbody>
          </table>
          </div>
          {difference && <p className="small">This model’s AUC compared image for image with the model it started from: {difference}.</p>}
        </>
      )}
    </section>
  );
}

/** In the publish dialog: why this model needs a second look, and the box that confirms it. */
export function PublishComparisonWarning({ comparison, message, confirmed, onConfirm }: {
  comparison: ParentComparison | null | undefined;
  /** The hub's own explanation, when it refused without a confirmation. */
  message?: string | null;
  confirmed: boolean;
  onConfirm: (value: boolean) => void;
}) {
  const c = comparison;
  const why = c
    ? [c.verdict_text, c.reason, c.child?.auc != null && c.parent?.auc != null
        ? `On ${c.check_images} check images it scored AUC ${auc(c.child.auc)}; the model it started from scored ${auc(c.parent.auc)}.`
        : null].filter(Boolean).join(' ')
    : message;
  return (
    <div className="notice notice-warning" role="alert" data-testid="publish-comparison-warning">
      <p><strong>Check this before sharing it.</strong> {why}</p>
      <label className="check">
        <input type="checkbox" checked={confirmed} onChange={(e) => onConfirm(e.target.checked)} />
        I have looked at how it compares and want to publish it anyway
      </label>
    </div>
  );
}
