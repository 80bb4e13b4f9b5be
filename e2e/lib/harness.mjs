// Test harness: starts a real SMTP server (aiosmtpd) and the tessera binary on free ports with
// a fresh data directory, launches Debian's Chromium through playwright-core, reads the mail
// that arrived, and stops everything again (also when a test fails or the runner is killed).

import { spawn, execFile } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const execFileP = promisify(execFile);

export const E2E_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const REPO_ROOT = path.resolve(E2E_DIR, '..');
export const ARTIFACTS = path.join(E2E_DIR, 'artifacts');

export const CHROMIUM = process.env.TESSERA_CHROMIUM || '/usr/bin/chromium';
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
];

const fromRoot = (p) => (path.isAbsolute(p) ? p : path.resolve(REPO_ROOT, p));
export const TESSERA_BIN = fromRoot(process.env.TESSERA_BIN || 'target/debug/tessera');
export const PYTHON = fromRoot(process.env.TESSERA_TEST_PYTHON || '.venv/bin/python');
export const DATABASE_URL = process.env.TESSERA_E2E_DATABASE_URL || '';

/** The Stripe secret key the payment tests give Tessera (localstripe accepts any). */
export const STRIPE_SECRET_KEY = 'sk_test_e2e';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A TCP port that was free a moment ago (the OS picks it). */
export async function freePort() {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address();
  server.close();
  await once(server, 'close');
  return port;
}

async function canConnect(port) {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.once('connect', () => { socket.destroy(); resolve(true); });
    socket.once('error', () => resolve(false));
  });
}

