// End-to-end: the Callbacks pages and the audit log in a real browser, at desktop (1280 px)
// and phone (390 px) widths. Every column of /callbacks and /team/audit is in view at 1280 px
// (no cell narrower than the first word of its content, no sideways scroll); times read in
// the viewer's zone (here New York) with the UTC text on hover; Cancel retries stops a
// failing delivery for good; the audit log filters by what happened and explains a bad filter;
// at 390 px no page scrolls sideways.
//
// Run: `node --test e2e/` from the repository root after `cargo build` (see scripts/test).
// Environment: TESSERA_BIN, TESSERA_TEST_PYTHON, TESSERA_E2E_DATABASE_URL (see lib/harness.mjs).

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { startEnvironment, waitFor } from './lib/harness.mjs';

const STEP_TIMEOUT = 120_000;
const stamp = `${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;
const admin = {
  email: `callbacks.audit.${stamp}@example.com`,
  password: 'correct horse battery',
  name: 'Cal Back',
  company: 'Retry Works',
  team: `Retries ${stamp}`,
};
// Retries come every 2 s, so "never sent again" is seen within a few seconds.
const RETRY = Array(20).fill('2s').join(',');

/** Runs `action` (a click or a submit) and waits until the navigation it causes has loaded. */
async function navigateBy(page, action) {
  const navigation = page.waitForNavigation({ waitUntil: 'load' });
  await action();
  return navigation;
}

const squash = (s) => (s || '').replace(/\s+/g, ' ').trim();

/**
 * Layout problems of the table `selector` on the current page: the page or the table's
 * wrapper scrolling sideways, and cells narrower than the first word of their text (a word
 * ends at a space or at the punctuation long values wrap at).
 */
async function layoutProblems(page, selector) {
  return page.evaluate((sel) => {
    const problems = [];
    const doc = document.documentElement;
    if (doc.scrollWidth > doc.clientWidth + 1) problems.push(`page scrolls sideways: ${doc.scrollWidth} > ${doc.clientWidth}`);
    const table = document.querySelector(sel);
    if (!table) return [...problems, `${sel} missing`];
    const wrap = table.closest('.table-wrap');
    if (wrap && wrap.scrollWidth > wrap.clientWidth + 1) {
      const widths = [...table.querySelectorAll('thead th')].map((th) => `${th.textContent.trim()} ${th.offsetWidth}`);
      problems.push(`${sel} scrolls sideways: ${wrap.scrollWidth} > ${wrap.clientWidth} (columns: ${widths.join(', ')})`);
    }
    const canvas = document.createElement('canvas').getContext('2d');
    for (const cell of table.querySelectorAll('th, td')) {
      const text = cell.textContent.trim();
      const word = text.split(/[\s/.?&=_\-@:]+/).find((w) => w.length > 0);
      if (!word) continue;
      // The font of the element holding the first text (code is monospace).
      const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT, { acceptNode: (n) => (n.textContent.trim() ? NodeFilter.FILTER_ACCEPT : NodeFilter.FILTER_SKIP) });
      const first = walker.nextNode();
      const style = getComputedStyle(first ? first.parentElement : cell);
      canvas.font = `${style.fontStyle} ${style.fontWeight} ${style.fontSize} ${style.fontFamily}`;
      let needed = canvas.measureText(word).width;
      if (style.textTransform === 'uppercase') needed = canvas.measureText(word.toUpperCase()).width;
      const own = getComputedStyle(cell);
      const room = cell.clientWidth - parseFloat(own.paddingLeft) - parseFloat(own.paddingRight);
      if (room + 1 < needed) problems.push(`cell "${text.slice(0, 40)}" is ${room.toFixed(0)} px, its first word "${word}" needs ${needed.toFixed(0)} px`);
    }
    return problems;
  }, selector);
}

/** The page must not scroll sideways (phone width). */
async function assertNoSidewaysScroll(page, what) {
  const [scroll, client, widest] = await page.evaluate(() => {
    const doc = document.documentElement;
    // The deepest elements reaching past the right edge, to say what overflows.
    const over = [...document.querySelectorAll('main *')]
      .filter((el) => el.getBoundingClientRect().right > doc.clientWidth + 1 && ![...el.children].some((c) => c.getBoundingClientRect().right > doc.clientWidth + 1))
      .slice(0, 3)
      .map((el) => `${el.tagName.toLowerCase()}.${el.className} "${el.textContent.trim().slice(0, 30)}"`);
    return [doc.scrollWidth, doc.clientWidth, over];
  });
  assert.ok(scroll <= client + 1, `${what}: the page scrolls sideways at ${client} px (${scroll}): ${widest.join('; ')}`);
}

describe('Tessera callbacks and audit log in a real browser', { timeout: 10 * STEP_TIMEOUT }, () => {
  let env;
  let context;
  let page;
  let receiver;
  let receiverUrl;
  let apiKey;
  let failed = false;
  const hits = [];
  const pageErrors = [];
  let canceledId;

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

  const api = async (method, path, body) => {
    const headers = { Authorization: `Basic ${Buffer.from(`${apiKey}:`).toString('base64')}` };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const res = await fetch(`${env.baseUrl}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await res.text();
    let json;
    try { json = JSON.parse(text); } catch { json = undefined; }
    return { status: res.status, text, json };
  };

  before(async () => {
    // A receiver that is always down: every callback fails and is retried.
    receiver = http.createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        hits.push({ id: req.headers['webhook-id'], at: Date.now() });
        res.writeHead(503, { 'Content-Type': 'text/plain' });
        res.end('down for maintenance');
      });
    });
    await new Promise((resolve) => receiver.listen(0, '127.0.0.1', resolve));
    receiverUrl = `http://127.0.0.1:${receiver.address().port}`;
    env = await startEnvironment({
      label: 'callbacks-audit',
      serverArgs: ['--allow-private-callbacks', '--callback-retry-schedule', RETRY],
    });
    context = await env.browser.newContext({ baseURL: env.baseUrl, viewport: { width: 1280, height: 900 }, timezoneId: 'America/New_York' });
    context.setDefaultTimeout(15_000);
    context.setDefaultNavigationTimeout(30_000);
    page = await context.newPage();
    page.on('pageerror', (err) => pageErrors.push(err.message));
  });

  after(async () => {
    if (env) await env.stop();
    if (receiver) receiver.close();
  });

  step('an admin signs up and adds a test key', async () => {
    await page.goto('/signup');
    await page.getByLabel('Work email').fill(admin.email);
    await page.getByLabel('Password', { exact: true }).fill(admin.password);
    await page.getByLabel('Your name').fill(admin.name);
    await page.getByLabel('Company').fill(admin.company);
    await page.getByLabel('Team name').fill(admin.team);
    await navigateBy(page, () => page.getByRole('button', { name: 'Sign up' }).click());
    await page.goto('/keys');
    await navigateBy(page, () => page.locator('#mode-test').getByRole('button', { name: 'Add test key' }).click());
    apiKey = (await page.locator('#secret-value').textContent()).trim();
    assert.match(apiKey, /^test_\S{16,}$/);
  });

  step('three test tasks call back a receiver that is down; their deliveries stay pending', async () => {
    const paths = ['/hooks/scale', '/a/rather/long/callback/path/for-the-review-queue?team=retry-works&source=tessera', '/x'];
    for (const path of paths) {
      const task = await api('POST', '/v1/task/categorization', {
        attachment: 'https://example.com/review.txt', attachment_type: 'text', categories: ['yes', 'no'],
        instruction: 'Is this fine?', callback_url: `${receiverUrl}${path}`,
      });
      assert.equal(task.status, 200, task.text);
    }
    await waitFor('an attempt of each callback', () => new Set(hits.map((h) => h.id)).size >= 3);
  });

  step('at 1280 px /callbacks shows every column, the About cell links to the task, times are local', async () => {
    await page.goto('/callbacks');
    assert.equal(new URL(page.url()).pathname, '/test/callbacks', 'a test-mode person sees the test page');
    const rows = page.locator('#callbacks tbody tr');
    assert.equal(await rows.count(), 3);
    const about = rows.first().locator('td').nth(1).locator('a');
    assert.match(await about.getAttribute("href"), /^\/test\/tasks\/[0-9a-f]{24}$/);
    const problems = await layoutProblems(page, '#callbacks');
    assert.deepEqual(problems, [], problems.join('\n'));
    const time = rows.first().locator('time').last();
    const [text, title, iso] = [await time.textContent(), await time.getAttribute('title'), await time.getAttribute('datetime')];
    assert.match(title, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$/, 'the UTC text on hover');
    assert.match(text, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d (EST|EDT)$/, `local time with the zone: ${text}`);
    const expected = new Date(iso).toLocaleString('sv-SE', { timeZone: 'America/New_York', hourCycle: 'h23' });
    assert.equal(text.slice(0, 19), expected, 'the same moment in New York');
    assert.match(iso, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    await env.screenshot(page, 'callbacks-1280');
  });

  step('Cancel retries (after confirming) fails the delivery, and it is never sent again', async () => {
    const row = page.locator('#callbacks tbody tr').first();
    canceledId = await row.getAttribute('data-delivery');
    await navigateBy(page, () => row.locator('td').first().locator('a').click());
    assert.equal(new URL(page.url()).pathname, `/test/callbacks/${canceledId}`);
    assert.equal(squash(await page.locator('#delivery-state').textContent()), 'pending');
    // The newest attempt's request is open, its secrets masked.
    const request = page.locator('tr.attempt-request details').first();
    assert.ok(await request.evaluate((d) => d.open), 'the newest request is shown');
    const headers = squash(await request.locator('.request-headers').textContent());
    assert.match(headers, /scale-callback-auth/);
    assert.ok(!headers.includes(apiKey), 'no key in the headers');
    let asked = '';
    page.once('dialog', (dialog) => { asked = dialog.message(); dialog.accept(); });
    await navigateBy(page, () => page.getByRole('button', { name: 'Cancel retries' }).click());
    assert.match(asked, /Stop retrying this callback\?/);
    assert.match(squash(await page.locator('.flash').textContent()), /Retries canceled/);
    assert.equal(squash(await page.locator('#delivery-state').textContent()), 'failed');
    assert.match(squash(await page.locator('#delivery-last').textContent()), new RegExp(`retries canceled by ${admin.email.replace(/\./g, '\\.')}`));
    assert.equal(await page.getByRole('button', { name: 'Cancel retries' }).count(), 0);
    const sent = hits.filter((h) => h.id === canceledId).length;
    const others = hits.filter((h) => h.id !== canceledId).length;
    // Three retry intervals: the other deliveries are retried, the canceled one is not.
    await new Promise((r) => setTimeout(r, 6_500));
    assert.ok(hits.filter((h) => h.id !== canceledId).length > others, 'the others are still retried');
    assert.equal(hits.filter((h) => h.id === canceledId).length, sent, 'never sent again');
    await env.screenshot(page, 'callback-canceled');
  });

  step('at 1280 px /team/audit shows every column; What filters; a bad date is explained', async () => {
    await page.goto('/team/audit');
    const problems = await layoutProblems(page, '#audit');
    assert.deepEqual(problems, [], problems.join('\n'));
    const time = page.locator('#audit time').first();
    assert.match(await time.textContent(), / (EST|EDT)$/);
    assert.match(await time.getAttribute('title'), / UTC$/);
    await page.getByLabel('What').selectOption('callback.retries_canceled');
    await navigateBy(page, () => page.getByRole('button', { name: 'Filter' }).click());
    const rows = page.locator('#audit tbody tr');
    assert.equal(await rows.count(), 1);
    assert.match(squash(await rows.first().textContent()), new RegExp(canceledId));
    assert.equal(await page.getByLabel('What').inputValue(), 'callback.retries_canceled', 'the filter is kept');
    await env.screenshot(page, 'audit-filtered');
    const bad = await page.goto('/team/audit?from=22%2F11%2F2026&action=callback.retries_canceled');
    assert.equal(bad.status(), 400);
    assert.match(squash(await page.locator('#audit-error').textContent()), /"From" must be a date written YYYY-MM-DD/);
    assert.equal(await page.getByLabel('What').inputValue(), 'callback.retries_canceled');
  });

  step('at 390 px no page scrolls sideways', async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    for (const path of ['/test/callbacks', `/test/callbacks/${canceledId}`, '/team/audit']) {
      await page.goto(path);
      await assertNoSidewaysScroll(page, path);
    }
    await env.screenshot(page, 'audit-390');
    assert.deepEqual(pageErrors, [], 'no script errors');
  });
});
