// Drive Debian's Chromium with playwright-core against a running hub (never downloads a browser).
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { deflateSync } from 'node:zlib';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before } from 'node:test';
import { chromium } from 'playwright-core';

export const BASE_URL = process.env.E2E_BASE_URL ?? 'http://127.0.0.1:8077';
export const PASSWORD = process.env.E2E_PASSWORD ?? 'e2e-Pollen-pass-1';
export const SHOTS = process.env.E2E_SCREENSHOTS ?? path.resolve('..', 'test-artifacts', 'screenshots');
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

export async function launch() {
  mkdirSync(SHOTS, { recursive: true });
  const userDataDir = mkdtempSync(path.join(tmpdir(), 'pollen-e2e-chromium-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: LAPTOP,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
  });
  return {
    context,
    async close() {
      await context.close();
      rmSync(userDataDir, { recursive: true, force: true });
    },
  };
}

/** A fresh page with its own cookie jar: persistent contexts share cookies, so clear them first. */
export async function freshPage(context) {
  await context.clearCookies();
  const page = await context.newPage();
  page.errors = [];
  page.on('pageerror', (err) => page.errors.push(String(err)));
  page.on('console', (msg) => msg.type() === 'error' && page.consoleErrors?.push(msg.text()));
  page.consoleErrors = [];
  return page;
}

/**
 * Inside a describe block: a fresh page signed in as `username` before its tests, closed after them.
 * `browser()` gives the file's launched browser. Use `.page` in the tests.
 */
export function signedIn(browser, username) {
  const who = { page: null };
  before(async () => {
    who.page = await freshPage(browser().context);
    await signIn(who.page, username);
  });
  after(async () => who.page?.close());
  return who;
}

/** No uncaught error in the page, and every visible form control has a label. */
export async function expectClean(page) {
  assert.deepEqual(page.errors, [], 'no uncaught errors in the page');
  assert.deepEqual(await unlabelledControls(page), [], 'every form control has a label');
}

export async function signIn(page, username, password = PASSWORD) {
  await page.goto(`${BASE_URL}/sign-in`);
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByTestId('signed-in-as').waitFor();
}

export async function shot(page, name, { fullPage = true } = {}) {
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage });
}

export const LAPTOP = { width: 1366, height: 900 };
export const TABLET = { width: 820, height: 1180 };

/**
 * The page at tablet size (820x1180, an iPad Air held upright): nothing may stick out sideways (wide
 * tables scroll inside their own box), and a screenshot is saved as `<name>-tablet`. Back to laptop size after.
 */
export async function checkTablet(page, name) {
  await page.setViewportSize(TABLET);
  try {
    const overflow = await page.evaluate(() => {
      const width = document.documentElement.clientWidth;
      const wide = [...document.querySelectorAll('main *')]
        .filter((el) => !el.closest('.table-wrap') && el.getBoundingClientRect().right > width + 1)
        .map((el) => `${el.tagName.toLowerCase()}.${[...el.classList].join('.')}`);
      return { scroll: document.documentElement.scrollWidth - width, wide: wide.slice(0, 5) };
    });
    assert.ok(overflow.scroll <= 0, `${name}: the page is ${overflow.scroll}px wider than a tablet (${overflow.wide.join(', ')})`);
    assert.deepEqual(overflow.wide, [], `${name}: these stick out of a tablet screen`);
    await shot(page, `${name}-tablet`);
  } finally {
    await page.setViewportSize(LAPTOP);
  }
}

