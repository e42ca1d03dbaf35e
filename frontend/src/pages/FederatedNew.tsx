import { useEffect, useState, type FormEvent } from 'react';
import { api, ApiError, type Page } from '../api/client';
import type { ConsortiumSite, Dataset, FederatedJob, Membership, ModelVersion, Strategy } from '../api/types';
import { Link, navigate, useDocumentTitle } from '../router';
import { ErrorNotice, FeatureGate, Loading, pointToField, useApi } from '../components/ui';
import { parseChoice, StartingPointChoices, useStartingPoint } from '../components/StartingPoints';
import { AdvancedFields, filledIn, SHARED_ADVANCED, type AdvancedField } from '../components/AdvancedFields';
import { DEADLINES, STRATEGIES } from '../lib/federation';
import { plural } from '../lib/format';
import { FEDERATED_INTRO } from './Federated';
import { withoutInbox } from '../lib/inbox';
import { isSegmentation, outlinedClasses } from '../lib/segmentation';

type AdvancedKey = 'batch_size' | 'learning_rate' | 'input_size' | 'seed';

const ADVANCED_FIELDS: AdvancedField<AdvancedKey>[] = [
  [...SHARED_ADVANCED.batch_size],
  ['learning_rate', SHARED_ADVANCED.learning_rate[1], 'Smaller is slower but steadier. It slows down over the rounds by itself.', 'any'],
  ['input_size', SHARED_ADVANCED.input_size[1], 'Images are resized to this square size at every hospital.', '1'],
  [...SHARED_ADVANCED.seed],
];

const INLINE_PLACES: [(key: string) => boolean, string][] = [
  [(key) => key === 'dataset', 'the images you chose'],
  [(key) => key === 'sites', 'the hospitals to invite'],
  [(key) => ['rounds', 'local_epochs'].includes(key), 'the rounds'],
  [(key) => key === 'min_participants' || key.startsWith('advanced.'), 'the advanced settings'],
];

export function NewFederatedJobPage({ site }: { site: Membership }) {
  useDocumentTitle(`Train across hospitals · ${site.site.name}`);
  return (
    <FeatureGate path="/federated-jobs/" what="Training across hospitals" title="Train across hospitals">
      <NewFederatedJob site={site} />
    </FeatureGate>
  );
}

