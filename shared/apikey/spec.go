package apikey

import (
	"encoding/hex"
	"errors"
	"hash/crc32"
	"io"

	"github.com/latchkeyhq/latchkey/shared/internal/bytestr"
	"github.com/latchkeyhq/latchkey/shared/limits"
)

// Errors from Spec.Validate, Spec.Check and Spec.Generate. Check reports exactly one of
// them, for the first rule the key breaks, in the order: length bound, prefix, length,
// alphabet, checksum.
var (
	// ErrPrefix reports a key that does not start with its type's prefix, or (from
	// Validate) a prefix that is not 1..limits.MaxPrefixBytes characters of [a-z0-9_].
	ErrPrefix = errors.New("apikey: wrong or invalid key prefix")
	// ErrLength reports a key longer than limits.MaxKeyBytes or of the wrong length for
	// its format.
	ErrLength = errors.New("apikey: key has the wrong length")
	// ErrAlphabet reports a key with a character its format does not allow.
	ErrAlphabet = errors.New("apikey: key contains a character outside its format's alphabet")
	// ErrChecksum reports a key whose checksum does not match: mistyped, truncated and
	// re-padded, or made up.
	ErrChecksum = errors.New("apikey: key checksum does not match")
	// ErrImportOnly is returned by Generate for FormatOpaque.
	ErrImportOnly = errors.New("apikey: format opaque is import-only: its keys are imported by hash, never generated")
	errNoRandom   = errors.New("apikey: Generate needs a random source")
	errRandom     = errors.New("apikey: random source keeps returning unusable bytes")
)

// Spec is a key type's text form: the prefix every key of the type starts with and the
// format of the rest.
type Spec struct {
	Prefix string
	Format Format
}

// Validate reports whether s can describe keys: a prefix of 1..limits.MaxPrefixBytes
// characters of [a-z0-9_] (ErrPrefix) and a known format (ErrFormat). Lowercase-only
// prefixes keep the boundary between prefix and a base62 body unambiguous to a reader.
func (s Spec) Validate() error {
	if len(s.Prefix) == 0 || len(s.Prefix) > limits.MaxPrefixBytes || !allIn(s.Prefix, classPrefix) {
		return ErrPrefix
	}
	switch s.Format {
	case FormatBase62CRC32, FormatHex64, FormatOpaque:
		return nil
	}
	return ErrFormat
}

// Check reports whether key has the shape of a key of this type; it says nothing about
// whether the key exists. It runs on every request before the key is hashed, so it does
// not allocate, and it never looks at more than limits.MaxKeyBytes bytes. s is assumed to
// have passed Validate; an unknown format gives ErrFormat.
func (s Spec) Check(key []byte) error {
	if len(key) > limits.MaxKeyBytes {
		return ErrLength
	}
	if !bytestr.HasPrefix(key, s.Prefix) {
		return ErrPrefix
	}
	body := key[len(s.Prefix):]
	switch s.Format {
	case FormatBase62CRC32:
		if len(body) != Base62BodyLen+Base62ChecksumLen {
			return ErrLength
		}
		if !allIn(body, classBase62) {
			return ErrAlphabet
		}
		// Comparing the rendered checksum (rather than decoding the digits) also rejects
		// non-canonical digit strings that would decode to the same value modulo 2^32.
		var want [Base62ChecksumLen]byte
		putChecksum(&want, crc32.ChecksumIEEE(key[:len(key)-Base62ChecksumLen]))
		if !bytestr.EqualBytes(body[Base62BodyLen:], want[:]) {
			return ErrChecksum
		}
		return nil
	case FormatHex64:
		if len(body) != Hex64BodyLen {
			return ErrLength
		}
		if !allIn(body, classLowerHex) {
			return ErrAlphabet
		}
		return nil
	case FormatOpaque:
		if len(body) < OpaqueMinBodyLen || len(body) > OpaqueMaxBodyLen {
			return ErrLength
		}
		if !allIn(body, classOpaque) {
			return ErrAlphabet
		}
		return nil
	}
	return ErrFormat
}

// maxRandomRounds bounds how often Generate goes back to the random source for base62
// characters. A CSPRNG needs more than one round with probability 2^-5 per character
// and 32 rounds with probability about 2^-160, so reaching the bound means the source
// is broken (e.g. returns only 0xFF); failing beats looping forever.
const maxRandomRounds = 32

// Generate returns a new key of this type, reading randomness from rand, which must be a
// CSPRNG such as crypto/rand.Reader. FormatOpaque keys are never generated
// (ErrImportOnly).
func (s Spec) Generate(rand io.Reader) (Key, error) {
	if err := s.Validate(); err != nil {
		return Key{}, err
	}
	if s.Format == FormatOpaque {
		return Key{}, ErrImportOnly
	}
	if rand == nil {
		return Key{}, errNoRandom
	}
	var buf [limits.MaxKeyBytes]byte
	defer clear(buf[:])
	n := copy(buf[:], s.Prefix)
	switch s.Format {
	case FormatBase62CRC32:
		if err := fillBase62(buf[n:n+Base62BodyLen], rand); err != nil {
			return Key{}, err
		}
		n += Base62BodyLen
		var sum [Base62ChecksumLen]byte
		putChecksum(&sum, crc32.ChecksumIEEE(buf[:n]))
		n += copy(buf[n:], sum[:])
	case FormatHex64:
		var raw [Hex64BodyLen / 2]byte
		defer clear(raw[:])
		if _, err := io.ReadFull(rand, raw[:]); err != nil {
			return Key{}, err
		}
		n += hex.Encode(buf[n:], raw[:])
	}
	return NewKey(string(buf[:n])), nil
}

// fillBase62 fills dst with uniformly distributed base62 characters. A byte b is used
// only when b < 248 (= 4*62), and then maps to b%62: each character has exactly 4 of the
// 248 accepted byte values, so there is no modulo bias. Rejected bytes are replaced by
// reading again, only as many bytes as are still missing.
func fillBase62(dst []byte, r io.Reader) error {
	var pool [Base62BodyLen]byte
	defer clear(pool[:])
	filled := 0
	for round := 0; round < maxRandomRounds && filled < len(dst); round++ {
		need := min(len(dst)-filled, len(pool))
		if _, err := io.ReadFull(r, pool[:need]); err != nil {
			return err
		}
		for _, b := range pool[:need] {
			if b < 4*62 {
				dst[filled] = base62Alphabet[b%62]
				filled++
			}
		}
	}
	if filled < len(dst) {
		return errRandom
	}
	return nil
}

// The longest valid prefix followed by the longest opaque body must fit limits.MaxKeyBytes,
// or Check would refuse keys Validate allows. This fails to compile if it ever stops
// holding.
const _ = uint(limits.MaxKeyBytes - (limits.MaxPrefixBytes + OpaqueMaxBodyLen))
