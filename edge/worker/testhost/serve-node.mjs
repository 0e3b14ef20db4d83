// Serves the conformance test worker from Node's http server: the Node host of the
// conformance run. Usage: node serve-node.mjs '{"accel-tinygo": "/path/accel-tinygo.wasm", …}'
// Prints "LISTEN <url>" once ready; exits when stdin closes.
import http from "node:http";
import * as nodeCrypto from "node:crypto";
import { readFileSync } from "node:fs";
import { Readable } from "node:stream";
import { WASI } from "node:wasi";
import { conformanceWorker } from "./conformance-worker.js";

const modules = {};
for (const [name, path] of Object.entries(JSON.parse(process.argv[2] ?? "{}"))) {
  modules[name] = new WebAssembly.Module(readFileSync(path));
}
const worker = conformanceWorker(modules, {
  nodeCrypto,
  wasi: () => new WASI({ version: "preview1", args: [], env: {}, returnOnExit: false }),
});

// Hop-by-hop headers are the server's business, not the request's (RFC 9110 §7.6.1).
const HOP = new Set(["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te", "trailer"]);

// toRequest turns Node's request into a Fetch Request. Its URL is normalized by the URL parser;
// the raw target (req.url) travels beside it for the glue.
export function toRequest(req) {
  const headers = new Headers();
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    const name = req.rawHeaders[i];
    if (!HOP.has(name.toLowerCase())) headers.append(name, req.rawHeaders[i + 1]);
  }
  const init = { method: req.method, headers };
  if (req.method !== "GET" && req.method !== "HEAD" && (req.headers["content-length"] > 0 || req.headers["transfer-encoding"])) {
    init.body = Readable.toWeb(req);
    init.duplex = "half";
  }
  return new Request("http://" + (req.headers.host ?? "localhost") + req.url, init);
}

// send writes a Fetch Response to Node's response.
export async function send(res, response, method) {
  const headers = [];
  for (const [k, v] of response.headers) {
    if (!HOP.has(k) && k !== "content-length") headers.push(k, v);
  }
  const body = method === "HEAD" ? new Uint8Array(0) : new Uint8Array(await response.arrayBuffer());
  if (method !== "HEAD") headers.push("content-length", String(body.length));
  res.writeHead(response.status, headers);
  res.end(body);
}

const server = http.createServer(async (req, res) => {
  try {
    const pending = [];
    const ctx = { waitUntil: (p) => pending.push(p), target: req.url };
    const response = await worker.fetch(toRequest(req), {}, ctx);
    await send(res, response, req.method);
    await Promise.allSettled(pending);
  } catch (e) {
    console.error("serve-node: " + (e?.stack ?? e));
    res.writeHead(500);
    res.end();
  }
});
server.listen(0, "127.0.0.1", () => {
  console.log("LISTEN http://127.0.0.1:" + server.address().port);
});
process.stdin.on("end", () => process.exit(0));
process.stdin.resume();
