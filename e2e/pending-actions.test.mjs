// End-to-end: actions that must not be repeated by accident. Resend on "Your Team" is shown
// disabled (with the time left) while its interval runs, and a resend refused by the interval
// is a warning, not the green success message; double-clicking **Add test key** makes one key
// (the button is disabled while the form is pending, and the form is idempotent anyway).
//
// Run: `node --test e2e/` from the repository root after `cargo build` (see scripts/test).
// Environment: TESSERA_BIN, TESSERA_TEST_PYTHON, TESSERA_E2E_DATABASE_URL (see lib/harness.mjs).

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startEnvironment, goByMenu } from './lib/harness.mjs';

const STEP_TIMEOUT = 120_000;
const stamp = `${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;

const admin = {
  email: `pending.${stamp}@example.com`,
  password: 'correct horse battery',
  name: 'Pat Pending',
  company: 'Twice Shy',
  team: `Once ${stamp}`,
};
const invitee = `ivy.${stamp}@example.com`;

/** Runs `action` (a click or a submit) and waits until the navigation it causes has loaded. */
async function navigateBy(page, action) {
  const navigation = page.waitForNavigation({ waitUntil: 'load' });
  await action();
  return navigation;
}

const flash = (page) => page.locator('.flash[role="status"]');

describe('Tessera pending actions in a real browser', { timeout: 6 * STEP_TIMEOUT }, () => {
  let env;
  let context;
  let page;
  let failed = false;
  const pageErrors = [];

  // Steps run in order; a failed step skips the later ones of its group (sign-up is needed
  // by both: the invitation steps and the key steps are independent of each other).
  const failedGroups = new Set();
  const step = (name, fn, group = 'all') => it(name, { timeout: STEP_TIMEOUT }, async (t) => {
    if (failed || failedGroups.has(group)) {
      t.skip('an earlier step failed');
      return;
    }
    try {
      await fn(t);
    } catch (err) {
      if (group === 'all') failed = true;
      failedGroups.add(group);
      if (page && !page.isClosed()) await env.screenshot(page, 'FAILED').catch(() => {});
      if (env) err.message += `\n--- last lines of the Tessera log ---\n${env.serverLog().split('\n').slice(-25).join('\n')}`;
      throw err;
    }
  });

  before(async () => {
    env = await startEnvironment({ label: 'pending-actions' });
    context = await env.newContext();
    page = await context.newPage();
    page.on('pageerror', (err) => pageErrors.push(err.message));
  });

  after(async () => {
    if (env) await env.stop();
  });

  step('an admin signs up', async () => {
    await page.goto('/signup');
    await page.getByLabel('Work email').fill(admin.email);
    await page.getByLabel('Password', { exact: true }).fill(admin.password);
    await page.getByLabel('Your name').fill(admin.name);
    await page.getByLabel('Company').fill(admin.company);
    await page.getByLabel('Team name').fill(admin.team);
    await navigateBy(page, () => page.getByRole('button', { name: 'Sign up' }).click());
    assert.equal(new URL(page.url()).pathname, '/', 'a new sign-up lands on Get started');
    await goByMenu(page, 'Your Team');
    assert.equal(new URL(page.url()).pathname, '/team');
    await env.verifyEmail(page, admin.email);
  });

  step('right after inviting, Resend is disabled with the time left', async () => {
    const invite = page.locator('#invite');
    await invite.getByLabel('Email addresses').fill(invitee);
    await navigateBy(page, () => invite.getByRole('button', { name: 'Send invitations' }).click());
    assert.match(await flash(page).textContent(), /Invitation sent to/);
    assert.equal(await page.locator('.flash.flash-warning').count(), 0, 'a success is not a warning');
    const resend = page.locator(`tr.invited[data-email="${invitee}"] form[action$="/resend"] button`);
    assert.ok(await resend.isDisabled(), 'Resend is disabled while the interval runs');
    assert.match(await resend.textContent(), /^Resend in \d+ (seconds?|minutes?)$/);
    await env.screenshot(page, 'resend-disabled');
  }, 'resend');

  step('a resend refused by the interval (another tab) is shown as a warning', async () => {
    // As if sent from a tab opened before the invitation went out: submit the form itself.
    const form = page.locator(`tr.invited[data-email="${invitee}"] form[action$="/resend"]`);
    await navigateBy(page, () => form.evaluate((f) => f.submit()));
    const message = flash(page);
    assert.match(await message.textContent(), /was sent moments ago; you can resend it in/);
    assert.ok(await message.evaluate((el) => el.classList.contains('flash-warning')), 'warning style');
    const background = await message.evaluate((el) => getComputedStyle(el).backgroundColor);
    assert.notEqual(background, 'rgb(235, 251, 238)', 'not the green success background');
    await env.screenshot(page, 'resend-warning');
  }, 'resend');

  step('the Add key button is disabled while its form is pending', async () => {
    await page.goto('/keys');
    // Keep the form pending: a listener after the page's own ones records each submission
    // (and the button's state at that moment) and stops the navigation.
    await page.evaluate(() => {
      window.submissions = [];
      document.addEventListener('submit', (event) => {
        const button = event.target.querySelector('button');
        window.submissions.push({ disabled: button.disabled, busy: button.getAttribute('aria-busy') });
        event.preventDefault();
      });
    });
    const button = page.locator('#mode-test').getByRole('button', { name: 'Add test key' });
    await button.click();
    assert.ok(await button.isDisabled(), 'disabled once sent');
    await button.click({ force: true });
    await page.keyboard.press('Enter');
    const submissions = await page.evaluate(() => window.submissions);
    assert.deepEqual(submissions, [{ disabled: true, busy: 'true' }], 'one submission, the button disabled while it is pending');
    assert.equal(await page.locator('#mode-test tr[data-key]').count(), 0);
  }, 'keys');

  step('double-clicking Add test key makes one key', async () => {
    await page.goto('/keys');
    let posts = 0;
    page.on('request', (r) => { if (r.method() === 'POST' && new URL(r.url()).pathname === '/keys') posts += 1; });
    assert.equal(await page.locator('#revealed').count(), 0);
    // Two clicks as a person's double click lands them, ~150 ms apart, while the first
    // request is still on its way (the server's answer is held back 600 ms).
    await page.route('**/keys', async (route) => {
      if (route.request().method() === 'POST') await new Promise((r) => setTimeout(r, 600));
      await route.continue().catch(() => {});
    });
    const box = await page.locator('#mode-test').getByRole('button', { name: 'Add test key' }).boundingBox();
    const [x, y] = [box.x + box.width / 2, box.y + box.height / 2];
    await page.mouse.click(x, y);
    await new Promise((r) => setTimeout(r, 150));
    await page.mouse.click(x, y).catch(() => {});
    await page.locator('#revealed').waitFor();
    await page.waitForLoadState('load');
    await page.unroute('**/keys');
    assert.equal(posts, 1, 'one request for a double click');
    assert.match(await page.locator('#revealed').textContent(), /New test key/);
    assert.equal(await page.locator('#mode-test tr[data-key]').count(), 1, 'one key, not two');
    await env.screenshot(page, 'one-key-after-double-click');
  }, 'double-click');

  step('the same Add key form sent twice (no script) makes one key', async () => {
    await page.goto('/keys');
    // Two submissions of the same rendered form, bypassing the script, as a resubmission does.
    const statuses = await page.locator('#mode-live form[action="/keys"]').evaluate(async (form) => {
      const send = () => fetch('/keys', { method: 'POST', body: new URLSearchParams(new FormData(form)), redirect: 'manual' });
      const answers = await Promise.all([send(), send()]);
      return answers.map((a) => a.type);
    });
    assert.equal(statuses.length, 2);
    await page.goto('/keys');
    assert.equal(await page.locator('#mode-live tr[data-key]').count(), 1, 'one live key');
    assert.deepEqual(pageErrors, []);
  }, 'resubmission');
});
