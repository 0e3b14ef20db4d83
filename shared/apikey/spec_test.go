package apikey

import (
	"crypto/rand"
	"errors"
	"hash/crc32"
	"strings"
	"testing"
)

const body30 = "1wV8bQ3kZ7pY2xR9mN4cT6hJ0sL5dF"

var (
	specB62 = Spec{Prefix: "tb_", Format: FormatBase62CRC32}
	specHex = Spec{Prefix: "tk_", Format: FormatHex64}
	specOpq = Spec{Prefix: "ap_", Format: FormatOpaque}
)

func TestChecksumWorkedExample(t *testing.T) {
	// The example in the spec, recomputed by hand: 3859270603 = 4·62^5 + 13·62^4 +
	// 11·62^3 + 6·62^2 + 36·62 + 3 → digits "4","D","B","6","a","3".
	pb := "tb_" + body30
	if got := crc32.ChecksumIEEE([]byte(pb)); got != 3859270603 {
		t.Fatalf("crc32 = %d", got)
	}
	var sum [Base62ChecksumLen]byte
	putChecksum(&sum, 3859270603)
	if string(sum[:]) != "4DB6a3" || refChecksum(pb) != "4DB6a3" {
		t.Fatalf("checksum = %q, reference %q", sum, refChecksum(pb))
	}
	if err := specB62.Check([]byte(pb + "4DB6a3")); err != nil {
		t.Fatal(err)
	}
}

func TestChecksumPadding(t *testing.T) {
	for _, c := range []struct {
		crc  uint32
		want string
	}{
		{0, "000000"},
		{1, "000001"},
		{61, "00000z"},
		{62, "000010"},
		{916132831, "0zzzzz"}, // 62^5 - 1: the largest value with a padding zero
		{916132832, "100000"},
		{1<<32 - 1, "4gfFC3"},
	} {
		var sum [Base62ChecksumLen]byte
		putChecksum(&sum, c.crc)
		if string(sum[:]) != c.want {
			t.Errorf("putChecksum(%d) = %q, want %q", c.crc, sum, c.want)
		}
	}
}

