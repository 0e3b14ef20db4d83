package apikey

import (
	"errors"
	"hash/crc32"
	"io"
	"math/big"
	mrand "math/rand/v2"
	"strings"
	"testing"
)

// refChecksum is an independent rendering of the checksum: math/big writes base 62 with
// the digits 0-9a-zA-Z, so swapping letter case turns it into latchkey's 0-9A-Za-z.
func refChecksum(prefixBody string) string {
	t := big.NewInt(int64(crc32.ChecksumIEEE([]byte(prefixBody)))).Text(62)
	var b strings.Builder
	for _, c := range t {
		switch {
		case c >= 'a' && c <= 'z':
			c = c - 'a' + 'A'
		case c >= 'A' && c <= 'Z':
			c = c - 'A' + 'a'
		}
		b.WriteRune(c)
	}
	return strings.Repeat("0", 6-b.Len()) + b.String()
}

// refCheck is a deliberately plain re-statement of the key format rules, used to
// cross-check Spec.Check in tests and fuzzing.
func refCheck(s Spec, key string) error {
	const (
		b62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
		hx  = "0123456789abcdef"
		opq = b62 + "_-"
	)
	only := func(s, alphabet string) bool {
		for i := 0; i < len(s); i++ {
			if !strings.Contains(alphabet, s[i:i+1]) {
				return false
			}
		}
		return true
	}
	if len(key) > 128 {
		return ErrLength
	}
	if !strings.HasPrefix(key, s.Prefix) {
		return ErrPrefix
	}
	body := key[len(s.Prefix):]
	switch s.Format {
	case FormatBase62CRC32:
		if len(body) != 36 {
			return ErrLength
		}
		if !only(body, b62) {
			return ErrAlphabet
		}
		if refChecksum(key[:len(key)-6]) != key[len(key)-6:] {
			return ErrChecksum
		}
	case FormatHex64:
		if len(body) != 64 {
			return ErrLength
		}
		if !only(body, hx) {
			return ErrAlphabet
		}
	case FormatOpaque:
		if len(body) < 16 || len(body) > 96 {
			return ErrLength
		}
		if !only(body, opq) {
			return ErrAlphabet
		}
	default:
		return ErrFormat
	}
	return nil
}

// makeBase62 builds a valid FormatBase62CRC32 key with the reference checksum.
func makeBase62(prefix, body string) string {
	return prefix + body + refChecksum(prefix+body)
}

// seeded returns a deterministic random source so that statistical tests are
// reproducible: a failure is a bug, never bad luck.
func seeded(seed uint64) io.Reader {
	var s [32]byte
	s[0] = byte(seed)
	s[1] = byte(seed >> 8)
	return mrand.NewChaCha8(s)
}

// scriptedReader returns its bytes in order, then io.EOF.
type scriptedReader struct{ b []byte }

func (r *scriptedReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}

// constReader returns the same byte forever.
type constReader byte

func (c constReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(c)
	}
	return len(p), nil
}

var sentinels = []error{ErrPrefix, ErrLength, ErrAlphabet, ErrChecksum, ErrFormat}

func isSentinel(err error) bool {
	for _, s := range sentinels {
		if err == s {
			return true
		}
	}
	return false
}

func mustGenerate(t testing.TB, s Spec, r io.Reader) string {
	t.Helper()
	k, err := s.Generate(r)
	if err != nil {
		t.Fatalf("Generate(%v): %v", s, err)
	}
	return k.Reveal()
}

func errName(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, ErrPrefix):
		return "prefix"
	case errors.Is(err, ErrLength):
		return "length"
	case errors.Is(err, ErrAlphabet):
		return "alphabet"
	case errors.Is(err, ErrChecksum):
		return "checksum"
	case errors.Is(err, ErrFormat):
		return "format"
	}
	return "other: " + err.Error()
}
