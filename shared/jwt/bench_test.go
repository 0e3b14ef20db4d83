package jwt_test

import (
	"testing"
	"time"

	gjwt "github.com/golang-jwt/jwt/v5"
	"github.com/lestrrat-go/jwx/v3/jwa"
	jwxt "github.com/lestrrat-go/jwx/v3/jwt"

	"github.com/latchkeyhq/latchkey/shared/hostcrypto"
	"github.com/latchkeyhq/latchkey/shared/jwt"
)

// BenchmarkVerify verifies the same token with latchkey, golang-jwt and jwx in
// one run, each doing the whole job: signature, exp/nbf/iat with 30 s
// leeway, issuer and audience. Ratios between the sub-benchmarks are the
// figures to quote.
func BenchmarkVerify(b *testing.B) {
	clock := func() time.Time { return time.Unix(testNow, 0) }
	for _, alg := range bothAlgs {
		token := mint(alg, stdClaims())
		pub := gjwtPublic(alg)
		kid := map[jwt.Alg]string{jwt.AlgEdDSA: edKID, jwt.AlgES256: ecKID}[alg]

		b.Run(alg.String()+"/latchkey", func(b *testing.B) {
			tok := []byte(token)
			var s jwt.Scratch
			var c jwt.Claims
			v := stdValidator()
			b.ReportAllocs()
			for b.Loop() {
				if err := jwt.Verify(tok, testNow, hostcrypto.Std, testKeys, v, &s, &c); err != nil {
					b.Fatal(err)
				}
			}
		})

		// golang-jwt's typical use: jwt.Parse into MapClaims with a Keyfunc
		// that picks the key by kid.
		b.Run(alg.String()+"/golang-jwt", func(b *testing.B) {
			keyFunc := func(t *gjwt.Token) (any, error) {
				if t.Header["kid"] != kid {
					return nil, jwt.ErrUnknownKey
				}
				return pub, nil
			}
			opts := []gjwt.ParserOption{
				gjwt.WithValidMethods([]string{alg.String()}), gjwt.WithIssuer(testIssuer),
				gjwt.WithAudience(testAudience), gjwt.WithExpirationRequired(), gjwt.WithIssuedAt(),
				gjwt.WithLeeway(30 * time.Second), gjwt.WithTimeFunc(clock),
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := gjwt.Parse(token, keyFunc, opts...); err != nil {
					b.Fatal(err)
				}
			}
		})

		b.Run(alg.String()+"/jwx", func(b *testing.B) {
			jwxAlg := jwa.EdDSA()
			if alg == jwt.AlgES256 {
				jwxAlg = jwa.ES256()
			}
			tok := []byte(token)
			opts := []jwxt.ParseOption{
				jwxt.WithKey(jwxAlg, pub), jwxt.WithIssuer(testIssuer), jwxt.WithAudience(testAudience),
				jwxt.WithAcceptableSkew(30 * time.Second), jwxt.WithClock(jwxt.ClockFunc(clock)),
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := jwxt.Parse(tok, opts...); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkParseOnly is everything Verify does except the signature: Parse,
// FindKey, Claims and Check.
func BenchmarkParseOnly(b *testing.B) {
	b.Run("latchkey", func(b *testing.B) {
		tok := []byte(mint(jwt.AlgEdDSA, stdClaims()))
		var s jwt.Scratch
		var c jwt.Claims
		v := stdValidator()
		b.ReportAllocs()
		for b.Loop() {
			p, err := jwt.Parse(tok, &s)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := p.FindKey(testKeys); err != nil {
				b.Fatal(err)
			}
			if err := p.Claims(&c); err != nil {
				b.Fatal(err)
			}
			if err := v.Check(&p, &c, testNow); err != nil {
				b.Fatal(err)
			}
		}
	})
}
