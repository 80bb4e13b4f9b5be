// End-to-end: sign up, invite two teammates, check that the admin opening an invitation is
// asked to sign out (not switched to the invitee), accept one invitation from the real email in
// another browser session, change her role and back, revoke the other invitation, check that a
// Member is offered no team management (and is refused it over HTTP), and read the audit log.
//
// Run: `node --test e2e/` from the repository root after `cargo build` (see scripts/test).
// Environment: TESSERA_BIN, TESSERA_TEST_PYTHON, TESSERA_E2E_DATABASE_URL (see lib/harness.mjs).

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startEnvironment, inviteLink, goByMenu, openMenu } from './lib/harness.mjs';

const STEP_TIMEOUT = 120_000;
const stamp = `${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;

const admin = {
  email: `owner.${stamp}@example.com`,
  password: 'correct horse battery',
  name: 'Olivia Owner',
  company: 'Tessellate Ltd',
  team: `Mosaic ${stamp}`,
};
const ada = { email: `ada.${stamp}@example.com`, name: 'Ada Lovelace', company: 'Analytical Engines', password: 'difference-engine-42' };
const grace = { email: `grace.${stamp}@example.com` };
const intruder = `mallory.${stamp}@example.com`;

/** Runs `action` (a click or a submit) and waits until the navigation it causes has loaded. */
async function navigateBy(page, action) {
  const navigation = page.waitForNavigation({ waitUntil: 'load' });
  await action();
  const response = await navigation;
  return response;
}

async function flashText(page) {
  const flash = page.locator('.flash[role="status"]');
  await flash.waitFor({ state: 'visible' });
  return (await flash.textContent()).trim();
}

const invitedRow = (page, email) => page.locator(`tr.invited[data-email="${email}"]`);
const memberRow = (page, email) => page.locator(`#members tr[data-email="${email}"]:not(.invited)`);

