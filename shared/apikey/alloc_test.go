package apikey

import (
	"testing"

	"github.com/latchkeyhq/latchkey/shared/hostcrypto"
)

// The edge runs these on every request; an allocation here is a regression.
func TestHotPathsDoNotAllocate(t *testing.T) {
	good := []byte(makeBase62("tb_", body30))
	bad := []byte(makeBase62("tb_", body30))
	bad[len(bad)-1] ^= 1
	hexKey := []byte(mustGenerate(t, specHex, seeded(3)))
	m := NewMatcher([]string{"tb_", "tb_internal_", "ac_live_", "tk_"})
	idText := []byte("key_00017f80ffa55a102030")
	hashText := []byte(HashOf(hostcrypto.Std, good).String())
	buf := make([]byte, 0, 128)
	var id ID
	var h Hash

	for _, c := range []struct {
		name string
		f    func()
	}{
		{"CheckBase62", func() { _ = specB62.Check(good) }},
		{"CheckBase62Bad", func() { _ = specB62.Check(bad) }},
		{"CheckHex64", func() { _ = specHex.Check(hexKey) }},
		{"CheckOpaque", func() { _ = specOpq.Check(good) }},
		{"Match", func() { _ = m.Match(good) }},
		{"HashOf", func() { h = HashOf(hostcrypto.Std, good) }},
		{"ParseIDBytes", func() { id, _ = ParseIDBytes(idText) }},
		{"IDUnmarshalText", func() { _ = id.UnmarshalText(idText) }},
		{"HashUnmarshalText", func() { _ = h.UnmarshalText(hashText) }},
		{"IDAppendText", func() { buf, _ = id.AppendText(buf[:0]) }},
		{"HashAppendText", func() { buf, _ = h.AppendText(buf[:0]) }},
	} {
		if n := testing.AllocsPerRun(100, c.f); n != 0 {
			t.Errorf("%s: %v allocations", c.name, n)
		}
	}
}
