// The key-management page of `latchkey dev`: the control plane's API (same origin) called
// with the admin key the user gives. The admin key lives in this tab's sessionStorage; a new
// key's plaintext lives only in the secret panel until it is dismissed or the page reloads.
'use strict';

const $ = (id) => document.getElementById(id);
const STORED = 'latchkey.adminKey';
const PAGE = 200;
const MAX_PAGES = 25;

class APIError extends Error {
  constructor(status, code, message, field) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field;
  }

  toString() {
    return `${this.status} ${this.code}: ${this.message}` +
      (this.field && !this.message.startsWith(this.field + ':') ? ` (field ${this.field})` : '');
  }
}

function adminKey() {
  return sessionStorage.getItem(STORED) || '';
}

async function api(method, path, body) {
  const headers = { Authorization: 'Bearer ' + adminKey(), Accept: 'application/json' };
  const init = { method, headers, cache: 'no-store' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch(path, init);
  } catch (err) {
    throw new APIError(0, 'network', 'the control plane did not answer: ' + err.message);
  }
  const text = await resp.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    // Not JSON: reported below with the status.
  }
  if (!resp.ok) {
    const e = json && json.error;
    if (e && e.message) {
      throw new APIError(resp.status, e.code, e.message, e.field);
    }
    throw new APIError(resp.status, 'http', `${method} ${path}: ${resp.statusText} ${text.slice(0, 200)}`);
  }
  return json;
}

function showError(err) {
  $('error').textContent = String(err);
  $('notice').textContent = '';
}

function notice(text) {
  $('error').textContent = '';
  $('notice').textContent = text;
}

function redacted(key) {
  const i = key.lastIndexOf('_');
  return key.length > 12 ? `${key.slice(0, i + 1)}…${key.slice(-4)}` : '…';
}

