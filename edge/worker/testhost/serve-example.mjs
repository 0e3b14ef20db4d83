// Runs the example worker (../worker.js) unchanged in workerd through Miniflare, with the
// verifier build given as its verifier.wasm and the settings given as vars.
// Usage: node serve-example.mjs <verifier.wasm> '{"LATCHKEY_REALM": …}'
// Prints "LISTEN <url>" once ready; disposes of Miniflare when stdin closes.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { serve, workerRoot } from "./miniflare.mjs";

await serve({
  modules: [
    { type: "ESModule", path: join(workerRoot, "worker.js") },
    { type: "ESModule", path: join(workerRoot, "latchkey.js") },
    { type: "CompiledWasm", path: join(workerRoot, "verifier.wasm"), contents: readFileSync(process.argv[2]) },
  ],
  bindings: JSON.parse(process.argv[3]),
});
