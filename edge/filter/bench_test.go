package filter

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"

	"github.com/latchkeyhq/latchkey/examples/profiles"
	"github.com/latchkeyhq/latchkey/internal/wasmbuild"
	"github.com/latchkeyhq/latchkey/shared/apikey"
	"github.com/latchkeyhq/latchkey/shared/policy"
	"github.com/latchkeyhq/latchkey/shared/snapshot"
	"github.com/latchkeyhq/latchkey/shared/verifier"
)

// benchCase is one request of agrenting's fixture (a realm without rate classes, so that a
// long run keeps being allowed).
type benchCase struct {
	name      string
	in        *Input
	cacheSize int
}

func benchCases(b testing.TB) []benchCase {
	fx := profile(b, "agrenting")
	req := func(cred string) *Input {
		return &Input{Now: fx.Now * 1e9, Method: "GET", Path: "/api/v1/wallet", Header: http.Header{"Authorization": {"Bearer " + cred}}}
	}
	return []benchCase{
		{"apikey", req(fx.Keys["user"]), 0},
		// The token cache off: every decision verifies the signature.
		{"token-first", req(fx.Tokens["login"]), -1},
		{"token-cached", req(fx.Tokens["login"]), 0},
	}
}

// BenchmarkDecision is one decision through a Decider on each host: the native core and the
// four module builds on wazero. Ratios are against native in the same run.
func BenchmarkDecision(b *testing.B) {
	fx := profile(b, "agrenting")
	for _, h := range hosts() {
		b.Run(h.name, func(b *testing.B) {
			for _, c := range benchCases(b) {
				b.Run(c.name, func(b *testing.B) {
					d := loaded(b, h, fx, Config{poolSize: 1, tokenCacheSize: c.cacheSize})
					var res Result
					if err := d.Decide(c.in, &res); err != nil || !res.Allow {
						b.Fatalf("%v %d %s", err, res.Status, res.Reason())
					}
					b.ReportAllocs()
					for b.Loop() {
						_ = d.Decide(c.in, &res)
					}
				})
			}
		})
	}
}

// BenchmarkBaseline measures what BenchmarkDecision is judged against: the core's Engine
// called directly (no Decider, no copy of the decision) and a bare Ed25519 verification of
// the benchmark token's signature with crypto/ed25519.
func BenchmarkBaseline(b *testing.B) {
	fx := profile(b, "agrenting")
	st := loadedState(b)
	for _, c := range benchCases(b) {
		b.Run("core/"+c.name, func(b *testing.B) {
			e := verifier.NewEngine(verifier.Options{TokenCacheSize: c.cacheSize})
			e.SetState(st)
			var r verifier.Request
			request(c.in, nativeInfo(b, st), &r)
			if d := e.Decide(&r); !d.Allow {
				b.Fatal(d.Status)
			}
			b.ReportAllocs()
			for b.Loop() {
				e.Decide(&r)
			}
		})
	}
	b.Run("ed25519-verify", func(b *testing.B) {
		tok := fx.Tokens["login"]
		i := strings.LastIndexByte(tok, '.')
		sig, err := base64.RawURLEncoding.DecodeString(tok[i+1:])
		if err != nil {
			b.Fatal(err)
		}
		msg := []byte(tok[:i])
		pub := fx.TokenKey.Public().(ed25519.PublicKey)
		if !ed25519.Verify(pub, msg, sig) {
			b.Fatal("token signature does not verify")
		}
		b.ReportAllocs()
		for b.Loop() {
			ed25519.Verify(pub, msg, sig)
		}
	})
}

func loadedState(b *testing.B) *verifier.State {
	d := loaded(b, host{name: "native"}, profile(b, "agrenting"), Config{})
	return d.(*native).cur.Load().st
}

func nativeInfo(b *testing.B, st *verifier.State) *Info {
	d := loaded(b, host{name: "native"}, profile(b, "agrenting"), Config{})
	return d.(*native).cur.Load().info
}

// BenchmarkFilter is the whole middleware on an allowed API-key request: decision, identity
// headers, upstream call (a no-op handler).
func BenchmarkFilter(b *testing.B) {
	fx := profile(b, "agrenting")
	for _, h := range hosts() {
		b.Run(h.name+"/apikey", func(b *testing.B) {
			d := loaded(b, h, fx, Config{poolSize: 1})
			f := &Filter{decider: d, now: fixedClock(fx.Now), next: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})}
			r := httptest.NewRequest("GET", "/api/v1/wallet", nil)
			r.Header.Set("Authorization", "Bearer "+fx.Keys["user"])
			w := httptest.NewRecorder()
			f.ServeHTTP(w, r)
			if w.Code != 200 {
				b.Fatal(w.Code)
			}
			b.ReportAllocs()
			for b.Loop() {
				f.ServeHTTP(w, r)
			}
		})
	}
}

