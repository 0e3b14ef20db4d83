//go:build !wasip1

package main

import (
	"context"
	"strings"
	"testing"

	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm/proxytest"
	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm/types"
	"github.com/tetratelabs/wazero"

	"github.com/latchkeyhq/latchkey/examples/profiles/conformance"
	"github.com/latchkeyhq/latchkey/shared/hostcrypto"
	"github.com/latchkeyhq/latchkey/shared/verifier"
	"github.com/latchkeyhq/latchkey/wasm/proxywasm/config"
)

// benchRequest is one allowed request of the agrenting profile (no rate limits, so every
// iteration takes the same path): GET /api/v1/wallet with a credential in Authorization, or
// the public route POST /auth/authenticate, whose cost through the emulator is the floor of
// every request (the emulator, the ABI crossings, reading the headers, routing).
type benchRequest struct {
	name         string
	method, path string
	credential   string
	// cache is the token cache size: -1 makes every client token a first sight (its
	// signature checked), 0 the default cache (checked once, then cached).
	cache int
}

func benchRequests(f *conformance.Fixture) []benchRequest {
	return []benchRequest{
		{"public-route", "POST", "/auth/authenticate", "", 0},
		{"api-key", "GET", wallet, f.Keys["user"], 0},
		{"client-token-first-sight", "GET", wallet, f.Tokens["login"], -1},
		{"client-token-cached", "GET", wallet, f.Tokens["login"], 0},
	}
}

// BenchmarkDecide is the cost of one request's decision: the native core (shared/verifier
// Engine.Decide) and the filter's TinyGo and standard-Go builds through proxytest on wazero
// (a new HTTP context, the request-headers callback, the stream's end), with the ratio to the
// native core measured in the same run (x-native). The allocations reported for the filter
// are the emulator's, on the host side: proxytest looks proxy_on_memory_allocate up again for
// every value it copies into the guest, and each lookup makes a wazero call engine with its
// own stack. The public route is the floor of every request through the emulator.
func BenchmarkDecide(b *testing.B) {
	f := conformance.Load(b, "agrenting")
	for _, r := range benchRequests(f) {
		b.Run(r.name, func(b *testing.B) {
			var nativeNs float64
			b.Run("native", func(b *testing.B) {
				e := verifier.NewEngine(verifier.Options{Crypto: hostcrypto.Std, TokenCacheSize: r.cache})
				e.SetState(f.State)
				req := &verifier.Request{Now: f.Now * 1e9, Method: []byte(r.method), Path: []byte(r.path)}
				if r.credential != "" {
					req.Headers = []verifier.Header{{Name: []byte("authorization"), Value: []byte("Bearer " + r.credential)}}
				}
				b.ReportAllocs()
				for b.Loop() {
					if d := e.Decide(req); !d.Allow {
						b.Fatalf("denied %d", d.Status)
					}
				}
				nativeNs = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
			})
			for _, compiler := range []string{"tinygo", "go"} {
				b.Run("proxywasm-"+compiler, func(b *testing.B) {
					flt := startFilterOn(b, freshVM(b, compiler), fixedConfig(f.Built, func(c *config.Config) { c.TokenCacheSize = r.cache }))
					defer flt.close()
					hs := [][2]string{{":method", r.method}, {":path", r.path}, {":authority", "api.example.test"}, {":scheme", "https"},
						{"user-agent", "bench"}}
					if r.credential != "" {
						hs = append(hs, [2]string{"authorization", "Bearer " + r.credential})
					}
					b.ReportAllocs()
					for b.Loop() {
						id := flt.host.InitializeHttpContext()
						if a := flt.host.CallOnRequestHeaders(id, hs, true); a != types.ActionContinue {
							b.Fatalf("not forwarded (action %d): %s", a, flt.logs())
						}
						flt.host.CompleteHttpContext(id)
					}
					if nativeNs > 0 {
						b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/nativeNs, "x-native")
					}
				})
			}
		})
	}
}

// freshVM compiles and instantiates the named build for one benchmark alone. The emulator
// never calls proxy_on_delete, so every stream leaves an entry in the SDK's context maps in the
// guest: a VM shared by every benchmark would grow a heap that slows the later ones' garbage
// collections (Envoy deletes each stream's context). Within one benchmark, the b.N streams
// still accumulate: the figures are slightly pessimistic.
func freshVM(b *testing.B, build string) types.VMContext {
	b.Helper()
	vm, err := proxytest.NewWasmVMContext(guestWasm(b, build))
	if err != nil {
		b.Fatal("wasm: " + err.Error())
	}
	b.Cleanup(func() { _ = vm.Close() })
	return vm
}

// BenchmarkColdStart is what a proxy pays before the first request: compiling the release
// module (wazero's compiler; module-bytes is its size), compiling and instantiating it as
// proxytest does (NewWasmVMContext: the host module, _initialize), and starting a plugin with
// the agrenting snapshot in its configuration (parse, verify the manifest, check every
// object's digest, compile the policy).
func BenchmarkColdStart(b *testing.B) {
	ctx := context.Background()
	for _, compiler := range []string{"tinygo", "go"} {
		b.Run(compiler+"/compile", func(b *testing.B) {
			wasm := guestWasm(b, compiler+"-release")
			for b.Loop() {
				r := wazero.NewRuntime(ctx)
				if _, err := r.CompileModule(ctx, wasm); err != nil {
					b.Fatal(err)
				}
				_ = r.Close(ctx)
			}
			b.ReportMetric(float64(len(wasm)), "module-bytes")
		})
		b.Run(compiler+"/compile+instantiate", func(b *testing.B) {
			wasm := guestWasm(b, compiler+"-release")
			for b.Loop() {
				vm, err := proxytest.NewWasmVMContext(wasm)
				if err != nil {
					b.Fatal(err)
				}
				_ = vm.Close()
			}
		})
		b.Run(compiler+"/plugin-start", func(b *testing.B) {
			f := conformance.Load(b, "agrenting")
			cfg := fixedConfig(f.Built, nil)
			vm := freshVM(b, compiler)
			b.ReportMetric(float64(len(cfg)), "config-bytes")
			for b.Loop() {
				flt := startFilterOn(b, vm, cfg)
				if logs := flt.errorLogs(); logs != "" || !strings.Contains(flt.logs(), "serving realm agrenting") {
					b.Fatal(flt.logs())
				}
				flt.close()
			}
		})
	}
}
