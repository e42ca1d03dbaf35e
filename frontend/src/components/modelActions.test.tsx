import { afterEach, describe, expect, it, vi } from 'vitest';
import { cleanup, fireEvent, render, screen, waitFor, within } from '@testing-library/react';
import type { Me, Membership, PublishedModelDetail, PublishedVersion, Role, SiteEvaluation } from '../api/types';
import { ModelPage } from '../pages/Marketplace';
import { TrainPage } from '../pages/Train';
import { ShareChoice } from './ModelActions';
import { fakeHub, refusal, type Routes } from '../testing/fakeHub';

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
  window.history.replaceState(null, '', '/');
});

const ANNE = { slug: 'st-anne', name: 'St Anne’s Hospital', agent_last_seen_at: null };
const BOROUGH = { slug: 'borough', name: 'Borough General', agent_last_seen_at: null };
const SCHEMA = { schemaPaths: ['/marketplace/models/', '/jobs/'] };

function me(site: typeof ANNE, role: Role): Me {
  return { username: `${site.slug}-${role}`, display_name: '', is_token: false, is_operator: false, memberships: [{ site, role }] };
}

function version(extra: Partial<PublishedVersion> = {}): PublishedVersion {
  return {
    id: 11, published_model: 4, model_name: 'Mass finder', site: 'st-anne', number: 1, status: 'published', status_text: 'Published',
    status_reason: '', attempt: 1, model_version: null, weights_sha256: 'ab'.repeat(32), manifest_sha256: 'cd'.repeat(32), weights_bytes: 1024, auc: 0.82,
    card: { labels: ['mass', 'normal'], site: { slug: 'st-anne', name: ANNE.name } }, error_code: '', message: '',
    created_at: '', published_at: '2026-01-02T10:00:00Z', status_changed_at: null, can_manage: false, ...extra,
  };
}

function model(extra: Partial<PublishedModelDetail> = {}): PublishedModelDetail {
  return {
    id: 4, name: 'Mass finder', site: 'st-anne', site_name: ANNE.name, modality: 'xray', task: 'classification', architecture: 'small_cnn',
    label_names: ['mass', 'normal'], visibility: 'named', named_sites: null, intended_use: 'Flags masses.', limitations: 'Test only.',
    latest_version: { id: 11, number: 1, status: 'published', auc: 0.82, dice: null, task: 'classification', positive_class: 'mass', weights_sha256: 'ab'.repeat(32), published_at: '' },
    version_count: 1, created_at: '', updated_at: '', versions: [version()], card: { labels: ['mass', 'normal'] },
    lineage: { parents: [], descendants: [] }, positive_class: 'mass',
    evaluations: [{ site: 'st-anne', site_name: ANNE.name, version: 1, source: 'publisher_test_split', n: 6, auc: 0.82, accuracy: 0.8, balanced_accuracy: 0.8, sensitivity: 0.8, specificity: 0.8, positive_class: 'mass', same_finding: true, tta: 'hflip', same_tta: true, ece: null, at: null }],
    ...extra,
  };
}

const DATASETS = {
  count: 2, next: null, previous: null,
  results: [
    { id: 21, site: 'borough', name: 'Borough mammograms', label_names: ['mass', 'normal'], accepted_count: 20, image_count: 20, rejected_count: 0, pending_count: 0, description: '', modality: 'xray', created_at: '' },
    { id: 22, site: 'borough', name: 'Skin photos', label_names: ['melanoma', 'naevus'], accepted_count: 50, image_count: 50, rejected_count: 0, pending_count: 0, description: '', modality: 'dermatology', created_at: '' },
  ],
};

