import { useState } from 'react';
import { api } from '../api/client';
import type { Dataset } from '../api/types';
import { ErrorNotice } from './ui';

/**
 * "Which finding should the model look for?" for two labels: the answer decides what
 * "found" (sensitivity) and "cleared" (specificity) mean for every model trained on the dataset.
 */
export function FindingRadios({ labels, value, onChange, name }: {
  labels: string[];
  value: string;
  onChange: (finding: string) => void;
  name: string;
}) {
  return (
    <fieldset className="field" data-testid="finding-choice">
      <legend>Which finding should the model look for?</legend>
      {labels.map((label) => (
        <label key={label} className="check">
          <input type="radio" name={name} value={label} checked={value === label} onChange={() => onChange(label)} />
          <span className="long-name">“{label}”</span>
        </label>
      ))}
      {value && (
        <p className="small muted">
          “Found” will count the images of “{value}” that the model recognises; “cleared” the images of
          “{labels.find((l) => l !== value)}” it leaves alone.
        </p>
      )}
    </fieldset>
  );
}

/** The dataset page's panel: shows the finding and lets the user change it (audited by the hub). */
export function FindingPanel({ dataset, onChanged }: { dataset: Dataset; onChanged: () => void }) {
  const [choice, setChoice] = useState(dataset.positive_class);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const labels = dataset.label_names ?? [];
  if (labels.length < 2) return null;
  if (labels.length > 2) {
    return (
      <section className="card" aria-labelledby="finding-title">
        <h2 id="finding-title">What the model looks for</h2>
        <p className="small muted">With {labels.length} labels, the model tells them all apart: each label is checked against all the others.</p>
      </section>
    );
  }
  const save = async () => {
    setBusy(true);
    setError(null);
    try {
      await api.patch(`/datasets/${dataset.id}/`, { positive_class: choice });
      onChanged();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <section className="card" aria-labelledby="finding-title">
      <h2 id="finding-title">What the model looks for</h2>
      <ErrorNotice error={error} />
      <FindingRadios labels={labels} value={choice} onChange={setChoice} name={`finding-${dataset.id}`} />
      <p className="small muted">Models already trained keep the finding they were trained to look for.</p>
      {choice !== dataset.positive_class && (
        <div className="actions">
          <button type="button" className="btn btn-primary" disabled={busy || !choice} onClick={save}>
            {busy ? 'Saving…' : 'Save the finding'}
          </button>
        </div>
      )}
    </section>
  );
}
