import { useEffect, useState, type FormEvent } from 'react';
import { api, ApiError, type Page } from '../api/client';
import type { Dataset, Job, Membership, ZooEntry } from '../api/types';
import { Link, navigate, useDocumentTitle, useLocation } from '../router';
import { ErrorNotice, FeatureGate, Loading, useApi } from '../components/ui';
import { plural } from '../lib/format';

interface Advanced {
  epochs: string;
  input_size: string;
  learning_rate: string;
  batch_size: string;
  seed: string;
}

const ADVANCED_FIELDS: [keyof Advanced, string, string, string][] = [
  ['epochs', 'Rounds of learning (epochs)', 'How many times the model sees every learning image.', '1'],
  ['input_size', 'Image size (pixels)', 'Images are resized to this square size before learning.', '1'],
  ['learning_rate', 'Learning speed (learning rate)', 'Smaller is slower but steadier.', 'any'],
  ['batch_size', 'Images per step (batch size)', 'Lower it if training runs out of memory.', '1'],
  ['seed', 'Random seed', 'Use the same number to repeat a run exactly.', '1'],
];

export function TrainPage({ site }: { site: Membership }) {
  useDocumentTitle(`Train a model · ${site.site.name}`);
  return (
    <FeatureGate path="/jobs/" what="Training" title="Train a model">
      <TrainForm site={site} />
    </FeatureGate>
  );
}

