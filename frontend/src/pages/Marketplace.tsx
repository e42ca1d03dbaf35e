import { useEffect, useState } from 'react';
import { api, ApiError, type Page } from '../api/client';
import { USABLE_VERSION_STATUSES, type Me, type PublishedModel, type PublishedModelDetail, type SiteResult, type TtaPolicy } from '../api/types';
import { Link, useDocumentTitle } from '../router';
import { ErrorNotice, FeatureGate, Loading, Pager, useApi } from '../components/ui';
import { LineageGraph } from '../components/LineageGraph';
import { MODALITIES, modalityName } from './Datasets';
import { percent } from '../lib/format';
import { aucGrade, findingTerms, ttaInWords, ttaPolicy } from '../lib/metrics';
import { defaultSite, membershipFor } from '../session';
import { DownloadPanel, EvaluateAtMySite, VersionActions } from '../components/ModelActions';
import { SegmentationResult } from '../components/SegmentationResult';
import { isSegmentation, isSegmentationResult, outlinedClasses } from '../lib/segmentation';
import type { Evaluation } from '../api/types';

const PAGE_SIZE = 20;
const VISIBILITY_TEXT: Record<string, string> = {
  site: 'Only the publishing hospital',
  named: 'Hospitals named by the publisher',
  consortium: 'Every hospital in the network',
};
const SOURCE_NAMES: Record<string, string> = {
  imagenet: 'pre-trained on everyday photographs (ImageNet)',
  random: 'started from nothing',
  file: 'weights imported by an administrator',
  model_version: 'a model from a hospital in the network',
};

export function MarketplacePage() {
  useDocumentTitle('Marketplace');
  return (
    <FeatureGate path="/marketplace/models/" what="The marketplace" title="Marketplace">
      <MarketplaceList />
    </FeatureGate>
  );
}

function useDebounced<T>(value: T, ms = 300): T {
  const [v, setV] = useState(value);
  useEffect(() => {
    const id = window.setTimeout(() => setV(value), ms);
    return () => window.clearTimeout(id);
  }, [value, ms]);
  return v;
}

function MarketplaceList() {
  const [search, setSearch] = useState('');
  const [modality, setModality] = useState('');
  const [label, setLabel] = useState('');
  const [minAuc, setMinAuc] = useState('');
  const [sort, setSort] = useState('recent');
  const [page, setPage] = useState(1);
  const q = useDebounced(search);
  const l = useDebounced(label);
  const models = useApi(
    (signal) =>
      api.get<Page<PublishedModel>>('/marketplace/models/', { search: q, modality, labels: l, min_auc: minAuc, sort, page, page_size: PAGE_SIZE }, signal),
    [q, modality, l, minAuc, sort, page],
  );
  const reset = () => setPage(1);

  return (
    <section>
      <h1>Marketplace</h1>
      <p className="muted">
        Models published by hospitals in the network. Each one ran only on its own hospital’s images; here you see what it is
        for, its limits and how well it worked at each hospital that checked it.
      </p>
      <form className="filters card" role="search" onSubmit={(e) => e.preventDefault()} aria-label="Find models">
        <div className="field grow">
          <label htmlFor="mk-search">Search models</label>
          <input id="mk-search" type="search" value={search} placeholder="Name, label, hospital…" onChange={(e) => { setSearch(e.target.value); reset(); }} />
        </div>
        <div className="field">
          <label htmlFor="mk-modality">Kind of images</label>
          <select id="mk-modality" value={modality} onChange={(e) => { setModality(e.target.value); reset(); }}>
            <option value="">Any</option>
            {MODALITIES.filter(([code]) => code).map(([code, name]) => <option key={code} value={code}>{name}</option>)}
          </select>
        </div>
        <div className="field">
          <label htmlFor="mk-label">Recognises the label</label>
          <input id="mk-label" value={label} placeholder="e.g. pneumonia" onChange={(e) => { setLabel(e.target.value); reset(); }} />
        </div>
        <div className="field">
          <label htmlFor="mk-auc">Separates cases at least</label>
          <select id="mk-auc" value={minAuc} onChange={(e) => { setMinAuc(e.target.value); reset(); }}>
            <option value="">Any result</option>
            <option value="0.7">Fair or better (AUC 0.70+)</option>
            <option value="0.8">Good or better (AUC 0.80+)</option>
            <option value="0.9">Excellent (AUC 0.90+)</option>
          </select>
        </div>
        <div className="field">
          <label htmlFor="mk-sort">Order by</label>
          <select id="mk-sort" value={sort} onChange={(e) => { setSort(e.target.value); reset(); }}>
            <option value="recent">Most recently updated</option>
            <option value="auc">Best results first</option>
            <option value="name">Name</option>
          </select>
        </div>
      </form>
      <ErrorNotice error={models.error} onRetry={models.reload} />
      {models.loading && !models.data && <Loading what="Loading models" />}
      {models.data && models.data.count === 0 && (
        <p data-testid="marketplace-empty" role="status">
          No model you may use matches. Clear a filter, or ask the hospital that made a model to share it with your site.
        </p>
      )}
      {models.data && models.data.count > 0 && (
        <ul className="model-list" data-testid="model-list" aria-busy={models.loading}>
          {models.data.results.map((m) => <ModelTile key={m.id} model={m} />)}
        </ul>
      )}
      {models.data && <Pager page={page} count={models.data.count} pageSize={PAGE_SIZE} onPage={setPage} />}
    </section>
  );
}

