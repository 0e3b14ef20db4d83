package jwt_test

import (
	"crypto"
	"errors"
	"testing"
	"time"

	gjwt "github.com/golang-jwt/jwt/v5"
	"github.com/lestrrat-go/jwx/v3/jwa"
	jwxt "github.com/lestrrat-go/jwx/v3/jwt"

	"github.com/latchkeyhq/latchkey/shared/hostcrypto"
	"github.com/latchkeyhq/latchkey/shared/jwt"
)

// latchkeyGJWTClaims is how a Go service using golang-jwt would declare
// latchkey's claims.
type latchkeyGJWTClaims struct {
	gjwt.RegisteredClaims
	Org   string `json:"org"`
	Scope string `json:"scope"`
	KeyID string `json:"key_id"`
}

func gjwtMethod(alg jwt.Alg) (gjwt.SigningMethod, crypto.Signer, string) {
	if alg == jwt.AlgEdDSA {
		return gjwt.SigningMethodEdDSA, edPriv, edKID
	}
	return gjwt.SigningMethodES256, ecPriv, ecKID
}

func gjwtPublic(alg jwt.Alg) any {
	if alg == jwt.AlgEdDSA {
		return edPub
	}
	return &ecPriv.PublicKey
}

func TestInteropGolangJWTSignsLatchkeyVerifies(t *testing.T) {
	at := func(d int64) *gjwt.NumericDate { return gjwt.NewNumericDate(time.Unix(testNow+d, 0)) }
	for _, alg := range bothAlgs {
		method, priv, kid := gjwtMethod(alg)
		for name, claims := range map[string]gjwt.Claims{
			"RegisteredClaims": latchkeyGJWTClaims{
				RegisteredClaims: gjwt.RegisteredClaims{
					Issuer: testIssuer, Subject: "sess_1", Audience: gjwt.ClaimStrings{testAudience},
					ExpiresAt: at(600), NotBefore: at(-10), IssuedAt: at(-10), ID: "jti-1",
				},
				Org: "org_1", Scope: "read write", KeyID: "key_0123456789abcdef0123",
			},
			"MapClaims": gjwt.MapClaims{
				"iss": testIssuer, "sub": "sess_1", "aud": testAudience, "exp": testNow + 600,
				"nbf": testNow - 10, "iat": testNow - 10, "jti": "jti-1", "org": "org_1",
				"scope": "read write", "key_id": "key_0123456789abcdef0123", "extra": map[string]any{"n": []any{1, "x"}},
			},
		} {
			tok := gjwt.NewWithClaims(method, claims)
			tok.Header["kid"] = kid
			signed, err := tok.SignedString(priv)
			if err != nil {
				t.Fatal(err)
			}
			c, err := verify(t, signed)
			if err != nil {
				t.Fatalf("%v %s: golang-jwt token refused: %v\n%s", alg, name, err, signed)
			}
			if string(c.Subject) != "sess_1" || string(c.Org) != "org_1" || string(c.Scope) != "read write" ||
				string(c.KeyID) != "key_0123456789abcdef0123" || string(c.JTI) != "jti-1" ||
				c.Expiry != testNow+600 || c.NotBefore != testNow-10 || c.IssuedAt != testNow-10 {
				t.Fatalf("%v %s: claims %+v", alg, name, c)
			}
			// The token golang-jwt made is also refused by us when expired.
			var s jwt.Scratch
			var out jwt.Claims
			if err := jwt.Verify([]byte(signed), testNow+3600, hostcrypto.Std, testKeys, stdValidator(), &s, &out); !errors.Is(err, jwt.ErrExpired) {
				t.Fatalf("%v %s: an hour later: %v", alg, name, err)
			}
		}
	}
}

func TestInteropLatchkeyTokensVerifyElsewhere(t *testing.T) {
	for _, alg := range bothAlgs {
		token := mint(alg, stdClaims())

		// golang-jwt, as a typical Go consumer would call it.
		var claims latchkeyGJWTClaims
		_, err := gjwt.ParseWithClaims(token, &claims, func(tok *gjwt.Token) (any, error) {
			if tok.Header["kid"] != map[jwt.Alg]string{jwt.AlgEdDSA: edKID, jwt.AlgES256: ecKID}[alg] {
				return nil, errors.New("unknown kid")
			}
			return gjwtPublic(alg), nil
		},
			gjwt.WithValidMethods([]string{alg.String()}), gjwt.WithIssuer(testIssuer), gjwt.WithAudience(testAudience),
			gjwt.WithExpirationRequired(), gjwt.WithIssuedAt(),
			gjwt.WithTimeFunc(func() time.Time { return time.Unix(testNow, 0) }))
		if err != nil {
			t.Fatalf("%v: golang-jwt refuses our token: %v", alg, err)
		}
		if claims.Subject != "sess_1" || claims.Org != "org_1" || claims.KeyID != "key_0123456789abcdef0123" {
			t.Fatalf("%v: golang-jwt read %+v", alg, claims)
		}

		// lestrrat-go/jwx.
		jwxAlg := jwa.EdDSA()
		if alg == jwt.AlgES256 {
			jwxAlg = jwa.ES256()
		}
		parsed, err := jwxt.Parse([]byte(token), jwxt.WithKey(jwxAlg, gjwtPublic(alg)),
			jwxt.WithIssuer(testIssuer), jwxt.WithAudience(testAudience),
			jwxt.WithClock(jwxt.ClockFunc(func() time.Time { return time.Unix(testNow, 0) })))
		if err != nil {
			t.Fatalf("%v: jwx refuses our token: %v", alg, err)
		}
		if sub, _ := parsed.Subject(); sub != "sess_1" {
			t.Fatalf("%v: jwx read sub %q", alg, sub)
		}
	}
}
