// Tests of the glue (../latchkey.js) under Node. Run by edge/worker's Go test TestNodeGlue,
// which builds the verifier modules and writes the fixture this reads:
//   LATCHKEY_WORKER_FIXTURE=<fixture.json> node --test edge/worker/test/
import { test } from "node:test";
import assert from "node:assert/strict";
import * as nodeCrypto from "node:crypto";
import { readFileSync } from "node:fs";
import { WASI } from "node:wasi";
import {
  createLatchkey, sha256, NodeCrypto, TwoStepCrypto, UNAVAILABLE_BODY, stripQuery, requestParts, parseManifest,
} from "../latchkey.js";
import { fakeVerifier, encodeDecisionBytes } from "../testhost/fakeverifier.mjs";

const fixturePath = process.env.LATCHKEY_WORKER_FIXTURE;
if (!fixturePath) throw new Error("LATCHKEY_WORKER_FIXTURE is not set: run these tests through `go test ./edge/worker -run TestNodeGlue`");
const fx = JSON.parse(readFileSync(fixturePath, "utf8"));
const b64 = (s) => new Uint8Array(Buffer.from(s, "base64"));
const filesOf = (m) => Object.fromEntries(Object.entries(m).map(([k, v]) => [k, b64(v)]));
const compiled = Object.fromEntries(Object.entries(fx.modules).map(([n, p]) => [n, new WebAssembly.Module(readFileSync(p))]));
const nodeWasi = () => new WASI({ version: "preview1", args: [], env: {}, returnOnExit: false });
const quiet = () => {};

// store is an in-memory snapshot store behind the fetch option: files by name, ETags, and a
// log of the requests it answered.
function store(files) {
  const s = { files: { ...files }, requests: [], etags: new Map() };
  s.fetch = async (url, init) => {
    const name = new URL(url).pathname.slice(1);
    const inm = init?.headers?.["If-None-Match"] ?? "";
    s.requests.push({ name, inm });
    const body = s.files[name];
    if (!body) return new Response("not found", { status: 404 });
    const etag = '"' + Buffer.from(sha256(body)).toString("hex").slice(0, 16) + '"';
    if (inm === etag) return new Response(null, { status: 304 });
    return new Response(body, { status: 200, headers: { etag } });
  };
  return s;
}

function gateFor(p, opts = {}) {
  const st = opts.store ?? store(filesOf(p.files));
  let now = p.now * 1000;
  const logs = [];
  const g = createLatchkey({
    module: compiled[opts.module ?? "accel-tinygo"],
    snapshotURL: "http://store.test",
    realm: p.realm,
    trustedKeys: opts.trusted ?? p.trusted,
    fetch: st.fetch,
    clock: () => now,
    log: (level, msg) => logs.push(level + ": " + msg),
    ...opts.extra,
  });
  return { g, st, logs, setNow: (ms) => { now = ms; }, now: () => now };
}

function casePartsOf(p, c) {
  return {
    method: c.method,
    path: c.path,
    query: c.queryToken !== null ? "a=1&" + encodeURIComponent(p.queryParam || "token") + "=" + encodeURIComponent(c.queryToken) : "",
    headers: new Headers(c.headers ?? []),
  };
}

// view is what of a decision the native core also reports.
function view(d) {
  return {
    allow: d.allow, stripQueryToken: d.stripQueryToken, tokenCached: d.tokenCached, status: d.status, reason: d.reason,
    credential: d.credential, retryAfter: d.retryAfter, route: d.route, org: d.org, keyId: d.keyId, keyType: d.keyType,
    session: d.session, agent: d.agent, scopes: d.scopes, identity: d.identity, headers: d.headers, body: Buffer.from(d.body).toString("base64"),
  };
}

function nativeView(n) {
  return { ...n, identity: n.identity, headers: n.headers, body: n.body ?? "" };
}

// ---------------------------------------------------------------------------------------------

