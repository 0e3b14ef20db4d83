package apikey

import (
	"testing"

	"github.com/latchkeyhq/latchkey/shared/hostcrypto"
)

// BenchmarkCheck is the shape check every presented key goes through; compare it with
// BenchmarkHashOf, the SHA-256 it saves for malformed keys.
func BenchmarkCheck(b *testing.B) {
	key := []byte(makeBase62("tb_", body30))
	b.ReportAllocs()
	for b.Loop() {
		if err := specB62.Check(key); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMatcher(b *testing.B) {
	m := NewMatcher([]string{"tb_", "tb_internal_", "ac_live_", "ac_test_", "tk_", "at_", "ap_"})
	key := []byte(makeBase62("tb_", body30))
	b.ReportAllocs()
	for b.Loop() {
		if m.Match(key) != 0 {
			b.Fatal("no match")
		}
	}
}

func BenchmarkHashOf(b *testing.B) {
	key := []byte(makeBase62("tb_", body30))
	b.ReportAllocs()
	for b.Loop() {
		_ = HashOf(hostcrypto.Std, key)
	}
}

func BenchmarkIDAppendText(b *testing.B) {
	id := HashOf(hostcrypto.Std, []byte(makeBase62("tb_", body30))).ID()
	buf := make([]byte, 0, 64)
	b.ReportAllocs()
	for b.Loop() {
		buf, _ = id.AppendText(buf[:0])
	}
}
