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

/** What the two models were compared on: AUC (classifiers) or the mean Dice per image (outlining models). */
export function comparedOn(c: ParentComparison): 'auc' | 'dice' {
  if (c.metric) return c.metric;
  // Comparisons stored before `metric` was: an outlining model's carry Dice and no AUC.
  return c.child?.dice != null && c.child?.auc == null ? 'dice' : 'auc';
}

const METRIC_NAME = { auc: 'AUC', dice: 'mean Dice' } as const;

/** The difference in words, with its range, e.g. "0.30 lower (likely between 0.20 and 0.40 lower)". */
export function differenceInWords(c: ParentComparison): string | null {
  const [difference, range] = comparedOn(c) === 'dice' ? [c.dice_difference, c.dice_difference_ci] : [c.auc_difference, c.auc_difference_ci];
  if (difference == null) return null;
  const side = (v: number) => (Math.abs(v) < 0.005 ? 'the same' : `${Math.abs(v).toFixed(2)} ${v > 0 ? 'higher' : 'lower'}`);
  const head = side(difference);
  return range ? `${head} (likely between ${side(range[0])} and ${side(range[1])})` : head;
}

/** How many check images there were, per label, in words. */
export function checkSetInWords(c: ParentComparison): string {
  const per = Object.entries(c.images_per_label ?? {}).map(([label, n]) => `${n} ${label}`);
  const n = c.check_images ?? 0;
  return `${n} check image${n === 1 ? '' : 's'}${per.length ? ` (${per.join(', ')})` : ''}`;
}

type Row = [string, keyof ComparedModel, keyof ComparedModel, Fmt];
const ROWS: Record<'auc' | 'dice', Row[]> = {
  auc: [
    ['How well it separates cases (AUC)', 'auc', 'auc_ci', auc],
    ['Cases found (sensitivity)', 'sensitivity', 'sensitivity_ci', share],
    ['Healthy correctly cleared (specificity)', 'specificity', 'specificity_ci', share],
    ['Right answers (accuracy)', 'accuracy', 'accuracy_ci', share],
  ],
  // Two decimals, like every Dice on the dashboard.
  dice: [['Overlap with the expert’s outline (mean Dice; 1 is perfect)', 'dice', 'dice_ci', auc]],
};

/** A fine-tuned model beside the model it started from, measured on the same check images. */
export function ParentComparisonView({ comparison }: { comparison: ParentComparison }) {
  const c = comparison;
  const child = c.child ?? {};
  const parent = c.parent ?? {};
  const metric = comparedOn(c);
  const rows = ROWS[metric].filter(([, key]) => child[key] != null || parent[key] != null);
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
          {difference && (
            <p className="small" data-testid="parent-difference">
              This model’s {METRIC_NAME[metric]} compared image for image with the model it started from: {difference}.
            </p>
          )}
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
  const metric = c ? comparedOn(c) : 'auc';
  const [mine, theirs] = [c?.child?.[metric], c?.parent?.[metric]];
  const scored = metric === 'dice' ? 'a mean Dice of' : 'AUC';
  const why = c
    ? [c.verdict_text, c.reason, mine != null && theirs != null
        ? `On ${c.check_images} check images it scored ${scored} ${auc(mine)}; the model it started from scored ${auc(theirs)}.`
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
