package filter

import (
	"errors"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/latchkeyhq/latchkey/examples/profiles"
	"github.com/latchkeyhq/latchkey/shared/snapshot"
	"github.com/latchkeyhq/latchkey/wasm/verifier/abi"
)

// republish returns a fresh copy of the profile's fixture at version v, with the keys named in
// drop left out of the snapshot.
func republish(t testing.TB, name string, v uint64, drop ...string) *profiles.Built {
	t.Helper()
	b, err := profiles.Build(name, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range drop {
		h := hashOf(b.Keys[k])
		keys := b.Contents.Keys[:0]
		for _, r := range b.Contents.Keys {
			if r.Hash != h {
				keys = append(keys, r)
			}
		}
		if len(keys) == len(b.Contents.Keys) {
			t.Fatalf("key %s not in the snapshot", k)
		}
		b.Contents.Keys = keys
	}
	b.Contents.Version = v
	if err := b.Publish(); err != nil {
		t.Fatal(err)
	}
	return b
}

// keyRequest is opencomputer's org key creating a session.
func keyRequest(b *profiles.Built, now int64) *Input {
	return &Input{Now: now * 1e9, Method: "POST", Path: "/v3/sessions", Header: http.Header{"Authorization": {"Bearer " + b.Keys["org"]}}}
}

func decide(t testing.TB, d Decider, in *Input) *Result {
	t.Helper()
	var res Result
	if err := d.Decide(in, &res); err != nil {
		t.Fatal(err)
	}
	return &res
}

// TestSnapshotLoad checks, on every host, what a load refuses and that a refused load leaves
// the snapshot held in service.
func TestSnapshotLoad(t *testing.T) {
	v1 := profile(t, "opencomputer")
	v2 := republish(t, "opencomputer", v1.Contents.Version+1, "org")
	for _, h := range hosts() {
		t.Run(h.name, func(t *testing.T) {
			cfg := Config{now: fixedClock(v1.Now), trusted: []snapshot.TrustedKey{v1.Trusted}}
			d := newDecider(t, h, cfg)
			if res := decide(t, d, keyRequest(v1, v1.Now)); res.Status != 503 || res.Reason() != "unavailable" || res.Snapshot != nil {
				t.Fatalf("before any snapshot: %d %s", res.Status, res.Reason())
			}
			info, err := d.SetSnapshot(Snapshot{Manifest: v1.Manifest, Objects: v1.Objects})
			if err != nil {
				t.Fatal(err)
			}
			if info.Version != v1.Contents.Version || info.Realm != "opencomputer" || info.QueryParam != "token" {
				t.Fatalf("info %+v", info)
			}
			if res := decide(t, d, keyRequest(v1, v1.Now)); !res.Allow {
				t.Fatalf("v1: %d %s", res.Status, res.Reason())
			}
			if _, err := d.SetSnapshot(Snapshot{Manifest: v2.Manifest, Objects: v2.Objects}); err != nil {
				t.Fatal(err)
			}
			if res := decide(t, d, keyRequest(v1, v1.Now)); res.Allow || res.Reason() != "invalid" || res.Snapshot.Version != v2.Contents.Version {
				t.Fatalf("v2 removed the key: %d %s", res.Status, res.Reason())
			}

			refuse := func(name string, s Snapshot, want error) {
				t.Helper()
				_, err := d.SetSnapshot(s)
				var le *abi.LoadError
				if !errors.Is(err, want) || !errors.As(err, &le) || le.Text == "" {
					t.Errorf("%s: %v, want %v", name, err, want)
				}
				if res := decide(t, d, keyRequest(v1, v1.Now)); res.Snapshot.Version != v2.Contents.Version || res.Allow {
					t.Errorf("%s: a refused load changed the snapshot held (now version %d)", name, res.Snapshot.Version)
				}
			}
			t.Run("RollbackRefused", func(t *testing.T) {
				refuse("rollback", Snapshot{Manifest: v1.Manifest, Objects: v1.Objects}, snapshot.ErrRollback)
			})
			t.Run("ForgedSignatureRefused", func(t *testing.T) {
				m := append([]byte(nil), v2.Manifest...)
				m[len(m)-1] ^= 1
				refuse("signature", Snapshot{Manifest: m, Objects: v2.Objects}, snapshot.ErrSignature)
			})
			t.Run("TamperedObjectRefused", func(t *testing.T) {
				objs := append([][]byte(nil), v2.Objects...)
				objs[0] = append([]byte(nil), objs[0]...)
				objs[0][len(objs[0])-1] ^= 1
				refuse("digest", Snapshot{Manifest: v2.Manifest, Objects: objs}, snapshot.ErrDigest)
			})
			t.Run("OtherRealmRefused", func(t *testing.T) {
				// Same pinned key, newer version, another realm's stream.
				other := republish(t, "agrenting", v2.Contents.Version+5)
				refuse("realm", Snapshot{Manifest: other.Manifest, Objects: other.Objects}, snapshot.ErrRealm)
			})
			t.Run("UnpinnedKeyRefused", func(t *testing.T) {
				// Another seed: the same profile signed by a manifest key nobody pinned.
				other, err := profiles.Build("opencomputer", 2)
				if err != nil {
					t.Fatal(err)
				}
				other.Contents.Version = v2.Contents.Version + 5
				if err := other.Publish(); err != nil {
					t.Fatal(err)
				}
				refuse("unpinned", Snapshot{Manifest: other.Manifest, Objects: other.Objects}, snapshot.ErrSignature)
			})
		})
	}
}

// TestExpiredManifestRefused: a frozen stream (manifest past its expiry) does not load.
func TestExpiredManifestRefused(t *testing.T) {
	b := profile(t, "opencomputer")
	for _, h := range hosts() {
		t.Run(h.name, func(t *testing.T) {
			d := newDecider(t, h, Config{now: fixedClock(b.Contents.ExpiresAt + 1), trusted: []snapshot.TrustedKey{b.Trusted}})
			if _, err := d.SetSnapshot(Snapshot{Manifest: b.Manifest, Objects: b.Objects}); !errors.Is(err, snapshot.ErrExpired) {
				t.Fatalf("%v, want ErrExpired", err)
			}
		})
	}
}

// TestCachedTokenExpires: a verified token is served from the cache only until it expires
// (exp plus the realm's leeway), on every host.
func TestCachedTokenExpires(t *testing.T) {
	b := profile(t, "opencomputer")
	for _, h := range hosts() {
		t.Run(h.name, func(t *testing.T) {
			d := loaded(t, h, b, Config{})
			in := &Input{Method: "GET", Path: "/v3/sessions/sess_1/events", Header: http.Header{"Authorization": {"Bearer " + b.Tokens["t1"]}}}
			for _, c := range []struct {
				at   int64
				want string
			}{{b.Now, "none"}, {b.Now + 1, "none"}, {b.Now + 600 + 29, "none"}, {b.Now + 600 + 30, "expired"}, {b.Now + 5, "none"}} {
				in.Now = c.at * 1e9
				if res := decide(t, d, in); res.Reason() != c.want {
					t.Errorf("at now+%d: %s, want %s", c.at-b.Now, res.Reason(), c.want)
				}
			}
		})
	}
}

// TestSwapUnderLoad swaps snapshots while requests run on every instance: no request fails,
// and once SetSnapshot returns, every decision uses the new snapshot.
func TestSwapUnderLoad(t *testing.T) {
	base := profile(t, "opencomputer")
	versions := []*profiles.Built{base}
	for i := uint64(1); i <= 4; i++ {
		var drop []string
		if i%2 == 1 {
			drop = []string{"org"}
		}
		versions = append(versions, republish(t, "opencomputer", base.Contents.Version+i, drop...))
	}
	for _, h := range hosts() {
		t.Run(h.name, func(t *testing.T) {
			d := loaded(t, h, base, Config{poolSize: 3})
			var stop atomic.Bool
			var failures atomic.Int64
			var wg sync.WaitGroup
			for g := 0; g < 4; g++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					var res Result
					in := keyRequest(base, base.Now)
					for !stop.Load() {
						if err := d.Decide(in, &res); err != nil {
							failures.Add(1)
							t.Error(err)
							return
						}
						// The key is in even versions only: a decision must match the snapshot
						// it reports.
						even := (res.Snapshot.Version-base.Contents.Version)%2 == 0
						if res.Allow != even {
							failures.Add(1)
							t.Errorf("version %d: allow=%v", res.Snapshot.Version, res.Allow)
							return
						}
					}
				}()
			}
			for _, v := range versions[1:] {
				if _, err := d.SetSnapshot(Snapshot{Manifest: v.Manifest, Objects: v.Objects}); err != nil {
					t.Fatal(err)
				}
				for i := 0; i < 5; i++ {
					if res := decide(t, d, keyRequest(base, base.Now)); res.Snapshot.Version != v.Contents.Version {
						t.Fatalf("after swapping to %d, decided with %d", v.Contents.Version, res.Snapshot.Version)
					}
				}
			}
			stop.Store(true)
			wg.Wait()
			if failures.Load() != 0 {
				t.Fatalf("%d failures", failures.Load())
			}
		})
	}
}

