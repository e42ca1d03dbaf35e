/** Small hand-written SVG charts: nothing to download at run time, readable by screen readers. */
import { percent } from '../lib/format';

const W = 320;
const H = 240;
const PAD = { left: 44, right: 20, top: 12, bottom: 40 };
const plotW = W - PAD.left - PAD.right;
const plotH = H - PAD.top - PAD.bottom;

function x(v: number, min = 0, max = 1) {
  return PAD.left + ((v - min) / (max - min || 1)) * plotW;
}
function y(v: number, min = 0, max = 1) {
  return PAD.top + plotH - ((v - min) / (max - min || 1)) * plotH;
}

/** Points of the ROC curve, sorted and anchored at (0,0) and (1,1). */
export function rocPoints(fpr: number[], tpr: number[]): [number, number][] {
  const n = Math.min(fpr.length, tpr.length);
  const pts: [number, number][] = [];
  for (let i = 0; i < n; i++) {
    if (Number.isFinite(fpr[i]) && Number.isFinite(tpr[i])) pts.push([fpr[i], tpr[i]]);
  }
  pts.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  if (pts.length === 0 || pts[0][0] !== 0 || pts[0][1] !== 0) pts.unshift([0, 0]);
  const last = pts[pts.length - 1];
  if (last[0] !== 1 || last[1] !== 1) pts.push([1, 1]);
  return pts;
}

function Axes({ xLabel, yLabel, yTicks, yFmt }: { xLabel: string; yLabel: string; yTicks: number[]; yFmt: (v: number) => string }) {
  return (
    <g className="axes" aria-hidden="true">
      <line x1={PAD.left} y1={PAD.top + plotH} x2={PAD.left + plotW} y2={PAD.top + plotH} />
      <line x1={PAD.left} y1={PAD.top} x2={PAD.left} y2={PAD.top + plotH} />
      {yTicks.map((t, i) => {
        const yy = PAD.top + plotH - (i / (yTicks.length - 1)) * plotH;
        return (
          <g key={i}>
            <line className="grid" x1={PAD.left} y1={yy} x2={PAD.left + plotW} y2={yy} />
            <text x={PAD.left - 6} y={yy + 4} textAnchor="end">
              {yFmt(t)}
            </text>
          </g>
        );
      })}
      <text x={PAD.left + plotW / 2} y={H - 6} textAnchor="middle" className="axis-label">
        {xLabel}
      </text>
      <text transform={`translate(12 ${PAD.top + plotH / 2}) rotate(-90)`} textAnchor="middle" className="axis-label">
        {yLabel}
      </text>
    </g>
  );
}

export function RocCurve({ curves, auc }: { curves: [string, { fpr: number[]; tpr: number[] }][]; auc: number | null }) {
  const paths = curves.map(([name, c]) => [
    name,
    rocPoints(c.fpr, c.tpr).map(([fx, ty], i) => `${i ? 'L' : 'M'}${x(fx).toFixed(1)},${y(ty).toFixed(1)}`).join(' '),
  ]);
  const ticks = [0, 0.25, 0.5, 0.75, 1];
  return (
    <figure className="chart">
      <svg viewBox={`0 0 ${W} ${H}`} role="img" aria-labelledby="roc-title roc-desc" data-testid="roc-curve">
        <title id="roc-title">ROC curve</title>
        <desc id="roc-desc">
          How many patients with the condition are found (up) against how many without it get a false alarm (right).
          {auc != null ? ` Area under the curve ${auc.toFixed(2)}.` : ''}
        </desc>
        <Axes xLabel="False alarms (1 − specificity)" yLabel="Cases found (sensitivity)" yTicks={ticks} yFmt={(v) => percent(v)} />
        {ticks.slice(1).map((t) => (
          <text key={t} className="tick" x={x(t)} y={PAD.top + plotH + 14} textAnchor="middle" aria-hidden="true">
            {percent(t)}
          </text>
        ))}
        <line className="chance" x1={x(0)} y1={y(0)} x2={x(1)} y2={y(1)} />
        {paths.map(([name, d], i) => (
          <g key={name} className={`series series-${(i % 3) + 1}`}>
            <path d={d} data-testid="roc-path" />
          </g>
        ))}
      </svg>
      {paths.length > 1 && (
        <p className="legend small">
          {paths.map(([name], i) => (
            <span key={name} className={`legend-item series-${(i % 3) + 1}`}>
              {name}
            </span>
          ))}
        </p>
      )}
      <figcaption>
        The dashed line is a coin toss. The closer the curve hugs the top-left corner, the better.
      </figcaption>
    </figure>
  );
}

export interface Series {
  name: string;
  values: (number | null)[];
  className: string;
}

