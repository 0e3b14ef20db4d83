// Benchmarks of the glue: decision cost (API key, client token first seen, client token cached)
// and cold start (compile, instantiate, first load), for the accelerated build with node:crypto,
// the accelerated build in the two-step WebCrypto mode, and the portable build; each reported
// with its ratio to the portable build of the same compiler, measured in the same run. With
// --workerd, the decisions are measured in workerd (Miniflare) too.
//
// The fixture comes from the Go side (it builds the modules and mints the tokens):
//   LATCHKEY_WORKER_BENCH=1 GOTOOLCHAIN=local go test -run TestBenchmarks -v ./edge/worker
// or, with a fixture kept by LATCHKEY_WORKER_FIXTURE_DIR=<dir> on that run:
//   node edge/worker/bench/bench.mjs <dir>/fixture.json [--workerd]
import * as nodeCrypto from "node:crypto";
import { readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { performance } from "node:perf_hooks";
import { createLatchkey, parseManifest } from "../latchkey.js";

const fx = JSON.parse(readFileSync(process.argv[2], "utf8"));
const withWorkerd = process.argv.includes("--workerd");
const B = fx.bench;
if (!B) throw new Error("the fixture has no bench section: write it with the Go test TestBenchmarks");
const b64 = (s) => new Uint8Array(Buffer.from(s, "base64"));
const files = Object.fromEntries(Object.entries(B.files).map(([k, v]) => [k, b64(v)]));
const manifest = files[B.realm + "/manifest"];
const objects = parseManifest(manifest).objects.map((o) => files[B.realm + "/objects/" + o.name]);
const quiet = () => {};

const configs = [];
for (const compiler of ["tinygo", "go"]) {
  if (!fx.modules["portable-" + compiler]) continue;
  configs.push(
    { name: `accel-${compiler} + node:crypto`, module: "accel-" + compiler, extra: { nodeCrypto }, crypto: "node", base: "portable-" + compiler },
    { name: `accel-${compiler} + two-step WebCrypto`, module: "accel-" + compiler, extra: {}, crypto: "webcrypto", base: "portable-" + compiler },
    { name: `portable-${compiler}`, module: "portable-" + compiler, extra: {}, crypto: "", base: "portable-" + compiler },
  );
}
const bytes = Object.fromEntries(Object.entries(fx.modules).map(([n, p]) => [n, readFileSync(p)]));

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const fmt = (x) => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));

function gateOf(module, extra) {
  return createLatchkey({ module, trustedKeys: B.trusted, realm: B.realm, clock: () => B.now * 1000, log: quiet, ...extra });
}

const keyParts = () => ({ method: "POST", path: "/v3/sessions", headers: new Headers({ Authorization: "Bearer " + B.key }) });
const tokParts = (t) => ({ method: "GET", path: "/v3/sessions/sess_1/events", headers: new Headers({ Authorization: "Bearer " + t }) });

// perOp returns microseconds per decision of n calls of fn.
async function perOp(fn, n) {
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const d = await fn(i);
    if (!d.allow) throw new Error("benchmark request denied: " + d.reason);
  }
  return ((performance.now() - t0) * 1000) / n;
}

async function decisions(cfg) {
  const module = new WebAssembly.Module(bytes[cfg.module]);
  const res = { key: [], first: [], cached: [] };
  const tokens = B.freshTokens;
  const per = Math.floor(tokens.length / 3);
  for (let rep = 0; rep < 3; rep++) {
    const g = gateOf(module, cfg.extra);
    const r = await g.load({ manifest, objects });
    if (r.status !== 0) throw new Error(cfg.name + ": load: " + r.error);
    await perOp(() => g.decide(keyParts()), 200); // warm-up
    res.key.push(await perOp(() => g.decide(keyParts()), 2000));
    // Fresh gates' token caches are empty: each of these tokens is seen for the first time.
    res.first.push(await perOp((i) => g.decide(tokParts(tokens[rep * per + i])), per));
    await g.decide(tokParts(tokens[0]));
    res.cached.push(await perOp(() => g.decide(tokParts(tokens[0])), 2000));
  }
  return { key: median(res.key), first: median(res.first), cached: median(res.cached) };
}

async function coldStart(cfg) {
  const xs = { compile: [], instantiate: [], load: [] };
  for (let rep = 0; rep < 5; rep++) {
    const t0 = performance.now();
    const module = await WebAssembly.compile(bytes[cfg.module]);
    const t1 = performance.now();
    const g = gateOf(module, cfg.extra);
    await g.decide({ method: "GET", path: "/" }); // instantiates (nothing loaded: a 503)
    const t2 = performance.now();
    const r = await g.load({ manifest, objects });
    const t3 = performance.now();
    if (r.status !== 0) throw new Error(cfg.name + ": load: " + r.error);
    xs.compile.push(t1 - t0);
    xs.instantiate.push(t2 - t1);
    xs.load.push(t3 - t2);
  }
  const m = { compile: median(xs.compile), instantiate: median(xs.instantiate), load: median(xs.load) };
  m.total = m.compile + m.instantiate + m.load;
  return m;
}