// TestRateLimitRetryAfter: the 429 of an exhausted bucket reaches the client with Retry-After.
func TestRateLimitRetryAfter(t *testing.T) {
	b := profile(t, "computer-agents")
	for _, h := range hosts() {
		t.Run(h.name, func(t *testing.T) {
			d := loaded(t, h, b, Config{poolSize: 1})
			// A standard key: rate class standard, 10/s with a burst of 100.
			c := &profiles.Resolved{Method: "GET", Path: "/v1/threads", Headers: [][2]string{{"Authorization", "Bearer " + b.Keys["full"]}}}
			in := input(c, b.Now, "")
			var res Result
			n := 0
			for ; n < 1000; n++ {
				if err := d.Decide(in, &res); err != nil {
					t.Fatal(err)
				}
				if !res.Allow {
					break
				}
			}
			if res.Status != 429 || res.RetryAfter <= 0 {
				t.Fatalf("after %d requests: %d %s retry-after %d", n, res.Status, res.Reason(), res.RetryAfter)
			}
			w := &headerRecorder{h: http.Header{}}
			writeDenial(w, &res)
			if w.code != 429 || w.h.Get("Retry-After") != strconv.FormatInt(res.RetryAfter, 10) {
				t.Fatalf("written %d, Retry-After %q", w.code, w.h.Get("Retry-After"))
			}
		})
	}
}

type headerRecorder struct {
	h    http.Header
	code int
	body []byte
}

func (r *headerRecorder) Header() http.Header  { return r.h }
func (r *headerRecorder) WriteHeader(code int) { r.code = code }
func (r *headerRecorder) Write(p []byte) (int, error) {
	r.body = append(r.body, p...)
	return len(p), nil
}

func hashOf(key string) (h [32]byte) { return sha256Sum(key) }
