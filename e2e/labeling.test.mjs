// End-to-end: a live task labeled by a teammate, and its callback. An Admin signs up and adds a
// live API key on the API Keys page; the official Scale SDK (Python) creates a live task whose
// callback_url points at a receiver started here; the Admin invites a teammate as Labeler, who
// accepts from the emailed link, lands on the labeling queue, takes the task with "Next task",
// is told off for a response that is not JSON (keeping what was typed), submits a valid one and
// sees the thanks. The receiver gets the callback (auth header, Standard Webhooks signature,
// the labeler's response), the SDK sees the task completed with callback_succeeded, and the
// Admin finds the delivery "succeeded" on the Callbacks page with its 200 attempt.
//
// Run: `node --test e2e/` from the repository root after `cargo build` (see scripts/test).
// Environment: TESSERA_BIN, TESSERA_TEST_PYTHON, TESSERA_E2E_DATABASE_URL (see lib/harness.mjs).

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHmac, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import { once } from 'node:events';
import { promisify } from 'node:util';
import { startEnvironment, inviteLink, waitFor, PYTHON, REPO_ROOT, menuLinks, closeMenu } from './lib/harness.mjs';

const execFileP = promisify(execFile);
const STEP_TIMEOUT = 120_000;
const stamp = `${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;

const admin = {
  email: `labels.${stamp}@example.com`,
  password: 'correct horse battery',
  name: 'Lena Livemode',
  company: 'Open Sites',
  team: `Sites ${stamp}`,
};
const labeler = { email: `lab.${stamp}@example.com`, name: 'Lars Labeler', company: 'Careful Clicks', password: 'label-every-thing-7' };
const instruction = `Is this website public or private? (${stamp})`;
const attachment = 'https://www.example.com/';
const categories = ['public', 'private'];
const answer = { category: 'private' };
const notJson = '{"category": "private",';

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

/** The text of every cell of every body row of `table`, as arrays of trimmed strings. */
const tableRows = (locator) => locator.locator('tbody tr').evaluateAll((trs) => trs.map((tr) =>
  Array.from(tr.querySelectorAll('td')).map((td) => td.textContent.replace(/\s+/g, ' ').trim())));

/** Runs a Python snippet with the official `scaleapi` SDK; it prints one JSON document. */
async function sdk(code, args) {
  const prelude = 'import json, sys, scaleapi\nfrom scaleapi.tasks import TaskType\n';
  try {
    const { stdout } = await execFileP(PYTHON, ['-c', prelude + code, ...args], { cwd: REPO_ROOT, timeout: 60_000 });
    return JSON.parse(stdout);
  } catch (err) {
    throw new Error(`the SDK snippet failed: ${err.message}\n${err.stderr || ''}`);
  }
}

/** Standard Webhooks: is one of the `v1,<base64>` signatures HMAC-SHA256 of id.timestamp.body? */
function signedWith(secret, headers, body) {
  const key = Buffer.from(secret.replace(/^whsec_/, ''), 'base64');
  const expected = createHmac('sha256', key)
    .update(`${headers['webhook-id']}.${headers['webhook-timestamp']}.`)
    .update(body)
    .digest();
  return (headers['webhook-signature'] || '').split(' ').some((part) => {
    const [version, sig] = part.split(',');
    const got = Buffer.from(sig || '', 'base64');
    return version === 'v1' && got.length === expected.length && timingSafeEqual(got, expected);
  });
}

describe('Tessera labeling queue and callbacks in a real browser', { timeout: 15 * STEP_TIMEOUT }, () => {
  let env;
  let receiver;
  let adminContext;
  let adminPage;
  let labelerContext;
  let labelerPage;
  let failed = false;
  const pageErrors = [];
  const serverErrors = [];
  const received = []; // { path, headers, body (Buffer) }

  // Shared between the steps.
  let liveKey = '';
  let callbackAuth = '';
  let signingSecret = '';
  let taskId = '';
  let callbackPath = '';

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

  const watch = (page, who) => {
    page.on('pageerror', (err) => pageErrors.push(`${who}: ${err.message}`));
    page.on('response', (res) => {
      if (res.status() >= 500) serverErrors.push(`${who}: ${res.request().method()} ${res.url()} -> ${res.status()}`);
    });
    return page;
  };

  const callbacksTo = (path) => received.filter((c) => c.path === path);

  before(async () => {
    // The receiver: records every request and answers 200.
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
    // The receiver is on 127.0.0.1, which production refuses as a callback target.
    env = await startEnvironment({ label: 'labeling', serverArgs: ['--allow-private-callbacks'] });
    adminContext = await env.newContext();
    adminPage = watch(await adminContext.newPage(), 'admin');
  });

  after(async () => {
    if (env) await env.stop();
    if (receiver) {
      receiver.closeAllConnections();
      receiver.close();
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
    await live.getByLabel('Label (optional)').fill('labeling e2e');
    await navigateBy(adminPage, () => live.getByRole('button', { name: 'Add live key' }).click());
    liveKey = (await adminPage.locator('#secret-value').textContent()).trim();
    assert.match(liveKey, /^live_\S{16,}$/, `a live key: ${liveKey}`);
    assert.equal(await live.locator('tr[data-key]').count(), 1);

    // The live callback auth key and signing secret, to check the callback with.
    await navigateBy(adminPage, () => live.locator('form[action="/keys/callback/live/reveal"]').getByRole('button', { name: 'Reveal' }).click());
    assert.match(squash(await adminPage.locator('#revealed').textContent()), /Live callback auth key/);
    callbackAuth = (await adminPage.locator('#secret-value').textContent()).trim();
    assert.ok(callbackAuth.length >= 16, `a callback auth key: ${callbackAuth}`);
    await navigateBy(adminPage, () => live.getByRole('button', { name: 'Reveal signing secret' }).click());
    signingSecret = (await adminPage.locator('#secret-value').textContent()).trim();
    assert.match(signingSecret, /^whsec_[A-Za-z0-9+/]+=*$/);
    await env.screenshot(adminPage, 'keys-live');
  });

  step('the Scale SDK creates a live task with a callback_url; it waits, uncalled', async () => {
    callbackPath = `/scale-callback/${stamp}`;
    const { port } = receiver.address();
    const task = await sdk(
      `key, url, callback, instruction, attachment, categories = sys.argv[1:]