func TestCheck(t *testing.T) {
	good62 := makeBase62("tb_", body30)
	goodHex := "tk_" + strings.Repeat("0123456789abcdef", 4)
	goodOpq16 := "ap_" + "Ab-_0123456789xy"
	goodOpq96 := "ap_" + strings.Repeat("aB3_-z", 16)
	withChar := func(key string, i int, c byte) string { b := []byte(key); b[i] = c; return string(b) }
	// crc+2^32 written in six digits: a decoder that wraps to uint32 would accept it.
	plus2to32 := func(key string) string {
		crc := uint64(crc32.ChecksumIEEE([]byte(key[:len(key)-6]))) + 1<<32
		d := make([]byte, 6)
		for i := 5; i >= 0; i-- {
			d[i] = base62Alphabet[crc%62]
			crc /= 62
		}
		return key[:len(key)-6] + string(d)
	}

	tests := []struct {
		name string
		spec Spec
		key  string
		want error
	}{
		{"Base62Good", specB62, good62, nil},
		{"Base62OtherPrefix", specB62, "tx_" + good62[3:], ErrPrefix},
		{"Base62UppercasePrefix", specB62, "TB_" + good62[3:], ErrPrefix},
		{"Base62Empty", specB62, "", ErrPrefix},
		{"Base62PrefixOnly", specB62, "tb_", ErrLength},
		{"Base62Short", specB62, good62[:len(good62)-1], ErrLength},
		{"Base62Long", specB62, good62 + "0", ErrLength},
		{"Base62NoChecksum", specB62, "tb_" + body30, ErrLength},
		{"Base62Underscore", specB62, withChar(good62, 10, '_'), ErrAlphabet},
		{"Base62Dash", specB62, withChar(good62, 10, '-'), ErrAlphabet},
		{"Base62Plus", specB62, withChar(good62, 10, '+'), ErrAlphabet},
		{"Base62NUL", specB62, withChar(good62, 10, 0), ErrAlphabet},
		{"Base62HighByte", specB62, withChar(good62, 10, 0xff), ErrAlphabet},
		{"Base62BadChecksum", specB62, withChar(good62, len(good62)-1, '4'), ErrChecksum},
		{"Base62ChecksumOverBodyOnly", specB62, "tb_" + body30 + refChecksum(body30), ErrChecksum},
		{"Base62ChecksumPlus2To32", specB62, plus2to32(good62), ErrChecksum},
		{"Base62TooLong", specB62, good62 + strings.Repeat("a", 200), ErrLength},
		{"Hex64Good", specHex, goodHex, nil},
		{"Hex64OtherPrefix", specHex, "tb_" + goodHex[3:], ErrPrefix},
		{"Hex64Short", specHex, goodHex[:len(goodHex)-1], ErrLength},
		{"Hex64Long", specHex, goodHex + "0", ErrLength},
		{"Hex64Uppercase", specHex, withChar(goodHex, 20, 'A'), ErrAlphabet},
		{"Hex64AllUppercase", specHex, "tk_" + strings.ToUpper(goodHex[3:]), ErrAlphabet},
		{"Hex64NotHex", specHex, withChar(goodHex, 20, 'g'), ErrAlphabet},
		{"OpaqueGood16", specOpq, goodOpq16, nil},
		{"OpaqueGood96", specOpq, goodOpq96, nil},
		{"OpaqueOtherPrefix", specOpq, "ak_" + goodOpq16[3:], ErrPrefix},
		{"OpaqueShort", specOpq, goodOpq16[:len(goodOpq16)-1], ErrLength},
		{"OpaqueLong", specOpq, goodOpq96 + "a", ErrLength},
		{"OpaqueDot", specOpq, withChar(goodOpq16, 5, '.'), ErrAlphabet},
		{"OpaqueBase64Padding", specOpq, goodOpq16 + "==", ErrAlphabet},
		{"OpaqueSpace", specOpq, withChar(goodOpq16, 5, ' '), ErrAlphabet},
		{"OpaqueOverMaxKeyBytes", Spec{Prefix: strings.Repeat("a", 33), Format: FormatOpaque}, strings.Repeat("a", 129), ErrLength},
		{"UnknownFormat", Spec{Prefix: "tb_", Format: 9}, good62, ErrFormat},
		{"ZeroFormat", Spec{Prefix: "tb_"}, good62, ErrFormat},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.spec.Check([]byte(tt.key))
			if err != tt.want {
				t.Fatalf("Check(%q) = %v, want %v", tt.key, err, tt.want)
			}
			if ref := refCheck(tt.spec, tt.key); ref != tt.want {
				t.Fatalf("reference check disagrees with the table: %v", ref)
			}
		})
	}
}

func TestGenerateCheckRoundTrip(t *testing.T) {
	for _, s := range []Spec{specB62, specHex, {Prefix: "tb_internal_", Format: FormatBase62CRC32}, {Prefix: "a", Format: FormatHex64}, {Prefix: strings.Repeat("z", 32), Format: FormatBase62CRC32}} {
		seen := map[string]bool{}
		for range 200 {
			k, err := s.Generate(rand.Reader)
			if err != nil {
				t.Fatalf("%v: Generate: %v", s, err)
			}
			key := k.Reveal()
			if err := s.Check([]byte(key)); err != nil {
				t.Fatalf("%v: Check(%q) = %v", s, key, err)
			}
			if err := refCheck(s, key); err != nil {
				t.Fatalf("%v: reference check of %q = %v", s, key, err)
			}
			if seen[key] {
				t.Fatalf("%v: duplicate key %q", s, key)
			}
			seen[key] = true
		}
	}
	// Opaque keys are never generated, so their round trip is import → Check.
	if err := specOpq.Check([]byte("ap_" + strings.Repeat("x", 40))); err != nil {
		t.Fatal(err)
	}
}

