//go:build !wasip1

package main

import (
	"crypto/ed25519"
	"crypto/sha256"
	"net/http"
	"strings"
	"testing"

	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm/proxytest"

	"github.com/latchkeyhq/latchkey/examples/profiles"
	"github.com/latchkeyhq/latchkey/examples/profiles/conformance"
	"github.com/latchkeyhq/latchkey/shared/apikey"
	"github.com/latchkeyhq/latchkey/shared/snapshot"
	"github.com/latchkeyhq/latchkey/wasm/proxywasm/config"
)

// The refresh tests run on the agrenting profile: GET /api/v1/wallet with a user key in
// Authorization or an agent key in X-API-Key is allowed while the snapshot knows the key.
const (
	cluster = "latchkey_snapshots"
	prefix  = "/snapshots"
	wallet  = "/api/v1/wallet"
)

// realm is where a refresh test's store lives: its profile built afresh (the tests change it),
// the store publishing it, and the clusters the emulator can reach.
type realm struct {
	b        *profiles.Built
	store    *store
	clusters map[string]string
}

func newRealm(t *testing.T) *realm {
	t.Helper()
	b, err := profiles.Build("agrenting", conformance.Seed)
	if err != nil {
		t.Fatal(err)
	}
	s := newStore(t, prefix)
	s.publish(t, b)
	return &realm{b: b, store: s, clusters: map[string]string{cluster: s.srv.URL}}
}

// config is the filter's configuration: the snapshot built so far, refreshed from the store;
// edit adjusts it.
func (r *realm) config(edit func(*config.Config)) []byte {
	return fixedConfig(r.b, func(c *config.Config) {
		c.Refresh = &config.Refresh{Cluster: cluster, Authority: "snapshots.example.test", PathPrefix: prefix,
			Realm: r.b.Contents.Realm, IntervalSeconds: 30, TimeoutMillis: 5000}
		if edit != nil {
			edit(c)
		}
	})
}

// next publishes the following version, without the key named drop ("" to keep every key),
// and returns its manifest; store says whether to write it to the store.
func (r *realm) next(t *testing.T, drop string, store bool) []byte {
	t.Helper()
	c := r.b.Contents
	c.Version++
	if drop != "" {
		h := apikey.Hash(sha256.Sum256([]byte(r.b.Keys[drop])))
		kept := c.Keys[:0]
		for _, k := range c.Keys {
			if k.Hash != h {
				kept = append(kept, k)
			}
		}
		if len(kept) == len(c.Keys) {
			t.Fatalf("no key %s to drop", drop)
		}
		c.Keys = kept
	}
	if err := r.b.Publish(); err != nil {
		t.Fatal(err)
	}
	if store {
		r.store.publish(t, r.b)
	}
	return r.b.Manifest
}

// knows reports whether the contents published last hold the key named name.
func (r *realm) knows(name string) bool {
	h := apikey.Hash(sha256.Sum256([]byte(r.b.Keys[name])))
	for _, k := range r.b.Contents.Keys {
		if k.Hash == h {
			return true
		}
	}
	return false
}

func (r *realm) manifestPath() string { return r.b.Contents.Realm + "/manifest" }

// status is what the filter does with GET /api/v1/wallet carrying key: 299 when forwarded.
func status(t *testing.T, f *filter, r *realm, key string) int {
	t.Helper()
	return f.get(t, wallet, "Authorization", "Bearer "+r.b.Keys[key]).Status
}

func wantStatus(t *testing.T, f *filter, r *realm, key string, want int, when string) {
	t.Helper()
	if got := status(t, f, r, key); got != want {
		t.Fatalf("%s: key %s: status %d, want %d (logs:\n%s)", when, key, got, want, f.logs())
	}
}

// refreshed ticks the filter and answers its calls; it returns them.
func refreshed(t *testing.T, f *filter, r *realm) []proxytest.HttpCalloutAttribute {
	t.Helper()
	f.host.Tick()
	return f.serve(t, r.clusters)
}

