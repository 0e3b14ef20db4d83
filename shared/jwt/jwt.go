// Package jwt verifies latchkey client tokens: compact JWS (RFC 7515) carrying
// JWT claims (RFC 7519), signed with EdDSA (Ed25519) or ES256 only. Parsing is
// strict and bounded, the algorithm is fixed by the verification key rather
// than by the token, and on success nothing is allocated: every decoded byte
// lives in a caller-owned Scratch.
package jwt

import (
	"encoding/base64"
	"errors"
	"strconv"

	"github.com/latchkeyhq/latchkey/shared/hostcrypto"
	"github.com/latchkeyhq/latchkey/shared/internal/bytestr"
	"github.com/latchkeyhq/latchkey/shared/limits"
)

// Alg is a signature algorithm latchkey accepts. Only two exist, so "none",
// HMAC and RSA are not merely disabled: they cannot be expressed.
type Alg uint8

const (
	AlgEdDSA Alg = 1 // Ed25519, RFC 8037 "EdDSA"
	AlgES256 Alg = 2 // ECDSA P-256 with SHA-256, signature R||S (RFC 7518 §3.4)
)

// ParseAlg maps a JWS "alg" value to an Alg. Matching is exact and
// case-sensitive ("EDDSA" is not "EdDSA").
func ParseAlg(name []byte) (Alg, bool) {
	switch {
	case bytestr.Equal(name, "EdDSA"):
		return AlgEdDSA, true
	case bytestr.Equal(name, "ES256"):
		return AlgES256, true
	}
	return 0, false
}

// String returns the JWS name of the algorithm.
func (a Alg) String() string {
	switch a {
	case AlgEdDSA:
		return "EdDSA"
	case AlgES256:
		return "ES256"
	}
	return "Alg(" + strconv.Itoa(int(a)) + ")"
}

// signatureSize is the JWS signature length of each algorithm; both are 64.
func (a Alg) signatureSize() int {
	switch a {
	case AlgEdDSA:
		return hostcrypto.Ed25519SignatureSize
	case AlgES256:
		return hostcrypto.ES256SignatureSize
	}
	return -1
}

// Key is a token-signing public key as published in a realm's snapshot.
type Key struct {
	KID []byte
	// Alg is the only algorithm this key verifies; the token's header must name
	// the same one.
	Alg Alg
	// Public is a 32-byte Ed25519 public key (AlgEdDSA) or a 65-byte
	// uncompressed SEC 1 P-256 point 0x04||X||Y (AlgES256).
	Public []byte
}

// KeySet finds verification keys by key id. Only the configured set is ever
// consulted: the header parameters jku, x5u, jwk and x5c are never used.
type KeySet interface {
	LookupKey(kid []byte) (Key, bool)
}

// Errors. Limit violations (size, nesting, member count, string length,
// audience count) are ErrTooLarge; syntax and type violations ErrMalformed.
var (
	ErrMalformed      = errors.New("jwt: malformed token")
	ErrTooLarge       = errors.New("jwt: token exceeds a size limit")
	ErrUnsupportedAlg = errors.New("jwt: unsupported algorithm")
	ErrCritical       = errors.New("jwt: critical header parameters are not supported")
	ErrDuplicateName  = errors.New("jwt: duplicate JSON member name")
	ErrUnknownKey     = errors.New("jwt: unknown key id")
	ErrAlgMismatch    = errors.New("jwt: algorithm does not match the key")
	ErrBadSignature   = errors.New("jwt: signature does not verify")
	ErrExpired        = errors.New("jwt: token expired")
	ErrNotYetValid    = errors.New("jwt: token not yet valid")
	ErrIssuedInFuture = errors.New("jwt: token issued in the future")
	ErrIssuer         = errors.New("jwt: wrong issuer")
	ErrAudience       = errors.New("jwt: wrong audience")
	ErrType           = errors.New("jwt: wrong token type")
	ErrMissingClaim   = errors.New("jwt: required claim missing")
)

// ClaimError says which claim made a token unacceptable; Err is one of the
// sentinel errors (ErrMalformed, ErrTooLarge, ErrMissingClaim). A duplicated
// claim name is reported as ErrDuplicateName itself, without a ClaimError.
type ClaimError struct {
	Claim string
	Err   error
}