func TestGenerateOpaqueRefused(t *testing.T) {
	k, err := specOpq.Generate(rand.Reader)
	if !errors.Is(err, ErrImportOnly) || !strings.Contains(err.Error(), "opaque") {
		t.Fatalf("Generate(opaque) = %v", err)
	}
	if k.Reveal() != "" {
		t.Fatal("a key was returned with the error")
	}
}

func TestGenerateInvalidSpec(t *testing.T) {
	for _, c := range []struct {
		spec Spec
		want error
	}{
		{Spec{Prefix: "", Format: FormatBase62CRC32}, ErrPrefix},
		{Spec{Prefix: "Tb_", Format: FormatBase62CRC32}, ErrPrefix},
		{Spec{Prefix: "tb_", Format: 0}, ErrFormat},
	} {
		if _, err := c.spec.Generate(rand.Reader); err != c.want {
			t.Errorf("Generate(%v) = %v, want %v", c.spec, err, c.want)
		}
	}
	if _, err := specB62.Generate(nil); err == nil {
		t.Fatal("Generate(nil) succeeded")
	}
}

func TestGenerateRandomSourceFails(t *testing.T) {
	for _, s := range []Spec{specB62, specHex} {
		k, err := s.Generate(&scriptedReader{b: make([]byte, 10)})
		if err == nil || k.Reveal() != "" {
			t.Fatalf("%v: short random source: key %q, err %v", s, k.Reveal(), err)
		}
	}
}

// A source that only yields bytes the rejection sampler must discard has to make
// Generate fail, not loop forever.
func TestGenerateBrokenRandomSourceTerminates(t *testing.T) {
	k, err := specB62.Generate(constReader(0xff))
	if err == nil || k.Reveal() != "" {
		t.Fatalf("got key %q, err %v", k.Reveal(), err)
	}
	// Hex has no rejection: every byte is usable, and the key is still well-formed.
	if err := specHex.Check([]byte(mustGenerate(t, specHex, constReader(0xff)))); err != nil {
		t.Fatal(err)
	}
}

func TestGenerateRejectsBytesAbove247(t *testing.T) {
	first := make([]byte, 30)
	for i := range first {
		first[i] = byte(i * 9) // 0, 9, ..., 261 wraps: i=28 → 252, i=29 → 5
	}
	first[3] = 247 // largest accepted byte: 247 % 62 = 61 → 'z'
	first[4] = 248 // smallest rejected byte
	first[7] = 255
	// 29 (i=28) wraps to 252 and is rejected too: three rejected bytes, refilled from here.
	script := append(first, 62, 61, 123)
	key := mustGenerate(t, specB62, &scriptedReader{b: script})

	var want []byte
	for _, b := range script {
		if b < 248 {
			want = append(want, base62Alphabet[b%62])
		}
	}
	want = want[:30]
	if body := key[3 : 3+30]; body != string(want) {
		t.Fatalf("body %q, want %q", body, want)
	}
}

// TestGenerateNoModuloBias fails for a generator using byte % 62 without rejection:
// characters 0-7 would come up 5/4 as often as the rest (chi-square ≈ 800 here).
func TestGenerateNoModuloBias(t *testing.T) {
	const keys = 4000
	var counts [62]int
	r := seeded(1)
	for range keys {
		key := mustGenerate(t, specB62, r)
		for _, c := range []byte(key[3 : 3+Base62BodyLen]) {
			counts[strings.IndexByte(base62Alphabet, c)]++
		}
	}
	expected := float64(keys*Base62BodyLen) / 62
	chi2 := 0.0
	for _, n := range counts {
		d := float64(n) - expected
		chi2 += d * d / expected
	}
	// 61 degrees of freedom: P(chi2 > 130) < 1e-6 for a uniform source.
	if chi2 > 130 {
		t.Fatalf("chi-square %.1f over %v", chi2, counts)
	}
}

