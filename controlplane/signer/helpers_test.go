package signer_test

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/controlplane/signer"
	"github.com/latchkeyhq/latchkey/controlplane/store"
	"github.com/latchkeyhq/latchkey/shared/hostcrypto"
	"github.com/latchkeyhq/latchkey/shared/jwt"
)

// t0 is the tests' clock: every time derives from it, none from the wall clock.
var t0 = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

const (
	testIssuer   = "https://latchkey.test/default"
	testAudience = "https://api.example.test"
	testKeyID    = "key_0123456789abcdef0123"
)

func randomMaster(t testing.TB) []byte {
	t.Helper()
	m := make([]byte, signer.MasterKeySize)
	if _, err := rand.Read(m); err != nil {
		t.Fatal(err)
	}
	return m
}

func newSealer(t testing.TB) *signer.Sealer {
	t.Helper()
	s, err := signer.NewSealer(randomMaster(t))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newSigningKey(t testing.TB, s *signer.Sealer, alg string) (store.SigningKey, *signer.TokenSigner) {
	t.Helper()
	k, err := signer.NewSigningKey("default", alg, t0, s)
	if err != nil {
		t.Fatalf("NewSigningKey(%s): %v", alg, err)
	}
	ts, err := signer.LoadTokenSigner(k, s)
	if err != nil {
		t.Fatalf("LoadTokenSigner(%s): %v", alg, err)
	}
	return k, ts
}

// coreKeys adapts stored signing keys to the core verifier's key set, the way a snapshot
// publishes them.
type coreKeys []store.SigningKey

func (ks coreKeys) LookupKey(kid []byte) (jwt.Key, bool) {
	for _, k := range ks {
		if k.KID == string(kid) {
			alg := jwt.AlgEdDSA
			if k.Alg == store.AlgES256 {
				alg = jwt.AlgES256
			}
			return jwt.Key{KID: []byte(k.KID), Alg: alg, Public: k.Public}, true
		}
	}
	return jwt.Key{}, false
}

// coreVerify checks a token the way an edge does, step by step: Parse, VerifySignature,
// Claims, Validator.Check.
func coreVerify(token string, keys coreKeys, now time.Time) (jwt.Parsed, jwt.Claims, error) {
	var s jwt.Scratch
	var c jwt.Claims
	p, err := jwt.Parse([]byte(token), &s)
	if err != nil {
		return p, c, err
	}
	if err := p.VerifySignature(hostcrypto.Std, keys); err != nil {
		return p, c, err
	}
	if err := p.Claims(&c); err != nil {
		return p, c, err
	}
	v := &jwt.Validator{Issuer: testIssuer, Audience: testAudience, Typ: signer.TokenType, Leeway: 30}
	return p, c, v.Check(&p, &c, now.Unix())
}

func stdClaims() signer.ClientClaims {
	return signer.ClientClaims{
		Issuer: testIssuer, Audience: testAudience, Session: "sess_42", Org: "acme", KeyID: testKeyID,
		Scopes: []string{"read", "steer"}, IssuedAt: t0, TTL: 10 * time.Minute,
	}
}

// mustNotLeak fails when text holds secret in any encoding an accident would print it in:
// raw, hex, base64, base64url, or as fmt prints a byte slice.
func mustNotLeak(t testing.TB, what, text string, secret []byte) {
	t.Helper()
	for _, enc := range []string{
		string(secret), hex.EncodeToString(secret), base64.StdEncoding.EncodeToString(secret),
		base64.RawURLEncoding.EncodeToString(secret), strings.Trim(fmt.Sprint(secret), "[]"),
	} {
		if strings.Contains(text, enc) {
			t.Fatalf("%s leaks a secret: %q", what, text)
		}
	}
}

// gjwtPublicKey returns a stored key's public half as golang-jwt and jwx take it.
func gjwtPublicKey(k store.SigningKey) (any, error) {
	if k.Alg == store.AlgEdDSA {
		return ed25519.PublicKey(k.Public), nil
	}
	return ecdsa.ParseUncompressedPublicKey(elliptic.P256(), k.Public)
}