client = scaleapi.ScaleClient(key, api_instance_url=url)
task = client.create_task(TaskType.Categorization, callback_url=callback, instruction=instruction,
                          attachment=attachment, attachment_type="website",
                          categories=json.loads(categories))
print(json.dumps(task.as_dict()))`,
      [liveKey, `${env.baseUrl}/v1`, `http://127.0.0.1:${port}${callbackPath}`, instruction, attachment, JSON.stringify(categories)],
    );
    taskId = task.task_id;
    assert.ok(taskId, `a task id: ${JSON.stringify(task)}`);
    assert.equal(task.status, 'pending', 'a live task waits for a labeler');
    assert.equal(task.callback_url, `http://127.0.0.1:${port}${callbackPath}`);
    await new Promise((r) => setTimeout(r, 500));
    assert.deepEqual(callbacksTo(callbackPath), [], 'no callback while pending');
  });

  step('the admin invites a teammate as Labeler', async () => {
    await adminPage.goto('/team');
    const invite = adminPage.locator('#invite');
    await invite.getByLabel('Email addresses').fill(labeler.email);
    await invite.locator('select[name="role"]').selectOption('labeler');
    await navigateBy(adminPage, () => invite.getByRole('button', { name: 'Send invitations' }).click());
    assert.match(await flashText(adminPage), new RegExp(`^Invitation sent to ${labeler.email.replace(/\./g, '\\.')}`));
    const row = adminPage.locator(`tr.invited[data-email="${labeler.email}"]`);
    assert.match(await row.textContent(), /Labeler/);
    await env.screenshot(adminPage, 'labeler-invited');
  });

  step('the labeler accepts from the emailed link and lands on the labeling queue', async () => {
    const [mail] = await env.mailsTo(labeler.email);
    const link = inviteLink(mail);
    labelerContext = await env.newContext();
    labelerPage = watch(await labelerContext.newPage(), 'labeler');
    const res = await labelerPage.goto(link);
    assert.equal(res.status(), 200);
    assert.match(await labelerPage.locator('main').textContent(), /invited as\s*Labeler/);
    await labelerPage.getByLabel('Your name').fill(labeler.name);
    await labelerPage.getByLabel('Company').fill(labeler.company);
    await labelerPage.getByLabel('Password', { exact: true }).fill(labeler.password);
    await labelerPage.getByLabel('Repeat password').fill(labeler.password);
    await navigateBy(labelerPage, () => labelerPage.getByRole('button', { name: 'Accept invitation' }).click());

    assert.equal(pathOf(labelerPage), '/label', 'a Labeler lands on the labeling queue');
    assert.equal(await flashText(labelerPage), `Welcome to ${admin.team}! You joined as Labeler.`);
    assert.equal(squash(await labelerPage.getByRole('heading', { level: 1 }).textContent()), 'Labeling');
    assert.equal((await labelerPage.locator('#queue-length').textContent()).trim(), '1');
    // Labelers see the Labeling page and their profile, nothing of the team's.
    const nav = labelerPage.getByRole('navigation', { name: 'Main' });
    const links = (await nav.getByRole('link').allTextContents()).map(squash);
    assert.ok(links.includes('Labeling'), `nav: ${links}`);
    for (const label of ['Your Team', 'Tasks', 'Callbacks', 'API Keys', 'Projects']) {
      assert.ok(!links.includes(label), `a Labeler's nav has no "${label}": ${links}`);
    }
    // Nor in the profile menu, where the account pages are.
    const menu = (await menuLinks(labelerPage)).map(squash);
    assert.ok(menu.includes('Profile'), `a Labeler's profile menu has Profile: ${menu}`);
    for (const label of ['Your Team', 'API Keys', 'Billing', 'Integrations', 'Team details', 'Audit log']) {
      assert.ok(!menu.includes(label), `a Labeler's profile menu has no "${label}": ${menu}`);
    }
    await closeMenu(labelerPage);
    await env.screenshot(labelerPage, 'labeler-queue');
  });

  step('"Next task" opens the task with its instruction, attachment and a response template', async () => {
    await navigateBy(labelerPage, () => labelerPage.getByRole('button', { name: 'Next task' }).click());
    assert.equal(pathOf(labelerPage), `/label/${taskId}`);
    assert.match(squash(await labelerPage.getByRole('heading', { level: 1 }).textContent()), new RegExp(`categorization task ${taskId}`));
    assert.equal((await labelerPage.locator('.instruction').textContent()).trim(), instruction);
    const link = labelerPage.locator('#attachment');
    assert.equal((await link.textContent()).trim(), attachment);
    assert.equal(await link.getAttribute('href'), attachment);
    const template = JSON.parse(await labelerPage.getByLabel('Response JSON').inputValue());
    assert.deepEqual(template, { category: null }, 'nothing is chosen yet');
    // The categories are radio buttons, none picked; a website is linked, not shown inline.
    const radios = await labelerPage.locator('input[type="radio"][name="category"]').evaluateAll((rs) => rs.map((r) => [r.value, r.checked]));
    assert.deepEqual(radios, categories.map((c) => [c, false]));
    assert.equal(await labelerPage.locator('#attachment-image').count(), 0);
    assert.equal(await labelerPage.getByRole('button', { name: 'Submit & next' }).count(), 1);
    // The lease, to the second, with a countdown and Extend.
    assert.match(await labelerPage.locator('#lease-until').textContent(), /^\d\d:\d\d:\d\d UTC$/);
    await waitFor('the lease countdown', async () => /\(\d+:\d\d left\)/.test(await labelerPage.locator('#lease-countdown').textContent()));
    assert.equal(await labelerPage.getByRole('button', { name: 'Extend' }).count(), 1);
    await env.screenshot(labelerPage, 'label-task');
    await labelerPage.setViewportSize({ width: 390, height: 844 });
    const { scroll, width } = await labelerPage.evaluate(() => ({ scroll: document.documentElement.scrollWidth, width: document.documentElement.clientWidth }));
    assert.ok(scroll <= width, `the task page fits 390 px: ${scroll} in ${width}`);
    await env.screenshot(labelerPage, 'label-task-390');
    await labelerPage.setViewportSize({ width: 1200, height: 900 });
  });

  step('pressing Submit without choosing is refused: the template is not an answer', async () => {
    const res = await navigateBy(labelerPage, () => labelerPage.getByRole('button', { name: 'Submit', exact: true }).click());
    assert.equal(res.status(), 400);
    assert.equal((await labelerPage.locator('p.error[role="alert"]').textContent()).trim(), 'Choose a category: one of public, private.');
    assert.deepEqual(JSON.parse(await labelerPage.getByLabel('Response JSON').inputValue()), { category: null });
    // An unknown field is named, not passed on to the customer.
    await labelerPage.getByLabel('Response JSON').fill('{"category": "private", "extra": 1}');
    const again = await navigateBy(labelerPage, () => labelerPage.getByRole('button', { name: 'Submit', exact: true }).click());
    assert.equal(again.status(), 400);
    assert.match(await labelerPage.locator('p.error[role="alert"]').textContent(), /Unknown field "extra" in the response/);
    assert.equal(await labelerPage.getByLabel('Response JSON').inputValue(), '{"category": "private", "extra": 1}');
    assert.deepEqual(callbacksTo(callbackPath), [], 'nothing was sent');
    await env.screenshot(labelerPage, 'label-template-refused');
  });

  step('a response that is not JSON is refused, keeping what was typed', async () => {
    const editor = labelerPage.getByLabel('Response JSON');
    await editor.fill(notJson);
    const res = await navigateBy(labelerPage, () => labelerPage.getByRole('button', { name: 'Submit', exact: true }).click());
    assert.equal(res.status(), 400);
    const error = labelerPage.locator('p.error[role="alert"]');
    assert.match(await error.textContent(), /The response is not valid JSON/);
    assert.equal(await labelerPage.getByLabel('Response JSON').inputValue(), notJson, 'the typed text is kept');
    assert.equal((await labelerPage.locator('.instruction').textContent()).trim(), instruction, 'still the same task');
    assert.deepEqual(callbacksTo(callbackPath), [], 'nothing was sent');
    await env.screenshot(labelerPage, 'label-invalid-json');
  });

  step('a valid response, picked with its radio button, is submitted and thanked for', async () => {
    await labelerPage.getByLabel('Response JSON').fill('{"category": null}');
    await labelerPage.getByLabel(answer.category, { exact: true }).check();
    assert.deepEqual(JSON.parse(await labelerPage.getByLabel('Response JSON').inputValue()), answer, 'the pick is written into the response');
    await navigateBy(labelerPage, () => labelerPage.getByRole('button', { name: 'Submit', exact: true }).click());
    assert.equal(pathOf(labelerPage), '/label');
    assert.equal(await flashText(labelerPage), `Task ${taskId} submitted. Thank you!`);
    assert.equal((await labelerPage.locator('#queue-length').textContent()).trim(), '0');
    await env.screenshot(labelerPage, 'label-submitted');
  });

  step('the receiver gets the callback with the labeler\'s response', async () => {
    const [call] = await waitFor(`a callback to ${callbackPath}`, () => {
      const calls = callbacksTo(callbackPath);
      return calls.length ? calls : null;
    }, { timeoutMs: 20_000 });
    assert.equal(call.method, 'POST');
    assert.match(call.headers['content-type'] || '', /^application\/json/);
    assert.equal(call.headers['scale-callback-auth'], callbackAuth);
    assert.ok(signedWith(signingSecret, call.headers, call.body), `signed with the live secret: ${JSON.stringify(call.headers)}`);
    const body = JSON.parse(call.body.toString('utf8'));
    assert.equal(body.task_id, taskId);
    assert.equal(body.task.task_id, taskId);
    assert.equal(body.task.status, 'completed');
    assert.deepEqual(body.response, answer);
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(callbacksTo(callbackPath).length, 1, 'delivered once');
  });

  step('the SDK sees the task completed, with the response and callback_succeeded', async () => {
    const task = await waitFor('callback_succeeded on the task', async () => {
      const t = await sdk(
        `key, url, task_id = sys.argv[1:]
print(json.dumps(scaleapi.ScaleClient(key, api_instance_url=url).get_task(task_id).as_dict()))`,
        [liveKey, `${env.baseUrl}/v1`, taskId],
      );
      return t.callback_succeeded === true ? t : null;
    }, { timeoutMs: 20_000, intervalMs: 500 });
    assert.equal(task.status, 'completed');
    assert.deepEqual(task.response, answer);
  });

  step('the admin finds the delivery "succeeded" on Callbacks, with a 200 attempt', async () => {
    // The delivery is live, and a new team starts in test mode: switch to live first.
    await adminPage.goto('/callbacks');
    await navigateBy(adminPage, () => adminPage.getByRole('button', { name: 'Switch to live' }).click());
    const nav = adminPage.getByRole('navigation', { name: 'Main' });
    await navigateBy(adminPage, () => nav.getByRole('link', { name: 'Callbacks', exact: true }).click());
    assert.equal(pathOf(adminPage), '/callbacks');
    // The About cell shows the task id shortened; its link's title carries the whole id.
    const row = adminPage.locator('#callbacks tbody tr', { has: adminPage.locator(`a[title="task ${taskId}"]`) });
    await waitFor('the delivery row to read "succeeded"', async () => {
      if (await row.count() !== 1) {
        await adminPage.reload();
        return false;
      }
      const state = (await row.locator('td.status').textContent()).trim();
      if (state !== 'succeeded') await adminPage.reload();
      return state === 'succeeded';
    }, { timeoutMs: 20_000, intervalMs: 500 });
    const cells = (await row.locator('td').allTextContents()).map(squash);
    const [, about, target, state, attempts, last] = cells;
    // The list shows ids shortened (the full one in the link's title), so every column fits.
    assert.deepEqual({ about, state, attempts, last }, { about: `task ${taskId.slice(0, 8)}…`, state: 'succeeded', attempts: '1', last: '200' });
    assert.equal(await row.locator('td').nth(1).locator('a').getAttribute('title'), `task ${taskId}`);
    assert.ok(target.endsWith(callbackPath), `target ${target}`);
    await env.screenshot(adminPage, 'callbacks-list');

    const deliveryId = await row.getAttribute('data-delivery');
    await navigateBy(adminPage, () => row.locator(`a[title="${deliveryId}"]`).click());
    assert.equal(pathOf(adminPage), `/callbacks/${deliveryId}`);
    assert.equal((await adminPage.locator('#delivery-state').textContent()).trim(), 'succeeded');
    // Each attempt's row is followed by a row with the request it sent (headers and body).
    const attemptsTable = (await tableRows(adminPage.locator('#attempts'))).filter((r) => !String(r[0]).startsWith('Request sent'));
    assert.equal(await adminPage.locator('#attempts tr.attempt-request').count(), 1, 'the request sent is shown');
    assert.equal(attemptsTable.length, 1, `one attempt: ${JSON.stringify(attemptsTable)}`);
    const [, status, latency, error, response] = attemptsTable[0];
    assert.equal(status, '200');
    assert.match(latency, /^\d+ ms$/);
    assert.equal(error, '');
    assert.equal(response, 'ok');
    // It is about the task (its body is built from the task when sent), and the webhook-id the
    // receiver got is the delivery's id.
    assert.equal(await adminPage.locator('dl.facts').getByRole('link', { name: `task ${taskId}` }).getAttribute('href'), `/tasks/${taskId}`);
    const [call] = callbacksTo(callbackPath);
    assert.equal(call.headers['webhook-id'], deliveryId);
    await env.screenshot(adminPage, 'callback-detail');
  });

  step('no page raised a JavaScript error or a server error', async () => {
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.deepEqual(pageErrors, []);
    assert.deepEqual(serverErrors, []);
  });
});

