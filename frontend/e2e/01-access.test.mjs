// End-to-end: the dashboard in real Chromium against a running hub with seeded personas
// (tests/e2e/seed_e2e.py): north-admin and north-clinician at e2e-north, south-admin at e2e-south.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { BASE_URL, apiCall, apiHas, freshPage, launch, shot, signIn, unlabelledControls } from './helpers.mjs';

const RUN = Date.now().toString(36);
const DATASET = `Chest X-rays ${RUN}`;
let browser;
let datasetsApi = false;
let datasetId = null;

before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

async function expectClean(page) {
  assert.deepEqual(page.errors, [], 'no uncaught errors in the page');
  assert.deepEqual(await unlabelledControls(page), [], 'every form control has a label');
}

describe('sign in', () => {
  it('refuses a wrong password with a sentence that says what to do', async () => {
    const page = await freshPage(browser.context);
    await page.goto(`${BASE_URL}/sites/e2e-north/datasets`);
    await page.waitForURL(/\/sign-in\?next=/);
    await page.getByLabel('Username').fill('north-clinician');
    await page.getByLabel('Password').fill('not-the-password');
    await page.getByRole('button', { name: 'Sign in' }).click();
    const alert = page.getByRole('alert');
    await alert.waitFor();
    assert.match(await alert.innerText(), /Check both and try again/);
    await expectClean(page);
    await shot(page, '01-sign-in-error');
    await page.close();
  });
});