/** Training curves across rounds of learning (epochs), each series scaled to 0..max. */
export function LineChart({ title, series, xLabel, yLabel, yMax, yFmt }: {
  title: string;
  series: Series[];
  xLabel: string;
  yLabel: string;
  yMax?: number;
  yFmt?: (v: number) => string;
}) {
  const n = Math.max(0, ...series.map((s) => s.values.length));
  const finite = series.flatMap((s) => s.values.filter((v): v is number => v != null && Number.isFinite(v)));
  const top = yMax ?? (finite.length ? Math.max(...finite) * 1.1 || 1 : 1);
  const fmt = yFmt ?? ((v: number) => v.toFixed(2));
  const ticks = [0, top / 2, top];
  const xAt = (i: number) => x(n <= 1 ? 0.5 : i / (n - 1));
  const titleId = `chart-${title.replace(/\W+/g, '-').toLowerCase()}`;
  return (
    <figure className="chart">
      <svg viewBox={`0 0 ${W} ${H}`} role="img" aria-labelledby={titleId}>
        <title id={titleId}>{title}</title>
        <Axes xLabel={xLabel} yLabel={yLabel} yTicks={ticks} yFmt={fmt} />
        {n > 0 &&
          [0, n - 1].filter((v, i, a) => a.indexOf(v) === i).map((i) => (
            <text key={i} className="tick" x={xAt(i)} y={PAD.top + plotH + 14} textAnchor="middle" aria-hidden="true">
              {i + 1}
            </text>
          ))}
        {series.map((s) => {
          const pts = s.values
            .map((v, i) => (v == null || !Number.isFinite(v) ? null : ([xAt(i), y(Math.min(v, top), 0, top)] as const)))
            .filter((p): p is readonly [number, number] => p != null);
          if (!pts.length) return null;
          const d = pts.map(([px, py], i) => `${i ? 'L' : 'M'}${px.toFixed(1)},${py.toFixed(1)}`).join(' ');
          return (
            <g key={s.name} className={`series ${s.className}`}>
              <path d={d} />
              {pts.map(([px, py], i) => (
                <circle key={i} cx={px} cy={py} r={2.5} />
              ))}
            </g>
          );
        })}
      </svg>
      {series.length > 1 && (
        <figcaption className="legend">
          {series.map((s) => (
            <span key={s.name} className={`legend-item ${s.className}`}>
              {s.name}
            </span>
          ))}
        </figcaption>
      )}
    </figure>
  );
}

/** Confusion matrix as a table: rows are the truth, columns the model's answer. */
export function ConfusionMatrix({ matrix, labels }: { matrix: number[][]; labels: string[] }) {
  const max = Math.max(1, ...matrix.flat());
  const names = labels.length === matrix.length ? labels : matrix.map((_, i) => `Class ${i + 1}`);
  return (
    <table className="confusion" data-testid="confusion-matrix">
      <caption>What the model said, for each true label (check images)</caption>
      <thead>
        <tr>
          <td />
          <th scope="col" colSpan={names.length} className="confusion-axis">
            Model said
          </th>
        </tr>
        <tr>
          <th scope="col">Truly</th>
          {names.map((name) => (
            <th scope="col" key={name}>
              {name}
            </th>
          ))}
        </tr>
      </thead>
      <tbody>
        {matrix.map((row, i) => {
          const rowTotal = row.reduce((a, b) => a + b, 0);
          return (
            <tr key={i}>
              <th scope="row">{names[i]}</th>
              {row.map((value, j) => {
                const strength = value / max;
                return (
                  <td
                    key={j}
                    className={i === j ? 'hit' : 'miss'}
                    style={{ ['--strength' as string]: strength.toFixed(3) }}
                    title={`${value} images truly ${names[i]}, model said ${names[j]}`}
                  >
                    <span className="count">{value}</span>
                    <span className="share">{rowTotal ? percent(value / rowTotal) : '—'}</span>
                  </td>
                );
              })}
            </tr>
          );
        })}
      </tbody>
    </table>
  );
}

/**
 * A histogram as a table of bars: one row per bin with its name, a bar as long as its share of the
 * largest bin, and its count. A table reads well to a screen reader and never overflows a tablet.
 */
export function BarChart({ title, bins, unit, caption, testId }: {
  title: string;
  bins: { name: string; count: number }[];
  /** What is counted, e.g. "images": read out with each count. */
  unit: string;
  caption?: string;
  testId?: string;
}) {
  const max = Math.max(1, ...bins.map((b) => b.count));
  return (
    <figure className="chart bar-chart">
      <table className="bars" data-testid={testId}>
        <caption>{title}</caption>
        <thead className="visually-hidden">
          <tr>
            <th scope="col">Range</th>
            <th scope="col">Bar</th>
            <th scope="col">Number of {unit}</th>
          </tr>
        </thead>
        <tbody>
          {bins.map((b) => (
            <tr key={b.name}>
              <th scope="row" className="small">{b.name}</th>
              <td className="bar-cell" aria-hidden="true">
                <span className="bar" style={{ width: `${(b.count / max) * 100}%`, minWidth: b.count ? 2 : 0 }} />
              </td>
              <td className="num small">{b.count}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {caption && <figcaption className="small muted">{caption}</figcaption>}
    </figure>
  );
}
