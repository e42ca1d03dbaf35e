// End-to-end: the whole clinical flow in real Chromium, against a running hub with a REAL site agent
// (scripts/test_frontend.sh starts both). A clinician at St Anne's uploads 20 generated images, trains
// the tiny network, watches it finish and reads its evaluation with heatmaps; publishes it for Borough;
// a clinician at Borough applies it to a new image and sees probabilities and a heatmap; and people
// outside St Anne's see none of its private data.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  BASE_URL, agentHasTask, agentSeen, apiCall, apiHas, checkTablet, ensureEverySplitHasEachLabel, expectClean, freshPage, greyPng, launch,
  seedDataset, shot, signIn, signedIn, until, writeLabelledImages,
} from './helpers.mjs';

const RUN = Date.now().toString(36);
const DATASET = `Mammography e2e ${RUN}`;
const MODEL = `Mass finder e2e ${RUN}`;
let browser;
let images;
const state = { datasetId: null, jobId: null, publishedModel: null, published: false, predictionImage: null };

before(async () => {
  browser = await launch();
  images = mkdtempSync(path.join(tmpdir(), 'pollen-e2e-images-'));
  writeLabelledImages(path.join(images, 'mammograms'), 10);
});
after(async () => {
  await browser?.close();
  if (images) rmSync(images, { recursive: true, force: true });
});

