// End-to-end: every main page at phone width (390 px, an iPhone 12 to 15 held upright) with the longest
// names the hub allows. tests/e2e/seed_layout.py (run by scripts/test_frontend.sh) gives St Anne's a
// dataset, a training run, its model and a marketplace entry named with 200 characters and no space to
// break at, and an image with a 255-character file name and a 100-character label. Nothing may make the
// page scroll sideways, and a long name stays inside its box: wrapped, or cut with the whole name in a
// tooltip (title).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { BASE_URL, LAPTOP, apiCall, expectClean, freshPage, launch, shot, signIn } from './helpers.mjs';

const PHONE = { width: 390, height: 844 };
// The seed's names start with these (tests/e2e/seed_layout.py); the check looks for the first 40 characters.
const LONG = {
  dataset: 'LongDataset_Mammography-screening-cohort',
  model: 'LongModel_Mammography-screening-cohort',
  label: 'Suspicious-microcalcification_Mammograph',
  file: 'long-file_Mammography-screening-cohort-M',
};
let browser;

before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

/** What sticks out at this width: the page's sideways scroll, and each long name that leaves its box. */
function measure(needles) {
  const width = window.innerWidth;
  const describe = (el) => `${el.tagName.toLowerCase()}${el.className && typeof el.className === 'string' ? `.${el.className.trim().split(/\s+/).join('.')}` : ''}`;
  const outside = [...document.querySelectorAll('header *, main *')]
    .filter((el) => !el.closest('.table-wrap, dialog:not([open])') && el.getClientRects().length > 0)
    .filter((el) => el.getBoundingClientRect().right > width + 1)
    .map(describe);
  const names = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const el = node.parentElement;
    if (!el || !needles.some((n) => node.textContent.includes(n)) || el.closest('select, datalist, option, title, script, .visually-hidden')) continue;
    if (el.getClientRects().length === 0) continue; // not shown (a closed <details>, a hidden tab)
    const box = el.getBoundingClientRect();
    // The box it must stay in: the nearest ancestor that is not an inline element.
    let container = el.parentElement;
    while (container && ['inline', 'contents'].includes(getComputedStyle(container).display)) container = container.parentElement;
    const limit = container ? container.getBoundingClientRect().right : width;
    const clipped = el.scrollWidth > el.clientWidth + 1;
    names.push({
      el: describe(el),
      sticksOut: box.right > limit + 1 || box.right > width + 1,
      cutWithoutTooltip: clipped && !el.closest('[title]'),
    });
  }
  // A text box holding a long name (an image's label): it may scroll inside, but only with the whole value in a tooltip.
  for (const input of document.querySelectorAll('main input:not([type]), main input[type="text"]')) {
    if (!needles.some((n) => input.value.includes(n)) || input.getClientRects().length === 0) continue;
    const box = input.getBoundingClientRect();
    names.push({
      el: describe(input),
      sticksOut: box.right > width + 1 && !input.closest('.table-wrap'), // a wide table scrolls in its own box
      cutWithoutTooltip: input.scrollWidth > input.clientWidth + 1 && input.title !== input.value,
    });
  }
  return { scrollWidth: document.documentElement.scrollWidth, innerWidth: width, outside: outside.slice(0, 8), names };
}

async function settle(page) {
  await page.locator('main h1').first().waitFor({ timeout: 20_000 });
  await page.waitForLoadState('networkidle', { timeout: 10_000 }).catch(() => undefined); // a page that polls never idles
  await page.waitForFunction(() => !document.querySelector('main [role="status"][aria-live="polite"]')?.textContent?.endsWith('…'), null, { timeout: 15_000 })
    .catch(() => undefined);
}

async function checkPhone(page, name, path, { expectNames = [] } = {}) {
  await page.goto(`${BASE_URL}${path}`);
  await settle(page);
  const m = await page.evaluate(measure, Object.values(LONG));
  await shot(page, `30-phone-${name}`);
  assert.ok(m.scrollWidth <= m.innerWidth, `${name}: the page scrolls sideways at ${m.innerWidth}px (${m.scrollWidth}px wide; ${m.outside.join(', ')})`);
  assert.deepEqual(m.outside, [], `${name}: these stick out of a phone screen`);
  for (const which of expectNames) {
    assert.ok(m.names.length > 0 && (await page.getByText(LONG[which]).count()) > 0, `${name}: the long ${which} name is shown`);
  }
  const bad = m.names.filter((n) => n.sticksOut || n.cutWithoutTooltip);
  assert.deepEqual(bad, [], `${name}: a long name leaves its box, or is cut without a tooltip`);
}

describe('every main page at phone width, with 200-character names', () => {
  let page;
  const ids = {};
  before(async () => {
    page = await freshPage(browser.context);
    await signIn(page, 'anne-admin');
    const datasets = await apiCall(page, 'GET', `/datasets/?site=st-anne&search=${LONG.dataset}`);
    ids.dataset = datasets.json?.results?.[0]?.id;
    const jobs = await apiCall(page, 'GET', '/jobs/?site=st-anne&page_size=100');
    ids.job = jobs.json?.results?.find((j) => j.name.startsWith(LONG.model))?.id;
    const models = await apiCall(page, 'GET', `/marketplace/models/?search=${LONG.model}`);
    ids.model = models.json?.results?.[0]?.id;
    assert.ok(ids.dataset && ids.job && ids.model, `the layout seed is missing (tests/e2e/seed_layout.py): ${JSON.stringify(ids)}`);
    await page.setViewportSize(PHONE);
  });
  after(async () => {
    await page?.setViewportSize(LAPTOP);
    await page?.close();
  });

  const pages = () => [
    ['datasets', '/sites/st-anne/datasets', ['dataset']],
    ['dataset', `/sites/st-anne/datasets/${ids.dataset}`, ['dataset', 'file']],
    ['train', `/sites/st-anne/train?dataset=${ids.dataset}`, []],
    ['jobs', '/sites/st-anne/jobs', ['dataset']],
    ['job', `/sites/st-anne/jobs/${ids.job}`, ['dataset']],
    ['marketplace', '/marketplace', ['model']],
    ['model-card', `/marketplace/models/${ids.model}`, ['model']],
    ['apply', `/sites/st-anne/apply?model=${ids.model}`, ['label']],
    ['federated', '/sites/st-anne/federated', []],
    ['federated-new', '/sites/st-anne/federated/new', []],
    ['members', '/sites/st-anne/admin/members', []],
    ['tokens', '/sites/st-anne/admin/tokens', []],
    ['audit', '/sites/st-anne/admin/audit', []],
  ];

  it('lets no page scroll sideways, and keeps every long name inside its box', async () => {
    const failures = [];
    for (const [name, path, expectNames] of pages()) {
      try {
        await checkPhone(page, name, path, { expectNames });
      } catch (err) {
        failures.push(err.message); // every page is checked, then all that failed are reported together
      }
    }
    assert.deepEqual(failures, []);
    await expectClean(page);
  });
});
