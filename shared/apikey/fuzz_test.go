package apikey

import (
	"hash/crc32"
	"regexp"
	"strings"
	"testing"
)

func FuzzCheck(f *testing.F) {
	good := makeBase62("tb_", body30)
	f.Add("tb_", uint8(FormatBase62CRC32), []byte(good))
	f.Add("tb_", uint8(FormatBase62CRC32), []byte(good[:len(good)-1]+"0"))
	f.Add("tb_", uint8(FormatBase62CRC32), []byte("tb_"+body30))
	f.Add("tb_internal_", uint8(FormatBase62CRC32), []byte(makeBase62("tb_internal_", body30)))
	f.Add("tk_", uint8(FormatHex64), []byte("tk_"+strings.Repeat("0123456789abcdef", 4)))
	f.Add("tk_", uint8(FormatHex64), []byte("tk_"+strings.Repeat("0123456789ABCDEF", 4)))
	f.Add("ap_", uint8(FormatOpaque), []byte("ap_Ab-_0123456789xy"))
	f.Add("ap_", uint8(FormatOpaque), []byte("ap_"+strings.Repeat("a", 97)))
	f.Add("", uint8(FormatOpaque), []byte(strings.Repeat("a", 129)))
	f.Add("tb_", uint8(0), []byte(good))
	f.Add("", uint8(FormatBase62CRC32), []byte{})
	f.Fuzz(func(t *testing.T, prefix string, format uint8, key []byte) {
		s := Spec{Prefix: prefix, Format: Format(format)}
		err := s.Check(key)
		if err != nil && !isSentinel(err) {
			t.Fatalf("non-sentinel error %v", err)
		}
		if ref := refCheck(s, string(key)); ref != err {
			t.Fatalf("Check(%q) = %v, reference says %v", key, err, ref)
		}
		if err != nil {
			return
		}
		if len(key) > 128 || !strings.HasPrefix(string(key), prefix) {
			t.Fatalf("accepted %q", key)
		}
		if s.Format == FormatBase62CRC32 {
			// Re-rendering the checksum of prefix+body must give back the key exactly.
			n := len(key) - Base62ChecksumLen
			var sum [Base62ChecksumLen]byte
			putChecksum(&sum, crc32.ChecksumIEEE(key[:n]))
			if string(key[:n])+string(sum[:]) != string(key) {
				t.Fatalf("re-rendered %q as %q", key, string(key[:n])+string(sum[:]))
			}
		}
	})
}

var idPattern = regexp.MustCompile(`^key_[0-9a-f]{20}$`)

func FuzzParseID(f *testing.F) {
	for _, s := range []string{"key_00017f80ffa55a102030", "key_00017F80FFA55A102030", "key_", "", "KEY_00017f80ffa55a102030", "key_00017f80ffa55a1020300", "key_" + strings.Repeat("ff", 10)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseID(s)
		idb, errb := ParseIDBytes([]byte(s))
		if id != idb || err != errb {
			t.Fatalf("ParseID and ParseIDBytes disagree on %q", s)
		}
		if (err == nil) != idPattern.MatchString(s) {
			t.Fatalf("ParseID(%q) error %v disagrees with the grammar", s, err)
		}
		if err != nil {
			if err != ErrID || id != (ID{}) {
				t.Fatalf("ParseID(%q) = %x, %v", s, id, err)
			}
			return
		}
		m, _ := id.MarshalText()
		if id.String() != s || string(m) != s {
			t.Fatalf("ParseID(%q) then String = %q", s, id.String())
		}
	})
}

var hashPattern = regexp.MustCompile(`^[0-9a-f]{64}$`)

func FuzzParseHash(f *testing.F) {
	for _, s := range []string{strings.Repeat("0123456789abcdef", 4), strings.Repeat("0123456789ABCDEF", 4), "", strings.Repeat("f", 63), strings.Repeat("f", 65), strings.Repeat("g", 64)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		h, err := ParseHash(s)
		if (err == nil) != hashPattern.MatchString(s) {
			t.Fatalf("ParseHash(%q) error %v disagrees with the grammar", s, err)
		}
		var u Hash
		if uerr := u.UnmarshalText([]byte(s)); uerr != err || u != h {
			t.Fatalf("UnmarshalText and ParseHash disagree on %q", s)
		}
		if err != nil {
			if err != ErrHash || h != (Hash{}) {
				t.Fatalf("ParseHash(%q) = %x, %v", s, h, err)
			}
			return
		}
		m, _ := h.MarshalText()
		if h.String() != s || string(m) != s {
			t.Fatalf("ParseHash(%q) then String = %q", s, h.String())
		}
	})
}
