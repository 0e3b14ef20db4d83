package publisher

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/controlplane/store"
	"github.com/latchkeyhq/latchkey/shared/apikey"
	"github.com/latchkeyhq/latchkey/shared/hostcrypto"
	"github.com/latchkeyhq/latchkey/shared/snapshot"
)

// benchDir holds the databases generated once per test binary; TestMain removes it. With
// LATCHKEY_BENCH_DIR set, they are kept in that directory instead and reused by later runs
// (generating a million keys takes about two minutes).
var benchDir struct {
	once sync.Once
	path string
	keep bool
	err  error
}

const benchDirEnv = "LATCHKEY_BENCH_DIR"

func benchTempDir(b *testing.B) (string, bool) {
	benchDir.once.Do(func() {
		if d := os.Getenv(benchDirEnv); d != "" {
			benchDir.path, benchDir.keep, benchDir.err = d, true, os.MkdirAll(d, 0o755)
			return
		}
		benchDir.path, benchDir.err = os.MkdirTemp("", "latchkey-publisher-bench-")
	})
	if benchDir.err != nil {
		b.Fatal(benchDir.err)
	}
	return benchDir.path, benchDir.keep
}

func TestMain(m *testing.M) {
	code := m.Run()
	if benchDir.path != "" && !benchDir.keep {
		_ = os.RemoveAll(benchDir.path)
	}
	os.Exit(code)
}

// benchKey returns stored key number n of a generated realm: three in four "live" keys with
// one or two scopes, one in four "agent" keys acting for one of 64 agents; 1,000 orgs.
func benchKey(realm string, n int) store.APIKey {
	var seed [8]byte
	binary.BigEndian.PutUint64(seed[:], uint64(n))
	h := apikey.Hash(sha256.Sum256(seed[:]))
	k := store.APIKey{
		ID: h.ID().String(), Realm: realm, Hash: h, Prefix: "lk_live_", Last4: "a1B2", Name: "bench " + strconv.Itoa(n),
		Type: "live", Scopes: []string{"read"}, Org: "org-" + strconv.Itoa(n%1000), CreatedAt: t0,
	}
	switch n % 4 {
	case 1:
		k.Scopes = []string{"read", "write"}
	case 3:
		k.Prefix, k.Type, k.Agents = "lk_agent_", "agent", []string{"agent-" + strconv.Itoa(n%64)}
	}
	if n%10 == 0 {
		exp := t0.Add(365 * 24 * time.Hour)
		k.ExpiresAt = &exp
	}
	return k
}

// benchStores caches generated stores by key count: generating a million keys takes a while,
// and is not what the benchmarks measure.
var benchStores benchStoreCache

type benchStoreCache struct {
	mu     sync.Mutex
	stores map[int]*benchStore
}

type benchStore struct {
	st      store.Store
	env     *env
	realm   string
	revoked int // keys revoked so far, from the last one down
}

