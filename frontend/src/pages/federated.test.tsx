import { afterEach, describe, expect, it, vi } from 'vitest';
import { cleanup, fireEvent, render, screen, waitFor, within } from '@testing-library/react';
import type { FederatedJob, FederatedRound, Me, Membership, Participant, Role } from '../api/types';
import { SessionProvider } from '../session';
import { FederatedJobDetail, FederatedPage } from './Federated';
import { NewFederatedJob } from './FederatedNew';
import { federatedProgress, siteAnswer } from '../lib/federation';
import { fakeHub, refusal, type Call, type Routes } from '../testing/fakeHub';

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
});

const ANNE = { slug: 'st-anne', name: 'St Anne’s Hospital', agent_last_seen_at: null };
const BOROUGH = { slug: 'borough', name: 'Borough General', agent_last_seen_at: null };

function member(site: typeof ANNE, role: Role): Membership {
  return { site, role };
}

function me(...memberships: Membership[]): Me {
  return { username: 'someone', display_name: '', is_token: false, is_operator: false, memberships };
}

function participant(site: typeof ANNE, extra: Partial<Participant> = {}): Participant {
  return {
    site: site.slug, site_name: site.name, order: 0, status: 'accepted', dataset: null, dataset_name: null, train_count: 14,
    responded_at: null, work_round: null, work_state: 'idle', attempt: 0, progress: {}, ...extra,
  };
}

function round(number: number, extra: Partial<FederatedRound> = {}): FederatedRound {
  return {
    number, status: 'done', expected_sites: ['st-anne', 'borough'], current_site: null, deadline_at: '2026-01-01T10:00:00Z',
    weights_sha256: '', metrics: {}, model_version: null, updates: [], started_at: '2026-01-01T09:00:00Z', finished_at: null, ...extra,
  };
}

function job(extra: Partial<FederatedJob> = {}): FederatedJob {
  return {
    id: 3, name: 'Mass finder across hospitals', initiator_site: 'st-anne', strategy: 'fedavg', task: 'classification', rounds: 3, local_epochs: 1,
    min_participants: 2, round_deadline_seconds: 3600, starting_point: 1, start_version: null, architecture: 'small_cnn',
    input_size: 64, label_names: ['mass', 'normal'], config: {}, status: 'pending', status_text: 'Waiting for sites to accept',
    current_round: 0, final_version: null, error_code: '', message: '', events: [],
    participants: [participant(ANNE), participant(BOROUGH, { order: 1, status: 'invited', train_count: 0 })],
    round_details: [], held_out: [], created_at: '2026-01-01T08:00:00Z', started_at: null, finished_at: null, ...extra,
  };
}

const BOROUGH_DATASETS = {
  count: 2, next: null, previous: null,
  results: [
    { id: 6, site: 'borough', name: 'Chest films', label_names: ['effusion', 'normal'], accepted_count: 30, image_count: 30, rejected_count: 0, pending_count: 0, description: '', modality: 'xray', created_at: '' },
    { id: 7, site: 'borough', name: 'Mammograms 2026', label_names: ['normal', 'mass'], accepted_count: 20, image_count: 20, rejected_count: 0, pending_count: 0, description: '', modality: 'xray', created_at: '' },
  ],
};

function renderDetail(who: Membership, routes: Routes) {
  const hub = fakeHub({ 'GET /auth/me/': me(who), 'GET /datasets/': BOROUGH_DATASETS, ...routes });
  render(
    <SessionProvider>
      <FederatedJobDetail site={who} id="3" />
    </SessionProvider>,
  );
  return hub;
}