// The lease on a task, in a real browser, with a short lease (12 s): the countdown, the warning
// near the end, Extend (the typed response comes back), a late submission refused with the
// typed response kept when another labeler took the task over, and accepted when nobody did.
describe('Tessera labeling leases in a real browser', { timeout: 15 * STEP_TIMEOUT }, () => {
  const LEASE_SECONDS = 12;
  const lease = { admin: { ...admin, email: `lease.${stamp}@example.com`, team: `Leases ${stamp}` } };
  const labelers = [
    { email: `ann.${stamp}@example.com`, name: 'Ann Late', company: 'Slow Clicks', password: 'label-slowly-77' },
    { email: `kai.${stamp}@example.com`, name: 'Kai Quick', company: 'Fast Clicks', password: 'label-quickly-77' },
  ];
  let env;
  let failed = false;
  let adminPage;
  const pages = []; // the labelers' pages
  const pageErrors = [];
  const serverErrors = [];
  let liveKey = '';
  const tasks = [];

  const step = (name, fn) => it(name, { timeout: STEP_TIMEOUT }, async (t) => {
    if (failed) {
      t.skip('an earlier step failed');
      return;
    }
    try {
      await fn(t);
    } catch (err) {
      failed = true;
      for (const [who, page] of [['admin', adminPage], ['ann', pages[0]], ['kai', pages[1]]]) {
        if (page && !page.isClosed()) await env.screenshot(page, `FAILED-${who}`).catch(() => {});
      }
      if (env) err.message += `\n--- last lines of the Tessera log ---\n${env.serverLog().split('\n').slice(-25).join('\n')}`;
      throw err;
    }
  });
  const watch = (page, who) => {
    page.on('pageerror', (err) => pageErrors.push(`${who}: ${err.message}`));
    page.on('response', (res) => {
      if (res.status() >= 500) serverErrors.push(`${who}: ${res.request().method()} ${res.url()} -> ${res.status()}`);
    });
    return page;
  };
  const createTask = async (text) => {
    const res = await fetch(`${env.baseUrl}/v1/task/categorization`, {
      method: 'POST',
      headers: { Authorization: `Basic ${Buffer.from(`${liveKey}:`).toString('base64')}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ instruction: text, attachment, attachment_type: 'website', categories }),
    });
    const json = await res.json();
    assert.equal(res.status, 200, JSON.stringify(json));
    return json.task_id;
  };
  const apiTask = async (id) => (await fetch(`${env.baseUrl}/v1/task/${id}`, {
    headers: { Authorization: `Basic ${Buffer.from(`${liveKey}:`).toString('base64')}` },
  })).json();
  const secondsLeft = async (page) => {
    const m = /\((\d+):(\d\d) left\)/.exec(await page.locator('#lease-countdown').textContent());
    return m ? Number(m[1]) * 60 + Number(m[2]) : 0;
  };
  const nextTask = async (page) => {
    await page.goto('/label');
    await navigateBy(page, () => page.getByRole('button', { name: 'Next task' }).click());
    return pathOf(page).replace('/label/', '');
  };

  before(async () => {
    env = await startEnvironment({ label: 'labeling-lease', serverArgs: ['--label-lease', `${LEASE_SECONDS}s`] });
    adminPage = watch(await (await env.newContext()).newPage(), 'admin');
  });
  after(async () => {
    if (env) await env.stop();
  });

  step('an admin signs up, adds a live key, creates two tasks and invites two labelers', async () => {
    await adminPage.goto('/signup');
    await adminPage.getByLabel('Work email').fill(lease.admin.email);
    await adminPage.getByLabel('Password', { exact: true }).fill(lease.admin.password);
    await adminPage.getByLabel('Your name').fill(lease.admin.name);
    await adminPage.getByLabel('Company').fill(lease.admin.company);
    await adminPage.getByLabel('Team name').fill(lease.admin.team);
    await navigateBy(adminPage, () => adminPage.getByRole('button', { name: 'Sign up' }).click());
    await env.verifyEmail(adminPage, lease.admin.email);
    await adminPage.goto('/keys');
    const live = adminPage.locator('#mode-live');
    await navigateBy(adminPage, () => live.getByRole('button', { name: 'Add live key' }).click());
    liveKey = (await adminPage.locator('#secret-value').textContent()).trim();
    tasks.push(await createTask(`lease one (${stamp})`), await createTask(`lease two (${stamp})`));
    for (const person of labelers) {
      await adminPage.goto('/team');
      const invite = adminPage.locator('#invite');
      await invite.getByLabel('Email addresses').fill(person.email);
      await invite.locator('select[name="role"]').selectOption('labeler');
      await navigateBy(adminPage, () => invite.getByRole('button', { name: 'Send invitations' }).click());
      const [mail] = await env.mailsTo(person.email);
      const page = watch(await (await env.newContext()).newPage(), person.name);
      await page.goto(inviteLink(mail));
      await page.getByLabel('Your name').fill(person.name);
      await page.getByLabel('Company').fill(person.company);
      await page.getByLabel('Password', { exact: true }).fill(person.password);
      await page.getByLabel('Repeat password').fill(person.password);
      await navigateBy(page, () => page.getByRole('button', { name: 'Accept invitation' }).click());
      assert.equal(pathOf(page), '/label');
      pages.push(page);
    }
  });

  step('the countdown runs, warns near the end, and Extend gives a new lease keeping the typed text', async () => {
    const [ann] = pages;
    assert.equal(await nextTask(ann), tasks[0]);
    const first = await secondsLeft(ann);
    assert.ok(first > LEASE_SECONDS - 4 && first <= LEASE_SECONDS, `${first} s left`);
    assert.ok(await ann.locator('#lease-warning').isHidden(), 'no warning at first');
    await ann.getByLabel('Response JSON').fill('{"category": "public"} ');
    const warning = ann.locator('#lease-warning');
    await warning.waitFor({ state: 'visible', timeout: LEASE_SECONDS * 1000 });
    assert.match(await warning.textContent(), /Your reservation ends in 0:0\d\. Press Extend to keep the task\./);
    await env.screenshot(ann, 'lease-warning');
    const before = (await ann.locator('#lease-until').textContent()).trim();
    const res = await navigateBy(ann, () => ann.getByRole('button', { name: 'Extend' }).click());
    assert.equal(res.status(), 200);
    assert.match(await ann.locator('#notice').textContent(), new RegExp(`Reserved for you for another ${LEASE_SECONDS} seconds, until \\d\\d:\\d\\d:\\d\\d UTC\\.`));
    assert.equal(await ann.getByLabel('Response JSON').inputValue(), '{"category": "public"} ', 'the typed response is kept');
    assert.notEqual((await ann.locator('#lease-until').textContent()).trim(), before);
    await waitFor('the new countdown', async () => (await secondsLeft(ann)) > LEASE_SECONDS - 4);
    assert.ok(await ann.locator('#lease-warning').isHidden(), 'no warning after Extend');
    await env.screenshot(ann, 'lease-extended');
  });

  step('once the lease ended and another labeler took the task, a late Submit keeps the typed response', async () => {
    const [ann, kai] = pages;
    await waitFor('the lease to end', async () => /ended/.test(await ann.locator('#lease-countdown').textContent()),
      { timeoutMs: (LEASE_SECONDS + 5) * 1000, intervalMs: 500 });
    assert.match(await ann.locator('#lease-warning').textContent(), /Your reservation has ended/);
    assert.equal(await nextTask(kai), tasks[0], 'the task went back to the queue');
    await ann.getByLabel('Response JSON').fill('{"category": "private"}');
    const res = await navigateBy(ann, () => ann.getByRole('button', { name: 'Submit', exact: true }).click());
    assert.equal(res.status(), 409);
    assert.match(await ann.locator('p.error[role="alert"]').textContent(), /You do not hold this task any more/);
    assert.equal(await ann.getByLabel('Response JSON').inputValue(), '{"category": "private"}', 'the typed response is kept');
    assert.equal((await apiTask(tasks[0])).status, 'pending');
    await env.screenshot(ann, 'lease-taken-over');
    await kai.getByLabel('Response JSON').fill('{"category": "public"}');
    await navigateBy(kai, () => kai.getByRole('button', { name: 'Submit', exact: true }).click());
    assert.equal(await flashText(kai), `Task ${tasks[0]} submitted. Thank you!`);
  });

  step('once the lease ended with nobody else on the task, a late Submit is accepted', async () => {
    const [ann] = pages;
    assert.equal(await nextTask(ann), tasks[1]);
    await ann.getByLabel('Response JSON').fill('{"category": "private"}');
    await waitFor('the lease to end', async () => /ended/.test(await ann.locator('#lease-countdown').textContent()),
      { timeoutMs: (LEASE_SECONDS + 5) * 1000, intervalMs: 500 });
    await navigateBy(ann, () => ann.getByRole('button', { name: 'Submit', exact: true }).click());
    assert.equal(pathOf(ann), '/label');
    assert.equal(await flashText(ann), `Task ${tasks[1]} submitted. Thank you!`);
    const task = await apiTask(tasks[1]);
    assert.equal(task.status, 'completed');
    assert.deepEqual(task.response, { category: 'private' });
  });

  step('no page raised a JavaScript error or a server error', async () => {
    assert.deepEqual(pageErrors, []);
    assert.deepEqual(serverErrors, []);
  });
});