describe('Tessera team invitations in a real browser', { timeout: 10 * STEP_TIMEOUT }, () => {
  let env;
  let adminContext;
  let adminPage;
  let adaContext;
  let adaPage;
  let failed = false;
  const pageErrors = [];

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
      for (const [who, page] of [['admin', adminPage], ['invitee', adaPage]]) {
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
    env = await startEnvironment({ label: 'invitations' });
    adminContext = await env.newContext();
    adminPage = watch(await adminContext.newPage(), 'admin');
  });

  after(async () => {
    if (env) await env.stop();
  });

  step('an admin signs up, lands on Get started, and finds "Your Team" in the profile menu', async () => {
    const res = await adminPage.goto('/signup');
    assert.equal(res.status(), 200);
    await adminPage.getByLabel('Work email').fill(admin.email);
    await adminPage.getByLabel('Password', { exact: true }).fill(admin.password);
    await adminPage.getByLabel('Your name').fill(admin.name);
    await adminPage.getByLabel('Company').fill(admin.company);
    await adminPage.getByLabel('Team name').fill(admin.team);
    await env.screenshot(adminPage, 'signup-filled');
    await navigateBy(adminPage, () => adminPage.getByRole('button', { name: 'Sign up' }).click());

    assert.equal(new URL(adminPage.url()).pathname, '/', 'a new sign-up lands on Get started');
    assert.match(await flashText(adminPage), /Your team "Mosaic .*" is ready, and you are its Admin/);
    const account = adminPage.getByRole('navigation', { name: 'Account' });
    await openMenu(adminPage);
    for (const label of ['Your Team', 'Team details', 'Audit log', 'Profile']) {
      assert.equal(await account.getByRole('link', { name: label, exact: true }).count(), 1, `admin's profile menu offers "${label}"`);
    }
    await goByMenu(adminPage, 'Your Team');
    assert.equal(new URL(adminPage.url()).pathname, '/team');
    assert.match(await adminPage.getByRole('heading', { level: 1 }).textContent(), new RegExp(`Your Team.*${admin.team}`));
    const me = memberRow(adminPage, admin.email);
    await me.waitFor();
    assert.match(await me.textContent(), /Admin/);
    assert.match(await me.textContent(), /you/);
    await env.screenshot(adminPage, 'team-after-signup');
    await env.verifyEmail(adminPage, admin.email);
  });

  step('the admin invites two people, who appear as "Invited"', async () => {
    const invite = adminPage.locator('#invite');
    assert.equal(await invite.getByRole('heading', { name: 'Invite Member' }).count(), 1);
    await invite.getByLabel('Email addresses').fill(`${ada.email}\n${grace.email}`);
    await invite.locator('select[name="role"]').selectOption('member');
    await navigateBy(adminPage, () => invite.getByRole('button', { name: 'Send invitations' }).click());

    assert.equal(new URL(adminPage.url()).pathname, '/team');
    const flash = await flashText(adminPage);
    assert.ok(flash.includes(ada.email) && flash.includes(grace.email) && flash.startsWith('Invitation sent to'), `flash: ${flash}`);
    for (const email of [ada.email, grace.email]) {
      const row = invitedRow(adminPage, email);
      assert.equal(await row.count(), 1, `one invited row for ${email}`);
      assert.match(await row.textContent(), /Invited/);
      assert.match(await row.textContent(), /Member/);
      assert.match(await row.textContent(), /Expires/);
    }
    assert.equal(await adminPage.locator('tr.invited').count(), 2);
    await env.screenshot(adminPage, 'two-invited');
  });

  step('the admin opening the invitation is asked to sign out, not switched to the invitee', async () => {
    const [mail] = await env.mailsTo(ada.email);
    const link = inviteLink(mail);
    const res = await adminPage.goto(link);
    assert.equal(res.status(), 200);
    const main = (await adminPage.locator('main').textContent()).replace(/\s+/g, ' ');
    assert.ok(main.includes(`You are signed in as ${admin.email}; this invitation is for ${ada.email} — sign out to accept.`), main);
    assert.equal(await adminPage.getByRole('button', { name: 'Accept invitation' }).count(), 0, 'no accept form');
    assert.equal(await adminPage.getByLabel('Repeat password').count(), 0, 'no new-account fields');
    await env.screenshot(adminPage, 'invitation-signed-in-as-other');

    // Posting the accept form anyway is refused and leaves the admin signed in.
    const csrf = await adminPage.locator('input[name="csrf_token"]').first().getAttribute('value');
    const post = await adminPage.request.post(link, {
      form: { csrf_token: csrf, name: 'Not Ada', password: ada.password, confirm_password: ada.password },
      maxRedirects: 0,
    });
    assert.equal(post.status(), 409, `POST of the accept form while signed in as the admin: ${post.status()}`);
    assert.match(await post.text(), /sign out to accept/);
    await adminPage.goto('/team');
    assert.equal(new URL(adminPage.url()).pathname, '/team');
    assert.match(await adminPage.locator('.who-name').textContent(), new RegExp(admin.name));
    assert.equal(await invitedRow(adminPage, ada.email).count(), 1, 'the invitation is still pending');

    // In another session of the admin, "Sign out and continue" comes back to the invitation.
    const other = await env.newContext();
    try {
      const page = watch(await other.newPage(), 'admin-2');
      await page.goto('/login');
      await page.getByLabel('Email').fill(admin.email);
      await page.getByLabel('Password').fill(admin.password);
      await navigateBy(page, () => page.getByRole('button', { name: 'Log in' }).click());
      await page.goto(link);
      await navigateBy(page, () => page.getByRole('button', { name: 'Sign out and continue' }).click());
      assert.equal(page.url(), link, 'back on the invitation after signing out');
      assert.equal(await page.getByRole('button', { name: 'Accept invitation' }).count(), 1);
      assert.equal(await page.locator('.who-name').count(), 0, 'signed out');
      await env.screenshot(page, 'invitation-after-sign-out');
    } finally {
      await other.close();
    }
  });

  step('the first invitee accepts from the emailed link in another browser session', async () => {
    const [mail] = await env.mailsTo(ada.email);
    assert.match(mail.subject, new RegExp(`invited to join ${admin.team}`));
    assert.match(mail.text, new RegExp(`${admin.name} invited you to join the team "${admin.team}"`));
    const link = inviteLink(mail);
    assert.ok(link.startsWith(`${env.baseUrl}/invite/`), `link ${link} points at this server`);

    adaContext = await env.newContext();
    adaPage = watch(await adaContext.newPage(), 'invitee');
    const res = await adaPage.goto(link);
    assert.equal(res.status(), 200);
    assert.match(await adaPage.getByRole('heading', { level: 1 }).textContent(), new RegExp(`Join ${admin.team}`));
    assert.match(await adaPage.locator('main').textContent(), new RegExp(`invited as\\s*Member\\s*with\\s*${ada.email.replace(/\./g, '\\.')}`));
    await adaPage.getByLabel('Your name').fill(ada.name);
    await adaPage.getByLabel('Company').fill(ada.company);
    await adaPage.getByLabel('Password', { exact: true }).fill(ada.password);
    await adaPage.getByLabel('Repeat password').fill(ada.password);
    await env.screenshot(adaPage, 'accept-filled');
    await navigateBy(adaPage, () => adaPage.getByRole('button', { name: 'Accept invitation' }).click());

    assert.equal(new URL(adaPage.url()).pathname, '/team', 'a Member lands on the team page');
    assert.equal(await flashText(adaPage), `Welcome to ${admin.team}! You joined as Member.`);
    assert.match(await adaPage.locator('.who-name').textContent(), new RegExp(`${ada.name}.*${admin.team}`));
    await env.screenshot(adaPage, 'invitee-signed-in');
  });

  step('the admin sees her as a member and changes her role to Manager and back', async () => {
    await adminPage.reload();
    const row = memberRow(adminPage, ada.email);
    await row.waitFor();
    assert.match(await row.textContent(), new RegExp(ada.name));
    assert.equal(await invitedRow(adminPage, ada.email).count(), 0, 'no longer listed as invited');
    const select = row.locator('select[name="role"]');
    assert.equal(await select.inputValue(), 'member');
    await env.screenshot(adminPage, 'member-listed');

    for (const [value, label] of [['manager', 'Manager'], ['member', 'Member']]) {
      await select.selectOption(value);
      await navigateBy(adminPage, () => row.getByRole('button', { name: 'Change role' }).click());
      assert.equal(new URL(adminPage.url()).pathname, '/team');
      assert.equal(await flashText(adminPage), `${ada.email} is now a ${label}.`);
      assert.equal(await memberRow(adminPage, ada.email).locator('select[name="role"]').inputValue(), value);
      await env.screenshot(adminPage, `role-${value}`);
    }
  });

  step('the admin removes the other invitation after confirming', async () => {
    const dialogs = [];
    const onDialog = (dialog) => { dialogs.push(`${dialog.type()}: ${dialog.message()}`); dialog.accept(); };
    adminPage.on('dialog', onDialog);
    try {
      const row = invitedRow(adminPage, grace.email);
      await navigateBy(adminPage, () => row.getByRole('button', { name: 'Remove' }).click());
    } finally {
      adminPage.off('dialog', onDialog);
    }
    assert.equal(dialogs.length, 1, 'one confirm dialog');
    assert.match(dialogs[0], new RegExp(`^confirm: Remove the invitation to ${grace.email.replace(/\./g, '\\.')}\\?`));
    assert.equal(await flashText(adminPage), `The invitation to ${grace.email} was removed.`);
    assert.equal(await invitedRow(adminPage, grace.email).count(), 0, 'the invited row is gone');
    assert.equal(await adminPage.locator('tr.invited').count(), 0);
    await env.screenshot(adminPage, 'invitation-removed');

    // The revoked link explains itself instead of offering the form.
    const [mail] = await env.mailsTo(grace.email);
    const res = await adminContext.request.get(inviteLink(mail));
    assert.equal(res.status(), 410);
    assert.match(await res.text(), /Invitation revoked/);
  });

  step('a Member is offered no team management and is refused it over HTTP', async () => {
    const res = await adaPage.goto('/team');
    assert.equal(res.status(), 200);
    assert.equal(new URL(adaPage.url()).pathname, '/team');
    await memberRow(adaPage, admin.email).waitFor();
    assert.equal(await memberRow(adaPage, ada.email).count(), 1);
    assert.equal(await adaPage.locator('#invite').count(), 0, 'no invite section');
    assert.equal(await adaPage.getByRole('heading', { name: 'Invite Member' }).count(), 0, 'no "Invite Member" heading');
    assert.equal(await adaPage.locator('form[action="/team/invitations"]').count(), 0, 'no invite form');
    assert.equal(await adaPage.getByRole('button', { name: 'Change role' }).count(), 0, 'no "Change role" buttons');
    assert.equal(await adaPage.locator('#members select').count(), 0, 'no role pickers');
    assert.equal(await adaPage.getByRole('button', { name: 'Remove' }).count(), 0, 'no "Remove" buttons');
    assert.equal(await adaPage.getByRole('link', { name: 'Remove' }).count(), 0, 'no "Remove" links');
    await openMenu(adaPage);
    const nav = adaPage.getByRole('navigation', { name: 'Account' });
    assert.equal(await nav.getByRole('link', { name: 'Your Team', exact: true }).count(), 1);
    assert.equal(await nav.getByRole('link', { name: 'Team details' }).count(), 0, 'menu has no "Team details"');
    assert.equal(await nav.getByRole('link', { name: 'Audit log' }).count(), 0, 'menu has no "Audit log"');
    for (const label of ['Team details', 'Audit log']) {
      assert.equal(await adaPage.getByRole('link', { name: label, exact: true }).count(), 0, `no "${label}" link anywhere`);
    }
    await env.screenshot(adaPage, 'member-view');

    // Count invitations as the admin sees them, then try to invite as the Member directly.
    await adminPage.reload();
    const before = await adminPage.locator('tr.invited').count();
    const csrf = await adaPage.locator('input[name="csrf_token"]').first().getAttribute('value');
    assert.ok(csrf && csrf.length > 10, 'a CSRF token on the page');
    const post = await adaPage.request.post(`${env.baseUrl}/team/invitations`, {
      form: { csrf_token: csrf, emails: intruder, role: 'member' },
      maxRedirects: 0,
    });
    const body = await post.text();
    assert.equal(post.status(), 403, `POST /team/invitations as a Member: ${post.status()}`);
    assert.doesNotMatch(body, /did not come from Tessera/, 'refused by the role policy, not by the CSRF check');
    assert.match(body, /does not allow/);
    for (const path of ['/team/audit', '/team/details']) {
      const r = await adaPage.request.get(`${env.baseUrl}${path}`, { maxRedirects: 0 });
      assert.equal(r.status(), 403, `GET ${path} as a Member`);
    }

    await adminPage.reload();
    assert.equal(await adminPage.locator('tr.invited').count(), before, 'the invitation count did not change');
    assert.equal(await adminPage.locator(`tr[data-email="${intruder}"]`).count(), 0);
    await env.screenshot(adminPage, 'admin-after-member-attempt');
  });

  step('the audit log lists the invitation lifecycle', async () => {
    await goByMenu(adminPage, 'Audit log');
    assert.equal(new URL(adminPage.url()).pathname, '/team/audit');
    const rows = await adminPage.locator('#audit tbody tr').evaluateAll((trs) => trs.map((tr) =>
      Array.from(tr.querySelectorAll('td')).map((td) => td.textContent.trim())));
    const events = rows.map(([when, who, action, target, detail]) => ({ when, who, action, target, detail }));
    const has = (action, target, detail) => events.some((e) => e.action === action && e.target === target && (!detail || detail.test(e.detail)));
    assert.ok(has('invitation.sent', ada.email), 'invitation.sent for the first invitee');
    assert.ok(has('invitation.sent', grace.email), 'invitation.sent for the second invitee');
    assert.ok(has('invitation.accepted', ada.email), 'invitation.accepted');
    assert.ok(has('member.role_changed', ada.email, /Member → Manager/), 'member.role_changed to Manager');
    assert.ok(has('member.role_changed', ada.email, /Manager → Member/), 'member.role_changed back to Member');
    assert.ok(has('invitation.revoked', grace.email), 'invitation.revoked');
    assert.ok(!events.some((e) => e.target === intruder), 'nothing was recorded for the refused invite');
    await env.screenshot(adminPage, 'audit-log');
  });

  step('no page raised a JavaScript error', async () => {
    // Give late errors a moment to surface, then check.
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.deepEqual(pageErrors, []);
  });
});
