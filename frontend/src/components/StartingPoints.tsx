import { useEffect, useState, type ReactNode } from 'react';
import { api, type Page } from '../api/client';
import type { ZooEntry } from '../api/types';
import { useApi } from './ui';

export const SOURCE_NAMES: Record<string, string> = {
  imagenet: 'Pre-trained on everyday photographs (ImageNet)',
  random: 'Starts from nothing (for comparison)',
  file: 'Imported by an administrator',
  model_version: 'A model trained at a hospital in the network',
};

/**
 * The model zoo, and the chosen starting point: `initial`, else the recommended entry once the zoo has
 * loaded. With a `task`, only the starting points for that task (labelling whole images, or outlining);
 * a zoo choice of another task falls back to the recommended one of this task.
 */
export function useStartingPoint(initial = '', task?: string) {
  const zoo = useApi((signal) => api.get<Page<ZooEntry> | ZooEntry[]>('/zoo/', { page_size: 100, task }, signal), [task]);
  const all: ZooEntry[] = zoo.data ? (Array.isArray(zoo.data) ? zoo.data : zoo.data.results) : [];
  const entries = task ? entriesFor(all, task) : all;
  const [start, setStart] = useState(initial);
  useEffect(() => {
    const entry = defaultEntry(entries);
    const stale = start.startsWith('zoo:') && zoo.data && !entries.some((e) => `zoo:${e.id}` === start);
    if ((!start || stale) && entry) setStart(`zoo:${entry.id}`);
    else if (stale) setStart('');
  }, [entries.map((e) => e.id).join(','), start, zoo.data]);
  return { zoo, entries, start, setStart };
}

/** The zoo entries for a task (an entry that names none labels whole images, as every entry did before outlining). */
export function entriesFor(entries: ZooEntry[], task: string): ZooEntry[] {
  return entries.filter((e) => (e.task || 'classification') === task);
}

/** The recommended zoo entry, else the first; null while the zoo is empty. */
export function defaultEntry(entries: ZooEntry[]): ZooEntry | null {
  return entries.find((e) => e.recommended) ?? entries[0] ?? null;
}

/**
 * One radio per starting point (zoo entry), licences folded away. `value` is `zoo:<id>`; `before` holds
 * other choices of the same radio group (a shared model, a model trained here).
 */
export function StartingPointChoices({ name, entries, value, onChange, before }: {
  name: string;
  entries: ZooEntry[];
  value: string;
  onChange: (value: string) => void;
  before?: ReactNode;
}) {
  return (
    <div className="choices">
      {before}
      {entries.map((entry) => {
        const key = `zoo:${entry.id}`;
        return (
          <div key={entry.id} className={`choice choice-box ${key === value ? 'choice-on' : ''}`}>
            <label className="choice-main">
              <input type="radio" name={name} value={key} checked={key === value} onChange={() => onChange(key)} />
              <span>
                <strong>{entry.name}</strong> {entry.recommended && <span className="badge badge-ok">recommended</span>}
                {entry.description && <span className="small muted block">{entry.description}</span>}
                <span className="small muted block">{SOURCE_NAMES[entry.source] ?? entry.source}{entry.licence ? '' : ' · no licence terms'}</span>
              </span>
            </label>
            {entry.licence && (
              <details className="licence small">
                <summary>Licence terms</summary>
                <p>{entry.licence}</p>
              </details>
            )}
          </div>
        );
      })}
    </div>
  );
}

/** Split `zoo:12` / `published:3` / `version:7` into its kind and numeric id. */
export function parseChoice(value: string): { kind: string; id: number } | null {
  const m = /^(\w+):(\d+)$/.exec(value);
  return m ? { kind: m[1], id: Number(m[2]) } : null;
}
