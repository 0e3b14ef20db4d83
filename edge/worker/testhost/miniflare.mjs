// What every Miniflare launch of the tests and benchmarks shares: the worker folder as the
// modules root, the runtime settings of wrangler.toml, an entry module that imports each
// verifier build by name (workerd compiles Wasm only from uploaded modules), and serving until
// the Go test closes stdin.
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Miniflare } from "miniflare";

// workerRoot is edge/worker.
export const workerRoot = join(dirname(fileURLToPath(import.meta.url)), "..");

// newMiniflare starts workerd with wrangler.toml's compatibility settings and options on top.
export function newMiniflare(options) {
  return new Miniflare({
    modulesRoot: workerRoot,
    compatibilityDate: "2026-04-01",
    compatibilityFlags: ["nodejs_compat"],
    cf: false,
    ...options,
  });
}

// wasmEntry is the source of an entry module that imports node:crypto and each named build
// ("./<name>.wasm", next to the entry) and exports the worker made by calling factory (an
// export of the module at from) with {name: module} and {nodeCrypto}.
export function wasmEntry(names, factory, from) {
  return [
    'import * as nodeCrypto from "node:crypto";',
    `import { ${factory} } from ${JSON.stringify(from)};`,
    ...names.map((n, i) => `import m${i} from "./${n}.wasm";`),
    `const worker = ${factory}({ ${names.map((n, i) => `${JSON.stringify(n)}: m${i}`).join(", ")} }, { nodeCrypto });`,
    "export default { fetch: (request, env, ctx) => worker.fetch(request, env, ctx) };",
  ].join("\n");
}

// serve makes mf listen on a free loopback port, prints "LISTEN <origin>" for the Go test, and
// disposes of it (and workerd) when stdin closes.
export async function serve(options) {
  const mf = newMiniflare({ host: "127.0.0.1", port: 0, ...options });
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
}