// when shows a time as local "YYYY-MM-DD HH:MM:SS".
function when(iso) {
  if (!iso) {
    return '';
  }
  const d = new Date(iso);
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

function statusOf(k) {
  const now = Date.now();
  if (k.revoked_at) {
    const at = new Date(k.revoked_at).getTime();
    if (at <= now) {
      return { kind: 'revoked', text: 'revoked ' + when(k.revoked_at) };
    }
    return { kind: 'grace', text: 'active until ' + when(k.revoked_at) + ' (rotated)' };
  }
  if (k.expires_at && new Date(k.expires_at).getTime() <= now) {
    return { kind: 'expired', text: 'expired ' + when(k.expires_at) };
  }
  return { kind: 'active', text: 'active' };
}

function cell(row, text, cls) {
  const td = document.createElement('td');
  td.textContent = text;
  if (cls) {
    td.className = cls;
  }
  row.append(td);
  return td;
}

function actionButton(label, what, cls, onClick) {
  const b = document.createElement('button');
  b.type = 'button';
  b.textContent = label;
  b.className = cls;
  b.setAttribute('aria-label', `${label} ${what}`);
  b.addEventListener('click', onClick);
  return b;
}

function isMe(k) {
  const mine = adminKey();
  return k.admin && mine.startsWith(k.prefix) && mine.endsWith(k.last4);
}

function renderKeys(keys) {
  const body = $('keys');
  body.replaceChildren();
  for (const k of keys) {
    const st = statusOf(k);
    const tr = document.createElement('tr');
    tr.dataset.keyId = k.id;
    if (st.kind === 'revoked' || st.kind === 'expired') {
      tr.className = 'revoked';
    }
    const name = cell(tr, k.name || '(unnamed)');
    if (k.rotated_from) {
      const from = document.createElement('div');
      from.className = 'note';
      from.textContent = 'replaces ' + k.rotated_from;
      name.append(from);
    }
    cell(tr, k.id, 'mono');
    cell(tr, k.type);
    cell(tr, k.admin ? '' : k.org);
    cell(tr, k.scopes.join(' '));
    cell(tr, `${k.prefix}…${k.last4}`, 'mono');
    cell(tr, when(k.created_at), 'nowrap');
    const stc = cell(tr, '');
    const badge = document.createElement('span');
    badge.className = 'badge ' + st.kind;
    badge.textContent = st.text + (isMe(k) ? ' (yours)' : '');
    if (isMe(k)) {
      badge.title = 'This page is signed in with this key.';
    }
    stc.append(badge);
    const actions = cell(tr, '', 'actions');
    if (st.kind === 'active') {
      const what = `key ${k.name || k.id} (${k.id})`;
      actions.append(
        actionButton('Rotate', what, 'secondary', () => rotate(k)), ' ',
        actionButton('Revoke', what, 'danger', () => revoke(k)));
    }
    body.append(tr);
  }
  $('list-empty').hidden = keys.length > 0;
}

async function loadKeys() {
  const keys = [];
  let cursor = '';
  for (let i = 0; i < MAX_PAGES; i++) {
    const q = new URLSearchParams({ limit: String(PAGE) });
    if ($('show-revoked').checked) {
      q.set('include_revoked', 'true');
    }
    if (cursor) {
      q.set('cursor', cursor);
    }
    const page = await api('GET', '/v1/keys?' + q);
    keys.push(...page.data);
    cursor = page.next_cursor;
    if (!cursor) {
      break;
    }
  }
  renderKeys(keys);
  return keys;
}

// refresh lists the keys; a refusal of the admin key itself signs out.
async function refresh() {
  try {
    await loadKeys();
    return true;
  } catch (err) {
    showError(err);
    if (err.status === 401) {
      signOut(false);
    }
    return false;
  }
}

function showSignedIn() {
  const key = adminKey();
  $('signin').hidden = !!key;
  $('session').hidden = !key;
  $('create').hidden = !key;
  $('list').hidden = !key;
  $('who').textContent = key ? redacted(key) : '';
}

function signOut(clearMessages) {
  sessionStorage.removeItem(STORED);
  hideSecret();
  $('keys').replaceChildren();
  if (clearMessages) {
    $('error').textContent = '';
    $('notice').textContent = '';
  }
  showSignedIn();
}

async function signIn(ev) {
  ev.preventDefault();
  const key = $('admin-key').value.trim();
  if (!key) {
    return;
  }
  sessionStorage.setItem(STORED, key);
  $('admin-key').value = '';
  $('error').textContent = '';
  showSignedIn();
  if (await refresh()) {
    notice('Signed in.');
  }
}

function showSecret(secret, what) {
  $('secret').value = secret;
  $('secret-what').textContent = what;
  $('copy-status').textContent = '';
  $('secret-panel').hidden = false;
  $('secret').focus();
  $('secret').select();
}

function hideSecret() {
  $('secret').value = '';
  $('secret-what').textContent = '';
  $('copy-status').textContent = '';
  $('secret-panel').hidden = true;
}

async function copySecret() {
  const secret = $('secret').value;
  try {
    await navigator.clipboard.writeText(secret);
    $('copy-status').textContent = 'Copied to the clipboard.';
    return;
  } catch {
    // No clipboard permission (or no secure context): fall back to the selection.
  }
  $('secret').select();
  const ok = document.execCommand && document.execCommand('copy');
  $('copy-status').textContent = ok ? 'Copied to the clipboard.' : 'Could not copy: the key is selected, press Ctrl+C (⌘C).';
}

async function create(ev) {
  ev.preventDefault();
  const req = { type: $('create-type').value.trim() };
  const name = $('create-name').value.trim();
  const org = $('create-org').value.trim();
  const scopes = $('create-scopes').value.split(/[\s,]+/).filter(Boolean);
  if (name) {
    req.name = name;
  }
  if (org && req.type !== 'admin') {
    req.org = org;
  }
  if (scopes.length) {
    req.scopes = scopes;
  }
  try {
    const out = await api('POST', '/v1/keys', req);
    const k = out.key;
    showSecret(out.secret, `Key ${k.id} (${k.name || 'unnamed'}, type ${k.type}, scopes ${k.scopes.join(' ')}) was created.`);
    notice(`Created key ${k.id}.`);
    $('create-name').value = '';
    await loadKeys();
  } catch (err) {
    showError(err);
  }
}

// confirm asks in a modal dialog; it resolves to the grace seconds (rotate) or true, or to
// null when cancelled.
function confirmAction(title, text, okLabel, withGrace) {
  const dlg = $('confirm');
  $('confirm-h').textContent = title;
  $('confirm-text').textContent = text;
  $('confirm-ok').textContent = okLabel;
  $('grace-label').hidden = !withGrace;
  $('grace').value = '0';
  return new Promise((resolve) => {
    const done = (value) => {
      $('confirm-ok').onclick = null;
      $('confirm-cancel').onclick = null;
      dlg.oncancel = null;
      if (dlg.open) {
        dlg.close();
      }
      resolve(value);
    };
    $('confirm-ok').onclick = () => {
      if (!withGrace) {
        done(true);
        return;
      }
      const g = Number($('grace').value);
      if (!Number.isInteger(g) || g < 0) {
        $('grace').setCustomValidity('a whole number of seconds, 0 or more');
        $('grace').reportValidity();
        return;
      }
      $('grace').setCustomValidity('');
      done(g);
    };
    $('confirm-cancel').onclick = () => done(null);
    dlg.oncancel = () => done(null);
    dlg.showModal();
    $('confirm-cancel').focus();
  });
}

async function rotate(k) {
  const grace = await confirmAction(`Rotate key ${k.name || k.id}?`,
    `A new key replaces ${k.id}, with the same type, scopes and org. Its plaintext is shown once.`,
    'Rotate key', true);
  if (grace === null) {
    return;
  }
  try {
    const out = await api('POST', `/v1/keys/${encodeURIComponent(k.id)}/rotate`, { grace_seconds: grace });
    const old = grace > 0 ? `keeps working until ${when(out.previous.revoked_at)}` : 'stopped working now';
    showSecret(out.secret, `Key ${out.key.id} replaces ${out.previous.id}, which ${old}.`);
    notice(`Rotated ${out.previous.id} into ${out.key.id}.`);
    await loadKeys();
  } catch (err) {
    showError(err);
  }
}

async function revoke(k) {
  const warn = isMe(k) ? ' You are signed in with this key: the page will stop working.' : '';
  const ok = await confirmAction(`Revoke key ${k.name || k.id}?`,
    `${k.id} stops working now, at the control plane and, within about a second, at every edge. This cannot be undone.${warn}`,
    'Revoke key', false);
  if (!ok) {
    return;
  }
  try {
    const out = await api('POST', `/v1/keys/${encodeURIComponent(k.id)}/revoke`);
    notice(`Revoked ${out.id}.`);
    await loadKeys();
  } catch (err) {
    showError(err);
  }
}

function init() {
  const m = /(?:^#|&)admin=([^&]*)/.exec(location.hash);
  if (m) {
    sessionStorage.setItem(STORED, decodeURIComponent(m[1]));
    // Out of the address bar, history and any screenshot.
    history.replaceState(null, '', location.pathname + location.search);
  }
  $('signin-form').addEventListener('submit', signIn);
  $('signout').addEventListener('click', () => signOut(true));
  $('create-form').addEventListener('submit', create);
  $('refresh').addEventListener('click', refresh);
  $('show-revoked').addEventListener('change', refresh);
  $('copy').addEventListener('click', copySecret);
  $('secret-done').addEventListener('click', hideSecret);
  showSignedIn();
  if (adminKey()) {
    refresh();
  }
}

init();
