// End-to-end: the Admin hands the Admin role to a Manager from the Your Team page — choose the
// Manager, confirm, the Manager opens the link from the real email in their own browser session,
// accepts, and the roles swap — once at 1280 px wide and back again at 390 px, each page without
// sideways scrolling. Also: the invite form describes every role.
//
// Run: `node --test e2e/admin-handover.test.mjs` after `cargo build -p tessera` (see scripts/test).
// Environment: TESSERA_BIN, TESSERA_TEST_PYTHON, TESSERA_E2E_DATABASE_URL (see lib/harness.mjs).

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startEnvironment, inviteLink, waitFor, goByMenu } from './lib/harness.mjs';

const STEP_TIMEOUT = 120_000;
const stamp = `${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;

const owner = {
  email: `owner.${stamp}@example.com`,
  password: 'correct horse battery',
  name: 'Olivia Owner',
  team: `Handover ${stamp}`,
};
const manager = {
  email: `max.${stamp}@example.com`,
  password: 'difference-engine-42',
  name: 'Max Manager',
};

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

/** How far the page scrolls sideways (0: it fits the viewport). */
const sidewaysOverflow = (page) => page.evaluate(
  () => document.documentElement.scrollWidth - document.documentElement.clientWidth,
);

/** The hand-over link in a mail's text part. */
function handoverLink(mail) {
  const match = /(https?:\/\/[^\s"<>]+\/admin-handover\/[A-Za-z0-9_-]+)/.exec(mail.text);
  if (!match) throw new Error(`no hand-over link in the email's text part:\n${mail.text}`);
  return match[1];
}

const memberRow = (page, email) => page.locator(`#members tr[data-email="${email}"]:not(.invited)`);

