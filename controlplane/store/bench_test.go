package store

import (
	"testing"
	"time"
)

// BenchmarkCreateKey measures one key creation: a write transaction that takes the realm's
// change sequence and inserts the key, committed durably (SQLite synchronous=FULL,
// PostgreSQL's default fsync).
func BenchmarkCreateKey(b *testing.B) {
	for _, be := range testBackends {
		b.Run(be.name, func(b *testing.B) {
			s := openURL(b, be.newURL(b))
			mustRealm(b, s, "bench")
			keys := make([]APIKey, b.N)
			for i := range keys {
				keys[i] = testKey("bench", i)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				if _, err := s.CreateKey(ctx, keys[i]); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "keys/s")
		})
	}
}

// BenchmarkActiveKeys measures the snapshot builder's read of 10,000 keys.
func BenchmarkActiveKeys(b *testing.B) {
	const n = 10000
	for _, be := range testBackends {
		b.Run(be.name, func(b *testing.B) {
			s := openURL(b, be.newURL(b))
			mustRealm(b, s, "bench")
			keys := make([]APIKey, n)
			for i := range keys {
				keys[i] = testKey("bench", i)
			}
			if err := s.CreateKeys(ctx, "bench", keys); err != nil {
				b.Fatal(err)
			}
			now := at(time.Hour)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				count := 0
				if _, err := s.ActiveKeys(ctx, "bench", now, func(APIKey) error { count++; return nil }); err != nil || count != n {
					b.Fatalf("%d keys, %v", count, err)
				}
			}
			b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "keys/s")
		})
	}
}