// BenchmarkColdStart measures what a host pays before its first decision, per module build:
// compiling with no cache, compiling from the on-disk compilation cache (a new cache object
// per iteration, so only the directory helps), and instantiating (_initialize, ABI check,
// engine options, request buffer) plus loading a snapshot. Each reports the module's size.
func BenchmarkColdStart(b *testing.B) {
	ctx := context.Background()
	fx := profile(b, "agrenting")
	for i := range wasmbuild.Variants {
		v := &wasmbuild.Variants[i]
		b.Run(v.Name, func(b *testing.B) {
			wasm := wasmFile(b, v)
			size := float64(len(wasm))
			b.Run("compile", func(b *testing.B) {
				for b.Loop() {
					m, err := compile(ctx, wasm, nil)
					if err != nil {
						b.Fatal(err)
					}
					m.close(ctx)
				}
				b.ReportMetric(size, "module-bytes")
			})
			b.Run("compile-cached", func(b *testing.B) {
				dir := filepath.Join(b.TempDir(), "cache")
				warm, _ := wazero.NewCompilationCacheWithDir(dir)
				m, err := compile(ctx, wasm, warm)
				if err != nil {
					b.Fatal(err)
				}
				m.close(ctx)
				warm.Close(ctx)
				for b.Loop() {
					c, err := wazero.NewCompilationCacheWithDir(dir)
					if err != nil {
						b.Fatal(err)
					}
					m, err := compile(ctx, wasm, c)
					if err != nil {
						b.Fatal(err)
					}
					m.close(ctx)
					c.Close(ctx)
				}
				b.ReportMetric(size, "module-bytes")
			})
			m := compiledModule(b, v)
			cfg := Config{now: fixedClock(fx.Now)}
			b.Run("instantiate", func(b *testing.B) {
				for b.Loop() {
					in, err := instantiate(ctx, m, &cfg)
					if err != nil {
						b.Fatal(err)
					}
					in.mod.Close(ctx)
				}
				b.ReportMetric(size, "module-bytes")
			})
			b.Run("instantiate+load", func(b *testing.B) {
				d := loaded(b, host{name: v.Name, variant: v}, fx, Config{})
				snap := d.(*wasmDecider).cur.Load()
				for b.Loop() {
					in, err := instantiate(ctx, m, &cfg)
					if err != nil {
						b.Fatal(err)
					}
					if err := in.loadSnap(snap); err != nil {
						b.Fatal(err)
					}
					in.mod.Close(ctx)
				}
				b.ReportMetric(size, "module-bytes")
			})
		})
	}
}

// big1M is agrenting's fixture with a million more keys, built once.
var big1M struct {
	sync.Once
	b *profiles.Built
}

func bigSnapshot(b *testing.B) *profiles.Built {
	big1M.Do(func() {
		fx, err := profiles.Build("agrenting", 1)
		if err != nil {
			b.Fatal(err)
		}
		rng := rand.NewChaCha8([32]byte{'1', 'M'})
		org := fx.Contents.Keys[0].Org
		for i := 0; i < 1_000_000; i++ {
			var h apikey.Hash
			_, _ = rng.Read(h[:16])
			fx.Contents.Keys = append(fx.Contents.Keys, snapshot.KeyRecord{Hash: h, Org: org, Scopes: policy.AllScopes})
		}
		fx.Contents.Version++
		if err := fx.Publish(); err != nil {
			b.Fatal(err)
		}
		big1M.b = fx
	})
	if big1M.b == nil {
		b.Fatal("no 1M-key snapshot")
	}
	return big1M.b
}

// BenchmarkSnapshot1M loads a snapshot of a million keys (32 MB) into one engine or instance
// (signature, every object's SHA-256, structure), then decides API-key requests from it; the
// decision reports its p99 and worst single latency too, where a Wasm guest's garbage
// collector would show.
func BenchmarkSnapshot1M(b *testing.B) {
	fx := bigSnapshot(b)
	var size int
	for _, o := range fx.Objects {
		size += len(o)
	}
	for _, h := range hosts() {
		b.Run(h.name+"/load", func(b *testing.B) {
			for b.Loop() {
				d := newDecider(b, h, Config{poolSize: 1, now: fixedClock(fx.Now), trusted: []snapshot.TrustedKey{fx.Trusted}})
				if _, err := d.SetSnapshot(Snapshot{Manifest: fx.Manifest, Objects: fx.Objects}); err != nil {
					b.Fatal(err)
				}
				if w, ok := d.(*wasmDecider); ok {
					w.pool.closeAll()
				}
			}
			b.ReportMetric(float64(size), "snapshot-bytes")
		})
		b.Run(h.name+"/apikey", func(b *testing.B) {
			d := loaded(b, h, fx, Config{poolSize: 1})
			in := &Input{Now: fx.Now * 1e9, Method: "GET", Path: "/api/v1/wallet", Header: http.Header{"Authorization": {"Bearer " + fx.Keys["user"]}}}
			var res Result
			if err := d.Decide(in, &res); err != nil || !res.Allow {
				b.Fatalf("%v %d", err, res.Status)
			}
			b.ReportAllocs()
			for b.Loop() {
				_ = d.Decide(in, &res)
			}
			b.StopTimer()
			lat := make([]time.Duration, 20000)
			for i := range lat {
				t := time.Now()
				_ = d.Decide(in, &res)
				lat[i] = time.Since(t)
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)*99/100]), "p99-ns")
			b.ReportMetric(float64(lat[len(lat)-1]), "max-ns")
		})
	}
}
