// End-to-end: the customer's task view. An imageannotation task sent with an API key comes
// back in test mode with a box response; its page draws each box over the attachment (served
// here from a local image host) at the box's place in the image, scaled with the image, at
// 1280 and 390 px, without sideways scrolling; it names the key and links the project. The
// task list searches by metadata and shows a refused field next to itself. Screenshots at
// both widths.
//
// Environment: TESSERA_BIN, TESSERA_TEST_PYTHON, TESSERA_E2E_DATABASE_URL (see lib/harness.mjs).

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { once } from 'node:events';
import { startEnvironment } from './lib/harness.mjs';

const STEP_TIMEOUT = 120_000;
const stamp = `${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;
const admin = {
  email: `viewer.${stamp}@example.com`,
  password: 'correct horse battery',
  team: `Task view ${stamp}`,
};
// The attachment: 400 x 300 image pixels.
const IMAGE_WIDTH = 400;
const IMAGE_HEIGHT = 300;
const IMAGE = `<svg xmlns="http://www.w3.org/2000/svg" width="${IMAGE_WIDTH}" height="${IMAGE_HEIGHT}">
<rect width="100%" height="100%" fill="#9aa5b1"/><rect x="200" y="150" width="120" height="80" fill="#495057"/></svg>`;

const overflows = (page) => page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth + 1);

async function navigateBy(page, action) {
  const navigation = page.waitForNavigation({ waitUntil: 'load' });
  await action();
  return navigation;
}

describe('The task view draws the response over the attachment', { timeout: 8 * STEP_TIMEOUT }, () => {
  let env;
  let page;
  let imageHost;
  let imageUrl;
  let key;
  let taskId;
  let failed = false;
  const pageErrors = [];

  const step = (name, fn) => it(name, { timeout: STEP_TIMEOUT }, async (t) => {
    if (failed) {
      t.skip('an earlier step failed');
      return;
    }
    try {
      await fn(t);
    } catch (err) {
      failed = true;
      if (page && !page.isClosed()) await env.screenshot(page, 'FAILED').catch(() => {});
      if (env) err.message += `\n--- last lines of the Tessera log ---\n${env.serverLog().split('\n').slice(-25).join('\n')}`;
      throw err;
    }
  });

  before(async () => {
    imageHost = http.createServer((req, res) => {
      res.writeHead(200, { 'Content-Type': 'image/svg+xml' });
      res.end(IMAGE);
    });
    imageHost.listen(0, '127.0.0.1');
    await once(imageHost, 'listening');
    imageUrl = `http://127.0.0.1:${imageHost.address().port}/street.svg`;
    env = await startEnvironment({ label: 'task-view' });
    const context = await env.newContext();
    page = await context.newPage();
    await page.setViewportSize({ width: 1280, height: 900 });
    page.on('pageerror', (err) => pageErrors.push(err.message));
    page.on('console', (msg) => { if (msg.type() === 'error' && !msg.text().startsWith('Failed to load resource')) pageErrors.push(msg.text()); });
  });

  after(async () => {
    if (env) await env.stop();
    if (imageHost) {
      imageHost.closeAllConnections();
      imageHost.close();
    }
  });

  /** Where the first box is drawn and where the image is, in CSS pixels of the page. */
  const boxAndImage = () => page.evaluate(() => {
    const img = document.getElementById('attachment-image').getBoundingClientRect();
    const box = document.querySelector('.annotation-box .shape').getBoundingClientRect();
    const label = document.querySelector('.annotation-box text').getBoundingClientRect();
    return { img: { x: img.x, y: img.y, width: img.width, height: img.height }, box: { x: box.x, y: box.y, width: box.width, height: box.height }, label: { x: label.x, y: label.y, height: label.height } };
  });

  /** The first box of the synthetic response is left 10, top 10, 50 x 40 image pixels. */
  async function assertBoxInPlace(width) {
    await page.waitForSelector('#annotation-overlay.ready', { state: 'attached' });
    const { img, box, label } = await boxAndImage();
    const scale = img.width / IMAGE_WIDTH;
    assert.ok(Math.abs(img.height / img.width - IMAGE_HEIGHT / IMAGE_WIDTH) < 0.01, 'the image keeps its proportions');
    const near = (actual, expected, what) => assert.ok(Math.abs(actual - expected) <= 1.5, `${what} at ${width} px: ${actual} ≠ ${expected}`);
    near(box.x, img.x + 10 * scale, 'box left');
    near(box.y, img.y + 10 * scale, 'box top');
    near(box.width, 50 * scale, 'box width');
    near(box.height, 40 * scale, 'box height');
    assert.ok(label.x >= box.x && label.y >= box.y - 1 && label.y < box.y + box.height, 'the label sits in the box');
    assert.ok(label.height >= 10 && label.height <= 24, `the label is a readable size (${label.height} px)`);
    return scale;
  }

  step('a new team sends an imageannotation task with a test key', async () => {
    await page.goto('/signup');
    await page.getByLabel('Work email').fill(admin.email);
    await page.getByLabel('Password', { exact: true }).fill(admin.password);
    await page.getByLabel('Your name').fill('Vera Viewer');
    await page.getByLabel('Team name').fill(admin.team);
    await navigateBy(page, () => page.getByRole('button', { name: 'Sign up' }).click());
    await navigateBy(page, () => page.getByRole('button', { name: 'Create a test key' }).click());
    key = (await page.locator('#test-key').textContent()).trim();
    const auth = `Basic ${Buffer.from(`${key}:`).toString('base64')}`;
    const post = (path, body) => fetch(`${env.baseUrl}/v1${path}`, { method: 'POST', headers: { authorization: auth, 'content-type': 'application/json' }, body: JSON.stringify(body) });
    assert.equal((await post('/projects', { type: 'imageannotation', name: 'street' })).status, 200);
    const res = await post('/task/imageannotation', {
      project: 'street',
      attachment: imageUrl,
      attachment_type: 'image',
      metadata: { camera: 'north-gate' },
      geometries: { box: { objects_to_annotate: ['car', 'bus'] } },
    });
    const task = await res.json();
    assert.equal(res.status, 200, JSON.stringify(task));
    assert.equal(task.status, 'completed');
    assert.equal(task.response.annotations[0].left, 10);
    taskId = task.task_id;
  });

  step('at 1280 px the boxes are drawn where the response puts them, labelled, with the key and project named', async () => {
    await page.goto(`/test/tasks/${taskId}`);
    const scale = await assertBoxInPlace(1280);
    assert.ok(Math.abs(scale - 1) < 0.01, 'a small image is shown at its own size');
    assert.equal(await page.locator('.annotation-box').count(), 2);
    const listed = (await page.locator('#annotation-list li').allTextContents()).map((t) => t.replace(/\s+/g, ' ').trim());
    assert.deepEqual(listed, ['car · box', 'bus · box']);
    assert.equal((await page.locator('#task-created-by').textContent()).trim(), `API key Get started (${key.slice(0, 12)}…)`);
    assert.equal(await page.locator('#task-project').getAttribute('href'), '/test/projects/view?name=street');
    assert.equal(await overflows(page), false, 'no sideways scrolling at 1280 px');
    await env.screenshot(page, 'task-view-1280');
  });

  step('at 390 px the image and its boxes shrink together and the page does not scroll sideways', async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    await page.goto(`/test/tasks/${taskId}`);
    const scale = await assertBoxInPlace(390);
    assert.ok(scale < 0.95, `the image is scaled down to fit (${scale})`);
    assert.equal(await overflows(page), false, 'no sideways scrolling at 390 px');
    await env.screenshot(page, 'task-view-390');
    // Resizing redraws at the new scale.
    await page.setViewportSize({ width: 1280, height: 900 });
    await page.waitForFunction(() => document.getElementById('attachment-image').getBoundingClientRect().width > 399);
    await assertBoxInPlace(1280);
    await page.setViewportSize({ width: 390, height: 844 });
  });

  step('the task list finds the task by metadata and points at a refused field, at 390 px', async () => {
    await page.goto('/test/tasks');
    await page.getByLabel('Metadata').fill('camera=north-gate');
    await navigateBy(page, () => page.getByRole('button', { name: 'Search' }).click());
    assert.equal(await page.locator('#tasks tbody tr').count(), 1);
    assert.ok((await page.locator('#tasks').textContent()).includes(taskId));
    assert.equal(await overflows(page), false, 'the list fits at 390 px');
    await page.getByLabel('Metadata').fill('north-gate');
    await navigateBy(page, () => page.getByRole('button', { name: 'Search' }).click());
    const field = page.getByLabel('Metadata');
    assert.equal(await field.getAttribute('aria-invalid'), 'true');
    assert.equal(await field.inputValue(), 'north-gate', 'the input is kept');
    assert.match(await page.locator('#metadata-error').textContent(), /key=value/);
    assert.ok(await page.locator('#metadata-error').isVisible());
    assert.equal(await overflows(page), false, 'the refused search fits at 390 px');
    await env.screenshot(page, 'task-search-refused-390');
    await page.setViewportSize({ width: 1280, height: 900 });
    await env.screenshot(page, 'task-search-refused-1280');
    assert.deepEqual(pageErrors, []);
  });
});
