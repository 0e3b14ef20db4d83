package bytestr

import (
	"bytes"
	"strings"
	"testing"
)

var samples = []string{"", "a", "b", "ab", "abc", "abd", "abcdefgh", "abcdefgi", "abcdefghi", "abcdefghij", "bcdefghij",
	"\x00", "\xff", "\xff\x00", "GET", "HEAD", "tb_", "tb_internal_", strings.Repeat("x", 31), strings.Repeat("x", 32), strings.Repeat("x", 33) + "y"}

// TestAgainstStandardLibrary: every helper answers what the string or bytes form answers.
func TestAgainstStandardLibrary(t *testing.T) {
	for _, x := range samples {
		for _, y := range samples {
			b := []byte(x)
			if got, want := Equal(b, y), x == y; got != want {
				t.Errorf("Equal(%q, %q) = %v", x, y, got)
			}
			if got, want := HasPrefix(b, y), strings.HasPrefix(x, y); got != want {
				t.Errorf("HasPrefix(%q, %q) = %v", x, y, got)
			}
			if got, want := Compare(b, y), strings.Compare(x, y); got != want {
				t.Errorf("Compare(%q, %q) = %d, want %d", x, y, got, want)
			}
			if got, want := EqualBytes(b, []byte(y)), bytes.Equal(b, []byte(y)); got != want {
				t.Errorf("EqualBytes(%q, %q) = %v", x, y, got)
			}
			// The loops TinyGo builds use, whichever compiler runs this test.
			if got, want := equalLoop(b, y), x == y; got != want {
				t.Errorf("equalLoop(%q, %q) = %v", x, y, got)
			}
			if got, want := equalBytesLoop(b, []byte(y)), bytes.Equal(b, []byte(y)); got != want {
				t.Errorf("equalBytesLoop(%q, %q) = %v", x, y, got)
			}
		}
	}
	if !EqualBytes(nil, []byte{}) || !Equal(nil, "") || Compare(nil, "") != 0 {
		t.Error("nil and empty differ")
	}
}

func FuzzAgainstStandardLibrary(f *testing.F) {
	for i, x := range samples {
		f.Add([]byte(x), samples[(i+1)%len(samples)])
	}
	f.Fuzz(func(t *testing.T, b []byte, s string) {
		if Equal(b, s) != (string(b) == s) || HasPrefix(b, s) != strings.HasPrefix(string(b), s) ||
			Compare(b, s) != strings.Compare(string(b), s) || EqualBytes(b, []byte(s)) != bytes.Equal(b, []byte(s)) ||
			equalLoop(b, s) != (string(b) == s) || equalBytesLoop(b, []byte(s)) != bytes.Equal(b, []byte(s)) {
			t.Fatalf("%q %q", b, s)
		}
	})
}

func TestNoAllocations(t *testing.T) {
	a, b := []byte(strings.Repeat("token.", 100)), []byte(strings.Repeat("token.", 100))
	s := string(a)
	if n := testing.AllocsPerRun(100, func() {
		_ = Equal(a, s) && HasPrefix(a, "tok") && Compare(a, s) == 0 && EqualBytes(a, b) && equalLoop(a, s) && equalBytesLoop(a, b)
	}); n != 0 {
		t.Errorf("%.1f allocations", n)
	}
}
