package apikey

import (
	"errors"
	"strconv"
)

// Format is how the part of a key after its prefix is built and checked.
type Format uint8

const (
	// FormatBase62CRC32 is prefix + 30 base62 characters from a CSPRNG (about 178 bits)
	// + a 6-character base62 CRC-32 (IEEE) of prefix+body, so a mistyped or truncated
	// key is rejected before any lookup and secret scanners can recognise a real key.
	FormatBase62CRC32 Format = 1
	// FormatHex64 is prefix + 64 lowercase hex characters (32 bytes from a CSPRNG), for
	// platforms whose documented contract demands that shape. It carries no checksum.
	FormatHex64 Format = 2
	// FormatOpaque is prefix + 16..96 characters of [A-Za-z0-9_-]. It exists only for
	// keys a platform imports by hash, so latchkey never generates such keys.
	FormatOpaque Format = 3
)

// Sizes of the fixed parts of each format.
const (
	// Base62BodyLen is the random part of a FormatBase62CRC32 key.
	Base62BodyLen = 30
	// Base62ChecksumLen is the checksum part of a FormatBase62CRC32 key: 62^6 > 2^32, so
	// six digits hold every CRC-32 value.
	Base62ChecksumLen = 6
	// Hex64BodyLen is the part after the prefix of a FormatHex64 key.
	Hex64BodyLen = 64
	// OpaqueMinBodyLen and OpaqueMaxBodyLen bound the part after the prefix of a
	// FormatOpaque key.
	OpaqueMinBodyLen = 16
	OpaqueMaxBodyLen = 96
)

// base62Alphabet is digit order: the checksum is a base62 number written most
// significant digit first.
const base62Alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// ErrFormat reports a format name or value this package does not know.
var ErrFormat = errors.New("apikey: unknown key format")

// ParseFormat parses a format name: "base62crc32", "hex64" or "opaque" (exact, lowercase).
func ParseFormat(s string) (Format, error) {
	switch s {
	case "base62crc32":
		return FormatBase62CRC32, nil
	case "hex64":
		return FormatHex64, nil
	case "opaque":
		return FormatOpaque, nil
	}
	return 0, ErrFormat
}

// String returns the name ParseFormat accepts, or "apikey.Format(N)" for an unknown value.
func (f Format) String() string {
	switch f {
	case FormatBase62CRC32:
		return "base62crc32"
	case FormatHex64:
		return "hex64"
	case FormatOpaque:
		return "opaque"
	}
	return "apikey.Format(" + strconv.Itoa(int(f)) + ")"
}

// Character classes, one bit each, so every alphabet check is one table load per byte.
const (
	classBase62   = 1 << iota // 0-9 A-Z a-z
	classLowerHex             // 0-9 a-f
	classOpaque               // 0-9 A-Z a-z _ -
	classPrefix               // 0-9 a-z _
)

var classes = buildClasses()

func buildClasses() (t [256]uint8) {
	for c := '0'; c <= '9'; c++ {
		t[c] = classBase62 | classLowerHex | classOpaque | classPrefix
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = classBase62 | classOpaque
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = classBase62 | classOpaque | classPrefix
		if c <= 'f' {
			t[c] |= classLowerHex
		}
	}
	t['_'] = classOpaque | classPrefix
	t['-'] = classOpaque
	return t
}

// allIn reports whether every byte of b is in class.
func allIn[T string | []byte](b T, class uint8) bool {
	for i := 0; i < len(b); i++ {
		if classes[b[i]]&class == 0 {
			return false
		}
	}
	return true
}

// putChecksum writes crc as exactly Base62ChecksumLen base62 digits, most significant
// first, left-padded with '0'.
func putChecksum(dst *[Base62ChecksumLen]byte, crc uint32) {
	for i := Base62ChecksumLen - 1; i >= 0; i-- {
		dst[i] = base62Alphabet[crc%62]
		crc /= 62
	}
}
