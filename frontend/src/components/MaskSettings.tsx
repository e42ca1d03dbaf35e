/** A segmentation dataset's mask settings: what the masks mark, whether every image needs one, whose masks models learn from. */
import { useId, useState, type FormEvent } from 'react';
import { api, ApiError } from '../api/client';
import type { Dataset } from '../api/types';
import { classColour, readerName } from '../lib/segmentation';
import { maskClassProblem, splitNames } from '../lib/maskClasses';
import { ErrorNotice, useAction } from './ui';

export function MaskSettings({ dataset, readers, onChanged }: { dataset: Dataset; readers: string[]; onChanged: () => void }) {
  const id = useId();
  const [added, setAdded] = useState('');
  const [required, setRequired] = useState(dataset.masks_required);
  const [reference, setReference] = useState(dataset.reference_reader);
  const [problem, setProblem] = useState('');
  const [saved, setSaved] = useState(false);
  const { busy, error, run } = useAction();
  const newClasses = splitNames(added);
  const choices = [...new Set(['', ...readers, dataset.reference_reader])];

  const save = (event: FormEvent) => {
    event.preventDefault();
    setSaved(false);
    const classes = [...dataset.mask_classes, ...newClasses];
    const wrong = newClasses.length ? maskClassProblem(classes) : '';
    setProblem(wrong);
    if (wrong) return;
    void run(async () => {
      await api.patch<Dataset>(`/datasets/${dataset.id}/`, {
        ...(newClasses.length ? { mask_classes: classes } : {}),
        masks_required: required,
        reference_reader: reference,
      });
      setAdded('');
      setSaved(true);
      onChanged();
    });
  };
  const classError = problem || (error instanceof ApiError && error.code.startsWith('mask_classes') ? error.message : '');

  return (
    <details className="card" data-testid="mask-settings">
      <summary>Mask settings</summary>
      <form onSubmit={save}>
        <p className="small">
          What the masks mark:{' '}
          {dataset.mask_classes.map((name, i) => (
            <span key={name} className="chip">{i + 1} = {name} ({classColour(i)})</span>
          ))}
          . Value 0 is the background. Once masks are in, these names stay; you can add kinds at the end.
        </p>
        <div className="field">
          <label htmlFor={`${id}-add`}>Add kinds of marks (separate with commas)</label>
          <input id={`${id}-add`} value={added} onChange={(e) => setAdded(e.target.value)} placeholder="e.g. calcification"
            aria-invalid={classError ? true : undefined} aria-describedby={classError ? `${id}-add-error` : undefined} />
          {classError && <p className="field-error" id={`${id}-add-error`}>{classError}</p>}
        </div>
        <label className="check">
          <input type="checkbox" checked={required} onChange={(e) => setRequired(e.target.checked)} />
          Every image must come with a mask (an image sent without one is turned away)
        </label>
        {choices.length > 1 && (
          <div className="field">
            <label htmlFor={`${id}-reference`}>Whose masks models learn from and are checked against</label>
            <select id={`${id}-reference`} value={reference} onChange={(e) => setReference(e.target.value)}>
              {choices.map((r) => (
                <option key={r} value={r}>{r ? readerName(r) : 'The unnamed reader’s, else each image’s first reader'}</option>
              ))}
            </select>
            <p className="small muted">The other readers’ masks are compared with these, so you can see how much experts agree.</p>
          </div>
        )}
        <ErrorNotice error={classError ? null : error} />
        <div className="actions">
          <button type="submit" className="btn" disabled={busy}>{busy ? 'Saving…' : 'Save mask settings'}</button>
          {saved && <span className="small ok-text" role="status">Saved</span>}
        </div>
      </form>
    </details>
  );
}
