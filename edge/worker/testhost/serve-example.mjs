// Runs the example worker (../worker.js) unchanged in workerd through Miniflare, with the
// verifier build given as its verifier.wasm and the settings given as vars.
// Usage: node serve-example.mjs <verifier.wasm> '{"LATCHKEY_REALM": …}'
// Prints "LISTEN <url>" once ready; disposes of Miniflare when stdin closes.
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Miniflare } from "miniflare";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const mf = new Miniflare({
  modulesRoot: root,
  modules: [
    { type: "ESModule", path: join(root, "worker.js") },
    { type: "ESModule", path: join(root, "latchkey.js") },
    { type: "CompiledWasm", path: join(root, "verifier.wasm"), contents: readFileSync(process.argv[2]) },
  ],
  bindings: JSON.parse(process.argv[3]),
  compatibilityDate: "2026-04-01",
  compatibilityFlags: ["nodejs_compat"],
  host: "127.0.0.1",
  port: 0,
  cf: false,
});
const url = await mf.ready;
console.log("LISTEN " + url.origin);
let closing = false;
process.stdin.on("end", async () => {
  if (closing) return;
  closing = true;
  await mf.dispose();
  process.exit(0);
});
process.stdin.resume();