func (e *ClaimError) Error() string {
	return "jwt: claim " + strconv.Quote(e.Claim) + ": " + e.Err.Error()
}
func (e *ClaimError) Unwrap() error { return e.Err }

// maxDecoded is the most bytes the three decoded parts of a token can take.
const maxDecoded = limits.MaxTokenBytes / 4 * 3

// Scratch holds everything Parse and Claims decode, so that verification
// allocates nothing. Results (Parsed, Claims) point into it and stay valid
// until it is used for the next token. A Scratch is not safe for concurrent
// use; keep one per goroutine or Wasm instance. The zero value is ready.
type Scratch struct {
	dec   [maxDecoded]byte // header, payload and signature, decoded, back to back
	str   [maxDecoded]byte // unescaped strings (names and values with escapes)
	strN  int              // used bytes of str
	names [limits.MaxJSONDepth][limits.MaxJSONMembers][]byte
	// scan is the scanner of the header or the payload: kept here, TinyGo would otherwise
	// allocate one for each.
	scan scanner
}

// scanner returns the Scratch's scanner, reset to read data.
func (s *Scratch) scanner(data []byte) *scanner {
	s.scan = scanner{data: data, s: s}
	return &s.scan
}

// Parsed is a token whose structure and header have been checked but whose
// signature has not: nothing in it is trustworthy yet except that it is well
// formed.
type Parsed struct {
	Alg Alg
	// KID and Typ are the header's "kid" and "typ" (nil when absent).
	KID, Typ []byte
	// SigningInput is the exact received "header.payload" bytes, the message
	// the signature covers.
	SigningInput []byte
	// Signature is the decoded signature, 64 bytes for both algorithms
	// (ES256: R||S, big-endian, 32 bytes each).
	Signature []byte

	payload []byte   // decoded payload, in s.dec
	s       *Scratch // where Claims unescapes strings
	strMark int      // s.str bytes used by the header
}

// b64 decodes base64url without padding and refuses non-zero trailing bits, so
// every byte string has exactly one accepted encoding. Parse checks the
// alphabet itself first, because the standard decoder skips CR and LF.
var b64 = base64.RawURLEncoding.Strict()

// b64Alphabet marks the bytes of the base64url alphabet.
var b64Alphabet = func() (t [256]bool) {
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	t['-'], t['_'] = true, true
	return t
}()

// Parse checks a compact JWS's structure and header and decodes it into s.
// It does not verify the signature and does not look at the claims. It checks
// (the first failure is reported; the order of the header checks is not part of
// the contract):
// size (ErrTooLarge), three non-empty base64url parts with nothing but the
// alphabet (ErrMalformed), canonical decoding (ErrMalformed), a strict header
// object (ErrMalformed, ErrDuplicateName, ErrTooLarge), "alg" EdDSA or ES256
// (ErrUnsupportedAlg), no "crit" (ErrCritical), "kid" and "typ" strings when
// present (ErrMalformed), a signature of the algorithm's size (ErrBadSignature).
// On error the returned Parsed is the zero value.
func Parse(token []byte, s *Scratch) (Parsed, error) {
	p, err := parse(token, s)
	if err != nil {
		return Parsed{}, err
	}
	return p, nil
}

func parse(token []byte, s *Scratch) (Parsed, error) {
	if len(token) > limits.MaxTokenBytes {
		return Parsed{}, ErrTooLarge
	}
	dot1, dot2 := -1, -1
	for i, c := range token {
		if c == '.' {
			switch {
			case dot1 < 0:
				dot1 = i
			case dot2 < 0:
				dot2 = i
			default:
				return Parsed{}, ErrMalformed
			}
			continue
		}
		if !b64Alphabet[c] {
			return Parsed{}, ErrMalformed
		}
	}
	if dot2 < 0 || dot1 == 0 || dot2 == dot1+1 || dot2 == len(token)-1 {
		return Parsed{}, ErrMalformed
	}
	s.strN = 0

	header, rest, err := decodePart(token[:dot1], s.dec[:])
	if err != nil {
		return Parsed{}, err
	}
	payload, rest, err := decodePart(token[dot1+1:dot2], rest)
	if err != nil {
		return Parsed{}, err
	}
	sig, _, err := decodePart(token[dot2+1:], rest)
	if err != nil {
		return Parsed{}, err
	}

	p := Parsed{SigningInput: token[:dot2], Signature: sig, payload: payload, s: s}
	if err := p.parseHeader(header); err != nil {
		return Parsed{}, err
	}
	if len(sig) != p.Alg.signatureSize() {
		return Parsed{}, ErrBadSignature
	}
	p.strMark = s.strN
	return p, nil
}

