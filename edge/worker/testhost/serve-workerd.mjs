// Runs the conformance test worker in workerd through Miniflare 4 (node_modules), with
// nodejs_compat, listening on a local port: the workerd host of the conformance run.
// Usage: node serve-workerd.mjs '{"accel-tinygo": "/path/accel-tinygo.wasm", …}'
// Prints "LISTEN <url>" once ready; disposes of Miniflare (and workerd) when stdin closes.
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Miniflare } from "miniflare";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const wasm = JSON.parse(process.argv[2] ?? "{}");

// The entry imports each module by name: workerd compiles Wasm only from uploaded modules.
const names = Object.keys(wasm);
const entry = [
  'import * as nodeCrypto from "node:crypto";',
  'import { conformanceWorker } from "./conformance-worker.js";',
  ...names.map((n, i) => `import m${i} from "./${n}.wasm";`),
  `const worker = conformanceWorker({ ${names.map((n, i) => `${JSON.stringify(n)}: m${i}`).join(", ")} }, { nodeCrypto });`,
  "export default { fetch: (request, env, ctx) => worker.fetch(request, env, ctx) };",
].join("\n");

const mf = new Miniflare({
  modulesRoot: root,
  modules: [
    { type: "ESModule", path: join(root, "testhost", "entry.js"), contents: entry },
    { type: "ESModule", path: join(root, "testhost", "conformance-worker.js") },
    { type: "ESModule", path: join(root, "latchkey.js") },
    ...names.map((n) => ({ type: "CompiledWasm", path: join(root, "testhost", n + ".wasm"), contents: readFileSync(wasm[n]) })),
  ],
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