describe('clinician at St Anne’s: upload, train, evaluate, publish', () => {
  let page;
  before(async () => {
    page = await freshPage(browser.context);
    await signIn(page, 'anne-clinician');
    await until('the St Anne’s site agent to say hello to the hub', () => agentSeen(page, 'st-anne'), { timeout: 60_000 });
  });
  after(async () => page?.close());

  it('uploads 20 images by folder straight to site storage, each with its own progress, and sees them accepted', async () => {
    await page.getByRole('button', { name: 'New dataset' }).click();
    await page.getByLabel('Name').fill(DATASET);
    await page.getByLabel('Kind of images').selectOption('xray');
    await page.getByRole('button', { name: 'Create dataset' }).click();
    await page.getByRole('heading', { name: DATASET, level: 1 }).waitFor();
    state.datasetId = /\/datasets\/([^/?#]+)/.exec(page.url())[1];

    await page.getByTestId('folder-input').setInputFiles(path.join(images, 'mammograms'));
    const chips = page.getByRole('list', { name: 'Labels from folders' });
    await chips.waitFor();
    assert.deepEqual(await chips.getByRole('listitem').allInnerTexts(), ['mass: 10', 'normal: 10']);
    await shot(page, '03-upload-preview');
    await page.getByRole('button', { name: 'Upload 20 images' }).click();
    await page.getByText('20 of 20 sent').waitFor({ timeout: 60_000 });
    assert.equal(await page.getByRole('progressbar', { name: /^Upload of / }).count(), 20, 'one progress bar per file');
    await shot(page, '04-upload-sent');
    // The site agent checks each file (decode, limits, checksum, thumbnail); the page updates by itself.
    await page.getByText('20 images ready').waitFor({ timeout: 90_000 });
    const stats = page.getByTestId('label-stats');
    await stats.waitFor();
    assert.match(await stats.innerText(), /mass/);
    assert.match(await stats.innerText(), /normal/);
    await expectClean(page);
    await shot(page, '05-dataset-accepted');
    await checkTablet(page, '05-dataset-accepted');
    const changed = await ensureEverySplitHasEachLabel(page, state.datasetId);
    if (changed) console.log(`# gave ${changed} image(s) a patient id so that every label is in the learning, tuning and final-check sets`);
  });

  it('trains the tiny network from the train page, with licences and advanced settings folded away', async () => {
    assert.ok(state.datasetId, 'a dataset was created');
    await page.getByRole('link', { name: 'Train a model on this dataset' }).click();
    await page.getByRole('heading', { name: 'Train a model', level: 1 }).waitFor();
    // The dataset comes preselected from the dataset page's link (once the list has loaded).
    await until('the dataset to be preselected', async () => (await page.getByLabel('1. Images to learn from').inputValue()) === String(state.datasetId), { timeout: 10_000, every: 100 });
    // Licence texts are long: folded, one "Licence terms" per starting point that has one.
    const licences = page.locator('details.licence');
    assert.ok((await licences.count()) >= 1);
    assert.equal(await licences.first().evaluate((d) => d.open), false);
    assert.equal(await page.getByLabel('Rounds of learning (epochs)').isVisible(), false, 'advanced settings start folded');
    await expectClean(page);
    await shot(page, '06-train');
    await checkTablet(page, '06-train');
    await page.getByRole('radio', { name: /Tiny test network/ }).check();
    await page.getByText('Advanced settings').click();
    await page.getByLabel('Rounds of learning (epochs)').fill('3');
    await page.getByRole('button', { name: 'Start training' }).click();
    const outcome = await Promise.race([
      page.waitForURL(/\/jobs\/\d+$/).then(() => 'started'),
      page.getByRole('alert').first().waitFor().then(() => 'refused'),
    ]);
    if (outcome === 'refused') {
      await shot(page, '06-train-refused');
      assert.fail(`the hub refused to train: ${await page.getByRole('alert').first().innerText()}`);
    }
    state.jobId = /\/jobs\/(\d+)$/.exec(page.url())[1];
  });

  it('watches the progress bar and the learning curve until the run finishes', async (t) => {
    if (!state.jobId) return t.skip('no training run started (see above)');
    const bar = page.getByRole('progressbar', { name: 'Training progress' });
    await bar.waitFor().catch(async (err) => {
      await shot(page, '07-job-page-broken');
      throw new Error(`the job page shows no progress bar (page errors: ${page.errors.join(' | ') || 'none'}): ${err.message}`);
    });
    await shot(page, '07-job-running');
    await page.locator('.status-job-succeeded, .status-job-failed').waitFor({ timeout: 240_000 });
    const failed = await page.locator('.status-job-failed').count();
    assert.equal(failed, 0, `the run stopped with a problem: ${failed ? await page.locator('.card').first().innerText() : ''}`);
    assert.equal(await bar.getAttribute('aria-valuenow'), '100');
    state.finished = true;
    // Every epoch is recorded, so a finished run always has curves. (A run once resumed a finished
    // checkpoint that an earlier hub database's job with the same id had left in site storage, and
    // ended with no epochs of its own: job files are now named by a uid, not the id alone.)
    await page.getByRole('heading', { name: 'How it learned' }).waitFor({ timeout: 15_000 }).catch(async (err) => {
      await shot(page, '07-job-finished-without-curves');
      throw new Error(`the finished run shows no learning curves: ${err.message}`);
    });
    assert.ok((await page.locator('svg[role="img"] polyline, svg[role="img"] path').count()) > 0, 'curves are drawn');
  });

  it('reads the evaluation: summary in plain words, ROC curve, confusion matrix and sample heatmaps', async (t) => {
    if (!state.finished) return t.skip('the training run did not finish (see above)');
    const evaluation = page.getByTestId('evaluation');
    await evaluation.waitFor();
    assert.match(await evaluation.innerText(), /Out of 100 /);
    await page.getByTestId('roc-curve').waitFor();
    await page.getByTestId('confusion-matrix').waitFor();
    const gallery = page.getByTestId('sample-heatmaps');
    await gallery.waitFor({ timeout: 30_000 });
    const firstImage = gallery.locator('img').first();
    await firstImage.waitFor();
    // The overlay comes from the site's storage through a short-lived link: it must actually load.
    await until('the first heatmap overlay to load', () => firstImage.evaluate((img) => img.complete && img.naturalWidth > 0), { timeout: 20_000 });
    await expectClean(page);
    await shot(page, '08-evaluation');
    await checkTablet(page, '08-evaluation');
  });

  it('publishes the model for Borough by name', async (t) => {
    if (!state.finished) return t.skip('the training run did not finish (see above)');
    if (!(await apiHas(page, '/marketplace/versions/'))) return t.skip('the hub has no marketplace API yet');
    await page.getByRole('button', { name: 'Publish to the marketplace' }).click();
    const dialog = page.getByRole('dialog', { name: 'Publish this model' });
    await dialog.waitFor();
    await dialog.getByLabel('Name in the marketplace').fill(MODEL);
    await dialog.getByLabel('What it is for (intended use)').fill('Flags mammograms with a bright mass for a second look. Test model.');
    await dialog.getByLabel('Known limitations').fill('Trained on 20 generated images: for testing only, never for patients.');
    await dialog.getByRole('radio', { name: /Hospitals I name/ }).check();
    await dialog.getByRole('checkbox', { name: /Borough General/ }).check();
    await expectClean(page);
    await shot(page, '09-publish-dialog');
    await dialog.getByRole('button', { name: 'Publish' }).click();
    const status = page.getByTestId('publish-status');
    await status.waitFor();
    const link = await until('the publication to be recorded', async () => page.getByRole('link', { name: 'Open it in the marketplace' }).getAttribute('href').catch(() => null), { timeout: 20_000 });
    state.publishedModel = /\/marketplace\/models\/(\d+)/.exec(link)[1];
    if (!agentHasTask('pollen.gpu.publish')) {
      await shot(page, '10-publish-pending');
      return t.skip('the site agent cannot copy weights to the marketplace yet (no pollen.gpu.publish task): the version stays pending');
    }
    await page.getByText('Published', { exact: false }).filter({ hasText: /version \d+ is published/i }).waitFor({ timeout: 120_000 });
    state.published = true;
    await shot(page, '10-published');
  });
});

describe('clinician at Borough: find the model and apply it with a heatmap', () => {
  let page;
  before(async () => {
    page = await freshPage(browser.context);
    await signIn(page, 'bert-clinician');
  });
  after(async () => page?.close());

  it('finds it in the marketplace with its card, lineage and per-site results', async (t) => {
    if (!state.publishedModel) return t.skip('nothing was published (see above)');
    if (!state.published) return t.skip('the version is still being copied: others see it once it is published');
    await page.getByRole('link', { name: 'Marketplace' }).click();
    await page.getByLabel('Search models').fill(RUN);
    const card = page.getByTestId('model-list').getByRole('link', { name: MODEL });
    await card.waitFor({ timeout: 15_000 });
    await expectClean(page);
    await shot(page, '11-marketplace');
    await checkTablet(page, '11-marketplace');
    await card.click();
    await page.getByRole('heading', { name: MODEL, level: 1 }).waitFor();
    await page.getByRole('heading', { name: 'Intended use' }).waitFor();
    await page.getByRole('heading', { name: 'Limitations' }).waitFor();
    await page.getByTestId('lineage-graph').waitFor();
    const table = page.getByTestId('site-results');
    await table.waitFor();
    assert.match(await table.innerText(), /St Anne/);
    // The card shows counts only: never St Anne's dataset name or file names.
    const body = await page.locator('main').innerText();
    assert.doesNotMatch(body, new RegExp(DATASET));
    assert.doesNotMatch(body, /mass-\d+\.png|normal-\d+\.png/);
    await expectClean(page);
    await shot(page, '12-model-card');
    await checkTablet(page, '12-model-card');
  });

  it('applies it to a new image at Borough and sees probabilities and where the model looked', async (t) => {
    if (!state.published) return t.skip('nothing usable was published (see above)');
    if (!agentHasTask('pollen.gpu.predict')) return t.skip('the site agent cannot run predictions yet (no pollen.gpu.predict task)');
    await page.getByRole('link', { name: 'Use this model on my images' }).click();
    await page.getByRole('heading', { name: 'Apply a model', level: 1 }).waitFor();
    await until('Borough’s site agent', () => agentSeen(page, 'borough'), { timeout: 60_000 });
    const dir = mkdtempSync(path.join(tmpdir(), 'pollen-e2e-apply-'));
    const file = path.join(dir, 'new-mammogram.png');
    const { writeFileSync } = await import('node:fs');
    // Unique per run: the site turns away an exact copy of an image it already holds.
    const shade = 40 + (parseInt(RUN.slice(-4), 36) % 40);
    writeFileSync(file, greyPng(48, 48, (x, y) => ((x - 24) ** 2 + (y - 20) ** 2 < 64 ? 235 : shade + ((x * 7 + y * 3 + shade) % 11))));
    try {
      await page.getByTestId('file-input').setInputFiles(file);
      await page.getByRole('button', { name: 'Upload 1 image' }).click();
      await page.getByText('1 of 1 sent').waitFor({ timeout: 60_000 });
      // One request open at a time for the prediction, and each heatmap fetched once (issue 16, item 19).
      const traffic = { open: 0, mostOpen: 0, overlays: 0 };
      const isPoll = (r) => /\/api\/v1\/predictions\/\d+\//.test(r.url()) && r.method() === 'GET';
      const onRequest = (r) => {
        if (isPoll(r)) traffic.mostOpen = Math.max(traffic.mostOpen, ++traffic.open);
        if (r.resourceType() === 'image' && /predictions\/\d+\//.test(r.url())) traffic.overlays += 1;
      };
      const onDone = (r) => { if (isPoll(r)) traffic.open -= 1; };
      page.on('request', onRequest);
      page.on('requestfinished', onDone);
      page.on('requestfailed', onDone);
      await page.getByRole('button', { name: 'Run the model' }).click({ timeout: 90_000 });
      const results = page.getByTestId('prediction-results');
      await results.waitFor({ timeout: 180_000 });
      await results.getByRole('meter').first().waitFor();
      assert.match(await results.innerText(), /new-mammogram\.png/, 'the result is named by its file');
      const img = results.locator('img').first();
      await img.waitFor({ timeout: 30_000 });
      await until('the heatmap overlay to load', () => img.evaluate((el) => el.complete && el.naturalWidth > 0), { timeout: 20_000 });
      page.off('request', onRequest);
      page.off('requestfinished', onDone);
      page.off('requestfailed', onDone);
      assert.equal(traffic.mostOpen, 1, 'one prediction request open at a time');
      assert.ok(traffic.overlays <= 1, `the heatmap was fetched ${traffic.overlays} times`);
      await expectClean(page);
      await shot(page, '13-apply-result');
    await checkTablet(page, '13-apply-result');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('checks the model on Borough’s own labelled images, keeps the result private, then shares the totals', async (t) => {
    if (!state.published) return t.skip('nothing usable was published (see above)');
    if (!agentHasTask('pollen.gpu.evaluate')) return t.skip('the site agent cannot evaluate models yet (no pollen.gpu.evaluate task)');
    state.boroughDataset = await seedDataset(page, { site: 'borough', name: `Borough mammograms ${RUN}`, seed: parseInt(RUN.slice(-5), 36) });
    await page.goto(`${BASE_URL}/marketplace/models/${state.publishedModel}`);
    const card = page.getByTestId('evaluate-here');
    const select = card.getByLabel('Labelled images at Borough General');
    await until('Borough’s dataset to be offered', async () => (await select.locator('option').allInnerTexts()).some((o) => o.includes(RUN)), { timeout: 15_000, every: 200 });
    await select.selectOption(String(state.boroughDataset));
    await card.getByRole('button', { name: 'Check the model on these images' }).click();
    const result = page.getByTestId('evaluation-result');
    await result.waitFor({ timeout: 120_000 });
    await result.getByTestId('evaluation').waitFor();
    assert.match(await result.innerText(), /Out of 100 /);
    assert.match(await result.getByTestId('share-state').innerText(), /Private: only Borough General sees these results/);
    assert.doesNotMatch(await page.getByTestId('site-results').innerText(), /Borough/, 'nothing is shared before Borough chooses to');
    await expectClean(page);
    await shot(page, '14-evaluate-at-borough');
    await checkTablet(page, '14-evaluate-at-borough');
    await result.getByRole('button', { name: 'Share with the network' }).click();
    await result.getByTestId('share-state').filter({ hasText: /^Shared/ }).waitFor();
    await page.getByTestId('site-results').filter({ hasText: 'Borough General' }).waitFor({ timeout: 15_000 });
    const mine = await apiCall(page, 'GET', '/marketplace/evaluations/?page_size=100');
    state.evaluationId = mine.json.results.find((e) => String(e.published_model) === state.publishedModel)?.id;
    assert.ok(state.evaluationId, 'the evaluation is listed for Borough');
    await shot(page, '15-evaluation-shared');
  });

  it('improves the model with Borough’s images: the train page starts from the published version', async (t) => {
    if (!state.boroughDataset) return t.skip('Borough has no labelled dataset (see above)');
    await page.getByRole('link', { name: 'Improve this model with our images' }).click();
    await page.getByRole('heading', { name: 'Train a model', level: 1 }).waitFor();
    const shared = page.getByRole('radio', { name: new RegExp(`${MODEL}, version 1`) });
    await shared.waitFor();
    assert.equal(await shared.isChecked(), true, 'the published version is the starting point');
    await page.getByTestId('fine-tune-note').waitFor();
    await page.getByLabel('1. Images to learn from').selectOption(String(state.boroughDataset));
    await page.getByText('Advanced settings').click();
    await page.getByLabel('Rounds of learning (epochs)').fill('2');
    await expectClean(page);
    await shot(page, '16-fine-tune');
    await page.getByRole('button', { name: 'Start training' }).click();
    await page.waitForURL(/\/sites\/borough\/jobs\/\d+$/);
    const jobId = /\/jobs\/(\d+)$/.exec(page.url())[1];
    const job = await apiCall(page, 'GET', `/jobs/${jobId}/`);
    assert.ok(job.json.parent_version, 'the new run records the shared model as its parent');
    await page.locator('.status-job-succeeded, .status-job-failed').waitFor({ timeout: 180_000 });
    assert.equal(await page.locator('.status-job-failed').count(), 0, `the fine-tune stopped: ${await page.locator('.card').first().innerText()}`);
    assert.match(await page.locator('main').innerText(), /improving an existing model/);
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Training runs' }).click();
    await page.getByRole('link', { name: `Run #${jobId}` }).waitFor();
    await shot(page, '16b-training-runs');
    await checkTablet(page, '16b-training-runs');
  });

  it('takes a copy: the weights and manifest through short-lived links, and an ONNX file made at Borough', async (t) => {
    if (!state.published) return t.skip('nothing usable was published (see above)');
    await page.goto(`${BASE_URL}/marketplace/models/${state.publishedModel}`);
    const panel = page.getByTestId('download');
    assert.match(await panel.innerText(), /Every download is recorded in the audit log/);
    await panel.getByRole('button', { name: /Download version 1/ }).click();
    const links = panel.getByTestId('download-links');
    await links.waitFor();
    const get = async (name) => page.request.get(new URL(await links.getByRole('link', { name }).getAttribute('href'), BASE_URL).toString());
    assert.equal((await get(/weights\.safetensors/)).status(), 200);
    const manifest = await (await get(/manifest\.json/)).json();
    assert.deepEqual(manifest.label_names, ['mass', 'normal']);
    if (!agentHasTask('pollen.gpu.export')) return t.skip('the site agent cannot export to ONNX yet (no pollen.gpu.export task)');
    await panel.getByRole('button', { name: 'Prepare an ONNX file' }).click();
    await panel.getByTestId('onnx-ready').waitFor({ timeout: 120_000 });
    await panel.getByRole('button', { name: 'Get the download link' }).click();
    const onnx = await page.request.get(new URL(await panel.getByRole('link', { name: 'Download model.onnx' }).getAttribute('href'), BASE_URL).toString());
    assert.equal(onnx.status(), 200);
    assert.ok((await onnx.body()).length > 1000, 'an ONNX file, not an error page');
    await expectClean(page);
    await shot(page, '17-download');
  });

  it('cannot open St Anne’s dataset, training run or its heatmaps', async (t) => {
    if (!state.datasetId || !state.jobId) return t.skip('the flow above did not create a dataset and a run');
    for (const apiPath of [`/datasets/${state.datasetId}/`, `/datasets/${state.datasetId}/images/`, `/jobs/${state.jobId}/`, `/jobs/${state.jobId}/samples/`]) {
      const res = await apiCall(page, 'GET', apiPath);
      assert.equal(res.status, 404, `${apiPath} answered ${res.status}`);
    }
    await page.goto(`${BASE_URL}/sites/borough/jobs/${state.jobId}`);
    await page.getByTestId('no-access').waitFor();
  });
});

describe('administrator at St Anne’s: marks the version outdated, then withdraws it', () => {
  const who = signedIn(() => browser, 'anne-admin');

  it('is told what each step means before it happens, and then nobody can use the version', async (t) => {
    if (!state.published) return t.skip('nothing usable was published (see above)');
    const { page } = who;
    await page.goto(`${BASE_URL}/marketplace/models/${state.publishedModel}`);
    await page.getByRole('button', { name: 'Mark as outdated: version 1' }).click();
    let dialog = page.getByRole('dialog', { name: 'Mark version 1 as outdated?' });
    assert.match(await dialog.innerText(), /It stays usable/);
    await expectClean(page);
    await shot(page, '18-deprecate-dialog');
    await dialog.getByLabel('Reason (shown on the model page)').fill('Version 2 is coming: trained on more patients.');
    await dialog.getByRole('button', { name: 'Mark as outdated' }).click();
    await page.getByRole('cell', { name: /Deprecated.*Version 2 is coming/ }).waitFor();
    await page.getByText(/The publisher advises a newer version of this model/).waitFor();

    await page.getByRole('button', { name: 'Withdraw: version 1' }).click();
    dialog = page.getByRole('dialog', { name: 'Withdraw version 1?' });
    assert.match(await dialog.innerText(), /This cannot be undone/);
    await dialog.getByLabel('Reason (shown on the model page)').fill('Test model: never for patients.');
    await dialog.getByRole('button', { name: 'Withdraw it for everyone' }).click();
    await page.getByRole('cell', { name: /Withdrawn.*never for patients/ }).waitFor();
    assert.match(await page.getByTestId('withdrawn').innerText(), /nobody can apply, improve, check or download it any more\. Their reason: Test model/);
    assert.equal(await page.getByTestId('download').count(), 0, 'no downloads of a withdrawn version');
    await shot(page, '19-withdrawn');
    const detail = await apiCall(page, 'GET', `/marketplace/models/${state.publishedModel}/`);
    const versionId = detail.json.versions.find((v) => v.number === 1).id;
    const use = await apiCall(page, 'POST', '/predictions/', { published_version: versionId, site: 'st-anne', dataset: Number(state.datasetId) });
    assert.equal(use.status, 409, use.text);
    assert.equal(use.json.error.code, 'model_withdrawn');
    assert.match(use.json.error.message, /never for patients/);
  });
});

describe('outsider: sees none of St Anne’s private data', () => {
  let page;
  before(async () => {
    page = await freshPage(browser.context);
    await signIn(page, 'outsider-admin');
  });
  after(async () => page?.close());

  it('gets 404 for the dataset, its images, the run, its heatmaps and the model shared only with Borough', async (t) => {
    if (!state.datasetId) return t.skip('the flow above did not create a dataset');
    const paths = [`/datasets/${state.datasetId}/`, `/datasets/${state.datasetId}/images/`, `/datasets/${state.datasetId}/stats/`];
    if (state.jobId) paths.push(`/jobs/${state.jobId}/`, `/jobs/${state.jobId}/samples/`);
    if (state.publishedModel) paths.push(`/marketplace/models/${state.publishedModel}/`);
    if (state.evaluationId) paths.push(`/marketplace/evaluations/${state.evaluationId}/`);
    if (state.boroughDataset) paths.push(`/datasets/${state.boroughDataset}/`);
    for (const apiPath of paths) {
      const res = await apiCall(page, 'GET', apiPath);
      assert.equal(res.status, 404, `${apiPath} answered ${res.status}`);
      assert.doesNotMatch(res.text, new RegExp(DATASET));
    }
    for (const apiPath of ['/datasets/', '/jobs/', '/models/']) {
      const res = await apiCall(page, 'GET', apiPath);
      assert.equal(res.status, 200, `${apiPath} answered ${res.status}`);
      assert.doesNotMatch(res.text, new RegExp(`${DATASET}|${MODEL}`), `${apiPath} leaks nothing`);
    }
    if (await apiHas(page, '/marketplace/models/')) {
      const listing = await apiCall(page, 'GET', `/marketplace/models/?search=${RUN}`);
      assert.equal(listing.json?.count, 0, 'the model shared with Borough by name is not listed for others');
      await page.goto(`${BASE_URL}/marketplace`);
      await page.getByLabel('Search models').fill(RUN);
      await page.getByTestId('marketplace-empty').waitFor({ timeout: 15_000 });
      await shot(page, '14-outsider-marketplace');
    }
    await page.goto(`${BASE_URL}/sites/st-anne/datasets/${state.datasetId}`);
    await page.getByTestId('no-access').waitFor();
    assert.equal(await page.getByText(DATASET).count(), 0);
    await shot(page, '15-outsider-no-access');
  });
});
