// Benchmark worker for workerd (bench.mjs --workerd): runs a batch of decisions inside one
// request, since a worker's clock does not move while it computes; bench.mjs times the requests
// from outside and subtracts an empty batch.
//   POST /setup {module, crypto}   a fresh gate for the bench snapshot (loaded from env.SNAPSHOT)
//   GET  /run?kind=key|first|cached&n=N&from=I
import { createLatchkey } from "../latchkey.js";

export function benchWorker(modules, { nodeCrypto }) {
  let gate = null;
  return {
    async fetch(request, env) {
      const url = new URL(request.url);
      const fx = JSON.parse(env.SNAPSHOT);
      const b64 = (s) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
      if (url.pathname === "/setup") {
        const c = await request.json();
        gate = createLatchkey({
          module: modules[c.module], trustedKeys: fx.trusted, realm: fx.realm, clock: () => fx.now * 1000,
          ...(c.crypto === "node" ? { nodeCrypto } : {}),
        });
        const r = await gate.load({ manifest: b64(fx.manifest), objects: fx.objects.map(b64) });
        return Response.json({ status: r.status, mode: await gate.mode() });
      }
      const kind = url.searchParams.get("kind");
      const n = Number(url.searchParams.get("n"));
      const from = Number(url.searchParams.get("from") ?? 0);
      let allowed = 0;
      for (let i = 0; i < n; i++) {
        const tok = kind === "first" ? fx.tokens[from + i] : fx.tokens[0];
        const parts = kind === "key"
          ? { method: "POST", path: "/v3/sessions", headers: new Headers({ Authorization: "Bearer " + fx.key }) }
          : { method: "GET", path: "/v3/sessions/sess_1/events", headers: new Headers({ Authorization: "Bearer " + tok }) };
        if ((await gate.decide(parts)).allow) allowed++;
      }
      return Response.json({ allowed });
    },
  };
}