describe('the invitation on a cross-site job', () => {
  it('offers accept and decline to an administrator of the invited site, with a dataset of the same labels chosen', async () => {
    renderDetail(member(BOROUGH, 'admin'), { 'GET /federated-jobs/3/': job() });
    const card = await screen.findByTestId('invitation');
    expect(within(card).getByRole('button', { name: 'Accept for Borough General' })).toBeTruthy();
    expect(within(card).getByRole('button', { name: 'Decline' })).toBeTruthy();
    // The dataset with exactly the job's labels (in any order) comes first and is chosen.
    const select = (await within(card).findByLabelText('Images to train on at Borough General')) as HTMLSelectElement;
    await waitFor(() => expect(select.value).toBe('7'));
    expect(card.textContent).toMatch(/images never leave Borough General/);
  });

  it('tells a clinician of the invited site that an administrator must answer, with no buttons', async () => {
    renderDetail(member(BOROUGH, 'clinician'), { 'GET /federated-jobs/3/': job() });
    const card = await screen.findByTestId('invitation');
    expect(card.textContent).toMatch(/Only an administrator of Borough General can accept or decline/);
    expect(within(card).queryByRole('button')).toBeNull();
  });

  it('shows no invitation to the site that started the job, nor once the site has answered', async () => {
    renderDetail(member(ANNE, 'admin'), { 'GET /federated-jobs/3/': job() });
    await screen.findByTestId('federated-sites');
    expect(screen.queryByTestId('invitation')).toBeNull();
    cleanup();
    const accepted = job({ participants: [participant(ANNE), participant(BOROUGH, { status: 'accepted' })], status: 'running' });
    renderDetail(member(BOROUGH, 'admin'), { 'GET /federated-jobs/3/': accepted });
    await screen.findByTestId('federated-sites');
    expect(screen.queryByRole('button', { name: /Accept/ })).toBeNull();
  });

  it('keeps the dataset a clinician proposed when their own administrator answers', async () => {
    const proposedByClinician = job({ participants: [participant(ANNE, { status: 'invited', dataset: 6 }), participant(BOROUGH, { order: 1, status: 'invited' })] });
    renderDetail(member(ANNE, 'admin'), { 'GET /federated-jobs/3/': proposedByClinician });
    const select = (await screen.findByLabelText('Images to train on at St Anne’s Hospital')) as HTMLSelectElement;
    await within(select).findByRole('option', { name: /Chest films/ });
    expect(select.value).toBe('6'); // not the first dataset with matching labels (7)
  });

  it('sends the site and the chosen dataset, then shows every hospital taking part', async () => {
    const started = job({
      status: 'running', status_text: 'Training across sites',
      participants: [participant(ANNE), participant(BOROUGH, { status: 'accepted', dataset: 7, dataset_name: 'Mammograms 2026', train_count: 14 })],
    });
    const hub = renderDetail(member(BOROUGH, 'admin'), { 'GET /federated-jobs/3/': job(), 'POST /federated-jobs/3/accept/': started });
    const accept = await screen.findByRole('button', { name: 'Accept for Borough General' });
    await waitFor(() => expect((screen.getByLabelText('Images to train on at Borough General') as HTMLSelectElement).value).toBe('7'));
    fireEvent.click(accept);
    await screen.findByText('Training across hospitals', { selector: '.status' });
    expect(hub.sent('POST', '/federated-jobs/3/accept/')[0].body).toEqual({ site: 'borough', dataset: 7 });
    const sites = screen.getByTestId('federated-sites');
    expect(within(sites).getAllByText('Taking part')).toHaveLength(2);
    expect(sites.textContent).toMatch(/from “Mammograms 2026”/);
    expect(screen.queryByTestId('invitation')).toBeNull();
  });

  it('keeps the hub’s reason under the dataset when it refuses, and says what to do', async () => {
    const message = "The labels of borough's dataset 'Chest films' (effusion, normal) differ from the job's (mass, normal). Every site must train on the same labels; choose a dataset with exactly these labels.";
    renderDetail(member(BOROUGH, 'admin'), {
      'GET /federated-jobs/3/': job(),
      'POST /federated-jobs/3/accept/': refusal(400, 'label_mismatch', message, { dataset: message }),
    });
    const select = await screen.findByLabelText('Images to train on at Borough General');
    fireEvent.change(select, { target: { value: '6' } });
    fireEvent.click(screen.getByRole('button', { name: 'Accept for Borough General' }));
    expect(await screen.findByText(message)).toBeTruthy();
    expect(screen.getByTestId('invitation')).toBeTruthy(); // still open, to choose another dataset
  });

  it('asks before declining and says what declining means', async () => {
    const hub = renderDetail(member(BOROUGH, 'admin'), {
      'GET /federated-jobs/3/': job(),
      'POST /federated-jobs/3/decline/': job({ status: 'failed', message: 'Only 1 site(s) accepted; this job needs at least 2.', participants: [participant(ANNE), participant(BOROUGH, { status: 'declined' })] }),
    });
    fireEvent.click(await screen.findByRole('button', { name: 'Decline' }));
    const dialog = await screen.findByRole('dialog', { name: 'Decline for Borough General?' });
    expect(dialog.textContent).toMatch(/takes no part and none of its images are used/);
    expect(hub.sent('POST', '/federated-jobs/3/decline/')).toHaveLength(0);
    fireEvent.click(within(dialog).getByRole('button', { name: 'Decline' }));
    const alert = await screen.findByText(/needs at least 2/);
    expect(alert.textContent).toMatch(/Check that each hospital’s site agent is running/);
    expect(hub.sent('POST', '/federated-jobs/3/decline/')[0].body).toEqual({ site: 'borough' });
  });
});

