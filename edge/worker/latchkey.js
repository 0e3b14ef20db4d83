// latchkey verifier glue for JavaScript runtimes with WebAssembly and fetch: Cloudflare Workers
// (workerd), Deno and Node. It hosts the latchkey verifier module (wasm/verifier, ABI.md):
// fetches the realm's signed snapshots, has the guest verify and load them, and decides each
// Request, returning either the Request to forward upstream or the denial Response.
//
// No dependencies and no runtime-specific imports: Node's node:crypto and node:wasi are used
// only when the caller passes them in. The glue never throws into the runtime: a bad request is
// a decision, a guest failure is a 503.

export const ABI_VERSION = 1;

// Bounds of the ABI encodings (wasm/verifier/abi/abi.go).
const MAX_FIELD = 16 << 10;
const MAX_REQUEST_HEADERS = 32;
const MAX_IDENTITY_HEADERS = 16;
const MAX_RESPONSE_HEADERS = 20;
const MAX_BODY = 64 << 10;
const MAX_NAMES = 64;
const MAX_TRUSTED_KEYS = 16;
const MAX_MANIFEST = 64 << 10;
const MAX_OBJECTS = 300;
const MAX_OBJECT = 256 << 20;
const MAX_LOAD = 1 << 30;

// Names of the Decision's reason and credential codes (policy.Reason, verifier.Credential) and
// of the LoadResult statuses (abi.Status).
export const REASONS = ["none", "missing", "invalid", "expired", "revoked", "scope", "session", "agent",
  "credential", "path", "budget", "suspended", "rate_limited", "unavailable"];
const CREDENTIALS = ["none", "key", "token"];
export const LOAD_STATUSES = ["loaded", "malformed", "magic", "version", "truncated", "corrupt", "digest",
  "signature", "rollback", "expired", "realm", "mismatch", "too_large", "invalid", "policy", "other"];
const STATUS_DIGEST = 6;

// The core's rendering of a 503 when no policy is at hand (policy.DefaultError): what a request
// gets when the guest cannot decide at all. A Go test checks these against the core.
export const UNAVAILABLE_STATUS = 503;
export const UNAVAILABLE_CONTENT_TYPE = "application/json";
export const UNAVAILABLE_BODY = '{"error":"unavailable","message":"The service is temporarily unavailable."}';

// Exports every verifier module has (kinds only: the JS API does not show signatures).
const EXPORTS = { memory: "memory", _initialize: "function", lk_abi_version: "function", lk_alloc: "function",
  lk_free: "function", lk_configure: "function", lk_load: "function", lk_decide: "function", lk_error: "function" };
const WASI = "wasi_snapshot_preview1";
const HOST = "latchkey";
const HOST_FUNCTIONS = ["sha256", "ed25519_verify", "p256_verify"];

// A replayed decision or load ends after this many guest calls; one signature check per token
// or manifest needs two.
const MAX_ROUNDS = 4;

export class LatchkeyError extends Error {
  constructor(message, options) {
    super(message, options);
    this.name = "LatchkeyError";
  }
}

// ---------------------------------------------------------------------------------------------
// Configuration

/**
 * createLatchkey returns a gate: one verifier instance, the snapshot it holds, and the
 * refresh schedule. Create it lazily inside a request handler (workerd forbids randomness,
 * which the guest's start-up needs, at global scope) and keep it at module scope.
 *
 * Options:
 *   module        WebAssembly.Module, or the module's bytes (not in workerd: it compiles no bytes)
 *   snapshotURL   base URL of the published layout (<base>/<realm>/manifest, …/objects/<name>)
 *   realm         the realm to serve
 *   trustedKeys   pinned manifest keys: "ed25519:<base64url>" / "es256:<base64url>", an array of
 *                 them, or one comma-separated string
 *   nodeCrypto    the node:crypto module: host crypto as synchronous imports (Node, Deno, and
 *                 workerd with nodejs_compat)
 *   subtle        a SubtleCrypto for the two-step mode (default globalThis.crypto.subtle), used
 *                 when an accelerated module is given no nodeCrypto
 *   wasi          () => a node:wasi WASI object (version "preview1"); default: the built-in shim
 *   upstream      origin to forward allowed requests to ("https://api.internal"); default: the
 *                 request's own URL
 *   refreshSeconds   how often a request triggers a manifest poll (default 10)
 *   retrySeconds     while nothing is loaded, how long a failed fetch is not retried (default 1)
 *   maxStalenessSeconds  503 once the snapshot held was issued longer ago (default 0: off)
 *   tokenCacheSize   verified-token cache entries (0: the guest's default 4096; < 0: off)
 *   clock         () => milliseconds since the epoch (default Date.now)
 *   fetch         the fetch used for snapshots and upstream (default globalThis.fetch)
 *   log           (level, message) => void; default console (warn and error only)
 */
export function createLatchkey(options) {
  return new Latchkey(options);
}