func header(c proxytest.HttpCalloutAttribute, name string) string {
	for _, h := range c.Headers {
		if h[0] == name {
			return h[1]
		}
	}
	return ""
}

func eachCompiler(t *testing.T, run func(t *testing.T, compiler string)) {
	for _, c := range compilers {
		t.Run(c, func(t *testing.T) { run(t, c) })
	}
}

// TestRefreshLoadsNewerSnapshot: a newer version in the store replaces the held one at the
// next tick: a key it no longer has is refused, the others still pass; the calls go to the
// configured cluster and authority, under the path prefix, and carry the manifest's ETag.
func TestRefreshLoadsNewerSnapshot(t *testing.T) {
	eachCompiler(t, func(t *testing.T, compiler string) {
		r := newRealm(t)
		f := startFilter(t, compiler, r.config(nil))
		calls := f.serve(t, r.clusters) // the refresh at start: the store holds the version held
		if len(calls) != 1 || header(calls[0], ":path") != prefix+"/agrenting/manifest" ||
			header(calls[0], ":authority") != "snapshots.example.test" || calls[0].Upstream != cluster {
			t.Fatalf("refresh at start: %+v", calls)
		}
		if got := f.host.GetTickPeriod(); got != 30000 {
			t.Fatalf("tick period %d ms, want the interval", got)
		}
		wantStatus(t, f, r, "user", 299, "version 1")

		r.next(t, "user", true)
		calls = refreshed(t, f, r)
		// The manifest, then its two objects (meta, one shard), one at a time.
		if len(calls) != 3 || !strings.HasSuffix(header(calls[1], ":path"), "/objects/v2-meta") {
			t.Fatalf("refresh to version 2: %d calls %+v", len(calls), calls)
		}
		if header(calls[0], "if-none-match") == "" {
			t.Fatal("the manifest was fetched again without If-None-Match")
		}
		wantStatus(t, f, r, "user", 401, "version 2 without the user key")
		if got := f.get(t, wallet, "X-API-Key", r.b.Keys["agent3"]).Status; got != 299 {
			t.Fatalf("version 2: agent3 status %d", got)
		}
		if logs := f.logs(); !strings.Contains(logs, "serving realm agrenting snapshot version 2") || f.errorLogs() != "" {
			t.Fatalf("logs:\n%s", logs)
		}
	})
}

// TestRefreshETag: an unchanged manifest is answered 304 to If-None-Match, and nothing else is
// fetched.
func TestRefreshETag(t *testing.T) {
	eachCompiler(t, func(t *testing.T, compiler string) {
		r := newRealm(t)
		f := startFilter(t, compiler, r.config(nil))
		f.serve(t, r.clusters)
		for i := 0; i < 3; i++ {
			calls := refreshed(t, f, r)
			if len(calls) != 1 || header(calls[0], "if-none-match") == "" {
				t.Fatalf("tick %d: %+v", i, calls)
			}
		}
		if n := r.store.hits("/agrenting/objects/v1-meta"); n != 0 {
			t.Fatalf("objects of the version held fetched %d times", n)
		}
		wantStatus(t, f, r, "user", 299, "after 304s")
	})
}

