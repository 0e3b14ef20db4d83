// Package worker holds latchkey's verifier glue for JavaScript runtimes (latchkey.js: Cloudflare
// Workers, Deno, Node) and an example Cloudflare Worker. The package has no Go API: its Go
// tests run the glue under Node and under workerd (Miniflare) through the cross-host
// conformance suite, run the glue's own Node tests, and drive its benchmarks.
package worker
