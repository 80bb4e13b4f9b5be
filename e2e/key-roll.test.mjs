// End-to-end: rolling an API key. A new team's API Keys page lists Test before Live, shows
// this server's API base URL and a curl / Python snippet beside each key, with Roll and Rotate
// as secondary buttons. A Manager adds a test key that expires after 90 days, rolls it with
// one hour of grace (the form proposes the old key's 90 days), and the page shows both keys:
// the old one with the time it keeps working, the new one saying what it replaces. Both keys
// work against the v1 API. At 1280 and at 390 px wide, the keys page and the Roll form fit
// without sideways scrolling. Then a roll with no grace refuses the old key at once, with a
// JSON 401 naming its replacement.
//
// Run: `node --test e2e/` from the repository root after `cargo build` (see scripts/test).
// Environment: TESSERA_BIN, TESSERA_TEST_PYTHON, TESSERA_E2E_DATABASE_URL (see lib/harness.mjs).

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startEnvironment } from './lib/harness.mjs';

const STEP_TIMEOUT = 120_000;
const stamp = `${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;

const admin = {
  email: `roll.${stamp}@example.com`,
  password: 'correct horse battery',
  name: 'Rory Roller',
  company: 'Keyring Ltd',
  team: `Rollers ${stamp}`,
};

/** Runs `action` (a click or a submit) and waits until the navigation it causes has loaded. */
async function navigateBy(page, action) {
  const navigation = page.waitForNavigation({ waitUntil: 'load' });
  await action();
  return navigation;
}

const pathOf = (page) => new URL(page.url()).pathname;
const squash = (text) => text.replace(/\s+/g, ' ').trim();

/** How far the page is wider than the window (0: no sideways scrolling). */
const overflow = (page) => page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);

describe('Tessera API key roll in a real browser', { timeout: 10 * STEP_TIMEOUT }, () => {
  let env;
  let context;
  let page;
  let failed = false;
  const pageErrors = [];
  const serverErrors = [];

  let oldKey = '';
  let newKey = '';

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

  const api = async (key) => {
    const res = await fetch(`${env.baseUrl}/v1/projects`, {
      headers: { Authorization: `Basic ${Buffer.from(`${key}:`).toString('base64')}` },
    });
    return { status: res.status, json: await res.json() };
  };

  const testSection = () => page.locator('#mode-test');
  const keyRow = (key) => page.locator(`#mode-test tr[data-key="${key.slice(0, 12)}"]`);
  const secret = async () => (await page.locator('#secret-value').textContent()).trim();

  before(async () => {
    env = await startEnvironment({ label: 'key-roll' });
    context = await env.newContext();
    page = await context.newPage();
    await page.setViewportSize({ width: 1280, height: 900 });
    page.on('pageerror', (err) => pageErrors.push(`${page.url()}: ${err.message}`));
    page.on('response', (res) => {
      if (res.status() >= 500) serverErrors.push(`${res.request().method()} ${res.url()} -> ${res.status()}`);
    });
  });

  after(async () => {
    if (env) await env.stop();
  });

  step('a new team\'s keys page: Test first, the API base URL, secondary Rotate buttons', async () => {
    await page.goto('/signup');
    await page.getByLabel('Work email').fill(admin.email);
    await page.getByLabel('Password', { exact: true }).fill(admin.password);
    await page.getByLabel('Your name').fill(admin.name);
    await page.getByLabel('Company').fill(admin.company);
    await page.getByLabel('Team name').fill(admin.team);
    await navigateBy(page, () => page.getByRole('button', { name: 'Sign up' }).click());
    await page.goto('/keys');
    const order = await page.locator('section[id^="mode-"]').evaluateAll((sections) => sections.map((s) => s.id));
    assert.deepEqual(order, ['mode-test', 'mode-live'], 'test keys come first');
    assert.equal((await page.locator('#api-base-url').textContent()).trim(), `${env.baseUrl}/v1`);
    assert.doesNotMatch(await page.locator('main').textContent(), /copy it now/i);
    for (const name of ['Rotate', 'Rotate signing secret']) {
      const button = testSection().getByRole('button', { name, exact: true });
      assert.match(await button.getAttribute('class'), /\bsecondary\b/, `${name} is a secondary button`);
    }
  });

  step('add a 90-day test key: shown once with a snippet using this server\'s URL', async () => {
    await testSection().getByLabel('Label (optional)').fill('warehouse sync');
    await testSection().getByLabel('Expires').selectOption('90');
    await navigateBy(page, () => testSection().getByRole('button', { name: 'Add test key' }).click());
    oldKey = await secret();
    assert.match(oldKey, /^test_[0-9a-f]{64}$/);
    assert.equal((await page.locator('#revealed-curl').textContent()).trim(), `curl -u "${oldKey}:" ${env.baseUrl}/v1/projects`);
    assert.match(await page.locator('#revealed-python').textContent(), new RegExp(`api_instance_url="${env.baseUrl}/v1"`));
    assert.match(squash(await keyRow(oldKey).locator('.key-lifetime').textContent()), /^expires .* UTC \(in 90 days\)$/);
    // The snippet beside the key, behind "Use this key".
    const use = page.locator('#mode-test tr.key-use details').first();
    await use.locator('summary').click();
    assert.match(await use.textContent(), new RegExp(`curl -u "\\$TESSERA_API_KEY:" ${env.baseUrl.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/v1/projects`));
    assert.equal((await api(oldKey)).status, 200);
  });

  step('roll it with one hour of grace: both keys listed, the old with its time left', async () => {
    const roll = keyRow(oldKey).getByRole('link', { name: 'Roll…' });
    assert.match(await roll.getAttribute('class'), /\bsecondary\b/, 'Roll is a secondary button');
    await navigateBy(page, () => roll.click());
    assert.match(pathOf(page), /^\/keys\/[^/]+\/roll$/);
    assert.equal(await page.getByLabel('The new key expires').inputValue(), '90', 'the old key\'s lifetime is proposed');
    assert.equal(await page.getByLabel('Stop the old key').inputValue(), '1h');
    assert.ok((await overflow(page)) <= 0, 'the Roll form fits at 1280 px');
    await env.screenshot(page, 'roll-form-1280');
    await navigateBy(page, () => page.getByRole('button', { name: 'Roll key' }).click());
    assert.equal(pathOf(page), '/keys');
    newKey = await secret();
    assert.notEqual(newKey, oldKey);
    assert.match(squash(await page.locator('#revealed').textContent()), new RegExp(`replaces ${oldKey.slice(0, 12)}…, which keeps working until .* UTC`));

    assert.equal(await testSection().locator('tr[data-key]').count(), 2, 'both keys are listed');
    const rolled = squash(await keyRow(oldKey).locator('.key-rolled').textContent());
    assert.match(rolled, new RegExp(`^Rolled: keeps working for 59 minutes more \\(until .* UTC\\), replaced by ${newKey.slice(0, 12)}…$`));
    assert.equal(await keyRow(oldKey).getByRole('link', { name: 'Roll…' }).count(), 0, 'rolled once');
    assert.equal(squash(await keyRow(newKey).locator('.key-replaces').textContent()), `Replaces ${oldKey.slice(0, 12)}…`);
    assert.match(squash(await keyRow(newKey).locator('.key-lifetime').textContent()), /\(in 90 days\)$/);
    assert.equal((await api(oldKey)).status, 200, 'the old key works during its grace');
    assert.equal((await api(newKey)).status, 200, 'the new key works');
    assert.ok((await overflow(page)) <= 0, `no sideways scrolling at 1280 px (${await overflow(page)} px)`);
    const hidden = await testSection().locator('.table-wrap').evaluate((wrap) => wrap.scrollWidth - wrap.clientWidth);
    assert.ok(hidden <= 0, `every column of the keys table in view at 1280 px (${hidden} px cut)`);
    await env.screenshot(page, 'keys-rolled-1280');
  });

  step('at 390 px the keys page and the Roll form fit without sideways scrolling', async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    await page.goto('/keys');
    assert.equal(await testSection().locator('tr[data-key]').count(), 2);
    await keyRow(oldKey).locator('.key-rolled').scrollIntoViewIfNeeded();
    assert.match(squash(await keyRow(oldKey).locator('.key-rolled').textContent()), /keeps working for 59 minutes more/);
    assert.ok((await overflow(page)) <= 0, `keys page overflows by ${await overflow(page)} px at 390`);
    await env.screenshot(page, 'keys-rolled-390');
    await navigateBy(page, () => keyRow(newKey).getByRole('link', { name: 'Roll…' }).click());
    assert.ok((await overflow(page)) <= 0, `Roll form overflows by ${await overflow(page)} px at 390`);
    await env.screenshot(page, 'roll-form-390');
  });

  step('a roll with no grace refuses the old key at once, naming its replacement', async () => {
    await page.getByLabel('Stop the old key').selectOption('now');
    await page.getByLabel('The new key expires').selectOption('never');
    await navigateBy(page, () => page.getByRole('button', { name: 'Roll key' }).click());
    const newest = await secret();
    assert.match(squash(await page.locator('#revealed').textContent()), /which is refused from now on/);
    const refused = await api(newKey);
    assert.equal(refused.status, 401);
    assert.equal(refused.json.status_code, 401);
    assert.match(refused.json.error, new RegExp(`^This API key was rolled and stopped working at .* UTC\\. It was replaced by the key ${newest.slice(0, 12)}…; use that one\\.$`));
    assert.equal((await api(newest)).status, 200);
    assert.equal(await keyRow(newKey).count(), 0, 'a key past its grace is no longer listed');
    assert.ok((await overflow(page)) <= 0, 'still fits at 390 px with the revealed key');
    await env.screenshot(page, 'rolled-now-390');
    await page.setViewportSize({ width: 1280, height: 900 });
  });

  step('no JavaScript errors and no server errors', async () => {
    assert.deepEqual(pageErrors, []);
    assert.deepEqual(serverErrors, []);
  });
});
