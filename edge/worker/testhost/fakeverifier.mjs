// A stand-in verifier module for the glue's failure tests: it has the verifier's exports but
// answers with canned bytes (a chosen ABI version, garbage decisions, out-of-range results, a
// trap on long requests). Assembled here byte by byte, so the tests need no Wasm toolchain.

const I32 = 0x7f, I64 = 0x7e;

function uleb(n) {
  const out = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
}

function sleb(v) {
  let n = BigInt(v);
  const out = [];
  for (;;) {
    const b = Number(n & 0x7fn);
    n >>= 7n;
    if ((n === 0n && (b & 0x40) === 0) || (n === -1n && (b & 0x40) !== 0)) {
      out.push(b);
      return out;
    }
    out.push(b | 0x80);
  }
}

const vec = (items) => [...uleb(items.length), ...items.flat()];
const str = (s) => vec([...new TextEncoder().encode(s)].map((b) => [b]));
const section = (id, body) => [id, ...uleb(body.length), ...body];

const DECISION_AT = 8192, LOAD_AT = 16384;

// encodeDecisionBytes encodes a denial decision (abi.Decision) with one Content-Type header.
export function encodeDecisionBytes({ status, body }) {
  const te = new TextEncoder();
  const b = [1, 0, 2, 0, status & 0xff, status >> 8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0];
  for (let i = 0; i < 7; i++) b.push(0, 0);
  for (const s of ["Content-Type", "text/plain"]) {
    const x = te.encode(s);
    b.push(x.length & 0xff, x.length >> 8, ...x);
  }
  const x = te.encode(body);
  b.push(x.length & 0xff, (x.length >> 8) & 0xff, 0, 0, ...x);
  return Uint8Array.from(b);
}

// A LoadResult saying "loaded", version 1, no realm or headers.
const LOADED = Uint8Array.of(1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);

const packed = (addr, bytes) => (BigInt(addr) << 32n) | BigInt(bytes.length);

/**
 * fakeVerifier returns a WebAssembly.Module. Options: abi (lk_abi_version's answer, default
 * 1), decision (the bytes lk_decide returns), decidePacked (lk_decide's raw result instead),
 * loadResult (the bytes lk_load returns), trapAbove (lk_decide traps on longer requests),
 * dropExport (an export to leave out).
 */
export function fakeVerifier(o = {}) {
  const decision = o.decision ?? encodeDecisionBytes({ status: 451, body: "canned" });
  const load = o.loadResult ?? LOADED;
  const decideResult = BigInt.asIntN(64, o.decidePacked ?? packed(DECISION_AT, decision));
  const types = [
    [0x60, ...vec([]), ...vec([])], // 0 () -> ()
    [0x60, ...vec([]), ...vec([[I32]])], // 1 () -> i32
    [0x60, ...vec([[I32]]), ...vec([[I32]])], // 2 (i32) -> i32
    [0x60, ...vec([[I32]]), ...vec([])], // 3 (i32) -> ()
    [0x60, ...vec([[I64], [I32]]), ...vec([[I32]])], // 4 (i64, i32) -> i32
    [0x60, ...vec([[I32], [I32]]), ...vec([[I64]])], // 5 (i32, i32) -> i64
    [0x60, ...vec([]), ...vec([[I64]])], // 6 () -> i64
  ];
  const decideBody = o.trapAbove === undefined
    ? [0x42, ...sleb(decideResult)]
    // if (len > trapAbove) unreachable else result
    : [0x20, 1, 0x41, ...sleb(o.trapAbove), 0x4b, 0x04, I64, 0x00, 0x05, 0x42, ...sleb(decideResult), 0x0b];
  const funcs = [
    ["_initialize", 0, []],
    ["lk_abi_version", 1, [0x41, ...sleb(o.abi ?? 1)]],
    ["lk_alloc", 2, [0x41, ...sleb(1024)]],
    ["lk_free", 3, []],
    ["lk_configure", 4, [0x41, 0]],
    ["lk_load", 5, [0x42, ...sleb(packed(LOAD_AT, load))]],
    ["lk_decide", 5, decideBody],
    ["lk_error", 6, [0x42, 0]],
  ];
  const exports = [["memory", 0x02, 0], ...funcs.map(([name], i) => [name, 0x00, i])].filter(([name]) => name !== o.dropExport);
  const bytes = [
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, vec(types)),
    ...section(3, vec(funcs.map(([, t]) => [t]))),
    ...section(5, vec([[0x00, 1]])),
    ...section(7, vec(exports.map(([name, kind, i]) => [...str(name), kind, ...uleb(i)]))),
    ...section(10, vec(funcs.map(([, , body]) => {
      const code = [0x00, ...body, 0x0b]; // no locals
      return [...uleb(code.length), ...code];
    }))),
    ...section(11, vec([
      [0x00, 0x41, ...sleb(DECISION_AT), 0x0b, ...vec([...decision].map((b) => [b]))],
      [0x00, 0x41, ...sleb(LOAD_AT), 0x0b, ...vec([...load].map((b) => [b]))],
    ])),
  ];
  return new WebAssembly.Module(Uint8Array.from(bytes));
}
