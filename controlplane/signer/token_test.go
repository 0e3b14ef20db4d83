package signer_test

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	gjwt "github.com/golang-jwt/jwt/v5"

	"github.com/latchkeyhq/latchkey/controlplane/signer"
	"github.com/latchkeyhq/latchkey/controlplane/store"
	"github.com/latchkeyhq/latchkey/shared/hostcrypto"
	"github.com/latchkeyhq/latchkey/shared/jwt"
)

var bothAlgs = []string{store.AlgEdDSA, store.AlgES256}

func TestNewSigningKeyShape(t *testing.T) {
	s := newSealer(t)
	for alg, size := range map[string]int{"": 32, store.AlgEdDSA: 32, store.AlgES256: 65} {
		k, err := signer.NewSigningKey("default", alg, t0, s)
		if err != nil {
			t.Fatal(err)
		}
		if want := map[string]string{"": store.AlgEdDSA}[alg]; want != "" && k.Alg != want {
			t.Fatalf("default alg is %q", k.Alg)
		}
		if len(k.Public) != size || k.Realm != "default" || !k.CreatedAt.Equal(t0) || k.RetiredAt != nil || k.NotAfter != nil {
			t.Fatalf("%q: %+v", alg, k)
		}
		if !strings.HasPrefix(k.KID, "sk_") || len(k.KID) != 3+16 {
			t.Fatalf("kid %q", k.KID)
		}
	}
	if _, err := signer.NewSigningKey("default", "RS256", t0, s); !errors.Is(err, signer.ErrInvalid) {
		t.Fatalf("RS256: %v", err)
	}
	seen := map[string]bool{}
	for range 200 {
		k, err := signer.NewSigningKey("default", store.AlgEdDSA, t0, s)
		if err != nil {
			t.Fatal(err)
		}
		if seen[k.KID] {
			t.Fatalf("kid %s repeated", k.KID)
		}
		seen[k.KID] = true
	}
}

func TestMintedTokenVerifiesWithCore(t *testing.T) {
	s := newSealer(t)
	for _, alg := range bothAlgs {
		k, ts := newSigningKey(t, s, alg)
		if ts.KID() != k.KID || ts.Alg() != alg {
			t.Fatalf("signer names %s/%s, key %s/%s", ts.KID(), ts.Alg(), k.KID, alg)
		}
		token, jti, exp, err := ts.Mint(stdClaims())
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(jti, "tok_") || len(jti) < 4+22 {
			t.Fatalf("jti %q", jti)
		}
		if want := t0.Add(10 * time.Minute); !exp.Equal(want) {
			t.Fatalf("exp %v, want %v", exp, want)
		}
		p, c, err := coreVerify(token, coreKeys{k}, t0)
		if err != nil {
			t.Fatalf("%s: core refuses a minted token: %v", alg, err)
		}
		wantAlg := map[string]jwt.Alg{store.AlgEdDSA: jwt.AlgEdDSA, store.AlgES256: jwt.AlgES256}[alg]
		if p.Alg != wantAlg || string(p.KID) != k.KID || string(p.Typ) != "JWT" {
			t.Fatalf("%s: header alg %v kid %q typ %q", alg, p.Alg, p.KID, p.Typ)
		}
		if string(c.Issuer) != testIssuer || !c.HasAudience(testAudience) || c.NumAudience != 1 ||
			string(c.Subject) != "sess_42" || string(c.Org) != "acme" || string(c.Scope) != "read steer" ||
			string(c.KeyID) != testKeyID || string(c.JTI) != jti ||
			c.IssuedAt != t0.Unix() || !c.HasIssuedAt || c.NotBefore != t0.Unix() || !c.HasNotBefore ||
			c.Expiry != exp.Unix() {
			t.Fatalf("%s: claims %+v", alg, c)
		}
		// The same token, checked once it has expired (beyond the 30 s leeway), is refused.
		if _, _, err := coreVerify(token, coreKeys{k}, exp.Add(31*time.Second)); !errors.Is(err, jwt.ErrExpired) {
			t.Fatalf("%s: after expiry: %v", alg, err)
		}
	}
}