// decodePart decodes one base64url part into the front of buf and returns the
// decoded bytes and the unused rest of buf.
func decodePart(part, buf []byte) (decoded, rest []byte, err error) {
	if b64.DecodedLen(len(part)) > len(buf) {
		return nil, nil, ErrTooLarge
	}
	n, err := b64.Decode(buf, part)
	if err != nil {
		return nil, nil, ErrMalformed
	}
	return buf[:n:n], buf[n:], nil
}

// parseHeader reads the JOSE header. Unknown parameters are checked for syntax
// and otherwise ignored, which is what RFC 7515 asks for parameters not listed
// in "crit"; since "crit" itself is refused, no extension can change how the
// token is verified.
func (p *Parsed) parseHeader(header []byte) error {
	d := p.s.scanner(header)
	it, err := d.beginObject(1)
	if err != nil {
		return err
	}
	var alg []byte
	hasAlg, crit := false, false
	for {
		name, ok, err := d.next(&it)
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		switch {
		case bytestr.Equal(name, "alg"):
			if alg, err = d.readString(true); err != nil {
				return err
			}
			hasAlg = true
		case bytestr.Equal(name, "kid"):
			if p.KID, err = d.readString(true); err != nil {
				return err
			}
			if len(p.KID) > limits.MaxIDBytes {
				return ErrTooLarge
			}
		case bytestr.Equal(name, "typ"):
			if p.Typ, err = d.readString(true); err != nil {
				return err
			}
			if len(p.Typ) > limits.MaxClaimBytes {
				return ErrTooLarge
			}
		case bytestr.Equal(name, "crit"):
			crit = true
			err = d.skipValue(2)
		default:
			err = d.skipValue(2)
		}
		if err != nil {
			return err
		}
	}
	if err := d.end(); err != nil {
		return err
	}
	a, known := ParseAlg(alg)
	if !hasAlg || !known {
		return ErrUnsupportedAlg
	}
	p.Alg = a
	if crit {
		return ErrCritical
	}
	return nil
}

// FindKey returns the key named by the token's "kid". The key decides the
// algorithm: a header naming a different one is refused (ErrAlgMismatch),
// which stops algorithm-confusion attacks whatever the header says.
func (p *Parsed) FindKey(keys KeySet) (Key, error) {
	if len(p.KID) == 0 || keys == nil {
		return Key{}, ErrUnknownKey
	}
	k, ok := keys.LookupKey(p.KID)
	if !ok {
		return Key{}, ErrUnknownKey
	}
	if k.Alg != p.Alg {
		return Key{}, ErrAlgMismatch
	}
	return k, nil
}

// VerifySignature finds the key (FindKey) and verifies the signature over the
// exact received bytes (SigningInput), never over a re-encoding.
func (p *Parsed) VerifySignature(c hostcrypto.Provider, keys KeySet) error {
	k, err := p.FindKey(keys)
	if err != nil {
		return err
	}
	return p.verifyWith(c, k)
}

func (p *Parsed) verifyWith(c hostcrypto.Provider, k Key) error {
	var ok bool
	switch k.Alg {
	case AlgEdDSA:
		ok = len(k.Public) == hostcrypto.Ed25519PublicKeySize &&
			c.VerifyEd25519(k.Public, p.SigningInput, p.Signature)
	case AlgES256:
		ok = len(k.Public) == hostcrypto.P256PublicKeySize &&
			c.VerifyES256(k.Public, p.SigningInput, p.Signature)
	}
	if !ok {
		return ErrBadSignature
	}
	return nil
}
