// Package bytestr compares byte slices with strings, and with each other, without allocating
// under any compiler. The standard Go compiler does not copy for string(b) == s, m[string(b)]
// or bytes.Equal, but TinyGo (the release build of the Wasm guest) allocates a string for
// every such conversion: on the request path these helpers take their place. Built by TinyGo
// they compare in loops; built by the standard compiler, Equal and EqualBytes keep its
// (vectorised, copy-free) string comparison.
package bytestr

import "encoding/binary"

// Equal reports whether b holds exactly the bytes of s.
func Equal(b []byte, s string) bool { return equal(b, s) }

// EqualBytes is bytes.Equal: a and b have the same length and bytes (nil equals empty).
func EqualBytes(a, b []byte) bool { return equalBytes(a, b) }

// equalLoop is Equal without a conversion, for TinyGo; the standard compiler's string
// comparison is faster (equal_gc.go).
func equalLoop(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		if b[i] != s[i] {
			return false
		}
	}
	return true
}

// HasPrefix reports whether b starts with prefix.
func HasPrefix(b []byte, prefix string) bool {
	return len(b) >= len(prefix) && Equal(b[:len(prefix)], prefix)
}

// Compare orders b and s as strings.Compare(string(b), s) does: -1, 0 or +1.
func Compare(b []byte, s string) int {
	n := min(len(b), len(s))
	for i := 0; i < n; i++ {
		if b[i] != s[i] {
			if b[i] < s[i] {
				return -1
			}
			return 1
		}
	}
	switch {
	case len(b) < len(s):
		return -1
	case len(b) > len(s):
		return 1
	}
	return 0
}

// equalBytesLoop is EqualBytes without a conversion, for TinyGo. It compares eight bytes at a
// time, since it also compares whole client tokens.
func equalBytesLoop(a, b []byte) bool {
	if len(a) != len(b) {
		return false
	}
	for len(a) >= 8 {
		if binary.LittleEndian.Uint64(a) != binary.LittleEndian.Uint64(b[:8]) {
			return false
		}
		a, b = a[8:], b[8:]
	}
	for i := 0; i < len(a); i++ {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
