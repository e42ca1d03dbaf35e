import { useId } from 'react';
import { percent } from '../lib/format';

/** Probabilities by label, whichever shape the agent used ({label: p} or [p, …] in label order), largest first. */
export function probabilityRows(probabilities: Record<string, number> | number[] | undefined | null, labels: string[]): [string, number][] {
  if (!probabilities) return [];
  const rows: [string, number][] = Array.isArray(probabilities)
    ? probabilities.map((p, i) => [labels[i] ?? `Label ${i + 1}`, p])
    : Object.entries(probabilities);
  return rows.filter(([, p]) => typeof p === 'number' && Number.isFinite(p)).sort((a, b) => b[1] - a[1]);
}

/** One bar per label, as a meter with its value in words, the likeliest first and marked. */
export function ProbabilityBars({ probabilities, labels }: { probabilities: Record<string, number> | number[] | undefined | null; labels: string[] }) {
  const rows = probabilityRows(probabilities, labels);
  const base = useId();
  if (!rows.length) return <p className="small muted">No answer for this image.</p>;
  return (
    <ul className="prob-bars">
      {rows.map(([label, p], i) => {
        const pct = Math.round(Math.max(0, Math.min(1, p)) * 100);
        return (
          <li key={label} className={i === 0 ? 'prob-top' : undefined}>
            <span className="prob-label" id={`${base}-${cssId(label)}`}>{label}</span>
            <span className="prob-track" role="meter" aria-labelledby={`${base}-${cssId(label)}`} aria-valuemin={0} aria-valuemax={100}
              aria-valuenow={pct} aria-valuetext={`${percent(p)} likely`}>
              <span className="prob-fill" style={{ width: `${pct}%` }} />
            </span>
            <span className="prob-value">{percent(p)}</span>
          </li>
        );
      })}
    </ul>
  );
}

const cssId = (text: string) => text.replace(/[^a-zA-Z0-9_-]/g, '_');
