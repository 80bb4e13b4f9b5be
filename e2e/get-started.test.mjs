// End-to-end: a new customer signs up and, guided by the Get started home alone, creates a test
// key, sets a default callback URL (a receiver this test runs), runs the page's Python snippet
// verbatim with the official SDK, and sees the task and its received callback ticked off. Then
// the test mode: new teams start in it, it is in the URL (/test/…), a live address of a test
// task offers to switch, and the mode follows the person into another browser. The profile
// menu works by keyboard and without JavaScript; at 390 px the pages fit without sideways
// scrolling. Screenshots at 1280 and 390 px.
//
// Environment: TESSERA_BIN, TESSERA_TEST_PYTHON, TESSERA_E2E_DATABASE_URL (see lib/harness.mjs).

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { once } from 'node:events';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { startEnvironment, waitFor, PYTHON } from './lib/harness.mjs';

const execFileP = promisify(execFile);
const STEP_TIMEOUT = 120_000;
const stamp = `${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;
const admin = {
  email: `starter.${stamp}@example.com`,
  password: 'correct horse battery',
  name: 'Sam Starter',
  company: 'First Steps Inc',
  team: `Onboard ${stamp}`,
};

async function navigateBy(page, action) {
  const navigation = page.waitForNavigation({ waitUntil: 'load' });
  await action();
  return navigation;
}

/** Whether the page scrolls sideways (what a 390 px phone must never need). */
const overflows = (page) => page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth + 1);

describe('Get started: from sign-up to a received test callback', { timeout: 12 * STEP_TIMEOUT }, () => {
  let env;
  let context;
  let page;
  let receiver;
  let callbackUrl;
  const received = [];
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
    receiver = http.createServer((req, res) => {
      const chunks = [];
      req.on('data', (c) => chunks.push(c));
      req.on('end', () => {
        received.push({ path: req.url, headers: req.headers, body: Buffer.concat(chunks).toString() });
        res.writeHead(200, { 'Content-Type': 'text/plain' });
        res.end('ok');
      });
    });
    receiver.listen(0, '127.0.0.1');
    await once(receiver, 'listening');
    callbackUrl = `http://127.0.0.1:${receiver.address().port}/scale-callbacks`;
    // The receiver is on 127.0.0.1, which production refuses as a callback target.
    env = await startEnvironment({ label: 'get-started', serverArgs: ['--allow-private-callbacks'] });
    context = await env.newContext();
    await context.setViewportSize?.({ width: 1280, height: 900 });
    page = await context.newPage();
    await page.setViewportSize({ width: 1280, height: 900 });
    page.on('pageerror', (err) => pageErrors.push(err.message));
    // Refused forms (400) and the other-mode page (404) are expected answers, not page errors.
    page.on('console', (msg) => { if (msg.type() === 'error' && !msg.text().startsWith('Failed to load resource')) pageErrors.push(msg.text()); });
  });

  after(async () => {
    if (env) await env.stop();
    if (receiver) {
      receiver.closeAllConnections();
      receiver.close();
    }
  });

  step('a new sign-up lands on Get started, in test mode, with the API address shown', async () => {
    await page.goto('/signup');
    await page.getByLabel('Work email').fill(admin.email);
    await page.getByLabel('Password', { exact: true }).fill(admin.password);
    await page.getByLabel('Your name').fill(admin.name);
    await page.getByLabel('Company').fill(admin.company);
    await page.getByLabel('Team name').fill(admin.team);
    await navigateBy(page, () => page.getByRole('button', { name: 'Sign up' }).click());
    assert.equal(new URL(page.url()).pathname, '/');
    assert.match(await page.getByRole('heading', { level: 1 }).textContent(), /Get started/);
    assert.match(await page.locator('.test-banner').textContent(), /Test data/);
    assert.equal(await page.locator('#api-base').textContent(), `${env.baseUrl}/v1`);
    assert.match(await page.locator('#progress').textContent(), /0 of 5 done/);
    assert.equal(await overflows(page), false, 'no sideways scrolling at 1280 px');
    await env.screenshot(page, 'get-started-1280');
  });

  step('the profile menu holds the account pages, opens by keyboard, and the work pages stay in the main navigation', async () => {
    const main = page.getByRole('navigation', { name: 'Main' });
    for (const label of ['Projects', 'Tasks', 'Callbacks']) {
      assert.equal(await main.getByRole('link', { name: label, exact: true }).count(), 1, `main nav offers ${label}`);
    }
    assert.equal(await main.getByRole('link', { name: 'API Keys' }).count(), 0, 'API Keys is not in the main navigation');
    const account = page.getByRole('navigation', { name: 'Account' });
    assert.equal(await account.isVisible(), false, 'the menu starts closed');
    await page.locator('.profile-menu summary').focus();
    await page.keyboard.press('Enter');
    for (const label of ['Your Team', 'API Keys', 'Billing', 'Integrations', 'Profile']) {
      assert.ok(await account.getByRole('link', { name: label, exact: true }).isVisible(), `menu shows ${label}`);
    }
    assert.ok(await page.getByRole('button', { name: 'Log out' }).isVisible());
    await env.screenshot(page, 'profile-menu-open');
    await page.keyboard.press('Escape');
    assert.equal(await account.isVisible(), false, 'Escape closes the menu');
  });

  step('step 1: a test key made inline appears in the snippets', async () => {
    await navigateBy(page, () => page.getByRole('button', { name: 'Create a test key' }).click());
    const key = (await page.locator('#test-key').textContent()).trim();
    assert.match(key, /^test_[0-9a-f]{64}$/);
    assert.ok((await page.locator('#snippet-python').textContent()).includes(key), 'the Python snippet carries the key');
    assert.ok((await page.locator('#snippet-curl').textContent()).includes(`${env.baseUrl}/v1/task/categorization`));
    assert.ok(await page.locator('#step-key.done').isVisible(), 'step 1 ticked');
  });

  step('step 2: a bad callback URL is refused next to its field, a good one is saved', async () => {
    const field = page.getByLabel('Default callback URL');
    await field.fill('ftp://nope');
    await navigateBy(page, () => page.locator('#step-callback-url').getByRole('button', { name: 'Save' }).click());
    assert.equal(await field.getAttribute('aria-invalid'), 'true');
    assert.ok((await page.locator('#callback-url-error').textContent()).length > 5);
    assert.equal(await field.inputValue(), 'ftp://nope', 'the draft is kept');
    await field.fill(callbackUrl);
    await navigateBy(page, () => page.locator('#step-callback-url').getByRole('button', { name: 'Save' }).click());
    assert.match(await page.locator('.flash').textContent(), /Default callback URL saved/);
    assert.ok(await page.locator('#step-callback-url.done').isVisible(), 'step 2 ticked');
  });

  step('step 3: the Python snippet, run as copied, creates a test task with the official SDK', async () => {
    // The key is shown again on request (the page does not keep it after the first view).
    await navigateBy(page, () => page.getByRole('button', { name: 'Show my test key in the snippets' }).click());
    const snippet = await page.locator('#snippet-python').textContent();
    const { stdout } = await execFileP(PYTHON, ['-c', snippet], { timeout: 60_000 });
    const [id, status] = stdout.trim().split(/\s+/);
    assert.match(id, /^[0-9a-f]{24}$/, `snippet output: ${stdout}`);
    assert.equal(status, 'completed', 'a test task completes at once');
    taskId = id;
  });

  step('step 4: the page shows the task and its callback, which the receiver got', async () => {
    await waitFor('the callback at the receiver', () => received.find((r) => r.body.includes(taskId)));
    const delivered = received.find((r) => r.body.includes(taskId));
    assert.equal(JSON.parse(delivered.body).task.task_id, taskId);
    assert.ok(delivered.headers['webhook-signature'], 'the callback is signed');
    await waitFor('the delivery to be marked succeeded', async () => {
      await page.goto('/');
      return page.locator('#step-result.done').isVisible();
    });
    assert.equal((await page.locator('#last-task').textContent()).trim(), taskId);
    assert.match(await page.locator('#last-callback').textContent(), /succeeded/);
    assert.match(await page.locator('#progress').textContent(), /4 of 5 done/);
    await env.screenshot(page, 'get-started-done-1280');
    await navigateBy(page, () => page.locator('#last-task').click());
    assert.equal(new URL(page.url()).pathname, `/test/tasks/${taskId}`, 'a test task lives under /test/');
    assert.ok((await page.textContent('main')).includes(taskId));
  });

  step('the mode is in the URL; a live address of a test task offers to switch', async () => {
    await page.goto('/tasks');
    assert.equal(new URL(page.url()).pathname, '/test/tasks', 'test mode shows /test/tasks');
    assert.ok((await page.textContent('main')).includes(taskId), 'the first test task is listed');
    await navigateBy(page, () => page.locator('.test-banner').getByRole('button', { name: 'View live data' }).click());
    assert.equal(new URL(page.url()).pathname, '/tasks');
    assert.equal(await page.locator('.test-banner').count(), 0, 'no test banner in live mode');
    const res = await page.goto(`/tasks/${taskId}`);
    assert.equal(res.status(), 404);
    assert.match(await page.getByRole('heading', { level: 1 }).textContent(), /This task is in test mode/);
    await env.screenshot(page, 'other-mode-offer');
    await navigateBy(page, () => page.getByRole('button', { name: /Switch to Test mode and open it/ }).click());
    assert.equal(new URL(page.url()).pathname, `/test/tasks/${taskId}`);
  });

  step('the mode belongs to the person: another browser opens in test mode too', async () => {
    const other = await env.newContext();
    const second = await other.newPage();
    await second.goto('/login');
    await second.getByLabel('Email').fill(admin.email);
    await second.getByLabel('Password').fill(admin.password);
    await navigateBy(second, () => second.getByRole('button', { name: 'Log in' }).click());
    await second.goto('/callbacks');
    assert.equal(new URL(second.url()).pathname, '/test/callbacks');
    assert.ok((await second.textContent('main')).includes(callbackUrl.slice(7, 30)) || (await second.locator('table').count()) > 0);
    await other.close();
  });

  step('the profile menu opens without JavaScript', async () => {
    const noJs = await env.browser.newContext({ baseURL: env.baseUrl, javaScriptEnabled: false, viewport: { width: 1280, height: 900 } });
    const plain = await noJs.newPage();
    await plain.goto('/login');
    await plain.getByLabel('Email').fill(admin.email);
    await plain.getByLabel('Password').fill(admin.password);
    await navigateBy(plain, () => plain.getByRole('button', { name: 'Log in' }).click());
    await plain.locator('.profile-menu summary').click();
    await navigateBy(plain, () => plain.getByRole('navigation', { name: 'Account' }).getByRole('link', { name: 'API Keys' }).click());
    assert.equal(new URL(plain.url()).pathname, '/keys');
    await noJs.close();
  });

  step('a draft survives the end of the session: signing in returns to the form, filled in', async () => {
    await page.goto('/');
    const field = page.getByLabel('Default callback URL');
    const draft = `https://drafts.example/${stamp}`;
    await field.fill(draft);
    // Meanwhile the session ends: a password change elsewhere signs out every other session.
    const elsewhere = await env.newContext();
    const other = await elsewhere.newPage();
    await other.goto('/login');
    await other.getByLabel('Email').fill(admin.email);
    await other.getByLabel('Password').fill(admin.password);
    await navigateBy(other, () => other.getByRole('button', { name: 'Log in' }).click());
    await other.goto('/profile');
    const newPassword = `${admin.password} again`;
    await other.getByLabel('Current password').fill(admin.password);
    await other.getByLabel('New password', { exact: true }).fill(newPassword);
    await other.getByLabel('Repeat new password').fill(newPassword);
    await navigateBy(other, () => other.getByRole('button', { name: /Change password/ }).click());
    assert.match(await other.locator('.flash').textContent(), /Other sessions were signed out/);
    await elsewhere.close();
    admin.password = newPassword;

    const save = page.locator('#step-callback-url').getByRole('button', { name: 'Save' });
    await navigateBy(page, () => save.click());
    assert.equal(new URL(page.url()).pathname, '/login', 'the ended session leads to sign-in');
    assert.match(await page.locator('#draft-note').textContent(), /what you were sending is kept/);
    await page.getByLabel('Email').fill(admin.email);
    await page.getByLabel('Password').fill(admin.password);
    await navigateBy(page, () => page.getByRole('button', { name: 'Log in' }).click());
    assert.equal(new URL(page.url()).pathname, '/', 'back on the form\'s page');
    assert.equal(await page.getByLabel('Default callback URL').inputValue(), draft, 'the draft is filled in again');
    assert.ok(await page.locator('#draft-restored').isVisible());
    // Sent now, it is saved; the buttons of a form are disabled while it is pending.
    await page.evaluate(() => document.addEventListener('submit', () => queueMicrotask(() => {
      sessionStorage.setItem('save-disabled', String(document.querySelector('#step-callback-url button').disabled));
    })));
    await navigateBy(page, () => save.click());
    assert.equal(await page.evaluate(() => sessionStorage.getItem('save-disabled')), 'true', 'Save is disabled while the request is pending');
    assert.match(await page.locator('.flash').textContent(), /Default callback URL saved/);
    assert.equal(await page.locator('#draft-restored').count(), 0, 'the draft is used up');
  });

  step('at 390 px every page fits without sideways scrolling and the navigation collapses', async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    for (const path of ['/', '/test/tasks', `/test/tasks/${taskId}`, '/test/callbacks', '/test/projects', '/team', '/keys', '/profile']) {
      const res = await page.goto(path);
      assert.equal(res.status(), 200, path);
      assert.equal(await overflows(page), false, `${path} scrolls sideways at 390 px`);
      if (path === '/' || path === '/test/tasks') await env.screenshot(page, `${path.replaceAll('/', '_') || 'home'}-390`);
    }
    assert.equal(await page.getByRole('navigation', { name: 'Main' }).isVisible(), false, 'main nav collapsed');
    await page.locator('.profile-menu summary').click();
    assert.ok(await page.getByRole('navigation', { name: 'Work' }).getByRole('link', { name: 'Tasks' }).isVisible(), 'the menu offers the work pages');
    await env.screenshot(page, 'menu-390');
    assert.deepEqual(pageErrors, [], 'no console errors');
  });
});