export function NewFederatedJob({ site }: { site: Membership }) {
  const slug = site.site.slug;
  const datasets = useApi((signal) => api.get<Page<Dataset>>('/datasets/', { site: slug, page_size: 100 }, signal).then(withoutInbox), [slug]);
  const [dataset, setDataset] = useState('');
  const chosen = datasets.data?.results.find((d) => String(d.id) === dataset);
  // Starting points and own models of the chosen dataset's task only (labelling whole images, or outlining).
  const task = chosen?.task ?? 'classification';
  const { zoo, entries, start, setStart } = useStartingPoint('', task);
  const sites = useApi((signal) => api.get<Page<ConsortiumSite>>('/sites/', { scope: 'consortium', page_size: 200 }, signal), []);
  const versions = useApi((signal) => api.get<Page<ModelVersion>>('/models/', { page_size: 100 }, signal), []);
  const ownModels = (versions.data?.results ?? []).filter((v) => v.site === slug && (v.task || 'classification') === task);
  const partners = (sites.data?.results ?? []).filter((s) => s.slug !== slug);
  const outlines = isSegmentation(chosen);

  const [name, setName] = useState('');
  const [invited, setInvited] = useState<string[]>([]);
  const [strategy, setStrategy] = useState<Strategy>('fedavg');
  const [ownModel, setOwnModel] = useState('');
  const [rounds, setRounds] = useState('5');
  const [localEpochs, setLocalEpochs] = useState('1');
  const [deadline, setDeadline] = useState(String(60 * 60));
  const [minSites, setMinSites] = useState('');
  const [advanced, setAdvanced] = useState<Record<AdvancedKey, string>>({ batch_size: '', learning_rate: '', input_size: '', seed: '' });
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const fields = error instanceof ApiError ? error.fields : {};
  const advancedError = ADVANCED_FIELDS.some(([key]) => fields[`advanced.${key}`]) || !!fields.min_participants;

  useEffect(() => {
    const list = datasets.data?.results ?? [];
    if (!dataset && list.length === 1) setDataset(String(list[0].id));
  }, [datasets.data, dataset]);

  const totalSites = invited.length + 1;
  useEffect(() => {
    if (start === 'own' && ownModel && !ownModels.some((v) => String(v.id) === ownModel)) setOwnModel(''); // a model of the other task
  }, [start, ownModel, ownModels]);

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    const adv = filledIn(ADVANCED_FIELDS, advanced);
    const choice = start === 'own' ? { kind: 'version', id: Number(ownModel) } : parseChoice(start);
    try {
      const job = await api.post<FederatedJob>('/federated-jobs/', {
        ...(name.trim() ? { name: name.trim() } : {}),
        dataset: Number(dataset),
        sites: invited,
        strategy,
        ...(choice?.kind === 'version' ? { start_version: choice.id } : { starting_point: choice?.id }),
        rounds: Number(rounds),
        local_epochs: Number(localEpochs),
        round_deadline_seconds: Number(deadline),
        min_participants: minSites ? Number(minSites) : Math.min(2, totalSites),
        ...(Object.keys(adv).length ? { advanced: adv } : {}),
      });
      navigate(`/sites/${slug}/federated/${job.id}`);
    } catch (err) {
      setError(err);
      setBusy(false);
    }
  };

  return (
    <section>
      <nav className="crumbs" aria-label="Breadcrumb">
        <Link to={`/sites/${slug}/federated`}>Training across hospitals</Link> <span aria-hidden="true">›</span> New
      </nav>
      <h1>Train a model across hospitals</h1>
      <p className="muted measure">{FEDERATED_INTRO} Nothing starts until every invited hospital’s administrator has accepted.</p>
      <form onSubmit={submit} className="train-form" aria-label="Train a model across hospitals">
        <ErrorNotice error={pointToField(error, fields, INLINE_PLACES, (where) => `Nothing was sent. The reason is shown under ${where} below; fix it and press Invite again.`)} />

        <div className="card">
          <h2><label htmlFor="fed-dataset">1. Images at {site.site.name}</label></h2>
          <ErrorNotice error={datasets.error} onRetry={datasets.reload} />
          {datasets.data && datasets.data.results.length === 0 ? (
            <p>
              There are no datasets at {site.site.name} yet. <Link to={`/sites/${slug}/datasets`}>Create one and add labelled images</Link> first.
            </p>
          ) : (
            <select id="fed-dataset" required value={dataset} onChange={(e) => setDataset(e.target.value)} aria-describedby="fed-dataset-help"
              aria-invalid={fields.dataset ? true : undefined}>
              <option value="">Choose a dataset…</option>
              {datasets.data?.results.map((d) => (
                <option key={d.id} value={String(d.id)}>
                  {d.name} ({plural(d.accepted_count ?? 0, 'image')}{isSegmentation(d) ? `; masks of ${(d.mask_classes ?? []).join(', ')}` : d.label_names?.length ? `; ${d.label_names.join(', ')}` : ''})
                </option>
              ))}
            </select>
          )}
          <p className="small muted" id="fed-dataset-help">
            {outlines
              ? `Every other hospital trains on its own images with masks of the same classes: ${(chosen?.mask_classes ?? []).join(', ')}.`
              : chosen?.label_names?.length
                ? `Every other hospital trains on its own images with the same labels: ${chosen.label_names.join(', ')}.`
                : 'The other hospitals train on their own images with the same labels as this dataset.'}
          </p>
          {fields.dataset && <p className="field-error">{fields.dataset}</p>}
        </div>

        <fieldset className="card">
          <legend><h2>2. Hospitals to invite</h2></legend>
          <p className="small muted">Each hospital’s administrator is asked to accept, and chooses which of their own images to use.</p>
          {sites.loading && !sites.data && <Loading what="Loading the hospitals in the network" />}
          <ErrorNotice error={sites.error} onRetry={sites.reload} />
          {sites.data && partners.length === 0 && <p>There are no other hospitals in the network yet.</p>}
          <div className="check-list">
            {partners.map((s) => (
              <label key={s.slug} className="check">
                <input type="checkbox" checked={invited.includes(s.slug)}
                  onChange={(e) => setInvited(e.target.checked ? [...invited, s.slug] : invited.filter((x) => x !== s.slug))} />
                {s.name}
              </label>
            ))}
          </div>
          {fields.sites && <p className="field-error">{fields.sites}</p>}
        </fieldset>

        <fieldset className="card">
          <legend><h2>3. How the model travels</h2></legend>
          <div className="choices choices-row">
            {(Object.keys(STRATEGIES) as Strategy[]).map((key) => (
              <label key={key} className={`choice ${strategy === key ? 'choice-on' : ''}`}>
                <input type="radio" name="strategy" value={key} checked={strategy === key} onChange={() => setStrategy(key)} />
                <span>
                  <strong>{STRATEGIES[key].title}</strong> {key === 'fedavg' && <span className="badge badge-ok">recommended</span>}
                  <span className="small block">{STRATEGIES[key].plain}</span>
                  <span className="small muted block">Method: {STRATEGIES[key].method}</span>
                </span>
              </label>
            ))}
          </div>
          <div className="grid-fields">
            <div className="field">
              <label htmlFor="fed-rounds">Rounds</label>
              <input id="fed-rounds" type="number" min={1} max={100} step={1} required value={rounds} onChange={(e) => setRounds(e.target.value)}
                aria-describedby="fed-rounds-help" aria-invalid={fields.rounds ? true : undefined} />
              <p className="small muted" id="fed-rounds-help">
                {strategy === 'fedavg' ? 'Each round, every hospital trains and the results are combined.' : 'Each round, the model visits every hospital once.'}
              </p>
              {fields.rounds && <p className="field-error">{fields.rounds}</p>}
            </div>
            <div className="field">
              <label htmlFor="fed-local">Learning passes per round at each hospital</label>
              <input id="fed-local" type="number" min={1} max={50} step={1} required value={localEpochs} onChange={(e) => setLocalEpochs(e.target.value)}
                aria-describedby="fed-local-help" aria-invalid={fields.local_epochs ? true : undefined} />
              <p className="small muted" id="fed-local-help">How many times each hospital’s computer goes through its own images in a round (epochs).</p>
              {fields.local_epochs && <p className="field-error">{fields.local_epochs}</p>}
            </div>
            <div className="field">
              <label htmlFor="fed-deadline">Time each hospital has per round</label>
              <select id="fed-deadline" value={deadline} onChange={(e) => setDeadline(e.target.value)} aria-describedby="fed-deadline-help">
                {DEADLINES.map(([seconds, words]) => <option key={seconds} value={String(seconds)}>{words}</option>)}
              </select>
              <p className="small muted" id="fed-deadline-help">A hospital that has not answered by then is left out of that round; the others go on.</p>
            </div>
          </div>
        </fieldset>

        <fieldset className="card">
          <legend><h2>4. Starting point</h2></legend>
          <p className="small muted">Every hospital starts from the same model, prepared once at {site.site.name}.</p>
          {zoo.loading && !zoo.data && <Loading what="Loading starting points" />}
          <ErrorNotice error={zoo.error} onRetry={zoo.reload} />
          <StartingPointChoices
            name="fed-start"
            entries={entries}
            value={start}
            onChange={setStart}
            before={ownModels.length > 0 && (
              <div className={`choice choice-box ${start === 'own' ? 'choice-on' : ''}`}>
                <label className="choice-main">
                  <input type="radio" name="fed-start" value="own" checked={start === 'own'} onChange={() => setStart('own')} />
                  <span><strong>A model already trained at {site.site.name}</strong><span className="small muted block">Carry on from one of your own models.</span></span>
                </label>
                {start === 'own' && (
                  <div className="field indent">
                    <label htmlFor="fed-own-model">Model</label>
                    <select id="fed-own-model" required value={ownModel} onChange={(e) => setOwnModel(e.target.value)}>
                      <option value="">Choose a model…</option>
                      {ownModels.map((v) => <option key={v.id} value={String(v.id)}>{v.name} ({isSegmentation(v) ? `outlines ${outlinedClasses(v.label_names).join(', ')}` : v.label_names.join(', ')})</option>)}
                    </select>
                  </div>
                )}
              </div>
            )}
          />
          {fields.starting_point && <p className="field-error">{fields.starting_point}</p>}
        </fieldset>

        <details className="card advanced" open={advancedError || undefined}>
          <summary>Advanced settings</summary>
          <p className="small muted">Leave a box empty to use the recommended value.</p>
          <div className="grid-fields">
            <div className="field">
              <label htmlFor="fed-name">Name</label>
              <input id="fed-name" maxLength={200} value={name} onChange={(e) => setName(e.target.value)} placeholder={chosen ? `Cross-site: ${chosen.name}` : ''} />
            </div>
            <div className="field">
              <label htmlFor="fed-min">Go on with at least</label>
              <select id="fed-min" value={minSites || String(Math.min(2, totalSites))} onChange={(e) => setMinSites(e.target.value)} aria-describedby="fed-min-help">
                {Array.from({ length: totalSites }, (_, i) => i + 1).map((n) => <option key={n} value={String(n)}>{plural(n, 'hospital')}</option>)}
              </select>
              <p className="small muted" id="fed-min-help">Fewer hospitals than this accepting, or answering a round, stops the training.</p>
              {fields.min_participants && <p className="field-error">{fields.min_participants}</p>}
            </div>
            <AdvancedFields idPrefix="fed-adv" fields={ADVANCED_FIELDS} values={advanced} onChange={setAdvanced}
              errorFor={(key) => fields[`advanced.${key}`]} />
          </div>
        </details>

        {site.role !== 'admin' && (
          <p className="small">An administrator of {site.site.name} must also accept before training starts.</p>
        )}
        <div className="actions">
          <button type="submit" className="btn btn-primary btn-large" disabled={busy || !dataset || invited.length === 0 || !start || (start === 'own' && !ownModel)}>
            {busy ? 'Sending invitations…' : `Invite ${invited.length ? plural(invited.length, 'hospital') : 'hospitals'}`}
          </button>
          {invited.length === 0 && <span className="small muted">Tick at least one hospital to invite.</span>}
        </div>
      </form>
    </section>
  );
}