describe('Tessera Admin hand-over in a real browser', { timeout: 10 * STEP_TIMEOUT }, () => {
  let env;
  let ownerPage;
  let managerPage;
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
      for (const [who, page] of [['owner', ownerPage], ['manager', managerPage]]) {
        if (page && !page.isClosed()) await env.screenshot(page, `FAILED-${who}`).catch(() => {});
      }
      if (env) err.message += `\n--- last lines of the Tessera log ---\n${env.serverLog().split('\n').slice(-25).join('\n')}`;
      throw err;
    }
  });

  const watch = (page, who) => {
    page.on('pageerror', (err) => pageErrors.push(`${who}: ${err.message}`));
    return page;
  };

  before(async () => {
    env = await startEnvironment({ label: 'admin-handover', serverArgs: ['--support-email', 'help@example.com'] });
    ownerPage = watch(await (await env.newContext()).newPage(), 'owner');
    managerPage = watch(await (await env.newContext()).newPage(), 'manager');
  });

  after(async () => {
    if (env) await env.stop();
  });

  step('the owner signs up and invites a Manager, reading what each role may do', async () => {
    await ownerPage.goto('/signup');
    await ownerPage.getByLabel('Work email').fill(owner.email);
    await ownerPage.getByLabel('Password', { exact: true }).fill(owner.password);
    await ownerPage.getByLabel('Your name').fill(owner.name);
    await ownerPage.getByLabel('Company').fill('Tessellate Ltd');
    await ownerPage.getByLabel('Team name').fill(owner.team);
    await navigateBy(ownerPage, () => ownerPage.getByRole('button', { name: 'Sign up' }).click());
    assert.equal(new URL(ownerPage.url()).pathname, '/', 'a new sign-up lands on Get started');
    await goByMenu(ownerPage, 'Your Team');
    assert.equal(new URL(ownerPage.url()).pathname, '/team');
    await env.verifyEmail(ownerPage, owner.email);
    await ownerPage.goto('/team');

    const help = (await ownerPage.locator('#role-help').textContent()).replace(/\s+/g, ' ');
    for (const text of ['Member', 'Manager', 'Labeler', 'invite, remove and change the roles of teammates', 'labeling queue, and nothing else']) {
      assert.ok(help.includes(text), `role help mentions "${text}": ${help}`);
    }
    const section = ownerPage.locator('#handover');
    assert.match(await section.textContent(), /make a teammate a Manager first/);

    const invite = ownerPage.locator('#invite');
    await invite.getByLabel('Email addresses').fill(manager.email);
    await invite.locator('select[name="role"]').selectOption('manager');
    await navigateBy(ownerPage, () => invite.getByRole('button', { name: 'Send invitations' }).click());
    assert.match(await flashText(ownerPage), /Invitation sent to/);

    const [mail] = await env.mailsTo(manager.email);
    await managerPage.goto(inviteLink(mail));
    await managerPage.getByLabel('Your name').fill(manager.name);
    await managerPage.getByLabel('Company').fill('Tessellate Ltd');
    await managerPage.getByLabel('Password', { exact: true }).fill(manager.password);
    await managerPage.getByLabel('Repeat password').fill(manager.password);
    await navigateBy(managerPage, () => managerPage.getByRole('button', { name: 'Accept invitation' }).click());
    assert.match(await flashText(managerPage), /You joined as Manager/);
  });

  /**
   * `from` (signed in on `fromPage`) hands the role to `to` (on `toPage`) at `width` px:
   * team page → confirm → offer → the mail's link → accept.
   */
  async function handOver({ width, fromPage, toPage, from, to }) {
    for (const page of [fromPage, toPage]) await page.setViewportSize({ width, height: 900 });
    await fromPage.goto('/team');
    assert.ok(await sidewaysOverflow(fromPage) <= 0, `team page fits ${width} px`);
    const section = fromPage.locator('#handover');
    await section.locator('select[name="to"]').selectOption({ label: `${to.name} (${to.email})` });
    await env.screenshot(fromPage, `team-handover-${width}`);
    await navigateBy(fromPage, () => section.getByRole('button', { name: 'Continue' }).click());

    assert.match(await fromPage.getByRole('heading', { level: 1 }).textContent(), new RegExp(`Hand the Admin role to ${to.name}\\?`));
    assert.ok(await sidewaysOverflow(fromPage) <= 0, `confirm page fits ${width} px`);
    await env.screenshot(fromPage, `confirm-${width}`);
    await navigateBy(fromPage, () => fromPage.getByRole('button', { name: 'Send the offer' }).click());
    assert.match(await flashText(fromPage), new RegExp(`The Admin role was offered to ${to.email.replace(/\./g, '\\.')}`));
    assert.match(await fromPage.locator('#handover-pending').textContent(), new RegExp(`You offered the Admin role to\\s*${to.name}`));
    assert.ok(await sidewaysOverflow(fromPage) <= 0, `team page with the pending offer fits ${width} px`);
    await env.screenshot(fromPage, `pending-${width}`);

    const mails = await waitFor(`a hand-over mail to ${to.email}`, async () => {
      const found = (await env.mails()).filter((m) => m.to.includes(to.email) && m.text.includes('/admin-handover/'));
      return found.length > 0 ? found : null;
    });
    assert.equal(mails.length, 1, 'one hand-over mail');
    const link = handoverLink(mails[0]);
    assert.match(mails[0].subject, new RegExp(`${from.name} offers you the Admin role of ${owner.team}`));

    // The one offering cannot accept their own offer: the page says whose it is.
    const refused = await fromPage.goto(link);
    assert.equal(refused.status(), 200);
    assert.match(await fromPage.locator('main').textContent(), /This offer is for someone else/);
    assert.equal(await fromPage.getByRole('button', { name: 'Accept the Admin role' }).count(), 0);

    const res = await toPage.goto(link);
    assert.equal(res.status(), 200);
    assert.match(await toPage.getByRole('heading', { level: 1 }).textContent(), new RegExp(`Become the Admin of ${owner.team}\\?`));
    assert.ok(await sidewaysOverflow(toPage) <= 0, `accept page fits ${width} px`);
    await env.screenshot(toPage, `accept-${width}`);
    await navigateBy(toPage, () => toPage.getByRole('button', { name: 'Accept the Admin role' }).click());
    assert.equal(new URL(toPage.url()).pathname, '/team');
    assert.equal(await flashText(toPage), `You are now the Admin of ${owner.team}; ${from.email} is now a Manager.`);
    assert.match(await memberRow(toPage, to.email).textContent(), /Admin/);
    assert.ok(await sidewaysOverflow(toPage) <= 0, `team page of the new Admin fits ${width} px`);
    await env.screenshot(toPage, `new-admin-${width}`);

    await fromPage.goto('/team');
    assert.equal(await fromPage.locator('#handover').count(), 0, 'the former Admin no longer hands over');
    assert.match(await memberRow(fromPage, from.email).textContent(), /Manager/);
  }

  step('at 1280 px the owner hands the Admin role to the Manager', async () => {
    await handOver({ width: 1280, fromPage: ownerPage, toPage: managerPage, from: owner, to: manager });
  });

  step('at 390 px the new Admin hands it back', async () => {
    await handOver({ width: 390, fromPage: managerPage, toPage: ownerPage, from: manager, to: owner });
  });

  step('no JavaScript errors', async () => {
    assert.deepEqual(pageErrors, []);
  });
});