// TestRefreshRefused: whatever the store serves that does not verify leaves the held snapshot
// in service and is logged as an error naming the cause; a good version afterwards still
// loads.
func TestRefreshRefused(t *testing.T) {
	for _, c := range []struct {
		name string
		// serve puts the bad answer in the store (version 1 is held, and the user key known).
		serve func(t *testing.T, r *realm)
		log   string
	}{
		{"rollback", func(t *testing.T, r *realm) {
			// The store serves version 1 while the filter holds 2 (set up below).
		}, "rollback"},
		{"signature-of-a-key-not-pinned", func(t *testing.T, r *realm) {
			other, err := profiles.Build("agrenting", conformance.Seed+1)
			if err != nil {
				t.Fatal(err)
			}
			other.Contents.Version = 5
			if err := other.Publish(); err != nil {
				t.Fatal(err)
			}
			r.store.publish(t, other)
		}, "signature"},
		{"tampered-signature", func(t *testing.T, r *realm) {
			m := append([]byte(nil), r.next(t, "user", true)...)
			m[9] ^= 1 // a byte of the signature
			r.store.write(t, r.manifestPath(), m)
		}, "signature"},
		{"wrong-digest", func(t *testing.T, r *realm) {
			r.next(t, "user", true)
			obj := append([]byte(nil), r.b.Objects[1]...)
			obj[len(obj)-1] ^= 1
			r.store.write(t, "agrenting/objects/v2-shard-0", obj)
		}, "digest"},
		{"manifest-of-another-realm", func(t *testing.T, r *realm) {
			// Signed by the same key (every fixture shares it), for realm opencomputer.
			other, err := profiles.Build("opencomputer", conformance.Seed)
			if err != nil {
				t.Fatal(err)
			}
			other.Contents.Version = 5
			if err := other.Publish(); err != nil {
				t.Fatal(err)
			}
			f := &conformance.Fixture{Built: other, Realm: "opencomputer"}
			files, err := f.Files()
			if err != nil {
				t.Fatal(err)
			}
			for name, data := range files {
				r.store.write(t, "agrenting/"+strings.TrimPrefix(name, "opencomputer/"), data)
			}
		}, `realm "opencomputer"`},
		{"expired-manifest", func(t *testing.T, r *realm) {
			r.b.Contents.IssuedAt, r.b.Contents.ExpiresAt = r.b.Now-7200, r.b.Now-60
			r.next(t, "user", true)
		}, "expired"},
		{"object-of-another-size", func(t *testing.T, r *realm) {
			r.next(t, "user", true)
			r.store.write(t, "agrenting/objects/v2-meta", append(append([]byte(nil), r.b.Objects[0]...), 0))
		}, "bytes"},
	} {
		t.Run(c.name, func(t *testing.T) {
			eachCompiler(t, func(t *testing.T, compiler string) {
				r := newRealm(t)
				cfg := r.config(nil)
				if c.name == "rollback" {
					r.next(t, "agent3", false) // held: version 2, without agent3; the store keeps 1
					cfg = r.config(nil)
				}
				f := startFilter(t, compiler, cfg)
				f.serve(t, r.clusters)
				c.serve(t, r)
				refreshed(t, f, r)
				if logs := f.errorLogs(); !strings.Contains(logs, "snapshot refresh") || !strings.Contains(logs, c.log) {
					t.Fatalf("error logs %q, want the refusal (%q)", logs, c.log)
				}
				if c.name == "rollback" {
					wantStatus(t, f, r, "user", 299, "version 2 held")
					if got := f.get(t, wallet, "X-API-Key", r.b.Keys["agent3"]).Status; got != 401 {
						t.Fatalf("rolled back to version 1: agent3 status %d", got)
					}
					return
				}
				wantStatus(t, f, r, "user", 299, "version 1 held")
				// The store recovers: a good, newer version loads.
				r.b.Contents.IssuedAt, r.b.Contents.ExpiresAt = r.b.Now, r.b.Now+86400
				r.b.Contents.Version = 9
				drop := "user"
				if !r.knows("user") { // the bad version dropped it already
					drop = ""
				}
				r.next(t, drop, true)
				refreshed(t, f, r)
				wantStatus(t, f, r, "user", 401, "version 10 loaded after the refusal")
			})
		})
	}
}