describe('clinician at north', () => {
  let page;
  before(async () => {
    page = await freshPage(browser.context);
    await signIn(page, 'north-clinician');
    datasetsApi = await apiHas(page, '/datasets/');
  });
  after(async () => page?.close());

  it('lands on the site’s datasets with the site in the switcher', async () => {
    await page.waitForURL(/\/sites\/e2e-north\/datasets$/);
    await page.getByRole('heading', { name: 'Datasets', level: 1 }).waitFor();
    const switcher = page.getByLabel('Site');
    assert.equal(await switcher.inputValue(), 'e2e-north');
    assert.equal(await page.getByRole('link', { name: 'Administration' }).count(), 0, 'clinicians see no admin link');
    await shot(page, '02-datasets-clinician');
  });

  it('creates a dataset and sees it listed', async (t) => {
    if (!datasetsApi) return t.skip('the hub has no /api/v1/datasets/ endpoint yet');
    await page.getByRole('button', { name: 'New dataset' }).click();
    await page.getByLabel('Name').fill(DATASET);
    await page.getByLabel('Kind of images').selectOption('xray');
    await page.getByRole('button', { name: 'Create dataset' }).click();
    await page.getByRole('heading', { name: DATASET, level: 1 }).waitFor();
    datasetId = /\/datasets\/([^/?#]+)/.exec(page.url())[1];
    await page.getByRole('heading', { name: 'Add images' }).waitFor();
    await expectClean(page);
    await shot(page, '03-dataset-page');
    await page.setViewportSize({ width: 820, height: 1180 });
    await shot(page, '03-dataset-page-tablet');
    await page.setViewportSize({ width: 1366, height: 900 });
    await page.getByRole('link', { name: 'Datasets', exact: true }).first().click();
    await page.getByTestId('dataset-list').getByRole('link', { name: DATASET }).waitFor();
    await shot(page, '04-datasets-with-one');
  });

  it('previews a dropped folder with labels from its sub-folders, then uploads or says why not', async (t) => {
    if (!datasetId) return t.skip('no dataset was created');
    const dir = mkdtempSync(path.join(tmpdir(), 'pollen-e2e-images-'));
    // A 1×1 grey PNG: enough for the browser side; the site agent decides what it accepts.
    const png = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAAAAAA6fptVAAAACklEQVR4nGNgAAAAAgABSK+kcQAAAABJRU5ErkJggg==', 'base64');
    for (const label of ['normal', 'pneumonia']) {
      mkdirSync(path.join(dir, 'xrays', label), { recursive: true });
      for (let i = 0; i < 2; i++) writeFileSync(path.join(dir, 'xrays', label, `${label}-${i}.png`), png);
    }
    try {
      await page.goto(`${BASE_URL}/sites/e2e-north/datasets/${datasetId}`);
      await page.getByTestId('folder-input').setInputFiles(path.join(dir, 'xrays'));
      const chips = page.getByRole('list', { name: 'Labels from folders' });
      await chips.waitFor();
      assert.deepEqual(await chips.getByRole('listitem').allInnerTexts(), ['normal: 2', 'pneumonia: 2']);
      await shot(page, '03b-upload-preview');
      const me = await apiCall(page, 'GET', '/auth/me/');
      const agentSeen = me.json.memberships.find((m) => m.site.slug === 'e2e-north')?.site.agent_last_seen_at;
      await page.getByRole('button', { name: 'Upload 4 images' }).click();
      if (agentSeen) {
        await page.getByText('4 of 4 sent').waitFor({ timeout: 30_000 });
        await page.getByRole('progressbar', { name: 'All files' }).waitFor();
      } else {
        // No site agent has ever run here: the hub cannot hand out upload links, and the page says what to do.
        const alert = page.getByRole('alert').filter({ hasText: /agent/i });
        await alert.waitFor({ timeout: 30_000 });
        assert.match(await alert.innerText(), /try again|contact|ask/i);
      }
      await shot(page, '03c-upload-result');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('opens the train page with the one-click default and advanced settings folded away', async (t) => {
    await page.getByRole('link', { name: 'Train a model' }).first().click();
    await page.getByRole('heading', { name: 'Train a model', level: 1 }).waitFor();
    if (!(await apiHas(page, '/jobs/'))) {
      await page.getByTestId('feature-unavailable').waitFor();
      await shot(page, '05-train-unavailable');
      return t.skip('the hub has no /api/v1/jobs/ endpoint yet: the page says training is not available');
    }
    await page.getByRole('radio', { checked: true }).first().waitFor();
    assert.equal(await page.getByLabel('Rounds of learning (epochs)').isVisible(), false);
    await expectClean(page);
    await shot(page, '05-train');
    if (datasetId) {
      // The dataset has no checked images yet, so the hub refuses; the page must say why and what to do.
      await page.getByLabel('1. Images to learn from').selectOption(String(datasetId));
      await page.getByRole('button', { name: 'Start training' }).click();
      const outcome = await Promise.race([
        page.getByRole('alert').first().waitFor().then(() => 'refused'),
        page.waitForURL(/\/jobs\/\d+$/).then(() => 'started'),
      ]);
      if (outcome === 'refused') assert.ok((await page.getByRole('alert').first().innerText()).length > 20);
      await shot(page, outcome === 'refused' ? '05b-train-refused' : '05b-job-started');
    }
  });

  it('is told that administration is for administrators', async () => {
    await page.goto(`${BASE_URL}/sites/e2e-north/admin/tokens`);
    await page.getByRole('heading', { name: 'Administrators only' }).waitFor();
    const res = await apiCall(page, 'POST', '/sites/e2e-north/tokens/', { name: 'sneaky', kind: 'system', role: 'admin' });
    assert.ok([403, 404].includes(res.status), `clinician token create answered ${res.status}`);
    assert.ok(res.json?.error?.message, 'the refusal carries a sentence');
  });
});

describe('administrator at north', () => {
  let page;
  before(async () => {
    page = await freshPage(browser.context);
    await signIn(page, 'north-admin');
  });
  after(async () => page?.close());

  it('sees the members of the site', async () => {
    await page.getByRole('link', { name: 'Administration' }).click();
    const table = page.getByTestId('members-table');
    await table.waitFor();
    assert.match(await table.innerText(), /north-clinician/);
    assert.doesNotMatch(await table.innerText(), /south-admin/);
    await expectClean(page);
    await shot(page, '06-admin-members');
  });

  it('creates an API token that is shown once, then listed by its prefix', async () => {
    await page.getByRole('link', { name: 'API tokens' }).click();
    await page.getByLabel('Name', { exact: true }).fill(`PACS bridge ${RUN}`);
    await page.getByLabel('Used by').selectOption('system');
    await page.getByRole('button', { name: 'Create token' }).click();
    const value = await page.getByTestId('new-token-value').inputValue();
    assert.ok(value.length >= 20, 'the new token is displayed in full');
    const row = page.getByTestId('tokens-table').getByRole('row', { name: new RegExp(`PACS bridge ${RUN}`) });
    await row.waitFor();
    assert.doesNotMatch(await row.innerText(), new RegExp(value), 'the list never shows the whole token');
    await expectClean(page);
    await shot(page, '07-admin-token-created');
    await page.getByRole('button', { name: 'I have stored it' }).click();
    assert.equal(await page.getByTestId('new-token').count(), 0, 'the token disappears once acknowledged');
    // The token works against the API, as a hospital system would use it.
    const me = await page.request.get(`${BASE_URL}/api/v1/auth/me/`, { headers: { Authorization: `Bearer ${value}` } });
    assert.equal(me.status(), 200);
    assert.equal((await me.json()).is_token, true);
  });

  it('finds the token creation in the audit log', async () => {
    await page.getByRole('link', { name: 'Audit log' }).click();
    await page.getByLabel('Action').fill('token.create');
    await page.getByRole('button', { name: 'Show' }).click();
    const table = page.getByTestId('audit-table');
    await table.waitFor();
    await page.waitForFunction(() => !document.querySelector('[data-testid="audit-table"]')?.innerText.match(/\bmember\.add\b/));
    assert.match(await table.innerText(), /token\.create/);
    assert.match(await table.innerText(), /north-admin/);
    await expectClean(page);
    await shot(page, '08-admin-audit');
  });
});

describe('outsider (administrator at south)', () => {
  let page;
  before(async () => {
    page = await freshPage(browser.context);
    await signIn(page, 'south-admin');
  });
  after(async () => page?.close());

  it('only has their own site in the switcher', async () => {
    const options = await page.getByLabel('Site').locator('option').allInnerTexts();
    assert.equal(options.length, 1);
    assert.match(options[0], /South Valley/);
    assert.equal(await page.getByText('North General').count(), 0);
    await shot(page, '09-outsider-datasets');
  });

  it('cannot open north’s pages', async () => {
    for (const route of ['/sites/e2e-north/datasets', '/sites/e2e-north/admin/members', '/sites/e2e-north/admin/tokens', '/sites/e2e-north/admin/audit']) {
      await page.goto(`${BASE_URL}${route}`);
      await page.getByTestId('no-access').waitFor();
      assert.equal(await page.getByText('north-clinician').count(), 0, `${route} leaks nothing`);
    }
    await shot(page, '10-outsider-no-access');
  });

  it('gets 404 from the API for north’s members, tokens and audit', async () => {
    for (const apiPath of ['/sites/e2e-north/', '/sites/e2e-north/members/', '/sites/e2e-north/tokens/', '/sites/e2e-north/audit/']) {
      const res = await apiCall(page, 'GET', apiPath);
      assert.equal(res.status, 404, `${apiPath} answered ${res.status}`);
      assert.doesNotMatch(res.text, /north-clinician|north-admin/);
    }
  });

  it('cannot see north’s private dataset, by list or by address', async (t) => {
    if (!datasetsApi || !datasetId) return t.skip('no dataset was created (the datasets API is not there yet)');
    const direct = await apiCall(page, 'GET', `/datasets/${datasetId}/`);
    assert.equal(direct.status, 404);
    const own = await apiCall(page, 'GET', '/datasets/');
    assert.doesNotMatch(own.text, new RegExp(DATASET));
    const theirs = await apiCall(page, 'GET', '/datasets/?site=e2e-north');
    assert.ok(theirs.status === 404 || (theirs.status === 200 && theirs.json.count === 0), `site filter answered ${theirs.status}`);
    assert.doesNotMatch(theirs.text, new RegExp(DATASET));
    await page.goto(`${BASE_URL}/sites/e2e-south/datasets/${datasetId}`);
    await page.getByTestId('no-access').waitFor();
    assert.equal(await page.getByText(DATASET).count(), 0);
    await shot(page, '11-outsider-dataset-404');
  });
});