/** "outlines lesion" for an outlining model (its first output is the background), "tells apart a, b" for the others. */
export function whatItDoes(model: { task?: string; label_names: string[] }): string {
  return isSegmentation(model)
    ? `outlines ${model.label_names.filter((l) => l !== 'background').join(', ')}`
    : `tells apart ${model.label_names.join(', ')}`;
}

function ModelTile({ model }: { model: PublishedModel }) {
  const v = model.latest_version;
  return (
    <li className="card model-tile">
      <h2 className="h3">
        <Link to={`/marketplace/models/${model.id}`}>{model.name}</Link>
      </h2>
      <p className="small muted">
        From {model.site_name} · {modalityName(model.modality) || 'images'} · {whatItDoes(model)}
      </p>
      {model.intended_use && <p className="clamp">{model.intended_use}</p>}
      <p className="small">
        {v ? (
          <>
            Version {v.number}
            {v.auc != null ? ` · separates cases ${aucGrade(v.auc)} (AUC ${v.auc.toFixed(2)})` : ''}
            {v.status === 'deprecated' ? ' · a newer version is advised' : ''}
          </>
        ) : (
          <span className="warning-text">Not usable yet: no version has finished publishing.</span>
        )}
      </p>
    </li>
  );
}

export function ModelPage({ me, params }: { me: Me; params: Record<string, string> }) {
  return (
    <FeatureGate path="/marketplace/models/" what="The marketplace" title="Marketplace">
      <ModelDetail me={me} id={params.id} />
    </FeatureGate>
  );
}

