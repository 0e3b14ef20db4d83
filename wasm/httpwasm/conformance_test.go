package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/http-wasm/http-wasm-host-go/handler"
	wasm "github.com/http-wasm/http-wasm-host-go/handler/nethttp"
	"github.com/tetratelabs/wazero"

	"github.com/latchkeyhq/latchkey/examples/profiles"
	"github.com/latchkeyhq/latchkey/shared/hostcrypto"
	"github.com/latchkeyhq/latchkey/shared/policy"
	"github.com/latchkeyhq/latchkey/shared/snapshot"
	"github.com/latchkeyhq/latchkey/shared/verifier"
	"github.com/latchkeyhq/latchkey/wasm/httpwasm/config"
	"github.com/latchkeyhq/latchkey/wasm/verifier/abi"
)

var compilers = []string{"go", "tinygo"}

// cache is the compilation cache every test runtime shares: each case gets a fresh middleware
// (fresh rate buckets and token cache) without compiling the guest again.
var cache = wazero.NewCompilationCache()

// fixture is a built profile with what the tests derive from it.
type fixture struct {
	*profiles.Built
	state    *verifier.State
	info     abi.LoadResult
	identity policy.Identity
	config   string // the guest configuration (base64 text), clock fixed at Built.Now
}

var (
	fixturesMu sync.Mutex
	fixtures   = map[string]*fixture{}
)

func profileFixture(t testing.TB, name string) *fixture {
	t.Helper()
	fixturesMu.Lock()
	defer fixturesMu.Unlock()
	if f, ok := fixtures[name]; ok {
		return f
	}
	b, err := profiles.Build(name, 1)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{Built: b}
	ld := abi.Load{Now: b.Now * 1e9, Trusted: []snapshot.TrustedKey{b.Trusted}, Manifest: b.Manifest, Objects: b.Objects}
	if f.state, err = ld.Open(nil, hostcrypto.Std); err != nil {
		t.Fatal(err)
	}
	abi.Describe(f.state, &f.info)
	p, err := profiles.Policy(name)
	if err != nil {
		t.Fatal(err)
	}
	f.identity = p.Identity
	if f.config, err = config.Text(&config.Config{NowOverride: b.Now * 1e9, Load: ld}); err != nil {
		t.Fatal(err)
	}
	fixtures[name] = f
	return f
}

// upstream records the last request it was sent and answers 299.
type upstream struct {
	mu   sync.Mutex
	last *http.Request
}

func (u *upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	u.mu.Lock()
	u.last = r
	u.mu.Unlock()
	w.WriteHeader(299)
}