/** Call the API from inside the page, with the session cookie and CSRF token, as the dashboard does. */
export async function apiCall(page, method, apiPath, body) {
  return page.evaluate(async ({ method, apiPath, body }) => {
    const csrf = document.cookie.split('; ').find((c) => c.startsWith('csrftoken='))?.split('=')[1] ?? '';
    const res = await fetch(`/api/v1${apiPath}`, {
      method,
      credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json', 'X-CSRFToken': csrf },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    let json = null;
    try { json = JSON.parse(text); } catch { json = null; }
    return { status: res.status, json, text };
  }, { method, apiPath, body });
}

/**
 * Splits go by patient (a hash of the dataset's seed and the patient id). With 20 images from 20 unnamed
 * "patients", a label can end up with no tuning (validation) image, and the hub rightly refuses to train.
 * Do what a clinician would: give patient ids to a few images until every label has 2 learning images
 * and 1 tuning image. Returns how many images were given an id.
 */
export async function ensureEverySplitHasEachLabel(page, datasetId) {
  const list = await apiCall(page, 'GET', `/datasets/${datasetId}/images/?page_size=100`);
  assert.equal(list.status, 200);
  const rows = list.json.results;
  let changed = 0;
  const NEED = { train: 2, val: 1, test: 1 }; // the final check needs every label too, or it has no ROC curve
  for (const label of new Set(rows.map((r) => r.label))) {
    const mine = rows.filter((r) => r.label === label);
    const count = (split) => mine.filter((r) => r.split === split).length;
    for (let n = 0; Object.entries(NEED).some(([split, k]) => count(split) < k); n++) {
      assert.ok(n < 300, `could not balance the sets for ${label}`);
      // Move an image from the set with the most spare images (its split is re-drawn from its new patient id).
      const spare = Object.keys(NEED).sort((a, b) => (count(b) - NEED[b]) - (count(a) - NEED[a]))[0];
      const image = mine.find((r) => r.split === spare);
      const res = await apiCall(page, 'PATCH', `/datasets/${datasetId}/images/${image.id}/`, { patient_id: `pt-${label}-${n}` });
      assert.equal(res.status, 200, res.text);
      image.split = res.json.split;
      changed++;
    }
  }
  return changed;
}

export async function agentSeen(page, slug) {
  const me = await apiCall(page, 'GET', '/auth/me/');
  return !!me.json?.memberships.find((m) => m.site.slug === slug)?.site.agent_last_seen_at;
}

/**
 * Set-up for a flow that is not about uploading: a labelled dataset at `site` made through the same API a
 * hospital system uses (upload slots, bytes straight to the site's storage, then "complete"), waited on
 * until the site agent has accepted every image, with every label in every set. Returns the dataset id.
 */
export async function seedDataset(page, { site, name, perLabel = 10, seed = 1 }) {
  const labels = ['mass', 'normal'];
  const created = await apiCall(page, 'POST', '/datasets/', { site, name, label_names: labels, modality: 'xray' });
  assert.equal(created.status, 201, created.text);
  const id = created.json.id;
  const files = labels.flatMap((label) => Array.from({ length: perLabel }, (_, i) => ({ label, i })));
  const images = new Map(files.map(({ label, i }) => [`${label}-${i}.png`, labelledPng(label, seed * 1000 + i)]));
  const slots = await apiCall(page, 'POST', `/datasets/${id}/upload-slots/`, {
    files: files.map(({ label, i }) => ({ filename: `${label}-${i}.png`, label, size_bytes: images.get(`${label}-${i}.png`).length })),
  });
  assert.equal(slots.status, 200, slots.text);
  assert.equal(slots.json.slots.length, files.length, `slots refused: ${JSON.stringify(slots.json.refused ?? [])}`);
  for (const slot of slots.json.slots) {
    const put = await page.request.fetch(slot.url, { method: slot.method, headers: slot.headers, data: images.get(slot.filename) });
    assert.ok(put.ok(), `upload of ${slot.filename} answered ${put.status()}`);
  }
  const done = await apiCall(page, 'POST', `/datasets/${id}/uploads/complete/`, { image_ids: slots.json.slots.map((s) => s.image_id) });
  assert.ok(done.status < 300, done.text);
  await until(`the ${site} agent to accept the images of ${name}`, async () => {
    const ds = await apiCall(page, 'GET', `/datasets/${id}/`);
    assert.equal(ds.json.rejected_count, 0, `images were turned away at ${site}`);
    return ds.json.accepted_count === files.length;
  }, { timeout: 90_000 });
  await ensureEverySplitHasEachLabel(page, id);
  return id;
}

/** One generated 48x48 image: "mass" images carry a bright blob; `n` makes each one different. */
function labelledPng(label, n) {
  let state = (n * 2654435761) % 2 ** 31 || 1;
  const rand = () => ((state = (state * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const cx = 14 + 20 * rand(), cy = 14 + 20 * rand(), r = 6 + 4 * rand();
  return greyPng(48, 48, (x, y) => (label === 'mass' && (x - cx) ** 2 + (y - cy) ** 2 < r * r ? 220 + 30 * rand() : 40 + 30 * rand()));
}

export async function apiHas(page, apiPath) {
  const res = await page.request.get(`${BASE_URL}/api/v1/schema/?format=json`);
  const schema = await res.json();
  return Object.prototype.hasOwnProperty.call(schema.paths ?? {}, `/api/v1${apiPath}`);
}

/** Every visible form control has an accessible name (label, aria-label or aria-labelledby). */
export async function unlabelledControls(page) {
  return page.evaluate(() =>
    [...document.querySelectorAll('input, select, textarea')]
      .filter((el) => el.type !== 'hidden' && !el.hidden && el.offsetParent !== null)
      .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute('aria-label') && !el.getAttribute('aria-labelledby'))
      .map((el) => el.outerHTML.slice(0, 120)),
  );
}

/** Registered agent tasks, read from the real agent's start-up banner (the script passes its log). */
export function agentHasTask(name) {
  const log = process.env.E2E_AGENT_LOG;
  if (!log) return false;
  try {
    return readFileSync(log, 'utf8').includes(name);
  } catch {
    return false;
  }
}

/** Poll `fn` until it returns a truthy value or the deadline passes (no fixed sleeps). */
export async function until(what, fn, { timeout = 60_000, every = 500 } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    last = await fn();
    if (last) return last;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout / 1000} s waiting for ${what}`);
    await new Promise((r) => setTimeout(r, every));
  }
}

// --- A tiny PNG encoder (8-bit greyscale), so tests generate their images instead of committing any.
const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
function crc32(buf) {
  let c = 0xffffffff;
  for (const b of buf) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
function chunk(type, data) {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([len, body, crc]);
}
/** `pixel(x, y)` gives 0–255. */
export function greyPng(width, height, pixel) {
  const raw = Buffer.alloc((width + 1) * height);
  for (let y = 0; y < height; y++) {
    raw[y * (width + 1)] = 0;
    for (let x = 0; x < width; x++) raw[y * (width + 1) + 1 + x] = Math.max(0, Math.min(255, Math.round(pixel(x, y))));
  }
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header[8] = 8; // bit depth
  header[9] = 0; // greyscale
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', header),
    chunk('IDAT', deflateSync(raw)), chunk('IEND', Buffer.alloc(0))]);
}

/** A labelled folder tree: `<root>/<label>/<label>-<i>.png`. "mass" images carry a bright blob. */
export function writeLabelledImages(root, perLabel = 10, size = 48) {
  let seed = 12345;
  const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  for (const label of ['mass', 'normal']) {
    mkdirSync(path.join(root, label), { recursive: true });
    for (let i = 0; i < perLabel; i++) {
      const cx = size * (0.3 + 0.4 * rand()), cy = size * (0.3 + 0.4 * rand()), r = size * (0.12 + 0.08 * rand());
      const png = greyPng(size, size, (x, y) => {
        const base = 40 + 30 * rand();
        if (label === 'mass' && (x - cx) ** 2 + (y - cy) ** 2 < r * r) return 220 + 30 * rand();
        return base;
      });
      writeFileSync(path.join(root, label, `${label}-${i}.png`), png);
    }
  }
}