func TestMintKeepsGivenJTIAndRoundsTTLUp(t *testing.T) {
	_, ts := newSigningKey(t, newSealer(t), store.AlgEdDSA)
	c := stdClaims()
	c.JTI = "jti-fixed"
	c.TTL = 1500 * time.Millisecond
	c.IssuedAt = t0.Add(700 * time.Millisecond) // iat is truncated to the second
	token, jti, exp, err := ts.Mint(c)
	if err != nil {
		t.Fatal(err)
	}
	if jti != "jti-fixed" || !exp.Equal(t0.Add(2*time.Second)) {
		t.Fatalf("jti %q exp %v", jti, exp)
	}
	payload := decodePayload(t, token)
	if payload["jti"] != "jti-fixed" || payload["iat"] != float64(t0.Unix()) || payload["exp"] != float64(t0.Unix()+2) {
		t.Fatalf("payload %v", payload)
	}
}

func TestMintOmitsEmptyOptionalClaims(t *testing.T) {
	k, ts := newSigningKey(t, newSealer(t), store.AlgEdDSA)
	token, _, _, err := ts.Mint(signer.ClientClaims{Session: "s", IssuedAt: t0, TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	payload := decodePayload(t, token)
	for _, name := range []string{"iss", "aud", "org", "key_id"} {
		if _, ok := payload[name]; ok {
			t.Fatalf("empty %s sent: %v", name, payload)
		}
	}
	if payload["scope"] != "" || payload["sub"] != "s" {
		t.Fatalf("payload %v", payload)
	}
	// The core accepts a token without iss, aud or org when the realm asks for none.
	var sc jwt.Scratch
	p, err := jwt.Parse([]byte(token), &sc)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.VerifySignature(hostcrypto.Std, coreKeys{k}); err != nil {
		t.Fatal(err)
	}
	var c jwt.Claims
	if err := p.Claims(&c); err != nil {
		t.Fatal(err)
	}
	if err := (&jwt.Validator{Typ: "JWT"}).Check(&p, &c, t0.Unix()); err != nil {
		t.Fatal(err)
	}
}

func decodePayload(t *testing.T, token string) map[string]any {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts", len(parts))
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestMintRefusesBadClaims(t *testing.T) {
	_, ts := newSigningKey(t, newSealer(t), store.AlgEdDSA)
	for name, mutate := range map[string]func(*signer.ClientClaims){
		"no session":     func(c *signer.ClientClaims) { c.Session = "" },
		"no iat":         func(c *signer.ClientClaims) { c.IssuedAt = time.Time{} },
		"zero ttl":       func(c *signer.ClientClaims) { c.TTL = 0 },
		"negative ttl":   func(c *signer.ClientClaims) { c.TTL = -time.Second },
		"ttl over a day": func(c *signer.ClientClaims) { c.TTL = 25 * time.Hour },
		"empty scope":    func(c *signer.ClientClaims) { c.Scopes = []string{"read", ""} },
		"scope w/ space": func(c *signer.ClientClaims) { c.Scopes = []string{"read write"} },
	} {
		c := stdClaims()
		mutate(&c)
		if tok, _, _, err := ts.Mint(c); !errors.Is(err, signer.ErrInvalid) || tok != "" {
			t.Fatalf("%s: %q, %v", name, tok, err)
		}
	}
}

func TestTamperedTokenRefused(t *testing.T) {
	s := newSealer(t)
	for _, alg := range bothAlgs {
		k, ts := newSigningKey(t, s, alg)
		token, _, _, err := ts.Mint(stdClaims())
		if err != nil {
			t.Fatal(err)
		}
		parts := strings.Split(token, ".")

		// A changed claim under the original signature.
		payload := decodePayload(t, token)
		payload["scope"] = "read steer admin"
		raw, _ := json.Marshal(payload)
		forged := parts[0] + "." + base64.RawURLEncoding.EncodeToString(raw) + "." + parts[2]
		if _, _, err := coreVerify(forged, coreKeys{k}, t0); !errors.Is(err, jwt.ErrBadSignature) {
			t.Fatalf("%s: escalated scope: %v", alg, err)
		}

		// A flipped signature bit.
		sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
		sig[10] ^= 1
		forged = parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(sig)
		if _, _, err := coreVerify(forged, coreKeys{k}, t0); !errors.Is(err, jwt.ErrBadSignature) {
			t.Fatalf("%s: flipped signature: %v", alg, err)
		}

		// Another key of the same algorithm, published under this kid.
		other, _ := newSigningKey(t, s, alg)
		other.KID = k.KID
		if _, _, err := coreVerify(token, coreKeys{other}, t0); !errors.Is(err, jwt.ErrBadSignature) {
			t.Fatalf("%s: verified under another key: %v", alg, err)
		}
	}
}

func TestGolangJWTParsesMintedToken(t *testing.T) {
	s := newSealer(t)
	for _, alg := range bothAlgs {
		k, ts := newSigningKey(t, s, alg)
		token, _, _, err := ts.Mint(stdClaims())
		if err != nil {
			t.Fatal(err)
		}
		pub, err := gjwtPublicKey(k)
		if err != nil {
			t.Fatal(err)
		}
		var claims struct {
			gjwt.RegisteredClaims
			Scope string `json:"scope"`
			KeyID string `json:"key_id"`
		}
		_, err = gjwt.ParseWithClaims(token, &claims, func(tok *gjwt.Token) (any, error) {
			if tok.Header["kid"] != k.KID {
				return nil, errors.New("unknown kid")
			}
			return pub, nil
		}, gjwt.WithValidMethods([]string{alg}), gjwt.WithIssuer(testIssuer), gjwt.WithAudience(testAudience),
			gjwt.WithExpirationRequired(), gjwt.WithTimeFunc(func() time.Time { return t0 }))
		if err != nil || claims.Subject != "sess_42" || claims.Scope != "read steer" || claims.KeyID != testKeyID {
			t.Fatalf("%s: golang-jwt: %v %+v", alg, err, claims)
		}
	}
}

func TestSealedSigningKeyBoundToContext(t *testing.T) {
	s := newSealer(t)
	for _, alg := range bothAlgs {
		k, _ := newSigningKey(t, s, alg)
		other, _ := newSigningKey(t, s, alg)
		for name, mutate := range map[string]func(*store.SigningKey){
			"other realm": func(k *store.SigningKey) { k.Realm = "prod" },
			"other kid":   func(k *store.SigningKey) { k.KID = other.KID },
			"other alg": func(k *store.SigningKey) {
				k.Alg = map[string]string{store.AlgEdDSA: store.AlgES256, store.AlgES256: store.AlgEdDSA}[alg]
			},
			"other public key": func(k *store.SigningKey) { k.Public = other.Public },
			"other sealed key": func(k *store.SigningKey) { k.PrivateSealed = other.PrivateSealed },
			"no private key":   func(k *store.SigningKey) { k.PrivateSealed = nil },
		} {
			bad := k
			mutate(&bad)
			if ts, err := signer.LoadTokenSigner(bad, s); !errors.Is(err, signer.ErrSealed) || ts != nil {
				t.Fatalf("%s %s: %v", alg, name, err)
			}
		}
		if _, err := signer.LoadTokenSigner(k, newSealer(t)); !errors.Is(err, signer.ErrSealed) {
			t.Fatalf("%s: wrong master key: %v", alg, err)
		}
	}
}

func TestPrivateKeyNeverPrinted(t *testing.T) {
	s := newSealer(t)
	for _, alg := range bothAlgs {
		k, ts := newSigningKey(t, s, alg)
		private, err := s.Open(k.PrivateSealed, signer.SigningKeyAAD(k.Realm, k.KID, k.Alg))
		if err != nil {
			t.Fatal(err)
		}
		mustNotLeak(t, alg+" TokenSigner formatting", fmt.Sprintf("%v|%+v|%#v|%s", ts, ts, ts, ts), private)
		if !strings.Contains(ts.String(), k.KID) {
			t.Fatalf("String() does not name the key: %s", ts)
		}
		bad := k
		bad.Public = make([]byte, len(k.Public))
		if _, err := signer.LoadTokenSigner(bad, s); err != nil {
			mustNotLeak(t, alg+" mismatch error", err.Error(), private)
		}
		if _, _, _, err := ts.Mint(signer.ClientClaims{}); err != nil {
			mustNotLeak(t, alg+" mint error", err.Error(), private)
		}
	}
}
