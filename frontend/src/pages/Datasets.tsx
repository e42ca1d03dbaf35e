import { useState, type FormEvent } from 'react';
import { api, ApiError, type Page } from '../api/client';
import type { Dataset, Membership, Task } from '../api/types';
import { Link, navigate, useDocumentTitle } from '../router';
import { ErrorNotice, Loading, Pager, pointToField, useApi } from '../components/ui';
import { ago, plural } from '../lib/format';
import { defaultFinding } from '../lib/metrics';
import { FindingRadios } from '../components/FindingChoice';
import { maskClassProblem, splitNames } from '../lib/maskClasses';
import { isSegmentation } from '../lib/segmentation';

export const MODALITIES: [string, string][] = [
  ['', 'Not specified'],
  ['xray', 'X-ray'],
  ['ct', 'CT'],
  ['mri', 'MRI'],
  ['ultrasound', 'Ultrasound'],
  ['pathology', 'Pathology slides'],
  ['dermatology', 'Skin photographs'],
  ['fundus', 'Retinal photographs'],
  ['other', 'Other'],
];
export const modalityName = (code: string) => MODALITIES.find(([c]) => c === code)?.[1] ?? code;

const PAGE_SIZE = 20;
/** The hub's refusals of a dataset's mask classes (platform/pollen/datasets/masks.py), shown under that field. */
const MASK_CLASS_CODES = new Set(['mask_classes_required', 'invalid_mask_class', 'mask_classes_in_use']);

export function DatasetsPage({ site }: { site: Membership }) {
  useDocumentTitle(`Datasets · ${site.site.name}`);
  const [page, setPage] = useState(1);
  const [creating, setCreating] = useState(false);
  const { data, error, loading, reload } = useApi(
    (signal) => api.get<Page<Dataset>>('/datasets/', { site: site.site.slug, page, page_size: PAGE_SIZE }, signal),
    [site.site.slug, page],
  );

  return (
    <section>
      <div className="page-head">
        <div>
          <h1>Datasets</h1>
          <p className="muted">
            Labelled images at <strong>{site.site.name}</strong>. The images stay in your hospital’s storage; Pollen only
            keeps their names, labels and counts.
          </p>
        </div>
        <button type="button" className="btn btn-primary" onClick={() => setCreating((v) => !v)} aria-expanded={creating}>
          New dataset
        </button>
      </div>
      {creating && <CreateDataset site={site} onCancel={() => setCreating(false)} />}
      {loading && !data && <Loading what="Loading datasets" />}
      <ErrorNotice error={error} onRetry={reload} />
      {data && data.results.length === 0 && (
        <div className="empty">
          <h2>No datasets yet</h2>
          <p>Create a dataset, then drop a folder of images onto it. Sub-folder names become the labels.</p>
        </div>
      )}
      {data && data.results.length > 0 && (
        <>
          <ul className="cards" data-testid="dataset-list">
            {data.results.map((d) => (
              <li key={d.id} className="card dataset-card">
                <h2>
                  <Link to={`/sites/${site.site.slug}/datasets/${d.id}`}>{d.name}</Link>
                </h2>
                {d.description && <p className="muted clamp">{d.description}</p>}
                <dl className="facts">
                  <div>
                    <dt>Images</dt>
                    <dd>{(d.accepted_count ?? 0).toLocaleString()} ready</dd>
                  </div>
                  {isSegmentation(d) ? (
                    <div>
                      <dt>Masks mark</dt>
                      <dd>{d.mask_classes?.join(', ') || '—'}</dd>
                    </div>
                  ) : (
                    <div>
                      <dt>Labels</dt>
                      <dd>{d.label_names?.length ? d.label_names.join(', ') : 'none yet'}</dd>
                    </div>
                  )}
                  {d.modality && (
                    <div>
                      <dt>Kind</dt>
                      <dd>{modalityName(d.modality)}</dd>
                    </div>
                  )}
                </dl>
                <p className="small muted">
                  {d.pending_count ? `${plural(d.pending_count, 'image')} being checked · ` : ''}
                  {d.rejected_count ? `${plural(d.rejected_count, 'file')} turned away · ` : ''}
                  created {ago(d.created_at)}
                </p>
              </li>
            ))}
          </ul>
          <Pager page={page} count={data.count} pageSize={PAGE_SIZE} onPage={setPage} />
        </>
      )}
    </section>
  );
}

