//go:build !tinygo

package bytestr

// The standard compiler compares these conversions in place, with its vectorised memequal.
func equal(b []byte, s string) bool { return string(b) == s }

func equalBytes(a, b []byte) bool { return string(a) == string(b) }
