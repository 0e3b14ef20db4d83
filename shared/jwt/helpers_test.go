package jwt_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"strconv"
	"testing"

	"github.com/latchkeyhq/latchkey/shared/hostcrypto"
	"github.com/latchkeyhq/latchkey/shared/jwt"
)

// The test-side signer: the shared package verifies only, so tests mint their
// own tokens in latchkey's profile (header {"alg","kid","typ":"JWT"}).

const (
	testNow      = int64(1_800_000_000)
	testIssuer   = "https://auth.example.com"
	testAudience = "api.example.com"
	edKID        = "ed-1"
	ecKID        = "ec-1"
)

var (
	edPriv = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
	edPub  = edPriv.Public().(ed25519.PublicKey)
	ecPriv = mustECKey()
	ecPub  = mustECPub(ecPriv)
)

func mustECKey() *ecdsa.PrivateKey {
	d := sha256.Sum256([]byte("latchkey jwt test key"))
	k, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), d[:])
	if err != nil {
		panic(err)
	}
	return k
}

func mustECPub(k *ecdsa.PrivateKey) []byte {
	b, err := k.PublicKey.Bytes()
	if err != nil {
		panic(err)
	}
	return b
}

// keySet is a KeySet over a fixed list.
type keySet []jwt.Key

func (ks keySet) LookupKey(kid []byte) (jwt.Key, bool) {
	for _, k := range ks {
		if bytes.Equal(k.KID, kid) {
			return k, true
		}
	}
	return jwt.Key{}, false
}

// testKeys holds one Ed25519 and one P-256 key.
var testKeys jwt.KeySet = keySet{
	{KID: []byte(edKID), Alg: jwt.AlgEdDSA, Public: edPub},
	{KID: []byte(ecKID), Alg: jwt.AlgES256, Public: ecPub},
}

// anyKey is a KeySet that returns its one key whatever kid is asked for.
type anyKey jwt.Key

func (k anyKey) LookupKey([]byte) (jwt.Key, bool) { return jwt.Key(k), true }

var b64 = base64.RawURLEncoding

// signRaw signs header and payload (raw JSON or any bytes) with the test key of
// alg and returns the compact JWS.
func signRaw(alg jwt.Alg, header, payload string) string {
	input := b64.EncodeToString([]byte(header)) + "." + b64.EncodeToString([]byte(payload))
	return input + "." + b64.EncodeToString(sigOver(alg, []byte(input)))
}

func sigOver(alg jwt.Alg, input []byte) []byte {
	switch alg {
	case jwt.AlgEdDSA:
		return ed25519.Sign(edPriv, input)
	case jwt.AlgES256:
		digest := sha256.Sum256(input)
		r, s, err := ecdsa.Sign(rand.Reader, ecPriv, digest[:])
		if err != nil {
			panic(err)
		}
		sig := make([]byte, 64)
		r.FillBytes(sig[:32])
		s.FillBytes(sig[32:])
		return sig
	}
	panic("unknown alg")
}

// profileHeader is latchkey's header for alg.
func profileHeader(alg jwt.Alg) string {
	kid := edKID
	if alg == jwt.AlgES256 {
		kid = ecKID
	}
	return `{"alg":"` + alg.String() + `","kid":"` + kid + `","typ":"JWT"}`
}

// mint signs payload under latchkey's profile header.
func mint(alg jwt.Alg, payload string) string {
	return signRaw(alg, profileHeader(alg), payload)
}

// stdClaims is a typical client token's claims at testNow.
func stdClaims() string {
	return claimsAt(testNow-10, testNow-10, testNow+600)
}

func claimsAt(iat, nbf, exp int64) string {
	return `{"iss":"` + testIssuer + `","sub":"sess_1","aud":"` + testAudience +
		`","org":"org_1","scope":"read write","jti":"jti-1","key_id":"key_0123456789abcdef0123",` +
		`"iat":` + strconv.FormatInt(iat, 10) + `,"nbf":` + strconv.FormatInt(nbf, 10) +
		`,"exp":` + strconv.FormatInt(exp, 10) + `}`
}

func stdValidator() *jwt.Validator {
	return &jwt.Validator{Issuer: testIssuer, Audience: testAudience, Typ: "JWT", Leeway: 30}
}

var bothAlgs = []jwt.Alg{jwt.AlgEdDSA, jwt.AlgES256}

// verify runs the full check at testNow with the standard validator.
func verify(t testing.TB, token string) (jwt.Claims, error) {
	t.Helper()
	var s jwt.Scratch
	var c jwt.Claims
	err := jwt.Verify([]byte(token), testNow, hostcrypto.Std, testKeys, stdValidator(), &s, &c)
	if err != nil && !isZeroClaims(&c) {
		t.Fatalf("Verify returned %v but left claims behind: %+v", err, c)
	}
	return c, err
}

func isZeroClaims(c *jwt.Claims) bool {
	if c.NumAudience != 0 || c.IssuedAt != 0 || c.NotBefore != 0 || c.Expiry != 0 || c.HasIssuedAt || c.HasNotBefore {
		return false
	}
	for _, b := range [][]byte{c.Issuer, c.Subject, c.Org, c.Scope, c.JTI, c.KeyID} {
		if b != nil {
			return false
		}
	}
	for _, a := range c.Audience {
		if a != nil {
			return false
		}
	}
	return true
}
