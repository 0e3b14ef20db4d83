package abi

import (
	"encoding/binary"
	"unsafe"

	"github.com/latchkeyhq/latchkey/shared/policy"
	"github.com/latchkeyhq/latchkey/shared/verifier"
)

// Header is one header of a decision: an identity header to set upstream, or a header of a
// rendered denial.
type Header struct {
	Name, Value []byte
}

// Decision is a verifier.Decision in host-neutral form: what a host needs to forward or deny
// a request, and the caller's identity fields for logs and tests.
type Decision struct {
	// Allow is true when the request may go upstream (Status is then 200).
	Allow bool
	// StripQueryToken: remove the query credential parameter before forwarding.
	StripQueryToken bool
	// TokenCached: a client token decided from the guest's verified-token cache, without a
	// signature check (verifier.Decision.TokenCached).
	TokenCached bool
	// Status is 200 on allow, else the denial's HTTP status.
	Status int
	// Reason is the policy.Reason of a denial, 0 on allow.
	Reason uint8
	// Credential is the verifier.Credential an allowed request used.
	Credential uint8
	// RetryAfter is the number of seconds to wait before retrying (429), else 0.
	RetryAfter int64
	// Route is the name of the route the request matched ("" when it was refused before
	// routing).
	Route []byte
	// Identity fields of an allowed caller: org id, key id text ("key_…"), key type label,
	// session, acting agent, effective scopes (space separated).
	Org, KeyID, KeyType, Session, Agent, Scopes []byte
	// Identity are the headers to set upstream on allow, names as the policy spells them.
	Identity []Header
	// Headers and Body are the rendered denial.
	Headers []Header
	Body    []byte

	keyID [32]byte
}

// decisionFixed is the size of a decision's fixed part.
const decisionFixed = 1 + 1 + 1 + 1 + 2 + 1 + 1 + 8

// Decision flags.
const (
	flagAllow       = 1 << 0
	flagStripQuery  = 1 << 1
	flagTokenCached = 1 << 2
	decisionFlags   = flagAllow | flagStripQuery | flagTokenCached
)

// Set fills d from the core's decision without copying: d's slices point into v, the Engine
// that made it and its policy, and are valid until that Engine's next Decide. Strings of the
// compiled policy (route names, rendered headers) are viewed as bytes in place; nothing may
// write through them.
func (d *Decision) Set(v *verifier.Decision) {
	d.Allow, d.StripQueryToken, d.TokenCached = v.Allow, v.StripQueryToken, v.TokenCached
	d.Status, d.Reason, d.Credential, d.RetryAfter = v.Status, uint8(v.Reason), uint8(v.Credential), v.RetryAfter
	d.Route = stringBytes(v.Route)
	d.Org, d.KeyID, d.KeyType, d.Session, d.Agent, d.Scopes = nil, nil, nil, nil, nil, nil
	d.Identity, d.Headers, d.Body = d.Identity[:0], d.Headers[:0], nil
	if v.Allow {
		d.Org, d.Session, d.Agent, d.Scopes = v.Org, v.Session, v.Agent, v.Scopes
		d.KeyID, _ = v.KeyID.AppendText(d.keyID[:0])
		if v.KeyType != nil {
			d.KeyType = v.KeyType.LabelBytes
		}
		ids := v.IdentityHeaders()
		d.Identity = resize(d.Identity, len(ids))
		for i := range ids {
			d.Identity[i] = Header{Name: ids[i].Name, Value: ids[i].Value}
		}
	}
	if r := v.Response; r != nil {
		d.Headers = resize(d.Headers, len(r.Headers))
		for i := range r.Headers {
			d.Headers[i] = Header{Name: stringBytes(r.Headers[i].Name), Value: stringBytes(r.Headers[i].Value)}
		}
		d.Body = r.Body
	}
}

// stringBytes views s as bytes without copying; the result must never be written.
func stringBytes(s string) []byte {
	if s == "" {
		return nil
	}
	return unsafe.Slice(unsafe.StringData(s), len(s))
}

// DecisionLen returns the size of d's encoding, or -1 when d cannot be encoded: a field,
// count or the body above its bound, or a Status that is not an HTTP status.
func DecisionLen(d *Decision) int {
	if d.Status < 100 || d.Status > 599 || d.Reason > maxReason || d.Credential > maxCredential ||
		len(d.Identity) > MaxIdentityHeaders || len(d.Headers) > MaxResponseHeaders || len(d.Body) > MaxBodyBytes {
		return -1
	}
	n := decisionFixed + 7*2 + 4 + len(d.Body)
	for _, f := range [...][]byte{d.Route, d.Org, d.KeyID, d.KeyType, d.Session, d.Agent, d.Scopes} {
		if len(f) > MaxFieldBytes {
			return -1
		}
		n += len(f)
	}
	for i := range d.Identity {
		if m := headerLen(&d.Identity[i]); m < 0 {
			return -1
		} else {
			n += m
		}
	}
	for i := range d.Headers {
		if m := headerLen(&d.Headers[i]); m < 0 {
			return -1
		} else {
			n += m
		}
	}
	return n
}

