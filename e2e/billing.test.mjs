// End-to-end: billing with a real card flow. An Admin signs up on a server configured with a
// localstripe (Stripe's API and Stripe.js, emulated) and adds a card on the card page through
// Stripe.js's Card Element: the card goes to "Stripe", the page then shows brand and last4. A
// Labeler completes a live task; the Billing page counts it, charts it and accrues its price.
// The operator closes the period (`tessera admin close-period`); the invoice is listed, is
// charged to the card, and downloads as CSV (the task's id in it) and as PDF (whose text has the
// invoice number and total). A Manager sees billing and the card without the card form; a
// Member gets 403.
//
// Run: `node --test e2e/` from the repository root after `cargo build` (see scripts/test).

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { startEnvironment, inviteLink, waitFor, PYTHON, goByMenu, menuLinks, leaveTestMode } from './lib/harness.mjs';

const execFileP = promisify(execFile);
const STEP_TIMEOUT = 120_000;
const stamp = `${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;

const admin = {
  email: `billing.${stamp}@example.com`,
  password: 'correct horse battery',
  name: 'Bea Billing',
  company: 'Paid Pixels',
  team: `Paid ${stamp}`,
};
const people = {
  labeler: { email: `lab.${stamp}@example.com`, name: 'Lou Labeler', role: 'labeler' },
  manager: { email: `mgr.${stamp}@example.com`, name: 'Max Manager', role: 'manager' },
  member: { email: `mem.${stamp}@example.com`, name: 'Mia Member', role: 'member' },
};
const PASSWORD = 'label-every-thing-7';

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
const text = async (page, selector) => squash(await page.locator(selector).textContent());

describe('Tessera billing with a card, in a real browser', { timeout: 20 * STEP_TIMEOUT }, () => {
  let env;
  let failed = false;
  const pages = {};
  const pageErrors = [];
  const serverErrors = [];
  let liveKey = '';
  let taskId = '';
  let invoiceId = '';
  let invoiceNumber = '';
  let invoiceTotal = '';

  const step = (name, fn) => it(name, { timeout: STEP_TIMEOUT }, async (t) => {
    if (failed) {
      t.skip('an earlier step failed');
      return;
    }
    try {
      await fn(t);
    } catch (err) {
      failed = true;
      for (const [who, page] of Object.entries(pages)) {
        if (page && !page.isClosed()) await env.screenshot(page, `FAILED-${who}`).catch(() => {});
      }
      if (env) err.message += `\n--- last lines of the Tessera log ---\n${env.serverLog().split('\n').slice(-25).join('\n')}`;
      throw err;
    }
  });

  const open = async (who) => {
    const context = await env.newContext();
    const page = await context.newPage();
    page.on('pageerror', (err) => pageErrors.push(`${who}: ${err.message}`));
    page.on('response', (res) => {
      if (res.status() >= 500) serverErrors.push(`${who}: ${res.request().method()} ${res.url()} -> ${res.status()}`);
    });
    pages[who] = page;
    return page;
  };

  /** The Admin invites `person`; they accept from the emailed link in their own browser. */
  const join = async (person) => {
    const adminPage = pages.admin;
    await adminPage.goto('/team');
    const invite = adminPage.locator('#invite');
    await invite.getByLabel('Email addresses').fill(person.email);
    await invite.locator('select[name="role"]').selectOption(person.role);
    await navigateBy(adminPage, () => invite.getByRole('button', { name: 'Send invitations' }).click());
    const [mail] = await env.mailsTo(person.email);
    const page = await open(person.role);
    assert.equal((await page.goto(inviteLink(mail))).status(), 200);
    await page.getByLabel('Your name').fill(person.name);
    await page.getByLabel('Company').fill('Paid Pixels');
    await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
    await page.getByLabel('Repeat password').fill(PASSWORD);
    await navigateBy(page, () => page.getByRole('button', { name: 'Accept invitation' }).click());
    return page;
  };

  before(async () => {
    env = await startEnvironment({ label: 'billing', stripe: true });
  });

  after(async () => {
    if (env) await env.stop();
  });

  step('an admin signs up, adds a live API key, and sees billing with no card', async () => {
    const page = await open('admin');
    await page.goto('/signup');
    await page.getByLabel('Work email').fill(admin.email);
    await page.getByLabel('Password', { exact: true }).fill(admin.password);
    await page.getByLabel('Your name').fill(admin.name);
    await page.getByLabel('Company').fill(admin.company);
    await page.getByLabel('Team name').fill(admin.team);
    await navigateBy(page, () => page.getByRole('button', { name: 'Sign up' }).click());
    assert.equal(pathOf(page), '/', 'a new sign-up lands on Get started');
    await env.verifyEmail(page, admin.email);
    // A new team starts in test mode; this team works with live data.
    await leaveTestMode(page);

    await page.goto('/keys');
    const live = page.locator('#mode-live');
    await live.getByLabel('Label (optional)').fill('billing e2e');
    await navigateBy(page, () => live.getByRole('button', { name: 'Add live key' }).click());
    liveKey = (await page.locator('#secret-value').textContent()).trim();
    assert.match(liveKey, /^live_\S{16,}$/);

    await goByMenu(page, 'Billing');
    assert.equal(pathOf(page), '/billing');
    assert.equal(await text(page, '#card-summary'), 'No card on file.');
    assert.equal(await text(page, '#completed-tasks'), '0');
    await env.screenshot(page, 'billing-empty');
  });

  step('the admin adds a card through Stripe.js; the page shows its brand and last4', async () => {
    const page = pages.admin;
    await navigateBy(page, () => page.getByRole('link', { name: 'Add a card' }).click());
    assert.equal(pathOf(page), '/billing/card');
    // localstripe's Stripe.js mounts its Card Element: number, expiry, CVC, postal code.
    const field = (name) => page.locator(`#card-element input[placeholder="${name}"]`);
    await field('number').waitFor({ state: 'visible' });
    await field('number').fill('4242424242424242');
    await field('exp_month').fill('12');
    await field('exp_year').fill('34');
    await field('cvc').fill('123');
    await field('postal_code').fill('10001');
    await env.screenshot(page, 'card-form');
    await navigateBy(page, () => page.getByRole('button', { name: 'Save card' }).click());
    assert.equal(pathOf(page), '/billing');
    assert.equal(await flashText(page), 'Card saved: visa ending in 4242.');
    assert.equal(await text(page, '#card-summary'), 'visa ending in 4242, expires 12/2034');
    assert.equal(await page.getByRole('link', { name: 'Replace card' }).count(), 1);
    await env.screenshot(page, 'billing-card-saved');
  });

  step('a labeler completes a live task', async () => {
    const auth = `Basic ${Buffer.from(`${liveKey}:`).toString('base64')}`;
    const res = await fetch(`${env.baseUrl}/v1/task/categorization`, {
      method: 'POST',
      headers: { Authorization: auth, 'Content-Type': 'application/json' },
      body: JSON.stringify({
        instruction: `Billable? (${stamp})`,
        attachment: 'https://www.example.com/',
        attachment_type: 'website',
        categories: ['yes', 'no'],
      }),
    });
    const task = await res.json();
    assert.equal(res.status, 200, JSON.stringify(task));
    taskId = task.task_id;

    const page = await join(people.labeler);
    assert.equal(pathOf(page), '/label');
    await navigateBy(page, () => page.getByRole('button', { name: 'Next task' }).click());
    assert.equal(pathOf(page), `/label/${taskId}`);
    await page.getByLabel('Response JSON').fill('{"category": "yes"}');
    await navigateBy(page, () => page.getByRole('button', { name: 'Submit', exact: true }).click());
    assert.equal(await flashText(page), `Task ${taskId} submitted. Thank you!`);
  });

  step('the Billing page shows the task in the count, the chart and the accrued balance', async () => {
    const page = pages.admin;
    await page.goto('/billing');
    assert.equal(await text(page, '#completed-tasks'), '1');
    assert.equal(await text(page, '#accrued'), '0.08 USD');
    const byType = await page.locator('#usage-by-type tbody tr').evaluateAll((trs) => trs.map((tr) =>
      Array.from(tr.querySelectorAll('td')).map((td) => td.textContent.trim())));
    assert.deepEqual(byType, [['categorization', '1', '0.08 USD']]);
    const today = new Date().toISOString().slice(0, 10);
    const bars = await page.locator('.chart svg rect.bar title').allTextContents();
    assert.ok(bars.includes(`${today}: 1 tasks, 0.08 USD`), `today's bar: ${bars.slice(-3)}`);
    // The API agrees to the cent.
    const auth = `Basic ${Buffer.from(`${liveKey}:`).toString('base64')}`;
    const billing = await (await fetch(`${env.baseUrl}/v1/billing`, { headers: { Authorization: auth } })).json();
    assert.equal(billing.completed_tasks, 1);
    assert.equal(billing.accrued_amount, 8);
    await env.screenshot(page, 'billing-accrued');
  });

  step('after the close the invoice is listed and charged to the card', async () => {
    await new Promise((r) => setTimeout(r, 1_100));
    const out = await env.admin(['close-period', '--team', admin.team, '--end', new Date().toISOString()]);
    invoiceId = out.trim().split(/\s+/).find((w) => w.startsWith('inv_'));
    assert.ok(invoiceId, `an invoice id: ${out}`);
    const page = pages.admin;
    await page.goto('/billing');
    const row = page.locator('#invoices tbody tr').first();
    invoiceNumber = squash(await row.locator('td').first().textContent());
    assert.match(invoiceNumber, /^INV-\d{6}$/);
    assert.equal(await text(page, '#completed-tasks'), '0', 'nothing unbilled after the close');
    // The server's charge job charges the card (it polls every 30 s).
    await page.goto(`/billing/invoices/${invoiceId}`);
    await waitFor('the invoice to be charged', async () => {
      await page.reload();
      return (await text(page, '#invoice-payment')) === 'charged';
    }, { timeoutMs: 60_000, intervalMs: 1_000 });
    assert.equal(await text(page, '#invoice-status'), 'paid');
    invoiceTotal = await text(page, '#total');
    assert.equal(invoiceTotal, '0.08 USD');
    assert.match(await text(page, '#attempts'), /succeeded/);
    await env.screenshot(page, 'invoice-paid');
  });

  step('the invoice downloads as CSV and as PDF', async () => {
    const page = pages.admin;
    const [csv] = await Promise.all([page.waitForEvent('download'), page.getByRole('link', { name: 'Download CSV' }).click()]);
    const csvText = fs.readFileSync(await csv.path(), 'utf8');
    assert.ok(csvText.includes(taskId), `the CSV names the task:\n${csvText}`);
    const [pdf] = await Promise.all([page.waitForEvent('download'), page.getByRole('link', { name: 'Download PDF' }).click()]);
    const pdfPath = path.join(env.tmp, 'invoice.pdf');
    await pdf.saveAs(pdfPath);
    assert.equal(fs.readFileSync(pdfPath).subarray(0, 5).toString(), '%PDF-');
    const { stdout } = await execFileP(PYTHON, ['-c',
      'import sys, pypdf; print("\\n".join(p.extract_text() for p in pypdf.PdfReader(sys.argv[1]).pages))', pdfPath]);
    assert.ok(stdout.includes(invoiceNumber), `the PDF's text has the number:\n${stdout}`);
    assert.ok(stdout.includes(invoiceTotal), `the PDF's text has the total:\n${stdout}`);
  });

  step('a Manager sees billing and the card, without the card form', async () => {
    const page = await join(people.manager);
    await page.goto('/billing');
    assert.equal(await text(page, '#card-summary'), 'visa ending in 4242, expires 12/2034');
    assert.equal(await page.getByRole('link', { name: /card/i }).count(), 0, 'no Add/Replace card link');
    assert.equal(await page.locator('p.hint', { hasText: "Only the team's Admin can change the payment method." }).count(), 1);
    assert.equal((await page.goto('/billing/card')).status(), 403);
    await env.screenshot(page, 'billing-manager');
  });

  step('a Member gets 403 on billing', async () => {
    const page = await join(people.member);
    assert.equal((await page.goto('/billing')).status(), 403);
    const links = (await page.getByRole('navigation', { name: 'Main' }).getByRole('link').allTextContents()).map(squash);
    assert.ok(!links.includes('Billing'), `a Member's nav has no Billing: ${links}`);
    const menu = (await menuLinks(page)).map(squash);
    assert.ok(menu.includes('Your Team'), `the Member's profile menu is there: ${menu}`);
    assert.ok(!menu.includes('Billing'), `a Member's profile menu has no Billing: ${menu}`);
  });

  step('no page errors and no server errors along the way', async () => {
    assert.deepEqual(pageErrors, []);
    assert.deepEqual(serverErrors, []);
  });
});
