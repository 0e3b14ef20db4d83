package abi

import (
	"encoding/binary"

	"github.com/latchkeyhq/latchkey/shared/verifier"
)

// requestFixed is the size of a request's fixed part: version, flags, header count, now.
const requestFixed = 1 + 1 + 2 + 8

// Request flags.
const (
	flagQueryToken = 1 << 0
	flagRecheck    = 1 << 1
	requestFlags   = flagQueryToken | flagRecheck
)

// RequestLen returns the size of r's encoding, or -1 when r cannot be encoded (a field above
// MaxFieldBytes, more than MaxRequestHeaders headers).
func RequestLen(r *verifier.Request) int {
	if len(r.Method) > MaxFieldBytes || len(r.Path) > MaxFieldBytes || len(r.QueryToken) > MaxFieldBytes ||
		len(r.Headers) > MaxRequestHeaders {
		return -1
	}
	n := requestFixed + 2 + len(r.Method) + 2 + len(r.Path) + 2
	if r.HasQueryToken {
		n += len(r.QueryToken)
	}
	for i := range r.Headers {
		h := &r.Headers[i]
		if len(h.Name) > MaxFieldBytes || len(h.Value) > MaxFieldBytes {
			return -1
		}
		n += 2 + len(h.Name) + 2 + len(h.Value)
	}
	return n
}

// AppendRequest appends the encoding of r to dst. A query token is encoded only when
// r.HasQueryToken is set. It fails with ErrTooLarge when RequestLen(r) is -1; dst is then
// returned unchanged.
func AppendRequest(dst []byte, r *verifier.Request) ([]byte, error) {
	if RequestLen(r) < 0 {
		return dst, ErrTooLarge
	}
	var flags byte
	token := r.QueryToken
	if r.HasQueryToken {
		flags |= flagQueryToken
	} else {
		token = nil
	}
	if r.Recheck {
		flags |= flagRecheck
	}
	dst = append(dst, Version, flags)
	dst = appendU16(dst, uint16(len(r.Headers)))
	dst = appendU64(dst, uint64(r.Now))
	dst = appendBytes16(dst, r.Method)
	dst = appendBytes16(dst, r.Path)
	dst = appendBytes16(dst, token)
	for i := range r.Headers {
		dst = appendBytes16(dst, r.Headers[i].Name)
		dst = appendBytes16(dst, r.Headers[i].Value)
	}
	return dst, nil
}

// DecodeRequest decodes b into r, reusing r.Headers' storage. The decoded slices point into
// b. On error r is left empty (with Headers' storage kept) and the error is ErrVersion or
// ErrMalformed.
func DecodeRequest(b []byte, r *verifier.Request) error {
	hs := r.Headers[:0]
	*r = verifier.Request{Headers: hs}
	if len(b) < requestFixed {
		if len(b) > 0 && b[0] != Version {
			return ErrVersion
		}
		return ErrMalformed
	}
	if b[0] != Version {
		return ErrVersion
	}
	flags := b[1]
	n := int(binary.LittleEndian.Uint16(b[2:]))
	now := int64(binary.LittleEndian.Uint64(b[4:]))
	rd := reader{b: b, i: requestFixed}
	method := rd.bytes16(MaxFieldBytes)
	path := rd.bytes16(MaxFieldBytes)
	token := rd.bytes16(MaxFieldBytes)
	if flags&^requestFlags != 0 || n > MaxRequestHeaders || (flags&flagQueryToken == 0 && len(token) != 0) {
		return ErrMalformed
	}
	hs = resize(hs, n)
	for i := range hs {
		hs[i] = verifier.Header{Name: rd.bytes16(MaxFieldBytes), Value: rd.bytes16(MaxFieldBytes)}
	}
	if !rd.done() {
		clear(hs)
		r.Headers = hs[:0]
		return ErrMalformed
	}
	*r = verifier.Request{Now: now, Method: method, Path: path, Headers: hs}
	if flags&flagQueryToken != 0 {
		r.QueryToken, r.HasQueryToken = token, true
	}
	r.Recheck = flags&flagRecheck != 0
	return nil
}
