import { useRef, useState, type FormEvent } from 'react';
import { api, ApiError, type Page } from '../api/client';
import type { ConsortiumSite, Job, Membership, PublishedVersion, Visibility } from '../api/types';
import { Link } from '../router';
import { ErrorNotice, FeatureGate, Loading, useApi, useInterval, useModal } from './ui';
import { needsConfirmation, PublishComparisonWarning } from './ParentComparison';

const VISIBILITY: [Visibility, string, string][] = [
  ['site', 'Only my hospital', 'Colleagues at your site can apply and fine-tune it. Nobody else sees it.'],
  ['named', 'Hospitals I name', 'Your site and the hospitals you tick below.'],
  ['consortium', 'Every hospital in the network', 'Any site in the consortium can find and use it.'],
];

/** What to publish: a finished training run's model, or a model version (the result of training across hospitals). */
export type PublishSource = { job: Job } | { modelVersion: number; name: string };

/** On a finished training run: publish its model, then follow the copy into the marketplace. */
export function PublishPanel({ site, source }: { site: Membership; source: PublishSource }) {
  return (
    <FeatureGate path="/marketplace/versions/" what="Publishing to the marketplace" title="" quiet>
      <PublishCard site={site} source={source} />
    </FeatureGate>
  );
}

function PublishCard({ site, source }: { site: Membership; source: PublishSource }) {
  const [open, setOpen] = useState(false);
  const [version, setVersion] = useState<PublishedVersion | null>(null);
  const opener = useRef<HTMLButtonElement>(null);
  const pending = version?.status === 'pending';
  useInterval(
    async () => {
      if (!version) return;
      try {
        setVersion(await api.get<PublishedVersion>(`/marketplace/versions/${version.id}/`));
      } catch {
        /* the next tick tries again */
      }
    },
    2000,
    pending,
  );

  return (
    <section className="card" aria-labelledby="publish-title">
      <h2 id="publish-title">Share this model</h2>
      {!version && (
        <>
          <p className="small muted">
            Publishing copies the trained model (never the images) to the marketplace with a model card: what it is for,
            its limits, how it was trained (counts only) and how well it works. You choose who may use it.
          </p>
          <button ref={opener} type="button" className="btn btn-primary" onClick={() => setOpen(true)}>
            Publish to the marketplace
          </button>
        </>
      )}
      {version && (
        <div data-testid="publish-status" role="status" aria-live="polite">
          {version.status === 'pending' && (
            <p>
              <Loading what={`Copying version ${version.number} of “${version.model_name}” to the marketplace. Others see it once it is checked`} />
            </p>
          )}
          {version.status === 'published' && (
            <p className="ok-text">Published: version {version.number} is published.</p>
          )}
          {version.status === 'failed' && (
            <p className="notice notice-error">
              Publishing failed: {version.message || 'the copy could not be checked.'} Press “Publish to the marketplace” again to retry;
              if it keeps failing, tell your site administrator.
            </p>
          )}
          <p>
            <Link to={`/marketplace/models/${version.published_model}`}>Open it in the marketplace</Link>
          </p>
        </div>
      )}
      {open && (
        <PublishDialog
          site={site}
          source={source}
          onClose={() => {
            setOpen(false);
            opener.current?.focus();
          }}
          onPublished={(v) => {
            setOpen(false);
            setVersion(v);
          }}
        />
      )}
    </section>
  );
}