// TestMistypedKeyFailsChecksum is the reason for the checksum: any one character
// replaced by another base62 character, and any two adjacent different characters
// swapped, must be caught before lookup. CRC-32 detects every error burst of up to 32
// bits, which covers both inside prefix+body; a change inside the checksum itself is
// caught because the checksum text is compared exactly.
func TestMistypedKeyFailsChecksum(t *testing.T) {
	r := seeded(2)
	for _, s := range []Spec{specB62, {Prefix: "tb_internal_", Format: FormatBase62CRC32}} {
		for range 300 {
			key := []byte(mustGenerate(t, s, r))
			p := len(s.Prefix)
			for i := p; i < len(key); i++ {
				orig := key[i]
				for j := 0; j < len(base62Alphabet); j++ {
					if base62Alphabet[j] == orig {
						continue
					}
					key[i] = base62Alphabet[j]
					if err := s.Check(key); err != ErrChecksum {
						t.Fatalf("%q (position %d replaced): %v", key, i, err)
					}
				}
				key[i] = orig
			}
			for i := p; i+1 < len(key); i++ {
				if key[i] == key[i+1] {
					continue
				}
				key[i], key[i+1] = key[i+1], key[i]
				if err := s.Check(key); err != ErrChecksum {
					t.Fatalf("%q (positions %d,%d swapped): %v", key, i, i+1, err)
				}
				key[i], key[i+1] = key[i+1], key[i]
			}
			for i := 0; i < p; i++ {
				orig := key[i]
				key[i] ^= 0x20
				if err := s.Check(key); err != ErrPrefix {
					t.Fatalf("%q (prefix position %d changed): %v", key, i, err)
				}
				key[i] = orig
			}
			if err := s.Check(key); err != nil {
				t.Fatalf("restored key %q: %v", key, err)
			}
		}
	}
}

func TestValidate(t *testing.T) {
	for _, c := range []struct {
		spec Spec
		want error
	}{
		{Spec{"tb_", FormatBase62CRC32}, nil},
		{Spec{"tb_internal_", FormatBase62CRC32}, nil},
		{Spec{"tk_", FormatHex64}, nil},
		{Spec{"ap_", FormatOpaque}, nil},
		{Spec{"x", FormatHex64}, nil},
		{Spec{strings.Repeat("a", 32), FormatOpaque}, nil},
		{Spec{strings.Repeat("a", 33), FormatOpaque}, ErrPrefix},
		{Spec{"", FormatBase62CRC32}, ErrPrefix},
		{Spec{"TB_", FormatBase62CRC32}, ErrPrefix},
		{Spec{"tb-", FormatBase62CRC32}, ErrPrefix},
		{Spec{"sk-ant-", FormatOpaque}, ErrPrefix},
		{Spec{"tb_\x00", FormatBase62CRC32}, ErrPrefix},
		{Spec{"tb_é", FormatBase62CRC32}, ErrPrefix},
		{Spec{"tb_", 0}, ErrFormat},
		{Spec{"tb_", 4}, ErrFormat},
		{Spec{"tb_", 255}, ErrFormat},
	} {
		if err := c.spec.Validate(); err != c.want {
			t.Errorf("Validate(%+v) = %v, want %v", c.spec, err, c.want)
		}
	}
}

func TestFormatText(t *testing.T) {
	for _, f := range []Format{FormatBase62CRC32, FormatHex64, FormatOpaque} {
		g, err := ParseFormat(f.String())
		if err != nil || g != f {
			t.Fatalf("ParseFormat(%q) = %v, %v", f.String(), g, err)
		}
	}
	for _, s := range []string{"", "BASE62CRC32", "base62", "hex", "hex64 ", "Opaque", "apikey.Format(1)"} {
		if f, err := ParseFormat(s); err != ErrFormat || f != 0 {
			t.Errorf("ParseFormat(%q) = %v, %v", s, f, err)
		}
	}
	if s := Format(0).String(); s != "apikey.Format(0)" {
		t.Fatalf("Format(0).String() = %q", s)
	}
}