function evaluation(extra: Partial<SiteEvaluation> = {}): SiteEvaluation {
  return {
    id: 31, site: 'borough', status: 'succeeded', attempt: 1, published_version: 11, published_model: 4, dataset: 21,
    metrics: { n: 20, label_names: ['mass', 'normal'], auc: 0.74, accuracy: 0.7, sensitivity: 0.6, specificity: 0.8, confusion_matrix: [[8, 2], [4, 6]] },
    shared: false, shared_at: null, error_code: '', message: '', created_at: '', finished_at: '2026-01-03T10:00:00Z', ...extra,
  };
}

function openModel(who: Me, routes: Routes = {}) {
  const hub = fakeHub({
    'GET /marketplace/models/4/': model(),
    'GET /datasets/': DATASETS,
    'GET /marketplace/evaluations/': { count: 0, next: null, previous: null, results: [] },
    ...routes,
  }, SCHEMA);
  render(<ModelPage me={who} params={{ id: '4' }} />);
  return hub;
}

describe('evaluate at my site', () => {
  it('offers only datasets with a label the model knows, runs the check, and keeps the result private until shared', async () => {
    let polls = 0;
    const hub = openModel(me(BOROUGH, 'clinician'), {
      'POST /marketplace/evaluations/': evaluation({ status: 'queued', metrics: {} }),
      'GET /marketplace/evaluations/31/': () => (++polls > 1 ? evaluation() : evaluation({ status: 'running', metrics: {} })),
      'POST /marketplace/evaluations/31/share/': evaluation({ shared: true, shared_at: '2026-01-03T10:05:00Z' }),
    });
    const card = await screen.findByTestId('evaluate-here');
    const select = within(card).getByLabelText('Labelled images at Borough General') as HTMLSelectElement;
    await within(select).findByRole('option', { name: /Borough mammograms/ });
    const options = within(select).getAllByRole('option').map((o) => o.textContent);
    expect(options.some((o) => o?.includes('Borough mammograms'))).toBe(true);
    expect(options.some((o) => o?.includes('Skin photos'))).toBe(false); // no label the model knows
    fireEvent.change(select, { target: { value: '21' } });
    fireEvent.click(within(card).getByRole('button', { name: 'Check the model on these images' }));
    await waitFor(() => expect(hub.sent('POST', '/marketplace/evaluations/')).toHaveLength(1));
    expect(hub.sent('POST', '/marketplace/evaluations/')[0].body).toEqual({ published_version: 11, dataset: 21 });
    // The earlier check of this model here is found by the hub, not by filtering a page of all checks.
    expect(hub.sent('GET', '/marketplace/evaluations/?')[0].query).toEqual({ published_model: '4', site: 'borough', page_size: '1' });

    const result = await screen.findByTestId('evaluation-result', {}, { timeout: 6000 });
    expect(result.textContent).toMatch(/Out of 100 patients with “normal”, the model finds 60/);
    expect(result.textContent).toMatch(/Measured on 20 images of “Borough mammograms”/);
    expect(within(result).getByTestId('share-state').textContent).toMatch(/Private: only Borough General sees these results/);
    expect(hub.sent('POST', '/marketplace/evaluations/31/share/')).toHaveLength(0); // nothing shared without asking

    const reloadsBefore = hub.sent('GET', '/marketplace/models/4/').length;
    fireEvent.click(within(result).getByRole('button', { name: 'Share with the network' }));
    await waitFor(() => expect(within(result).getByTestId('share-state').textContent).toMatch(/^Shared/));
    expect(hub.sent('POST', '/marketplace/evaluations/31/share/')[0].body).toEqual({ shared: true });
    await waitFor(() => expect(hub.sent('GET', '/marketplace/models/4/').length).toBeGreaterThan(reloadsBefore)); // the table refreshes
    expect(within(result).getByRole('button', { name: 'Make them private again' })).toBeTruthy();
  }, 10_000);

  it('says what went wrong and what to do when the site could not run the check', async () => {
    openModel(me(BOROUGH, 'clinician'), {
      'GET /marketplace/evaluations/': { count: 1, next: null, previous: null, results: [evaluation({ status: 'failed', message: 'The site could not read 3 images.' })] },
    });
    const alert = await screen.findByText(/The check could not run: The site could not read 3 images\./);
    expect(alert.textContent).toMatch(/Try again; if it keeps failing, tell your site administrator/);
  });

  it('says in plain words how the numbers of the check were averaged', async () => {
    const checked = (metrics: Partial<SiteEvaluation['metrics']>) => ({
      'GET /marketplace/evaluations/': { count: 1, next: null, previous: null, results: [evaluation({ metrics: { ...evaluation().metrics, ...metrics } })] },
    });
    openModel(me(BOROUGH, 'clinician'), checked({ tta: 'hflip' }));
    expect((await screen.findByTestId('evaluation-result')).textContent).toMatch(/Each image’s answers were averaged over the image and its mirror image\./);
    cleanup();
    openModel(me(BOROUGH, 'clinician'), checked({ tta: 'none' }));
    expect((await screen.findByTestId('evaluation-result')).textContent).toMatch(/Each image was looked at once, as it is: its answers were not averaged\./);
    cleanup();
    openModel(me(BOROUGH, 'clinician'), checked({})); // a check made before the site recorded it
    expect((await screen.findByTestId('evaluation-result')).textContent).toMatch(/How each image’s answers were averaged was not recorded\./);
  });

  it('shows the hub’s refusal to share', async () => {
    fakeHub({ 'POST /marketplace/evaluations/31/share/': refusal(409, 'evaluation_not_finished', 'Only a finished evaluation can be shared.') });
    render(<ShareChoice evaluation={evaluation()} site={{ site: BOROUGH, role: 'clinician' } as Membership} onChange={() => undefined} />);
    fireEvent.click(screen.getByRole('button', { name: 'Share with the network' }));
    expect((await screen.findByRole('alert')).textContent).toMatch(/Only a finished evaluation can be shared/);
  });
});