// generatedStore returns a SQLite store whose realm "bench" holds n keys, made once per test
// binary with store.CreateKeys batches.
func generatedStore(b *testing.B, n int) *benchStore {
	benchStores.mu.Lock()
	defer benchStores.mu.Unlock()
	if bs := benchStores.stores[n]; bs != nil {
		return bs
	}
	dir, keep := benchTempDir(b)
	path := filepath.Join(dir, "bench-"+strconv.Itoa(n)+".db")
	st, err := store.Open(context.Background(), "sqlite://"+path)
	if err != nil {
		b.Fatal(err)
	}
	// The store outlives this benchmark (later ones reuse it); the process exit closes it.
	if keep {
		if bs := reuseStore(b, st, n); bs != nil {
			benchStores.put(n, bs)
			return bs
		}
	}
	e := newEnv(b, st, "bench")
	start := time.Now()
	batch := make([]store.APIKey, 0, store.MaxBatch)
	for i := 0; i < n; i++ {
		batch = append(batch, benchKey("bench", i))
		if len(batch) == cap(batch) || i == n-1 {
			if err := st.CreateKeys(context.Background(), "bench", batch); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	b.Logf("generated %d keys in %v", n, time.Since(start).Round(time.Millisecond))
	bs := &benchStore{st: st, env: e, realm: "bench"}
	benchStores.put(n, bs)
	return bs
}

func (c *benchStoreCache) put(n int, bs *benchStore) {
	if c.stores == nil {
		c.stores = map[int]*benchStore{}
	}
	c.stores[n] = bs
}

// reuseStore returns a store kept by an earlier run, with its revoked keys counted, or nil
// when st is new. The manifest key is new; the token signing key is not needed.
func reuseStore(b *testing.B, st store.Store, n int) *benchStore {
	ctx := context.Background()
	if _, err := st.GetRealm(ctx, "bench"); err != nil {
		return nil
	}
	active, err := st.CountKeys(ctx, "bench", store.KeyFilter{Now: t0.Add(time.Hour)})
	if err != nil {
		b.Fatal(err)
	}
	total, err := st.CountKeys(ctx, "bench", store.KeyFilter{IncludeRevoked: true})
	if err != nil {
		b.Fatal(err)
	}
	if total != n {
		b.Fatalf("%s: kept store holds %d keys, want %d: remove it", benchDirEnv, total, n)
	}
	e := &env{t: b, st: st, realm: "bench", clock: newClock(), signer: newManifestKey(b)}
	return &benchStore{st: st, env: e, realm: "bench", revoked: total - active}
}

func skipLarge(b *testing.B) {
	if testing.Short() {
		b.Skip("large-store benchmarks are skipped with -short")
	}
}

// BenchmarkBuild1M measures what a full publication of a 1M-key realm costs before any
// upload: BuildContents (store read + policy mapping), snapshot.Build (encode) and the
// manifest (object digests + signature). Target (DESIGN.md, PERFORMANCE): ≤ 3 s. The
// sub-benchmark "store-scan" is the baseline: ActiveKeys alone, doing nothing per key.
func BenchmarkBuild1M(b *testing.B) {
	skipLarge(b)
	const n = 1_000_000
	bs := generatedStore(b, n)
	ctx := context.Background()
	now := t0.Add(time.Hour)

	b.Run("store-scan", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			count := 0
			if _, err := bs.st.ActiveKeys(ctx, bs.realm, now, func(store.APIKey) error { count++; return nil }); err != nil || count != n {
				b.Fatalf("%d keys, %v", count, err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/key")
	})

	b.Run("snapshot-scan", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			count := 0
			if _, err := store.ActiveSnapshotKeys(ctx, bs.st, bs.realm, now, func(*store.APIKey) error { count++; return nil }); err != nil || count != n {
				b.Fatalf("%d keys, %v", count, err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/key")
	})

	b.Run("full", func(b *testing.B) {
		b.ReportAllocs()
		var read, encode, sign time.Duration
		var size int
		for b.Loop() {
			t1 := time.Now()
			c, _, err := BuildContents(ctx, bs.st, bs.realm, now)
			if err != nil {
				b.Fatal(err)
			}
			if len(c.Keys) != n {
				b.Fatalf("%d keys, want %d", len(c.Keys), n)
			}
			c.Version = 1
			t2 := time.Now()
			objs, err := snapshot.Build(c, snapshot.BuildOptions{})
			if err != nil {
				b.Fatal(err)
			}
			t3 := time.Now()
			refs := snapshot.Refs(objs, hostcrypto.Std)
			m := &snapshot.Manifest{Realm: c.Realm, Version: c.Version, IssuedAt: c.IssuedAt, ExpiresAt: c.ExpiresAt, Objects: refs}
			if _, err := snapshot.SignManifest(m, bs.env.signer); err != nil {
				b.Fatal(err)
			}
			t4 := time.Now()
			read, encode, sign = read+t2.Sub(t1), encode+t3.Sub(t2), sign+t4.Sub(t3)
			size = 0
			for _, o := range objs {
				size += len(o.Data)
			}
		}
		per := func(d time.Duration) float64 { return float64(d.Milliseconds()) / float64(b.N) }
		b.ReportMetric(per(read), "read-ms/op")
		b.ReportMetric(per(encode), "encode-ms/op")
		b.ReportMetric(per(sign), "digest+sign-ms/op")
		b.ReportMetric(float64(size), "snapshot-bytes")
		b.ReportMetric(float64(b.Elapsed())/float64(b.N)/float64(3*time.Second), "x-target")
	})
}

// BenchmarkPublishRevoke measures publishing one revocation in a 100k-key realm as a delta
// (KeyChangesSince, delta build, one object and the manifest into a directory), the path
// between a revoke API call and the edge's next poll. Baseline: a full publication of the
// same realm in the same run ("full").
func BenchmarkPublishRevoke(b *testing.B) {
	skipLarge(b)
	const n = 100_000
	bs := generatedStore(b, n)
	ctx := context.Background()

	b.Run("full", func(b *testing.B) {
		p := bs.env.newPublisher(newDirTarget(b), func(o *Options) { o.FullEvery = -1 })
		b.ReportAllocs()
		for b.Loop() {
			if _, err := p.PublishNow(ctx, bs.realm); err != nil {
				b.Fatal(err)
			}
		}
	})

	b.Run("delta", func(b *testing.B) {
		p := bs.env.newPublisher(newDirTarget(b), func(o *Options) { o.FullEvery = 1 << 30 })
		if _, err := p.PublishNow(ctx, bs.realm); err != nil {
			b.Fatal(err)
		}
		// Each iteration revokes one more key of the base (outside the timer), so the
		// cumulative delta holds as many removals as iterations ran: a few hundred at most.
		b.ReportAllocs()
		for b.Loop() {
			b.StopTimer()
			bs.revoked++
			bs.env.revoke(benchKey(bs.realm, n-bs.revoked).ID)
			b.StartTimer()
			st, err := p.PublishNow(ctx, bs.realm)
			if err != nil {
				b.Fatal(err)
			}
			if st.Full {
				b.Fatal("published a full snapshot, want a delta")
			}
		}
	})
}