// TestRefreshFailingCluster: a cluster that does not answer, and a store answering 404, leave
// the held snapshot in service, logged as warnings (an outage, not an attack).
func TestRefreshFailingCluster(t *testing.T) {
	eachCompiler(t, func(t *testing.T, compiler string) {
		r := newRealm(t)
		down := startFilter(t, compiler, r.config(func(c *config.Config) { c.Refresh.Cluster = "latchkey_down" }))
		down.serve(t, r.clusters)
		refreshed(t, down, r)
		if logs := strings.Join(down.host.GetWarnLogs(), "\n"); !strings.Contains(logs, "cluster latchkey_down: no answer") {
			t.Fatalf("warn logs %q", logs)
		}
		wantStatus(t, down, r, "user", 299, "cluster down")
	})
	eachCompiler(t, func(t *testing.T, compiler string) {
		r := newRealm(t)
		missing := startFilter(t, compiler, r.config(func(c *config.Config) { c.Refresh.PathPrefix = "/nowhere" }))
		missing.serve(t, r.clusters)
		if logs := strings.Join(missing.host.GetWarnLogs(), "\n"); !strings.Contains(logs, "/nowhere/agrenting/manifest from cluster "+cluster+": status 404") {
			t.Fatalf("warn logs %q", logs)
		}
		wantStatus(t, missing, r, "user", 299, "store answering 404")
	})
}

// TestRefreshBootstrap: without an initial snapshot every request is denied 503 and the tick
// is short until the first refresh loads one; then the interval applies.
func TestRefreshBootstrap(t *testing.T) {
	eachCompiler(t, func(t *testing.T, compiler string) {
		r := newRealm(t)
		f := startFilter(t, compiler, r.config(func(c *config.Config) { c.Snapshot = nil; c.Refresh.Cluster = "latchkey_later" }))
		f.serve(t, r.clusters) // not reachable yet
		wantStatus(t, f, r, "user", 503, "no snapshot yet")
		if got := f.host.GetTickPeriod(); got != bootstrapTickMillis {
			t.Fatalf("tick period %d ms while no snapshot is held", got)
		}
		r.clusters["latchkey_later"] = r.store.srv.URL
		refreshed(t, f, r)
		wantStatus(t, f, r, "user", 299, "first refresh")
		if got := f.host.GetTickPeriod(); got != 30000 {
			t.Fatalf("tick period %d ms once a snapshot is held", got)
		}
	})
}

// TestRefreshStaleness: past max_staleness_seconds every request is denied 503, with the
// policy's rendering; a refresh bringing a snapshot issued since lifts it.
func TestRefreshStaleness(t *testing.T) {
	eachCompiler(t, func(t *testing.T, compiler string) {
		r := newRealm(t)
		later := (r.b.Now + 7200) * 1e9
		lenient := startFilter(t, compiler, r.config(func(c *config.Config) { c.NowOverride = later; c.Refresh = nil }))
		wantStatus(t, lenient, r, "user", 299, "two hours on, no staleness limit")
		lenient.close()

		f := startFilter(t, compiler, r.config(func(c *config.Config) { c.NowOverride = later; c.MaxStalenessSeconds = 3600 }))
		f.serve(t, r.clusters)
		resp := f.get(t, wallet, "Authorization", "Bearer "+r.b.Keys["user"])
		if resp.Status != http.StatusServiceUnavailable || !strings.Contains(string(resp.Body), `"unavailable"`) {
			t.Fatalf("stale snapshot: %d %q", resp.Status, resp.Body)
		}
		r.b.Contents.IssuedAt = r.b.Now + 7200
		r.next(t, "", true)
		refreshed(t, f, r)
		wantStatus(t, f, r, "user", 299, "fresh snapshot loaded")
	})
}

