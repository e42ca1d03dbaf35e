import { useEffect, useState, type FormEvent } from 'react';
import { api, ApiError, type Page } from '../api/client';
import type { Dataset, Job, Membership, PublishedVersion } from '../api/types';
import { Link, navigate, useDocumentTitle, useLocation } from '../router';
import { ErrorNotice, FeatureGate, Loading, pointToField, useApi } from '../components/ui';
import { parseChoice, StartingPointChoices, useStartingPoint } from '../components/StartingPoints';
import { AdvancedFields, filledIn, SHARED_ADVANCED, type AdvancedField } from '../components/AdvancedFields';
import { plural } from '../lib/format';
import { withoutInbox } from '../lib/inbox';
import { isSegmentation } from '../lib/segmentation';

type AdvancedKey = 'epochs' | 'input_size' | 'learning_rate' | 'batch_size' | 'seed';

const ADVANCED_FIELDS: AdvancedField<AdvancedKey>[] = [
  ['epochs', 'Rounds of learning (epochs)', 'How many times the model sees every learning image.', '1'],
  [...SHARED_ADVANCED.input_size],
  [...SHARED_ADVANCED.learning_rate],
  [...SHARED_ADVANCED.batch_size],
  [...SHARED_ADVANCED.seed],
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
  const datasets = useApi((signal) => api.get<Page<Dataset>>('/datasets/', { site: site.site.slug, page_size: 100 }, signal).then(withoutInbox), [site.site.slug]);

  // "Improve this model with our images" on a marketplace page: that published version is the starting point.
  const publishedId = search.get('published_version');
  const shared = useApi(
    (signal) => (publishedId ? api.get<PublishedVersion>(`/marketplace/versions/${publishedId}/`, undefined, signal) : Promise.resolve(null)),
    [publishedId],
  );

  const [dataset, setDataset] = useState(search.get('dataset') ?? '');
  const chosen = datasets.data?.results.find((d) => String(d.id) === dataset);
  const outlines = isSegmentation(chosen);
  const { zoo, entries, start, setStart } = useStartingPoint(publishedId ? `published:${publishedId}` : '', chosen?.task ?? 'classification');
  const [recipe, setRecipe] = useState<'quick' | 'full'>('full');
  const [decoderOnly, setDecoderOnly] = useState(false);
  const [advanced, setAdvanced] = useState<Record<AdvancedKey, string>>({ epochs: '', input_size: '', learning_rate: '', batch_size: '', seed: '' });
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const fields = error instanceof ApiError ? error.fields : {};
  const fromShared = start.startsWith('published:');

  useEffect(() => {
    const list = datasets.data?.results ?? [];
    if (!dataset && list.length === 1) setDataset(String(list[0].id));
  }, [datasets.data, dataset]);
  useEffect(() => {
    if (fromShared) setRecipe('full'); // the quick recipe needs an ImageNet starting point
  }, [fromShared]);
  useEffect(() => {
    if (shared.error) setStart((value) => (value.startsWith('published:') ? '' : value)); // fall back to the zoo
  }, [shared.error]);

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    const adv = { ...filledIn(ADVANCED_FIELDS, advanced), ...(outlines && decoderOnly ? { freeze_encoder: true } : {}) };
    try {
      const choice = parseChoice(start);
      const job = await api.post<Job>('/jobs/', {
        dataset: asId(dataset),
        ...(choice?.kind === 'published' ? { published_version: choice.id } : { starting_point: choice?.id }),
        // The quick recipe labels whole images; an outlining model's quick choice is the decoder only.
        recipe: outlines ? 'full' : recipe,
        ...(Object.keys(adv).length ? { advanced: adv } : {}),
      });
      navigate(`/sites/${site.site.slug}/jobs/${job.id}`);
    } catch (err) {
      setError(err);
      setBusy(false);
    }
  };

  const sharedTask = shared.data?.card.task;
  const taskMismatch = fromShared && !!chosen && !!sharedTask && sharedTask !== chosen.task;

  return (
    <section>
      <h1>Train a model</h1>
      <p className="muted">Pick your images and press Start. The settings below are good defaults; you rarely need to change them.</p>
      {shared.data && fromShared && (
        <p className="notice notice-info" role="status" data-testid="fine-tune-note">
          You are improving “{shared.data.model_name}” (version {shared.data.number}) with images from {site.site.name}. It learns at your
          site; your images never leave it. The new model is yours: share it only if you choose to.
        </p>
      )}
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
                  {d.name} ({plural(d.accepted_count ?? 0, 'image')}{isSegmentation(d) ? `; outlines of ${d.mask_classes?.join(', ')}` : d.label_names?.length ? `; ${d.label_names.join(', ')}` : ''})
                </option>
              ))}
            </select>
          )}
          {fields.dataset && <p className="field-error" id="train-dataset-error">{fields.dataset}</p>}
          {fields.dataset && error instanceof ApiError && error.code === 'dataset_not_ready' && dataset && (
            <p className="small">
              <Link to={`/sites/${site.site.slug}/datasets/${dataset}`}>Open the dataset</Link> to add images, or to
              draw its split again.
            </p>
          )}
          {chosen && !outlines && (chosen.label_names?.length ?? 0) < 2 && (
            <p className="warning-text small">This dataset needs images with at least two different labels before a model can learn to tell them apart.</p>
          )}
          {outlines && (
            <p className="small muted" data-testid="train-outlines">
              The model will learn to outline {chosen!.mask_classes.join(', ')} as your masks do, and is checked on images it never saw
              by how much its outlines overlap the masks (Dice).
            </p>
          )}
          {!outlines && chosen?.positive_class && (
            <p className="small muted long-name" data-testid="train-finding">
              The model will look for “{chosen.positive_class}”: its results count how many of these it finds.{' '}
              <Link to={`/sites/${site.site.slug}/datasets/${chosen.id}`}>Change this on the dataset page</Link>.
            </p>
          )}
        </div>

        <fieldset className="card">
          <legend><h2>2. Starting point</h2></legend>
          <p className="small muted">
            {outlines
              ? 'A model that already knows how to look at images. It then learns to outline what your masks mark.'
              : 'A model that already knows how to look at images. It then learns your labels from your images.'}
          </p>
          {taskMismatch && (
            <p className="warning-text small" data-testid="task-mismatch">
              This shared model {sharedTask === 'segmentation' ? 'outlines' : 'labels whole images'}, but the images you chose are labelled
              {outlines ? ' with outlines' : ' per image'}: choose a starting point below, or a dataset of the same kind.
            </p>
          )}
          {zoo.loading && !zoo.data && <Loading what="Loading starting points" />}
          <ErrorNotice error={zoo.error} onRetry={zoo.reload} />
          <ErrorNotice error={shared.error} onRetry={shared.reload} title="The shared model could not be loaded; choose another starting point below, or open the model again from the marketplace." />
          <StartingPointChoices
            name="starting-point"
            entries={entries}
            value={start}
            onChange={setStart}
            before={shared.data && (
              <label className={`choice ${fromShared ? 'choice-on' : ''}`}>
                <input type="radio" name="starting-point" value={`published:${shared.data.id}`} checked={fromShared} onChange={() => setStart(`published:${shared.data!.id}`)} />
                <span>
                  <strong>{shared.data.model_name}</strong>, version {shared.data.number} <span className="badge badge-ok">from the marketplace</span>
                  <span className="small muted block">
                    Shared by {shared.data.card.site?.name ?? shared.data.site}. Your images teach it more; its family tree will show it as the parent.
                    {shared.data.card.labels?.length ? ` It knows: ${shared.data.card.labels.join(', ')}.` : ''}
                  </span>
                </span>
              </label>
            )}
          />
          {fields.starting_point && <p className="field-error">{fields.starting_point}</p>}
        </fieldset>

        <fieldset className="card">
          <legend><h2>3. How thorough</h2></legend>
          {outlines ? <OutlineChoices decoderOnly={decoderOnly} onChange={setDecoderOnly} /> : (
          <div className="choices choices-row">
            <label className={`choice ${recipe === 'full' ? 'choice-on' : ''}`}>
              <input type="radio" name="recipe" value="full" checked={recipe === 'full'} onChange={() => setRecipe('full')} />
              <span><strong>Thorough</strong> <span className="badge badge-ok">recommended</span><span className="small muted block">The best model your images allow; takes longer.</span></span>
            </label>
            <label className={`choice ${recipe === 'quick' ? 'choice-on' : ''}`}>
              <input type="radio" name="recipe" value="quick" checked={recipe === 'quick'} disabled={fromShared} onChange={() => setRecipe('quick')} />
              <span><strong>Quick</strong><span className="small muted block">{fromShared ? 'Not available when improving a shared model: choose Thorough.' : 'A few minutes. Good for a first look.'}</span></span>
            </label>
          </div>
          )}
          <details className="advanced" open={Object.keys(fields).some((k) => k.startsWith('advanced.')) || undefined}>
            <summary>Advanced settings</summary>
            <p className="small muted">Leave a box empty to use the recommended value.</p>
            <div className="grid-fields">
              <AdvancedFields idPrefix="adv" fields={ADVANCED_FIELDS} values={advanced} onChange={setAdvanced} errorFor={(key) => fields[`advanced.${key}`]} />
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