func (u *upstream) take() *http.Request {
	u.mu.Lock()
	defer u.mu.Unlock()
	r := u.last
	u.last = nil
	return r
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

// nativeDecision decides r with the native core at the fixture's clock: the reference every
// HTTP response is compared with, byte for byte.
func nativeDecision(f *fixture, r *profiles.Resolved) *abi.Decision {
	e := verifier.NewEngine(verifier.Options{})
	e.SetState(f.state)
	req := &verifier.Request{Now: f.Now * 1e9, Method: []byte(r.Method), Path: []byte(r.Path)}
	if r.QueryToken != "" {
		req.QueryToken, req.HasQueryToken = []byte(r.QueryToken), true
	}
	for _, h := range r.Headers {
		req.Headers = append(req.Headers, verifier.Header{Name: []byte(strings.ToLower(h[0])), Value: []byte(h[1])})
	}
	var d abi.Decision
	d.Set(e.Decide(req))
	raw, err := abi.AppendDecision(nil, &d)
	if err != nil {
		panic(err)
	}
	var out abi.Decision
	if err := out.Decode(raw); err != nil {
		panic(err)
	}
	return &out
}

// TestConformance runs every profile's documented requests through the guest hosted by
// http-wasm-host-go's net/http middleware over real HTTP, for each compiler:
// TestConformance/httpwasm-<compiler>/<profile>/<case>. Denials: status, headers and exact
// body against the case and the native core. Allows: the identity headers the upstream saw,
// forged identity headers stripped, the query token removed.
func TestConformance(t *testing.T) {
	for _, compiler := range compilers {
		t.Run("httpwasm-"+compiler, func(t *testing.T) {
			guestWasm(t, compiler)
			for _, name := range profiles.Names() {
				f := profileFixture(t, name)
				t.Run(name, func(t *testing.T) {
					t.Parallel()
					for i := range f.Cases {
						c := &f.Cases[i]
						t.Run(c.Name, func(t *testing.T) {
							up := &upstream{}
							// A fresh guest per case: rate buckets and token caches must not make one
							// case's outcome depend on the cases before it.
							srv := front(t, compiler, []byte(f.config), up, nil)
							runCase(t, srv, up, f, c)
						})
					}
				})
			}
		})
	}
}

func runCase(t *testing.T, srv *httptest.Server, up *upstream, f *fixture, c *profiles.Resolved) {
	want := nativeDecision(f, c)
	u, err := url.Parse(c.Path)
	if err != nil || u.EscapedPath() != c.Path {
		t.Skipf("path %q does not survive URL parsing", c.Path)
	}
	target := srv.URL + c.Path
	q := f.info.QueryParam
	if c.QueryToken != "" {
		if q == "" {
			q = "token"
		}
		target += "?a=1&" + url.QueryEscape(q) + "=" + url.QueryEscape(c.QueryToken)
	}
	req, err := http.NewRequest(c.Method, target, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range c.Headers {
		req.Header.Add(h[0], h[1])
	}
	// A caller asserting an identity itself: every identity header must be stripped.
	for _, name := range f.info.Strip {
		req.Header.Set(name, "forged")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	seen := up.take()
	got := &profiles.Outcome{Status: resp.StatusCode}
	if !want.Allow {
		if seen != nil {
			t.Fatalf("denied request (%d) reached the upstream", want.Status)
		}
		got.Body = body
		got.Headers = map[string]string{}
		for k, vs := range resp.Header {
			got.Headers[k] = vs[0]
		}
		if err := c.Check(got); err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != want.Status {
			t.Fatalf("status %d, native core %d", resp.StatusCode, want.Status)
		}
		if c.Method != http.MethodHead && !bytes.Equal(body, want.Body) {
			t.Fatalf("body %q, native core %q", body, want.Body)
		}
		for _, h := range want.Headers {
			if vs := resp.Header.Values(string(h.Name)); !contains(vs, string(h.Value)) {
				t.Fatalf("header %s: %q, native core %q", h.Name, vs, h.Value)
			}
		}
		return
	}
	if seen == nil || resp.StatusCode != 299 {
		t.Fatalf("allowed request not forwarded: status %d %q", resp.StatusCode, body)
	}
	got.Status = 200
	got.Identity = map[string]string{}
	// Each identity field the policy injects is read from the header the upstream saw; a
	// field it injects no header for cannot cross HTTP and is taken from the native core.
	for field, x := range map[string]struct{ header, native string }{
		"org": {f.identity.Org, string(want.Org)}, "key_id": {f.identity.KeyID, string(want.KeyID)},
		"key_type": {f.identity.KeyType, string(want.KeyType)}, "scopes": {f.identity.Scopes, string(want.Scopes)},
		"agent": {f.identity.Agent, string(want.Agent)}, "session": {f.identity.Session, string(want.Session)},
		"credential": {f.identity.Credential, verifier.Credential(want.Credential).String()},
	} {
		if x.header != "" {
			got.Identity[field] = seen.Header.Get(x.header)
		} else {
			got.Identity[field] = x.native
		}
	}
	if err := c.Check(got); err != nil {
		t.Fatal(err)
	}
	wantIDs := map[string]string{}
	for _, h := range want.Identity {
		wantIDs[http.CanonicalHeaderKey(string(h.Name))] = string(h.Value)
	}
	for _, name := range f.info.Strip {
		key := http.CanonicalHeaderKey(name)
		vs := seen.Header.Values(key)
		if w, ok := wantIDs[key]; ok {
			if len(vs) != 1 || vs[0] != w {
				t.Fatalf("upstream identity header %s = %q, native core %q", key, vs, w)
			}
		} else if len(vs) != 0 {
			t.Fatalf("forged identity header %s reached the upstream: %q", key, vs)
		}
	}
	if c.QueryToken != "" && want.StripQueryToken {
		if seen.URL.Query().Has(q) || strings.Contains(seen.RequestURI, q+"=") {
			t.Fatalf("query token forwarded: %s", seen.RequestURI)
		}
		if seen.URL.Query().Get("a") != "1" {
			t.Fatalf("other query parameters lost: %s", seen.RequestURI)
		}
	}
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}