function ModelDetail({ me, id }: { me: Me; id: string }) {
  const model = useApi((signal) => api.get<PublishedModelDetail>(`/marketplace/models/${id}/`, undefined, signal), [id]);
  const [siteSlug, setSiteSlug] = useState('');
  useDocumentTitle(model.data ? model.data.name : 'Marketplace');
  if (model.error instanceof ApiError && model.error.isNotFound) {
    return (
      <section data-testid="no-access">
        <h1>Model not found</h1>
        <p>This model does not exist, or it has not been shared with your hospital. <Link to="/marketplace">Browse the marketplace</Link>.</p>
      </section>
    );
  }
  if (!model.data) return model.error ? <ErrorNotice error={model.error} onRetry={model.reload} /> : <Loading what="Loading the model" />;
  const m = model.data;
  const card = m.card ?? {};
  const usable = !!m.latest_version && USABLE_VERSION_STATUSES.includes(m.latest_version.status);
  const site = (siteSlug ? membershipFor(me, siteSlug) : null) ?? defaultSite(me);
  const labels = card.training_data?.images_per_label ?? {};
  const own = me.memberships.some((x) => x.site.slug === m.site);
  const publisherAdmin = me.memberships.some((x) => x.site.slug === m.site && x.role === 'admin');
  // Who may deprecate or withdraw is the hub's rule (the publisher, or an administrator of the publishing site).
  const manages = m.versions.some((v) => v.can_manage);
  const withdrawn = !usable ? m.versions.find((v) => v.status === 'withdrawn') : undefined;
  const ownCheck = { label_names: m.label_names, ...(card.metrics ?? {}) } as Evaluation;
  const outlines = isSegmentation(m) || isSegmentation(card) || isSegmentationResult(ownCheck);

  return (
    <section>
      <nav className="crumbs" aria-label="Breadcrumb">
        <Link to="/marketplace">Marketplace</Link> <span aria-hidden="true">›</span> {m.name}
      </nav>
      <div className="page-head">
        <div>
          <h1>{m.name}</h1>
          <p className="muted">
            From {m.site_name} · {modalityName(m.modality) || 'images'} · {whatItDoes({ ...m, task: outlines ? 'segmentation' : m.task })}
            {m.latest_version ? ` · version ${m.latest_version.number}` : ''}
          </p>
        </div>
        <div className="actions">
          {usable && site ? (
            <>
              <Link className="btn btn-primary" to={`/sites/${site.site.slug}/apply?model=${m.id}`}>Use this model on my images</Link>
              <Link className="btn" to={`/sites/${site.site.slug}/train?published_version=${m.latest_version!.id}`}>Improve this model with our images</Link>
              <a className="btn" href="#evaluate">Check it on our images</a>
            </>
          ) : (
            <span className="small muted">{usable ? 'Join a site to use this model.' : withdrawn ? '' : 'Usable once a version has finished publishing.'}</span>
          )}
        </div>
      </div>
      {usable && site && me.memberships.length > 1 && (
        <div className="field inline-field">
          <label htmlFor="model-site">Working for</label>
          <select id="model-site" value={site.site.slug} onChange={(e) => setSiteSlug(e.target.value)}>
            {me.memberships.map((x) => <option key={x.site.slug} value={x.site.slug}>{x.site.name}</option>)}
          </select>
        </div>
      )}
      {withdrawn && (
        <p className="notice notice-warning" role="status" data-testid="withdrawn">
          Withdrawn by its publisher: nobody can apply, improve, check or download it any more.
          {withdrawn.status_reason ? ` Their reason: ${withdrawn.status_reason}` : ''} Look for another model in the marketplace.
        </p>
      )}
      {m.latest_version?.status === 'deprecated' && (
        <p className="notice notice-warning" role="status">The publisher advises a newer version of this model{m.versions.find((v) => v.id === m.latest_version!.id)?.status_reason ? `: ${m.versions.find((v) => v.id === m.latest_version!.id)!.status_reason}` : '.'}</p>
      )}
      {own && <p className="small muted">Shared with: {VISIBILITY_TEXT[m.visibility] ?? m.visibility}{m.named_sites?.length ? ` (${m.named_sites.join(', ')})` : ''}.</p>}

      <div className="grid-2">
        <section className="card" aria-labelledby="use-title">
          <h2 id="use-title">Intended use</h2>
          <p>{m.intended_use || 'The publisher has not described what this model is for. Ask them before using it.'}</p>
          <h2>Limitations</h2>
          <p>{m.limitations || 'The publisher has listed no limitations. That does not mean there are none: check it on your own images first.'}</p>
          <h2 className="h3">Licence</h2>
          {card.licence ? (
            card.licence.length > 160 ? (
              <details className="licence-block"><summary>{card.licence.slice(0, 120)}…</summary><p>{card.licence}</p></details>
            ) : <p>{card.licence}</p>
          ) : <p className="muted">No licence terms were recorded for its starting weights.</p>}
        </section>
        <section className="card" aria-labelledby="card-title">
          <h2 id="card-title">Model card</h2>
          <dl className="facts">
            {card.positive_class && (
              <>
                <dt>Finding it looks for</dt>
                <dd data-testid="card-finding">“{card.positive_class}”: its “found” numbers count images of this label it recognised</dd>
              </>
            )}
            {outlines && (
              <>
                <dt>What it outlines</dt>
                <dd data-testid="card-outlines">{outlinedClasses(card.labels ?? m.label_names).join(', ') || '—'}</dd>
              </>
            )}
            <dt>How it was trained</dt>
            <dd data-testid="card-training">
              {card.training_data?.total_images != null ? `${card.training_data.total_images} images at ${card.site?.name ?? m.site_name}` : `At ${m.site_name}`}
              {Object.keys(labels).length > 0 && ` (${Object.entries(labels).map(([k, n]) => `${n} ${k}`).join(', ')})`}
              {outlines && card.training_data?.empty_masks != null && `, ${emptyMasksInWords(card.training_data.empty_masks)}`}
              . Images never left the hospital.
            </dd>
            <dt>Started from</dt>
            <dd>{card.lineage?.starting_point ? `${card.lineage.starting_point.name} (${SOURCE_NAMES[card.lineage.starting_point.source] ?? card.lineage.starting_point.source})` : card.lineage?.parent ? 'A model from another hospital (see family tree)' : '—'}</dd>
            <dt>Network</dt>
            <dd>{card.architecture ?? m.architecture}{card.input?.size ? `, ${outlines ? readsInWords(card.input.mode, card.input.size) : `looks at images resized to ${card.input.size}×${card.input.size} pixels`}` : ''}</dd>
            {card.input?.preprocessing && (<><dt>Image preparation</dt><dd className="small">{card.input.preprocessing}</dd></>)}
            {card.lineage?.weights_sha256 && (<><dt>Fingerprint of the weights</dt><dd><code className="small">{card.lineage.weights_sha256.slice(0, 16)}…</code></dd></>)}
          </dl>
        </section>
      </div>

      {outlines && (ownCheck.dice != null ? (
        <SegmentationResult evaluation={ownCheck} title="How well it outlines" caption={publisherCheckInWords(ownCheck)} />
      ) : (
        <p className="notice notice-info" data-testid="no-dice">This model card does not record how well the model outlines (its Dice). Check it on your own images before use.</p>
      ))}
      <section className="card" aria-labelledby="results-title">
        <h2 id="results-title">How it worked at each hospital</h2>
        <p className="small muted">
          Measured on images the model never learned from. Each hospital shares only these totals. “Averaged over” says which views of
          each image the model looked at and averaged; numbers averaged another way are kept in a table of their own.
        </p>
        {outlines
          ? <OutlineChecks rows={m.evaluations} />
          : <SiteResultsTable rows={m.evaluations} labels={m.label_names} />}
      </section>

      {usable && site && <EvaluateAtMySite key={site.site.slug} model={m} site={site} onShared={model.reload} />}

      <section className="card" aria-labelledby="lineage-h">
        <h2 id="lineage-h">Family tree</h2>
        <LineageGraph lineage={m.lineage} title={m.name} subtitle={`${m.site}${m.latest_version ? ` · version ${m.latest_version.number}` : ''}`} />
      </section>

      <section className="card" aria-labelledby="versions-title">
        <h2 id="versions-title">Versions</h2>
        <div className="table-wrap">
        <table className="table">
          <thead>
            <tr>
              <th scope="col">Version</th><th scope="col">State</th>{!outlines && <th scope="col">Separates cases (AUC)</th>}<th scope="col">Published</th>
              {manages && <th scope="col">Manage</th>}
            </tr>
          </thead>
          <tbody>
            {m.versions.map((v) => (
              <tr key={v.id}>
                <td>{v.number}</td>
                <td>{v.status_text}{v.status_reason ? `: ${v.status_reason}` : ''}</td>
                {!outlines && <td>{v.auc != null ? v.auc.toFixed(2) : '—'}</td>}
                <td>{v.published_at ? new Date(v.published_at).toLocaleDateString() : '—'}</td>
                {manages && <td>{v.can_manage ? <VersionActions version={v} onChanged={model.reload} /> : <span className="muted">—</span>}</td>}
              </tr>
            ))}
          </tbody>
        </table>
        </div>
        {manages && (
          <p className="small muted">
            {publisherAdmin
              ? `As an administrator of ${m.site_name} you can mark a version as outdated or withdraw it.`
              : 'You can mark the versions you published as outdated or withdraw them.'}
          </p>
        )}
      </section>

      {usable && site && <DownloadPanel key={`download-${site.site.slug}`} model={m} site={site} />}
    </section>
  );
}

