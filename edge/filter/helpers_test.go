package filter

import (
	"context"
	"crypto/sha256"
	"net/http"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"

	"github.com/latchkeyhq/latchkey/examples/profiles"
	"github.com/latchkeyhq/latchkey/internal/wasmbuild"
	"github.com/latchkeyhq/latchkey/shared/snapshot"
	"github.com/latchkeyhq/latchkey/shared/verifier"
)

// Tests and benchmarks run every decision on five hosts: the native core, and the verifier
// module in its four builds hosted by wazero.

var builder *wasmbuild.Builder

func TestMain(m *testing.M) {
	b, cleanup, err := wasmbuild.Temp("../..")
	if err != nil {
		panic(err)
	}
	builder = b
	code := m.Run()
	for _, mod := range modules.m {
		if mod.mod != nil {
			mod.mod.close(context.Background())
		}
	}
	cleanup()
	os.Exit(code)
}

// host is where decisions run: variant nil means the native core.
type host struct {
	name    string
	variant *wasmbuild.Variant
}

func hosts() []host {
	hs := []host{{name: "native"}}
	for i := range wasmbuild.Variants {
		v := &wasmbuild.Variants[i]
		hs = append(hs, host{name: "wazero-" + v.Name, variant: v})
	}
	return hs
}

// wasmFile returns the variant's module, building it when needed. A missing TinyGo skips the
// test, except in CI.
func wasmFile(t testing.TB, v *wasmbuild.Variant) []byte {
	t.Helper()
	return builder.Module(t, *v)
}

// modules compiles each variant once per test binary run; instances come from it.
var modules = struct {
	sync.Mutex
	m     map[string]*compiledVariant
	cache wazero.CompilationCache
}{m: map[string]*compiledVariant{}}

type compiledVariant struct {
	mod  *module
	err  error
	size int
}

func compiledModule(t testing.TB, v *wasmbuild.Variant) *module {
	t.Helper()
	wasm := wasmFile(t, v)
	modules.Lock()
	defer modules.Unlock()
	if modules.cache == nil {
		modules.cache = wazero.NewCompilationCache()
	}
	c, ok := modules.m[v.Name]
	if !ok {
		c = &compiledVariant{size: len(wasm)}
		c.mod, c.err = compile(context.Background(), wasm, modules.cache)
		modules.m[v.Name] = c
	}
	if c.err != nil {
		t.Fatal(c.err)
	}
	return c.mod
}

// newDecider returns a fresh decider on h (fresh token caches and rate buckets).
func newDecider(t testing.TB, h host, cfg Config) Decider {
	t.Helper()
	if h.variant == nil {
		return newNative(cfg)
	}
	d, err := newWasmDecider(compiledModule(t, h.variant), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.pool.closeAll() })
	return d
}

// closeAll closes the idle instances of a decider over a shared module.
func (p *pool[T]) closeAll() {
	for {
		x, ok := p.tryGet()
		if !ok {
			return
		}
		if in, ok := any(x).(*instance); ok {
			in.mod.Close(context.Background())
		}
	}
}

func fixedClock(unix int64) func() time.Time {
	return func() time.Time { return time.Unix(unix, 0) }
}

var builtProfiles = struct {
	sync.Mutex
	m map[string]*profiles.Built
}{m: map[string]*profiles.Built{}}

// profile returns the profile's fixture (built once; callers must not change it).
func profile(t testing.TB, name string) *profiles.Built {
	t.Helper()
	builtProfiles.Lock()
	defer builtProfiles.Unlock()
	if b, ok := builtProfiles.m[name]; ok {
		return b
	}
	b, err := profiles.Build(name, 1)
	if err != nil {
		t.Fatal(err)
	}
	builtProfiles.m[name] = b
	return b
}

// loaded returns a decider on h holding the fixture's snapshot, deciding at the fixture's now.
func loaded(t testing.TB, h host, b *profiles.Built, cfg Config) Decider {
	t.Helper()
	cfg.trusted = []snapshot.TrustedKey{b.Trusted}
	cfg.now = fixedClock(b.Now)
	d := newDecider(t, h, cfg)
	if _, err := d.SetSnapshot(Snapshot{Manifest: b.Manifest, Objects: b.Objects}); err != nil {
		t.Fatalf("%s: %v", h.name, err)
	}
	return d
}

// input turns a resolved case into a decider input; queryParam names the query credential.
func input(r *profiles.Resolved, now int64, queryParam string) *Input {
	in := &Input{Now: now * 1e9, Method: r.Method, Path: r.Path, Header: http.Header{}}
	for _, h := range r.Headers {
		in.Header.Add(h[0], h[1])
	}
	if r.QueryToken != "" {
		if queryParam == "" {
			queryParam = "token"
		}
		in.RawQuery = "a=1&" + url.QueryEscape(queryParam) + "=" + url.QueryEscape(r.QueryToken)
	}
	return in
}

// outcome reports a decision in host-neutral form.
func outcome(res *Result) *profiles.Outcome {
	o := &profiles.Outcome{Status: res.Status, Route: string(res.Route)}
	if !res.Allow {
		o.Reason = res.Reason()
		o.Body = append([]byte(nil), res.Body...)
		o.Headers = map[string]string{}
		for _, h := range res.Headers {
			o.Headers[string(h.Name)] = string(h.Value)
		}
		return o
	}
	o.Identity = map[string]string{
		"org": string(res.Org), "key_id": string(res.KeyID), "key_type": string(res.KeyType), "scopes": string(res.Scopes),
		"agent": string(res.Agent), "session": string(res.Session), "credential": verifier.Credential(res.Credential).String(),
	}
	return o
}

func sha256Sum(s string) [32]byte { return sha256.Sum256([]byte(s)) }
