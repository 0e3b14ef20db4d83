// Command proxywasm is latchkey's verification core (shared/verifier) as a proxy-wasm HTTP
// filter, for Envoy and Istio: it decides every request offline from a signed snapshot, and
// keeps that snapshot current by fetching newer ones from the control plane's store through
// an Envoy cluster.
//
// It is written with github.com/proxy-wasm/proxy-wasm-go-sdk and builds with TinyGo (the
// release build; -scheduler=none) and with standard Go (GOOS=wasip1 GOARCH=wasm
// -buildmode=c-shared). The plugin configuration (package config) is JSON: the pinned manifest
// keys, an optional initial snapshot, the engine options and the refresh settings.
//
// On a tick it fetches <path_prefix>/<realm>/manifest from the configured cluster
// (dispatch_http_call, with If-None-Match) and, for a newer version, the objects the manifest
// names, one at a time, then verifies and loads them (abi.Load.Open with the held state:
// signature under the pinned keys, realm, rollback, freshness, sizes and digests). A refused or
// failed refresh keeps the held snapshot and logs why.
//
// On a request's headers it reads :method, :path (the policy's query credential decoded as
// url.ParseQuery would) and the headers the policy names, and decides with a verifier.Engine
// at the host's clock and with the standard library's crypto (hostcrypto.Std). Allowed: the
// incoming identity headers are removed, the decision's set, the query credential removed from
// :path when the decision says so, and the request continues. Denied: the rendered status,
// headers and body are sent as a local response and the request stops there. A configuration
// that does not parse is logged and every request is denied 503.
package main

func main() {}
