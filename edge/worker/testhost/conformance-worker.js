// Test-only worker for the conformance run (edge/worker/worker_test.go): the glue in front of
// an upstream, plus a control route that gives each case a fresh gate (fresh instance, token
// cache and rate buckets) configured for the case's fixture, at the fixture's clock. It is
// not the example worker (worker.js) and must never be deployed: the control route lets any
// caller choose the pinned key.
import { createLatchkey } from "../latchkey.js";

export const RESET_PATH = "/__latchkey_test/reset";

// conformanceWorker returns the fetch handler. modules maps build names ("accel-tinygo") to
// WebAssembly.Modules; deps holds what the runtime offers: nodeCrypto (node:crypto) and wasi
// (a factory of node:wasi WASI objects), each optional.
export function conformanceWorker(modules, deps) {
  let gate = null;
  return {
    async fetch(request, env, ctx) {
      if (request.method === "POST" && new URL(request.url).pathname === RESET_PATH) {
        return reset(await request.json());
      }
      if (!gate) return new Response("latchkey test worker: POST " + RESET_PATH + " first\n", { status: 500 });
      const out = await gate.handle(request, { waitUntil: ctx?.waitUntil?.bind(ctx), target: ctx?.target });
      const resp = out.allow ? await fetch(out.request) : out.response;
      // How many guest calls the decision took: the Go side checks that the two-step host
      // really replays.
      const marked = new Response(resp.body, resp);
      marked.headers.set("X-Latchkey-Test-Rounds", String(out.decision.rounds));
      return marked;
    },
  };

  async function reset(c) {
    const opts = {
      module: modules[c.module],
      snapshotURL: c.base,
      realm: c.realm,
      trustedKeys: c.trusted,
      upstream: c.upstream,
      clock: () => c.now * 1000,
      log: (level, msg) => level === "error" && console.error(msg),
    };
    if (!opts.module) return Response.json({ error: "no module " + c.module }, { status: 500 });
    if (c.crypto === "node") {
      if (!deps.nodeCrypto) return Response.json({ error: "node:crypto is not available here" }, { status: 500 });
      opts.nodeCrypto = deps.nodeCrypto;
    }
    if (c.wasi === "node") {
      if (!deps.wasi) return Response.json({ error: "node:wasi is not available here" }, { status: 500 });
      opts.wasi = deps.wasi;
    }
    try {
      gate = createLatchkey(opts);
      const st = await gate.refresh();
      return Response.json({ ...st, mode: await gate.mode(), wasi: c.wasi === "node" ? "node" : "shim" }, { status: st.version ? 200 : 500 });
    } catch (e) {
      gate = null;
      return Response.json({ error: String(e?.message ?? e) }, { status: 500 });
    }
  }
}
