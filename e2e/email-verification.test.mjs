// End-to-end: email verification at sign-up. A new Admin sees the banner on every page (it
// fits at 1280 and 390 px), is refused invitations with the reason, resends the link (the
// answer says when), opens the newest link from the mail in another browser (as from a
// phone) and confirms it; the older link no longer works, the banner is gone and inviting
// works.
//
// Run: `node --test e2e/` from the repository root after `cargo build` (see scripts/test).
// Environment: TESSERA_BIN, TESSERA_TEST_PYTHON, TESSERA_E2E_DATABASE_URL (see lib/harness.mjs).

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startEnvironment } from './lib/harness.mjs';

const STEP_TIMEOUT = 120_000;
const stamp = `${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;

const admin = {
  email: `vera.${stamp}@example.com`,
  password: 'correct horse battery',
  name: 'Vera Fied',
  company: 'Proven',
  team: `Proven ${stamp}`,
};
const invitee = `ian.${stamp}@example.com`;

/** Runs `action` (a click or a submit) and waits until the navigation it causes has loaded. */
async function navigateBy(page, action) {
  const navigation = page.waitForNavigation({ waitUntil: 'load' });
  await action();
  return navigation;
}

const verifyLink = (mail) => /(https?:\/\/[^\s"<>]+\/verify-email\/[A-Za-z0-9_-]+)/.exec(mail.text)[1];
const squash = (s) => s.replace(/\s+/g, ' ').trim();

describe('Tessera email verification in a real browser', { timeout: 6 * STEP_TIMEOUT }, () => {
  let env;
  let page;
  let phone;
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
    env = await startEnvironment({ label: 'email-verification' });
    page = await (await env.newContext()).newPage();
    phone = await (await env.newContext()).newPage();
    for (const p of [page, phone]) p.on('pageerror', (err) => pageErrors.push(err.message));
  });

  after(async () => {
    if (env) await env.stop();
  });

  step('a new Admin sees the banner on every page; it fits at 1280 and 390 px', async () => {
    await page.goto('/signup');
    await page.getByLabel('Work email').fill(admin.email);
    await page.getByLabel('Password', { exact: true }).fill(admin.password);
    await page.getByLabel('Your name').fill(admin.name);
    await page.getByLabel('Company').fill(admin.company);
    await page.getByLabel('Team name').fill(admin.team);
    await navigateBy(page, () => page.getByRole('button', { name: 'Sign up' }).click());
    assert.equal(new URL(page.url()).pathname, '/', 'sign-up lands on Get started');
    for (const path of ['/team', '/keys', '/profile']) {
      await page.goto(path);
      const banner = page.getByRole('region', { name: 'Email verification' });
      assert.match(squash(await banner.textContent()), new RegExp(`Verify ${admin.email.replace(/\./g, '\\.')}.*cannot create live tasks or invite people`));
      assert.equal(await banner.getByRole('button', { name: 'Resend the link' }).count(), 1, path);
    }
    await page.goto('/team');
    for (const width of [1280, 390]) {
      await page.setViewportSize({ width, height: 900 });
      // The banner fits the screen whatever the rest of the page does (the pages' own
      // 390 px layout is the responsive work of issue 13, not this banner's).
      const fits = await page.locator('#verify-banner').evaluate((el) => {
        const box = el.getBoundingClientRect();
        return { right: box.right, inner: window.innerWidth, scroll: el.scrollWidth, client: el.clientWidth };
      });
      assert.ok(fits.right <= fits.inner + 1 && fits.scroll <= fits.client + 1, `the banner fits at ${width} px: ${JSON.stringify(fits)}`);
      await env.screenshot(page, `banner-${width}`);
    }
    await page.setViewportSize({ width: 1200, height: 900 });
  });

  step('inviting is refused with the reason, the addresses kept', async () => {
    const invite = page.locator('#invite');
    await invite.getByLabel('Email addresses').fill(invitee);
    const response = await navigateBy(page, () => invite.getByRole('button', { name: 'Send invitations' }).click());
    assert.equal(response.status(), 403);
    assert.match(await page.locator('#invite').textContent(), /until its Admin verifies their email address/);
    assert.equal(await page.locator('#invite').getByLabel('Email addresses').inputValue(), invitee);
  });

  step('Resend the link says when it was sent', async () => {
    await navigateBy(page, () => page.getByRole('button', { name: 'Resend the link' }).click());
    assert.equal(new URL(page.url()).pathname, '/team');
    assert.match(await page.locator('.flash[role="status"]').last().textContent(),
      new RegExp(`We sent a new verification link to ${admin.email.replace(/\./g, '\\.')} at \\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d UTC`));
  });

  step('the newest link, opened in another browser, verifies on confirm; the older one is dead', async () => {
    const mails = await env.mailsTo(admin.email, { count: 2 });
    assert.equal(mails.length, 2, 'the sign-up mail and the resent one');
    const [first, newest] = mails.map(verifyLink);
    assert.notEqual(first, newest);
    await phone.goto(newest);
    assert.match(squash(await phone.locator('main').textContent()), new RegExp(`Confirm that ${admin.email.replace(/\./g, '\\.')} is your address`));
    await env.screenshot(phone, 'confirm-page');
    await navigateBy(phone, () => phone.getByRole('button', { name: `Verify ${admin.email}` }).click());
    assert.match(await phone.locator('#verify-done').textContent(), /is verified/);
    const old = await phone.goto(first);
    assert.equal(old.status(), 404);
    await phone.locator('#verify-unusable').waitFor();
  });

  step('the banner is gone and inviting works', async () => {
    await page.goto('/team');
    assert.equal(await page.locator('#verify-banner').count(), 0);
    const invite = page.locator('#invite');
    await invite.getByLabel('Email addresses').fill(invitee);
    await navigateBy(page, () => invite.getByRole('button', { name: 'Send invitations' }).click());
    assert.match(await page.locator('.flash[role="status"]').textContent(), /Invitation sent to/);
    await env.mailsTo(invitee);
    assert.deepEqual(pageErrors, []);
  });
});