/** Polls `check` until it returns a truthy value or `timeoutMs` passes. */
export async function waitFor(what, check, { timeoutMs = 30_000, intervalMs = 200 } = {}) {
  const deadline = Date.now() + timeoutMs;
  let lastError;
  while (Date.now() < deadline) {
    try {
      const value = await check();
      if (value) return value;
    } catch (err) {
      lastError = err;
    }
    await sleep(intervalMs);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError ? `: ${lastError.message}` : ''}`);
}

const children = new Set();
// Last resort: the runner exits (or is interrupted) with children still running.
process.on('exit', () => { for (const c of children) { try { c.kill('SIGKILL'); } catch { /* gone */ } } });
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => { for (const c of children) { try { c.kill('SIGKILL'); } catch { /* gone */ } } process.exit(130); });
}

/** Spawns a child whose output goes to `logFile`; `onOutput` sees stdout as it arrives. */
function start(name, command, args, logFile, onOutput) {
  const log = fs.createWriteStream(logFile);
  const child = spawn(command, args, { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' } });
  children.add(child);
  let output = '';
  const collect = (chunk) => { output += chunk; log.write(chunk); if (onOutput) onOutput(output); };
  child.stdout.on('data', collect);
  child.stderr.on('data', collect);
  child.once('exit', () => { children.delete(child); log.end(); });
  child.once('error', (err) => { log.write(`\n[spawn error] ${err.message}\n`); });
  return { name, child, logFile, output: () => output };
}

/** Stops a child: SIGTERM, then SIGKILL if it has not exited within a few seconds. */
async function stop(proc) {
  if (!proc) return;
  const { child } = proc;
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  const timer = setTimeout(() => { try { child.kill('SIGKILL'); } catch { /* gone */ } }, 5_000);
  await exited;
  clearTimeout(timer);
}

function exitedEarly(proc) {
  const { child } = proc;
  if (child.exitCode !== null || child.signalCode !== null) {
    throw new Error(`${proc.name} exited early (code ${child.exitCode}, signal ${child.signalCode}); log ${proc.logFile}:\n${proc.output().slice(-3000)}`);
  }
}

/**
 * Starts the whole environment. Returns { baseUrl, browser, mailsTo(), screenshot(), ... } and
 * a stop() that must be called in an `after` hook. `serverArgs` are added to `tessera serve`
 * (e.g. ['--allow-private-callbacks'] for a callback receiver on 127.0.0.1).
 */
/** The platform AWS identity the integration tests give Tessera (moto, run without IAM
 * enforcement so the browser can load presigned URLs: moto answers 500 to them when it
 * enforces IAM; the Rust tests cover enforcement). */
export const AWS_ACCESS_KEY_ID = 'AKIAE2EPLATFORM00000';

export async function startEnvironment({ label = 'run', serverArgs = [], stripe = false, moto = false } = {}) {
  for (const [what, file] of [['tessera binary (TESSERA_BIN)', TESSERA_BIN], ['python (TESSERA_TEST_PYTHON)', PYTHON], ['Chromium', CHROMIUM]]) {
    if (!fs.existsSync(file)) throw new Error(`${what} not found at ${file}`);
  }
  const backend = DATABASE_URL ? 'postgres' : 'sqlite';
  const runDir = path.join(ARTIFACTS, `${label}-${backend}`);
  fs.rmSync(runDir, { recursive: true, force: true });
  fs.mkdirSync(runDir, { recursive: true });
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-e2e-'));
  const maildir = path.join(tmp, 'maildir');
  const dataDir = path.join(tmp, 'data');

  const env = { runDir, tmp, maildir, dataDir, backend, smtp: null, server: null, browser: null, shots: 0 };

  env.stop = async () => {
    if (env.browser) await env.browser.close().catch(() => {});
    await stop(env.server);
    await stop(env.smtp);
    await stop(env.stripe);
    await stop(env.moto);
    if (process.env.TESSERA_E2E_KEEP_TMP !== '1') fs.rmSync(tmp, { recursive: true, force: true });
  };

  try {
    // --- SMTP: aiosmtpd storing every message in a Maildir --------------------------------
    const smtpPort = await freePort();
    env.smtp = start('aiosmtpd', PYTHON,
      ['-m', 'aiosmtpd', '-n', '-l', `127.0.0.1:${smtpPort}`, '-c', 'aiosmtpd.handlers.Mailbox', maildir],
      path.join(runDir, 'smtp.log'));
    await waitFor('the SMTP server to listen', async () => { exitedEarly(env.smtp); return canConnect(smtpPort); });
    env.smtpPort = smtpPort;

    // --- localstripe: Stripe's API and Stripe.js, emulated (payment tests only) -------------
    let stripeArgs = [];
    if (stripe) {
      const stripePort = await freePort();
      const stripeTmp = path.join(tmp, 'localstripe');
      fs.mkdirSync(stripeTmp);
      env.stripe = start('localstripe', PYTHON, ['-m', 'localstripe', '--port', String(stripePort), '--from-scratch'],
        path.join(runDir, 'localstripe.log'));
      env.stripeUrl = `http://127.0.0.1:${stripePort}`;
      await waitFor('localstripe to answer', async () => {
        exitedEarly(env.stripe);
        const res = await fetch(`${env.stripeUrl}/v1/customers`, { headers: { Authorization: `Bearer ${STRIPE_SECRET_KEY}` } });
        return res.status === 200;
      });
      stripeArgs = ['--stripe-secret-key', STRIPE_SECRET_KEY, '--stripe-publishable-key', 'pk_test_e2e',
        '--stripe-webhook-secret', 'whsec_e2e', '--stripe-api-base', env.stripeUrl,
        '--stripe-js-url', `${env.stripeUrl}/js.stripe.com/v3/`];
    }

    // --- moto: S3 and STS, emulated (cloud storage tests only) -------------------------------
    let awsArgs = [];
    if (moto) {
      const motoPort = await freePort();
      env.moto = start('moto', PYTHON, ['-m', 'moto.server', '-H', '127.0.0.1', '-p', String(motoPort)],
        path.join(runDir, 'moto.log'));
      env.motoUrl = `http://127.0.0.1:${motoPort}`;
      await waitFor('moto to answer', async () => {
        exitedEarly(env.moto);
        const res = await fetch(`${env.motoUrl}/moto-api/`).catch(() => null);
        return res !== null && res.status === 200;
      });
      awsArgs = ['--aws-access-key-id', AWS_ACCESS_KEY_ID, '--aws-secret-access-key', 'e2e-platform-secret',
        '--aws-sts-endpoint', env.motoUrl];
    }

    // --- Tessera ----------------------------------------------------------------------------
    const port = await freePort();
    const baseUrl = `http://127.0.0.1:${port}`;
    const args = ['serve', '--listen', `127.0.0.1:${port}`, '--data-dir', dataDir,
      '--smtp-url', `smtp://127.0.0.1:${smtpPort}`, '--public-url', baseUrl];
    if (DATABASE_URL) args.push('--database-url', DATABASE_URL);
    args.push(...stripeArgs, ...awsArgs, ...serverArgs);
    env.serverArgs = args;
    let ready = false;
    env.server = start('tessera', TESSERA_BIN, args, path.join(runDir, 'tessera.log'),
      (out) => { if (out.includes('Tessera is running at')) ready = true; });
    await waitFor('Tessera to print "Tessera is running at"', () => { exitedEarly(env.server); return ready; }, { timeoutMs: 60_000 });
    await waitFor('GET /healthz to return 200', async () => {
      exitedEarly(env.server);
      const res = await fetch(`${baseUrl}/healthz`);
      return res.status === 200;
    });
    env.baseUrl = baseUrl;

    // --- Browser ----------------------------------------------------------------------------
    env.browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  } catch (err) {
    await env.stop();
    throw err;
  }

  /** A new browser session (own cookies) whose relative URLs resolve against Tessera. */
  env.newContext = async () => {
    const context = await env.browser.newContext({ baseURL: env.baseUrl, viewport: { width: 1200, height: 900 } });
    context.setDefaultTimeout(15_000);
    context.setDefaultNavigationTimeout(30_000);
    return context;
  };

  /** Full-page screenshot into e2e/artifacts/<run>/NN-name.png. */
  env.screenshot = async (page, name) => {
    env.shots += 1;
    const file = path.join(runDir, `${String(env.shots).padStart(2, '0')}-${name}.png`);
    await page.screenshot({ path: file, fullPage: true });
    return file;
  };

  /** Every message in the Maildir, decoded (see read_maildir.py). */
  env.mails = async () => {
    if (!fs.existsSync(maildir)) return [];
    const { stdout } = await execFileP(PYTHON, [path.join(E2E_DIR, 'lib', 'read_maildir.py'), maildir], { maxBuffer: 16 << 20 });
    return JSON.parse(stdout);
  };

  /** Waits for the mail(s) addressed to `address`; returns them, oldest first. */
  env.mailsTo = async (address, { count = 1, timeoutMs = 30_000 } = {}) => waitFor(
    `${count} email(s) to ${address} in ${maildir}`,
    async () => {
      const found = (await env.mails()).filter((m) => m.to.toLowerCase().includes(address.toLowerCase()));
      return found.length >= count ? found : null;
    },
    { timeoutMs, intervalMs: 300 },
  );

  /**
   * Runs `tessera admin ARGS` against this server's database (with the server's Stripe key in
   * its environment, as an operator's shell would have); resolves to its stdout.
   */
  env.admin = async (adminArgs) => {
    const storage = ['--data-dir', dataDir];
    if (DATABASE_URL) storage.push('--database-url', DATABASE_URL);
    const childEnv = { ...process.env, NO_COLOR: '1' };
    if (stripe) childEnv.TESSERA_STRIPE_SECRET_KEY = STRIPE_SECRET_KEY;
    const { stdout } = await execFileP(TESSERA_BIN, ['admin', ...adminArgs, ...storage], { cwd: REPO_ROOT, env: childEnv, timeout: 60_000 });
    return stdout;
  };

  /** Puts `body` at s3://bucket/key in moto (making the bucket), as the customer would. */
  env.putObject = async (bucket, key, body, contentType) => {
    const script = [
      'import sys, boto3',
      's3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1", aws_access_key_id="AKIACUSTOMER00000000", aws_secret_access_key="x")',
      'try:\n    s3.create_bucket(Bucket=sys.argv[2])\nexcept s3.exceptions.BucketAlreadyOwnedByYou:\n    pass',
      's3.put_object(Bucket=sys.argv[2], Key=sys.argv[3], Body=sys.stdin.buffer.read(), ContentType=sys.argv[4])',
    ].join('\n');
    await new Promise((resolve, reject) => {
      const child = spawn(PYTHON, ['-c', script, env.motoUrl, bucket, key, contentType], { stdio: ['pipe', 'ignore', 'pipe'] });
      let err = '';
      child.stderr.on('data', (d) => { err += d; });
      child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`put_object failed: ${err}`))));
      child.stdin.end(body);
    });
  };

  /**
   * Opens the verification link mailed to `address` at sign-up in `page` and confirms it, as
   * a new Admin does: until then the team may not invite or create live tasks.
   */
  env.verifyEmail = async (page, address) => {
    const mails = await env.mailsTo(address);
    const mail = mails.find((m) => /\/verify-email\//.test(m.text));
    if (!mail) throw new Error(`no verification email to ${address}`);
    const link = /(https?:\/\/[^\s"<>]+\/verify-email\/[A-Za-z0-9_-]+)/.exec(mail.text)[1];
    // Back to where the test was afterwards, as a person returns to their tab.
    const back = page.url();
    await page.goto(link);
    await Promise.all([page.waitForNavigation(), page.locator('#verify-confirm').click()]);
    if ((await page.locator('#verify-banner').count()) !== 0) {
      throw new Error(`${address} is still unverified after opening ${link}`);
    }
    if (back.startsWith('http')) await page.goto(back);
  };

  /** The server log so far (for failure messages). */
  env.serverLog = () => env.server.output();

  return env;
}

/** The accept link `http://HOST:PORT/invite/<token>` in an invitation email's text part. */
export function inviteLink(mail) {
  const match = /(https?:\/\/[^\s"<>]+\/invite\/[A-Za-z0-9_-]+)/.exec(mail.text);
  if (!match) throw new Error(`no invitation link in the email's text part:\n${mail.text}`);
  return match[1];
}

// --- The dashboard's top bar ------------------------------------------------------------------
// The work pages (Get started, Projects, Tasks, Callbacks, Labeling, …) are in the "Main"
// navigation; the account pages (Your Team, API Keys, Billing, Integrations, Team details,
// Audit log, Profile) and "Log out" are in the profile menu at the top right
// (<details class="profile-menu">), which also repeats the work pages ("Work") for phone
// widths, where the Main navigation is hidden.

/** Runs `action` (a click or a submit) and waits until the navigation it causes has loaded. */
export async function navigateBy(page, action) {
  const navigation = page.waitForNavigation({ waitUntil: 'load' });
  await action();
  return navigation;
}

/** Opens the profile menu (a no-op when it is open already); resolves to its panel. */
export async function openMenu(page) {
  const menu = page.locator('details.profile-menu');
  if (!(await menu.evaluate((d) => d.open))) await menu.locator('summary').click();
  const panel = menu.locator('.menu-panel');
  await panel.waitFor({ state: 'visible' });
  return panel;
}

/** Closes the profile menu if it is open (its panel covers the top of the page). */
export async function closeMenu(page) {
  const menu = page.locator('details.profile-menu');
  if (await menu.count() === 0 || !(await menu.evaluate((d) => d.open))) return;
  await menu.locator('summary').click();
  await menu.locator('.menu-panel').waitFor({ state: 'hidden' });
}

/**
 * Follows the top bar's link `label` and waits for the page: in the Main navigation when it is
 * there and visible, otherwise in the profile menu (opened first). Fails when neither has it.
 */
export async function goByMenu(page, label) {
  const main = page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: label, exact: true });
  if (await main.count() === 1 && await main.isVisible()) return navigateBy(page, () => main.click());
  const panel = await openMenu(page);
  const link = panel.getByRole('link', { name: label, exact: true });
  const found = await link.count();
  if (found === 0) throw new Error(`neither the Main navigation nor the profile menu offers "${label}"`);
  return navigateBy(page, () => link.first().click());
}

/** The links (their labels) of the profile menu's Account navigation, opening the menu. */
export async function menuLinks(page) {
  await openMenu(page);
  return page.getByRole('navigation', { name: 'Account' }).getByRole('link')
    .evaluateAll((links) => links.map((a) => a.textContent.trim()));
}

/** Signs out through the profile menu's "Log out" button and waits for the page. */
export async function logOut(page) {
  await openMenu(page);
  return navigateBy(page, () => page.locator('details.profile-menu').getByRole('button', { name: 'Log out' }).click());
}

/**
 * Leaves test mode (new teams start in it) by the test banner's "View live data" and waits for
 * the page; then the banner is gone and the mode switch says "Live mode".
 */
export async function leaveTestMode(page) {
  await closeMenu(page);
  const banner = page.locator('.test-banner');
  await banner.waitFor({ state: 'visible' });
  await navigateBy(page, () => banner.getByRole('button', { name: 'View live data' }).click());
  if (await page.locator('.test-banner').count() !== 0) throw new Error(`still in test mode after "View live data" (${page.url()})`);
}
