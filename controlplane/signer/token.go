package signer

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"strings"
	"time"

	gjwt "github.com/golang-jwt/jwt/v5"

	"github.com/latchkeyhq/latchkey/controlplane/store"
)

// TokenType is the "typ" header of every client token.
const TokenType = "JWT"

// NewSigningKey generates a client-token signing key for realm: alg store.AlgEdDSA (the
// default when alg is "") or store.AlgES256. The private half is sealed under
// SigningKeyAAD(realm, kid, alg); the public half is raw Ed25519 or an uncompressed P-256
// point, as store.SigningKey and the snapshot expect. The kid is "sk_" + 16 random hex
// digits: unguessable ids are never needed, but random ones cannot collide across replicas.
func NewSigningKey(realm, alg string, now time.Time, s *Sealer) (store.SigningKey, error) {
	const op = "new signing key"
	if s == nil {
		return store.SigningKey{}, invalid(op, "nil sealer")
	}
	if alg == "" {
		alg = store.AlgEdDSA
	}
	var kidBytes [8]byte
	if _, err := rand.Read(kidBytes[:]); err != nil {
		return store.SigningKey{}, &Error{Kind: ErrInvalid, Op: op, Err: err}
	}
	kid := "sk_" + hex.EncodeToString(kidBytes[:])
	var private, public []byte
	switch alg {
	case store.AlgEdDSA:
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return store.SigningKey{}, &Error{Kind: ErrInvalid, Op: op, Err: err}
		}
		private, public = priv.Seed(), pub
	case store.AlgES256:
		priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return store.SigningKey{}, &Error{Kind: ErrInvalid, Op: op, Err: err}
		}
		if private, err = priv.Bytes(); err != nil {
			return store.SigningKey{}, &Error{Kind: ErrInvalid, Op: op, Err: err}
		}
		if public, err = priv.PublicKey.Bytes(); err != nil {
			return store.SigningKey{}, &Error{Kind: ErrInvalid, Op: op, Err: err}
		}
	default:
		return store.SigningKey{}, invalid(op, "alg must be EdDSA or ES256")
	}
	sealed, err := s.Seal(private, SigningKeyAAD(realm, kid, alg))
	clear(private)
	if err != nil {
		return store.SigningKey{}, err
	}
	return store.SigningKey{
		KID: kid, Realm: realm, Alg: alg, Public: public, PrivateSealed: sealed, CreatedAt: now.UTC(),
	}, nil
}

// TokenSigner signs client tokens with one realm's signing key. It is safe for concurrent use.
type TokenSigner struct {
	kid, alg string
	method   gjwt.SigningMethod
	key      crypto.Signer // ed25519.PrivateKey or *ecdsa.PrivateKey
}

// LoadTokenSigner unseals k's private half. A wrong master key, a record moved to another
// realm or kid, or a private half that does not match k.Public gives ErrSealed.
func LoadTokenSigner(k store.SigningKey, s *Sealer) (*TokenSigner, error) {
	const op = "load token signer"
	if s == nil {
		return nil, invalid(op, "nil sealer")
	}
	if len(k.PrivateSealed) == 0 {
		return nil, &Error{Kind: ErrSealed, Op: op, Source: k.KID, Reason: "no private key stored (a KMS key?)"}
	}
	raw, err := s.Open(k.PrivateSealed, SigningKeyAAD(k.Realm, k.KID, k.Alg))
	if err != nil {
		return nil, &Error{Kind: ErrSealed, Op: op, Source: k.KID}
	}
	defer clear(raw)
	t := &TokenSigner{kid: k.KID, alg: k.Alg}
	var public []byte
	switch k.Alg {
	case store.AlgEdDSA:
		if len(raw) != ed25519.SeedSize {
			return nil, &Error{Kind: ErrSealed, Op: op, Source: k.KID, Reason: "private key has the wrong size"}
		}
		priv := ed25519.NewKeyFromSeed(raw)
		t.method, t.key, public = gjwt.SigningMethodEdDSA, priv, priv.Public().(ed25519.PublicKey)
	case store.AlgES256:
		priv, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), raw)
		if err != nil {
			return nil, &Error{Kind: ErrSealed, Op: op, Source: k.KID, Reason: "private key is not a P-256 scalar"}
		}
		if public, err = priv.PublicKey.Bytes(); err != nil {
			return nil, &Error{Kind: ErrSealed, Op: op, Source: k.KID, Reason: "private key is not a P-256 scalar"}
		}
		t.method, t.key = gjwt.SigningMethodES256, priv
	default:
		return nil, invalid(op, "alg must be EdDSA or ES256")
	}
	// A mismatch means the record was assembled from two keys: signing would publish tokens
	// no edge accepts, so refuse now.
	if subtle.ConstantTimeCompare(public, k.Public) != 1 {
		return nil, &Error{Kind: ErrSealed, Op: op, Source: k.KID, Reason: "private key does not match the public key"}
	}
	return t, nil
}