describe('rounds of a cross-site job', () => {
  const running = job({
    status: 'running', current_round: 2, rounds: 3,
    participants: [
      participant(ANNE, { work_round: 2, work_state: 'training', progress: { phase: 'training', fraction: 0.5 } }),
      participant(BOROUGH, { status: 'accepted', work_round: 2, work_state: 'sent' }),
    ],
    round_details: [
      round(0, { expected_sites: ['st-anne'] }),
      round(1, {
        metrics: { sites: 2, training_images: 28, val_auc: 0.81, val_accuracy: 0.75 },
        updates: [
          { site: 'st-anne', status: 'accepted', sample_count: 14, metrics: {}, code: '', reason: '', created_at: '' },
          { site: 'borough', status: 'accepted', sample_count: 14, metrics: {}, code: '', reason: '', created_at: '' },
        ],
      }),
      round(2, { status: 'running', updates: [{ site: 'borough', status: 'accepted', sample_count: 14, metrics: {}, code: '', reason: '', created_at: '' }] }),
    ],
  });

  it('counts finished rounds plus the share of the current one the sites have done', () => {
    // Round 1 done; in round 2 Borough has answered (1) and St Anne's is half way (0.5): (1 + 0.75) / 3.
    expect(federatedProgress(running)).toBeCloseTo(1.75 / 3);
    expect(federatedProgress({ ...running, status: 'succeeded' })).toBe(1);
    expect(federatedProgress(job())).toBe(0);
  });

  it('says who answered each round, draws the combined scores, and shows the progress bar', async () => {
    renderDetail(member(ANNE, 'clinician'), { 'GET /federated-jobs/3/': running });
    const table = await screen.findByTestId('federated-rounds');
    const rows = within(table).getAllByRole('row');
    expect(rows[1].textContent).toMatch(/common starting model was prepared/);
    expect(rows[2].textContent).toMatch(/St Anne’s Hospital: answered.*Borough General: answered/);
    expect(rows[2].textContent).toMatch(/0\.81/);
    expect(rows[3].textContent).toMatch(/St Anne’s Hospital: training.*Borough General: answered/);
    expect(screen.getByRole('img', { name: 'How the combined model did after each round' })).toBeTruthy();
    const bar = screen.getByRole('progressbar', { name: 'Progress across hospitals' });
    expect(bar.getAttribute('aria-valuenow')).toBe('58');
    expect(screen.getByText('Round 2 of 3')).toBeTruthy();
    // Only the starting site's administrators may stop it for everyone.
    expect(screen.queryByRole('button', { name: 'Stop this training' })).toBeNull();
  });

  it('lets only an administrator of the starting site stop it, after a confirmation', async () => {
    for (const who of [member(BOROUGH, 'clinician'), member(BOROUGH, 'admin'), member(ANNE, 'clinician')]) {
      renderDetail(who, { 'GET /federated-jobs/3/': running });
      await screen.findByTestId('federated-rounds');
      expect(screen.queryByRole('button', { name: 'Stop this training' })).toBeNull();
      cleanup();
    }
    const hub = renderDetail(member(ANNE, 'admin'), {
      'GET /federated-jobs/3/': running,
      'POST /federated-jobs/3/cancel/': { ...running, status: 'cancelled', message: 'Cancelled by anne-admin.' },
    });
    fireEvent.click(await screen.findByRole('button', { name: 'Stop this training' }));
    const dialog = await screen.findByRole('dialog', { name: 'Stop training across hospitals?' });
    expect(document.activeElement).toBe(within(dialog).getByRole('button', { name: 'Keep things as they are' })); // the safe choice first
    fireEvent.click(within(dialog).getByRole('button', { name: 'Keep things as they are' }));
    expect(hub.sent('POST', '/federated-jobs/3/cancel/')).toHaveLength(0);
    fireEvent.click(screen.getByRole('button', { name: 'Stop this training' }));
    fireEvent.click(within(await screen.findByRole('dialog')).getByRole('button', { name: 'Stop it for every hospital' }));
    await screen.findByText('Cancelled', { selector: '.status' });
    expect(hub.sent('POST', '/federated-jobs/3/cancel/')).toHaveLength(1);
    expect(screen.queryByRole('button', { name: 'Stop this training' })).toBeNull();
  });

  it('lets an administrator of a site that accepted withdraw its own part, after a confirmation', async () => {
    renderDetail(member(BOROUGH, 'clinician'), { 'GET /federated-jobs/3/': running });
    await screen.findByTestId('federated-rounds');
    expect(screen.queryByRole('button', { name: 'Withdraw Borough General' })).toBeNull();
    cleanup();
    renderDetail(member(ANNE, 'admin'), { 'GET /federated-jobs/3/': running });
    await screen.findByTestId('federated-rounds');
    expect(screen.queryByRole('button', { name: /^Withdraw/ })).toBeNull(); // the starting site stops it instead
    cleanup();
    const withdrawn = {
      ...running,
      participants: running.participants.map((p) => (p.site === 'borough' ? { ...p, status: 'withdrawn' as const } : p)),
    };
    const hub = renderDetail(member(BOROUGH, 'admin'), {
      'GET /federated-jobs/3/': running,
      'POST /federated-jobs/3/withdraw/': withdrawn,
    });
    fireEvent.click(await screen.findByRole('button', { name: 'Withdraw Borough General' }));
    const dialog = await screen.findByRole('dialog', { name: 'Withdraw Borough General?' });
    expect(dialog.textContent).toMatch(/other hospitals go on without it/);
    fireEvent.click(within(dialog).getByRole('button', { name: 'Withdraw Borough General' }));
    await waitFor(() => expect(screen.queryByRole('button', { name: 'Withdraw Borough General' })).toBeNull());
    expect(hub.sent('POST', '/federated-jobs/3/withdraw/').map((c) => c.body)).toEqual([{ site: 'borough' }]);
    expect(screen.getByText('Withdrew')).toBeTruthy();
  });

  it('tells apart a relay site that has not had its turn from one that missed it', () => {
    const relay = { ...running, strategy: 'relay' as const };
    const r = round(1, { status: 'running', expected_sites: ['st-anne', 'borough', 'site-c'], current_site: 'borough' });
    expect(siteAnswer(relay, r, 'site-c')).toBe('waiting');
    expect(siteAnswer(relay, r, 'st-anne')).toBe('missed');
    expect(siteAnswer(relay, r, 'borough')).toBe('working');
    expect(siteAnswer(relay, { ...r, status: 'done' }, 'borough')).toBe('missed');
  });
});

