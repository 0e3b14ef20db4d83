package signer_test

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
	jwxt "github.com/lestrrat-go/jwx/v3/jwt"

	"github.com/latchkeyhq/latchkey/controlplane/signer"
	"github.com/latchkeyhq/latchkey/controlplane/store"
)

func TestJWKSShape(t *testing.T) {
	s := newSealer(t)
	ed, _ := newSigningKey(t, s, store.AlgEdDSA)
	ec, _ := newSigningKey(t, s, store.AlgES256)
	data, err := signer.JWKS([]store.SigningKey{ed, ec}, t0)
	if err != nil {
		t.Fatal(err)
	}
	var set struct {
		Keys []map[string]string `json:"keys"`
	}
	if err := json.Unmarshal(data, &set); err != nil {
		t.Fatal(err)
	}
	b64 := base64.RawURLEncoding.EncodeToString
	want := []map[string]string{
		{"kty": "OKP", "crv": "Ed25519", "x": b64(ed.Public), "kid": ed.KID, "alg": "EdDSA", "use": "sig"},
		{"kty": "EC", "crv": "P-256", "x": b64(ec.Public[1:33]), "y": b64(ec.Public[33:]), "kid": ec.KID, "alg": "ES256", "use": "sig"},
	}
	if len(set.Keys) != len(want) {
		t.Fatalf("%d keys: %s", len(set.Keys), data)
	}
	for i := range want {
		if len(set.Keys[i]) != len(want[i]) {
			t.Fatalf("key %d: %v, want %v", i, set.Keys[i], want[i])
		}
		for k, v := range want[i] {
			if set.Keys[i][k] != v {
				t.Fatalf("key %d %s = %q, want %q", i, k, set.Keys[i][k], v)
			}
		}
	}

	empty, err := signer.JWKS(nil, t0)
	if err != nil || string(empty) != `{"keys":[]}` {
		t.Fatalf("empty set: %s %v", empty, err)
	}
	bad := ed
	bad.Public = bad.Public[:31]
	if _, err := signer.JWKS([]store.SigningKey{bad}, t0); !errors.Is(err, signer.ErrInvalid) {
		t.Fatalf("31-byte Ed25519 key: %v", err)
	}
}

// retire marks k retired at t0 and published until notAfter, as store.RotateSigningKey does.
func retire(k store.SigningKey, notAfter time.Time) store.SigningKey {
	at := t0
	k.RetiredAt, k.NotAfter = &at, &notAfter
	return k
}

// A retired key stays in the JWKS until every token it signed has expired (NotAfter), and
// jwx verifies tokens against the published set: both the active key's and, until then,
// the retired key's.
func TestJWKSPublishesRetiredKeysUntilNotAfter(t *testing.T) {
	s := newSealer(t)
	oldKey, oldSigner := newSigningKey(t, s, store.AlgES256)
	longGone, _ := newSigningKey(t, s, store.AlgEdDSA)
	active, activeSigner := newSigningKey(t, s, store.AlgEdDSA)
	notAfter := t0.Add(time.Hour)
	keys := []store.SigningKey{retire(longGone, t0), retire(oldKey, notAfter), active}

	oldToken, _, _, err := oldSigner.Mint(stdClaims())
	if err != nil {
		t.Fatal(err)
	}
	newToken, _, _, err := activeSigner.Mint(stdClaims())
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		now      time.Time
		wantKIDs []string
	}{
		{t0, []string{oldKey.KID, active.KID}},
		{notAfter.Add(-time.Second), []string{oldKey.KID, active.KID}},
		{notAfter, []string{active.KID}}, // NotAfter is the first instant it is gone
		{notAfter.Add(time.Hour), []string{active.KID}},
	} {
		data, err := signer.JWKS(keys, tc.now)
		if err != nil {
			t.Fatal(err)
		}
		set, err := jwk.Parse(data)
		if err != nil {
			t.Fatalf("jwx cannot parse the JWKS: %v\n%s", err, data)
		}
		if set.Len() != len(tc.wantKIDs) {
			t.Fatalf("at %v: %d keys, want %v", tc.now, set.Len(), tc.wantKIDs)
		}
		for i, kid := range tc.wantKIDs {
			k, _ := set.Key(i)
			if got, _ := k.KeyID(); got != kid {
				t.Fatalf("at %v key %d: kid %q, want %q", tc.now, i, got, kid)
			}
		}

		// Verify at t0 (the tokens' own lifetime); only the set's content changes with now.
		verify := func(token string) error {
			_, err := jwxt.Parse([]byte(token), jwxt.WithKeySet(set),
				jwxt.WithIssuer(testIssuer), jwxt.WithAudience(testAudience),
				jwxt.WithClock(jwxt.ClockFunc(func() time.Time { return t0 })))
			return err
		}
		if err := verify(newToken); err != nil {
			t.Fatalf("at %v: jwx refuses the active key's token: %v", tc.now, err)
		}
		err = verify(oldToken)
		if published := len(tc.wantKIDs) == 2; published && err != nil {
			t.Fatalf("at %v: jwx refuses the retired key's token while published: %v", tc.now, err)
		} else if !published && err == nil {
			t.Fatalf("at %v: the retired key's token verifies after NotAfter", tc.now)
		}
	}
}
