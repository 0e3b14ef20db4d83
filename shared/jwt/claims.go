package jwt

import (
	"github.com/latchkeyhq/latchkey/shared/hostcrypto"
	"github.com/latchkeyhq/latchkey/shared/internal/bytestr"
	"github.com/latchkeyhq/latchkey/shared/limits"
)

// Claims are the JWT claims latchkey uses. Byte slices point into the token or
// the Scratch it was parsed with and stay valid until that Scratch is reused.
type Claims struct {
	Issuer  []byte // "iss"
	Subject []byte // "sub", the session id
	Org     []byte // "org"
	Scope   []byte // "scope", space-separated scope names
	JTI     []byte // "jti"
	KeyID   []byte // "key_id", the id of the API key that minted the token

	// Audience holds "aud", given either as one string or as an array of
	// strings (at most limits.MaxAudiences).
	Audience    [limits.MaxAudiences][]byte
	NumAudience int

	IssuedAt, NotBefore, Expiry int64 // "iat", "nbf", "exp" in Unix seconds
	HasIssuedAt, HasNotBefore   bool  // "exp" is required, so it has no flag
}

// HasAudience reports whether aud is one of the token's audiences.
func (c *Claims) HasAudience(aud string) bool {
	for i := 0; i < c.NumAudience && i < len(c.Audience); i++ {
		if bytestr.Equal(c.Audience[i], aud) {
			return true
		}
	}
	return false
}

// Claims decodes the payload's claims into out. The payload is untrusted
// until the signature has been verified, so call Claims only after
// VerifySignature succeeded, or after the host verified Signature over
// SigningInput with the key from FindKey; Verify does this in the right order.
//
// The payload must be a strict JSON object (see Parse for what strict means)
// with no duplicate names. Known claims must have their types: strings for
// iss, sub, org, scope, jti and key_id (at most limits.MaxClaimBytes after
// unescaping), a string or an array of strings for aud, integers within
// ±2^53 for exp, nbf and iat (no fraction, no exponent, no -0). Wrong types
// give a *ClaimError wrapping ErrMalformed (ErrTooLarge for limits); a missing
// exp gives one wrapping ErrMissingClaim. Unknown claims are checked for
// syntax and skipped. On error out is zeroed.
func (p *Parsed) Claims(out *Claims) error {
	*out = Claims{}
	if err := p.claims(out); err != nil {
		*out = Claims{}
		return err
	}
	return nil
}

