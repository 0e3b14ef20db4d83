// Package abi is the byte encoding of the calls between a host and the latchkey verifier
// guest (wasm/verifier): the snapshot load and its result, the decision request and the
// decision. ABI.md beside the guest specifies the layouts; this package is their only
// implementation, built into the guest (TinyGo or standard Go) and imported by Go hosts, so
// both sides share one codec.
//
// Every encoding is little-endian and length-prefixed, starts with a version byte, and is
// bounded: a decoder refuses oversize fields and counts, unknown versions and flags, and
// trailing bytes. Decoders do not copy: decoded slices point into the input.
package abi

import (
	"encoding/binary"
	"errors"

	"github.com/latchkeyhq/latchkey/shared/limits"
)

// Version is the first byte of every encoding in this package. A decoder refuses any other.
const Version = 1

// Limits of the encodings. They sit above every limit of the core, so that a host which
// clamps a longer field to MaxFieldBytes never changes a decision: a clamped path is still
// too long to route, a clamped credential still too long to be valid.
const (
	// MaxFieldBytes bounds a request's method, path, query token, and each header name and
	// value.
	MaxFieldBytes = 16 << 10
	// MaxRequestHeaders bounds the headers of a decision request.
	MaxRequestHeaders = limits.MaxRequestHeaders
	// MaxIdentityHeaders bounds the identity headers of a decision.
	MaxIdentityHeaders = 16
	// MaxResponseHeaders bounds the rendered headers of a denial.
	MaxResponseHeaders = limits.MaxErrorHeaders + 4
	// MaxBodyBytes bounds a rendered denial body.
	MaxBodyBytes = 64 << 10
	// MaxTrustedKeys bounds the pinned manifest keys of a load.
	MaxTrustedKeys = 16
	// MaxNames bounds each list of header names in a load result.
	MaxNames = 64
)

var (
	// ErrMalformed: the input is truncated, has trailing bytes, a field longer than its
	// bound, an unknown flag, or a count above its bound.
	ErrMalformed = errors.New("abi: malformed encoding")
	// ErrVersion: the first byte is not Version.
	ErrVersion = errors.New("abi: unknown encoding version")
	// ErrTooLarge: a value is too large to encode.
	ErrTooLarge = errors.New("abi: value too large to encode")
)

// reader walks an encoding. The first failure sticks: done then reports false, whatever is
// read after it.
type reader struct {
	b   []byte
	i   int
	bad bool
}

// take returns the next n bytes.
func (r *reader) take(n int) []byte {
	i := r.i
	if n < 0 || n > len(r.b)-i {
		r.bad = true
		return nil
	}
	r.i = i + n
	return r.b[i : i+n : i+n]
}

func (r *reader) u8() uint8 {
	if r.i >= len(r.b) {
		r.bad = true
		return 0
	}
	r.i++
	return r.b[r.i-1]
}

func (r *reader) u16() uint16 {
	if v := r.take(2); v != nil {
		return binary.LittleEndian.Uint16(v)
	}
	return 0
}

func (r *reader) u32() uint32 {
	if v := r.take(4); v != nil {
		return binary.LittleEndian.Uint32(v)
	}
	return 0
}

func (r *reader) u64() uint64 {
	if v := r.take(8); v != nil {
		return binary.LittleEndian.Uint64(v)
	}
	return 0
}

// bytes16 reads a u16-length-prefixed field of at most max bytes.
func (r *reader) bytes16(max int) []byte {
	i := r.i
	if len(r.b)-i < 2 {
		r.bad = true
		return nil
	}
	n := int(r.b[i]) | int(r.b[i+1])<<8
	i += 2
	if n > max || n > len(r.b)-i {
		r.bad = true
		return nil
	}
	r.i = i + n
	return r.b[i : i+n : i+n]
}

// bytes32 reads a u32-length-prefixed field of at most max bytes.
func (r *reader) bytes32(max uint32) []byte {
	n := r.u32()
	if r.bad || n > max || uint64(n) > uint64(len(r.b)-r.i) {
		r.bad = true
		return nil
	}
	return r.take(int(n))
}

// done reports whether every byte was read without a failure.
func (r *reader) done() bool { return !r.bad && r.i == len(r.b) }

func appendU16(b []byte, v uint16) []byte { return binary.LittleEndian.AppendUint16(b, v) }
func appendU32(b []byte, v uint32) []byte { return binary.LittleEndian.AppendUint32(b, v) }
func appendU64(b []byte, v uint64) []byte { return binary.LittleEndian.AppendUint64(b, v) }

func appendBytes16(b, v []byte) []byte { return append(appendU16(b, uint16(len(v))), v...) }

func appendString16(b []byte, v string) []byte { return append(appendU16(b, uint16(len(v))), v...) }

func appendBytes32(b, v []byte) []byte { return append(appendU32(b, uint32(len(v))), v...) }