describe('the list of cross-site jobs', () => {
  it('asks the hub for this site’s jobs only, and puts invitations waiting for it first, with who must answer', async () => {
    const other = job({ id: 4, name: 'Only at other sites', participants: [participant(ANNE)] });
    // Like the hub: ?site= lists (and counts) only the jobs that site takes part in.
    const hub = fakeHub({
      'GET /auth/me/': me(member(BOROUGH, 'clinician'), member(ANNE, 'clinician')),
      'GET /federated-jobs/': (call: Call) => {
        const results = [job(), other].filter((j) => !call.query.site || j.participants.some((p) => p.site === call.query.site));
        return { count: results.length, next: null, previous: null, results };
      },
    }, { schemaPaths: ['/federated-jobs/'] });
    render(<SessionProvider><FederatedPage site={member(BOROUGH, 'clinician')} /></SessionProvider>);
    const invitations = await screen.findByTestId('invitations');
    expect(hub.sent('GET', '/federated-jobs/').map((c) => c.query)).toContainEqual({ site: 'borough', page: '1', page_size: '50' });
    expect(hub.sent('GET', '/federated-jobs/').every((c) => c.query.site === 'borough')).toBe(true);
    expect(invitations.textContent).toMatch(/Mass finder across hospitals/);
    expect(invitations.textContent).toMatch(/An administrator of Borough General must accept or decline/);
    const list = screen.getByTestId('federated-list');
    expect(list.textContent).toMatch(/St Anne’s Hospital: Taking part/);
    expect(list.textContent).toMatch(/Borough General: Waiting for its administrator/);
    expect(list.textContent).not.toMatch(/Only at other sites/); // a job Borough takes no part in
  });

  it('pages through the hub’s count for this site, asking for the next page of the same site', async () => {
    const hub = fakeHub({
      'GET /auth/me/': me(member(BOROUGH, 'clinician')),
      'GET /federated-jobs/': (call: Call) => ({ count: 51, next: null, previous: null, results: [job({ id: Number(call.query.page), name: `Job on page ${call.query.page}` })] }),
    }, { schemaPaths: ['/federated-jobs/'] });
    render(<SessionProvider><FederatedPage site={member(BOROUGH, 'clinician')} /></SessionProvider>);
    expect((await screen.findByText('Page 1 of 2')).textContent).toBe('Page 1 of 2');
    fireEvent.click(screen.getByRole('button', { name: 'Next' }));
    await within(await screen.findByTestId('federated-list')).findByText('Job on page 2');
    expect(hub.sent('GET', '/federated-jobs/').at(-1)!.query).toEqual({ site: 'borough', page: '2', page_size: '50' });
  });
});