export function CreateDataset({ site, onCancel }: { site: Membership; onCancel: () => void }) {
  const [name, setName] = useState('');
  const [description, setDescription] = useState('');
  const [modality, setModality] = useState('');
  const [labelText, setLabelText] = useState('');
  const [finding, setFinding] = useState<string | null>(null);
  const [task, setTask] = useState<Task>('classification');
  const [classText, setClassText] = useState('');
  const [masksRequired, setMasksRequired] = useState(true);
  const [classProblem, setClassProblem] = useState('');
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const outlines = task === 'segmentation';
  const fields: Record<string, string> = error instanceof ApiError ? { ...error.fields, ...(MASK_CLASS_CODES.has(error.code) ? { mask_classes: error.message } : {}) } : {};
  const labels = outlines ? [] : [...new Set(labelText.split(',').map((l) => l.trim()).filter(Boolean))];
  const maskClasses = splitNames(classText);
  // Preselected by name until the user picks; a pick that is no longer a label falls back too.
  const chosen = labels.length === 2 ? (finding && labels.includes(finding) ? finding : defaultFinding(labels)) : '';
  const classError = classProblem || fields.mask_classes;

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    const problem = outlines ? maskClassProblem(maskClasses) : '';
    setClassProblem(problem);
    if (problem) {
      document.getElementById('ds-mask-classes')?.focus();
      return;
    }
    setBusy(true);
    setError(null);
    try {
      const body: Record<string, unknown> = { site: site.site.slug, name: name.trim(), description, task };
      if (modality) body.modality = modality;
      if (labels.length) body.label_names = labels;
      if (chosen) body.positive_class = chosen;
      if (outlines) Object.assign(body, { mask_classes: maskClasses, masks_required: masksRequired });
      const created = await api.post<Dataset>('/datasets/', body);
      navigate(`/sites/${site.site.slug}/datasets/${created.id}`);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <form className="card form-card" onSubmit={submit} aria-labelledby="create-dataset-title">
      <h2 id="create-dataset-title">New dataset</h2>
      <ErrorNotice error={pointToField(error, fields, [[(key) => key === 'mask_classes', '“What do the masks mark?”']], (where) => `The dataset was not created: see ${where} below.`)} />
      <div className="field">
        <label htmlFor="ds-name">Name</label>
        <input id="ds-name" required maxLength={200} value={name} onChange={(e) => setName(e.target.value)}
          placeholder="e.g. Chest X-rays, pneumonia vs normal" aria-invalid={fields.name ? true : undefined} aria-describedby={fields.name ? 'ds-name-error' : undefined} />
        {fields.name && <p className="field-error" id="ds-name-error">{fields.name}</p>}
      </div>
      <div className="field">
        <label htmlFor="ds-modality">Kind of images</label>
        <select id="ds-modality" value={modality} onChange={(e) => setModality(e.target.value)}>
          {MODALITIES.map(([code, label]) => (
            <option key={code} value={code}>
              {label}
            </option>
          ))}
        </select>
        {fields.modality && <p className="field-error">{fields.modality}</p>}
      </div>
      <fieldset className="field" data-testid="task-choice">
        <legend>What will your images be labelled with?</legend>
        <div className="choices">
          <label className={`choice ${!outlines ? 'choice-on' : ''}`}>
            <input type="radio" name="ds-task" value="classification" checked={!outlines} onChange={() => setTask('classification')} />
            <span>
              <strong>A label per image</strong>
              <span className="small muted block">For example “pneumonia” or “normal”. The model learns to tell images apart.</span>
            </span>
          </label>
          <label className={`choice ${outlines ? 'choice-on' : ''}`}>
            <input type="radio" name="ds-task" value="segmentation" checked={outlines} onChange={() => setTask('segmentation')} />
            <span>
              <strong>An outline (mask) per image</strong>
              <span className="small muted block">
                A mask is a second picture, the same size as the image, where what to find (a lesion, the vessels) is painted in.
                The model learns to draw that outline.
              </span>
            </span>
          </label>
        </div>
      </fieldset>
      {outlines ? (
        <>
          <div className="field">
            <label htmlFor="ds-mask-classes">What do the masks mark? (separate with commas)</label>
            <input id="ds-mask-classes" value={classText} onChange={(e) => { setClassText(e.target.value); setClassProblem(''); }}
              placeholder="e.g. lesion" aria-describedby={`ds-mask-classes-help${classError ? ' ds-mask-classes-error' : ''}`}
              aria-invalid={classError ? true : undefined} />
            <p className="small muted" id="ds-mask-classes-help">
              The first name is the mask’s value 1, the second its value 2, and so on; black (0) is the background. A
              black-and-white mask marks the first name in white.
            </p>
            {classError && <p className="field-error" id="ds-mask-classes-error">{classError}</p>}
          </div>
          <div className="field">
            <label className="check">
              <input type="checkbox" checked={masksRequired} onChange={(e) => setMasksRequired(e.target.checked)} />
              Every image must come with a mask (an image with nothing to find comes with an empty, all-black mask)
            </label>
          </div>
        </>
      ) : (
        <>
          <div className="field">
            <label htmlFor="ds-labels">Labels, if you know them (separate with commas)</label>
            <input id="ds-labels" value={labelText} onChange={(e) => setLabelText(e.target.value)}
              placeholder="e.g. pneumonia, normal (or leave empty: sub-folder names become the labels)" />
            {fields.label_names && <p className="field-error">{fields.label_names}</p>}
          </div>
          {labels.length === 2 && <FindingRadios labels={labels} value={chosen} onChange={setFinding} name="ds-finding" />}
          {fields.positive_class && <p className="field-error">{fields.positive_class}</p>}
        </>
      )}
      <div className="field">
        <label htmlFor="ds-description">Description (optional)</label>
        <textarea id="ds-description" rows={2} value={description} onChange={(e) => setDescription(e.target.value)}
          placeholder="Where the images come from, who labelled them, and when." />
        {fields.description && <p className="field-error">{fields.description}</p>}
      </div>
      <div className="actions">
        <button type="submit" className="btn btn-primary" disabled={busy || !name.trim()}>
          {busy ? 'Creating…' : 'Create dataset'}
        </button>
        <button type="button" className="btn" onClick={onCancel}>
          Cancel
        </button>
      </div>
    </form>
  );
}
