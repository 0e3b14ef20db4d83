// The session handoff page of `latchkey dev`. It holds one client token at a time, given by
// the dev server's backend endpoints (api/…, relative to this page), and uses it against the
// edge on this same origin: an EventSource with ?token= and a steer call with a bearer header.
'use strict';

const $ = (id) => document.getElementById(id);

const state = {
  session: '', token: '', expiresAt: null, refusedFrom: null, leeway: null,
  es: null, connections: 0, steers: 0, timer: 0,
};

function setStatus(el, text, kind) {
  el.textContent = text;
  el.className = 'status' + (kind ? ' ' + kind : '');
}

// readBody returns the response text and, when it is JSON, the parsed value.
async function readBody(resp) {
  const text = await resp.text();
  try {
    return { text, json: JSON.parse(text) };
  } catch {
    return { text, json: null };
  }
}

function pretty(text) {
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return text;
  }
}

// errorText renders the backend's (and the control plane's) error body.
function errorText(resp, body) {
  const e = body.json && body.json.error;
  if (e && e.message) {
    return `${resp.status} ${e.code || ''}: ${e.message}` + (e.field ? ` (field ${e.field})` : '');
  }
  return `${resp.status} ${resp.statusText}: ${body.text.slice(0, 200)}`;
}

function clock(d) {
  return d.toLocaleTimeString([], { hour12: false });
}

function inSeconds(d) {
  const s = Math.round((d.getTime() - Date.now()) / 1000);
  return s > 0 ? `in ${s} s` : `${-s} s ago`;
}

async function loadPolicy() {
  try {
    const resp = await fetch('api/token-policy', { cache: 'no-store' });
    const body = await readBody(resp);
    if (!resp.ok) {
      $('policy-hint').textContent = 'Token policy unavailable: ' + errorText(resp, body);
      return;
    }
    const p = body.json;
    state.leeway = p.leeway_seconds;
    $('ttl').max = String(p.max_ttl_seconds);
    $('policy-hint').textContent = `This realm lets a client token live 1 to ${p.max_ttl_seconds} s, and the edge ` +
      `accepts it until ${p.leeway_seconds} s after it expires (the realm's clock-skew leeway): a 1-second token ` +
      `is refused about ${1 + p.leeway_seconds} s after it is minted.`;
  } catch (err) {
    $('policy-hint').textContent = 'Token policy unavailable: ' + err.message;
  }
}

function claimsOf(token) {
  try {
    const b64 = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const c = JSON.parse(atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4)));
    return `sub=${c.sub} org=${c.org} scope="${c.scope}" key_id=${c.key_id} iat=${c.iat} exp=${c.exp}`;
  } catch {
    return '(not a JWT)';
  }
}

function tick() {
  if (state.expiresAt) {
    $('fact-expires').textContent = `${clock(state.expiresAt)} (${inSeconds(state.expiresAt)})`;
  }
  if (state.refusedFrom) {
    const passed = state.refusedFrom.getTime() <= Date.now();
    $('fact-refused').textContent = `${clock(state.refusedFrom)} (expiry + ${state.leeway} s leeway), ` +
      (passed ? 'passed: the edge refuses this token now' : inSeconds(state.refusedFrom));
  }
}

function stopStream() {
  if (state.es) {
    state.es.close();
    state.es = null;
  }
}

function addEvent(text, system) {
  const list = $('events');
  const li = document.createElement('li');
  li.textContent = text;
  if (system) {
    li.className = 'sys';
  }
  list.append(li);
  while (list.children.length > 200) {
    list.firstElementChild.remove();
  }
  list.scrollTop = list.scrollHeight;
}

function eventsURL() {
  return `/sessions/${encodeURIComponent(state.session)}/events?token=${encodeURIComponent(state.token)}`;
}

function openStream() {
  stopStream();
  state.connections = 0;
  $('events').replaceChildren();
  $('stream-refusal').textContent = '';
  const url = eventsURL();
  const es = new EventSource(url);
  state.es = es;
  setStatus($('stream-status'), 'Connecting…');
  es.onopen = () => {
    state.connections++;
    setStatus($('stream-status'), `Stream open (connection ${state.connections}): events arrive as the upstream writes them.`, 'ok');
    addEvent(`connection ${state.connections} opened`, true);
  };
  es.addEventListener('tick', (ev) => {
    let d;
    try {
      d = JSON.parse(ev.data);
    } catch {
      addEvent('event: ' + ev.data);
      return;
    }
    const id = d.identity || {};
    addEvent(`event ${d.n} at ${d.at}: session=${d.session} credential=${id.credential} scopes="${id.scopes}" ` +
      `query seen by the upstream="${d.query_seen_by_upstream}"`);
  });
  es.onerror = () => {
    if (es !== state.es) {
      return;
    }
    if (es.readyState === EventSource.CONNECTING) {
      setStatus($('stream-status'), 'The stream ended; the browser is reconnecting, and the edge decides the new connection…', 'warn');
      addEvent('stream ended: reconnecting', true);
      return;
    }
    setStatus($('stream-status'), 'The stream is closed: checking what the edge answers…', 'bad');
    confirmRefusal(url, es);
  };
}

