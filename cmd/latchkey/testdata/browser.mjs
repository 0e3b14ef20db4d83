// Drives latchkey dev's two browser pages in headless Chromium, as a user would, and saves
// screenshots. Run by TestBrowser (cmd/latchkey/browser_test.go), which starts `latchkey dev`
// and passes its addresses in the environment:
//
//   LATCHKEY_EDGE, LATCHKEY_CONTROL_PLANE  base URLs (http://127.0.0.1:port)
//   LATCHKEY_ADMIN_KEY                     the admin key dev printed
//   LATCHKEY_SCREENSHOTS                   directory for the PNGs
//   LATCHKEY_CHROMIUM                      the browser (default /usr/bin/chromium)
//
// It prints one line per step, "screenshot: <path>" per picture, and on failure "FAIL: …"
// with a screenshot of the page at fault, exiting 1.
import { chromium } from 'playwright-core';
import { mkdtemp, mkdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';

class Failure extends Error {}

function need(name) {
  const v = process.env[name];
  if (!v) {
    throw new Failure(`${name} is not set (TestBrowser sets it)`);
  }
  return v;
}

const EDGE = need('LATCHKEY_EDGE');
const CP = need('LATCHKEY_CONTROL_PLANE');
const ADMIN = need('LATCHKEY_ADMIN_KEY');
const SHOTS = need('LATCHKEY_SCREENSHOTS');
const CHROMIUM = process.env.LATCHKEY_CHROMIUM || '/usr/bin/chromium';

// Generous bounds: conditions are waited on, never timed. The edge polls snapshots every
// second and ends an open stream once a snapshot revokes it; the browser reconnects after 3 s.
const T = { ui: 15_000, revoke: 30_000, stream: 60_000, expiry: 120_000 };

function escapeRe(s) {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function step(msg) {
  console.log('· ' + msg);
}

function check(cond, msg) {
  if (!cond) {
    throw new Failure(msg);
  }
}

// waitText waits until the locator's text matches re; it fails naming what it waited for and
// the text it saw last.
async function waitText(locator, re, what, timeout = T.ui) {
  const deadline = Date.now() + timeout;
  let last = '';
  for (;;) {
    try {
      last = (await locator.innerText({ timeout: 1000 })).trim();
    } catch {
      last = '(not found)';
    }
    if (re.test(last)) {
      return last;
    }
    if (Date.now() > deadline) {
      throw new Failure(`${what}: waited ${timeout / 1000} s for ${re}, last saw ${JSON.stringify(last.slice(0, 400))}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

const shots = [];
async function screenshot(page, name) {
  const file = path.join(SHOTS, name);
  await page.screenshot({ path: file, fullPage: true });
  shots.push(file);
  console.log('screenshot: ' + file);
}

// watch records what a page must never do: throw, break its CSP, or receive an API key
// from the dev backend.
function watch(page, label, problems) {
  page.on('pageerror', (err) => problems.push(`${label}: uncaught ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() === 'error' && /Content Security Policy|Refused to/.test(msg.text())) {
      problems.push(`${label}: ${msg.text()}`);
    }
  });
}

// steer sends one steer message and checks the page reports the status want.
async function steer(page, want, what) {
  const text = await steerUntil(page, '', what, 0);
  check(text.includes(`→ ${want}`), `${what}: want ${want}, the page says ${JSON.stringify(text)}`);
  return text;
}

// steerUntil sends steer messages until the page reports want (a status) or times out; each
// click's answer is told apart by its number.
async function steerUntil(page, want, what, timeout) {
  const status = page.getByRole('status', { name: 'Steer result' });
  const deadline = Date.now() + timeout;
  for (;;) {
    // Empty (and so hidden, out of the accessibility tree) before the first steer.
    const before = await page.locator('#steer-status').textContent();
    const n = Number((/Steer #(\d+)/.exec(before) || [0, 0])[1]) + 1;
    await page.getByRole('button', { name: 'Send steer message' }).click();
    const text = await waitText(status, new RegExp(`Steer #${n}: `), `${what}: steer #${n} answered`);
    if (text.includes(`→ ${want}`)) {
      return text;
    }
    if (Date.now() > deadline) {
      throw new Failure(`${what}: waited ${timeout / 1000} s for a steer answered ${want}, last: ${text}`);
    }
    await page.waitForTimeout(400);
  }
}

async function mint(page, ttl) {
  const before = await page.locator('#fact-session').textContent();
  await page.getByLabel('Token lifetime (seconds)').fill(String(ttl));
  await page.getByRole('button', { name: 'Mint a token for a new session' }).click();
  const text = await waitText(page.getByRole('status', { name: 'Mint result' }), /^(Minted|The backend)/, 'mint');
  check(!before || !text.includes(before), `mint: the page still shows the previous session ${before}`);
  check(text.startsWith(`Minted a ${ttl}-second token`), `mint: the page says ${JSON.stringify(text)}`);
  return /session (demo-[0-9a-f]+)/.exec(text)[1];
}

async function handoffRevoke(page) {
  step('handoff: open the page on the edge origin');
  await page.goto(EDGE + '/_latchkey/demo/');
  await waitText(page.locator('#policy-hint'), /leeway/, 'the realm token policy hint');

  step('handoff: the backend mints a token for a new session; the stream opens');
  const session = await mint(page, 300);
  const events = page.getByRole('log', { name: 'Events' });
  await waitText(events, /event 2 at/, 'two streamed events');
  const evText = await events.innerText();
  check(evText.includes(`session=${session}`) && evText.includes('credential=token'), `events lack the session or credential: ${evText}`);
  check(evText.includes('query seen by the upstream=""'), `the upstream saw a query (the token?): ${evText}`);
  await waitText(page.getByRole('status', { name: 'Stream status' }), /Stream open \(connection 1\)/, 'stream status');

  step('handoff: steer with the token as a bearer → 2xx');
  const ok = await steer(page, '200', 'steer before revocation');
  check(ok.includes(`/sessions/${session}/messages`), `steer went elsewhere: ${ok}`);
  await waitText(page.getByLabel('Steer response body'), new RegExp(`"steered": "${session}"`), 'the upstream answer');

  step('handoff: revoke the session through the backend');
  await page.getByRole('button', { name: 'Revoke this session' }).click();
  await waitText(page.getByRole('status', { name: 'Revoke result' }), new RegExp(`Session ${session} revoked`), 'revoke');

  step('handoff: the next steer is refused with 401 once the snapshot lands');
  await steerUntil(page, '401', 'steer after revocation', T.revoke);
  await waitText(page.getByLabel('Steer response body'), /"error": "revoked"/, 'the edge body of the refused steer');

  step('handoff: the stream ends and its reconnect is refused: 401 revoked');
  await waitText(page.getByRole('status', { name: 'Stream status' }), /Stream closed by the edge: 401/, 'the stream closed', T.stream);
  await waitText(page.getByLabel('Stream refusal body'), /"error": "revoked"/, 'the edge body of the refused stream');
  await screenshot(page, 'handoff.png');
}

// handoffExpiryStart mints a 1-second token; handoffExpiryEnd, run after the keys page's
// steps (the token outlives its expiry by the realm's leeway), sees the edge refuse it.
async function handoffExpiryStart(page) {
  step('handoff: mint a 1-second token; it streams and steers until expiry + leeway');
  const session = await mint(page, 1);
  await waitText(page.getByRole('log', { name: 'Events' }), /event 1 at/, 'an event of the short-lived token');
  await steer(page, '200', 'steer before the refusal time');
  const facts = await page.getByLabel('Client token', { exact: true }).innerText();
  check(/Edge refuses from\s+\S+ \(expiry \+ \d+ s leeway\)/.test(facts), `the page does not say when the edge refuses: ${facts}`);
  return session;
}

async function handoffExpiryEnd(page, session) {
  step(`handoff: wait for the edge to refuse the expired token (session ${session}) → 401 expired`);
  await page.bringToFront();
  await waitText(page.locator('#fact-refused'), /passed/, 'the refusal time passing', T.expiry);
  await steerUntil(page, '401', 'steer after expiry', T.expiry);
  await waitText(page.getByLabel('Steer response body'), /"error": "expired"/, 'the edge body of the expired steer');
  await waitText(page.getByRole('status', { name: 'Stream status' }), /Stream closed by the edge: 401/, 'the expired stream closed', T.stream);
  await waitText(page.getByLabel('Stream refusal body'), /"error": "expired"/, 'the edge body of the expired stream');
  await screenshot(page, 'handoff-expired.png');
}

async function keys(page, context) {
  step('keys: open the page with the admin key in the URL fragment');
  await page.goto(`${CP}/ui/#admin=${ADMIN}`);
  const table = page.getByRole('table', { name: 'Keys' });
  await waitText(table, /dev sample/, 'the sample key listed');
  check(new URL(page.url()).hash === '', `the admin key stays in the address bar: ${page.url()}`);
  await waitText(page.locator('#who'), new RegExp(`^lk_admin_…${ADMIN.slice(-4)}$`), 'the signed-in key, redacted');

  step('keys: an API error is shown with its message and field');
  await page.getByLabel('Type', { exact: true }).fill('nope');
  await page.getByRole('button', { name: 'Create key' }).click();
  await waitText(page.getByRole('alert', { name: 'Error' }), /^422 invalid_request: type: unknown key type "nope"/, 'the API error');
  await page.getByLabel('Type', { exact: true }).fill('live');

  step('keys: create a key; its plaintext is shown once');
  await page.getByLabel('Name', { exact: true }).fill('browser test key');
  await page.getByLabel(/^Scopes/).fill('read');
  await page.getByRole('button', { name: 'Create key' }).click();
  const panel = page.getByRole('region', { name: 'Copy the new key now' });
  await panel.waitFor({ state: 'visible', timeout: T.ui });
  const secret = await page.getByLabel('Plaintext key').inputValue();
  check(/^lk_live_[A-Za-z0-9]{20,}$/.test(secret), `the plaintext does not look like a live key: ${JSON.stringify(secret)}`);
  check((await panel.innerText()).includes("You won't see this again."), 'the panel does not warn that the key is shown once');
  const created = await waitText(page.getByRole('status', { name: 'Notice' }), /Created key key_/, 'the created notice');
  const id = /key_[0-9a-f]{20}/.exec(created)[0];

  step('keys: the copy button puts the plaintext on the clipboard');
  await page.getByRole('button', { name: 'Copy', exact: true }).click();
  await waitText(page.getByRole('status', { name: 'Copy result' }), /^Copied/, 'copy');
  const clip = await page.evaluate(() => navigator.clipboard.readText());
  check(clip === secret, 'the clipboard does not hold the new key');

  const row = () => page.locator(`tr[data-key-id="${id}"]`);
  await waitText(row(), /browser test key[\s\S]*active/, 'the new key listed as active');
  await screenshot(page, 'keys-created.png');

  step('keys: after a reload the plaintext is gone, the key still listed');
  await page.reload();
  await waitText(row(), /browser test key[\s\S]*active/, 'the new key listed after reload');
  check(await panel.isHidden(), 'the secret panel survived a reload');
  check(!(await page.content()).includes(secret), 'the plaintext survived a reload');
  check(!(await page.evaluate(() => JSON.stringify(sessionStorage))).includes(secret), 'the plaintext is in sessionStorage');

  step('keys: rotate it; the new plaintext is shown once; the old key is revoked');
  await row().getByRole('button', { name: /^Rotate/ }).click();
  const dialog = page.getByRole('dialog', { name: /Rotate key browser test key/ });
  await dialog.waitFor({ state: 'visible', timeout: T.ui });
  await dialog.getByRole('button', { name: 'Rotate key' }).click();
  const rotated = await waitText(page.getByRole('status', { name: 'Notice' }), /Rotated/, 'the rotated notice');
  const newID = new RegExp(`Rotated ${id} into (key_[0-9a-f]{20})`).exec(rotated)?.[1];
  check(newID, `unexpected rotate notice: ${rotated}`);
  const secret2 = await page.getByLabel('Plaintext key').inputValue();
  check(/^lk_live_/.test(secret2) && secret2 !== secret, 'rotation did not show a new plaintext');
  await waitText(row(), /revoked/, 'the old key revoked by the rotation');
  const newRow = page.locator(`tr[data-key-id="${newID}"]`);
  await waitText(newRow, /browser test key[\s\S]*active/, 'the new key listed as active');
  await page.getByRole('button', { name: 'I have stored it' }).click();
  check(await panel.isHidden(), 'the secret panel stays after dismissal');

  step('keys: revoke the new key after confirming');
  await newRow.getByRole('button', { name: /^Revoke/ }).click();
  const confirm = page.getByRole('dialog', { name: /Revoke key browser test key/ });
  await confirm.waitFor({ state: 'visible', timeout: T.ui });
  await confirm.getByRole('button', { name: 'Revoke key' }).click();
  await waitText(page.getByRole('status', { name: 'Notice' }), new RegExp(`Revoked ${newID}`), 'the revoked notice');
  await waitText(newRow, /revoked/, 'the new key shown revoked');
  await screenshot(page, 'keys.png');

  step('keys: a bad admin key shows the API\'s 401 message');
  const bad = 'lk_admin_' + 'x'.repeat(36);
  const want = await (await fetch(CP + '/v1/keys', { headers: { Authorization: 'Bearer ' + bad } })).json();
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByLabel('Admin key', { exact: true }).fill(bad);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await waitText(page.getByRole('alert', { name: 'Error' }), new RegExp(`^401 ${escapeRe(want.error.code)}: ${escapeRe(want.error.message)}$`), 'the 401 message');
  check(await page.getByLabel('Admin key', { exact: true }).isVisible(), 'the sign-in form is not shown again after a refused key');
  await screenshot(page, 'keys-error.png');
  await context.clearPermissions();
}

async function main() {
  await mkdir(SHOTS, { recursive: true });
  await rm(path.join(SHOTS, 'failure.png'), { force: true }); // from an earlier failed run
  const profile = await mkdtemp(path.join(tmpdir(), 'latchkey-chromium-'));
  const problems = [];
  let context;
  let current;
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      viewport: { width: 1280, height: 900 },
    });
    await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: CP });

    // The handoff page must never receive an API key from its backend.
    const handoff = await context.newPage();
    watch(handoff, 'handoff page', problems);
    handoff.on('response', async (resp) => {
      if (resp.url().includes('/_latchkey/demo/api/')) {
        const body = await resp.text().catch(() => '');
        if (/lk_(live|test|admin)_/.test(body)) {
          problems.push(`handoff page: ${resp.url()} answered an API key`);
        }
      }
    });
    current = handoff;
    await handoffRevoke(handoff);
    const expiring = await handoffExpiryStart(handoff);

    const keysPage = await context.newPage();
    watch(keysPage, 'keys page', problems);
    current = keysPage;
    await keys(keysPage, context);

    current = handoff;
    await handoffExpiryEnd(handoff, expiring);
    check(problems.length === 0, 'the pages misbehaved:\n  ' + problems.join('\n  '));
    console.log(`ok: ${shots.length} screenshots`);
  } catch (err) {
    if (current) {
      const file = path.join(SHOTS, 'failure.png');
      await current.screenshot({ path: file, fullPage: true }).catch(() => {});
      console.log('screenshot: ' + file);
    }
    throw err;
  } finally {
    await context?.close().catch(() => {});
    await rm(profile, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.log('FAIL: ' + (err instanceof Failure ? err.message : err.stack || String(err)));
  process.exit(1);
});
