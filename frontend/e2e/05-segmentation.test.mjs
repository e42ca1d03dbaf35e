// End-to-end: segmentation (outlining) in real Chromium, against a running hub with a REAL site agent
// (scripts/test_frontend.sh starts both). A clinician at St Anne's creates a dataset whose images come
// with masks, picks a folder of generated images and masks (two readers, a normal image with an empty
// mask, a mask without its image and an image without its mask), sees how they pair before sending,
// uploads them, reads the masks outlined over the images and the mask statistics (sizes, normal
// images, the readers' agreement), then trains a first outline model (decoder only) and reads its
// Dice card with the model's outlines over check images; publishes it, reads its marketplace card
// and applies it to the dataset: each image's outline faded over the image, side by side, the
// probability map, the area in words and the mask PNG.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  agentHasTask, agentSeen, apiCall, apiHas, checkTablet, ensureEverySplitHasEachLabel, expectClean, greyPng, launch, shot, signedIn, until,
} from './helpers.mjs';

const RUN = Date.now().toString(36);
const DATASET = `Lesion outlines e2e ${RUN}`;
const MODEL = `Lesion outliner e2e ${RUN}`;
const SIZE = 64;
const LESIONS = 8; // images with a lesion: case-0 … case-7
const NORMALS = 2; // images with an empty mask: normal-0, normal-1
const SECOND_READER = 4; // case-0 … case-3 also have a mask by the reader "second"
let browser;
let folder;
const state = { datasetId: null, jobId: null, finished: false, publishedModel: null, published: false };

/** A lesion: a bright disc of radius r at (cx, cy). */
const inDisc = (x, y, { cx, cy, r }) => (x - cx) ** 2 + (y - cy) ** 2 < r * r;

/**
 * `<root>/images/*.png` and `<root>/masks/*_mask.png` (0 background, 255 lesion), masks by a second
 * reader as `<root>/masks/case-N_second.png` (the disc moved by 2 pixels), a mask whose image is
 * missing and an image whose mask is missing.
 */
function writeMaskedImages(root) {
  mkdirSync(path.join(root, 'images'), { recursive: true });
  mkdirSync(path.join(root, 'masks'), { recursive: true });
  let seed = parseInt(RUN.slice(-5), 36) || 7;
  const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const write = (name, png) => writeFileSync(path.join(root, name), png);
  for (let i = 0; i < LESIONS + NORMALS; i++) {
    const lesion = i < LESIONS;
    const name = lesion ? `case-${i}` : `normal-${i - LESIONS}`;
    const disc = { cx: SIZE * (0.3 + 0.4 * rand()), cy: SIZE * (0.3 + 0.4 * rand()), r: SIZE * (0.08 + 0.1 * rand()) };
    write(`images/${name}.png`, greyPng(SIZE, SIZE, (x, y) => (lesion && inDisc(x, y, disc) ? 215 + 30 * rand() : 40 + 40 * rand())));
    write(`masks/${name}_mask.png`, greyPng(SIZE, SIZE, (x, y) => (lesion && inDisc(x, y, disc) ? 255 : 0)));
    if (i < SECOND_READER) write(`masks/${name}_second.png`, greyPng(SIZE, SIZE, (x, y) => (inDisc(x, y, { ...disc, cx: disc.cx + 2 }) ? 255 : 0)));
  }
  write('masks/stray_mask.png', greyPng(SIZE, SIZE, () => 0));
  write('images/unmasked.png', greyPng(SIZE, SIZE, () => 60 + 30 * rand()));
}

before(async () => {
  browser = await launch();
  folder = mkdtempSync(path.join(tmpdir(), 'pollen-e2e-masks-'));
  writeMaskedImages(path.join(folder, 'lesions'));
});
after(async () => {
  await browser?.close();
  if (folder) rmSync(folder, { recursive: true, force: true });
});

