//go:build tinygo

package bytestr

func equal(b []byte, s string) bool { return equalLoop(b, s) }

func equalBytes(a, b []byte) bool { return equalBytesLoop(a, b) }
