package snapshot

import (
	mrand "math/rand/v2"
	"sync"
	"testing"

	"github.com/latchkeyhq/latchkey/shared/apikey"
)

const benchKeys = 1_000_000

// bench1M is built once per test binary: 1M random keys over 20 orgs and 10 scope sets.
var bench1M = sync.OnceValues(func() (*Contents, *snapshotFiles) {
	c := randomContents(benchKeys, 42)
	f, err := publishE(c, BuildOptions{}, edSigner)
	if err != nil {
		panic(err)
	}
	return c, f
})

func skip1M(b *testing.B) (*Contents, *snapshotFiles) {
	if testing.Short() {
		b.Skip("1M-key benchmarks are skipped with -short")
	}
	return bench1M()
}

func BenchmarkBuild1M(b *testing.B) {
	c, _ := skip1M(b)
	b.ReportAllocs()
	var objs []Object
	for b.Loop() {
		var err error
		if objs, err = Build(c, BuildOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	total, keyTable := 0, 0
	for i, o := range objs {
		total += len(o.Data)
		if i > 0 {
			keyTable += len(o.Data)
		}
	}
	b.ReportMetric(float64(total), "snapshot-bytes")
	b.ReportMetric(float64(keyTable)/benchKeys, "shard-B/key")
	b.ReportMetric(float64(len(objs)-1), "shards")
}

func BenchmarkOpen1M(b *testing.B) {
	_, f := skip1M(b)
	m, err := VerifyManifest(f.manifest, []TrustedKey{edPin}, std)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Open(m, f.objects, nil, std); err != nil {
			b.Fatal(err)
		}
	}
}

// probes returns n hashes in random order: present keys, or absent random hashes.
func probes(c *Contents, n int, present bool) []apikey.Hash {
	rng := mrand.New(mrand.NewPCG(1, 2))
	out := make([]apikey.Hash, n)
	for i := range out {
		if present {
			out[i] = c.Keys[rng.IntN(len(c.Keys))].Hash
		} else {
			for j := range out[i] {
				out[i][j] = byte(rng.Uint32())
			}
		}
	}
	return out
}

func BenchmarkLookup1M(b *testing.B) {
	c, f := skip1M(b)
	v := mustLoad(b, f)
	for _, tc := range []struct {
		name    string
		present bool
	}{{"hit", true}, {"miss", false}} {
		b.Run(tc.name, func(b *testing.B) {
			ps := probes(c, 1<<16, tc.present)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, ok := v.LookupKey(&ps[i&(len(ps)-1)]); ok != tc.present {
					b.Fatal("wrong answer")
				}
				i++
			}
		})
	}
}

func BenchmarkLookupKeyID(b *testing.B) {
	c, f := skip1M(b)
	v := mustLoad(b, f)
	ps := probes(c, 1<<16, true)
	ids := make([]apikey.ID, len(ps))
	for i := range ps {
		ids[i] = ps[i].ID()
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, ok := v.LookupKeyID(ids[i&(len(ids)-1)]); !ok {
			b.Fatal("miss")
		}
		i++
	}
}

// BenchmarkDeltaLookup: 1M base keys, a delta adding 10k and removing 10k; probes hit the
// delta's adds, base keys (through the delta's remove and add lists), and removed keys.
func BenchmarkDeltaLookup(b *testing.B) {
	c, f := skip1M(b)
	extra := randomContents(10_000, 43)
	d := &Delta{Realm: c.Realm, BaseVersion: c.Version, Version: c.Version + 1, IssuedAt: t0, ExpiresAt: expires, Orgs: c.Orgs}
	for i := range extra.Keys {
		k := extra.Keys[i]
		k.Org = c.Orgs[i%len(c.Orgs)].ID
		d.AddKeys = append(d.AddKeys, k)
		d.RemoveKeys = append(d.RemoveKeys, c.Keys[i].Hash)
	}
	v := mustLoad(b, withDelta(b, f, d, edSigner))
	for _, tc := range []struct {
		name   string
		hashes []apikey.Hash
		want   bool
	}{
		{"added", probes(extra, 1<<16, true), true},
		{"base", func() []apikey.Hash {
			var hs []apikey.Hash
			for i := 10_000; len(hs) < 1<<16; i += 13 {
				hs = append(hs, c.Keys[i].Hash)
			}
			return hs
		}(), true},
		{"removed", func() []apikey.Hash {
			var hs []apikey.Hash
			for i := 0; len(hs) < 1<<16; i++ {
				hs = append(hs, c.Keys[i*7%10_000].Hash)
			}
			return hs
		}(), false},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, ok := v.LookupKey(&tc.hashes[i&(len(tc.hashes)-1)]); ok != tc.want {
					b.Fatal("wrong answer")
				}
				i++
			}
		})
	}
}
