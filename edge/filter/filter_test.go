package filter

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/latchkeyhq/latchkey/internal/wasmbuild"
	"github.com/latchkeyhq/latchkey/shared/policy"
)

// TestModuleChecked: a module that is not a verifier module fails at start with a clear
// `wasm: …` error, before any request.
func TestModuleChecked(t *testing.T) {
	header := []byte("\x00asm\x01\x00\x00\x00")
	// One import, env.foo: () -> ().
	importsEnv := append(append([]byte(nil), header...),
		0x01, 0x04, 0x01, 0x60, 0x00, 0x00, // type section: one func type () -> ()
		0x02, 0x0b, 0x01, 0x03, 'e', 'n', 'v', 0x03, 'f', 'o', 'o', 0x00, 0x00) // import env.foo
	for _, c := range []struct {
		name, wasm, want string
	}{
		{"not wasm", "hello", "wasm: compile:"},
		{"empty module", string(header), "wasm: not a latchkey verifier module: missing exports _initialize, lk_abi_version, lk_alloc, lk_configure, lk_decide, lk_error, lk_free, lk_load"},
		{"foreign import", string(importsEnv), "wasm: module imports env.foo, which this host does not provide"},
	} {
		_, err := NewDecider(context.Background(), NewConfig().WithWasm([]byte(c.wasm)).WithCompilationCacheDir(t.TempDir()))
		if err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
}

// TestNewDecider builds a Wasm decider the way a host does: on-disk compilation cache,
// exports checked, one instance made eagerly, a pool of GOMAXPROCS.
func TestNewDecider(t *testing.T) {
	for _, v := range []*wasmbuild.Variant{&wasmbuild.Variants[0], &wasmbuild.Variants[3]} {
		t.Run(v.Name, func(t *testing.T) {
			wasm := wasmFile(t, v)
			dir := filepath.Join(t.TempDir(), "cache")
			b := profile(t, "opencomputer")
			cfg := NewConfig(b.Trusted).WithWasm(wasm).WithCompilationCacheDir(dir).WithClock(fixedClock(b.Now))
			for round := 0; round < 2; round++ { // the second compiles from the cache
				d, err := NewDecider(context.Background(), cfg)
				if err != nil {
					t.Fatal(err)
				}
				w := d.(*wasmDecider)
				if w.mod.accel != v.Accel {
					t.Errorf("accelerated: %v, want %v", w.mod.accel, v.Accel)
				}
				if cap(w.pool.slots) != runtime.GOMAXPROCS(0) || len(w.pool.slots) != 1 || len(w.pool.idle) != 1 {
					t.Errorf("pool: %d of %d made, %d idle; want 1 of GOMAXPROCS made eagerly", len(w.pool.slots), cap(w.pool.slots), len(w.pool.idle))
				}
				if _, err := d.SetSnapshot(Snapshot{Manifest: b.Manifest, Objects: b.Objects}); err != nil {
					t.Fatal(err)
				}
				if res := decide(t, d, keyRequest(b, b.Now)); !res.Allow {
					t.Fatalf("%d %s", res.Status, res.Reason())
				}
				if err := d.Close(context.Background()); err != nil {
					t.Fatal(err)
				}
				if err := d.Decide(keyRequest(b, b.Now), &Result{}); !errors.Is(err, errClosed) {
					t.Fatalf("decide after close: %v", err)
				}
			}
			if entries, _ := os.ReadDir(dir); len(entries) == 0 {
				t.Fatal("compilation cache directory left empty")
			}
		})
	}
	cfg := NewConfig()
	if dir, err := cfg.compilationCacheDir(); err != nil || !strings.HasSuffix(dir, filepath.Join("latchkey", "wazero")) {
		t.Errorf("default cache dir %q, %v", dir, err)
	}
}

// TestFilterHTTP checks the middleware around the decision: 503 before the first snapshot
// and when the decider fails, identity injected and forged copies stripped, ?token= removed
// from what goes upstream (URL and RequestURI), denials rendered.
func TestFilterHTTP(t *testing.T) {
	b := profile(t, "opencomputer")
	var upstream *http.Request
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { upstream = r })
	f, err := New(context.Background(), next, NewConfig(b.Trusted).WithClock(fixedClock(b.Now)))
	if err != nil {
		t.Fatal(err)
	}
	serve := func(target string, hdr map[string]string) *httptest.ResponseRecorder {
		upstream = nil
		r := httptest.NewRequest("GET", target, nil)
		for k, v := range hdr {
			r.Header.Set(k, v)
		}
		w := httptest.NewRecorder()
		f.ServeHTTP(w, r)
		return w
	}
	unavailable := policy.DefaultError(policy.ReasonUnavailable)
	if w := serve("/v3/sessions", nil); w.Code != 503 || w.Body.String() != string(unavailable.Body) || upstream != nil {
		t.Fatalf("before any snapshot: %d %q", w.Code, w.Body)
	}
	info, err := f.SetSnapshot(b.Manifest, b.Objects, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(info.Strip) == 0 {
		t.Fatal("opencomputer names no identity headers")
	}
	forged := map[string]string{}
	for _, h := range info.Strip {
		forged[h] = "forged"
	}

	// The SSE stream with ?token=: forwarded without the token, with the caller's identity.
	forged["Authorization"] = ""
	w := serve("/v3/sessions/sess_1/events?x=1&token="+b.Tokens["t1"]+"&y=2&token=again", forged)
	if upstream == nil {
		t.Fatalf("token request denied: %d %s", w.Code, w.Body)
	}
	if upstream.URL.RawQuery != "x=1&y=2" || upstream.RequestURI != "/v3/sessions/sess_1/events?x=1&y=2" {
		t.Fatalf("forwarded query %q, RequestURI %q", upstream.URL.RawQuery, upstream.RequestURI)
	}
	for _, h := range info.Strip {
		if v := upstream.Header.Values(h); len(v) != 1 || v[0] == "forged" {
			t.Errorf("upstream %s = %q", h, v)
		}
	}

	// A public-less denial: the rendered body and challenge.
	w = serve("/v3/sessions", map[string]string{"Authorization": "Bearer oc_nope"})
	if w.Code != 401 || !strings.Contains(w.Body.String(), `"error":"invalid"`) || w.Header().Get("WWW-Authenticate") == "" || upstream != nil {
		t.Fatalf("denial: %d %q %v", w.Code, w.Body, w.Header())
	}

	// The observer sees every decision, including the 503 of a decider that cannot decide
	// (which fails closed).
	var seen []string
	f.observe = func(r *Result) { seen = append(seen, strconv.Itoa(r.Status)+" "+r.Reason()) }
	serve("/v3/sessions", map[string]string{"Authorization": "Bearer " + b.Keys["org"]})
	f.decider = failing{}
	if w := serve("/v3/sessions", map[string]string{"Authorization": "Bearer " + b.Keys["org"]}); w.Code != 503 || upstream != nil || w.Body.String() != string(unavailable.Body) {
		t.Fatalf("failing decider: %d %q", w.Code, w.Body)
	}
	if strings.Join(seen, ",") != "200 none,503 unavailable" {
		t.Fatalf("observed %q", seen)
	}
}

type failing struct{}

func (failing) SetSnapshot(Snapshot) (*Info, error) { return nil, errors.New("no") }
func (failing) Decide(*Input, *Result) error        { return errors.New("broken instance") }
func (failing) Close(context.Context) error         { return nil }

// TestDeciderAllocations: a native decision allocates nothing once its Result is warm.
func TestDeciderAllocations(t *testing.T) {
	b := profile(t, "agrenting")
	d := loaded(t, host{name: "native"}, b, Config{poolSize: 1})
	in := &Input{Now: b.Now * 1e9, Method: "GET", Path: "/api/v1/wallet", Header: http.Header{"Authorization": {"Bearer " + b.Keys["user"]}}}
	var res Result
	_ = d.Decide(in, &res)
	if n := testing.AllocsPerRun(50, func() { _ = d.Decide(in, &res) }); n != 0 {
		t.Errorf("native: %.1f allocations per decision", n)
	}
}