/** How an outlining (segmentation) model is trained: all of it, or only the part that draws (the decoder). */
export function OutlineChoices({ decoderOnly, onChange }: { decoderOnly: boolean; onChange: (decoderOnly: boolean) => void }) {
  return (
    <div className="choices choices-row" data-testid="outline-choices">
      <label className={`choice ${!decoderOnly ? 'choice-on' : ''}`}>
        <input type="radio" name="outline-recipe" value="thorough" checked={!decoderOnly} onChange={() => onChange(false)} />
        <span>
          <strong>Thorough</strong> <span className="badge badge-ok">recommended</span>
          <span className="small muted block">The whole model learns from your images: the most exact outlines. About 15 minutes on an ordinary computer.</span>
        </span>
      </label>
      <label className={`choice ${decoderOnly ? 'choice-on' : ''}`}>
        <input type="radio" name="outline-recipe" value="decoder" checked={decoderOnly} onChange={() => onChange(true)} />
        <span>
          <strong>First outline in minutes</strong> (decoder only)
          <span className="small muted block">
            Keeps the part that already knows how to look at images as it is, and trains only the part that draws the outline
            (the decoder). A first model in a few minutes; its outlines are less exact.
          </span>
        </span>
      </label>
    </div>
  );
}

const INLINE_PLACES: [(key: string) => boolean, string][] = [
  [(key) => key === 'dataset', 'the images you chose'],
  [(key) => key === 'starting_point', 'the starting point'],
  [(key) => key.startsWith('advanced.'), 'the advanced settings'],
];

/** The notice above the train form (see `pointToField`). */
export function topError(error: unknown, fields: Record<string, string>): unknown {
  return pointToField(error, fields, INLINE_PLACES, (where) => `Training could not start. The reason is shown under ${where} below; fix it and press Start training again.`);
}

const asId = (value: string) => (/^\d+$/.test(value) ? Number(value) : value);
