package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"testing"

	"github.com/http-wasm/http-wasm-host-go/handler"
	wasm "github.com/http-wasm/http-wasm-host-go/handler/nethttp"
	"github.com/tetratelabs/wazero"

	"github.com/latchkeyhq/latchkey/examples/profiles/conformance"
	"github.com/latchkeyhq/latchkey/wasm/httpwasm/config"
)

var compilers = []string{"go", "tinygo"}

// cache is the compilation cache every test runtime shares: each case gets a fresh middleware
// (fresh rate buckets and token cache) without compiling the guest again.
var cache = wazero.NewCompilationCache()

var configs sync.Map // profile name → guest configuration (base64 text), clock fixed at Built.Now

// guestConfig is f's snapshot as this guest's configuration, its clock fixed at the fixture's.
func guestConfig(t testing.TB, f *conformance.Fixture) string {
	t.Helper()
	if c, ok := configs.Load(f.Profile); ok {
		return c.(string)
	}
	text, err := config.Text(&config.Config{NowOverride: f.Now * 1e9, Load: f.LoadAt(f.Now * 1e9)})
	if err != nil {
		t.Fatal(err)
	}
	configs.Store(f.Profile, text)
	return text
}

// front serves the guest (built by compiler, configured with guestConfig) over real HTTP in
// front of up, through a reverse proxy, as Traefik would.
func front(t testing.TB, compiler string, guestConfig []byte, up http.Handler, mc wazero.ModuleConfig, opts ...handler.Option) *httptest.Server {
	t.Helper()
	ctx := context.Background()
	upSrv := httptest.NewServer(up)
	t.Cleanup(upSrv.Close)
	target, _ := url.Parse(upSrv.URL)
	if mc == nil {
		mc = wazero.NewModuleConfig().WithSysWalltime().WithSysNanotime()
	}
	mw, err := wasm.NewMiddleware(ctx, guestWasm(t, compiler), append([]handler.Option{
		handler.GuestConfig(guestConfig),
		handler.ModuleConfig(mc.WithStartFunctions("_initialize")),
		handler.Runtime(func(ctx context.Context) (wazero.Runtime, error) {
			return wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().WithCompilationCache(cache)), nil
		})}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mw.Close(ctx) })
	srv := httptest.NewServer(mw.NewHandler(ctx, httputil.NewSingleHostReverseProxy(target)))
	t.Cleanup(srv.Close)
	return srv
}

// TestConformance runs the cross-host conformance suite (examples/profiles/conformance) on
// the guest hosted by http-wasm-host-go's net/http middleware over real HTTP, for each
// compiler: TestConformance/httpwasm-<compiler>/<profile>/<case>.
func TestConformance(t *testing.T) {
	var hosts []conformance.Host
	for _, compiler := range compilers {
		hosts = append(hosts, conformance.Host{
			Name: "httpwasm-" + compiler,
			Open: func(t *testing.T, f *conformance.Fixture) func(*testing.T, *conformance.Exchange) *conformance.Response {
				// A fresh guest per case: rate buckets and token caches must not make one
				// case's outcome depend on the cases before it.
				rec := &conformance.Recorder{}
				srv := front(t, compiler, []byte(guestConfig(t, f)), rec, nil)
				return func(t *testing.T, ex *conformance.Exchange) *conformance.Response {
					return conformance.Send(t, srv.URL, ex, rec)
				}
			},
		})
	}
	conformance.Run(t, hosts...)
}
