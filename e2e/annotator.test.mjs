// End-to-end: the labeling tool on a labeler's tasks. A small image server on 127.0.0.1 serves
// a 400×300 SVG; an Admin signs up, adds a live API key and creates (through the v1 API, with
// that key) a live imageannotation task whose attachment is the image, whose geometries ask for
// boxes labeled "car" or "bus", and whose callback_url points at a receiver started here. A
// teammate invited as Labeler takes it with "Next task": the page shows the image (loaded, at
// its natural size) under a drawing canvas near the top, beside the legend of labels (a colour
// and number key each), Undo and the box list; at 1280×800 the image and the tools are all in
// view. Dragging (pointer events: mouse, and a touch drag) writes boxes into the response JSON
// in the image's pixels (and draws them); each box can be deleted from the list, Undo brings it
// back, "Clear boxes" removes all; with a narrow window (the image shown scaled down) a box is
// still written in the image's own pixels. Submit & next lands on the next task: a
// categorization of the same image, shown inline with its categories as radio buttons, none
// picked, kept in step with the JSON; then another box task done with the keyboard alone (label
// keys, a new box, arrows to move and resize, relabel, select, Delete, undo, and Tab to Submit
// & next, which with nothing left goes back to the queue). The labeler's history lists the
// completed tasks newest first and opens one read-only with its boxes drawn. Every labeling page
// fits 390 px without sideways scrolling (screenshots at 1280 and 390). The submitted box
// reaches the receiver in the callback and the API returns the task completed with it. No page
// logs a JavaScript error or a Content Security Policy violation (the labeling page must let the
// customer's image load).
//
// Run: `node --test e2e/` from the repository root after `cargo build` (see scripts/test).
// Environment: TESSERA_BIN, TESSERA_TEST_PYTHON, TESSERA_E2E_DATABASE_URL (see lib/harness.mjs).

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { once } from 'node:events';
import { startEnvironment, inviteLink, waitFor } from './lib/harness.mjs';

const STEP_TIMEOUT = 120_000;
const stamp = `${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;

const admin = {
  email: `boxes.${stamp}@example.com`,
  password: 'correct horse battery',
  name: 'Bea Boxes',
  company: 'Roadside Vision',
  team: `Boxes ${stamp}`,
};
const labeler = { email: `drawer.${stamp}@example.com`, name: 'Dora Drawer', company: 'Careful Clicks', password: 'draw-every-box-7' };
const instruction = `Draw a box around every car and bus (${stamp}).`;
const labels = ['car', 'bus'];
const IMAGE = { width: 400, height: 300 };
const imagePath = `/images/street-${stamp}.svg`;
const svg = `<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="${IMAGE.width}" height="${IMAGE.height}" viewBox="0 0 ${IMAGE.width} ${IMAGE.height}">
  <rect width="${IMAGE.width}" height="${IMAGE.height}" fill="#dde6ee"/>
  <rect y="200" width="${IMAGE.width}" height="100" fill="#777"/>
  <rect x="40" y="150" width="120" height="60" fill="#c92a2a"/>
  <rect x="220" y="110" width="150" height="100" fill="#f2b705"/>
