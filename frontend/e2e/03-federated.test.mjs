// End-to-end: training across hospitals in real Chromium, against a running hub with a REAL site agent for
// both demo sites. St Anne's administrator proposes training the tiny network with Borough; Borough's
// administrator accepts with Borough's own images; both sites' agents train their rounds and the hub combines
// them; the job page shows each hospital's consent and answer per round. An outsider sees none of it.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  BASE_URL, agentHasTask, agentSeen, apiCall, checkTablet, expectClean, freshPage, launch, seedDataset, shot, signIn, signedIn, until,
} from './helpers.mjs';

const RUN = Date.now().toString(36);
const NAME = `Mass finder across hospitals ${RUN}`;
const SEED = parseInt(RUN.slice(-5), 36);
let browser;
const state = { jobId: null, accepted: false, datasetId: null };

before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

/** Each hospital's consent as the job page's table shows it: { "St Anne’s Hospital": "Taking part", ... }. */
async function consentBySite(page) {
  const rows = page.getByTestId('federated-sites').locator('tbody tr');
  const out = {};
  for (const row of await rows.all()) {
    const name = (await row.locator('th').innerText()).split('\n')[0].trim();
    out[name] = (await row.locator('td').first().locator('.status').innerText()).trim();
  }
  return out;
}

describe('administrator at St Anne’s: invites Borough to train a model together', () => {
  const who = signedIn(() => browser, 'anne-admin');

  it('starts from the form, with both ways explained in plain words and the advanced settings folded', async () => {
    const { page } = who;
    await until('the St Anne’s site agent', () => agentSeen(page, 'st-anne'), { timeout: 60_000 });
    const datasetId = await seedDataset(page, { site: 'st-anne', name: `Mammography for sharing ${RUN}`, seed: SEED });
    state.datasetId = datasetId;
    await page.getByRole('link', { name: 'Across hospitals' }).click();
    await page.getByRole('heading', { name: 'Training across hospitals', level: 1 }).waitFor();
    assert.match(await page.locator('main').innerText(), /The model travels, the images stay/);
    await page.getByRole('link', { name: 'Start training across hospitals' }).click();
    await page.getByRole('heading', { name: 'Train a model across hospitals', level: 1 }).waitFor();
    assert.match(await page.locator('main').innerText(), /every hospital trains its own copy of the model/);
    assert.equal(await page.getByLabel('Random seed').isVisible(), false, 'advanced settings start folded');

    const dataset = page.getByLabel(/^1\. Images at St Anne/);
    await until('the new dataset to be offered', async () => (await dataset.locator('option').allInnerTexts()).some((o) => o.includes(RUN)), { timeout: 10_000, every: 200 });
    await dataset.selectOption(String(datasetId));
    await page.getByRole('checkbox', { name: 'Borough General' }).check();
    assert.equal(await page.getByRole('checkbox', { name: /St Anne/ }).count(), 0, 'a site does not invite itself');
    await page.getByRole('radio', { name: /All hospitals at once, then combined/ }).check();
    await page.getByRole('radio', { name: /Tiny test network/ }).check();
    await page.getByLabel('Rounds', { exact: true }).fill('2');
    await page.getByLabel('Learning passes per round at each hospital').fill('1');
    await page.getByLabel('Time each hospital has per round').selectOption({ label: '15 minutes' });
    await page.getByText('Advanced settings').click();
    await page.getByLabel('Name', { exact: true }).fill(NAME);
    await expectClean(page);
    await shot(page, '20-federated-new');
    await checkTablet(page, '20-federated-new');
    await page.getByRole('button', { name: 'Invite 1 hospital' }).click();
    const outcome = await Promise.race([
      page.waitForURL(/\/federated\/\d+$/).then(() => 'started'),
      page.getByRole('alert').first().waitFor().then(() => 'refused'),
    ]);
    if (outcome === 'refused') assert.fail(`the hub refused: ${await page.getByRole('alert').first().innerText()}`);
    state.jobId = /\/federated\/(\d+)$/.exec(page.url())[1];

    await page.getByRole('heading', { name: NAME, level: 1 }).waitFor();
    await page.getByTestId('federated-status').getByText('Waiting for hospitals to accept').waitFor();
    assert.deepEqual(await consentBySite(page), { "St Anne's Hospital": 'Taking part', 'Borough General': 'Waiting for its administrator' });
    assert.equal(await page.getByTestId('invitation').count(), 0, 'St Anne’s administrator accepted by proposing it');
    await expectClean(page);
    await shot(page, '21-federated-invited');
    await checkTablet(page, '21-federated-invited');
  });
});