test("sha256 matches node:crypto", () => {
  assert.equal(Buffer.from(sha256(new TextEncoder().encode("abc"))).toString("hex"),
    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  for (const n of [0, 1, 55, 56, 63, 64, 65, 119, 120, 127, 128, 1000, 1 << 20]) {
    const b = nodeCrypto.randomBytes(n);
    assert.equal(Buffer.from(sha256(new Uint8Array(b))).toString("hex"), nodeCrypto.createHash("sha256").update(b).digest("hex"), "length " + n);
  }
});

test("host crypto agrees on the JWT vectors: node:crypto and WebCrypto", async () => {
  const v = JSON.parse(readFileSync(fx.jwtVectors, "utf8"));
  const keys = Object.fromEntries(v.keys.map((k) => [k.kid, { alg: k.alg === "EdDSA" ? "ed25519" : "p256", pub: Buffer.from(k.public, "hex") }]));
  const nc = new NodeCrypto(nodeCrypto);
  const ts = new TwoStepCrypto(globalThis.crypto.subtle, quiet);
  let checked = 0;
  for (const name of ["eddsa valid", "es256 valid"]) {
    const tok = v.cases.find((c) => c.name === name).token;
    const [h, p, s] = tok.split(".");
    const kid = JSON.parse(Buffer.from(h, "base64url")).kid;
    const k = keys[kid];
    const msg = new TextEncoder().encode(h + "." + p);
    const sig = new Uint8Array(Buffer.from(s, "base64url"));
    const flipped = sig.slice();
    flipped[5] ^= 1;
    const otherMsg = msg.slice();
    otherMsg[msg.length - 1] ^= 1;
    for (const [m, sg, want] of [[msg, sig, true], [msg, flipped, false], [otherMsg, sig, false]]) {
      const args = { pub: new Uint8Array(k.pub), msg: m, sig: sg };
      assert.equal(nc.verify(k.alg, args), want ? 1 : 0, name + " (node:crypto)");
      assert.equal(await ts.check({ alg: k.alg, ...args }), want, name + " (WebCrypto)");
      checked++;
    }
  }
  // A P-256 "key" that is not on the curve verifies nothing, in either mode.
  const bad = new Uint8Array(65);
  bad[0] = 4;
  bad[64] = 7;
  assert.equal(nc.verify("p256", { pub: bad, msg: new Uint8Array(3), sig: new Uint8Array(64) }), 0);
  assert.equal(await ts.check({ alg: "p256", pub: bad, msg: new Uint8Array(3), sig: new Uint8Array(64) }), false);
  assert.equal(checked, 6);
});

// Every build, crypto mode and WASI provider decides every case of every profile exactly as the
// native core does. The two-step mode is checked against the same decisions, so it is also
// checked against the synchronous mode.
const configs = [
  { name: "accel-tinygo node:crypto", module: "accel-tinygo", extra: { nodeCrypto }, mode: "node" },
  { name: "accel-tinygo two-step", module: "accel-tinygo", extra: {}, mode: "two-step" },
  { name: "accel-tinygo node:crypto node:wasi", module: "accel-tinygo", extra: { nodeCrypto, wasi: nodeWasi }, mode: "node" },
  { name: "portable-tinygo", module: "portable-tinygo", extra: {}, mode: "portable" },
  { name: "accel-go node:crypto", module: "accel-go", extra: { nodeCrypto }, mode: "node" },
  { name: "accel-go two-step", module: "accel-go", extra: {}, mode: "two-step" },
  { name: "portable-go", module: "portable-go", extra: {}, mode: "portable" },
  { name: "portable-go node:wasi", module: "portable-go", extra: { wasi: nodeWasi }, mode: "portable" },
];
for (const cfg of configs) {
  test("decisions equal the native core's: " + cfg.name, async () => {
    let n = 0, replayed = 0;
    for (const [name, p] of Object.entries(fx.profiles)) {
      for (const c of p.cases) {
        // A fresh gate per case, as the native reference uses a fresh engine.
        const { g, logs } = gateFor(p, { module: cfg.module, extra: cfg.extra });
        assert.equal(await g.mode(), cfg.mode);
        const d = await g.decide(casePartsOf(p, c));
        assert.deepEqual(view(d), nativeView(c.native), name + "/" + c.name + " " + logs.join("; "));
        if (cfg.mode === "two-step") {
          // A token seen for the first time needs its signature: one replay.
          if (c.native.credential === "token" && !c.native.tokenCached) assert.equal(d.rounds, 2, name + "/" + c.name);
          if (d.rounds > 1) replayed++;
        } else {
          assert.equal(d.rounds, 1);
        }
        n++;
      }
    }
    assert.ok(n > 100, "cases decided: " + n);
    if (cfg.mode === "two-step") assert.ok(replayed > 0, "no decision replayed");
  });
}

test("two-step: cached tokens decide in one guest call, and the decisions match node:crypto's", async () => {
  const p = fx.profiles.opencomputer;
  const req = (tok) => ({ method: "GET", path: "/v3/sessions/sess_1/events", query: "", headers: new Headers({ Authorization: "Bearer " + tok }) });
  const a = gateFor(p, { extra: {} }), b = gateFor(p, { extra: { nodeCrypto } });
  for (let i = 0; i < 3; i++) {
    const da = await a.g.decide(req(p.tokens.t1)), db = await b.g.decide(req(p.tokens.t1));
    assert.deepEqual(view(da), view(db));
    assert.equal(da.rounds, i === 0 ? 2 : 1);
    assert.equal(da.tokenCached, i > 0);
  }
});

// The replay is sound only if a discarded guest call changes nothing: a rate bucket taken in a
// discarded call would be taken again by the replay. Fresh tokens of one minting key share a
// bucket of 20: exactly 20 pass in either mode.
test("two-step replays consume a rate bucket once", async () => {
  const p = fx.profiles.opencomputer;
  const req = (tok) => ({ method: "GET", path: "/v3/sessions/sess_1/events", query: "", headers: new Headers({ Authorization: "Bearer " + tok }) });
  for (const extra of [{ nodeCrypto }, {}]) {
    const { g } = gateFor(p, { extra });
    // A revoked token first: revocation is checked after the signature, by SHA-256 of the token
    // id; it must be denied without touching the bucket.
    const burned = await g.decide(req(p.tokens.burned));
    assert.equal(burned.reason, "revoked");
    const statuses = [];
    for (const tok of fx.opencomputer.freshTokens) {
      const d = await g.decide(req(tok));
      statuses.push(d.status);
      if (!extra.nodeCrypto) assert.equal(d.rounds, 2);
    }
    assert.deepEqual(statuses, [...Array(20).fill(200), ...Array(fx.opencomputer.freshTokens.length - 20).fill(429)], extra.nodeCrypto ? "node:crypto" : "two-step");
  }
});

test("a module of another ABI version is refused: 503, and the log says why", async () => {
  const logs = [];
  const g = createLatchkey({ module: fakeVerifier({ abi: 2 }), trustedKeys: fx.profiles.opencomputer.trusted, log: (l, m) => logs.push(m) });
  const out = await g.handle(new Request("http://x.test/v3/sessions"));
  assert.equal(out.allow, false);
  assert.equal(out.response.status, 503);
  assert.equal(await out.response.text(), UNAVAILABLE_BODY);
  assert.match(logs.join("\n"), /ABI version 2, this glue 1/);
});

test("a module that is not a verifier is refused, naming what it lacks or imports", async () => {
  const logs = [];
  const g = createLatchkey({ module: fakeVerifier({ dropExport: "lk_decide" }), trustedKeys: fx.profiles.opencomputer.trusted, log: (l, m) => logs.push(m) });
  assert.equal((await g.decide({ method: "GET", path: "/" })).status, 503);
  assert.match(logs.join("\n"), /missing exports lk_decide/);
});

test("malformed guest results fail closed and never throw", async () => {
  const trustedKeys = fx.profiles.opencomputer.trusted;
  const canned = encodeDecisionBytes({ status: 451, body: "canned" });
  for (const [what, opts] of [
    ["a malformed decision", { decision: Uint8Array.of(1, 0, 0, 0, 200) }],
    ["a decision of another version", { decision: Uint8Array.of(9, ...canned.subarray(1)) }],
    ["a decision with trailing bytes", { decision: Uint8Array.of(...canned, 0) }],
    ["an out-of-range result", { decidePacked: (0xfff00000n << 32n) | 16n }],
    ["no result", { decidePacked: 0n }],
    ["a malformed load result", { loadResult: Uint8Array.of(1, 0, 99, 0) }],
  ]) {
    const logs = [];
    const g = createLatchkey({ module: fakeVerifier(opts), trustedKeys, log: (l, m) => logs.push(m) });
    const lr = await g.load({ manifest: new Uint8Array(80), objects: [] });
    if (opts.loadResult) assert.notEqual(lr.status, 0, what);
    const out = await g.handle(new Request("http://x.test/a"));
    assert.equal(out.response.status, opts.loadResult ? 451 : 503, what + ": " + logs.join("; "));
  }
  // A trap (here: any request longer than 200 bytes) breaks the instance; the next request gets
  // a new one.
  const logs = [];
  const g = createLatchkey({ module: fakeVerifier({ decision: canned, trapAbove: 200 }), trustedKeys, log: (l, m) => logs.push(m) });
  const long = await g.handle(new Request("http://x.test/" + "a".repeat(300)));
  assert.equal(long.response.status, 503);
  assert.match(logs.join("\n"), /lk_decide: .*unreachable/);
  const short = await g.handle(new Request("http://x.test/a"));
  assert.equal(short.response.status, 451);
  assert.equal(await short.response.text(), "canned");
  // Garbage in: no request at all.
  assert.equal((await g.handle(null)).response.status, 503);
});

test("refused loads keep the snapshot held: signature, rollback, digest", async () => {
  const p = fx.profiles.opencomputer;
  for (const extra of [{ nodeCrypto }, {}]) {
    const v1 = filesOf(p.files), v2 = filesOf(fx.opencomputer.v2);
    const st = store(v1);
    const { g } = gateFor(p, { store: st, extra });
    const ok = () => g.decide({ method: "POST", path: "/v3/sessions", headers: new Headers({ Authorization: "Bearer " + p.keys.org }) });
    assert.equal((await g.refresh()).version, 1);
    assert.equal((await ok()).status, 200);

    st.files = { ...v2, ["opencomputer/manifest"]: b64(fx.opencomputer.badSigV2) };
    let s = await g.refresh();
    assert.equal(s.version, 1);
    assert.match(s.lastError, /signature/);
    assert.equal((await ok()).status, 200);

    st.files = v2;
    s = await g.refresh();
    assert.equal(s.version, 2, s.lastError);

    st.files = v1;
    s = await g.refresh();
    assert.equal(s.version, 2);
    assert.match(s.lastError, /rollback/);
    assert.equal((await ok()).status, 200);
  }

  // A corrupted object: refused, nothing held, 503; the object is fetched again next time.
  const good = filesOf(p.files);
  const name = Object.keys(good).find((k) => k.includes("/objects/"));
  const bad = good[name].slice();
  bad[bad.length - 1] ^= 1;
  const st = store({ ...good, [name]: bad });
  const { g, setNow, now } = gateFor(p, { store: st, extra: { nodeCrypto } });
  const s = await g.refresh();
  assert.equal(s.version, 0);
  assert.match(s.lastError, /digest/);
  assert.equal((await g.decide({ method: "POST", path: "/v3/sessions", headers: new Headers({ Authorization: "Bearer " + p.keys.org }) })).status, 503);
  st.files[name] = good[name];
  setNow(now() + 1500); // past retrySeconds
  const d = await g.decide({ method: "POST", path: "/v3/sessions", headers: new Headers({ Authorization: "Bearer " + p.keys.org }) });
  assert.equal(d.status, 200);
  assert.equal(st.requests.filter((r) => r.name === name).length, 2);
});

test("ES256-signed manifests load in both crypto modes; a tampered one does not", async () => {
  const p = fx.profiles.opencomputer;
  const es = fx.opencomputer.es256;
  for (const extra of [{ nodeCrypto }, {}]) {
    const { g } = gateFor(p, { store: store(filesOf(es.files)), trusted: es.trusted, extra });
    const s = await g.refresh();
    assert.equal(s.version, 1, s.lastError);
    const files = filesOf(es.files);
    files["opencomputer/manifest"][40] ^= 1;
    const t = gateFor(p, { store: store(files), trusted: es.trusted, extra });
    const s2 = await t.g.refresh();
    assert.equal(s2.version, 0);
    assert.match(s2.lastError, /signature/);
  }
});

test("staleness, expiry and an unreachable store fail closed with 503", async () => {
  const p = fx.profiles.opencomputer;
  const req = () => ({ method: "POST", path: "/v3/sessions", headers: new Headers({ Authorization: "Bearer " + p.keys.org }) });
  const { g, setNow } = gateFor(p, { extra: { nodeCrypto, maxStalenessSeconds: 60 } });
  assert.equal((await g.decide(req())).status, 200);
  setNow((p.now + 120) * 1000);
  let d = await g.decide(req());
  assert.equal(d.status, 503);
  assert.equal(d.reason, "unavailable");

  const e = gateFor(p, { extra: { nodeCrypto } });
  assert.equal((await e.g.decide(req())).status, 200);
  e.setNow((p.now + 86400) * 1000); // the fixture's manifest expires a day after issue
  assert.equal((await e.g.decide(req())).status, 503);

  const gone = gateFor(p, { store: store({}), extra: { nodeCrypto } });
  d = await gone.g.decide(req());
  assert.equal(d.status, 503);
  assert.equal(Buffer.from(d.body).toString(), UNAVAILABLE_BODY);
  assert.match(gone.g.status().lastError, /404/);
  // While nothing is held, a failed fetch is not retried on every request.
  const before = gone.st.requests.length;
  await gone.g.decide(req());
  assert.equal(gone.st.requests.length, before);
});

test("refreshes are driven by requests: ETag, If-None-Match, objects cached by name", async () => {
  const p = fx.profiles.opencomputer;
  const { g, st, setNow, now } = gateFor(p, { extra: { nodeCrypto, refreshSeconds: 5 } });
  const req = () => g.decide({ method: "POST", path: "/v3/sessions", headers: new Headers({ Authorization: "Bearer " + p.keys.org }) });
  await req();
  const objects = st.requests.filter((r) => r.name.includes("/objects/")).length;
  assert.equal(st.requests.filter((r) => r.name.endsWith("/manifest")).length, 1);
  await req(); // within the interval: no poll
  assert.equal(st.requests.length, objects + 1);
  setNow(now() + 6000);
  await req();
  await g.refresh(); // let the poll the request started finish
  const polls = st.requests.filter((r) => r.name.endsWith("/manifest"));
  assert.ok(polls.length >= 2);
  assert.notEqual(polls[1].inm, "");
  assert.equal(st.requests.filter((r) => r.name.includes("/objects/")).length, objects, "objects fetched again");
  // A new version fetches only what it does not have.
  st.files = filesOf(fx.opencomputer.v2);
  assert.equal((await g.refresh()).version, 2);
});

test("forwarding: identity set, forged identity and the query credential removed; denials rendered", async () => {
  const p = fx.profiles.opencomputer;
  const { g } = gateFor(p, { extra: { nodeCrypto, upstream: "https://api.internal" } });
  const forged = Object.fromEntries(p.strip.map((n) => [n, "forged"]));
  const tok = p.tokens.t1;
  const r = new Request("https://edge.test/v3/sessions/sess_1/events?a=1&token=" + encodeURIComponent(tok) + "&b=%20&token=again", { headers: forged });
  const out = await g.handle(r);
  assert.equal(out.allow, true, JSON.stringify(out.decision));
  const u = new URL(out.request.url);
  assert.equal(u.origin, "https://api.internal");
  assert.equal(u.pathname, "/v3/sessions/sess_1/events");
  assert.equal(u.search, "?a=1&b=%20");
  for (const [name, value] of out.decision.identity) assert.equal(out.request.headers.get(name), value);
  for (const name of p.strip) {
    const v = out.request.headers.get(name);
    assert.ok(v === null || out.decision.identity.some(([n, val]) => n.toLowerCase() === name && val === v), name + ": " + v);
  }
  const denied = await g.handle(new Request("https://edge.test/v3/sessions", { method: "POST" }));
  assert.equal(denied.allow, false);
  assert.equal(denied.response.status, denied.decision.status);
  assert.equal(new Uint8Array(await denied.response.arrayBuffer()).length, denied.decision.body.length);
  const head = await g.handle(new Request("https://edge.test/v3/sessions", { method: "HEAD" }));
  assert.equal(head.response.body, null);
});

test("request parts: raw targets, absolute URLs, query stripping, manifest parsing", () => {
  const r = new Request("http://h.test/a/../b?x=1");
  assert.deepEqual(requestParts(r), { method: "GET", path: "/b", query: "x=1", origin: "http://h.test" });
  assert.equal(requestParts(r, "/a/../b?x=1").path, "/a/../b");
  assert.equal(requestParts(r, "http://other/a/./c?q").path, "/a/./c");
  assert.equal(stripQuery("a=1&token=x&b=2&to%6Ben=y&token", "token"), "a=1&b=2");
  assert.equal(stripQuery("a=1&tok+en=x", "tok en"), "a=1");
  const m = parseManifest(b64(fx.profiles.opencomputer.files["opencomputer/manifest"]));
  assert.equal(m.realm, "opencomputer");
  assert.equal(m.version, 1n);
  assert.ok(m.objects.length >= 2);
  assert.equal(parseManifest(new Uint8Array(10)), null);
});
