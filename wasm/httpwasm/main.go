// Command httpwasm is latchkey's verification core (shared/verifier) as an http-wasm guest
// (https://http-wasm.io/http-handler-abi/): a Traefik plugin or a Dapr middleware that decides
// every request offline from a signed snapshot carried in its configuration.
//
// It is written against the raw ABI (//go:wasmimport http_handler …, //go:wasmexport
// handle_request and handle_response) and builds with standard Go
// (GOOS=wasip1 GOARCH=wasm -buildmode=c-shared; the host must run _initialize) and with
// TinyGo (-scheduler=none). The guest configuration (get_config, package config) carries the
// snapshot and the engine options; the guest loads it once, when the host instantiates it.
//
// Unlike wasm/verifier, whose host passes the time with every call, http-wasm has no clock
// import: this guest reads WASI's clock (time.Now, clock_time_get). http-wasm hosts offer no
// crypto imports either, so it carries the standard library's crypto (hostcrypto.Std).
//
// On handle_request it reads the method, the URI and the headers the policy names (first
// value of each) and decides. Allowed: the incoming identity headers are removed, the
// decision's identity headers set, the query credential removed from the URI when the
// decision says so, and the request goes on (next=1). Denied: the rendered headers, status
// and body are written and the request stops there (next=0).
package main

func main() {}
