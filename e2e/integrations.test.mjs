// End-to-end: a private S3 bucket connected on the Integrations page and labeled from. moto
// plays S3 and STS (started by the harness; without IAM enforcement, since moto answers 500
// to presigned URLs when it enforces IAM — the Rust tests cover the trust policy and external
// ID). A street image (a 400×300 PNG) is put in a bucket. An Admin signs up and invites a
// Manager and a Labeler; the Manager reads the team's external ID and trust policy on the
// page, connects the bucket with an IAM role (custom endpoint, path-style) and verifies it.
// A live imageannotation task names s3://bucket/street.png; the Labeler's box annotator loads
// the image from a signed URL (SigV4, 15 minutes), a box is drawn and submitted, the callback
// carries it. With proxy mode on, a second task's image loads through Tessera instead, and its
// box arrives too. No page logs a JavaScript error or violates its Content Security Policy.
//
// Run: `node --test e2e/` from the repository root after `cargo build` (see scripts/test).

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import zlib from 'node:zlib';
import { once } from 'node:events';
import { startEnvironment, inviteLink, waitFor } from './lib/harness.mjs';

const STEP_TIMEOUT = 120_000;
const stamp = `${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;
const bucket = `street-${stamp}`.toLowerCase();
const KEY = 'frames/street.png';
const IMAGE = { width: 400, height: 300 };
const admin = { email: `owner.${stamp}@example.com`, password: 'correct horse battery', name: 'Olga Owner', company: 'Bucket Vision', team: `Buckets ${stamp}` };
const manager = { email: `manager.${stamp}@example.com`, password: 'manage-the-buckets-3', name: 'Max Manager', company: 'Bucket Vision' };
const labeler = { email: `labeler.${stamp}@example.com`, password: 'draw-every-box-9', name: 'Lia Labeler', company: 'Careful Clicks' };
const ROLE_ARN = 'arn:aws:iam::123456789012:role/ScaleAI-Integration';

/** A 400×300 RGB PNG: a grey road under a blue sky. */
function streetPng() {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k += 1) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc32 = (buf) => {
    let c = 0xffffffff;
    for (const b of buf) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type, data) => {
    const length = Buffer.alloc(4);
    length.writeUInt32BE(data.length);
    const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(body));
    return Buffer.concat([length, body, crc]);
  };
  const header = Buffer.alloc(13);
  header.writeUInt32BE(IMAGE.width, 0);
  header.writeUInt32BE(IMAGE.height, 4);
  header[8] = 8; // bit depth
  header[9] = 2; // RGB
  const rows = [];
  for (let y = 0; y < IMAGE.height; y += 1) {
    const row = Buffer.alloc(1 + IMAGE.width * 3);
    const [r, g, b] = y < 200 ? [0x9c, 0xc4, 0xe8] : [0x77, 0x77, 0x77];
    for (let x = 0; x < IMAGE.width; x += 1) row.set([r, g, b], 1 + x * 3);
    rows.push(row);
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', header),
    chunk('IDAT', zlib.deflateSync(Buffer.concat(rows))),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

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

describe('Tessera cloud storage integration, labeled from in a real browser', { timeout: 20 * STEP_TIMEOUT }, () => {
  let env;
  let receiver;
  let failed = false;
  const pages = {};
  const pageErrors = [];
  const consoleErrors = [];
  const cspViolations = [];
  const received = [];
  let liveKey = '';
  let callbackPath = '';

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

  const watchedPage = async (who) => {
    const context = await env.newContext();
    await context.exposeBinding('__tesseraCspViolation', ({ page }, v) => {
      cspViolations.push(`${who}: ${page ? page.url() : '?'}: ${v.directive} blocked ${v.blocked}`);
    });
    await context.addInitScript(() => {
      document.addEventListener('securitypolicyviolation', (e) => {
        window.__tesseraCspViolation({ directive: e.violatedDirective, blocked: e.blockedURI });
      });
    });
    const page = await context.newPage();
    page.on('pageerror', (err) => pageErrors.push(`${who}: ${err.message}`));
    page.on('console', (msg) => {
      if (msg.type() !== 'error') return;
      const url = msg.location().url || page.url();
      // The refused form this test submits on purpose is logged as a failed (400) load.
      if (/status of 400\b/.test(msg.text()) && new URL(url).pathname === '/integrations') return;
      consoleErrors.push(`${who}: ${url}: ${msg.text()}`);
    });
    pages[who] = page;
    return page;
  };

  const api = async (method, path, body) => {
    const headers = { Authorization: `Basic ${Buffer.from(`${liveKey}:`).toString('base64')}` };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const res = await fetch(`${env.baseUrl}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await res.text();
    let json;
    try { json = JSON.parse(text); } catch { json = undefined; }
    return { status: res.status, text, json };
  };

  /** Accepts the invitation mailed to `person` in a fresh browser; returns its page. */
  const accept = async (person, who) => {
    const [mail] = await env.mailsTo(person.email);
    const page = await watchedPage(who);
    assert.equal((await page.goto(inviteLink(mail))).status(), 200);
    await page.getByLabel('Your name').fill(person.name);
    await page.getByLabel('Company').fill(person.company);
    await page.getByLabel('Password', { exact: true }).fill(person.password);
    await page.getByLabel('Repeat password').fill(person.password);
    await navigateBy(page, () => page.getByRole('button', { name: 'Accept invitation' }).click());
    return page;
  };

  const invite = async (email, role) => {
    const page = pages.admin;
    await page.goto('/team');
    const form = page.locator('#invite');
    await form.getByLabel('Email addresses').fill(email);
    await form.locator('select[name="role"]').selectOption(role);
    await navigateBy(page, () => form.getByRole('button', { name: 'Send invitations' }).click());
    assert.match(await flashText(page), /^Invitation sent to /);
  };

  const createTask = async (n) => {
    const res = await api('POST', '/v1/task/imageannotation', {
      callback_url: `http://127.0.0.1:${receiver.address().port}${callbackPath}`,
      instruction: `Box the bus (${n}).`,
      attachment: `s3://${bucket}/${KEY}`,
      geometries: { box: { objects_to_annotate: ['bus'] } },
    });
    assert.equal(res.status, 200, `created: ${res.text}`);
    assert.equal(res.json.params.attachment, `s3://${bucket}/${KEY}`, 'kept as given');
    return res.json.task_id;
  };

  /** The labeler takes the next task, waits for its image, draws one box and submits it. */
  const labelNext = async (taskId) => {
    const page = pages.labeler;
    await page.goto('/label');
    await navigateBy(page, () => page.getByRole('button', { name: 'Next task' }).click());
    assert.equal(pathOf(page), `/label/${taskId}`);
    const src = await page.locator('#annotator-image').getAttribute('src');
    const loaded = await waitFor('the attachment image to load', () => page.evaluate(() => {
      const img = document.getElementById('annotator-image');
      const cnv = document.getElementById('annotator-canvas');
      return img.complete && img.naturalWidth > 0 && cnv.width === img.clientWidth
        ? { width: img.naturalWidth, height: img.naturalHeight } : null;
    }), { timeoutMs: 15_000 });
    assert.deepEqual([loaded.width, loaded.height], [IMAGE.width, IMAGE.height]);
    const canvas = page.locator('#annotator-canvas');
    await canvas.evaluate((el) => el.scrollIntoView({ block: 'center' }));
    const box = await canvas.boundingBox();
    await page.mouse.move(box.x + 60, box.y + 120);
    await page.mouse.down();
    await page.mouse.move(box.x + 150, box.y + 170, { steps: 4 });
    await page.mouse.move(box.x + 240, box.y + 220, { steps: 4 });
    await page.mouse.up();
    const response = JSON.parse(await page.getByLabel('Response JSON').inputValue());
    assert.equal(response.annotations.length, 1, JSON.stringify(response));
    await env.screenshot(page, `labeled-${taskId}`);
    await navigateBy(page, () => page.getByRole('button', { name: 'Submit', exact: true }).click());
    assert.equal(pathOf(page), '/label');
    const callback = await waitFor('the callback', () => received.find((c) => JSON.parse(c.body).task_id === taskId), { timeoutMs: 30_000 });
    const sent = JSON.parse(callback.body);
    assert.equal(sent.task.status, 'completed');
    assert.equal(sent.response.annotations[0].label, 'bus');
    return src;
  };

  before(async () => {
    receiver = http.createServer((req, res) => {
      const chunks = [];
      req.on('data', (c) => chunks.push(c));
      req.on('end', () => {
        received.push({ path: req.url, body: Buffer.concat(chunks).toString() });
        res.writeHead(200, { 'Content-Type': 'text/plain' });
        res.end('ok');
      });
    });
    receiver.listen(0, '127.0.0.1');
    await once(receiver, 'listening');
    callbackPath = `/storage-callback/${stamp}`;
    // moto and the receiver are on 127.0.0.1, which production refuses as a target.
    env = await startEnvironment({ label: 'integrations', serverArgs: ['--allow-private-callbacks'], moto: true });
    await env.putObject(bucket, KEY, streetPng(), 'image/png');
    await watchedPage('admin');
  });

  after(async () => {
    if (env) await env.stop();
    if (receiver) {
      receiver.closeAllConnections();
      receiver.close();
    }
  });

  step('an admin signs up, adds a live key and invites a Manager and a Labeler', async () => {
    const page = pages.admin;
    assert.equal((await page.goto('/signup')).status(), 200);
    await page.getByLabel('Work email').fill(admin.email);
    await page.getByLabel('Password', { exact: true }).fill(admin.password);
    await page.getByLabel('Your name').fill(admin.name);
    await page.getByLabel('Company').fill(admin.company);
    await page.getByLabel('Team name').fill(admin.team);
    await navigateBy(page, () => page.getByRole('button', { name: 'Sign up' }).click());
    await env.verifyEmail(page, admin.email);
    await page.goto('/keys');
    const live = page.locator('#mode-live');
    await live.getByLabel('Label (optional)').fill('storage e2e');
    await navigateBy(page, () => live.getByRole('button', { name: 'Add live key' }).click());
    liveKey = (await page.locator('#secret-value').textContent()).trim();
    assert.match(liveKey, /^live_/);
    await invite(manager.email, 'manager');
    await invite(labeler.email, 'labeler');
    await accept(manager, 'manager');
    await accept(labeler, 'labeler');
  });

  step('the Manager sees the external ID and trust policy, connects the bucket and verifies it', async () => {
    const page = pages.manager;
    await page.goto('/integrations');
    assert.equal(await page.title(), 'Integrations · Tessera');
    const externalId = (await page.locator('#external-id').textContent()).trim();
    assert.match(externalId, /^tessera-[0-9a-f]{32}$/);
    assert.equal((await page.locator('#platform-account').textContent()).trim(), '123456789012');
    const policy = JSON.parse(await page.locator('#trust-policy').textContent());
    assert.equal(policy.Statement[0].Condition.StringEquals['sts:ExternalId'], externalId);
    assert.equal(policy.Statement[0].Principal.AWS, 'arn:aws:iam::123456789012:root');

    const form = page.locator('#aws-form');
    // A mistake first: the form comes back with the reason and what was typed.
    await form.getByLabel('Name').fill('Street frames');
    await form.getByLabel('Buckets (comma-separated)').fill(bucket);
    await form.getByLabel('Role ARN').fill('arn:aws:iam::123:role/Nope');
    const refused = await navigateBy(page, () => form.getByRole('button', { name: 'Connect S3' }).click());
    assert.equal(refused.status(), 400);
    assert.match(await page.locator('#aws-form p.error').textContent(), /not an IAM role ARN/);
    assert.equal(await page.locator('#aws-form').getByLabel('Name').inputValue(), 'Street frames');

    const again = page.locator('#aws-form');
    await again.getByLabel('Role ARN').fill(ROLE_ARN);
    await again.locator('summary', { hasText: 'S3-compatible storage' }).click();
    await again.getByLabel('Endpoint', { exact: true }).fill(env.motoUrl);
    await again.getByLabel('Path-style addressing').check();
    await navigateBy(page, () => again.getByRole('button', { name: 'Connect S3' }).click());
    assert.match(await flashText(page), /Connected "Street frames"/);
    const row = page.locator('#integrations tbody tr').first();
    assert.match(await row.textContent(), new RegExp(bucket));
    await navigateBy(page, () => row.getByRole('button', { name: 'Verify' }).click());
    assert.match(await flashText(page), /^Verified/);
    assert.match(await page.locator('#integrations .verify-status').first().textContent(), /Works/);
    await env.screenshot(page, 'integrations-verified');
  });

  step('a task on s3:// is labeled from a signed URL and its box reaches the callback', async () => {
    const taskId = await createTask(1);
    const src = await labelNext(taskId);
    const signed = new URL(src);
    assert.equal(signed.origin, env.motoUrl, 'the browser loads the image from the bucket');
    assert.equal(signed.pathname, `/${bucket}/${KEY}`);
    assert.equal(signed.searchParams.get('X-Amz-Expires'), '900');
    assert.ok(signed.searchParams.get('X-Amz-Signature'));
    assert.ok(signed.searchParams.get('X-Amz-Security-Token'), 'signed with the assumed role');
  });

  step('with proxy mode on, the image loads through Tessera and the box arrives too', async () => {
    const page = pages.manager;
    await page.goto('/integrations');
    await page.getByLabel('Proxy mode: stream attachments through Tessera').check();
    await navigateBy(page, () => page.locator('#proxy-form').getByRole('button', { name: 'Save' }).click());
    assert.match(await flashText(page), /Proxy mode is on/);
    const taskId = await createTask(2);
    const src = await labelNext(taskId);
    assert.equal(src, `/label/${taskId}/attachment`);
  });

  step('no page raised a JavaScript error, logged a console error or violated its CSP', async () => {
    assert.deepEqual(pageErrors, []);
    assert.deepEqual(consoleErrors, []);
    assert.deepEqual(cspViolations, []);
  });
});
