// End-to-end: sign-in, roles and administration in real Chromium against a running hub. Personas come
// from `manage.py seed_demo` (anne-admin, anne-clinician at st-anne; bert-* at borough) and
// tests/e2e/seed_e2e.py (outsider-admin at e2e-outside, a site that shares nothing).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { BASE_URL, apiCall, checkTablet, expectClean, freshPage, launch, shot, signIn } from './helpers.mjs';

const RUN = Date.now().toString(36);
let browser;

before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

describe('sign in', () => {
  it('refuses a wrong password with a sentence that says what to do', async () => {
    const page = await freshPage(browser.context);
    await page.goto(`${BASE_URL}/sites/st-anne/datasets`);
    await page.waitForURL(/\/sign-in\?next=/);
    await page.getByLabel('Username').fill('anne-clinician');
    await page.getByLabel('Password').fill('not-the-password');
    await page.getByRole('button', { name: 'Sign in' }).click();
    const alert = page.getByRole('alert');
    await alert.waitFor();
    assert.match(await alert.innerText(), /Check both and try again/);
    await expectClean(page);
    await shot(page, '01-sign-in-error');
    await checkTablet(page, '01-sign-in-error');
    await page.close();
  });
});

describe('clinician at St Anne’s', () => {
  let page;
  before(async () => {
    page = await freshPage(browser.context);
    await signIn(page, 'anne-clinician');
  });
  after(async () => page?.close());

  it('lands on the site’s datasets with the site in the switcher', async () => {
    await page.waitForURL(/\/sites\/st-anne\/datasets$/);
    await page.getByRole('heading', { name: 'Datasets', level: 1 }).waitFor();
    const switcher = page.getByLabel('Site');
    assert.equal(await switcher.inputValue(), 'st-anne');
    assert.equal(await page.getByRole('link', { name: 'Administration' }).count(), 0, 'clinicians see no admin link');
    await expectClean(page);
    await shot(page, '02-datasets-clinician');
    await checkTablet(page, '02-datasets-clinician');
  });

  it('is told that administration is for administrators', async () => {
    await page.goto(`${BASE_URL}/sites/st-anne/admin/tokens`);
    await page.getByRole('heading', { name: 'Administrators only' }).waitFor();
    const res = await apiCall(page, 'POST', '/sites/st-anne/tokens/', { name: 'sneaky', kind: 'system', role: 'admin' });
    assert.ok([403, 404].includes(res.status), `clinician token create answered ${res.status}`);
    assert.ok(res.json?.error?.message, 'the refusal carries a sentence');
  });
});

describe('administrator at St Anne’s', () => {
  let page;
  before(async () => {
    page = await freshPage(browser.context);
    await signIn(page, 'anne-admin');
  });
  after(async () => page?.close());

  it('sees the members of the site', async () => {
    await page.getByRole('link', { name: 'Administration' }).click();
    const table = page.getByTestId('members-table');
    await table.waitFor();
    assert.match(await table.innerText(), /anne-clinician/);
    assert.doesNotMatch(await table.innerText(), /bert-admin|outsider-admin/);
    await expectClean(page);
    await shot(page, '06-admin-members');
    await checkTablet(page, '06-admin-members');
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
    await checkTablet(page, '07-admin-token-created');
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
    assert.match(await table.innerText(), /anne-admin/);
    await expectClean(page);
    await shot(page, '08-admin-audit');
    await checkTablet(page, '08-admin-audit');
  });
});

describe('outsider (administrator at a site that shares nothing)', () => {
  let page;
  before(async () => {
    page = await freshPage(browser.context);
    await signIn(page, 'outsider-admin');
  });
  after(async () => page?.close());

  it('only has their own site in the switcher', async () => {
    const options = await page.getByLabel('Site').locator('option').allInnerTexts();
    assert.equal(options.length, 1);
    assert.match(options[0], /Outside Clinic/);
    assert.equal(await page.getByText('St Anne').count(), 0);
    await shot(page, '09-outsider-datasets');
  });

  it('cannot open St Anne’s pages', async () => {
    for (const route of ['/sites/st-anne/datasets', '/sites/st-anne/train', '/sites/st-anne/jobs', '/sites/st-anne/admin/members',
      '/sites/st-anne/admin/tokens', '/sites/st-anne/admin/audit']) {
      await page.goto(`${BASE_URL}${route}`);
      await page.getByTestId('no-access').waitFor();
      assert.equal(await page.getByText('anne-clinician').count(), 0, `${route} leaks nothing`);
    }
    await shot(page, '10-outsider-no-access');
  });

  it('gets 404 from the API for St Anne’s site, members, tokens and audit', async () => {
    for (const apiPath of ['/sites/st-anne/', '/sites/st-anne/members/', '/sites/st-anne/tokens/', '/sites/st-anne/audit/']) {
      const res = await apiCall(page, 'GET', apiPath);
      assert.equal(res.status, 404, `${apiPath} answered ${res.status}`);
      assert.doesNotMatch(res.text, /anne-clinician|anne-admin/);
    }
  });
});
