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

/** The model zoo, and the chosen starting point: `initial`, else the recommended entry once the zoo has loaded. */
export function useStartingPoint(initial = '') {
  const zoo = useApi((signal) => api.get<Page<ZooEntry> | ZooEntry[]>('/zoo/', { page_size: 100 }, signal), []);
  const entries: ZooEntry[] = zoo.data ? (Array.isArray(zoo.data) ? zoo.data : zoo.data.results) : [];
  const [start, setStart] = useState(initial);
  useEffect(() => {
    const entry = defaultEntry(entries);
    if (!start && entry) setStart(`zoo:${entry.id}`);
  }, [entries, start]);
  return { zoo, entries, start, setStart };
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
