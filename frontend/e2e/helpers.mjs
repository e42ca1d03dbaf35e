// Drive Debian's Chromium with playwright-core against a running hub (never downloads a browser).
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { deflateSync } from 'node:zlib';
import { tmpdir } from 'node:os';
import path from 'node:path';
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
    viewport: { width: 1366, height: 900 },
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