function TrainForm({ site }: { site: Membership }) {
  const { search } = useLocation();
  const datasets = useApi((signal) => api.get<Page<Dataset>>('/datasets/', { site: site.site.slug, page_size: 100 }, signal), [site.site.slug]);
  const zoo = useApi((signal) => api.get<Page<ZooEntry> | ZooEntry[]>('/zoo/', { page_size: 100 }, signal), []);
  const entries: ZooEntry[] = zoo.data ? (Array.isArray(zoo.data) ? zoo.data : zoo.data.results) : [];

  const [dataset, setDataset] = useState(search.get('dataset') ?? '');
  const [start, setStart] = useState('');
  const [recipe, setRecipe] = useState<'quick' | 'full'>('full');
  const [advanced, setAdvanced] = useState<Advanced>({ epochs: '', input_size: '', learning_rate: '', batch_size: '', seed: '' });
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const fields = error instanceof ApiError ? error.fields : {};

  useEffect(() => {
    if (!start && entries.length) setStart(String((entries.find((e) => e.recommended) ?? entries[0]).id));
  }, [entries, start]);
  useEffect(() => {
    const list = datasets.data?.results ?? [];
    if (!dataset && list.length === 1) setDataset(String(list[0].id));
  }, [datasets.data, dataset]);

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    const adv: Record<string, number> = {};
    for (const [key] of ADVANCED_FIELDS) if (advanced[key].trim()) adv[key] = Number(advanced[key]);
    try {
      const job = await api.post<Job>('/jobs/', {
        dataset: asId(dataset),
        starting_point: asId(start),
        recipe,
        ...(Object.keys(adv).length ? { advanced: adv } : {}),
      });
      navigate(`/sites/${site.site.slug}/jobs/${job.id}`);
    } catch (err) {
      setError(err);
      setBusy(false);
    }
  };

  const chosen = datasets.data?.results.find((d) => String(d.id) === dataset);

  return (
    <section>
      <h1>Train a model</h1>
      <p className="muted">Pick your images and press Start. The settings below are good defaults; you rarely need to change them.</p>
      <form onSubmit={submit} className="train-form">
        <ErrorNotice error={topError(error, fields)} />
        <div className="card">
          <h2><label htmlFor="train-dataset">1. Images to learn from</label></h2>
          <ErrorNotice error={datasets.error} onRetry={datasets.reload} />
          {datasets.data && datasets.data.results.length === 0 ? (
            <p>
              There are no datasets at {site.site.name} yet.{' '}
              <Link to={`/sites/${site.site.slug}/datasets`}>Create one and add labelled images</Link> first.
            </p>
          ) : (
            <select id="train-dataset" required value={dataset} onChange={(e) => setDataset(e.target.value)} aria-invalid={fields.dataset ? true : undefined}
              aria-describedby={fields.dataset ? 'train-dataset-error' : undefined}>
              <option value="">Choose a dataset…</option>
              {datasets.data?.results.map((d) => (
                <option key={d.id} value={String(d.id)}>
                  {d.name} ({plural(d.accepted_count ?? 0, 'image')}{d.label_names?.length ? `; ${d.label_names.join(', ')}` : ''})
                </option>
              ))}
            </select>
          )}
          {fields.dataset && <p className="field-error" id="train-dataset-error">{fields.dataset}</p>}
          {chosen && (chosen.label_names?.length ?? 0) < 2 && (
            <p className="warning-text small">This dataset needs images with at least two different labels before a model can learn to tell them apart.</p>
          )}
        </div>

        <fieldset className="card">
          <legend><h2>2. Starting point</h2></legend>
          <p className="small muted">A model that already knows how to look at images. It then learns your labels from your images.</p>
          {zoo.loading && !zoo.data && <Loading what="Loading starting points" />}
          <ErrorNotice error={zoo.error} onRetry={zoo.reload} />
          <div className="choices">
            {entries.map((entry) => (
              <div key={entry.id} className={`choice choice-box ${String(entry.id) === start ? 'choice-on' : ''}`}>
                <label className="choice-main">
                  <input type="radio" name="starting-point" value={String(entry.id)} checked={String(entry.id) === start} onChange={() => setStart(String(entry.id))} />
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
            ))}
          </div>
          {fields.starting_point && <p className="field-error">{fields.starting_point}</p>}
        </fieldset>

        <fieldset className="card">
          <legend><h2>3. How thorough</h2></legend>
          <div className="choices choices-row">
            <label className={`choice ${recipe === 'full' ? 'choice-on' : ''}`}>
              <input type="radio" name="recipe" value="full" checked={recipe === 'full'} onChange={() => setRecipe('full')} />
              <span><strong>Thorough</strong> <span className="badge badge-ok">recommended</span><span className="small muted block">The best model your images allow; takes longer.</span></span>
            </label>
            <label className={`choice ${recipe === 'quick' ? 'choice-on' : ''}`}>
              <input type="radio" name="recipe" value="quick" checked={recipe === 'quick'} onChange={() => setRecipe('quick')} />
              <span><strong>Quick</strong><span className="small muted block">A few minutes. Good for a first look.</span></span>
            </label>
          </div>
          <details className="advanced" open={Object.keys(fields).some((k) => k.startsWith('advanced.')) || undefined}>
            <summary>Advanced settings</summary>
            <p className="small muted">Leave a box empty to use the recommended value.</p>
            <div className="grid-fields">
              {ADVANCED_FIELDS.map(([key, label, help, step]) => (
                <div className="field" key={key}>
                  <label htmlFor={`adv-${key}`}>{label}</label>
                  <input id={`adv-${key}`} type="number" min={0} step={step} inputMode="decimal" value={advanced[key]}
                    onChange={(e) => setAdvanced({ ...advanced, [key]: e.target.value })} aria-describedby={`adv-${key}-help`}
                    aria-invalid={fields[`advanced.${key}`] ? true : undefined} />
                  <p className="small muted" id={`adv-${key}-help`}>{help}</p>
                  {fields[`advanced.${key}`] && <p className="field-error">{fields[`advanced.${key}`]}</p>}
                </div>
              ))}
            </div>
          </details>
        </fieldset>

        <div className="actions">
          <button type="submit" className="btn btn-primary btn-large" disabled={busy || !dataset || !start}>
            {busy ? 'Starting…' : 'Start training'}
          </button>
        </div>
      </form>
    </section>
  );
}

const SOURCE_NAMES: Record<string, string> = {
  imagenet: 'Pre-trained on everyday photographs (ImageNet)',
  random: 'Starts from nothing (for comparison)',
  file: 'Imported by an administrator',
  model_version: 'A model trained at a hospital in the network',
};

/**
 * The notice above the form. When the hub's reason is already shown next to the choice it concerns,
 * say only where to look, so the same sentence does not appear twice.
 */
export function topError(error: unknown, fields: Record<string, string>): unknown {
  if (!(error instanceof ApiError)) return error;
  const inline = Object.entries(fields).filter(([key]) => key === 'dataset' || key === 'starting_point' || key.startsWith('advanced.'));
  if (!inline.length) return error;
  const norm = (text: string) => text.replace(/\s+/g, ' ').trim();
  const shown = inline.map(([, text]) => norm(text)).join(' ');
  if (!shown.includes(norm(error.message)) && !norm(error.message).includes(shown)) return error;
  const where = inline.some(([key]) => key === 'dataset') ? 'the images you chose' : inline.some(([key]) => key === 'starting_point') ? 'the starting point' : 'the advanced settings';
  return new Error(`Training could not start. The reason is shown under ${where} below; fix it and press Start training again.`);
}

const asId = (value: string) => (/^\d+$/.test(value) ? Number(value) : value);