/** "12 of them with nothing to outline (an empty mask)". */
function emptyMasksInWords(n: number): string {
  if (n === 0) return 'every one with something outlined';
  return `${n} of them with nothing to outline (an empty mask)`;
}

/** How an outlining model reads an image (its card's `input.mode`). */
function readsInWords(mode: string | undefined, size: number): string {
  return mode === 'patch'
    ? `reads images at their own resolution in overlapping ${size}-pixel squares`
    : `reads each image whole, fitted into ${size}×${size} pixels`;
}

/** Where the publisher's own Dice was measured, and how each image's answers were averaged. */
function publisherCheckInWords(metrics: Evaluation & { tta?: unknown; evaluated_on?: string }): string {
  const where = (metrics.evaluated_on ?? 'test').startsWith('validation')
    ? 'Measured by the publishing hospital on its tuning images (its final-check set was empty), which the model did not learn from directly.'
    : 'Measured by the publishing hospital on its own final-check images, which the model never learned from.';
  return metrics.tta != null ? `${where} ${ttaInWords(metrics.tta).sentence}` : where;
}

/**
 * An outlining model's checks by hospital. The hub lists the hospitals that shared a check, but not
 * yet their Dice: say who checked it, never a table of empty cells.
 */
function OutlineChecks({ rows }: { rows: SiteResult[] }) {
  const shared = rows.filter((r) => r.source === 'site_evaluation');
  return (
    <div data-testid="outline-checks">
      <p className="small">The publishing hospital’s own result is the card above.</p>
      {shared.length > 0 ? (
        <ul className="small">
          {shared.map((r, i) => (
            <li key={`${r.site}-${r.version}-${i}`}>
              {r.site_name || r.site} checked version {r.version} on its own images{r.at ? ` (${new Date(r.at).toLocaleDateString()})` : ''} and shared it.
            </li>
          ))}
        </ul>
      ) : (
        <p className="small muted">No other hospital has shared a check of this model yet.</p>
      )}
      <p className="small muted" data-testid="no-outline-results">Other hospitals’ Dice is not shown here yet. Check it on your own images below.</p>
    </div>
  );
}

