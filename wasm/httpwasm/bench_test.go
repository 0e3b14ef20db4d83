package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/http-wasm/http-wasm-host-go/handler"
	wasm "github.com/http-wasm/http-wasm-host-go/handler/nethttp"
	"github.com/tetratelabs/wazero"

	"github.com/latchkeyhq/latchkey/examples/profiles/conformance"
	"github.com/latchkeyhq/latchkey/shared/hostcrypto"
	"github.com/latchkeyhq/latchkey/shared/verifier"
	"github.com/latchkeyhq/latchkey/wasm/httpwasm/config"
)

// benchRequests are agrenting's (no rate classes, so a long run stays allowed): an API key, a
// client token with the guest's token cache off (every decision checks the signature), and the
// same token with the cache on.
func benchRequests(f *conformance.Fixture) []struct {
	name      string
	cred      string
	cacheSize int32
} {
	return []struct {
		name      string
		cred      string
		cacheSize int32
	}{{"apikey", f.Keys["user"], 0}, {"token-first", f.Tokens["login"], -1}, {"token-cached", f.Tokens["login"], 0}}
}

// BenchmarkDecision is one request through http-wasm-host-go's net/http middleware hosting the
// guest, in process (no network), next to what it is judged against in the same run: the
// native core deciding the same request (BenchmarkDecision/native/…) and the middleware with a
// guest-free handler (passthrough: the cost of net/http plumbing alone).
func BenchmarkDecision(b *testing.B) {
	f := conformance.Load(b, "agrenting")
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) })
	request := func(cred string) *http.Request {
		r := httptest.NewRequest("GET", "/api/v1/wallet", nil)
		r.Header.Set("Authorization", "Bearer "+cred)
		return r
	}
	for _, c := range benchRequests(f) {
		b.Run("native/"+c.name, func(b *testing.B) {
			e := verifier.NewEngine(verifier.Options{Crypto: hostcrypto.Std, TokenCacheSize: int(c.cacheSize)})
			e.SetState(f.State)
			req := &verifier.Request{Now: f.Now * 1e9, Method: []byte("GET"), Path: []byte("/api/v1/wallet"),
				Headers: []verifier.Header{{Name: []byte("authorization"), Value: []byte("Bearer " + c.cred)}}}
			if d := e.Decide(req); !d.Allow {
				b.Fatalf("native: %d %s", d.Status, d.Reason)
			}
			b.ReportAllocs()
			for b.Loop() {
				e.Decide(req)
			}
		})
	}
	b.Run("passthrough", func(b *testing.B) {
		r := request(f.Keys["user"])
		b.ReportAllocs()
		for b.Loop() {
			next.ServeHTTP(httptest.NewRecorder(), r)
		}
	})
	for _, compiler := range compilers {
		for _, c := range benchRequests(f) {
			b.Run("httpwasm-"+compiler+"/"+c.name, func(b *testing.B) {
				text, err := config.Text(&config.Config{NowOverride: f.Now * 1e9, TokenCacheSize: c.cacheSize, Load: f.LoadAt(f.Now * 1e9)})
				if err != nil {
					b.Fatal(err)
				}
				h := middleware(b, compiler, text).NewHandler(context.Background(), next)
				r := request(c.cred)
				w := httptest.NewRecorder()
				if h.ServeHTTP(w, r); w.Code != http.StatusOK {
					b.Fatalf("%d %s", w.Code, w.Body)
				}
				b.ReportAllocs()
				for b.Loop() {
					h.ServeHTTP(httptest.NewRecorder(), r)
				}
			})
		}
	}
}

// BenchmarkColdStart is what a host pays before the first request: compiling the guest
// (without and with a compilation cache) and instantiating it with its configuration (which
// verifies and loads the snapshot in _initialize).
func BenchmarkColdStart(b *testing.B) {
	f := conformance.Load(b, "agrenting")
	text := guestConfig(b, f)
	for _, compiler := range compilers {
		b.Run("httpwasm-"+compiler+"/compile+instantiate", func(b *testing.B) {
			for b.Loop() {
				_ = middleware(b, compiler, text, wazero.NewRuntimeConfig())
			}
			b.ReportMetric(float64(len(guestWasm(b, compiler))), "module-bytes")
		})
		b.Run("httpwasm-"+compiler+"/instantiate", func(b *testing.B) {
			_ = middleware(b, compiler, text) // fills the shared compilation cache
			for b.Loop() {
				_ = middleware(b, compiler, text)
			}
		})
	}
}

// middleware instantiates the guest built by compiler with config text, on a runtime with
// rc (default: one sharing the package's compilation cache).
func middleware(b *testing.B, compiler, text string, rc ...wazero.RuntimeConfig) wasm.Middleware {
	b.Helper()
	ctx := context.Background()
	cfg := wazero.NewRuntimeConfig().WithCompilationCache(cache)
	if len(rc) > 0 {
		cfg = rc[0]
	}
	mw, err := wasm.NewMiddleware(ctx, guestWasm(b, compiler),
		handler.GuestConfig([]byte(text)),
		handler.ModuleConfig(wazero.NewModuleConfig().WithSysWalltime().WithSysNanotime().WithStartFunctions("_initialize")),
		handler.Runtime(func(ctx context.Context) (wazero.Runtime, error) {
			return wazero.NewRuntimeWithConfig(ctx, cfg), nil
		}))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = mw.Close(ctx) })
	return mw
}