func (p *Parsed) claims(out *Claims) error {
	if p.s == nil {
		return ErrMalformed
	}
	// Strings unescaped for an earlier call on this token are dropped; those
	// of the header are kept because KID and Typ may point at them.
	p.s.strN = p.strMark
	d := p.s.scanner(p.payload)
	it, err := d.beginObject(1)
	if err != nil {
		return err
	}
	hasExp := false
	for {
		name, ok, err := d.next(&it)
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		switch {
		case bytestr.Equal(name, "iss"):
			out.Issuer, err = d.claimString("iss")
		case bytestr.Equal(name, "sub"):
			out.Subject, err = d.claimString("sub")
		case bytestr.Equal(name, "org"):
			out.Org, err = d.claimString("org")
		case bytestr.Equal(name, "scope"):
			out.Scope, err = d.claimString("scope")
		case bytestr.Equal(name, "jti"):
			out.JTI, err = d.claimString("jti")
		case bytestr.Equal(name, "key_id"):
			out.KeyID, err = d.claimString("key_id")
		case bytestr.Equal(name, "aud"):
			err = d.audience(out)
		case bytestr.Equal(name, "exp"):
			out.Expiry, err = d.numericDate("exp")
			hasExp = true
		case bytestr.Equal(name, "nbf"):
			out.NotBefore, err = d.numericDate("nbf")
			out.HasNotBefore = true
		case bytestr.Equal(name, "iat"):
			out.IssuedAt, err = d.numericDate("iat")
			out.HasIssuedAt = true
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
	if !hasExp {
		return &ClaimError{Claim: "exp", Err: ErrMissingClaim}
	}
	return nil
}

func (d *scanner) claimString(claim string) ([]byte, error) {
	if d.peek() != '"' {
		return nil, &ClaimError{Claim: claim, Err: ErrMalformed}
	}
	v, err := d.readString(true)
	if err != nil {
		return nil, &ClaimError{Claim: claim, Err: err}
	}
	if len(v) > limits.MaxClaimBytes {
		return nil, &ClaimError{Claim: claim, Err: ErrTooLarge}
	}
	return v, nil
}

func (d *scanner) audience(out *Claims) error {
	switch d.peek() {
	case '"':
		v, err := d.claimString("aud")
		if err != nil {
			return err
		}
		out.Audience[0] = v
		out.NumAudience = 1
		return nil
	case '[':
		d.pos++
		if d.peek() == ']' {
			d.pos++
			return nil
		}
		for {
			if out.NumAudience == len(out.Audience) {
				return &ClaimError{Claim: "aud", Err: ErrTooLarge}
			}
			v, err := d.claimString("aud")
			if err != nil {
				return err
			}
			out.Audience[out.NumAudience] = v
			out.NumAudience++
			switch d.peek() {
			case ',':
				d.pos++
			case ']':
				d.pos++
				return nil
			default:
				return &ClaimError{Claim: "aud", Err: ErrMalformed}
			}
		}
	}
	return &ClaimError{Claim: "aud", Err: ErrMalformed}
}

func (d *scanner) numericDate(claim string) (int64, error) {
	if c := d.peek(); c != '-' && (c < '0' || c > '9') {
		return 0, &ClaimError{Claim: claim, Err: ErrMalformed}
	}
	raw, err := d.readNumber()
	if err != nil {
		return 0, &ClaimError{Claim: claim, Err: err}
	}
	v, ok := parseNumericDate(raw)
	if !ok {
		return 0, &ClaimError{Claim: claim, Err: ErrMalformed}
	}
	return v, nil
}

// Validator holds what a realm requires of a verified token's claims.
type Validator struct {
	// Issuer, when not empty, must equal "iss".
	Issuer string
	// Audience, when not empty, must be one of the "aud" values.
	Audience string
	// Typ, when not empty, must equal the header's "typ" exactly ("JWT").
	Typ string
	// Leeway is the clock skew tolerated on exp, nbf and iat, in seconds. It is
	// clamped to [0, limits.MaxLeewaySeconds], so a misconfiguration can never
	// turn into accepting long-expired tokens.
	Leeway int64
}

// Check applies the validator to a token's header and verified claims at time
// now (Unix seconds). In order: typ (ErrType), exp: valid iff
// now < exp+leeway (ErrExpired), nbf: valid iff now ≥ nbf−leeway
// (ErrNotYetValid), iat: valid iff iat ≤ now+leeway (ErrIssuedInFuture),
// iss (ErrIssuer), aud (ErrAudience). Claims keeps every NumericDate within
// ±2^53, so none of these sums can overflow. A nil Validator checks the times
// with no leeway and nothing else.
func (v *Validator) Check(p *Parsed, c *Claims, now int64) error {
	// A copy rather than a pointer to a zero Validator, which TinyGo would put on the heap.
	var cfg Validator
	if v != nil {
		cfg = *v
	}
	leeway := cfg.Leeway
	if leeway < 0 {
		leeway = 0
	}
	if leeway > limits.MaxLeewaySeconds {
		leeway = limits.MaxLeewaySeconds
	}
	if cfg.Typ != "" && (p == nil || !bytestr.Equal(p.Typ, cfg.Typ)) {
		return ErrType
	}
	if now >= c.Expiry+leeway {
		return ErrExpired
	}
	if c.HasNotBefore && now < c.NotBefore-leeway {
		return ErrNotYetValid
	}
	if c.HasIssuedAt && c.IssuedAt-leeway > now {
		return ErrIssuedInFuture
	}
	if cfg.Issuer != "" && !bytestr.Equal(c.Issuer, cfg.Issuer) {
		return ErrIssuer
	}
	if cfg.Audience != "" && !c.HasAudience(cfg.Audience) {
		return ErrAudience
	}
	return nil
}

// Verify is the whole check of a client token: Parse, VerifySignature, Claims,
// Check, in that order, so claims are decoded only from a token whose
// signature verified. It allocates nothing on success. On error out is zeroed.
//
// Hosts that verify signatures themselves (a JS worker using WebCrypto) run
// the same steps apart: Parse, FindKey, verify Parsed.Signature over
// Parsed.SigningInput with the key's algorithm and public key, then Claims
// and Check, skipping the last two if the host's verification failed.
func Verify(token []byte, now int64, c hostcrypto.Provider, keys KeySet, v *Validator, s *Scratch, out *Claims) error {
	err := verify(token, now, c, keys, v, s, out)
	if err != nil {
		*out = Claims{}
	}
	return err
}

func verify(token []byte, now int64, c hostcrypto.Provider, keys KeySet, v *Validator, s *Scratch, out *Claims) error {
	p, err := Parse(token, s)
	if err != nil {
		return err
	}
	if err := p.VerifySignature(c, keys); err != nil {
		return err
	}
	if err := p.Claims(out); err != nil {
		return err
	}
	return v.Check(&p, out, now)
}