/** Rows about one finding, averaged one way (`tta` null: not recorded). */
interface ResultGroup {
  finding: string;
  tta: TtaPolicy | null;
  /** About the latest version's finding, and averaged like its own check. */
  sameFinding: boolean;
  sameTta: boolean;
  rows: SiteResult[];
}

/**
 * Rows grouped by the finding their sensitivity is about, then by what their probabilities were
 * averaged over: the hub sends them with the latest version's finding and way first. A row not
 * recorded never joins the rows averaged like the latest version.
 */
function groupSiteResults(rows: SiteResult[]): ResultGroup[] {
  const groups: ResultGroup[] = [];
  for (const row of rows) {
    const finding = row.positive_class ?? '';
    const tta = ttaPolicy(row.tta);
    const group = groups.find((g) => g.finding === finding && g.tta === tta);
    if (group) group.rows.push(row);
    else groups.push({ finding, tta, sameFinding: row.same_finding, sameTta: row.same_tta && tta !== null, rows: [row] });
  }
  // The latest version's finding first, each finding's groups together, and within one the latest
  // version's way first and "not recorded" last (a stable sort keeps the hub's order otherwise).
  const findings = groups.map((g) => g.finding);
  const rank = (g: ResultGroup) => [g.sameFinding ? 0 : 1, findings.indexOf(g.finding), g.sameTta ? 0 : g.tta ? 1 : 2];
  return groups.sort((a, b) => {
    const [x, y] = [rank(a), rank(b)];
    return x[0] - y[0] || x[1] - y[1] || x[2] - y[2];
  });
}