function parseOptions(o) {
  if (!o || typeof o !== "object") throw new LatchkeyError("latchkey: options are required");
  if (!o.module) throw new LatchkeyError("latchkey: option module (the verifier WebAssembly module) is required");
  const trusted = parseTrustedKeys(o.trustedKeys);
  const num = (name, def) => {
    const v = o[name] === undefined ? def : o[name];
    if (typeof v !== "number" || !Number.isFinite(v)) throw new LatchkeyError("latchkey: option " + name + " must be a number");
    return v;
  };
  let base = null;
  if (o.snapshotURL !== undefined) {
    base = String(o.snapshotURL).replace(/\/+$/, "");
    if (!/^https?:\/\//i.test(base)) throw new LatchkeyError("latchkey: option snapshotURL must be an http(s) URL");
    if (!validName(String(o.realm ?? ""))) throw new LatchkeyError("latchkey: option realm must be a name of [A-Za-z0-9._-] not starting with '.'");
  }
  let upstream = null;
  if (o.upstream !== undefined && o.upstream !== null && o.upstream !== "") {
    const m = /^(https?:\/\/[^/?#]+)\/?$/i.exec(String(o.upstream));
    if (!m) throw new LatchkeyError("latchkey: option upstream must be an origin such as https://api.internal");
    upstream = m[1];
  }
  // Called through a wrapper: workerd's fetch refuses to run with another object as `this`.
  const userFetch = o.fetch ?? globalThis.fetch;
  if (typeof userFetch !== "function") throw new LatchkeyError("latchkey: no fetch: pass option fetch");
  const fetchImpl = o.fetch ? (...a) => userFetch(...a) : (...a) => globalThis.fetch(...a);
  return {
    module: o.module,
    base,
    realm: o.realm === undefined ? null : String(o.realm),
    trusted,
    nodeCrypto: o.nodeCrypto ?? null,
    subtle: o.subtle ?? globalThis.crypto?.subtle ?? null,
    wasi: o.wasi ?? null,
    upstream,
    refreshMs: num("refreshSeconds", 10) * 1000,
    retryMs: num("retrySeconds", 1) * 1000,
    maxStaleness: Math.trunc(num("maxStalenessSeconds", 0)),
    tokenCacheSize: Math.trunc(num("tokenCacheSize", 0)),
    clock: o.clock ?? Date.now,
    fetch: fetchImpl,
    log: o.log ?? defaultLog,
  };
}

function defaultLog(level, message) {
  if (level === "error") console.error(message);
  else if (level === "warn") console.warn(message);
}

// parseTrustedKeys reads the pinned keys in controlplane/signer's text form.
export function parseTrustedKeys(v) {
  let list = v;
  if (typeof v === "string") list = v.split(",");
  if (!Array.isArray(list)) throw new LatchkeyError("latchkey: option trustedKeys is required (\"ed25519:<base64url>\", …)");
  const out = [];
  for (const raw of list) {
    const s = String(raw).trim();
    if (s === "") continue;
    let alg, rest;
    if (s.startsWith("ed25519:")) [alg, rest] = [1, s.slice(8)];
    else if (s.startsWith("es256:")) [alg, rest] = [2, s.slice(6)];
    else throw new LatchkeyError("latchkey: trusted key " + JSON.stringify(s) + ": want \"ed25519:<base64url>\" or \"es256:<base64url>\"");
    const pub = base64urlDecode(rest);
    if (!pub) throw new LatchkeyError("latchkey: trusted key " + JSON.stringify(s) + ": not unpadded base64url");
    if (alg === 1 && pub.length !== 32) throw new LatchkeyError("latchkey: trusted key " + JSON.stringify(s) + ": an Ed25519 public key is 32 bytes");
    if (alg === 2 && (pub.length !== 65 || pub[0] !== 4)) throw new LatchkeyError("latchkey: trusted key " + JSON.stringify(s) + ": a P-256 public key is a 65-byte uncompressed point");
    out.push({ alg, pub });
  }
  if (out.length === 0) throw new LatchkeyError("latchkey: option trustedKeys names no key");
  if (out.length > MAX_TRUSTED_KEYS) throw new LatchkeyError("latchkey: more than " + MAX_TRUSTED_KEYS + " trusted keys");
  return out;
}

const B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

// base64urlDecode decodes unpadded, canonical base64url; null when s is not.
function base64urlDecode(s) {
  if (s.length % 4 === 1) return null;
  const out = new Uint8Array(Math.floor(s.length * 3 / 4));
  let acc = 0, bits = 0, j = 0;
  for (let i = 0; i < s.length; i++) {
    const v = B64URL.indexOf(s[i]);
    if (v < 0) return null;
    acc = (acc << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[j++] = (acc >> bits) & 0xff;
    }
  }
  if ((acc & ((1 << bits) - 1)) !== 0) return null; // non-canonical trailing bits
  return out;
}

// validName is the publisher's name rule (edge/sync validName).
function validName(name) {
  if (name === "" || name.length > 1024) return false;
  for (const seg of name.split("/")) {
    if (!/^[A-Za-z0-9_-][A-Za-z0-9._-]*$/.test(seg)) return false;
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// Bytes

const utf8 = new TextEncoder();
const utf8d = new TextDecoder();

// byteString returns s's bytes for a ByteString (header values: one char per byte), else UTF-8.
function byteString(s) {
  const b = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c > 0xff) return utf8.encode(s);
    b[i] = c;
  }
  return b;
}

// latin1 returns the ByteString of bytes (the inverse of byteString for header values).
function latin1(b) {
  let s = "";
  for (let i = 0; i < b.length; i += 8192) s += String.fromCharCode.apply(null, b.subarray(i, i + 8192));
  return s;
}

function cut(b) {
  return b.length > MAX_FIELD ? b.subarray(0, MAX_FIELD) : b;
}

// Reader walks a guest encoding; the first failure sticks (abi.reader).
class Reader {
  constructor(b) {
    this.b = b;
    this.dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
    this.i = 0;
    this.bad = false;
  }
  need(n) {
    if (this.bad || this.i + n > this.b.length) {
      this.bad = true;
      return false;
    }
    return true;
  }
  u8() { if (!this.need(1)) return 0; return this.b[this.i++]; }
  u16() { if (!this.need(2)) return 0; const v = this.dv.getUint16(this.i, true); this.i += 2; return v; }
  u64() { if (!this.need(8)) return 0n; const v = this.dv.getBigUint64(this.i, true); this.i += 8; return v; }
  i64() { if (!this.need(8)) return 0n; const v = this.dv.getBigInt64(this.i, true); this.i += 8; return v; }
  bytes(n, max) {
    if (n > max) this.bad = true;
    if (!this.need(n)) return new Uint8Array(0);
    const v = this.b.subarray(this.i, this.i + n);
    this.i += n;
    return v;
  }
  bytes16(max) { return this.bytes(this.u16(), max); }
  bytes32(max) {
    if (!this.need(4)) return new Uint8Array(0);
    const n = this.dv.getUint32(this.i, true);
    this.i += 4;
    return this.bytes(n, max);
  }
  done() { return !this.bad && this.i === this.b.length; }
}

// decodeDecision decodes an abi.Decision (a copy, owned by the caller); null when malformed.
export function decodeDecision(b) {
  const r = new Reader(b);
  const version = r.u8(), flags = r.u8(), reason = r.u8(), cred = r.u8(), status = r.u16();
  const nid = r.u8(), nh = r.u8(), retry = r.i64();
  if (r.bad || version !== ABI_VERSION || (flags & ~7) !== 0 || reason >= REASONS.length || cred >= CREDENTIALS.length ||
    status < 100 || status > 599 || nid > MAX_IDENTITY_HEADERS || nh > MAX_RESPONSE_HEADERS) return null;
  const f = [];
  for (let i = 0; i < 7; i++) f.push(r.bytes16(MAX_FIELD));
  const identity = [], headers = [];
  for (let i = 0; i < nid; i++) identity.push([r.bytes16(MAX_FIELD), r.bytes16(MAX_FIELD)]);
  for (let i = 0; i < nh; i++) headers.push([r.bytes16(MAX_FIELD), r.bytes16(MAX_FIELD)]);
  const body = r.bytes32(MAX_BODY);
  if (!r.done()) return null;
  const s = (x) => utf8d.decode(x);
  return {
    allow: (flags & 1) !== 0,
    stripQueryToken: (flags & 2) !== 0,
    tokenCached: (flags & 4) !== 0,
    status,
    reason: REASONS[reason],
    credential: CREDENTIALS[cred],
    retryAfter: Number(retry),
    route: s(f[0]), org: s(f[1]), keyId: s(f[2]), keyType: s(f[3]), session: s(f[4]), agent: s(f[5]), scopes: s(f[6]),
    // Header names and values as ByteStrings, ready for Headers.
    identity: identity.map(([n, v]) => [latin1(n), latin1(v)]),
    headers: headers.map(([n, v]) => [latin1(n), latin1(v)]),
    body: body.slice(),
    rounds: 1,
  };
}

// decodeLoadResult decodes an abi.LoadResult; null when malformed.
export function decodeLoadResult(b) {
  const r = new Reader(b);
  const version = r.u8(), status = r.u8(), nh = r.u8(), ns = r.u8(), held = r.u64();
  if (r.bad || version !== ABI_VERSION || status >= LOAD_STATUSES.length || nh > MAX_NAMES || ns > MAX_NAMES) return null;
  const s = () => utf8d.decode(r.bytes16(MAX_FIELD));
  // Versions stay far below 2^53: a number is simpler for callers than a BigInt.
  const out = { status, statusName: LOAD_STATUSES[status], error: s(), version: Number(held), realm: s(), queryParam: s(), headers: [], strip: [] };
  for (let i = 0; i < nh; i++) out.headers.push(s());
  for (let i = 0; i < ns; i++) out.strip.push(s());
  if (!r.done()) return null;
  return out;
}

// Writer fills a buffer of a size computed beforehand.
class Writer {
  constructor(b) {
    this.b = b;
    this.dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
    this.i = 0;
  }
  u8(v) { this.b[this.i++] = v; }
  u16(v) { this.dv.setUint16(this.i, v, true); this.i += 2; }
  u32(v) { this.dv.setUint32(this.i, v, true); this.i += 4; }
  i64(v) { this.dv.setBigInt64(this.i, v, true); this.i += 8; }
  raw(b) { this.b.set(b, this.i); this.i += b.length; }
  str16(b) { this.u16(b.length); this.raw(b); }
  str32(b) { this.u32(b.length); this.raw(b); }
}

// requestLen is the size of an abi.Request's encoding.
function requestLen(q) {
  let n = 12 + 2 + q.method.length + 2 + q.path.length + 2 + (q.hasToken ? q.token.length : 0);
  for (const [name, value] of q.headers) n += 4 + name.length + value.length;
  return n;
}

function writeRequest(w, q) {
  w.u8(ABI_VERSION);
  w.u8(q.hasToken ? 1 : 0);
  w.u16(q.headers.length);
  w.i64(q.now);
  w.str16(q.method);
  w.str16(q.path);
  w.str16(q.hasToken ? q.token : new Uint8Array(0));
  for (const [name, value] of q.headers) {
    w.str16(name);
    w.str16(value);
  }
}

// encodeRequest returns the abi.Request encoding of q (for tests; the glue writes in place).
export function encodeRequest(q) {
  const b = new Uint8Array(requestLen(q));
  writeRequest(new Writer(b), q);
  return b;
}

function loadLen(l) {
  let n = 13;
  for (const k of l.trusted) n += 2 + k.pub.length;
  n += 4 + l.manifest.length;
  for (const o of l.objects) n += 4 + o.length;
  if (l.delta) n += 4 + l.delta.length;
  return n;
}

function writeLoad(w, l) {
  w.u8(ABI_VERSION);
  w.u8(l.delta ? 1 : 0);
  w.u8(l.trusted.length);
  w.u16(l.objects.length);
  w.i64(l.now);
  for (const k of l.trusted) {
    w.u8(k.alg);
    w.u8(k.pub.length);
    w.raw(k.pub);
  }
  w.str32(l.manifest);
  for (const o of l.objects) w.str32(o);
  if (l.delta) w.str32(l.delta);
}

// nanos converts the clock's milliseconds to Unix nanoseconds (i64).
function nanos(ms) {
  const whole = Math.floor(ms);
  return BigInt(whole) * 1000000n + BigInt(Math.round((ms - whole) * 1e6));
}

// parseManifest reads what the glue needs from a manifest before the guest verifies it: the
// realm and the names of the objects to fetch (SPEC.md §4.3). Nothing here is trusted: the
// guest checks the signature, and every object's size and digest, before using any of it.
export function parseManifest(m) {
  if (m.length < 72 || m.length > MAX_MANIFEST) return null;
  const r = new Reader(m.subarray(72));
  r.u16();
  const realm = utf8d.decode(r.bytes(r.u8(), 255));
  const version = r.u64();
  r.u64(); r.i64(); r.i64();
  const n = r.u16();
  if (n > MAX_OBJECTS) return null;
  const ref = () => {
    const name = utf8d.decode(r.bytes(r.u8(), 128));
    const size = r.u64();
    r.bytes(32, 32);
    return { name, size };
  };
  const objects = [];
  for (let i = 0; i < n && !r.bad; i++) objects.push(ref());
  const hasDelta = r.u8();
  const delta = hasDelta === 1 ? ref() : null;
  if (!r.done() || hasDelta > 1) return null;
  for (const o of delta ? [...objects, delta] : objects) {
    if (!validName(o.name) || o.name.includes("/") || o.size > BigInt(MAX_OBJECT)) return null;
  }
  return { realm, version, objects, delta };
}

// ---------------------------------------------------------------------------------------------
// SHA-256 (FIPS 180-4), for the two-step mode: WebCrypto only hashes asynchronously, and a hash
// is not a check the guest can be told "failed" and asked again (see TwoStepCrypto).

const SHA_K = new Int32Array(64);
const SHA_H = new Int32Array(8);
{
  // The constants are the first 32 bits of the fractional parts of the square roots (H) and
  // cube roots (K) of the first primes.
  const primes = [];
  for (let n = 2; primes.length < 64; n++) {
    if (primes.every((p) => n % p !== 0)) primes.push(n);
  }
  const frac32 = (x) => Math.floor((x - Math.floor(x)) * 4294967296) | 0;
  for (let i = 0; i < 64; i++) SHA_K[i] = frac32(Math.cbrt(primes[i]));
  for (let i = 0; i < 8; i++) SHA_H[i] = frac32(Math.sqrt(primes[i]));
}

const shaW = new Int32Array(64);

function shaBlock(h, b, off) {
  const w = shaW;
  for (let i = 0; i < 16; i++) {
    const j = off + 4 * i;
    w[i] = (b[j] << 24) | (b[j + 1] << 16) | (b[j + 2] << 8) | b[j + 3];
  }
  for (let i = 16; i < 64; i++) {
    const x = w[i - 15], y = w[i - 2];
    const s0 = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3);
    const s1 = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10);
    w[i] = (w[i - 16] + s0 + w[i - 7] + s1) | 0;
  }
  let a = h[0], bb = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
  for (let i = 0; i < 64; i++) {
    const S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
    const t1 = (hh + S1 + ((e & f) ^ (~e & g)) + SHA_K[i] + w[i]) | 0;
    const S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
    const t2 = (S0 + ((a & bb) ^ (a & c) ^ (bb & c))) | 0;
    hh = g; g = f; f = e; e = (d + t1) | 0; d = c; c = bb; bb = a; a = (t1 + t2) | 0;
  }
  h[0] = (h[0] + a) | 0; h[1] = (h[1] + bb) | 0; h[2] = (h[2] + c) | 0; h[3] = (h[3] + d) | 0;
  h[4] = (h[4] + e) | 0; h[5] = (h[5] + f) | 0; h[6] = (h[6] + g) | 0; h[7] = (h[7] + hh) | 0;
}

/** sha256 returns the SHA-256 digest of data (a Uint8Array). */
export function sha256(data) {
  const h = Int32Array.from(SHA_H);
  const n = data.length;
  const full = n - (n % 64);
  for (let off = 0; off < full; off += 64) shaBlock(h, data, off);
  const tail = new Uint8Array(n % 64 < 56 ? 64 : 128);
  tail.set(data.subarray(full));
  tail[n - full] = 0x80;
  const dv = new DataView(tail.buffer);
  dv.setUint32(tail.length - 8, Math.floor(n / 0x20000000));
  dv.setUint32(tail.length - 4, (n << 3) >>> 0);
  for (let off = 0; off < tail.length; off += 64) shaBlock(h, tail, off);
  const out = new Uint8Array(32);
  const ov = new DataView(out.buffer);
  for (let i = 0; i < 8; i++) ov.setInt32(4 * i, h[i]);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Host crypto for accelerated modules (the "latchkey" import module, ABI.md)

// DER prefixes that make a raw public key a SubjectPublicKeyInfo (RFC 8410, RFC 5480).
const SPKI_ED25519 = Uint8Array.of(0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00);
const SPKI_P256 = Uint8Array.of(0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01,
  0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00);

function concat(a, b) {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

// A small cache of parsed public keys: a realm has a handful of signing keys.
class KeyCache {
  constructor(size) {
    this.size = size;
    this.map = new Map();
  }
  get(k) { return this.map.get(k); }
  set(k, v) {
    if (this.map.size >= this.size) this.map.delete(this.map.keys().next().value);
    this.map.set(k, v);
  }
}

// Arguments of a verify import, read from guest memory; null when out of range or of the
// wrong size (the guest checks sizes before calling; a verify with bad input is 0).
function verifyArgs(mem, alg, pp, pl, mp, ml, sp, sl) {
  const b = new Uint8Array(mem.buffer);
  if (pp + pl > b.length || mp + ml > b.length || sp + sl > b.length) return null;
  if (sl !== 64 || pl !== (alg === "ed25519" ? 32 : 65)) return null;
  return { pub: b.subarray(pp, pp + pl), msg: b.subarray(mp, mp + ml), sig: b.subarray(sp, sp + sl) };
}

// NodeCrypto answers the imports synchronously with node:crypto (OpenSSL in Node and Deno,
// BoringSSL in workerd).
export class NodeCrypto {
  constructor(nc) {
    if (typeof nc?.createHash !== "function" || typeof nc.verify !== "function" || typeof nc.createPublicKey !== "function") {
      throw new LatchkeyError("latchkey: option nodeCrypto must be the node:crypto module (createHash, createPublicKey, verify)");
    }
    this.nc = nc;
    this.keys = new KeyCache(32);
    this.mem = null;
  }
  key(alg, pub) {
    const id = alg + latin1(pub);
    let k = this.keys.get(id);
    if (k === undefined) {
      try {
        k = this.nc.createPublicKey({ key: concat(alg === "ed25519" ? SPKI_ED25519 : SPKI_P256, pub), format: "der", type: "spki" });
      } catch {
        k = null; // not a key (a point off the curve): nothing verifies under it
      }
      this.keys.set(id, k);
    }
    return k;
  }
  verify(alg, a) {
    if (!a) return 0;
    const k = this.key(alg, a.pub);
    if (!k) return 0;
    try {
      return (alg === "ed25519" ? this.nc.verify(null, a.msg, k, a.sig)
        : this.nc.verify("sha256", a.msg, { key: k, dsaEncoding: "ieee-p1363" }, a.sig)) ? 1 : 0;
    } catch {
      return 0;
    }
  }
  imports() {
    return {
      sha256: (p, n, out) => {
        const b = new Uint8Array(this.mem.buffer);
        p >>>= 0; n >>>= 0; out >>>= 0;
        if (p + n > b.length || out + 32 > b.length) throw new LatchkeyError("wasm: latchkey.sha256: pointer out of range");
        b.set(this.nc.createHash("sha256").update(b.subarray(p, p + n)).digest(), out);
      },
      ed25519_verify: (...a) => this.verify("ed25519", verifyArgs(this.mem, "ed25519", ...a.map((x) => x >>> 0))),
      p256_verify: (...a) => this.verify("p256", verifyArgs(this.mem, "p256", ...a.map((x) => x >>> 0))),
    };
  }
}

// TwoStepCrypto answers the imports for runtimes whose only crypto is WebCrypto, which
// verifies asynchronously while a guest call is synchronous.
//
// A verify import answers from a memo of results already computed. On a miss it records the
// check as pending and answers 0 ("invalid"); after the guest call returns, the glue computes
// the pending checks with crypto.subtle, memoizes them, and calls the guest again, until a call
// records nothing pending: only that call's result is used (Latchkey#replay).
//
// Why the discarded calls change nothing. A check answered 0 is a failure, and in the core a
// failed signature check ends the operation before any state changes (shared/verifier,
// engine.go): decideToken denies on VerifySignature's error before the token cache insert and
// before authorize takes a rate-bucket token; decideKey verifies no signature; a load whose
// manifest signature fails (snapshot.VerifyManifest) is refused and the held snapshot stays
// (ABI.md, lk_load). The only other thing a discarded call touches is the token cache's
// recency order on a lookup that the replay repeats. So the replayed call runs in the state the
// first one started from, with real answers: the decision is the one synchronous crypto gives.
//
// Hashes are not deferred: a zero digest is not a failure the core stops at. The revocation
// lists are looked up by SHA-256 of the token id and session, after the token cache insert and
// before the rate bucket; a fake digest would find nothing revoked, let the discarded call take
// a rate-bucket token, and the replay take a second. So sha256 is answered synchronously: with
// the digests of the snapshot objects computed beforehand by crypto.subtle during a load, and
// with the JS implementation above otherwise (keys, token ids: tens of bytes).
export class TwoStepCrypto {
  constructor(subtle, log) {
    if (typeof subtle?.verify !== "function") {
      throw new LatchkeyError("latchkey: an accelerated module needs host crypto: pass nodeCrypto (node:crypto), or run where crypto.subtle exists, or use the portable module");
    }
    this.subtle = subtle;
    this.log = log;
    this.mem = null;
    this.memo = new Map(); // check → true/false
    this.memoChars = 0;
    this.pending = new Map(); // check → {alg, pub, msg, sig}
    this.seeds = null; // during a load: [{addr, bytes, digest}]
    this.keys = new KeyCache(32);
    this.edAlg = null; // the Ed25519 algorithm object this runtime's WebCrypto accepts
  }
  static MAX_MEMO = 4096;
  static MAX_MEMO_CHARS = 8 << 20;

  remember(id, ok) {
    while (this.memo.size >= TwoStepCrypto.MAX_MEMO || (this.memo.size > 0 && this.memoChars + id.length > TwoStepCrypto.MAX_MEMO_CHARS)) {
      const old = this.memo.keys().next().value;
      this.memo.delete(old);
      this.memoChars -= old.length;
    }
    this.memo.set(id, ok);
    this.memoChars += id.length;
  }
  verify(alg, a) {
    if (!a) return 0;
    const id = alg[0] + latin1(a.pub) + latin1(a.sig) + latin1(a.msg);
    const ok = this.memo.get(id);
    if (ok !== undefined) return ok ? 1 : 0;
    if (!this.pending.has(id)) this.pending.set(id, { alg, pub: a.pub.slice(), msg: a.msg.slice(), sig: a.sig.slice() });
    return 0;
  }
  digest(b) {
    if (this.seeds) {
      for (const s of this.seeds) {
        if (s.bytes.length === b.length && equalBytes(s.bytes, b)) return s.digest;
      }
    }
    return sha256(b);
  }
  imports() {
    return {
      sha256: (p, n, out) => {
        const b = new Uint8Array(this.mem.buffer);
        p >>>= 0; n >>>= 0; out >>>= 0;
        if (p + n > b.length || out + 32 > b.length) throw new LatchkeyError("wasm: latchkey.sha256: pointer out of range");
        b.set(this.digest(b.subarray(p, p + n)), out);
      },
      ed25519_verify: (...a) => this.verify("ed25519", verifyArgs(this.mem, "ed25519", ...a.map((x) => x >>> 0))),
      p256_verify: (...a) => this.verify("p256", verifyArgs(this.mem, "p256", ...a.map((x) => x >>> 0))),
    };
  }
  // seed computes the digests of the byte arrays a load will ask for.
  async seed(list) {
    const seeds = [];
    for (const bytes of list) {
      seeds.push({ bytes, digest: new Uint8Array(await this.subtle.digest("SHA-256", bytes)) });
    }
    return seeds;
  }
  // resolve computes the pending checks and memoizes them.
  async resolve() {
    const ops = [...this.pending];
    this.pending.clear();
    await Promise.all(ops.map(async ([id, op]) => this.remember(id, await this.check(op))));
  }
  async check(op) {
    try {
      const key = await this.importKey(op.alg, op.pub);
      if (!key) return false;
      const alg = op.alg === "ed25519" ? key.algorithm : { name: "ECDSA", hash: "SHA-256" };
      return await this.subtle.verify(alg, key, op.sig, op.msg);
    } catch (e) {
      this.log("warn", "latchkey: WebCrypto verify failed: " + e);
      return false;
    }
  }
  async importKey(alg, pub) {
    const id = alg + latin1(pub);
    let k = this.keys.get(id);
    if (k === undefined) {
      k = this.doImport(alg, pub);
      this.keys.set(id, k);
    }
    return k;
  }
  async doImport(alg, pub) {
    if (alg === "p256") {
      try {
        return await this.subtle.importKey("raw", pub, { name: "ECDSA", namedCurve: "P-256" }, false, ["verify"]);
      } catch {
        return null;
      }
    }
    // Standard "Ed25519" where the runtime has it; workerd's older name otherwise.
    const candidates = this.edAlg ? [this.edAlg] : [{ name: "Ed25519" }, { name: "NODE-ED25519", namedCurve: "NODE-ED25519" }];
    for (const a of candidates) {
      try {
        const k = await this.subtle.importKey("raw", pub, a, false, ["verify"]);
        this.edAlg = a;
        return k;
      } catch (e) {
        if (e?.name !== "NotSupportedError") return null;
      }
    }
    return null;
  }
}

function equalBytes(a, b) {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

// ---------------------------------------------------------------------------------------------
// WASI preview 1: the few calls a reactor built by TinyGo or standard Go makes. No files, no
// arguments, no environment; stdout and stderr go to the log.

const ERRNO_SUCCESS = 0, ERRNO_BADF = 8, ERRNO_INVAL = 28, ERRNO_IO = 29, ERRNO_NOSYS = 52, ERRNO_SPIPE = 70;

export class WasiExit extends Error {
  constructor(code) {
    super("wasm: the guest exited with code " + code);
    this.name = "WasiExit";
    this.code = code;
  }
}

// WasiShim is the default WASI provider.
export class WasiShim {
  constructor(log) {
    this.log = log;
    this.mem = null;
    this.lines = { 1: "", 2: "" };
    this.tail = "";
  }
  dv() { return new DataView(this.mem.buffer); }
  // imports returns every WASI function the module imports: the ones below, and ENOSYS for the
  // rest (a guest that needs more than this fails loudly, not silently).
  imports(module) {
    const impl = {
      args_sizes_get: (argc, size) => this.zero2(argc, size),
      environ_sizes_get: (n, size) => this.zero2(n, size),
      args_get: () => ERRNO_SUCCESS,
      environ_get: () => ERRNO_SUCCESS,
      clock_time_get: (id, _precision, out) => {
        let t;
        if (id === 0) t = nanos(Date.now());
        else if (id === 1 || id === 2 || id === 3) t = nanos(globalThis.performance?.now?.() ?? Date.now());
        else return ERRNO_INVAL;
        this.dv().setBigUint64(out >>> 0, t, true);
        return ERRNO_SUCCESS;
      },
      random_get: (p, n) => {
        p >>>= 0; n >>>= 0;
        const b = new Uint8Array(this.mem.buffer, p, n);
        try {
          for (let i = 0; i < n; i += 65536) crypto.getRandomValues(b.subarray(i, Math.min(n, i + 65536)));
        } catch (e) {
          this.log("error", "wasm: random_get: " + e);
          return ERRNO_IO;
        }
        return ERRNO_SUCCESS;
      },
      fd_write: (fd, iovs, n, written) => {
        if (fd !== 1 && fd !== 2) return ERRNO_BADF;
        const dv = this.dv();
        let total = 0;
        for (let i = 0; i < n; i++) {
          const iov = (iovs >>> 0) + 8 * i;
          const p = dv.getUint32(iov, true), len = dv.getUint32(iov + 4, true);
          this.write(fd, new Uint8Array(this.mem.buffer, p, len));
          total += len;
        }
        dv.setUint32(written >>> 0, total, true);
        return ERRNO_SUCCESS;
      },
      fd_close: (fd) => (fd <= 2 ? ERRNO_SUCCESS : ERRNO_BADF),
      fd_seek: (fd) => (fd <= 2 ? ERRNO_SPIPE : ERRNO_BADF),
      fd_fdstat_get: (fd, out) => {
        if (fd > 2) return ERRNO_BADF;
        const dv = this.dv();
        out >>>= 0;
        dv.setUint8(out, 2); // character device
        dv.setUint16(out + 2, 0, true);
        dv.setBigUint64(out + 8, 0xffffffffn, true);
        dv.setBigUint64(out + 16, 0n, true);
        return ERRNO_SUCCESS;
      },
      fd_fdstat_set_flags: (fd) => (fd <= 2 ? ERRNO_SUCCESS : ERRNO_BADF),
      fd_prestat_get: () => ERRNO_BADF, // no preopened directories
      fd_prestat_dir_name: () => ERRNO_BADF,
      sched_yield: () => ERRNO_SUCCESS,
      // A worker cannot block: every subscription is reported ready at once (a guest that
      // sleeps would spin; the verifier never sleeps).
      poll_oneoff: (inp, out, n, nevents) => {
        const dv = this.dv();
        for (let i = 0; i < n; i++) {
          const s = inp + 48 * i, e = out + 32 * i;
          dv.setBigUint64(e, dv.getBigUint64(s, true), true);
          const tag = dv.getUint8(s + 8);
          dv.setUint16(e + 8, tag === 0 ? ERRNO_SUCCESS : ERRNO_BADF, true);
          dv.setUint8(e + 10, tag);
          dv.setBigUint64(e + 16, 0n, true);
          dv.setUint16(e + 24, 0, true);
        }
        dv.setUint32(nevents >>> 0, n, true);
        return ERRNO_SUCCESS;
      },
      proc_exit: (code) => {
        throw new WasiExit(code);
      },
    };
    const out = {};
    for (const imp of WebAssembly.Module.imports(module)) {
      if (imp.module === WASI && imp.kind === "function") out[imp.name] = impl[imp.name] ?? (() => ERRNO_NOSYS);
    }
    return out;
  }
  zero2(a, b) {
    const dv = this.dv();
    dv.setUint32(a >>> 0, 0, true);
    dv.setUint32(b >>> 0, 0, true);
    return ERRNO_SUCCESS;
  }
  write(fd, bytes) {
    const text = utf8d.decode(bytes);
    this.tail = (this.tail + text).slice(-2048);
    const lines = (this.lines[fd] + text).split("\n");
    this.lines[fd] = lines.pop();
    for (const l of lines) this.log(fd === 2 ? "warn" : "info", "wasm: guest: " + l);
  }
}

// ---------------------------------------------------------------------------------------------
// One guest instance

// checkModule returns whether the module is accelerated, or throws naming what is wrong.
export function checkModule(module) {
  let accel = false;
  for (const imp of WebAssembly.Module.imports(module)) {
    if (imp.module === WASI) continue;
    if (imp.module === HOST && HOST_FUNCTIONS.includes(imp.name) && imp.kind === "function") {
      accel = true;
      continue;
    }
    throw new LatchkeyError("wasm: module imports " + imp.module + "." + imp.name + ", which this host does not provide");
  }
  const have = new Map(WebAssembly.Module.exports(module).map((e) => [e.name, e.kind]));
  const missing = Object.keys(EXPORTS).filter((n) => have.get(n) !== EXPORTS[n]);
  if (missing.length > 0) throw new LatchkeyError("wasm: not a latchkey verifier module: missing exports " + missing.sort().join(", "));
  return accel;
}

// Guest wraps one instance: calls into it, and copies results out. Any failure of a call (a
// trap, a malformed result) marks it broken; the gate then makes another.
class Guest {
  static async create(module, accel, cfg, crypto) {
    const g = new Guest();
    const imports = {};
    let wasi = null;
    if (cfg.wasi) {
      wasi = cfg.wasi();
      imports[WASI] = wasi.wasiImport;
    } else {
      g.shim = new WasiShim(cfg.log);
      imports[WASI] = g.shim.imports(module);
    }
    if (accel) imports[HOST] = crypto.imports();
    const instance = await WebAssembly.instantiate(module, imports);
    g.x = instance.exports;
    g.mem = g.x.memory;
    if (g.shim) g.shim.mem = g.mem;
    crypto && (crypto.mem = g.mem);
    g.call(() => (wasi ? wasi.initialize(instance) : g.x._initialize()), "_initialize");
    const v = g.call(() => g.x.lk_abi_version(), "lk_abi_version") >>> 0;
    if (v !== ABI_VERSION) {
      throw new LatchkeyError("wasm: module speaks ABI version " + v + ", this glue " + ABI_VERSION);
    }
    g.call(() => g.x.lk_configure(BigInt(cfg.maxStaleness), cfg.tokenCacheSize | 0), "lk_configure");
    g.reqPtr = 0;
    g.reqCap = 0;
    g.grow(4096);
    return g;
  }
  call(fn, name) {
    if (this.broken) throw new LatchkeyError("wasm: instance is broken");
    try {
      return fn();
    } catch (e) {
      this.broken = true;
      const out = this.shim?.tail ? " (guest output: " + this.shim.tail.trim() + ")" : "";
      throw new LatchkeyError("wasm: " + name + ": " + (e?.message ?? e) + out, { cause: e });
    }
  }
  bytes() { return new Uint8Array(this.mem.buffer); }
  alloc(n) {
    const p = this.call(() => this.x.lk_alloc(n), "lk_alloc") >>> 0;
    if (p === 0 || p + n > this.mem.buffer.byteLength) {
      this.broken = true;
      throw new LatchkeyError("wasm: lk_alloc refused " + n + " bytes");
    }
    return p;
  }
  grow(n) {
    if (this.reqPtr !== 0) this.call(() => this.x.lk_free(this.reqPtr), "lk_free");
    this.reqPtr = 0;
    this.reqPtr = this.alloc(n);
    this.reqCap = n;
  }
  // result copies the bytes a packed (address << 32 | length) result names.
  result(packed, name) {
    const v = BigInt.asUintN(64, BigInt(packed));
    const p = Number(v >> 32n), n = Number(v & 0xffffffffn);
    const b = this.bytes();
    if (v === 0n || p + n > b.length) {
      this.broken = true;
      throw new LatchkeyError("wasm: " + name + " returned " + (v === 0n ? "no result" : "an out-of-range result"));
    }
    return b.slice(p, p + n);
  }
  decide(q) {
    const n = requestLen(q);
    if (n > this.reqCap) this.grow(Math.max(n, 2 * this.reqCap));
    writeRequest(new Writer(this.bytes().subarray(this.reqPtr, this.reqPtr + n)), q);
    const packed = this.call(() => this.x.lk_decide(this.reqPtr, n), "lk_decide");
    if (BigInt(packed) === 0n) {
      // A request the guest calls malformed is a host bug: the glue encodes every request.
      let why = "";
      try {
        why = utf8d.decode(this.result(this.call(() => this.x.lk_error(), "lk_error"), "lk_error"));
      } catch (e) {
        why = String(e?.message ?? e);
      }
      this.broken = true;
      throw new LatchkeyError("wasm: lk_decide refused the request: " + why);
    }
    const d = decodeDecision(this.result(packed, "lk_decide"));
    if (!d) {
      this.broken = true;
      throw new LatchkeyError("wasm: lk_decide returned a malformed decision");
    }
    return d;
  }
  load(l) {
    const n = loadLen(l);
    if (n > MAX_LOAD) return { status: 12, statusName: "too_large", error: "latchkey: snapshot too large to load", version: null };
    const p = this.alloc(n);
    writeLoad(new Writer(this.bytes().subarray(p, p + n)), l);
    const r = decodeLoadResult(this.result(this.call(() => this.x.lk_load(p, n), "lk_load"), "lk_load"));
    if (!r) {
      this.broken = true;
      throw new LatchkeyError("wasm: lk_load returned a malformed result");
    }
    return r;
  }
}

// ---------------------------------------------------------------------------------------------
// The gate

class Latchkey {
  #cfg;
  #module = null; // Promise<{module, accel}>
  #crypto = null; // NodeCrypto | TwoStepCrypto | null (portable)
  #guest = null;
  #creating = null;
  #snap = null; // the snapshot loaded last: {manifest, objects, delta, info}
  #objects = new Map(); // fetched objects by name
  #etag = "";
  #lastPoll = -Infinity;
  #lastFailure = -Infinity;
  #refreshing = null;
  #status = { version: 0, realm: "", lastError: "", lastLoadStatus: "", refused: 0, loadedAt: 0, polls: 0 };

  constructor(options) {
    this.#cfg = parseOptions(options);
  }

  /** The crypto mode in use: "node", "two-step" or "portable" (after the module compiled). */
  async mode() {
    const { accel } = await this.#compiled();
    if (!accel) return "portable";
    return this.#crypto instanceof NodeCrypto ? "node" : "two-step";
  }

  /** status describes the snapshot held and the last refresh. */
  status() {
    const info = this.#snap?.info;
    return { ...this.#status, version: info ? info.version : 0, realm: info?.realm ?? "", queryParam: info?.queryParam ?? "" };
  }

  /**
   * handle decides request. It resolves to {allow: true, request, decision} with the Request
   * to send upstream, or {allow: false, response, decision}; it never rejects.
   * opts.target: the request-target exactly as received ("/a/b?c"), when the server has it
   *   (Node's http: req.url); without it the path is request.url's, which the Fetch URL
   *   parser has already normalized.
   * opts.waitUntil: the runtime's ctx.waitUntil, so that a refresh outlives the response.
   */
  async handle(request, opts = {}) {
    let d;
    try {
      await this.#ready(opts.waitUntil);
      const parts = requestParts(request, opts.target);
      d = await this.#decideParts(parts, request.headers);
      if (d.allow) return { allow: true, decision: d, request: this.#forward(request, parts, d) };
      return { allow: false, decision: d, response: denial(d, request.method) };
    } catch (e) {
      this.#cfg.log("error", "latchkey: request failed closed: " + (e?.message ?? e));
      d = unavailableDecision();
      return { allow: false, decision: d, response: denial(d, request?.method) };
    }
  }

  /** fetch decides request and, when allowed, fetches it upstream: a Worker's whole handler. */
  async fetch(request, ctx) {
    const out = await this.handle(request, { waitUntil: ctx?.waitUntil?.bind(ctx), target: ctx?.target });
    if (!out.allow) return out.response;
    try {
      return await this.#cfg.fetch(out.request);
    } catch (e) {
      this.#cfg.log("error", "latchkey: upstream fetch failed: " + (e?.message ?? e));
      return new Response("upstream unreachable\n", { status: 502 });
    }
  }

  /**
   * decide decides a request given as parts: {method, path (as received), query (raw, without
   * "?"), headers: Headers}. For tests and custom hosts; handle is the usual entry.
   */
  async decide(parts) {
    try {
      await this.#ready();
      return await this.#decideParts({ method: parts.method, path: parts.path, query: parts.query ?? "" }, parts.headers ?? new Headers());
    } catch (e) {
      this.#cfg.log("error", "latchkey: decision failed closed: " + (e?.message ?? e));
      return unavailableDecision();
    }
  }

  /**
   * refresh polls the snapshot store once now and loads what changed. It resolves to the
   * status; it never rejects (the error is in status().lastError).
   */
  async refresh() {
    if (!this.#refreshing) {
      this.#refreshing = this.#poll().catch((e) => this.#fail(e)).finally(() => {
        this.#refreshing = null;
      });
    }
    await this.#refreshing;
    return this.status();
  }

  /**
   * load loads a snapshot given directly ({manifest, objects, delta}: Uint8Arrays, objects in
   * manifest order), for hosts without a snapshot store. It resolves to the load result.
   */
  async load(snapshot) {
    try {
      await this.#instance();
      return await this.#load({ manifest: snapshot.manifest, objects: snapshot.objects, delta: snapshot.delta ?? null });
    } catch (e) {
      this.#fail(e);
      return { status: 15, statusName: "other", error: String(e?.message ?? e) };
    }
  }

  // --- internals

  async #compiled() {
    if (!this.#module) {
      this.#module = (async () => {
        let m = await this.#cfg.module;
        if (!(m instanceof WebAssembly.Module)) {
          if (!(m instanceof ArrayBuffer || ArrayBuffer.isView(m))) {
            throw new LatchkeyError("latchkey: option module must be a WebAssembly.Module or the module's bytes");
          }
          m = await WebAssembly.compile(m);
        }
        const accel = checkModule(m);
        if (accel) {
          this.#crypto = this.#cfg.nodeCrypto ? new NodeCrypto(this.#cfg.nodeCrypto) : new TwoStepCrypto(this.#cfg.subtle, this.#cfg.log);
        }
        return { module: m, accel };
      })();
      this.#module.catch(() => {
        this.#module = null; // a bad option stays bad, but a transient failure may not
      });
    }
    return this.#module;
  }

  // #instance returns a working guest, making one (and reloading the snapshot held) if needed.
  async #instance() {
    if (this.#guest && !this.#guest.broken) return this.#guest;
    if (!this.#creating) {
      this.#creating = (async () => {
        this.#guest = null;
        const { module, accel } = await this.#compiled();
        const g = await Guest.create(module, accel, this.#cfg, this.#crypto);
        this.#guest = g;
        if (this.#snap) {
          // A new instance holds nothing: give it the snapshot the old one held, which also
          // restores the version rollback is judged against.
          const r = await this.#loadInto(this.#snap);
          if (r.status !== 0) this.#cfg.log("warn", "latchkey: the snapshot held was refused by a new instance: " + r.error);
        }
        return g;
      })().finally(() => {
        this.#creating = null;
      });
    }
    return this.#creating;
  }

  async #ready(waitUntil) {
    await this.#instance();
    if (this.#cfg.base === null) return;
    const now = this.#cfg.clock();
    if (!this.#snap) {
      // Nothing to serve from: wait for a poll, unless one just failed (a store outage must
      // not turn every request into a fetch).
      if (this.#refreshing || now - this.#lastFailure >= this.#cfg.retryMs) await this.refresh();
      return;
    }
    if (now - this.#lastPoll >= this.#cfg.refreshMs && !this.#refreshing) {
      const p = this.refresh();
      if (waitUntil) waitUntil(p);
    }
  }

  #fail(e) {
    this.#lastFailure = this.#cfg.clock();
    this.#status.lastError = String(e?.message ?? e);
    this.#cfg.log("warn", "latchkey: snapshot refresh failed; keeping the snapshot held: " + this.#status.lastError);
  }

  async #get(url, etag) {
    const headers = etag ? { "If-None-Match": etag } : {};
    const r = await this.#cfg.fetch(url, { headers });
    if (r.status === 304) return { notModified: true };
    if (r.status !== 200) {
      await r.body?.cancel?.();
      throw new LatchkeyError("latchkey: GET " + url + ": " + r.status);
    }
    return { body: new Uint8Array(await r.arrayBuffer()), etag: r.headers.get("etag") ?? "" };
  }

  async #poll() {
    const cfg = this.#cfg;
    this.#lastPoll = cfg.clock();
    this.#status.polls++;
    const root = cfg.base + "/" + cfg.realm;
    const got = await this.#get(root + "/manifest", this.#snap ? this.#etag : "");
    if (got.notModified) return;
    const manifest = got.body;
    if (this.#snap && equalBytes(manifest, this.#snap.manifest)) {
      this.#etag = got.etag;
      return;
    }
    if (manifest.length > MAX_MANIFEST) throw new LatchkeyError("latchkey: manifest larger than " + MAX_MANIFEST + " bytes");
    const m = parseManifest(manifest);
    if (!m) throw new LatchkeyError("latchkey: manifest does not parse");
    if (m.realm !== cfg.realm) throw new LatchkeyError("latchkey: manifest is for realm " + JSON.stringify(m.realm) + ", not " + JSON.stringify(cfg.realm));
    const object = async (ref) => {
      let b = this.#objects.get(ref.name);
      if (!b) {
        b = (await this.#get(root + "/objects/" + ref.name, "")).body;
        if (BigInt(b.length) !== ref.size) throw new LatchkeyError("latchkey: object " + ref.name + " is " + b.length + " bytes, the manifest says " + ref.size);
        this.#objects.set(ref.name, b);
      }
      return b;
    };
    const objects = await Promise.all(m.objects.map(object));
    const delta = m.delta ? await object(m.delta) : null;
    await this.#instance();
    const r = await this.#load({ manifest, objects, delta });
    if (r.status !== 0) {
      if (r.status === STATUS_DIGEST) {
        // Possibly a torn read of a cached object: fetch them afresh next time.
        for (const ref of [...m.objects, ...(m.delta ? [m.delta] : [])]) this.#objects.delete(ref.name);
      }
      throw new LatchkeyError("latchkey: snapshot refused (" + r.statusName + "): " + r.error);
    }
    this.#etag = got.etag;
    const keep = new Set([...m.objects, ...(m.delta ? [m.delta] : [])].map((x) => x.name));
    for (const name of this.#objects.keys()) if (!keep.has(name)) this.#objects.delete(name);
  }

  // #load has the guest verify and load a snapshot; on success it becomes the one held.
  async #load(s) {
    const r = await this.#loadInto(s);
    this.#status.lastLoadStatus = r.statusName;
    if (r.status === 0) {
      if (this.#cfg.realm !== null && r.realm !== this.#cfg.realm) {
        // Cannot happen after parseManifest's check; if it does, the instance must not serve.
        this.#guest && (this.#guest.broken = true);
        throw new LatchkeyError("latchkey: loaded realm " + JSON.stringify(r.realm) + ", configured " + JSON.stringify(this.#cfg.realm));
      }
      this.#snap = { ...s, info: r };
      this.#status.loadedAt = this.#cfg.clock();
      this.#status.lastError = "";
    } else {
      this.#status.refused++;
      this.#status.lastError = "snapshot refused (" + r.statusName + "): " + r.error;
    }
    return r;
  }

  async #loadInto(s) {
    const trusted = this.#cfg.trusted;
    if (this.#crypto instanceof TwoStepCrypto) {
      const seeds = await this.#crypto.seed([...s.objects, ...(s.delta ? [s.delta] : [])]);
      return this.#replay("lk_load", (g) => {
        this.#crypto.seeds = seeds;
        try {
          return g.load({ ...s, trusted, now: nanos(this.#cfg.clock()) });
        } finally {
          this.#crypto.seeds = null;
        }
      }, () => ({ status: 15, statusName: "other", error: "latchkey: signature checks still pending after " + MAX_ROUNDS + " rounds" }));
    }
    const g = await this.#instance();
    return g.load({ ...s, trusted, now: nanos(this.#cfg.clock()) });
  }

  // #replay runs call on the guest until a call leaves no check pending (TwoStepCrypto).
  async #replay(name, call, giveUp) {
    const c = this.#crypto;
    for (let round = 1; round <= MAX_ROUNDS; round++) {
      const g = await this.#instance();
      c.pending.clear();
      const out = call(g);
      if (c.pending.size === 0) {
        if (out && typeof out === "object" && "rounds" in out) out.rounds = round;
        return out;
      }
      await c.resolve();
    }
    this.#cfg.log("error", "latchkey: " + name + ": signature checks still pending after " + MAX_ROUNDS + " rounds");
    return giveUp();
  }

  async #decideParts(parts, headers) {
    const build = () => buildRequest(parts, headers, this.#snap?.info, nanos(this.#cfg.clock()));
    let d;
    if (this.#crypto instanceof TwoStepCrypto) {
      d = await this.#replay("lk_decide", (g) => {
        const out = g.decide(build());
        out.info = this.#snap?.info ?? null;
        return out;
      }, unavailableDecision);
    } else {
      const g = await this.#instance();
      d = g.decide(build());
      d.info = this.#snap?.info ?? null;
    }
    return d;
  }

  #forward(request, parts, d) {
    const info = d.info;
    const headers = new Headers(request.headers);
    if (this.#cfg.upstream) headers.delete("host");
    for (const name of info?.strip ?? []) headers.delete(name);
    for (const [name, value] of d.identity) headers.set(name, value);
    let query = parts.query;
    if (d.stripQueryToken && info?.queryParam && query !== "") query = stripQuery(query, info.queryParam);
    const origin = this.#cfg.upstream ?? parts.origin;
    const url = origin + parts.path + (query !== "" ? "?" + query : "");
    const init = { method: request.method, headers, redirect: "manual" };
    if (request.body && request.method !== "GET" && request.method !== "HEAD") {
      init.body = request.body;
      init.duplex = "half";
    }
    return new Request(url, init);
  }
}

// ---------------------------------------------------------------------------------------------
// Requests and responses

// requestParts splits what the decision reads from a request: method, the path as received,
// the raw query, and the origin to forward to by default.
export function requestParts(request, target) {
  const url = String(request.url);
  const m = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?#]*/.exec(url);
  const origin = m ? m[0] : "";
  let rest = url.slice(origin.length);
  if (target !== undefined && target !== null) {
    // An absolute-form target (a proxy request) carries its own origin: the path follows it.
    rest = String(target).replace(/^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?#]*/, "");
  }
  const hash = rest.indexOf("#");
  if (hash >= 0) rest = rest.slice(0, hash);
  const q = rest.indexOf("?");
  let path = q >= 0 ? rest.slice(0, q) : rest;
  const query = q >= 0 ? rest.slice(q + 1) : "";
  if (path === "" && (target === undefined || target === null)) path = "/";
  return { method: String(request.method), path, query, origin };
}

// buildRequest is the abi.Request for parts: the query credential decoded as URLSearchParams
// does, and the first (for Fetch: the combined) value of each header the policy reads.
function buildRequest(parts, headers, info, now) {
  const q = { now, method: cut(utf8.encode(parts.method)), path: cut(byteString(parts.path)), hasToken: false, token: null, headers: [] };
  if (!info) return q;
  if (info.queryParam && parts.query !== "") {
    const sp = new URLSearchParams(parts.query);
    if (sp.has(info.queryParam)) {
      q.hasToken = true;
      q.token = cut(utf8.encode(sp.get(info.queryParam)));
    }
  }
  for (const name of info.headers) {
    if (q.headers.length === MAX_REQUEST_HEADERS) break;
    const v = headers.get(name);
    if (v !== null) q.headers.push([cut(utf8.encode(name)), cut(byteString(v))]);
  }
  return q;
}

// decodeQueryComponent decodes as application/x-www-form-urlencoded does ('+' is a space).
function decodeQueryComponent(s) {
  return new URLSearchParams("k=" + s.replace(/&/g, "%26").replace(/#/g, "%23")).get("k");
}

// stripQuery removes every pair whose decoded name is name, keeping the others as they were.
export function stripQuery(raw, name) {
  return raw.split("&").filter((pair) => {
    const eq = pair.indexOf("=");
    const k = eq >= 0 ? pair.slice(0, eq) : pair;
    return decodeQueryComponent(k) !== name;
  }).join("&");
}

function unavailableDecision() {
  return {
    allow: false, stripQueryToken: false, tokenCached: false, status: UNAVAILABLE_STATUS, reason: "unavailable",
    credential: "none", retryAfter: 0, route: "", org: "", keyId: "", keyType: "", session: "", agent: "", scopes: "",
    identity: [], headers: [["Content-Type", UNAVAILABLE_CONTENT_TYPE]], body: utf8.encode(UNAVAILABLE_BODY), rounds: 0, info: null,
  };
}

// denial renders a denied decision: status, headers in order (Retry-After added on a 429 whose
// rendering has none), the exact body (none for HEAD).
function denial(d, method) {
  const h = new Headers();
  try {
    for (const [name] of d.headers) h.delete(name);
    for (const [name, value] of d.headers) h.append(name, value);
    if (d.status === 429 && d.retryAfter > 0 && !h.has("retry-after")) h.set("Retry-After", String(d.retryAfter));
    return new Response(method === "HEAD" ? null : d.body, { status: d.status, headers: h });
  } catch {
    // A rendering Fetch refuses (a status outside 200..599, a header it rejects): fail closed.
    const u = unavailableDecision();
    return new Response(method === "HEAD" ? null : u.body, { status: u.status, headers: u.headers });
  }
}