</svg>
`;
// How far (in CSS pixels) a drawn box may be from the drag: mouse events have integer client
// coordinates, and the canvas may sit at a fractional offset.
const SLACK = 2;

/** Runs `action` (a click or a submit) and waits until the navigation it causes has loaded. */
async function navigateBy(page, action) {
  const navigation = page.waitForNavigation({ waitUntil: 'load' });
  await action();
  return navigation;
}

async function flashText(page) {
  const flash = page.locator('.flash[role="status"]');
  await flash.waitFor({ state: 'visible' });
  return (await flash.textContent()).trim();
}

const pathOf = (page) => new URL(page.url()).pathname;
const squash = (text) => text.replace(/\s+/g, ' ').trim();

describe('Tessera box annotator on an imageannotation task in a real browser', { timeout: 15 * STEP_TIMEOUT }, () => {
  let env;
  let images;
  let receiver;
  let adminContext;
  let adminPage;
  let labelerContext;
  let labelerPage;
  let failed = false;
  const pageErrors = [];
  const consoleErrors = [];
  const cspViolations = [];
  const serverErrors = [];
  const refusals = []; // paths this test expects a 400 page from
  const imageRequests = []; // { path, headers }
  const received = []; // { method, path, headers, body (Buffer) }

  // Shared between the steps.
  let liveKey = '';
  let taskId = '';
  let imageUrl = '';
  let callbackPath = '';
  let submitted = null; // the response JSON as submitted
  let categorizationId = '';
  let keyboardId = '';
  let denseId = '';

  /** A sequential step: skipped once an earlier one failed; screenshots the pages on failure. */
  const step = (name, fn) => it(name, { timeout: STEP_TIMEOUT }, async (t) => {
    if (failed) {
      t.skip('an earlier step failed');
      return;
    }
    try {
      await fn(t);
    } catch (err) {
      failed = true;
      for (const [who, page] of [['admin', adminPage], ['labeler', labelerPage]]) {
        if (page && !page.isClosed()) await env.screenshot(page, `FAILED-${who}`).catch(() => {});
      }
      if (env) err.message += `\n--- last lines of the Tessera log ---\n${env.serverLog().split('\n').slice(-25).join('\n')}`;
      throw err;
    }
  });

  /** A browser session that reports JS errors, console errors and CSP violations. */
  const newWatchedContext = async (who) => {
    const context = await env.newContext();
    // Both run outside the page's CSP (DevTools protocol), so a strict script-src cannot hide
    // a violation from us.
    await context.exposeBinding('__tesseraCspViolation', ({ page }, v) => {
      cspViolations.push(`${who}: ${page ? page.url() : '?'}: ${v.directive} blocked ${v.blocked}`);
    });
    await context.addInitScript(() => {
      document.addEventListener('securitypolicyviolation', (e) => {
        window.__tesseraCspViolation({ directive: e.violatedDirective, blocked: e.blockedURI });
      });
    });
    return context;
  };

  const watch = (page, who) => {
    page.on('pageerror', (err) => pageErrors.push(`${who}: ${err.message}`));
    page.on('console', (msg) => {
      if (msg.type() !== 'error') return;
      // The refusals this test asks for (a 400 page) are logged as failed loads: expected.
      const url = msg.location().url || page.url();
      if (/status of 400\b/.test(msg.text()) && refusals.includes(new URL(url).pathname)) return;
      consoleErrors.push(`${who}: ${url}: ${msg.text()}`);
    });
    page.on('response', (res) => {
      if (res.status() >= 500) serverErrors.push(`${who}: ${res.request().method()} ${res.url()} -> ${res.status()}`);
    });
    return page;
  };

  /** A v1 API call with HTTP Basic auth (the key as user name, empty password). */
  const api = async (method, path, body, key = liveKey) => {
    const headers = { Authorization: `Basic ${Buffer.from(`${key}:`).toString('base64')}` };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const res = await fetch(`${env.baseUrl}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await res.text();
    let json;
    try { json = JSON.parse(text); } catch { json = undefined; }
    return { status: res.status, text, json };
  };

  const callbacksTo = (path) => received.filter((c) => c.path === path);

  // --- the annotator on the labeler's page ----------------------------------------------------
  const editor = () => labelerPage.getByLabel('Response JSON');
  const responseJson = async () => JSON.parse(await editor().inputValue());
  const boxes = async () => (await responseJson()).annotations.filter((a) => a.type === 'box');
  const canvas = () => labelerPage.locator('#annotator-canvas');
  const chooseLabel = (label) => labelerPage.locator(`input[name="annotator-label"][value="${label}"]`).check();
  const boxList = () => labelerPage.locator('#annotator-boxes li').evaluateAll((items) => items.map((li) => li.textContent.replace(/\s+/g, ' ').trim()));
  /** The page is no wider than the window (no sideways scrolling). */
  const fitsWidth = (page) => page.evaluate(() => ({
    scroll: document.documentElement.scrollWidth,
    width: document.documentElement.clientWidth,
  }));
  const assertFits = async (page, what) => {
    const { scroll, width } = await fitsWidth(page);
    assert.ok(scroll <= width, `${what}: ${scroll}px wide in a ${width}px window`);
  };
  /** Presses Tab until the element with `id` has the focus (a keyboard user's way there). */
  const tabTo = async (id, limit = 60) => {
    for (let i = 0; i < limit; i += 1) {
      if (await labelerPage.evaluate(() => document.activeElement && document.activeElement.id) === id) return;
      await labelerPage.keyboard.press('Tab');
    }
    assert.fail(`Tab never reached #${id}`);
  };

  /** What the image and canvas look like on the page right now. */
  const stage = () => labelerPage.evaluate(() => {
    const img = document.getElementById('annotator-image');
    const cnv = document.getElementById('annotator-canvas');
    const ri = img.getBoundingClientRect();
    const rc = cnv.getBoundingClientRect();
    return {
      complete: img.complete,
      naturalWidth: img.naturalWidth,
      naturalHeight: img.naturalHeight,
      clientWidth: img.clientWidth,
      clientHeight: img.clientHeight,
      image: { left: ri.left, top: ri.top, width: ri.width, height: ri.height },
      canvas: { left: rc.left, top: rc.top, width: rc.width, height: rc.height, pixelWidth: cnv.width, pixelHeight: cnv.height },
    };
  });

  /**
   * Drags with the mouse from (x1, y1) to (x2, y2), in CSS pixels relative to the canvas's top
   * left corner; returns the dragged rectangle in those pixels.
   */
  const drag = async (x1, y1, x2, y2) => {
    await canvas().evaluate((el) => el.scrollIntoView({ block: 'center', inline: 'nearest' }));
    const box = await canvas().boundingBox();
    assert.ok(box, 'the canvas is on screen');
    await labelerPage.mouse.move(box.x + x1, box.y + y1);
    await labelerPage.mouse.down();
    await labelerPage.mouse.move(box.x + (x1 + x2) / 2, box.y + (y1 + y2) / 2, { steps: 4 });
    await labelerPage.mouse.move(box.x + x2, box.y + y2, { steps: 4 });
    await labelerPage.mouse.up();
    return { left: Math.min(x1, x2), top: Math.min(y1, y2), width: Math.abs(x2 - x1), height: Math.abs(y2 - y1) };
  };

  /** The box matches the dragged rectangle (CSS pixels) scaled by `scale` into image pixels. */
  const assertBoxMatches = (got, label, dragged, scale) => {
    assert.equal(got.type, 'box');
    assert.equal(got.label, label);
    for (const key of ['left', 'top', 'width', 'height']) {
      assert.equal(typeof got[key], 'number', `${key} is a number: ${JSON.stringify(got)}`);
      assert.ok(Number.isInteger(got[key]), `${key} is whole image pixels: ${JSON.stringify(got)}`);
      const want = dragged[key] * scale;
      assert.ok(Math.abs(got[key] - want) <= SLACK * scale + 1,
        `${key} ${got[key]} ≈ ${want} (dragged ${JSON.stringify(dragged)} at scale ${scale}): ${JSON.stringify(got)}`);
    }
    assert.ok(got.left >= 0 && got.top >= 0, `inside the image: ${JSON.stringify(got)}`);
    assert.ok(got.left + got.width <= IMAGE.width && got.top + got.height <= IMAGE.height, `inside the image: ${JSON.stringify(got)}`);
  };

  /** Whether the canvas has something drawn near (x, y) (CSS pixels = canvas pixels here). */
  const inkNear = (x, y) => labelerPage.evaluate(([px, py]) => {
    const cnv = document.getElementById('annotator-canvas');
    const sx = cnv.width / cnv.getBoundingClientRect().width;
    const sy = cnv.height / cnv.getBoundingClientRect().height;
    const cx = Math.round(px * sx);
    const cy = Math.round(py * sy);
    const data = cnv.getContext('2d').getImageData(Math.max(cx - 2, 0), Math.max(cy - 2, 0), 5, 5).data;
    for (let i = 3; i < data.length; i += 4) if (data[i] > 0) return true;
    return false;
  }, [x, y]);

  /** Whether the whole canvas is blank. */
  const canvasBlank = () => labelerPage.evaluate(() => {
    const cnv = document.getElementById('annotator-canvas');
    if (!cnv.width || !cnv.height) return true;
    const data = cnv.getContext('2d').getImageData(0, 0, cnv.width, cnv.height).data;
    for (let i = 3; i < data.length; i += 4) if (data[i] > 0) return false;
    return true;
  });

  before(async () => {
    // The customer's image host: one SVG with its own size, the right content type.
    images = http.createServer((req, res) => {
      imageRequests.push({ path: req.url, headers: req.headers });
      if (req.method === 'GET' && req.url === imagePath) {
        res.writeHead(200, { 'Content-Type': 'image/svg+xml', 'Content-Length': Buffer.byteLength(svg), 'Cache-Control': 'no-store' });
        res.end(svg);
      } else {
        res.writeHead(404, { 'Content-Type': 'text/plain' });
        res.end('not found');
      }
    });
    images.listen(0, '127.0.0.1');
    await once(images, 'listening');
    imageUrl = `http://127.0.0.1:${images.address().port}${imagePath}`;

    // The callback receiver: records every request and answers 200.
    receiver = http.createServer((req, res) => {
      const chunks = [];
      req.on('data', (c) => chunks.push(c));
      req.on('end', () => {
        received.push({ method: req.method, path: req.url, headers: req.headers, body: Buffer.concat(chunks) });
        res.writeHead(200, { 'Content-Type': 'text/plain' });
        res.end('ok');
      });
    });
    receiver.listen(0, '127.0.0.1');
    await once(receiver, 'listening');
    callbackPath = `/annotator-callback/${stamp}`;

    // The receiver is on 127.0.0.1, which production refuses as a callback target.
    env = await startEnvironment({ label: 'annotator', serverArgs: ['--allow-private-callbacks'] });
    adminContext = await newWatchedContext('admin');
    adminPage = watch(await adminContext.newPage(), 'admin');
  });

  after(async () => {
    if (env) await env.stop();
    for (const server of [images, receiver]) {
      if (server) {
        server.closeAllConnections();
        server.close();
      }
    }
  });

  step('an admin signs up and adds a live API key', async () => {
    const res = await adminPage.goto('/signup');
    assert.equal(res.status(), 200);
    await adminPage.getByLabel('Work email').fill(admin.email);
    await adminPage.getByLabel('Password', { exact: true }).fill(admin.password);
    await adminPage.getByLabel('Your name').fill(admin.name);
    await adminPage.getByLabel('Company').fill(admin.company);
    await adminPage.getByLabel('Team name').fill(admin.team);
    await navigateBy(adminPage, () => adminPage.getByRole('button', { name: 'Sign up' }).click());
    assert.equal(pathOf(adminPage), '/', 'a new team starts on Get started');
    assert.match(await flashText(adminPage), /is ready, and you are its Admin/);
    await env.verifyEmail(adminPage, admin.email);

    await adminPage.goto('/keys');
    const live = adminPage.locator('#mode-live');
    await live.getByLabel('Label (optional)').fill('annotator e2e');
    await navigateBy(adminPage, () => live.getByRole('button', { name: 'Add live key' }).click());
    liveKey = (await adminPage.locator('#secret-value').textContent()).trim();
    assert.match(liveKey, /^live_\S{16,}$/, `a live key: ${liveKey}`);
  });

  step('the image host serves the SVG with its content type', async () => {
    const res = await fetch(imageUrl);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'image/svg+xml');
    assert.match(await res.text(), new RegExp(`width="${IMAGE.width}" height="${IMAGE.height}"`));
    imageRequests.length = 0;
  });

  step('the API creates a live imageannotation task on the image, asking for car and bus boxes', async () => {
    const { port } = receiver.address();
    const res = await api('POST', '/v1/task/imageannotation', {
      callback_url: `http://127.0.0.1:${port}${callbackPath}`,
      instruction,
      attachment: imageUrl,
      geometries: { box: { objects_to_annotate: labels } },
    });
    assert.equal(res.status, 200, `created: ${res.text}`);
    taskId = res.json.task_id;
    assert.ok(taskId, `a task id: ${res.text}`);
    assert.equal(res.json.type, 'imageannotation');
    assert.equal(res.json.status, 'pending', 'a live task waits for a labeler');
    assert.equal(res.json.params.attachment, imageUrl);
    assert.deepEqual(res.json.params.geometries, { box: { objects_to_annotate: labels } });
  });

  step('the admin invites a teammate as Labeler, who accepts and lands on the queue', async () => {
    await adminPage.goto('/team');
    const invite = adminPage.locator('#invite');
    await invite.getByLabel('Email addresses').fill(labeler.email);
    await invite.locator('select[name="role"]').selectOption('labeler');
    await navigateBy(adminPage, () => invite.getByRole('button', { name: 'Send invitations' }).click());
    assert.match(await flashText(adminPage), /^Invitation sent to /);

    const [mail] = await env.mailsTo(labeler.email);
    labelerContext = await newWatchedContext('labeler');
    labelerPage = watch(await labelerContext.newPage(), 'labeler');
    const res = await labelerPage.goto(inviteLink(mail));
    assert.equal(res.status(), 200);
    await labelerPage.getByLabel('Your name').fill(labeler.name);
    await labelerPage.getByLabel('Company').fill(labeler.company);
    await labelerPage.getByLabel('Password', { exact: true }).fill(labeler.password);
    await labelerPage.getByLabel('Repeat password').fill(labeler.password);
    await navigateBy(labelerPage, () => labelerPage.getByRole('button', { name: 'Accept invitation' }).click());
    assert.equal(pathOf(labelerPage), '/label', 'a Labeler lands on the labeling queue');
    assert.equal((await labelerPage.locator('#queue-length').textContent()).trim(), '1');
  });

  step('"Next task" opens the task with the annotator: the labels, the loaded image, an empty response', async () => {
    await navigateBy(labelerPage, () => labelerPage.getByRole('button', { name: 'Next task' }).click());
    assert.equal(pathOf(labelerPage), `/label/${taskId}`);
    assert.match(squash(await labelerPage.getByRole('heading', { level: 1 }).textContent()), new RegExp(`imageannotation task ${taskId}`));
    assert.equal((await labelerPage.locator('.instruction').textContent()).trim(), instruction);

    const annotator = labelerPage.locator('#annotator');
    await annotator.waitFor({ state: 'visible' });
    // The legend: each label with its number key and its own colour; the first is the label
    // for new boxes.
    const legend = await labelerPage.locator('input[name="annotator-label"]').evaluateAll((inputs) => inputs.map((i) => {
      const item = i.closest('label');
      return [i.value, i.checked, item.querySelector('kbd').textContent, getComputedStyle(item.querySelector('.swatch')).backgroundColor];
    }));
    assert.deepEqual(legend.map(([l, checked, key]) => [l, checked, key]), [['car', true, '1'], ['bus', false, '2']]);
    assert.notEqual(legend[0][3], legend[1][3], 'a colour per label');
    assert.equal(await labelerPage.locator('#annotator-image').getAttribute('src'), imageUrl);
    assert.equal(await annotator.getByRole('button', { name: 'Clear boxes' }).count(), 1);
    assert.ok(await annotator.getByRole('button', { name: 'Undo' }).isDisabled(), 'nothing to undo yet');
    assert.match(squash(await labelerPage.locator('#annotator-keys').textContent()), /Delete\s*delete the selected box/);

    // The image came from the customer's host, and loaded (the page's policy lets it).
    const loaded = await waitFor('the attachment image to load', async () => {
      const s = await stage();
      return s.complete && s.naturalWidth > 0 ? s : null;
    }, { timeoutMs: 10_000 });
    assert.deepEqual([loaded.naturalWidth, loaded.naturalHeight], [IMAGE.width, IMAGE.height]);
    assert.ok(imageRequests.some((r) => r.path === imagePath), `the browser fetched the image: ${JSON.stringify(imageRequests.map((r) => r.path))}`);
    // At this window size it is shown at its natural size, with the canvas exactly over it.
    assert.deepEqual([loaded.clientWidth, loaded.clientHeight], [IMAGE.width, IMAGE.height]);
    const s = await waitFor('the canvas to cover the image', async () => {
      const now = await stage();
      return now.canvas.pixelWidth === now.clientWidth && now.canvas.pixelHeight === now.clientHeight ? now : null;
    }, { timeoutMs: 5_000 });
    for (const key of ['left', 'top', 'width', 'height']) {
      assert.ok(Math.abs(s.canvas[key] - s.image[key]) < 1, `canvas ${key} ${s.canvas[key]} = image ${s.image[key]}`);
    }

    assert.deepEqual(await responseJson(), { annotations: [], global_attributes: {} });
    assert.ok(await canvasBlank(), 'nothing drawn yet');
    await env.screenshot(labelerPage, 'annotator-empty');

    // On a laptop screen the image, the labels and Submit & next are in view without scrolling.
    await labelerPage.setViewportSize({ width: 1280, height: 800 });
    await labelerPage.evaluate(() => window.scrollTo(0, 0));
    for (const selector of ['#annotator-image', '#annotator-legend', '#annotator-undo', '#submit-next']) {
      const box = await labelerPage.locator(selector).boundingBox();
      assert.ok(box && box.y >= 0 && box.y + box.height <= 800 && box.x + box.width <= 1280, `${selector} in view at 1280×800: ${JSON.stringify(box)}`);
    }
    await assertFits(labelerPage, 'the task page at 1280');
    await env.screenshot(labelerPage, 'annotator-1280');
    await labelerPage.setViewportSize({ width: 1200, height: 900 });
  });

  step('submitting no boxes asks for confirmation, keeping the page', async () => {
    refusals.push(`/label/${taskId}`);
    const res = await navigateBy(labelerPage, () => labelerPage.getByRole('button', { name: 'Submit', exact: true }).click());
    assert.equal(res.status(), 400);
    assert.match(await labelerPage.locator('p.error[role="alert"]').textContent(), /This response has no boxes\./);
    assert.equal(await labelerPage.getByRole('button', { name: 'Submit with no boxes' }).count(), 1);
    assert.deepEqual(await responseJson(), { annotations: [], global_attributes: {} });
    const res2 = await api('GET', `/v1/task/${taskId}`);
    assert.equal(res2.json.status, 'pending', 'nothing was sent');
    await labelerPage.locator('#annotator-image').waitFor({ state: 'visible' });
    await waitFor('the attachment image to load again', async () => {
      const now = await stage();
      return now.complete && now.naturalWidth > 0 && now.canvas.pixelWidth === now.clientWidth ? now : null;
    }, { timeoutMs: 10_000 });
    await env.screenshot(labelerPage, 'annotator-no-boxes');
  });

  step('dragging with "bus" selected writes one bus box in image pixels and draws it', async () => {
    await chooseLabel('bus');
    const dragged = await drag(50, 40, 250, 190);
    const got = await boxes();
    assert.equal(got.length, 1, `one box: ${JSON.stringify(got)}`);
    assertBoxMatches(got[0], 'bus', dragged, 1);
    const all = await responseJson();
    assert.deepEqual(all.global_attributes, {}, 'the rest of the response is kept');
    assert.equal(all.annotations.length, 1);
    // It is drawn: ink on its left edge, none well inside it.
    assert.ok(await inkNear(dragged.left, dragged.top + dragged.height / 2), 'the left edge is drawn');
    assert.ok(await inkNear(dragged.left + dragged.width, dragged.top + dragged.height / 2), 'the right edge is drawn');
    assert.ok(!(await inkNear(dragged.left + dragged.width / 2, dragged.top + dragged.height / 2 + 20)), 'the inside is not filled');
    await env.screenshot(labelerPage, 'annotator-bus');
  });

  step('a second drag with "car" adds a car box; "Clear boxes" removes both', async () => {
    await chooseLabel('car');
    // Dragged from bottom right to top left: still a box with a positive size.
    const dragged = await drag(380, 280, 300, 210);
    const got = await boxes();
    assert.equal(got.length, 2, `two boxes: ${JSON.stringify(got)}`);
    assert.equal(got[0].label, 'bus', 'the first box stays');
    assertBoxMatches(got[1], 'car', dragged, 1);
    // A click without a drag adds nothing.
    const before = await editor().inputValue();
    await drag(100, 250, 101, 251);
    assert.equal(await editor().inputValue(), before, 'a click is not a box');
    await env.screenshot(labelerPage, 'annotator-bus-car');
    const both = await boxes();
    const list = await boxList();
    assert.equal(list.length, 2, `the list shows both: ${JSON.stringify(list)}`);
    assert.match(list[0], /^1\. bus · /);
    assert.match(list[1], /^2\. car · /);

    // One box deleted from the list; Undo brings it back where it was.
    await labelerPage.getByRole('button', { name: 'Delete box 1 (bus)' }).click();
    assert.deepEqual(await boxes(), [both[1]], 'only the car is left');
    assert.equal((await boxList()).length, 1);
    assert.match(await labelerPage.locator('#annotator-status').textContent(), /Box 1 \(bus\) deleted/);
    await labelerPage.getByRole('button', { name: 'Undo' }).click();
    assert.deepEqual(await boxes(), both, 'undone: both boxes, in their order');
    assert.ok(await inkNear(50, 115), 'the bus is drawn again');

    await labelerPage.locator('#annotator-clear').click();
    assert.deepEqual(await responseJson(), { annotations: [], global_attributes: {} });
    assert.ok(await canvasBlank(), 'the boxes are no longer drawn');
    await env.screenshot(labelerPage, 'annotator-cleared');
    // Clear is undone like the rest.
    await labelerPage.getByRole('button', { name: 'Undo' }).click();
    assert.deepEqual(await boxes(), both);
    await labelerPage.locator('#annotator-clear').click();
    assert.deepEqual(await boxes(), []);
  });

  step('a touch drag draws a box (pointer events, not mouse-only handlers)', async () => {
    const types = [];
    await labelerPage.exposeFunction('__tesseraPointerType', (t) => types.push(t));
    await canvas().evaluate((el) => {
      el.addEventListener('pointerdown', (e) => window.__tesseraPointerType(e.pointerType));
      el.scrollIntoView({ block: 'center' });
    });
    const box = await canvas().boundingBox();
    const cdp = await labelerContext.newCDPSession(labelerPage);
    const at = (x, y) => [{ x: box.x + x, y: box.y + y, id: 1 }];
    await cdp.send('Input.dispatchTouchEvent', { type: 'touchStart', touchPoints: at(220, 110) });
    for (const [x, y] of [[260, 140], [320, 180], [370, 210]]) {
      await cdp.send('Input.dispatchTouchEvent', { type: 'touchMove', touchPoints: at(x, y) });
    }
    await cdp.send('Input.dispatchTouchEvent', { type: 'touchEnd', touchPoints: [] });
    await cdp.detach();
    const got = await waitFor('the touch box', async () => {
      const b = await boxes();
      return b.length === 1 ? b : null;
    }, { timeoutMs: 5_000 });
    assert.deepEqual(types, ['touch'], 'a touch pointer drew it');
    assertBoxMatches(got[0], 'car', { left: 220, top: 110, width: 150, height: 100 }, 1);
    assert.equal(await canvas().evaluate((el) => getComputedStyle(el).touchAction), 'none', 'the page does not scroll under the finger');
    await labelerPage.locator('#annotator-clear').click();
    assert.deepEqual(await boxes(), []);
  });

  step('a drag that overshoots the image is cut at its edges', async () => {
    const s = await stage();
    // Released past the bottom right corner, outside the canvas.
    await drag(300, 200, s.clientWidth + 60, s.clientHeight + 40);
    // Released past the top left corner.
    await drag(60, 50, -30, -20);
    const got = await boxes();
    assert.equal(got.length, 2, `two boxes: ${JSON.stringify(got)}`);
    assertBoxMatches(got[0], 'car', { left: 300, top: 200, width: IMAGE.width - 300, height: IMAGE.height - 200 }, 1);
    assertBoxMatches(got[1], 'car', { left: 0, top: 0, width: 60, height: 50 }, 1);
    await env.screenshot(labelerPage, 'annotator-overshoot');
    await labelerPage.locator('#annotator-clear').click();
    assert.deepEqual(await boxes(), []);
  });

  step('boxes typed into the editor are drawn; a wrong label is refused, keeping the image and the boxes', async () => {
    const typed = {
      annotations: [
        { type: 'box', label: 'bus', left: 220, top: 110, width: 150, height: 100 },
        { type: 'box', label: 'truck', left: 40, top: 150, width: 120, height: 60 },
      ],
      global_attributes: {},
    };
    await editor().fill(JSON.stringify(typed, null, 2));
    assert.ok(await inkNear(220, 160), 'the typed bus box is drawn');
    assert.ok(await inkNear(40, 180), 'the typed truck box is drawn');

    refusals.push(`/label/${taskId}`);
    const res = await navigateBy(labelerPage, () => labelerPage.getByRole('button', { name: 'Submit', exact: true }).click());
    assert.equal(res.status(), 400);
    assert.match(await labelerPage.locator('p.error[role="alert"]').textContent(), /"truck", which is not one of: car, bus/);
    assert.deepEqual(await responseJson(), typed, 'the typed response is kept');
    const s = await waitFor('the attachment image to load again', async () => {
      const now = await stage();
      return now.complete && now.naturalWidth > 0 && now.canvas.pixelWidth === now.clientWidth ? now : null;
    }, { timeoutMs: 10_000 });
    assert.equal(s.naturalWidth, IMAGE.width);
    assert.ok(await inkNear(220, 160), 'the kept boxes are drawn');
    await env.screenshot(labelerPage, 'annotator-refused');

    await chooseLabel('car');
    await labelerPage.locator('#annotator-clear').click();
    assert.deepEqual(await responseJson(), { annotations: [], global_attributes: {} });
  });

  step('a blank error reason is refused, and the page still shows the image', async () => {
    const form = labelerPage.locator('form[action$="/error"]');
    await form.getByLabel('Reason').fill('   ');
    labelerPage.once('dialog', (dialog) => dialog.accept());
    refusals.push(`/label/${taskId}/error`);
    const res = await navigateBy(labelerPage, () => form.getByRole('button', { name: 'Report error' }).click());
    assert.equal(res.status(), 400);
    assert.match(await labelerPage.locator('p.error[role="alert"]').textContent(), /reason is required/i);
    const s = await waitFor('the attachment image to load on the refused page', async () => {
      const now = await stage();
      return now.complete && now.naturalWidth > 0 ? now : null;
    }, { timeoutMs: 10_000 });
    assert.equal(s.naturalWidth, IMAGE.width);
    await chooseLabel('car');
  });

  step('with the image shown scaled down, a box is still written in the image\'s own pixels', async () => {
    await labelerPage.setViewportSize({ width: 300, height: 800 });
    const s = await waitFor('the image to shrink, with the canvas following', async () => {
      const now = await stage();
      return now.clientWidth < IMAGE.width && now.canvas.pixelWidth === now.clientWidth && now.canvas.pixelHeight === now.clientHeight ? now : null;
    }, { timeoutMs: 5_000 });
    assert.ok(Math.abs(s.clientWidth / s.clientHeight - IMAGE.width / IMAGE.height) < 0.02, `aspect kept: ${s.clientWidth}×${s.clientHeight}`);
    const scale = IMAGE.width / s.clientWidth;
    const dragged = await drag(s.clientWidth * 0.1, s.clientHeight * 0.5, s.clientWidth * 0.4, s.clientHeight * 0.7);
    const got = await boxes();
    assert.equal(got.length, 1, `one box: ${JSON.stringify(got)}`);
    // The car in the SVG is at 40,150 120×60: this drag is about there.
    assertBoxMatches(got[0], 'car', dragged, scale);
    await env.screenshot(labelerPage, 'annotator-scaled');

    // Back to the usual window: the box is redrawn where it belongs on the bigger image.
    await labelerPage.setViewportSize({ width: 1200, height: 900 });
    await waitFor('the image to grow back', async () => {
      const now = await stage();
      return now.clientWidth === IMAGE.width && now.canvas.pixelWidth === IMAGE.width ? now : null;
    }, { timeoutMs: 5_000 });
    assert.ok(await inkNear(got[0].left, got[0].top + got[0].height / 2), 'redrawn at natural size');
    submitted = await responseJson();
  });

  step('Submit & next sends the box and lands on the next task of the queue', async () => {
    // Two more tasks wait: a categorization of the same image, then another box task.
    const cat = await api('POST', '/v1/task/categorization', {
      instruction: `What is the biggest vehicle? (${stamp})`,
      attachment: imageUrl,
      attachment_type: 'image',
      categories: ['car', 'bus', 'empty road'],
    });
    assert.equal(cat.status, 200, cat.text);
    categorizationId = cat.json.task_id;
    const more = await api('POST', '/v1/task/imageannotation', {
      instruction: `Box the car, with the keyboard (${stamp}).`,
      attachment: imageUrl,
      geometries: { box: { objects_to_annotate: labels } },
    });
    assert.equal(more.status, 200, more.text);
    keyboardId = more.json.task_id;

    await navigateBy(labelerPage, () => labelerPage.getByRole('button', { name: 'Submit & next' }).click());
    assert.equal(pathOf(labelerPage), `/label/${categorizationId}`);
    assert.equal(await flashText(labelerPage), `Task ${taskId} submitted. This is your next task.`);
  });

  step('the callback carries the box, and the API returns the task completed with it', async () => {
    const [call] = await waitFor(`a callback to ${callbackPath}`, () => {
      const calls = callbacksTo(callbackPath);
      return calls.length ? calls : null;
    }, { timeoutMs: 20_000 });
    assert.equal(call.method, 'POST');
    const body = JSON.parse(call.body.toString('utf8'));
    assert.equal(body.task_id, taskId);
    assert.equal(body.task.status, 'completed');
    assert.deepEqual(body.response, submitted);
    assert.equal(body.response.annotations.length, 1);
    assert.equal(body.response.annotations[0].label, 'car');

    const task = await waitFor('callback_succeeded on the task', async () => {
      const res = await api('GET', `/v1/task/${taskId}`);
      assert.equal(res.status, 200, res.text);
      return res.json.callback_succeeded === true ? res.json : null;
    }, { timeoutMs: 20_000, intervalMs: 500 });
    assert.equal(task.status, 'completed');
    assert.deepEqual(task.response, submitted);
  });

  step('a categorization shows the image inline and its categories as radio buttons, none picked', async () => {
    const radios = labelerPage.locator('input[type="radio"][name="category"]');
    assert.deepEqual(await radios.evaluateAll((rs) => rs.map((r) => [r.value, r.checked])),
      [['car', false], ['bus', false], ['empty road', false]], 'nothing is picked for the labeler');
    assert.equal(await labelerPage.locator('input[type="checkbox"]').count(), 0);
    const image = await waitFor('the inline image to load', () => labelerPage.locator('#attachment-image').evaluate((img) => (
      img.complete && img.naturalWidth ? { w: img.naturalWidth, src: img.getAttribute('src'), top: img.getBoundingClientRect().top } : null)), { timeoutMs: 10_000 });
    assert.equal(image.src, imageUrl);
    assert.equal(image.w, IMAGE.width);
    assert.deepEqual(await responseJson(), { category: null });

    // A pick is written into the JSON; a hand edit of the JSON picks its button.
    await labelerPage.getByLabel('bus', { exact: true }).check();
    assert.deepEqual(await responseJson(), { category: 'bus' });
    await editor().fill('{"category": "car"}');
    assert.deepEqual(await radios.evaluateAll((rs) => rs.filter((r) => r.checked).map((r) => r.value)), ['car']);
    await labelerPage.getByLabel('empty road').check();
    assert.deepEqual(await responseJson(), { category: 'empty road' });
    await labelerPage.getByLabel('bus', { exact: true }).check();

    await labelerPage.setViewportSize({ width: 1280, height: 800 });
    await labelerPage.evaluate(() => window.scrollTo(0, 0));
    for (const selector of ['#attachment-image', '#choices fieldset', '#submit-next']) {
      const box = await labelerPage.locator(selector).boundingBox();
      assert.ok(box && box.y + box.height <= 800, `${selector} in view at 1280×800: ${JSON.stringify(box)}`);
    }
    await env.screenshot(labelerPage, 'categorize-1280');
    await labelerPage.setViewportSize({ width: 390, height: 844 });
    await assertFits(labelerPage, 'the categorization page at 390');
    await env.screenshot(labelerPage, 'categorize-390');
    await labelerPage.setViewportSize({ width: 1200, height: 900 });

    await navigateBy(labelerPage, () => labelerPage.getByRole('button', { name: 'Submit & next' }).click());
    assert.equal(pathOf(labelerPage), `/label/${keyboardId}`);
    const done = await api('GET', `/v1/task/${categorizationId}`);
    assert.equal(done.json.status, 'completed');
    assert.deepEqual(done.json.response, { category: 'bus' });
  });

  step('the keyboard alone: label keys, a new box, arrows move and resize, relabel, select, delete, undo, Submit & next', async () => {
    await waitFor('the attachment image to load', async () => {
      const now = await stage();
      return now.complete && now.naturalWidth > 0 && now.canvas.pixelWidth === now.clientWidth ? now : null;
    }, { timeoutMs: 10_000 });
    await labelerPage.evaluate(() => { document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0); });
    await tabTo('annotator-canvas');
    const key = (k) => labelerPage.keyboard.press(k);
    const checkedLabel = () => labelerPage.locator('input[name="annotator-label"]:checked').getAttribute('value');

    await key('2');
    assert.equal(await checkedLabel(), 'bus');
    await key('n');
    // A quarter of the image, in its middle.
    assert.deepEqual(await boxes(), [{ type: 'box', label: 'bus', left: 150, top: 113, width: 100, height: 75 }]);
    for (let i = 0; i < 3; i += 1) await key('ArrowRight');
    await key('Shift+ArrowDown');
    await key('ArrowUp');
    assert.deepEqual(await boxes(), [{ type: 'box', label: 'bus', left: 153, top: 122, width: 100, height: 75 }]);
    await key('r');
    assert.equal((await labelerPage.locator('#annotator-arrow-mode').textContent()).trim(), 'resize');
    await key('Shift+ArrowRight');
    await key('ArrowUp');
    await key('r');
    await key('1');
    await key('l');
    const first = { type: 'box', label: 'car', left: 153, top: 122, width: 110, height: 74 };
    assert.deepEqual(await boxes(), [first]);
    assert.ok(await inkNear(153, 160), 'drawn where it is');

    // A second box, then the first selected with [ and deleted; undo brings it back.
    await key('n');
    assert.equal((await boxes()).length, 2);
    await key('[');
    assert.match(await labelerPage.locator('#annotator-boxes li.selected').textContent(), /^1\. car/);
    await key('Delete');
    const second = { type: 'box', label: 'car', left: 150, top: 113, width: 100, height: 75 };
    assert.deepEqual(await boxes(), [second]);
    await key('u');
    assert.deepEqual(await boxes(), [first, second]);
    await key('Control+z');
    assert.deepEqual(await boxes(), [first], 'the second box\'s addition undone');
    await key('Escape');
    assert.equal(await labelerPage.locator('#annotator-boxes li.selected').count(), 0);
    assert.equal(await labelerPage.evaluate(() => window.scrollY), 0, 'the arrows did not scroll the page');

    // At 390 px the page fits and the canvas follows the scaled image.
    await labelerPage.setViewportSize({ width: 390, height: 844 });
    const s = await waitFor('the image to scale down', async () => {
      const now = await stage();
      return now.clientWidth < IMAGE.width && now.canvas.pixelWidth === now.clientWidth ? now : null;
    }, { timeoutMs: 5_000 });
    assert.ok(s.canvas.width <= 390);
    await assertFits(labelerPage, 'the box task page at 390');
    await env.screenshot(labelerPage, 'annotator-390');
    await labelerPage.setViewportSize({ width: 1200, height: 900 });

    // Tab to Submit & next and press Enter: nothing is left, so back to the queue.
    await tabTo('submit-next');
    await navigateBy(labelerPage, () => key('Enter'));
    assert.equal(pathOf(labelerPage), '/label');
    assert.equal(await flashText(labelerPage), `Task ${keyboardId} submitted. Thank you! No more tasks are waiting.`);
    const done = await api('GET', `/v1/task/${keyboardId}`);
    assert.deepEqual(done.json.response, { annotations: [first], global_attributes: {} });
  });

  step('a dense task: 400 boxes are submitted from the page and reach the API', async () => {
    const res = await api('POST', '/v1/task/imageannotation', {
      instruction: `Box every car in the car park (${stamp}).`,
      attachment: imageUrl,
      geometries: { box: { objects_to_annotate: labels } },
    });
    assert.equal(res.status, 200, res.text);
    denseId = res.json.task_id;
    await labelerPage.goto('/label');
    await navigateBy(labelerPage, () => labelerPage.getByRole('button', { name: 'Next task' }).click());
    assert.equal(pathOf(labelerPage), `/label/${denseId}`);
    const annotations = Array.from({ length: 400 }, (_, i) => ({
      type: 'box', label: labels[i % 2], left: (i * 7) % 380, top: (i * 3) % 280, width: 10 + (i % 9), height: 8 + (i % 7),
    }));
    const dense = JSON.stringify({ annotations, global_attributes: {} }, null, 2);
    // Past the 64 KiB of other dashboard forms once form-encoded.
    const encoded = new URLSearchParams({ response: dense }).toString().length;
    assert.ok(encoded > 64 * 1024, `${encoded} bytes form-encoded`);
    // Pasted in one go (typing 60 KiB key by key would take minutes).
    await editor().evaluate((el, text) => {
      el.value = text;
      el.dispatchEvent(new Event('input', { bubbles: true }));
    }, dense);
    assert.equal((await boxes()).length, 400);
    await navigateBy(labelerPage, () => labelerPage.getByRole('button', { name: 'Submit', exact: true }).click());
    assert.equal(pathOf(labelerPage), '/label');
    assert.equal(await flashText(labelerPage), `Task ${denseId} submitted. Thank you!`);
    const done = await api('GET', `/v1/task/${denseId}`);
    assert.equal(done.json.status, 'completed');
    assert.equal(done.json.response.annotations.length, 400);
    assert.deepEqual(done.json.response.annotations[399], annotations[399]);
  });

  step('the labeler\'s history lists the completed tasks, newest first, each opening read-only', async () => {
    await labelerPage.goto('/label');
    await navigateBy(labelerPage, () => labelerPage.getByRole('link', { name: 'Your completed tasks' }).click());
    assert.equal(pathOf(labelerPage), '/label/history');
    const rows = await labelerPage.locator('table.history tbody tr').evaluateAll((trs) => trs.map((tr) => tr.querySelector('td[data-label="Task"]').textContent.trim()));
    assert.deepEqual(rows, [denseId, keyboardId, categorizationId, taskId]);
    await env.screenshot(labelerPage, 'history-1280');
    await labelerPage.setViewportSize({ width: 390, height: 844 });
    await assertFits(labelerPage, 'the history at 390');
    await env.screenshot(labelerPage, 'history-390');
    await labelerPage.setViewportSize({ width: 1200, height: 900 });

    await navigateBy(labelerPage, () => labelerPage.getByRole('link', { name: taskId }).click());
    assert.equal(pathOf(labelerPage), `/label/history/${taskId}`);
    assert.match(squash(await labelerPage.locator('main').textContent()), /read-only: this task is done/);
    assert.deepEqual(JSON.parse(await labelerPage.locator('#done-response').textContent()), submitted);
    assert.equal(await labelerPage.locator('#response-form, textarea').count(), 0, 'nothing to edit or send');
    await waitFor('the sent box drawn on the image', async () => {
      const drawn = await labelerPage.evaluate(() => {
        const cnv = document.getElementById('done-canvas');
        if (!cnv || !cnv.width) return false;
        const data = cnv.getContext('2d').getImageData(0, 0, cnv.width, cnv.height).data;
        for (let i = 3; i < data.length; i += 4) if (data[i] > 0) return true;
        return false;
      });
      return drawn || null;
    }, { timeoutMs: 5_000 });
    await env.screenshot(labelerPage, 'history-task-1280');
    await labelerPage.setViewportSize({ width: 390, height: 844 });
    await assertFits(labelerPage, 'a completed task at 390');
    await env.screenshot(labelerPage, 'history-task-390');
    await labelerPage.goto('/label');
    await assertFits(labelerPage, 'the queue at 390');
    await labelerPage.setViewportSize({ width: 1200, height: 900 });
  });

  step('no page raised a JavaScript error, logged a console error or violated the CSP', async () => {
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.deepEqual(pageErrors, []);
    assert.deepEqual(consoleErrors, []);
    assert.deepEqual(cspViolations, []);
    assert.deepEqual(serverErrors, []);
  });
});