describe('starting a cross-site job', () => {
  const routes: Routes = {
    'GET /auth/me/': me(member(ANNE, 'clinician')),
    'GET /datasets/': { count: 1, next: null, previous: null, results: [{ ...BOROUGH_DATASETS.results[1], id: 2, site: 'st-anne', name: 'Mammography' }] },
    'GET /sites/': { count: 2, next: null, previous: null, results: [ANNE, BOROUGH] },
    'GET /zoo/': { count: 2, next: null, previous: null, results: [
      { id: 1, name: 'EfficientNet-Lite0', architecture: 'efficientnet_lite0', source: 'imagenet', licence: '', description: '', recommended: true },
      { id: 5, name: 'Tiny test network', architecture: 'small_cnn', source: 'random', licence: '', description: '', recommended: false },
    ] },
    'GET /models/': { count: 0, next: null, previous: null, results: [] },
  };

  it('explains both ways in plain words, folds the advanced settings, and sends what was chosen', async () => {
    const hub = fakeHub({ ...routes, 'POST /federated-jobs/': job({ id: 9 }) });
    render(<SessionProvider><NewFederatedJob site={member(ANNE, 'clinician')} /></SessionProvider>);
    expect(await screen.findByText(/every hospital trains its own copy of the model/)).toBeTruthy();
    expect(screen.getByText('Method: Federated averaging (FedAvg)')).toBeTruthy();
    expect(screen.getByText(/An administrator of St Anne’s Hospital must also accept/)).toBeTruthy();
    const advanced = screen.getByText('Advanced settings').closest('details')!;
    expect(advanced.open).toBe(false);
    const invite = screen.getByRole('button', { name: /Invite/ }) as HTMLButtonElement;
    await waitFor(() => expect((screen.getByLabelText('1. Images at St Anne’s Hospital') as HTMLSelectElement).value).toBe('2'));
    expect(invite.disabled).toBe(true); // nobody invited yet
    fireEvent.click(await screen.findByRole('checkbox', { name: 'Borough General' }));
    expect(screen.queryByRole('checkbox', { name: 'St Anne’s Hospital' })).toBeNull(); // not yourself
    fireEvent.click(screen.getByRole('radio', { name: /From one hospital to the next/ }));
    fireEvent.click(await screen.findByRole('radio', { name: /Tiny test network/ }));
    fireEvent.change(screen.getByLabelText('Rounds'), { target: { value: '2' } });
    fireEvent.change(screen.getByLabelText('Time each hospital has per round'), { target: { value: String(15 * 60) } });
    fireEvent.click(screen.getByRole('button', { name: 'Invite 1 hospital' }));
    await waitFor(() => expect(hub.sent('POST', '/federated-jobs/')).toHaveLength(1));
    expect(hub.sent('POST', '/federated-jobs/')[0].body).toEqual({
      dataset: 2, sites: ['borough'], strategy: 'relay', starting_point: 5, rounds: 2, local_epochs: 1,
      round_deadline_seconds: 900, min_participants: 2,
    });
    await waitFor(() => expect(window.location.pathname).toBe('/sites/st-anne/federated/9'));
  });

  it('offers the starting points and own models of the chosen dataset’s task only', async () => {
    const zoo = (call: Call) => ({
      count: 1, next: null, previous: null,
      results: call.query.task === 'segmentation'
        ? [{ id: 8, name: 'Outlining model (U-Net)', architecture: 'unet_efficientnet_lite0', task: 'segmentation', source: 'imagenet', licence: '', description: '', recommended: true }]
        : [{ id: 1, name: 'EfficientNet-Lite0', architecture: 'efficientnet_lite0', task: 'classification', source: 'imagenet', licence: '', description: '', recommended: true }],
    });
    const own = (id: number, name: string, task: string, label_names: string[]) => ({ id, site: 'st-anne', name, task, label_names });
    const hub = fakeHub({
      ...routes,
      'GET /datasets/': { count: 2, next: null, previous: null, results: [
        { ...BOROUGH_DATASETS.results[1], id: 2, site: 'st-anne', name: 'Mammography', task: 'classification' },
        { ...BOROUGH_DATASETS.results[1], id: 3, site: 'st-anne', name: 'Breast ultrasound', task: 'segmentation', label_names: [], mask_classes: ['lesion'] },
      ] },
      'GET /zoo/': zoo,
      'GET /models/': { count: 2, next: null, previous: null, results: [
        own(51, 'Mass finder', 'classification', ['mass', 'normal']), own(52, 'Lesion outliner', 'segmentation', ['background', 'lesion']),
      ] },
      'POST /federated-jobs/': job({ id: 9 }),
    });
    render(<SessionProvider><NewFederatedJob site={member(ANNE, 'clinician')} /></SessionProvider>);
    const select = await screen.findByLabelText('1. Images at St Anne’s Hospital');
    expect((await within(select).findByRole('option', { name: /Breast ultrasound/ })).textContent).toMatch(/masks of lesion\)$/);
    expect(await screen.findByRole('radio', { name: /EfficientNet-Lite0/ })).toBeTruthy();
    fireEvent.change(select, { target: { value: '3' } });
    const unet = await screen.findByRole('radio', { name: /Outlining model \(U-Net\)/ });
    await waitFor(() => expect((unet as HTMLInputElement).checked).toBe(true));
    expect(screen.queryByRole('radio', { name: /EfficientNet-Lite0/ })).toBeNull();
    expect(hub.sent('GET', '/zoo/').map((c) => c.query.task)).toEqual(['classification', 'segmentation']);
    expect(screen.getByText('Every other hospital trains on its own images with masks of the same classes: lesion.')).toBeTruthy();
    fireEvent.click(screen.getByRole('radio', { name: /A model already trained at St Anne’s Hospital/ }));
    expect(within(screen.getByLabelText('Model')).getAllByRole('option').map((o) => o.textContent)).toEqual(['Choose a model…', 'Lesion outliner (outlines lesion)']);
  });

  it('shows the hub’s refusal and opens the advanced settings when one of them is the reason', async () => {
    // The hub names a refused setting as the request nests it, under "advanced" (like the train page's).
    fakeHub({ ...routes, 'POST /federated-jobs/': refusal(400, 'invalid', "'learning_rate' must be a number between 1e-06 and 1.0.", { advanced: { learning_rate: 'Between 1e-06 and 1.0.' } }) });
    render(<SessionProvider><NewFederatedJob site={member(ANNE, 'clinician')} /></SessionProvider>);
    fireEvent.click(await screen.findByRole('checkbox', { name: 'Borough General' }));
    await waitFor(() => expect((screen.getByLabelText('1. Images at St Anne’s Hospital') as HTMLSelectElement).value).toBe('2'));
    fireEvent.change(screen.getByLabelText('Learning speed (learning rate)'), { target: { value: '5' } });
    fireEvent.click(screen.getByRole('button', { name: 'Invite 1 hospital' }));
    expect((await screen.findByRole('alert')).textContent).toMatch(/must be a number between/);
    expect(screen.getByText('Between 1e-06 and 1.0.')).toBeTruthy();
    expect(screen.getByText('Advanced settings').closest('details')!.open).toBe(true);
  });

  it('shows a reason about the chosen images once, next to them, and says where to look', async () => {
    const message = "The label 'mass' has too few images in the validation set (0). Add images of this label from more patients.";
    fakeHub({ ...routes, 'POST /federated-jobs/': refusal(400, 'dataset_not_ready', message, { dataset: [message] }) });
    render(<SessionProvider><NewFederatedJob site={member(ANNE, 'clinician')} /></SessionProvider>);
    fireEvent.click(await screen.findByRole('checkbox', { name: 'Borough General' }));
    await waitFor(() => expect((screen.getByLabelText('1. Images at St Anne’s Hospital') as HTMLSelectElement).value).toBe('2'));
    fireEvent.click(screen.getByRole('button', { name: 'Invite 1 hospital' }));
    expect((await screen.findByRole('alert')).textContent).toMatch(/Nothing was sent\. The reason is shown under the images you chose/);
    expect(screen.getAllByText(/too few images in the validation set/)).toHaveLength(1);
  });
});