function table(title, rows, cols) {
  console.log("\n" + title);
  console.log(["config", ...cols.map((c) => c[1])].join(" | "));
  console.log(["---", ...cols.map(() => "---")].join(" | "));
  for (const r of rows) console.log([r.name, ...cols.map(([k]) => r[k])].join(" | "));
}

console.log(`latchkey worker glue benchmarks: Node ${process.version}, snapshot ${B.realm} (${manifest.length} B manifest, ${objects.reduce((a, o) => a + o.length, 0)} B objects), ${B.freshTokens.length} fresh tokens`);

console.log("\nModule sizes");
console.log("module | bytes | gzip -9");
console.log("--- | --- | ---");
for (const [n, b] of Object.entries(bytes)) console.log(`${n} | ${b.length} | ${gzipSync(b, { level: 9 }).length}`);

const dec = {}, cold = {};
// A first pass is thrown away: V8 compiles Wasm lazily with its baseline compiler and tiers
// up in the background, which on a busy machine can outlast a short measurement.
for (const cfg of configs) await decisions(cfg);
for (const cfg of configs) {
  dec[cfg.name] = await decisions(cfg);
  cold[cfg.name] = await coldStart(cfg);
}
const ratio = (x, base) => `${fmt(x)} µs (${(base / x).toFixed(2)}× portable)`;
table("Decisions in Node (µs per decision, median of 3 runs; ratio = portable time / this time)", configs.map((c) => {
  const d = dec[c.name], p = dec[configs.find((x) => x.module === c.base).name];
  return { name: c.name, key: ratio(d.key, p.key), first: ratio(d.first, p.first), cached: ratio(d.cached, p.cached) };
}), [["key", "API key"], ["first", "token, first sight"], ["cached", "token, cached"]]);
table("Cold start in Node (ms, median of 5; ratio = portable / this)", configs.map((c) => {
  const d = cold[c.name], p = cold[configs.find((x) => x.module === c.base).name];
  const r = (k) => `${fmt(d[k])} (${(p[k] / d[k]).toFixed(2)}×)`;
  return { name: c.name, compile: r("compile"), instantiate: r("instantiate"), load: r("load"), total: r("total") };
}), [["compile", "compile"], ["instantiate", "instantiate + _initialize"], ["load", "first load"], ["total", "total"]]);

if (withWorkerd) await workerd();

async function workerd() {
  const { join } = await import("node:path");
  const { newMiniflare, wasmEntry, workerRoot: root } = await import("../testhost/miniflare.mjs");
  const names = [...new Set(configs.map((c) => c.module))];
  const snapshot = JSON.stringify({
    realm: B.realm, now: B.now, trusted: B.trusted, key: B.key, tokens: B.freshTokens,
    manifest: Buffer.from(manifest).toString("base64"), objects: objects.map((o) => Buffer.from(o).toString("base64")),
  });
  const mf = newMiniflare({
    modules: [
      { type: "ESModule", path: join(root, "bench", "entry.js"), contents: wasmEntry(names, "benchWorker", "./bench-worker.js") },
      { type: "ESModule", path: join(root, "bench", "bench-worker.js") },
      { type: "ESModule", path: join(root, "latchkey.js") },
      ...names.map((n) => ({ type: "CompiledWasm", path: join(root, "bench", n + ".wasm"), contents: bytes[n] })),
    ],
    bindings: { SNAPSHOT: snapshot },
  });
  await mf.ready;
  const call = async (path, body) => {
    const r = await mf.dispatchFetch("http://bench" + path, body ? { method: "POST", body: JSON.stringify(body) } : {});
    const j = await r.json();
    if (!r.ok) throw new Error(path + ": " + JSON.stringify(j));
    return j;
  };
  // batch times a batch of n decisions minus an empty one (the request's own cost).
  const batch = async (kind, n, from) => {
    const t0 = performance.now();
    await call(`/run?kind=${kind}&n=0`);
    const t1 = performance.now();
    const j = await call(`/run?kind=${kind}&n=${n}&from=${from}`);
    const t2 = performance.now();
    if (j.allowed !== n) throw new Error(kind + ": only " + j.allowed + " of " + n + " allowed");
    return (((t2 - t1) - (t1 - t0)) * 1000) / n;
  };
  const res = {};
  const per = Math.floor(B.freshTokens.length / 3);
  for (const cfg of configs) {
    const xs = { key: [], first: [], cached: [] };
    for (let rep = 0; rep < 3; rep++) {
      await call("/setup", { module: cfg.module, crypto: cfg.crypto });
      await batch("key", 200, 0);
      xs.key.push(await batch("key", 2000, 0));
      xs.first.push(await batch("first", per, rep * per));
      await batch("cached", 10, 0);
      xs.cached.push(await batch("cached", 2000, 0));
    }
    res[cfg.name] = { key: median(xs.key), first: median(xs.first), cached: median(xs.cached) };
  }
  await mf.dispose();
  table("Decisions in workerd via Miniflare (µs per decision, batch minus empty request, median of 3; ratio = portable / this)", configs.map((c) => {
    const d = res[c.name], p = res[configs.find((x) => x.module === c.base).name];
    return { name: c.name, key: ratio(d.key, p.key), first: ratio(d.first, p.first), cached: ratio(d.cached, p.cached) };
  }), [["key", "API key"], ["first", "token, first sight"], ["cached", "token, cached"]]);
}
