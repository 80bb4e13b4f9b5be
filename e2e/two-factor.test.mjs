// End-to-end: two-factor sign-in in a real browser, at 1280 px and at 390 px wide. A new
// customer signs up, opens Profile → "Set up two-factor authentication", reads the key shown
// beside the QR code, computes the current code as an authenticator app would (RFC 6238,
// HMAC-SHA1 with node's crypto), turns it on with the password, sees the recovery codes once,
// logs out, and signs in again: password, then the code step, landing where `next` pointed.
// Every page on the way fits the width (no sideways scrolling), has no JavaScript error, and
// is screenshotted into e2e/artifacts/two-factor-*/.
//
// Run: `node --test e2e/two-factor.test.mjs` from the repository root after `cargo build`.
// Environment: TESSERA_BIN, TESSERA_TEST_PYTHON, TESSERA_E2E_DATABASE_URL (see lib/harness.mjs).

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { startEnvironment } from './lib/harness.mjs';

const STEP_TIMEOUT = 120_000;
const stamp = `${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;
const PASSWORD = 'correct horse battery';

/** RFC 4648 base32 (spaces ignored), as the set-up page shows the key. */
function base32Decode(text) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = 0;
  let value = 0;
  const out = [];
  for (const c of text.replace(/\s+/g, '').toUpperCase()) {
    const index = alphabet.indexOf(c);
    assert.ok(index >= 0, `not base32: ${c}`);
    value = (value << 5) | index;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out.push((value >>> bits) & 0xff);
    }
  }
  return Buffer.from(out);
}

/** The 6-digit RFC 6238 code of `secret` at `unixSecs` (30-second steps, HMAC-SHA1). */
function totp(secret, unixSecs) {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(unixSecs / 30)));
  const digest = crypto.createHmac('sha1', secret).update(counter).digest();
  const offset = digest[digest.length - 1] & 0x0f;
  const number = digest.readUInt32BE(offset) & 0x7fffffff;
  return String(number % 1_000_000).padStart(6, '0');
}

const nowSecs = () => Math.floor(Date.now() / 1000);

/** Runs `action` (a click or a submit) and waits until the navigation it causes has loaded. */
async function navigateBy(page, action) {
  const navigation = page.waitForNavigation({ waitUntil: 'load' });
  await action();
  return navigation;
}

/** Fails when the page scrolls sideways at its current width. */
async function assertFits(page, what) {
  const { scroll, client } = await page.evaluate(() => ({
    scroll: document.documentElement.scrollWidth,
    client: document.documentElement.clientWidth,
  }));
  assert.ok(scroll <= client, `${what}: ${scroll} px wide in a ${client} px window (sideways scrolling)`);
}

describe('Tessera two-factor sign-in in a real browser', { timeout: 10 * STEP_TIMEOUT }, () => {
  let env;
  const pageErrors = [];

  before(async () => {
    env = await startEnvironment({ label: 'two-factor' });
  });

  after(async () => {
    if (env) await env.stop();
  });

  /** Signs up, enrolls, logs out and signs in with a code, in a window `width` px wide. */
  const enrollAndSignIn = async (width) => {
      const email = `owner.${width}.${stamp}@example.com`;
      const context = await env.browser.newContext({ baseURL: env.baseUrl, viewport: { width, height: 900 } });
      context.setDefaultTimeout(15_000);
      const page = await context.newPage();
      page.on('pageerror', (err) => pageErrors.push(`${width}px: ${err.message}`));
      const shot = (name) => env.screenshot(page, `${width}px-${name}`);
      try {
        // Sign up.
        await page.goto('/signup');
        await page.fill('input[name="email"]', email);
        await page.fill('input[name="password"]', PASSWORD);
        await page.fill('input[name="name"]', 'Tess Factor');
        await page.fill('input[name="company"]', 'Second Step Ltd');
        await page.fill('input[name="team_name"]', `Two Factor ${width} ${stamp}`);
        await navigateBy(page, () => page.click('button[type="submit"]'));
        assert.match(new URL(page.url()).pathname, /^\/team/);

        // Profile → set up: the QR code and the key in text.
        await page.goto('/profile');
        await navigateBy(page, () => page.click('#set-up-two-factor'));
        assert.equal(new URL(page.url()).pathname, '/profile/two-factor');
        const qr = page.locator('svg.qr');
        await qr.waitFor({ state: 'visible' });
        const box = await qr.boundingBox();
        assert.ok(box.width >= 150 && box.width <= width, `QR code ${box.width} px wide`);
        await assertFits(page, 'set-up page');
        await shot('setup');
        const secret = base32Decode(await page.locator('#two-factor-secret').textContent());
        assert.equal(secret.length, 20);

        // A wrong code is refused next to the field; the right one (and the password) turns it on.
        await page.fill('#setup input[name="code"]', '000000');
        await page.fill('#setup input[name="password"]', PASSWORD);
        await navigateBy(page, () => page.click('#setup button[type="submit"]:has-text("Turn on")'));
        await page.locator('#enable-error').waitFor({ state: 'visible' });
        assert.equal(await page.locator('#setup input[name="code"]').getAttribute('aria-invalid'), 'true');
        await page.fill('#setup input[name="code"]', totp(secret, nowSecs()));
        await page.fill('#setup input[name="password"]', PASSWORD);
        await navigateBy(page, () => page.click('#setup button[type="submit"]:has-text("Turn on")'));
        await page.locator('#two-factor-enabled').waitFor({ state: 'visible' });
        const codes = await page.locator('#recovery-codes code').allTextContents();
        assert.equal(codes.length, 10);
        for (const code of codes) assert.match(code, /^[a-z2-7]{4}(-[a-z2-7]{4}){3}$/);
        await assertFits(page, 'recovery codes page');
        await shot('recovery-codes');

        // Log out, then sign in again: the password leads to the code step, then to `next`.
        await navigateBy(page, () => page.click('button:has-text("Log out")'));
        await page.goto('/keys');
        assert.equal(new URL(page.url()).pathname, '/login');
        await page.fill('input[name="email"]', email);
        await page.fill('input[name="password"]', PASSWORD);
        await navigateBy(page, () => page.click('button[type="submit"]:has-text("Log in")'));
        assert.equal(new URL(page.url()).pathname, '/login/two-factor');
        const cookies = await context.cookies();
        assert.ok(!cookies.some((c) => c.name === 'tessera_session' && c.value), 'no session before the code');
        await assertFits(page, 'code step');
        await shot('code-step');
        // The code the set-up used is spent; the next step's is within the allowed skew.
        await page.fill('input[name="code"]', totp(secret, nowSecs() + 30));
        await navigateBy(page, () => page.click('button[type="submit"]:has-text("Verify")'));
        assert.equal(new URL(page.url()).pathname, '/keys');
        await assertFits(page, 'page after sign-in');
        await shot('signed-in');

        // The profile says it is on.
        await page.goto('/profile');
        await page.locator('#two-factor .tag-on').waitFor({ state: 'visible' });
        await assertFits(page, 'profile');
      } catch (err) {
        await shot('FAILED').catch(() => {});
        err.message += `\n--- last lines of the Tessera log ---\n${env.serverLog().split('\n').slice(-25).join('\n')}`;
        throw err;
      } finally {
        await context.close();
      }
      assert.deepEqual(pageErrors, []);
  };

  it('enrolls and signs in with a code at 1280 px', { timeout: STEP_TIMEOUT }, () => enrollAndSignIn(1280));
  it('enrolls and signs in with a code at 390 px', { timeout: STEP_TIMEOUT }, () => enrollAndSignIn(390));
});
