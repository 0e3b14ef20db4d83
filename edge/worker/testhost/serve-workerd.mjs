// Runs the conformance test worker in workerd through Miniflare 4 (node_modules), with
// nodejs_compat, listening on a local port: the workerd host of the conformance run.
// Usage: node serve-workerd.mjs '{"accel-tinygo": "/path/accel-tinygo.wasm", …}'
// Prints "LISTEN <url>" once ready; disposes of Miniflare (and workerd) when stdin closes.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { serve, wasmEntry, workerRoot } from "./miniflare.mjs";

const wasm = JSON.parse(process.argv[2] ?? "{}");
const names = Object.keys(wasm);
const dir = join(workerRoot, "testhost");

await serve({
  modules: [
    { type: "ESModule", path: join(dir, "entry.js"), contents: wasmEntry(names, "conformanceWorker", "./conformance-worker.js") },
    { type: "ESModule", path: join(dir, "conformance-worker.js") },
    { type: "ESModule", path: join(workerRoot, "latchkey.js") },
    ...names.map((n) => ({ type: "CompiledWasm", path: join(dir, n + ".wasm"), contents: readFileSync(wasm[n]) })),
  ],
});