// TestRefreshDelta: a delta version fetches the manifest and the delta only, reusing the base
// objects held (same names and digests).
func TestRefreshDelta(t *testing.T) {
	eachCompiler(t, func(t *testing.T, compiler string) {
		r := newRealm(t)
		pub, priv, err := ed25519.GenerateKey(nil)
		if err != nil {
			t.Fatal(err)
		}
		signer := snapshot.Ed25519Signer{Key: priv, ID: "test"}
		c := r.b.Contents
		base, err := snapshot.Build(c, snapshot.BuildOptions{})
		if err != nil {
			t.Fatal(err)
		}
		m1 := &snapshot.Manifest{Realm: c.Realm, Version: 1, IssuedAt: c.IssuedAt, ExpiresAt: c.ExpiresAt}
		var objs [][]byte
		for _, o := range base {
			m1.Objects = append(m1.Objects, snapshot.ObjectRef{Name: o.Name, Size: uint64(len(o.Data)), SHA256: sha256.Sum256(o.Data)})
			objs = append(objs, o.Data)
			r.store.write(t, "agrenting/objects/"+o.Name, o.Data)
		}
		raw1, err := snapshot.SignManifest(m1, signer)
		if err != nil {
			t.Fatal(err)
		}
		r.store.write(t, r.manifestPath(), raw1)
		f := startFilter(t, compiler, config.Marshal(&config.Config{
			ManifestKeys: []snapshot.TrustedKey{{Alg: snapshot.AlgEd25519, Public: pub}},
			Snapshot:     &config.Snapshot{Manifest: raw1, Objects: objs},
			NowOverride:  r.b.Now * 1e9,
			Refresh:      &config.Refresh{Cluster: cluster, Authority: "s", PathPrefix: prefix, Realm: "agrenting", IntervalSeconds: 30, TimeoutMillis: 5000},
		}))
		f.serve(t, r.clusters)
		wantStatus(t, f, r, "user", 299, "base")

		d, err := snapshot.BuildDelta(&snapshot.Delta{Realm: c.Realm, BaseVersion: 1, Version: 2, IssuedAt: c.IssuedAt, ExpiresAt: c.ExpiresAt,
			RemoveKeys: []apikey.Hash{apikey.Hash(sha256.Sum256([]byte(r.b.Keys["user"])))}})
		if err != nil {
			t.Fatal(err)
		}
		m2 := *m1
		m2.Version, m2.BaseVersion = 2, 1
		m2.Delta = &snapshot.ObjectRef{Name: d.Name, Size: uint64(len(d.Data)), SHA256: sha256.Sum256(d.Data)}
		raw2, err := snapshot.SignManifest(&m2, signer)
		if err != nil {
			t.Fatal(err)
		}
		r.store.write(t, "agrenting/objects/"+d.Name, d.Data)
		r.store.write(t, r.manifestPath(), raw2)
		calls := refreshed(t, f, r)
		if len(calls) != 2 || header(calls[1], ":path") != prefix+"/agrenting/objects/"+d.Name {
			t.Fatalf("delta refresh: %+v", calls)
		}
		wantStatus(t, f, r, "user", 401, "delta removing the user key")
		if r.store.hits("/agrenting/objects/"+base[0].Name) != 0 {
			t.Fatal("a base object held was fetched again")
		}
	})
}

// TestRefresherAbandonsLostAnswer: a refresh whose answer never comes blocks new ones for
// twice the timeout only, and its answer, arriving after all, is ignored; one its host could
// not send blocks nothing.
func TestRefresherAbandonsLostAnswer(t *testing.T) {
	r := newRefresher(&config.Refresh{Cluster: cluster, Authority: "a", Realm: "agrenting", IntervalSeconds: 1, TimeoutMillis: 1000}, nil)
	lost, ok := r.begin(0)
	if !ok || lost.path != "/agrenting/manifest" {
		t.Fatalf("first refresh: %+v %v", lost, ok)
	}
	if _, ok := r.begin(1999e6); ok {
		t.Fatal("a second refresh started while the first may still be answered")
	}
	next, ok := r.begin(2000e6)
	if !ok || next.gen == lost.gen {
		t.Fatalf("the lost refresh was not abandoned: %+v %v", next, ok)
	}
	if out := r.receive(lost.gen, 500, "", 0, nil, 2001e6); out != (outcome{}) || !r.busy {
		t.Fatalf("the abandoned refresh's answer was taken: %+v", out)
	}
	if out := r.receive(next.gen, 500, "", 0, nil, 2001e6); out.err == "" || r.busy {
		t.Fatalf("the current refresh's answer: %+v", out)
	}
	// A request the host could not send: the next tick starts over at once.
	unsent, _ := r.begin(3000e6)
	r.abort()
	if again, ok := r.begin(3001e6); !ok || again.gen == unsent.gen {
		t.Fatalf("after abort: %+v %v", again, ok)
	}
}