// KID returns the key id tokens carry in their "kid" header.
func (t *TokenSigner) KID() string { return t.kid }

// Alg returns store.AlgEdDSA or store.AlgES256.
func (t *TokenSigner) Alg() string { return t.alg }

// String names the key, never its private half.
func (t *TokenSigner) String() string {
	return "signer.TokenSigner{" + t.alg + " " + t.kid + ", private key redacted}"
}

// GoString keeps %#v from printing the private key.
func (t *TokenSigner) GoString() string { return t.String() }

// ClientClaims is what a client token says. Claim names are those shared/jwt reads: iss,
// aud, sub (Session), org, scope (Scopes, space separated), key_id (the minting API key's
// id, "key_…"), jti, iat, nbf (= iat) and exp (= iat + TTL).
type ClientClaims struct {
	Issuer, Audience, Session, Org, KeyID string
	Scopes                                []string
	IssuedAt                              time.Time
	TTL                                   time.Duration
	JTI                                   string // generated ("tok_" + 26 base32 characters) when empty
}

// tokenClaims is the JSON payload. A struct, not a map, so the claim order is fixed and
// encoding is cheap; empty optional claims are left out rather than sent as "".
type tokenClaims struct {
	Issuer   string `json:"iss,omitempty"`
	Audience string `json:"aud,omitempty"`
	Subject  string `json:"sub"`
	Org      string `json:"org,omitempty"`
	Scope    string `json:"scope"`
	KeyID    string `json:"key_id,omitempty"`
	JTI      string `json:"jti"`
	IAT      int64  `json:"iat"`
	NBF      int64  `json:"nbf"`
	EXP      int64  `json:"exp"`
}

// golang-jwt's Claims interface; Mint never validates its own output through it.
func (c *tokenClaims) GetExpirationTime() (*gjwt.NumericDate, error) {
	return gjwt.NewNumericDate(time.Unix(c.EXP, 0)), nil
}
func (c *tokenClaims) GetIssuedAt() (*gjwt.NumericDate, error) {
	return gjwt.NewNumericDate(time.Unix(c.IAT, 0)), nil
}
func (c *tokenClaims) GetNotBefore() (*gjwt.NumericDate, error) {
	return gjwt.NewNumericDate(time.Unix(c.NBF, 0)), nil
}
func (c *tokenClaims) GetIssuer() (string, error)  { return c.Issuer, nil }
func (c *tokenClaims) GetSubject() (string, error) { return c.Subject, nil }
func (c *tokenClaims) GetAudience() (gjwt.ClaimStrings, error) {
	if c.Audience == "" {
		return nil, nil
	}
	return gjwt.ClaimStrings{c.Audience}, nil
}

// maxTTL bounds a token's lifetime whatever the caller's policy says: realms cap TTLs far
// lower (3600 s by default), so anything beyond a day is a bug upstream.
const maxTTL = 24 * time.Hour

// Mint signs a client token: header {"alg","kid","typ":"JWT"}, claims as ClientClaims says,
// times in whole seconds (iat and nbf truncated down, exp = iat + TTL rounded up). It
// returns the token, its jti and its expiry.
func (t *TokenSigner) Mint(c ClientClaims) (token, jti string, expiresAt time.Time, err error) {
	const op = "mint"
	switch {
	case c.Session == "":
		return "", "", time.Time{}, invalid(op, "session is required")
	case c.IssuedAt.IsZero():
		return "", "", time.Time{}, invalid(op, "issued-at time is required")
	case c.TTL <= 0 || c.TTL > maxTTL:
		return "", "", time.Time{}, invalid(op, "ttl must be between 1s and 24h")
	}
	for _, s := range c.Scopes {
		if s == "" || strings.ContainsAny(s, " \t\r\n") {
			return "", "", time.Time{}, invalid(op, "scope names must be non-empty and contain no whitespace")
		}
	}
	jti = c.JTI
	if jti == "" {
		jti = "tok_" + rand.Text()
	}
	iat := c.IssuedAt.Unix()
	ttl := int64((c.TTL + time.Second - 1) / time.Second)
	claims := &tokenClaims{
		Issuer: c.Issuer, Audience: c.Audience, Subject: c.Session, Org: c.Org,
		Scope: strings.Join(c.Scopes, " "), KeyID: c.KeyID, JTI: jti,
		IAT: iat, NBF: iat, EXP: iat + ttl,
	}
	tok := gjwt.NewWithClaims(t.method, claims)
	tok.Header["kid"] = t.kid
	signed, err := tok.SignedString(t.key)
	if err != nil {
		// golang-jwt's signing errors carry no key material; keep only the fact.
		return "", "", time.Time{}, &Error{Kind: ErrInvalid, Op: op, Source: t.kid, Reason: "signing failed"}
	}
	return signed, jti, time.Unix(claims.EXP, 0).UTC(), nil
}