describe('clinician at St Anne’s: images with masks, their outlines and statistics', () => {
  const anne = signedIn(() => browser, 'anne-clinician');
  let page;
  before(() => {
    page = anne.page; // signed in by the hook above, which runs first
  });

  it('creates a dataset whose images come with an outline (mask), naming what the masks mark', async () => {
    await until('the St Anne’s site agent to say hello to the hub', () => agentSeen(page, 'st-anne'), { timeout: 60_000 });
    await page.getByRole('button', { name: 'New dataset' }).click();
    await page.getByRole('radio', { name: /An outline \(mask\) per image/ }).check();
    await page.getByLabel('Kind of images').selectOption('ultrasound');
    await page.getByLabel('Name').fill(DATASET);
    // Nothing named yet: a plain sentence next to the field, and no dataset.
    await page.getByRole('button', { name: 'Create dataset' }).click();
    await page.getByText('Name what your masks mark, for example “lesion”.').waitFor();
    await page.getByLabel(/What do the masks mark/).fill('lesion');
    await expectClean(page);
    await shot(page, '30-new-segmentation-dataset');
    await page.getByRole('button', { name: 'Create dataset' }).click();
    await page.getByRole('heading', { name: DATASET, level: 1 }).waitFor();
    state.datasetId = /\/datasets\/([^/?#]+)/.exec(page.url())[1];
    const ds = await apiCall(page, 'GET', `/datasets/${state.datasetId}/`);
    assert.equal(ds.json.task, 'segmentation');
    assert.deepEqual(ds.json.mask_classes, ['lesion']);
    assert.equal(ds.json.masks_required, true);
    await page.getByText(/Masks mark lesion \(yellow\)/).waitFor();
  });

  it('pairs the picked folder’s images with their masks before sending, naming what does not pair and what to rename', async (t) => {
    if (!state.datasetId) return t.skip('no dataset was created (see above)');
    await page.getByTestId('folder-input').setInputFiles(path.join(folder, 'lesions'));
    const summary = page.getByTestId('pairing-summary');
    await summary.waitFor();
    const masks = LESIONS + NORMALS + SECOND_READER;
    assert.equal(await summary.innerText(), `${LESIONS + NORMALS} images with ${masks} mask files from 2 readers (unnamed reader, second).`);
    assert.match(await page.getByTestId('unpaired-images').innerText(), /unmasked\.png has no mask: add unmasked_mask\.png beside it/);
    assert.match(await page.getByTestId('orphan-masks').innerText(), /stray_mask\.png is a mask, but there is no image named “stray”/);
    await expectClean(page);
    await shot(page, '31-mask-pairing-preview');
    await checkTablet(page, '31-mask-pairing-preview');
    await page.getByRole('button', { name: `Upload ${LESIONS + NORMALS} images with their masks` }).click();
    await page.getByText(`${LESIONS + NORMALS} of ${LESIONS + NORMALS} sent`).waitFor({ timeout: 60_000 });
    assert.equal(await page.getByRole('progressbar', { name: /^Upload of / }).count(), LESIONS + NORMALS, 'one progress bar per image and its masks');
    // The site agent checks each image and its masks (sizes, values, agreement); the page updates by itself.
    await page.getByText(`${LESIONS + NORMALS} images ready`).waitFor({ timeout: 120_000 });
    const ds = await apiCall(page, 'GET', `/datasets/${state.datasetId}/`);
    assert.equal(ds.json.rejected_count, 0, 'no image was turned away');
  });

  it('shows each image with its mask outlined, and the second reader’s masks on request', async (t) => {
    if (!state.datasetId) return t.skip('no dataset was created (see above)');
    const gallery = page.getByTestId('mask-gallery');
    await until('every mask to be checked', async () => {
      const list = await apiCall(page, 'GET', `/datasets/${state.datasetId}/images/?page_size=100`);
      const all = list.json.results.flatMap((i) => i.masks);
      assert.ok(all.every((m) => m.status !== 'rejected'), `masks turned away: ${JSON.stringify(all.filter((m) => m.status === 'rejected'))}`);
      return all.length === LESIONS + NORMALS + SECOND_READER && all.every((m) => m.status === 'accepted');
    }, { timeout: 60_000 });
    await page.reload();
    const outlined = gallery.getByRole('img', { name: /with its mask outlined$/ });
    await outlined.first().waitFor({ timeout: 30_000 });
    // Overlays load lazily, as they scroll into view, as a clinician would scroll to them.
    await outlined.first().scrollIntoViewIfNeeded();
    // The overlay comes from the site's storage through a short-lived link: it must actually load.
    await until('the first mask overlay to load', () => outlined.first().evaluate((img) => img.complete && img.naturalWidth > 0), { timeout: 20_000 });
    assert.equal(await outlined.count(), LESIONS + NORMALS, 'every image shows the unnamed reader’s mask');
    await gallery.getByText('Empty: nothing outlined (a normal image)').first().waitFor();
    const switcher = gallery.getByTestId('reader-switch');
    await switcher.getByLabel('second').check();
    const second = gallery.getByRole('img', { name: /with its mask by second outlined$/ });
    await second.first().waitFor();
    assert.equal(await second.count(), SECOND_READER);
    await until('the second reader’s overlay to load', () => second.first().evaluate((img) => img.complete && img.naturalWidth > 0), { timeout: 20_000 });
    await gallery.getByText(/Agrees with the reference reader: Dice 0\.\d\d/).first().waitFor();
    await expectClean(page);
    await shot(page, '32-mask-overlays');
    await checkTablet(page, '32-mask-overlays');
  });

  it('counts masks, normal images and lesion sizes, and the readers’ agreement with the worst images', async (t) => {
    if (!state.datasetId) return t.skip('no dataset was created (see above)');
    const stats = page.getByTestId('mask-stats');
    await stats.waitFor();
    assert.match(await stats.getByTestId('with-mask').innerText(), new RegExp(`^Images with a mask\\s*${LESIONS + NORMALS}`));
    assert.match(await stats.getByTestId('empty-masks').innerText(), new RegExp(`^Empty masks \\(normal images\\)\\s*${NORMALS}`));
    const bars = stats.getByTestId('size-histogram');
    await bars.waitFor();
    const counts = await bars.locator('tbody td.num').allInnerTexts();
    assert.equal(counts.map(Number).reduce((a, b) => a + b, 0), LESIONS, 'each lesion mask is in one size bar');
    const agreement = stats.getByTestId('agreement');
    await agreement.waitFor();
    assert.match(await agreement.innerText(), new RegExp(`Over ${SECOND_READER} masks drawn by a second reader, .*mean Dice of 0\\.\\d\\d`));
    assert.equal(await stats.getByTestId('agreement-worst').locator('tbody tr').count(), SECOND_READER);
    await expectClean(page);
    await shot(page, '33-mask-statistics');
  });

  it('trains a first outline model (decoder only) and reads its Dice card with the model’s outlines', async (t) => {
    if (!state.datasetId) return t.skip('no dataset was created (see above)');
    const zoo = await apiCall(page, 'GET', '/zoo/?task=segmentation');
    if (!zoo.json?.count) return t.skip('the hub has no outlining starting point');
    await ensureEverySplitHasEachLabel(page, state.datasetId);
    await page.getByRole('link', { name: 'Train a model on this dataset' }).click();
    await page.getByRole('heading', { name: 'Train a model', level: 1 }).waitFor();
    await until('the dataset to be preselected', async () => (await page.getByLabel('1. Images to learn from').inputValue()) === String(state.datasetId), { timeout: 10_000, every: 100 });
    const recommended = page.getByRole('radio', { name: /Outlining model \(U-Net\), recommended for masks/ });
    await until('the outlining starting point to be chosen', () => recommended.isChecked(), { timeout: 10_000, every: 100 });
    assert.equal(await page.getByRole('radio', { name: /Tiny test network/ }).count(), 0, 'only outlining starting points');
    assert.equal(await page.getByRole('radio', { name: /^Quick/ }).count(), 0, 'no quick recipe for outlines');
    await page.getByRole('radio', { name: /First outline in minutes/ }).check();
    await page.getByText('Advanced settings').click();
    await page.getByLabel('Rounds of learning (epochs)').fill('2');
    await expectClean(page);
    await shot(page, '34-train-outlines');
    await page.getByRole('button', { name: 'Start training' }).click();
    const outcome = await Promise.race([
      page.waitForURL(/\/jobs\/\d+$/).then(() => 'started'),
      page.getByRole('alert').first().waitFor().then(() => 'refused'),
    ]);
    if (outcome === 'refused') assert.fail(`the hub refused to train: ${await page.getByRole('alert').first().innerText()}`);
    state.jobId = /\/jobs\/(\d+)$/.exec(page.url())[1];
    const job = await apiCall(page, 'GET', `/jobs/${state.jobId}/`);
    assert.equal(job.json.task, 'segmentation');
    assert.equal(job.json.config.freeze_encoder, true);
    await page.getByText('first outline in minutes (decoder only)', { exact: false }).waitFor();
    await page.locator('.status-job-succeeded, .status-job-failed').waitFor({ timeout: 300_000 });
    assert.equal(await page.locator('.status-job-failed').count(), 0, `the run stopped with a problem: ${(await apiCall(page, 'GET', `/jobs/${state.jobId}/`)).json.message}`);
    state.finished = true;
    await page.getByRole('img', { name: 'Outline overlap on tuning images (Dice)' }).waitFor({ timeout: 15_000 });
    const card = page.getByTestId('segmentation-result');
    await card.waitFor();
    assert.match(await card.getByTestId('tile-dice').innerText(), /Overlap with the expert’s outline \(Dice\)\s*[01]\.\d\d/);
    assert.match(await card.innerText(), /Dice: how much the model’s outline overlaps the expert’s; 1 is perfect/);
    await card.getByTestId('dice-histogram').waitFor();
    const gallery = page.getByTestId('sample-outlines');
    await gallery.waitFor({ timeout: 30_000 });
    const first = gallery.locator('img').first();
    await first.waitFor();
    await until('the first outline overlay to load', () => first.evaluate((img) => img.complete && img.naturalWidth > 0), { timeout: 20_000 });
    await expectClean(page);
    await shot(page, '35-dice-card');
    await checkTablet(page, '35-dice-card');
  });

  it('publishes the outline model and reads its Dice card in the marketplace', async (t) => {
    if (!state.finished) return t.skip('the training run did not finish (see above)');
    if (!(await apiHas(page, '/marketplace/versions/'))) return t.skip('the hub has no marketplace API yet');
    if (!agentHasTask('pollen.gpu.publish')) return t.skip('the site agent cannot copy weights to the marketplace (no pollen.gpu.publish task)');
    await page.getByRole('button', { name: 'Publish to the marketplace' }).click();
    const dialog = page.getByRole('dialog', { name: 'Publish this model' });
    await dialog.getByLabel('Name in the marketplace').fill(MODEL);
    await dialog.getByLabel('What it is for (intended use)').fill('Outlines breast lesions on ultrasound for a second look. Test model.');
    await dialog.getByLabel('Known limitations').fill('Trained on 10 generated images: for testing only, never for patients.');
    await dialog.getByRole('button', { name: 'Publish' }).click();
    const link = await until('the publication to be recorded', async () => page.getByRole('link', { name: 'Open it in the marketplace' }).getAttribute('href').catch(() => null), { timeout: 20_000 });
    state.publishedModel = /\/marketplace\/models\/(\d+)/.exec(link)[1];
    await page.getByText(/version \d+ is published/i).waitFor({ timeout: 120_000 });
    state.published = true;
    await page.getByRole('link', { name: 'Open it in the marketplace' }).click();
    await page.getByRole('heading', { name: MODEL, level: 1 }).waitFor();
    assert.equal(await page.getByTestId('card-outlines').innerText(), 'lesion');
    assert.match(await page.getByTestId('card-training').innerText(), /^\d+ images at St Anne/);
    const card = page.getByTestId('segmentation-result');
    assert.match(await card.getByTestId('tile-dice').innerText(), /Overlap with the expert’s outline \(Dice\)\s*[01]\.\d\d/);
    // Which images were hardest stays at St Anne's: the card gives Dice values only.
    assert.equal(await card.getByTestId('worst-cases').count(), 0);
    assert.equal(await page.getByRole('columnheader', { name: 'Separates cases (AUC)' }).count(), 0);
    await expectClean(page);
    await shot(page, '36-outline-model-card');
  });

  it('applies it to the dataset: each outline over its image with a slider, side by side, the maps, the area and the mask', async (t) => {
    if (!state.published) return t.skip('nothing usable was published (see above)');
    if (!agentHasTask('pollen.gpu.predict')) return t.skip('the site agent cannot run predictions (no pollen.gpu.predict task)');
    await page.getByRole('link', { name: 'Use this model on my images' }).click();
    await page.getByRole('heading', { name: 'Apply a model', level: 1 }).waitFor();
    await page.getByTestId('outline-products').waitFor();
    assert.equal(await page.getByRole('checkbox', { name: /heatmap/ }).count(), 0, 'no heatmap option for an outlining model');
    await page.getByRole('radio', { name: /A dataset at St Anne/ }).check();
    await page.getByLabel('Dataset', { exact: true }).selectOption(String(state.datasetId));
    await page.getByRole('button', { name: 'Run the model' }).click();
    const results = page.getByTestId('prediction-results');
    await results.getByRole('heading', { name: 'What the model outlined' }).waitFor({ timeout: 180_000 });
    const row = results.getByTestId('prediction-result').filter({ hasText: 'case-0.png' });
    await row.scrollIntoViewIfNeeded();  // rows fetch their pictures once they are seen
    const loaded = (img) => img.evaluate((el) => el.complete && el.naturalWidth > 0);
    const outline = row.getByRole('img', { name: 'The model’s outline over case-0.png' });
    await outline.waitFor({ timeout: 30_000 });
    await until('the outline over case-0.png to load', () => loaded(outline), { timeout: 20_000 });
    const plain = row.getByRole('img', { name: 'case-0.png, without the outline' });
    await until('the plain image under the outline to load', () => loaded(plain), { timeout: 20_000 });
    assert.match(await row.getByTestId('outline-area').innerText(), /^(The outlined lesion covers .+ of the image; \d+ regions?\.|The model outlined nothing on this image\.)$/);
    assert.match(await row.getByTestId('outline-unsure').innerText(), /^How unsure the model was: /);
    await page.getByRole('slider', { name: 'Strength over the image' }).fill('30');
    assert.equal(await outline.evaluate((el) => el.style.opacity), '0.3');
    await page.getByRole('checkbox', { name: 'Side by side with the image' }).check();
    assert.equal(await row.getByTestId('side-by-side').getByRole('img').count(), 2);
    await page.getByRole('radio', { name: 'How likely (probability map)' }).check();
    const map = row.getByRole('img', { name: /^Map of how likely each part of case-0\.png is to be lesion/ });
    await until('the probability map to load', () => loaded(map), { timeout: 20_000 });
    // The mask is a PNG of class numbers, straight from the site's storage.
    const href = await row.getByRole('link', { name: 'Mask (PNG, class numbers)' }).getAttribute('href');
    const mask = await page.request.get(href);
    assert.equal(mask.status(), 200);
    assert.equal((await mask.body()).subarray(1, 4).toString('latin1'), 'PNG');
    await expectClean(page);
    await shot(page, '37-apply-outlines');
    await checkTablet(page, '37-apply-outlines');
  });
});