func headerLen(h *Header) int {
	if len(h.Name) > MaxFieldBytes || len(h.Value) > MaxFieldBytes {
		return -1
	}
	return 4 + len(h.Name) + len(h.Value)
}

// AppendDecision appends the encoding of d to dst. It fails with ErrTooLarge (dst returned
// unchanged) when DecisionLen(d) is -1. It sizes dst once and writes in place: a guest runs
// it on every decision.
func AppendDecision(dst []byte, d *Decision) ([]byte, error) {
	n := DecisionLen(d)
	if n < 0 {
		return dst, ErrTooLarge
	}
	off := len(dst)
	dst = grow(dst, n)
	b := dst[off:]
	var flags byte
	if d.Allow {
		flags |= flagAllow
	}
	if d.StripQueryToken {
		flags |= flagStripQuery
	}
	if d.TokenCached {
		flags |= flagTokenCached
	}
	b[0], b[1], b[2], b[3] = Version, flags, d.Reason, d.Credential
	binary.LittleEndian.PutUint16(b[4:], uint16(d.Status))
	b[6], b[7] = byte(len(d.Identity)), byte(len(d.Headers))
	binary.LittleEndian.PutUint64(b[8:], uint64(d.RetryAfter))
	w := decisionFixed
	w = put16(b, w, d.Route)
	w = put16(b, w, d.Org)
	w = put16(b, w, d.KeyID)
	w = put16(b, w, d.KeyType)
	w = put16(b, w, d.Session)
	w = put16(b, w, d.Agent)
	w = put16(b, w, d.Scopes)
	for i := range d.Identity {
		w = put16(b, w, d.Identity[i].Name)
		w = put16(b, w, d.Identity[i].Value)
	}
	for i := range d.Headers {
		w = put16(b, w, d.Headers[i].Name)
		w = put16(b, w, d.Headers[i].Value)
	}
	binary.LittleEndian.PutUint32(b[w:], uint32(len(d.Body)))
	copy(b[w+4:], d.Body)
	return dst, nil
}

// grow extends dst by n bytes, reallocating at most once.
func grow(dst []byte, n int) []byte {
	if cap(dst)-len(dst) < n {
		c := make([]byte, len(dst), 2*cap(dst)+n)
		copy(c, dst)
		dst = c
	}
	return dst[:len(dst)+n]
}

// put16 writes v with its u16 length at b[w:] and returns the offset after it.
func put16(b []byte, w int, v []byte) int {
	binary.LittleEndian.PutUint16(b[w:], uint16(len(v)))
	return w + 2 + copy(b[w+2:], v)
}

// The largest reason and credential values; a decoder refuses others.
const (
	maxReason     = uint8(policy.ReasonUnavailable)
	maxCredential = uint8(verifier.CredentialToken)
)

// Decode decodes b into d, reusing d's header storage. The decoded slices point into b. On
// error d is reset and the error is ErrVersion or ErrMalformed.
func (d *Decision) Decode(b []byte) error {
	ids, hs := d.Identity[:0], d.Headers[:0]
	*d = Decision{Identity: ids, Headers: hs}
	if len(b) < decisionFixed {
		if len(b) > 0 && b[0] != Version {
			return ErrVersion
		}
		return ErrMalformed
	}
	if b[0] != Version {
		return ErrVersion
	}
	flags, reason, cred := b[1], b[2], b[3]
	status := int(binary.LittleEndian.Uint16(b[4:]))
	nid, nh := int(b[6]), int(b[7])
	retry := int64(binary.LittleEndian.Uint64(b[8:]))
	if flags&^decisionFlags != 0 || reason > maxReason || cred > maxCredential || status < 100 || status > 599 ||
		nid > MaxIdentityHeaders || nh > MaxResponseHeaders {
		return ErrMalformed
	}
	rd := reader{b: b, i: decisionFixed}
	var fields [7][]byte
	for i := range fields {
		fields[i] = rd.bytes16(MaxFieldBytes)
	}
	ids, hs = resize(ids, nid), resize(hs, nh)
	for i := range ids {
		ids[i] = Header{Name: rd.bytes16(MaxFieldBytes), Value: rd.bytes16(MaxFieldBytes)}
	}
	for i := range hs {
		hs[i] = Header{Name: rd.bytes16(MaxFieldBytes), Value: rd.bytes16(MaxFieldBytes)}
	}
	body := rd.bytes32(MaxBodyBytes)
	if !rd.done() {
		clear(ids)
		clear(hs)
		d.Identity, d.Headers = ids[:0], hs[:0]
		return ErrMalformed
	}
	*d = Decision{
		Allow: flags&flagAllow != 0, StripQueryToken: flags&flagStripQuery != 0, TokenCached: flags&flagTokenCached != 0,
		Status: status, Reason: reason, Credential: cred, RetryAfter: retry,
		Route: fields[0], Org: fields[1], KeyID: fields[2], KeyType: fields[3], Session: fields[4], Agent: fields[5], Scopes: fields[6],
		Identity: ids, Headers: hs, Body: body,
	}
	return nil
}

// resize returns s with length n, reusing its storage when it is large enough. The elements
// are to be overwritten.
func resize[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}