function PublishDialog({ site, source, onClose, onPublished }: {
  site: Membership;
  source: PublishSource;
  onClose: () => void;
  onPublished: (v: PublishedVersion) => void;
}) {
  const dialog = useModal();
  const sites = useApi((signal) => api.get<Page<ConsortiumSite>>('/sites/', { scope: 'consortium', page_size: 200 }, signal), []);
  const others = (sites.data?.results ?? []).filter((s) => s.slug !== site.site.slug);
  const [name, setName] = useState('job' in source ? `${source.job.dataset_name ?? 'Model'} (${site.site.name})` : source.name);
  const [intendedUse, setIntendedUse] = useState('');
  const [limitations, setLimitations] = useState('');
  const [visibility, setVisibility] = useState<Visibility>('site');
  const [named, setNamed] = useState<string[]>([]);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const fields = error instanceof ApiError ? error.fields : {};
  // A fine-tune that did worse than its parent, or could not be shown not to, needs a yes first.
  const comparison = 'job' in source ? source.job.parent_comparison : null;
  const [hubWarning, setHubWarning] = useState<string | null>(null);
  const [confirmed, setConfirmed] = useState(false);
  const mustConfirm = needsConfirmation(comparison) || hubWarning != null;

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const version = await api.post<PublishedVersion>('/marketplace/versions/', {
        ...('job' in source ? { job: Number(source.job.id) } : { model_version: source.modelVersion }),
        name: name.trim(),
        visibility,
        ...(visibility === 'named' ? { named_sites: named } : {}),
        intended_use: intendedUse.trim(),
        limitations: limitations.trim(),
        ...(mustConfirm && confirmed ? { acknowledge_comparison: true } : {}),
      });
      onPublished(version);
    } catch (err) {
      if (err instanceof ApiError && err.code === 'comparison_warning') {
        setHubWarning(err.message);
        setConfirmed(false);
      } else {
        setError(err);
      }
      setBusy(false);
    }
  };

  return (
    <dialog ref={dialog} className="dialog" aria-labelledby="publish-dialog-title" onCancel={(e) => { e.preventDefault(); onClose(); }}>
      <form onSubmit={submit}>
        <h2 id="publish-dialog-title">Publish this model</h2>
        <ErrorNotice error={error} />
        <div className="field">
          <label htmlFor="pub-name">Name in the marketplace</label>
          <input id="pub-name" required maxLength={200} value={name} onChange={(e) => setName(e.target.value)} aria-describedby="pub-name-help" />
          <p className="small muted" id="pub-name-help">Publishing again under the same name adds a new version.</p>
          {fields.name && <p className="field-error">{fields.name}</p>}
        </div>
        <div className="field">
          <label htmlFor="pub-use">What it is for (intended use)</label>
          <textarea id="pub-use" rows={3} value={intendedUse} onChange={(e) => setIntendedUse(e.target.value)}
            placeholder="For example: flags chest X-rays that may show pneumonia, for a radiologist to review first." />
          {fields.intended_use && <p className="field-error">{fields.intended_use}</p>}
        </div>
        <div className="field">
          <label htmlFor="pub-limits">Known limitations</label>
          <textarea id="pub-limits" rows={3} value={limitations} onChange={(e) => setLimitations(e.target.value)}
            placeholder="For example: adults only; trained on one scanner make; not checked on portable X-rays." />
          {fields.limitations && <p className="field-error">{fields.limitations}</p>}
        </div>
        <fieldset className="field">
          <legend>Who may use it</legend>
          <div className="choices">
            {VISIBILITY.map(([value, label, help]) => (
              <label key={value} className={`choice ${visibility === value ? 'choice-on' : ''}`}>
                <input type="radio" name="visibility" value={value} checked={visibility === value} onChange={() => setVisibility(value)} />
                <span>
                  <strong>{label}</strong>
                  <span className="small muted block">{help}</span>
                </span>
              </label>
            ))}
          </div>
          {visibility === 'named' && (
            <div className="named-sites">
              {sites.loading && !sites.data && <Loading what="Loading the hospitals in the network" />}
              <ErrorNotice error={sites.error} onRetry={sites.reload} />
              {sites.data && others.length === 0 && <p className="small">There are no other hospitals in the network yet.</p>}
              {others.map((s) => (
                <label key={s.slug} className="check">
                  <input type="checkbox" checked={named.includes(s.slug)}
                    onChange={(e) => setNamed(e.target.checked ? [...named, s.slug] : named.filter((n) => n !== s.slug))} />
                  {s.name}
                </label>
              ))}
            </div>
          )}
          {fields.named_sites && <p className="field-error">{fields.named_sites}</p>}
          {fields.visibility && <p className="field-error">{fields.visibility}</p>}
        </fieldset>
        <p className="small muted">
          The model card lists counts per label and the results measured here. It never includes images, file names or patient
          identifiers.
        </p>
        {mustConfirm && (
          <PublishComparisonWarning comparison={comparison} message={hubWarning} confirmed={confirmed} onConfirm={setConfirmed} />
        )}
        <div className="actions">
          <button type="submit" className="btn btn-primary"
            disabled={busy || !name.trim() || (visibility === 'named' && named.length === 0) || (mustConfirm && !confirmed)}>
            {busy ? 'Publishing…' : 'Publish'}
          </button>
          <button type="button" className="btn" onClick={onClose}>
            Cancel
          </button>
        </div>
      </form>
    </dialog>
  );
}