// confirmRefusal asks the edge what an EventSource cannot tell: the status and body of the
// refused connection. An answer of 200 is cut off at once (it would be a stream).
async function confirmRefusal(url, es) {
  const ac = new AbortController();
  try {
    const resp = await fetch(url, { signal: ac.signal, cache: 'no-store' });
    if (es !== state.es) {
      ac.abort();
      return;
    }
    if (resp.ok) {
      ac.abort();
      setStatus($('stream-status'), 'The stream closed, yet the edge still allows this token (200): it failed for another reason.', 'warn');
      return;
    }
    const body = await resp.text();
    setStatus($('stream-status'), `Stream closed by the edge: ${resp.status} ${resp.statusText}`, 'bad');
    $('stream-refusal').textContent = pretty(body);
    addEvent(`the edge refused the reconnect: ${resp.status}`, true);
  } catch (err) {
    setStatus($('stream-status'), 'The stream is closed and the edge did not answer: ' + err.message, 'bad');
  }
}

async function mint(ev) {
  ev.preventDefault();
  const button = $('mint');
  button.disabled = true;
  setStatus($('mint-status'), 'Asking the backend for a token…');
  const raw = $('ttl').value.trim();
  const req = raw === '' ? {} : { ttl: Number(raw) };
  try {
    const resp = await fetch('api/sessions', {
      method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(req),
    });
    const body = await readBody(resp);
    if (resp.status !== 201) {
      setStatus($('mint-status'), 'The backend could not mint a token: ' + errorText(resp, body), 'bad');
      return;
    }
    const t = body.json;
    stopStream();
    state.session = t.session;
    state.token = t.token;
    state.expiresAt = new Date(t.expires_at);
    state.refusedFrom = t.refused_from ? new Date(t.refused_from) : null;
    state.leeway = t.leeway_seconds;
    state.steers = 0;
    $('fact-session').textContent = t.session;
    $('fact-token').textContent = `${t.token.slice(0, 20)}…${t.token.slice(-8)} (${t.token.length} characters; in this page only)`;
    $('fact-claims').textContent = claimsOf(t.token);
    $('fact-refused').textContent = state.refusedFrom ? '' : 'unknown (the realm policy could not be read)';
    $('token-facts').hidden = false;
    tick();
    clearInterval(state.timer);
    state.timer = setInterval(tick, 1000);
    setStatus($('mint-status'), `Minted a ${t.ttl_seconds}-second token for the new session ${t.session} (scopes ${t.scopes.join(' ')}).`, 'ok');
    setStatus($('steer-status'), '');
    $('steer-body').textContent = '';
    setStatus($('revoke-status'), '');
    $('steer').disabled = false;
    $('revoke').disabled = false;
    openStream();
  } catch (err) {
    setStatus($('mint-status'), 'The backend did not answer: ' + err.message, 'bad');
  } finally {
    button.disabled = false;
  }
}

async function steer(ev) {
  ev.preventDefault();
  if (!state.token) {
    return;
  }
  const n = ++state.steers;
  const path = `/sessions/${encodeURIComponent(state.session)}/messages`;
  try {
    const resp = await fetch(path, {
      method: 'POST',
      headers: { Authorization: 'Bearer ' + state.token, 'Content-Type': 'application/json' },
      body: JSON.stringify({ text: $('message').value }),
    });
    const text = await resp.text();
    setStatus($('steer-status'), `Steer #${n}: POST ${path} → ${resp.status} ${resp.statusText}`, resp.ok ? 'ok' : 'bad');
    $('steer-body').textContent = pretty(text);
  } catch (err) {
    setStatus($('steer-status'), `Steer #${n}: the edge did not answer: ${err.message}`, 'bad');
  }
}

async function revoke() {
  if (!state.session) {
    return;
  }
  const button = $('revoke');
  button.disabled = true;
  try {
    const resp = await fetch('api/sessions/' + encodeURIComponent(state.session), { method: 'DELETE' });
    if (resp.status !== 204) {
      setStatus($('revoke-status'), 'The backend could not revoke the session: ' + errorText(resp, await readBody(resp)), 'bad');
      button.disabled = false;
      return;
    }
    setStatus($('revoke-status'), `Session ${state.session} revoked at ${clock(new Date())}. The edge refuses its token ` +
      'and ends its open stream once the next snapshot lands (about a second): steer again to see the 401.', 'ok');
  } catch (err) {
    setStatus($('revoke-status'), 'The backend did not answer: ' + err.message, 'bad');
    button.disabled = false;
  }
}

$('mint-form').addEventListener('submit', mint);
$('steer-form').addEventListener('submit', steer);
$('revoke').addEventListener('click', revoke);
loadPolicy();
