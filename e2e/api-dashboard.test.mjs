// End-to-end: the API dashboard. Sign up, add a test API key on the API Keys page and reveal it
// (and the test callback auth key), use the key from Node against the v1 API to create a
// project, a batch and three tasks, find them on the Tasks page only after switching to test
// mode (a new team starts in it; the test leaves it first), filter them, open one and accept it, look at the project and its batch, create a
// project from the dashboard, delete the key (the API then refuses it with a JSON 401) and read
// the audit log.
//
// Run: `node --test e2e/` from the repository root after `cargo build` (see scripts/test).
// Environment: TESSERA_BIN, TESSERA_TEST_PYTHON, TESSERA_E2E_DATABASE_URL (see lib/harness.mjs).

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startEnvironment, goByMenu, openMenu, leaveTestMode } from './lib/harness.mjs';

const STEP_TIMEOUT = 120_000;
const stamp = `${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;

const admin = {
  email: `keys.${stamp}@example.com`,
  password: 'correct horse battery',
  name: 'Alan Apiuser',
  company: 'Roadside Vision',
  team: `Traffic ${stamp}`,
};
const keyLabel = 'ci ingest';
const projectName = 'street/cars';
const instruction = 'Box every car.';
const batchName = 'week-1';
const labels = ['car', 'bus'];
const dashboardProject = { name: `street/bikes-${stamp}`, type: 'categorization' };
const auditComment = 'Boxes look right.';

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
const escapeRe = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** The task page's facts (<dt>name</dt><dd>value</dd>) as an object. */
const factsOf = (page) => page.locator('dl.facts').evaluate((dl) => Object.fromEntries(
  Array.from(dl.querySelectorAll('dt')).map((dt) => [dt.textContent.trim(), dt.nextElementSibling.textContent.trim()])));

/** The text of every cell of every body row of `table`, as arrays of trimmed strings. */
const tableRows = (locator) => locator.locator('tbody tr').evaluateAll((trs) => trs.map((tr) =>
  Array.from(tr.querySelectorAll('td')).map((td) => td.textContent.replace(/\s+/g, ' ').trim())));

describe('Tessera API keys, projects and tasks in a real browser', { timeout: 15 * STEP_TIMEOUT }, () => {
  let env;
  let context;
  let page;
  let failed = false;
  const pageErrors = [];
  const serverErrors = [];

  // Shared between the steps.
  let apiKey = '';
  let keyPrefix = '';
  let callbackKey = '';
  const taskIds = [];

  /** A sequential step: skipped once an earlier one failed; screenshots the page on failure. */
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

  /** A v1 API call with HTTP Basic auth (the key as user name, empty password). */
  const api = async (method, path, body, key = apiKey) => {
    const headers = { Authorization: `Basic ${Buffer.from(`${key}:`).toString('base64')}` };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const res = await fetch(`${env.baseUrl}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await res.text();
    let json;
    try { json = JSON.parse(text); } catch { json = undefined; }
    return { status: res.status, contentType: res.headers.get('content-type') || '', text, json };
  };

  const nav = () => page.getByRole('navigation', { name: 'Main' });
  const account = () => page.getByRole('navigation', { name: 'Account' });
  const goByNav = (label) => goByMenu(page, label);
  const modeSwitch = () => page.locator('form.mode-switch');
  const testSection = () => page.locator('#mode-test');
  const keyRow = (prefix) => page.locator(`#mode-test tr[data-key="${prefix}"]`);
  const taskTable = () => page.locator('#tasks');

  before(async () => {
    env = await startEnvironment({ label: 'api-dashboard' });
    context = await env.newContext();
    page = await context.newPage();
    page.on('pageerror', (err) => pageErrors.push(`${page.url()}: ${err.message}`));
    page.on('response', (res) => {
      if (res.status() >= 500) serverErrors.push(`${res.request().method()} ${res.url()} -> ${res.status()}`);
    });
  });

  after(async () => {
    if (env) await env.stop();
  });

  step('sign up: Get started in test mode; the nav offers Projects and Tasks, the profile menu API Keys; live mode badge', async () => {
    const res = await page.goto('/signup');
    assert.equal(res.status(), 200);
    await page.getByLabel('Work email').fill(admin.email);
    await page.getByLabel('Password', { exact: true }).fill(admin.password);
    await page.getByLabel('Your name').fill(admin.name);
    await page.getByLabel('Company').fill(admin.company);
    await page.getByLabel('Team name').fill(admin.team);
    await navigateBy(page, () => page.getByRole('button', { name: 'Sign up' }).click());
    assert.equal(pathOf(page), '/', 'a new sign-up lands on Get started');
    assert.match(await flashText(page), /is ready, and you are its Admin/);
    assert.equal(squash(await modeSwitch().locator('.mode-label').textContent()), 'Test mode', 'a new team starts in test mode');
    await env.verifyEmail(page, admin.email);

    for (const label of ['Projects', 'Tasks']) {
      assert.equal(await nav().getByRole('link', { name: label, exact: true }).count(), 1, `nav offers "${label}"`);
    }
    await openMenu(page);
    for (const label of ['API Keys', 'Audit log']) {
      assert.equal(await account().getByRole('link', { name: label, exact: true }).count(), 1, `profile menu offers "${label}"`);
      assert.ok(await account().getByRole('link', { name: label, exact: true }).isVisible(), `"${label}" visible in the open menu`);
    }
    await leaveTestMode(page);
    await modeSwitch().waitFor();
    assert.equal(squash(await modeSwitch().locator('.mode-label').textContent()), 'Live mode');
    assert.equal(await modeSwitch().getByRole('button', { name: 'Switch to test', exact: true }).count(), 1);
    await env.screenshot(page, 'signed-up-live-mode');
  });

  step('the API Keys page adds a test key and shows it once', async () => {
    await goByNav('API Keys');
    assert.equal(pathOf(page), '/keys');
    assert.equal(squash(await page.getByRole('heading', { level: 1 }).textContent()), 'API Keys');
    await testSection().waitFor();
    assert.match(await testSection().textContent(), /No test keys yet\./);
    await env.screenshot(page, 'keys-empty');

    await testSection().getByLabel('Label (optional)').fill(keyLabel);
    const res = await navigateBy(page, () => testSection().getByRole('button', { name: 'Add test key' }).click());
    assert.equal(res.status(), 200);
    const secret = page.locator('#secret-value');
    await secret.waitFor();
    apiKey = (await secret.textContent()).trim();
    assert.match(apiKey, /^test_\S{16,}$/, `a test key: ${apiKey}`);
    assert.match(squash(await page.locator('#revealed').textContent()), new RegExp(`New test key “${keyLabel}”`));

    const rows = testSection().locator('tr[data-key]');
    assert.equal(await rows.count(), 1, 'one test key listed');
    keyPrefix = await rows.first().getAttribute('data-key');
    assert.ok(keyPrefix && keyPrefix.length >= 6 && apiKey.startsWith(keyPrefix), `prefix ${keyPrefix} starts the key`);
    assert.ok(keyPrefix.length < apiKey.length, 'the table shows only a prefix');
    const cells = (await tableRows(testSection()))[0];
    assert.equal(cells[0], keyLabel);
    assert.equal(cells[1], `${keyPrefix}…`);
    assert.match(cells[2], new RegExp(`${escapeRe(admin.name)}|${escapeRe(admin.email)}`), 'created by the admin');
    assert.equal(cells[4], 'never', 'not used yet');
    assert.equal(await page.locator('#mode-live tr[data-key]').count(), 0, 'no live keys');

    // "Copy" puts the key on the clipboard and says so.
    await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: env.baseUrl });
    const copy = page.locator('#revealed').getByRole('button', { name: 'Copy' });
    await copy.click();
    await page.locator('#revealed').getByRole('button', { name: 'Copied' }).waitFor();
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), apiKey);
    await env.screenshot(page, 'test-key-added');
    // A reload neither creates another key nor shows the secret again.
    await page.reload();
    assert.equal(await page.locator('#secret-value').count(), 0, 'shown once');
    assert.equal(await testSection().locator('tr[data-key]').count(), 1, 'no second key');
  });

  step('"Reveal" shows the key again, and the test callback auth key', async () => {
    // Reveals answer the POST with the page itself (the secret is never put in a cookie or URL).
    await navigateBy(page, () => keyRow(keyPrefix).getByRole('button', { name: 'Reveal' }).click());
    // Post/redirect/get: the secret is shown once on /keys, so a reload repeats nothing.
    assert.equal(pathOf(page), '/keys');
    assert.equal((await page.locator('#secret-value').textContent()).trim(), apiKey);
    assert.match(squash(await page.locator('#revealed').textContent()), new RegExp(`Test key “${keyLabel}”`));
    await env.screenshot(page, 'test-key-revealed');

    const callbackForm = testSection().locator('form[action="/keys/callback/test/reveal"]');
    await navigateBy(page, () => callbackForm.getByRole('button', { name: 'Reveal' }).click());
    assert.equal(pathOf(page), '/keys');
    assert.match(squash(await page.locator('#revealed').textContent()), /Test callback auth key/);
    callbackKey = (await page.locator('#secret-value').textContent()).trim();
    assert.ok(callbackKey.length >= 16, `a callback auth key: ${callbackKey}`);
    assert.notEqual(callbackKey, apiKey);
    await env.screenshot(page, 'callback-key-revealed');
  });

  step('the revealed key creates a project, a batch and three tasks through the v1 API', async () => {
    const project = await api('POST', '/v1/projects', { type: 'imageannotation', name: projectName, params: { instruction } });
    assert.equal(project.status, 200, `POST /v1/projects: ${project.text}`);
    assert.equal(project.json.name, projectName);
    assert.equal(project.json.type, 'imageannotation');

    const batch = await api('POST', '/v1/batches', { project: projectName, name: batchName, callback: '', metadata: {} });
    assert.equal(batch.status, 200, `POST /v1/batches: ${batch.text}`);
    assert.equal(batch.json.name, batchName);
    assert.equal(batch.json.project, projectName);

    for (let i = 1; i <= 3; i += 1) {
      const task = await api('POST', '/v1/task/imageannotation', {
        project: projectName,
        batch: batchName,
        attachment: `https://example.com/${i}.png`,
        geometries: { box: { objects_to_annotate: labels } },
      });
      assert.equal(task.status, 200, `POST /v1/task/imageannotation: ${task.text}`);
      assert.ok(task.json.task_id, 'a task id');
      assert.equal(task.json.status, 'completed', 'test mode completes at once');
      assert.equal(task.json.project, projectName);
      assert.equal(task.json.batch, batchName);
      taskIds.push(task.json.task_id);
    }
    assert.equal(new Set(taskIds).size, 3);

    const listed = await api('GET', `/v1/tasks?project=${encodeURIComponent(projectName)}`);
    assert.equal(listed.status, 200, `GET /v1/tasks: ${listed.text}`);
    assert.deepEqual(listed.json.docs.map((t) => t.task_id).sort(), [...taskIds].sort());
  });

  step('the Tasks page in live mode shows none of the test tasks', async () => {
    await goByNav('Tasks');
    assert.equal(pathOf(page), '/tasks');
    assert.equal(squash(await modeSwitch().locator('.mode-label').textContent()), 'Live mode');
    assert.equal(squash(await page.getByRole('heading', { level: 1 }).textContent()), 'Tasks · 0');
    assert.equal(await taskTable().count(), 0, 'no task table');
    assert.match(await page.locator('main').textContent(), /No tasks match\./);
    await env.screenshot(page, 'tasks-live-empty');
  });

  step('"Switch to test" lists the three tasks', async () => {
    await navigateBy(page, () => modeSwitch().getByRole('button', { name: 'Switch to test', exact: true }).click());
    assert.equal(pathOf(page), '/test/tasks', 'the switch returns to the same page, in test mode');
    assert.equal(squash(await modeSwitch().locator('.mode-label').textContent()), 'Test mode');
    assert.match(await page.locator('.test-banner').textContent(), /Test data/);
    assert.equal(await modeSwitch().getByRole('button', { name: 'Switch to live', exact: true }).count(), 1);
    await taskTable().waitFor();
    assert.equal(squash(await page.getByRole('heading', { level: 1 }).textContent()), 'Tasks · 3');
    const rows = await tableRows(taskTable());
    assert.equal(rows.length, 3);
    assert.deepEqual(rows.map((r) => r[0]).sort(), [...taskIds].sort(), 'the tasks made through the API');
    for (const [, type, status, project, batch, review] of rows) {
      assert.deepEqual({ type, status, project, batch, review },
        { type: 'imageannotation', status: 'completed', project: projectName, batch: batchName, review: '' });
    }
    await env.screenshot(page, 'tasks-test-mode');
  });

  step('the filters narrow the list by status and batch', async () => {
    const filters = page.locator('form.filters');
    await filters.getByLabel('Status').selectOption('pending');
    await navigateBy(page, () => filters.getByRole('button', { name: 'Search' }).click());
    assert.equal(new URL(page.url()).searchParams.get('status'), 'pending');
    assert.equal(await taskTable().count(), 0, 'no pending tasks');
    assert.match(await page.locator('main').textContent(), /No tasks match\./);
    await env.screenshot(page, 'tasks-filter-pending');

    await filters.getByLabel('Status').selectOption('completed');
    await filters.getByLabel('Batch').fill(batchName);
    await navigateBy(page, () => filters.getByRole('button', { name: 'Search' }).click());
    const params = new URL(page.url()).searchParams;
    assert.equal(params.get('status'), 'completed');
    assert.equal(params.get('batch'), batchName);
    assert.equal(await filters.getByLabel('Status').inputValue(), 'completed', 'the filter keeps its value');
    assert.equal(await filters.getByLabel('Batch').inputValue(), batchName);
    await taskTable().waitFor();
    assert.equal(await taskTable().locator('tbody tr').count(), 3);
    await env.screenshot(page, 'tasks-filter-completed-week-1');

    await filters.getByLabel('Batch').fill('no-such-batch');
    await navigateBy(page, () => filters.getByRole('button', { name: 'Search' }).click());
    assert.equal(await taskTable().count(), 0, 'an unknown batch matches nothing');
  });

  step('a task shows its labels and instruction, and can be accepted with a comment', async () => {
    await page.goto(`/test/tasks?status=completed&batch=${batchName}`);
    const id = taskIds[0];
    await navigateBy(page, () => taskTable().getByRole('link', { name: id, exact: true }).click());
    assert.equal(pathOf(page), `/test/tasks/${id}`);
    assert.match(squash(await page.getByRole('heading', { level: 1 }).textContent()), new RegExp(`Task ${id}`));
    const facts = await factsOf(page);
    assert.equal(facts.Type, 'imageannotation');
    assert.equal(facts.Status, 'completed');
    assert.equal(facts.Project, projectName);
    assert.equal(facts.Batch, `${batchName} (its tasks)`, 'the batch links to its tasks');
    assert.equal((await page.locator('#task-batch').textContent()).trim(), batchName);
    assert.equal(facts.Review, undefined, 'not reviewed yet');
    assert.equal((await page.locator('.instruction').textContent()).trim(), instruction);

    const response = JSON.parse(await page.locator('#response').textContent());
    assert.ok(Array.isArray(response.annotations), `response: ${JSON.stringify(response)}`);
    assert.deepEqual(response.annotations.map((a) => a.label).sort(), [...labels].sort());
    assert.ok(response.annotations.every((a) => a.type === 'box'), 'box annotations');
    const history = await tableRows(page.locator('#history'));
    assert.ok(history.some((r) => r[2] === 'created'), 'history has "created"');
    await env.screenshot(page, 'task-detail');

    const auditForm = page.locator('#audit');
    await auditForm.getByLabel('Comments').fill(auditComment);
    await navigateBy(page, () => auditForm.getByRole('button', { name: 'Accept', exact: true }).click());
    assert.equal(pathOf(page), `/test/tasks/${id}`);
    assert.equal(await flashText(page), 'Task accepted.');
    assert.equal((await factsOf(page)).Review, 'accepted');
    const after = await tableRows(page.locator('#history'));
    const audited = after.find((r) => r[2] === 'audited');
    assert.ok(audited, `history has the audit: ${JSON.stringify(after)}`);
    assert.equal(audited[1], admin.email, 'by the admin');
    assert.equal(audited[3], `accepted: ${auditComment}`);
    await env.screenshot(page, 'task-accepted');

    // The API sees the same review.
    const task = await api('GET', `/v1/task/${id}`);
    assert.equal(task.status, 200, task.text);
    assert.equal(task.json.customer_review_status, 'accepted');
  });

  step('the Projects page lists the project, whose page shows the batch', async () => {
    await goByNav('Projects');
    assert.equal(pathOf(page), '/test/projects');
    const projects = page.locator('#projects');
    await projects.waitFor();
    const display = `${admin.team} / ${projectName}`;
    const rows = await tableRows(projects);
    assert.ok(rows.some((r) => r[0] === display && r[1] === 'imageannotation'), `"${display}" listed: ${JSON.stringify(rows)}`);
    await env.screenshot(page, 'projects');

    await navigateBy(page, () => projects.getByRole('link', { name: display, exact: true }).click());
    assert.equal(pathOf(page), '/test/projects/view');
    assert.equal(new URL(page.url()).searchParams.get('name'), projectName);
    assert.equal(squash(await page.getByRole('heading', { level: 1 }).textContent()), `${display} · imageannotation`);
    assert.match(await page.locator('main').textContent(), new RegExp(escapeRe(instruction)));
    const batches = page.locator('#batches');
    await batches.waitFor();
    const batchRows = await tableRows(batches);
    assert.equal(batchRows.length, 1);
    assert.equal(batchRows[0][0], batchName);
    await env.screenshot(page, 'project-detail');

    // The batch links to its tasks.
    await navigateBy(page, () => batches.getByRole('link', { name: batchName, exact: true }).click());
    assert.equal(pathOf(page), '/test/tasks');
    assert.equal(new URL(page.url()).searchParams.get('batch'), batchName);
    assert.equal(await taskTable().locator('tbody tr').count(), 3);
  });

  step('a project created from the dashboard form is listed', async () => {
    await goByNav('Projects');
    const form = page.locator('form[action="/test/projects"]');
    await form.getByLabel('Name', { exact: true }).fill(dashboardProject.name);
    await form.getByLabel('Task type').selectOption(dashboardProject.type);
    await env.screenshot(page, 'new-project-filled');
    await navigateBy(page, () => form.getByRole('button', { name: 'Create project' }).click());
    assert.equal(pathOf(page), '/test/projects/view');
    assert.equal(new URL(page.url()).searchParams.get('name'), dashboardProject.name);
    assert.equal(await flashText(page), `Project "${dashboardProject.name}" created in test mode.`);
    assert.equal(squash(await page.getByRole('heading', { level: 1 }).textContent()),
      `${admin.team} / ${dashboardProject.name} · ${dashboardProject.type}`);
    await env.screenshot(page, 'new-project-created');

    await goByNav('Projects');
    const rows = await tableRows(page.locator('#projects'));
    assert.equal(rows.length, 2, `two projects: ${JSON.stringify(rows)}`);
    assert.ok(rows.some((r) => r[0] === `${admin.team} / ${dashboardProject.name}` && r[1] === dashboardProject.type));
    assert.ok(rows.some((r) => r[0] === `${admin.team} / ${projectName}`));
    await env.screenshot(page, 'projects-two');

    // The API (test key) sees it too.
    const got = await api('GET', `/v1/projects/${encodeURIComponent(dashboardProject.name)}`);
    assert.equal(got.status, 200, got.text);
    assert.equal(got.json.type, dashboardProject.type);
  });

  step('deleting the key (after confirming) makes the API answer 401 with a JSON error', async () => {
    const before = await api('GET', '/v1/tasks');
    assert.equal(before.status, 200, 'the key works before it is deleted');

    await goByNav('API Keys');
    await keyRow(keyPrefix).waitFor();
    // Not asserted: "Last used" stays "never" while the server runs, because the recorded uses
    // are only written at shutdown (KeyCache::flush_uses has no periodic caller).
    const dialogs = [];
    const onDialog = (dialog) => { dialogs.push(`${dialog.type()}: ${dialog.message()}`); dialog.accept(); };
    page.on('dialog', onDialog);
    try {
      await navigateBy(page, () => keyRow(keyPrefix).getByRole('button', { name: 'Delete' }).click());
    } finally {
      page.off('dialog', onDialog);
    }
    assert.equal(dialogs.length, 1, 'one confirm dialog');
    assert.equal(dialogs[0], `confirm: Delete the key ${keyPrefix}…? Requests using it will be refused.`);
    assert.equal(pathOf(page), '/keys');
    assert.equal(await flashText(page), `Key ${keyPrefix}… deleted. Requests with it are refused from now on.`);
    assert.equal(await keyRow(keyPrefix).count(), 0, 'the row is gone');
    assert.match(await testSection().textContent(), /No test keys yet\./);
    await env.screenshot(page, 'key-deleted');

    const refused = await api('GET', '/v1/tasks');
    assert.equal(refused.status, 401, `GET /v1/tasks with the deleted key: ${refused.status} ${refused.text}`);
    assert.match(refused.contentType, /^application\/json/);
    assert.equal(typeof refused.json?.error, 'string', `JSON body: ${refused.text}`);
    assert.ok(refused.json.error.length > 0);
    assert.equal(refused.json.status_code, 401);
    const create = await api('POST', '/v1/task/imageannotation', { attachment: 'https://example.com/x.png', geometries: { box: { objects_to_annotate: ['car'] } } });
    assert.equal(create.status, 401, 'nor can it create tasks');
    assert.equal(create.json?.status_code, 401);
  });

  step('the audit log lists the key lifecycle', async () => {
    await goByNav('Audit log');
    assert.equal(pathOf(page), '/team/audit');
    const rows = await tableRows(page.locator('#audit'));
    const events = rows.map(([when, who, action, target, detail]) => ({ when, who, action, target, detail }));
    const has = (action, target, detail) => events.some((e) => e.action === action
      && (target === undefined || e.target === target) && (!detail || detail.test(e.detail)));
    assert.ok(has('api_key.created', keyLabel, /Test key/), `api_key.created: ${JSON.stringify(events)}`);
    assert.ok(has('api_key.revealed', keyPrefix, /Test key/), 'api_key.revealed');
    assert.ok(has('callback_auth_key.revealed', 'test'), 'callback_auth_key.revealed');
    assert.ok(has('api_key.deleted', keyPrefix, /Test key/), 'api_key.deleted');
    for (const e of events.filter((x) => x.action.startsWith('api_key.') || x.action.startsWith('callback_auth_key.'))) {
      assert.equal(e.who.includes(admin.email) || e.who.includes(admin.name), true, `${e.action} by the admin: ${e.who}`);
    }
    const text = await page.locator('main').textContent();
    assert.ok(!text.includes(apiKey), 'the audit log never shows the key itself');
    assert.ok(!text.includes(callbackKey), 'nor the callback auth key');
    await env.screenshot(page, 'audit-log');
  });

  step('no page raised a JavaScript error or a server error', async () => {
    // Give late errors a moment to surface, then check.
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.deepEqual(pageErrors, []);
    assert.deepEqual(serverErrors, []);
  });
});