describe('managing versions', () => {
  // The hub says who may: the version's publisher, or an administrator of the publishing site.
  const manageable = { 'GET /marketplace/models/4/': model({ versions: [version({ can_manage: true })] }) };

  it('is only for those the hub says may manage the version', async () => {
    openModel(me(BOROUGH, 'admin'));
    await screen.findByTestId('evaluate-here');
    expect(screen.queryByRole('button', { name: /Withdraw/ })).toBeNull();
    cleanup();
    openModel(me(ANNE, 'clinician')); // a colleague of the publisher
    await screen.findByTestId('evaluate-here');
    expect(screen.queryByRole('button', { name: /Withdraw/ })).toBeNull();
    expect(screen.queryByRole('button', { name: /Mark as outdated/ })).toBeNull();
    cleanup();
    openModel(me(ANNE, 'clinician'), manageable); // the clinician who published it
    expect(await screen.findByRole('button', { name: 'Mark as outdated: version 1' })).toBeTruthy();
    expect(screen.getByRole('button', { name: 'Withdraw: version 1' })).toBeTruthy();
    expect(screen.getByText(/You can mark the versions you published as outdated or withdraw them/)).toBeTruthy();
  });

  it('says what withdrawing does, sends the reason, and keeps a refusal in the dialog', async () => {
    let tries = 0;
    const hub = openModel(me(ANNE, 'admin'), {
      ...manageable,
      'POST /marketplace/versions/11/withdraw/': () => (++tries === 1 ? refusal(409, 'invalid_status', 'This version is withdrawn; it cannot be withdrawn.') : version({ status: 'withdrawn' })),
    });
    fireEvent.click(await screen.findByRole('button', { name: 'Withdraw: version 1' }));
    const dialog = await screen.findByRole('dialog', { name: 'Withdraw version 1?' });
    expect(dialog.textContent).toMatch(/Nobody can apply, improve, check or download it any more/);
    expect(dialog.textContent).toMatch(/cannot be undone/);
    fireEvent.change(within(dialog).getByLabelText('Reason (shown on the model page)'), { target: { value: 'Trained on mislabelled images.' } });
    fireEvent.click(within(dialog).getByRole('button', { name: 'Withdraw it for everyone' }));
    expect((await within(dialog).findByRole('alert')).textContent).toMatch(/cannot be withdrawn/);
    fireEvent.click(within(dialog).getByRole('button', { name: 'Withdraw it for everyone' }));
    await waitFor(() => expect(screen.queryByRole('dialog')).toBeNull());
    expect(hub.sent('POST', '/marketplace/versions/11/withdraw/').map((c) => c.body)).toEqual([
      { reason: 'Trained on mislabelled images.' }, { reason: 'Trained on mislabelled images.' },
    ]);
  });

  it('offers deprecation for a published version, with what it means', async () => {
    openModel(me(ANNE, 'admin'), manageable);
    fireEvent.click(await screen.findByRole('button', { name: 'Mark as outdated: version 1' }));
    const dialog = await screen.findByRole('dialog', { name: 'Mark version 1 as outdated?' });
    expect(dialog.textContent).toMatch(/It stays usable/);
  });
});

