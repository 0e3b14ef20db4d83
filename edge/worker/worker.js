// An example Cloudflare Worker: latchkey in front of an upstream API. Every request is decided
// offline from the realm's newest signed snapshot; allowed requests go to UPSTREAM_ORIGIN with
// the caller's identity headers, denials are answered here with the realm's rendering.
//
// Settings (wrangler.toml [vars], or secrets):
//   LATCHKEY_SNAPSHOT_URL    base URL of the published snapshots (<base>/<realm>/manifest, …)
//   LATCHKEY_REALM           the realm to serve
//   LATCHKEY_TRUSTED_KEYS    pinned manifest key(s): "ed25519:<base64url>", comma-separated
//   UPSTREAM_ORIGIN          where allowed requests go ("https://api.internal.example.com")
//   LATCHKEY_MAX_STALENESS_SECONDS  optional: 503 once the snapshot is older (default off)
//   LATCHKEY_REFRESH_SECONDS        optional: how often requests poll the manifest (default 10)
import * as nodeCrypto from "node:crypto"; // nodejs_compat: synchronous host crypto
import verifier from "./verifier.wasm"; // wasm/verifier/build/accel-tinygo.wasm (make wasm)
import { createLatchkey } from "./latchkey.js";

// One gate per isolate, made on the first request: workerd forbids the randomness the
// verifier's start-up needs at global scope, and env only exists inside a request.
let gate = null;

export default {
  async fetch(request, env, ctx) {
    if (!gate) {
      try {
        gate = createLatchkey({
          module: verifier,
          nodeCrypto,
          snapshotURL: env.LATCHKEY_SNAPSHOT_URL,
          realm: env.LATCHKEY_REALM,
          trustedKeys: env.LATCHKEY_TRUSTED_KEYS,
          upstream: env.UPSTREAM_ORIGIN,
          maxStalenessSeconds: Number(env.LATCHKEY_MAX_STALENESS_SECONDS ?? 0),
          refreshSeconds: Number(env.LATCHKEY_REFRESH_SECONDS ?? 10),
        });
      } catch (e) {
        // A configuration error: fail closed, and say why in the logs.
        console.error(String(e?.message ?? e));
        return new Response("latchkey is misconfigured\n", { status: 503 });
      }
    }
    return gate.fetch(request, ctx);
  },
};