describe('clinician at Borough: sees the invitation but cannot answer it', () => {
  it('is told that an administrator must answer', async (t) => {
    if (!state.jobId) return t.skip('no job was proposed (see above)');
    const page = await freshPage(browser.context);
    try {
      await signIn(page, 'bert-clinician');
      await page.goto(`${BASE_URL}/sites/borough/federated/${state.jobId}`);
      const card = page.getByTestId('invitation');
      await card.waitFor();
      assert.match(await card.innerText(), /Only an administrator of Borough General can accept or decline/);
      assert.equal(await card.getByRole('button').count(), 0);
      const res = await apiCall(page, 'POST', `/federated-jobs/${state.jobId}/accept/`, { site: 'borough' });
      assert.equal(res.status, 403, res.text);
      assert.equal(res.json.error.code, 'admin_required');
    } finally {
      await page.close();
    }
  });
});

describe('administrator at Borough: accepts with Borough’s own images', () => {
  const who = signedIn(() => browser, 'bert-admin');

  it('finds the invitation, chooses a dataset with the same labels and accepts', async (t) => {
    if (!state.jobId) return t.skip('no job was proposed (see above)');
    const { page } = who;
    const datasetId = await seedDataset(page, { site: 'borough', name: `Borough mammography ${RUN}`, seed: SEED + 1 });
    // The navigation says an invitation waits, on whatever page the administrator is (the badge looks again on each page).
    await page.goto(`${BASE_URL}/sites/borough/datasets`);
    const badge = page.getByRole('navigation', { name: 'Main' }).getByTestId('invitation-badge');
    await badge.waitFor({ timeout: 15_000 });
    assert.match(await badge.innerText(), /^\d+/);
    await page.getByRole('link', { name: 'Across hospitals' }).click();
    const invitations = page.getByTestId('invitations');
    await invitations.waitFor();
    await expectClean(page);
    await shot(page, '22-federated-invitations');
    await checkTablet(page, '22-federated-invitations');
    await invitations.getByRole('link', { name: NAME }).click();
    const card = page.getByTestId('invitation');
    await card.waitFor();
    assert.match(await card.innerText(), /The images never leave Borough General/);
    const select = card.getByLabel('Images to train on at Borough General');
    await until('Borough’s dataset to be offered', async () => (await select.locator('option').allInnerTexts()).some((o) => o.includes(RUN)), { timeout: 10_000, every: 200 });
    await select.selectOption(String(datasetId));
    await expectClean(page);
    await shot(page, '23-federated-accept');
    await card.getByRole('button', { name: 'Accept for Borough General' }).click();
    await page.getByTestId('invitation').waitFor({ state: 'detached' });
    assert.deepEqual(await consentBySite(page), { "St Anne's Hospital": 'Taking part', 'Borough General': 'Taking part' });
    assert.match(await page.getByTestId('federated-sites').innerText(), new RegExp(`from “Borough mammography ${RUN}”`), 'Borough sees its own dataset named');
    state.accepted = true;
  });

  it('sees it listed with each hospital’s consent', async (t) => {
    if (!state.accepted) return t.skip('Borough did not accept (see above)');
    const { page } = who;
    await page.getByRole('link', { name: 'Training across hospitals' }).click();
    const row = page.getByTestId('federated-list').getByRole('row', { name: new RegExp(NAME) });
    await row.waitFor();
    const text = await row.innerText();
    assert.match(text, /St Anne's Hospital:\s+Taking part/);
    assert.match(text, /Borough General:\s+Taking part/);
    assert.equal(await page.getByTestId('invitations').count(), 0, 'no invitation left to answer');
    await shot(page, '24-federated-list');
  });
});

describe('clinician at St Anne’s: follows the rounds until the model is ready', () => {
  const who = signedIn(() => browser, 'anne-clinician');

  it('watches each round: who answered, the combined scores and the progress bar', async (t) => {
    if (!state.accepted) return t.skip('Borough did not accept (see above)');
    const { page } = who;
    if (!agentHasTask('pollen.gpu.federated_round')) return t.skip('the site agent cannot train federated rounds yet');
    await page.goto(`${BASE_URL}/sites/st-anne/federated/${state.jobId}`);
    const bar = page.getByRole('progressbar', { name: 'Progress across hospitals' });
    await bar.waitFor();
    // Dataset names stay with their own site: St Anne's sees Borough's image count, never its dataset's name.
    assert.doesNotMatch(await page.locator('main').innerText(), new RegExp(`Borough mammography ${RUN}`));
    await page.locator('.status-job-succeeded, .status-job-failed').first().waitFor({ timeout: 240_000 });
    const failed = await page.getByTestId('federated-status').locator('.status-job-failed').count();
    assert.equal(failed, 0, `the job stopped: ${await page.getByTestId('federated-status').innerText()}`);
    assert.equal(await bar.getAttribute('aria-valuenow'), '100');
    const rounds = page.getByTestId('federated-rounds');
    const rows = await rounds.locator('tbody tr').allInnerTexts();
    assert.match(rows[0], /common starting model was prepared/);
    for (const n of [1, 2]) {
      const row = rows.find((r) => r.startsWith(`${n} of 2`));
      assert.ok(row, `round ${n} is listed`);
      assert.match(row, /St Anne's Hospital: answered/);
      assert.match(row, /Borough General: answered/);
    }
    await page.getByRole('img', { name: 'How the combined model did after each round' }).waitFor();
    await page.getByRole('heading', { name: 'Share this model' }).waitFor(); // the final model can be published
    // Each hospital checks the final model on its held-out images, beside the model it trained alone.
    const heldOut = page.getByTestId('federated-held-out');
    await heldOut.waitFor();
    await page.waitForFunction(
      () => !document.querySelector('[data-testid=federated-held-out]')?.textContent?.includes('Being checked'),
      null,
      { timeout: 120_000 },
    );
    const checks = await heldOut.locator('tbody tr').allInnerTexts();
    assert.equal(checks.length, 2, checks.join('\n'));
    for (const row of checks) {
      assert.match(row, /did better than|did worse than|no clear difference|Too few images kept aside|Could not be checked/, row);
    }
    await expectClean(page);
    await shot(page, '25-federated-finished');
    await checkTablet(page, '25-federated-finished');
  });

  it('publishes the model the hospitals trained together, for St Anne’s only', async (t) => {
    if (!state.accepted) return t.skip('Borough did not accept (see above)');
    const { page } = who;
    const share = page.getByRole('button', { name: 'Publish to the marketplace' });
    if (!(await share.count())) return t.skip('the job did not finish (see above)');
    await share.click();
    const dialog = page.getByRole('dialog', { name: 'Publish this model' });
    assert.equal(await dialog.getByLabel('Name in the marketplace').inputValue(), NAME);
    await dialog.getByLabel('What it is for (intended use)').fill('Test model trained across two hospitals.');
    await dialog.getByRole('button', { name: 'Publish' }).click();
    await page.getByTestId('publish-status').getByText(/version 1 is published/).waitFor({ timeout: 60_000 });
    const link = await page.getByRole('link', { name: 'Open it in the marketplace' }).getAttribute('href');
    const model = await apiCall(page, 'GET', `${link}/`); // the dashboard's /marketplace/models/<id> is the API's path too
    assert.equal(model.status, 200, model.text);
    assert.equal(model.json.visibility, 'site');
  });
  it('stops a proposal that is still waiting for answers, after saying what stopping means', async (t) => {
    if (!state.datasetId) return t.skip('St Anne’s has no dataset (see above)');
    const { page } = who;
    const zoo = await apiCall(page, 'GET', '/zoo/?page_size=100');
    const tiny = (zoo.json.results ?? zoo.json).find((e) => e.architecture === 'small_cnn');
    const proposed = await apiCall(page, 'POST', '/federated-jobs/', {
      name: `To be stopped ${RUN}`, dataset: Number(state.datasetId), sites: ['borough'], starting_point: tiny.id, rounds: 1,
    });
    assert.equal(proposed.status, 201, proposed.text);
    // Proposed by a clinician: St Anne's own administrator has to accept as well.
    assert.equal(proposed.json.participants.find((p) => p.site === 'st-anne').status, 'invited');
    await page.goto(`${BASE_URL}/sites/st-anne/federated/${proposed.json.id}`);
    await page.getByTestId('invitation').getByText(/Only an administrator of St Anne.s Hospital can accept/).waitFor();
    // Only an administrator of the proposing site may stop it for every hospital (issue 16, item 4).
    assert.equal(await page.getByRole('button', { name: 'Stop this training' }).count(), 0, 'a clinician cannot stop it');
    const admin = await freshPage(browser.context);
    t.after(() => admin.close());
    await signIn(admin, 'anne-admin');
    await admin.goto(`${BASE_URL}/sites/st-anne/federated/${proposed.json.id}`);
    await stopByKeyboardThenConfirm(admin, proposed.json.id);
  });
});

/** Stop a proposal as its site's administrator: by keyboard the question opens on its safe choice, and Escape keeps it. */
async function stopByKeyboardThenConfirm(page, jobId) {
  await page.getByRole('button', { name: 'Stop this training' }).focus();
  await page.keyboard.press('Enter');
  const dialog = page.getByRole('dialog', { name: 'Stop training across hospitals?' });
  await dialog.waitFor();
  assert.equal(await page.evaluate(() => document.activeElement?.textContent?.trim()), 'Keep things as they are');
  await page.keyboard.press('Escape');
  await dialog.waitFor({ state: 'detached' });
  await page.getByRole('button', { name: 'Stop this training' }).click();
  assert.match(await dialog.innerText(), /Every hospital stops its current round/);
  await expectClean(page);
  await dialog.getByRole('button', { name: 'Stop it for every hospital' }).click();
  await page.getByTestId('federated-status').locator('.status', { hasText: 'Cancelled' }).waitFor();
  assert.equal(await page.getByRole('button', { name: 'Stop this training' }).count(), 0);
  assert.equal(await page.getByTestId('invitation').count(), 0, 'nothing is left to answer');
  const again = await apiCall(page, 'POST', `/federated-jobs/${jobId}/cancel/`);
  assert.equal(again.status, 409);
  assert.equal(again.json.error.code, 'job_finished');
}

describe('outsider: sees nothing of the training across hospitals', () => {
  it('gets 404 for the job and its actions, an empty list, and no page', async (t) => {
    if (!state.jobId) return t.skip('no job was proposed (see above)');
    const page = await freshPage(browser.context);
    try {
      await signIn(page, 'outsider-admin');
      for (const [method, suffix] of [['GET', ''], ['POST', 'accept/'], ['POST', 'decline/'], ['POST', 'cancel/']]) {
        const res = await apiCall(page, method, `/federated-jobs/${state.jobId}/${suffix}`, method === 'POST' ? {} : undefined);
        assert.equal(res.status, 404, `${method} ${suffix || 'detail'} answered ${res.status}`);
        assert.doesNotMatch(res.text, new RegExp(NAME));
      }
      const list = await apiCall(page, 'GET', '/federated-jobs/?page_size=100');
      assert.equal(list.status, 200);
      assert.doesNotMatch(list.text, new RegExp(RUN));
      await page.goto(`${BASE_URL}/sites/e2e-outside/federated/${state.jobId}`);
      await page.getByTestId('no-access').waitFor();
      assert.equal(await page.getByText(NAME).count(), 0);
      await page.goto(`${BASE_URL}/sites/e2e-outside/federated`);
      await page.getByRole('heading', { name: 'Training across hospitals', level: 1 }).waitFor();
      await page.getByText('Nothing yet').waitFor();
      await shot(page, '26-outsider-federated');
    } finally {
      await page.close();
    }
  });
});