describe('taking a copy and improving the model', () => {
  it('downloads the weights and manifest through short-lived links, saying downloads are recorded', async () => {
    const hub = openModel(me(BOROUGH, 'clinician'), {
      'GET /marketplace/versions/11/download/': {
        weights_url: '/local-storage/w', weights_sha256: 'cd'.repeat(32), manifest_url: '/local-storage/m', manifest_sha256: 'ef'.repeat(32),
        card_url: '/local-storage/c', expires_in: 300,
      },
      'POST /marketplace/versions/11/exports/': { id: 41, site: 'borough', status: 'succeeded', published_version: 11, format: 'onnx', sha256: '', size_bytes: 10, error_code: '', message: '', created_at: '', finished_at: '' },
      'GET /marketplace/exports/41/download/': { onnx_url: '/local-storage/o', sha256: 'ab'.repeat(32), expires_in: 300 },
    });
    const panel = await screen.findByTestId('download');
    expect(panel.textContent).toMatch(/Every download is recorded in the audit log with your name and Borough General; St Anne’s Hospital sees that Borough General downloaded it, not who\./);
    fireEvent.click(within(panel).getByRole('button', { name: /Download version 1/ }));
    const links = await within(panel).findByTestId('download-links');
    expect(hub.sent('GET', '/marketplace/versions/11/download/').map((c) => c.query)).toEqual([{ site: 'borough' }]); // the site I download for
    expect(within(links).getByRole('link', { name: /weights\.safetensors/ }).getAttribute('href')).toBe('/local-storage/w');
    expect(within(links).getByRole('link', { name: /manifest\.json/ }).getAttribute('href')).toBe('/local-storage/m');
    expect(links.textContent).toMatch(/stop working after 5 minutes/);
    fireEvent.click(within(panel).getByRole('button', { name: 'Prepare an ONNX file' }));
    await within(panel).findByTestId('onnx-ready');
    expect(hub.sent('POST', '/marketplace/versions/11/exports/')[0].body).toEqual({ site: 'borough', format: 'onnx' });
    fireEvent.click(within(panel).getByRole('button', { name: 'Get the download link' }));
    expect((await within(panel).findByRole('link', { name: 'Download model.onnx' })).getAttribute('href')).toBe('/local-storage/o');
    expect(hub.sent('GET', '/marketplace/exports/41/download/').map((c) => c.query)).toEqual([{ site: 'borough' }]);
  });

  it('downloads for the hospital I chose to work for when I belong to several', async () => {
    const COTTAGE = { slug: 'cottage', name: 'Cottage Hospital', agent_last_seen_at: null };
    const both: Me = { ...me(BOROUGH, 'clinician'), memberships: [{ site: BOROUGH, role: 'clinician' }, { site: COTTAGE, role: 'clinician' }] };
    const hub = openModel(both, {
      'GET /marketplace/versions/11/download/': {
        weights_url: '/local-storage/w', weights_sha256: 'cd'.repeat(32), manifest_url: '/local-storage/m', manifest_sha256: 'ef'.repeat(32),
        card_url: '/local-storage/c', expires_in: 300,
      },
    });
    fireEvent.change(await screen.findByLabelText('Working for'), { target: { value: 'cottage' } });
    const panel = await screen.findByTestId('download');
    expect(panel.textContent).toMatch(/with your name and Cottage Hospital; St Anne’s Hospital sees that Cottage Hospital downloaded it/);
    fireEvent.click(within(panel).getByRole('button', { name: /Download version 1/ }));
    await within(panel).findByTestId('download-links');
    expect(hub.sent('GET', '/marketplace/versions/11/download/').map((c) => c.query)).toEqual([{ site: 'cottage' }]);
    expect(hub.sent('GET', '/marketplace/evaluations/?').at(-1)!.query).toEqual({ published_model: '4', site: 'cottage', page_size: '1' });
  });

  it('names each hospital in the per-site results from the hub’s rows, without fetching the list of sites', async () => {
    const hub = openModel(me(BOROUGH, 'clinician'), {
      'GET /marketplace/models/4/': model({
        evaluations: [
          ...model().evaluations,
          { site: 'cottage', site_name: 'Cottage Hospital', version: 1, source: 'site_evaluation', n: 30, auc: 0.7, accuracy: 0.7, balanced_accuracy: 0.7, sensitivity: 0.6, specificity: 0.8, positive_class: 'mass', same_finding: true, tta: 'hflip', same_tta: true, ece: null, at: null },
        ],
      }),
    });
    const table = await screen.findByTestId('site-results');
    const rows = within(table).getAllByRole('rowheader').map((cell) => cell.textContent);
    expect(rows).toEqual(['St Anne’s Hospital', 'Cottage Hospital']);
    expect(hub.sent('GET', '/sites/')).toHaveLength(0);
  });

  it('links “Improve this model” to the train page with that version as the starting point, which the train page then sends', async () => {
    openModel(me(BOROUGH, 'clinician'));
    const link = await screen.findByRole('link', { name: 'Improve this model with our images' });
    expect(link.getAttribute('href')).toBe('/sites/borough/train?published_version=11');
    cleanup();

    window.history.replaceState(null, '', '/sites/borough/train?published_version=11');
    const hub = fakeHub({
      'GET /datasets/': { ...DATASETS, count: 1, results: [DATASETS.results[0]] },
      'GET /zoo/': { count: 1, next: null, previous: null, results: [{ id: 1, name: 'EfficientNet-Lite0', architecture: 'efficientnet_lite0', source: 'imagenet', licence: '', description: '', recommended: true }] },
      'GET /marketplace/versions/11/': version(),
      'POST /jobs/': { id: 77 },
    }, SCHEMA);
    render(<TrainPage site={{ site: BOROUGH, role: 'clinician' }} />);
    const shared = await screen.findByRole('radio', { name: /Mass finder, version 1/ });
    expect((shared as HTMLInputElement).checked).toBe(true);
    expect((screen.getByRole('radio', { name: /Quick/ }) as HTMLInputElement).disabled).toBe(true);
    expect(screen.getByTestId('fine-tune-note').textContent).toMatch(/your images never leave it/);
    await waitFor(() => expect((screen.getByLabelText('1. Images to learn from') as HTMLSelectElement).value).toBe('21'));
    fireEvent.click(screen.getByRole('button', { name: 'Start training' }));
    await waitFor(() => expect(hub.sent('POST', '/jobs/')).toHaveLength(1));
    expect(hub.sent('POST', '/jobs/')[0].body).toEqual({ dataset: 21, published_version: 11, recipe: 'full' });
  });
});