/**
 * Results that measure different things, or were computed differently, never share a table: a
 * model that looks for another finding, or numbers averaged over other views of each image, get a
 * table of their own under a heading that says why, never a row in the same columns.
 */
export function SiteResultsTable({ rows, labels = [] }: { rows: SiteResult[]; labels?: string[] }) {
  if (!rows.length) return <p className="muted">No results yet.</p>;
  const groups = groupSiteResults(rows);
  if (groups.length === 1) return <FindingTable finding={groups[0].finding} rows={rows} labels={labels} />;
  const findingsDiffer = new Set(groups.map((g) => g.finding)).size > 1;
  const ttasDiffer = new Set(groups.map((g) => g.tta)).size > 1;
  return (
    <>
      {groups.map((group, i) => {
        const otherFinding = group.finding !== groups[0].finding;
        const aboutFinding = `${otherFinding ? 'Other versions' : 'Versions'} that look for ${group.finding ? `“${group.finding}”` : 'several labels'}`;
        const averaged = ttaInWords(group.tta).heading;
        const heading = !findingsDiffer ? averaged : ttasDiffer ? `${aboutFinding}, ${averaged.charAt(0).toLowerCase()}${averaged.slice(1)}` : aboutFinding;
        const above = i === 1 ? 'the table above' : 'the tables above';
        return (
          <div key={`${group.finding}\u0000${group.tta ?? ''}`} data-testid="site-results-group">
            <h3 className="h4">{heading}</h3>
            {i > 0 && (
              <p className="small warning-text">
                {otherFinding
                  ? `These versions look for a different finding, so their “found” and “cleared” numbers measure something else: do not compare them with ${above}.`
                  : group.tta
                    ? `These numbers were averaged another way, so do not compare them with ${above}.`
                    : `How these numbers were averaged was not recorded, so do not compare them with ${above}.`}
              </p>
            )}
            <FindingTable finding={group.finding} rows={group.rows} labels={labels} />
          </div>
        );
      })}
    </>
  );
}

function FindingTable({ finding, rows, labels }: { finding: string; rows: SiteResult[]; labels: string[] }) {
  const other = labels.length === 2 ? labels.find((l) => l !== finding) : undefined;
  const terms = findingTerms(finding, other);
  return (
    <div className="table-wrap">
      <table className="table" data-testid="site-results">
        <thead>
          <tr>
            <th scope="col">Hospital</th>
            <th scope="col">Version</th>
            <th scope="col">Checked on</th>
            <th scope="col">Averaged over</th>
            <th scope="col">Images</th>
            <th scope="col">Separates cases (AUC)</th>
            <th scope="col">{terms.sensitivity}</th>
            <th scope="col">{terms.specificity}</th>
            <th scope="col">Right answers</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((r, i) => (
            <tr key={`${r.site}-${r.version}-${i}`}>
              <th scope="row">{r.site_name || r.site}</th>
              <td>{r.version}</td>
              <td>{r.source === 'publisher_test_split' ? 'its own final-check images' : 'that hospital’s images'}</td>
              <td>{ttaInWords(r.tta).words}</td>
              <td>{r.n ?? '—'}</td>
              <td>{r.auc != null ? `${r.auc.toFixed(2)} (${aucGrade(r.auc)})` : '—'}</td>
              <td>{r.sensitivity != null ? percent(r.sensitivity) : '—'}</td>
              <td>{r.specificity != null ? percent(r.specificity) : '—'}</td>
              <td>{r.accuracy != null ? percent(r.accuracy) : '—'}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
