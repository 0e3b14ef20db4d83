package verifier_test

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	"github.com/latchkeyhq/latchkey/examples/profiles"
	"github.com/latchkeyhq/latchkey/shared/hostcrypto"
	"github.com/latchkeyhq/latchkey/shared/jwt"
	"github.com/latchkeyhq/latchkey/shared/limits"
	"github.com/latchkeyhq/latchkey/shared/policy"
	"github.com/latchkeyhq/latchkey/shared/snapshot"
	"github.com/latchkeyhq/latchkey/shared/verifier"
)

// claimsOf decodes a token's payload, to mint look-alikes signed by the fixture's key.
func claimsOf(t *testing.T, tok string) map[string]any {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[1])
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestTokenCacheSurvivesNewSnapshot: a new snapshot that keeps the token profile keeps the
// cache, so a browser's stream does not pay a signature per publication.
func TestTokenCacheSurvivesNewSnapshot(t *testing.T) {
	b := build(t, "opencomputer")
	cc := &countingCrypto{Provider: hostcrypto.Std}
	e := verifier.NewEngine(verifier.Options{Crypto: cc})
	e.SetState(loadBuilt(t, b))
	tok := b.Tokens["t1"]
	if d := e.Decide(sseRequest(b, "sess_1", tok, b.Now)); !d.Allow {
		t.Fatalf("denied: %s", d.Reason)
	}
	e.SetState(republish(t, b, func(c *snapshot.Contents) {}))
	if d := e.Decide(sseRequest(b, "sess_1", tok, b.Now)); !d.Allow {
		t.Fatalf("denied after republish: %s", d.Reason)
	}
	if cc.verifies != 1 {
		t.Fatalf("verified %d signatures across two snapshots, want 1", cc.verifies)
	}
}

// TestSigningKeyReplacedUnderSameKID: a cache hit counts only while the very key that verified
// the token is published; a new key under the old kid forces verification, which fails.
func TestSigningKeyReplacedUnderSameKID(t *testing.T) {
	b := build(t, "opencomputer")
	e := verifier.NewEngine(verifier.Options{})
	e.SetState(loadBuilt(t, b))
	tok := b.Tokens["t1"]
	if d := e.Decide(sseRequest(b, "sess_1", tok, b.Now)); !d.Allow {
		t.Fatalf("denied: %s", d.Reason)
	}
	other := ed25519.NewKeyFromSeed(make([]byte, 32))
	e.SetState(republish(t, b, func(c *snapshot.Contents) {
		c.SigningKeys = []snapshot.SigningKey{{KID: profiles.TokenKID, Alg: uint8(jwt.AlgEdDSA), Public: other.Public().(ed25519.PublicKey)}}
	}))
	if d := e.Decide(sseRequest(b, "sess_1", tok, b.Now)); d.Allow || d.Status != 401 {
		t.Fatalf("token of a replaced key: got %d %s, want 401", d.Status, d.Reason)
	}
}

// TestTokenLongerThanMaxTTLRefused: whoever holds a signing key cannot mint tokens that
// outlive the realm's cap.
func TestTokenLongerThanMaxTTLRefused(t *testing.T) {
	b := build(t, "opencomputer")
	c := claimsOf(t, b.Tokens["t1"])
	iat := int64(c["iat"].(float64))
	c["exp"] = iat + 3601 // max_ttl_seconds: 3600
	long, err := profiles.SignToken(b.TokenKey, profiles.TokenKID, c)
	if err != nil {
		t.Fatal(err)
	}
	e := verifier.NewEngine(verifier.Options{})
	e.SetState(loadBuilt(t, b))
	if d := e.Decide(sseRequest(b, "sess_1", long, b.Now)); d.Allow || d.Reason != policy.ReasonInvalid {
		t.Fatalf("token living 3601 s: got %d %s, want 401 invalid", d.Status, d.Reason)
	}
	delete(c, "iat")
	c["exp"] = iat + 60
	noIAT, _ := profiles.SignToken(b.TokenKey, profiles.TokenKID, c)
	if d := e.Decide(sseRequest(b, "sess_1", noIAT, b.Now)); d.Allow || d.Reason != policy.ReasonInvalid {
		t.Fatalf("token without iat: got %d %s, want 401 invalid", d.Status, d.Reason)
	}
}

// TestMintingKeyOfUnknownTypeRefused: a snapshot whose key names a type the policy lacks must
// not take the token path down (it once dereferenced a nil key type).
func TestMintingKeyOfUnknownTypeRefused(t *testing.T) {
	b := build(t, "opencomputer")
	st := republish(t, b, func(c *snapshot.Contents) {
		for i := range c.Keys {
			c.Keys[i].Type = 200
		}
	})
	e := verifier.NewEngine(verifier.Options{})
	e.SetState(st)
	if d := e.Decide(sseRequest(b, "sess_1", b.Tokens["t1"], b.Now)); d.Allow || d.Status != 401 {
		t.Fatalf("token of a key of unknown type: got %d %s, want 401", d.Status, d.Reason)
	}
	if d := e.Decide(bearer("POST", "/v3/sessions", b.Keys["org"], b.Now)); d.Allow || d.Status != 401 {
		t.Fatalf("key of unknown type: got %d %s, want 401", d.Status, d.Reason)
	}
}

// TestKeyScopesCappedByType: the edge applies the type's scope cap even to a key the snapshot
// says holds more.
func TestKeyScopesCappedByType(t *testing.T) {
	b := build(t, "agenttasks")
	st := loadBuilt(t, b)
	pol := st.Policy()
	agent := pol.KeyType(pol.KeyTypeIndex("agent"))
	if agent == nil || agent.Cap == policy.AllScopes {
		t.Fatal("agenttasks: agent type has no scope cap; the test needs one")
	}
	st = republish(t, b, func(c *snapshot.Contents) {
		for i := range c.Keys {
			if int(c.Keys[i].Type) == pol.KeyTypeIndex("agent") {
				c.Keys[i].Scopes = policy.AllScopes
			}
		}
	})
	e := verifier.NewEngine(verifier.Options{})
	e.SetState(st)
	d := e.Decide(bearer("POST", "/api/teams/team_1/tasks", b.Keys["agent"], b.Now))
	if d.Allow || d.Reason != policy.ReasonScope {
		t.Fatalf("agent key claiming every scope creates a task: got %d %s, want 403 scope", d.Status, d.Reason)
	}
}

// TestQueryTokenNeverForwarded: ?token= is stripped on every route, not only those honouring it.
func TestQueryTokenNeverForwarded(t *testing.T) {
	b := build(t, "opencomputer")
	e := verifier.NewEngine(verifier.Options{})
	e.SetState(loadBuilt(t, b))
	r := bearer("POST", "/v3/sessions", b.Keys["org"], b.Now)
	r.QueryToken, r.HasQueryToken = []byte(b.Tokens["t1"]), true
	d := e.Decide(r)
	if !d.Allow || !d.StripQueryToken {
		t.Fatalf("got allow=%v strip=%v, want an allow that strips the query token", d.Allow, d.StripQueryToken)
	}
}

// TestExpiredManifestFailsClosedWhileHeld: a held snapshot stops deciding at its expiry even
// when no staleness limit is configured (a frozen store cannot keep an edge on old keys).
func TestExpiredManifestFailsClosedWhileHeld(t *testing.T) {
	b := build(t, "opencomputer")
	st := loadBuilt(t, b)
	e := verifier.NewEngine(verifier.Options{})
	e.SetState(st)
	exp := st.View().ExpiresAt()
	if d := e.Decide(bearer("POST", "/v3/sessions", b.Keys["org"], exp-1)); !d.Allow {
		t.Fatalf("before expiry: %d %s", d.Status, d.Reason)
	}
	if d := e.Decide(bearer("POST", "/v3/sessions", b.Keys["org"], exp)); d.Allow || d.Status != 503 {
		t.Fatalf("at expiry: got %d %s, want 503", d.Status, d.Reason)
	}
}

// TestOversizedRequestHeadersRefused: the limits the spec names are enforced, not advisory.
func TestOversizedRequestHeadersRefused(t *testing.T) {
	b := build(t, "opencomputer")
	e := verifier.NewEngine(verifier.Options{})
	e.SetState(loadBuilt(t, b))
	r := bearer("POST", "/v3/sessions", b.Keys["org"], b.Now)
	for len(r.Headers) <= limits.MaxRequestHeaders {
		r.Headers = append(r.Headers, verifier.Header{Name: []byte("x-pad"), Value: []byte("1")})
	}
	if d := e.Decide(r); d.Allow || d.Status != 401 {
		t.Fatalf("%d headers: got %d, want 401", len(r.Headers), d.Status)
	}
	r = bearer("POST", "/v3/sessions", b.Keys["org"], b.Now)
	r.Headers = append(r.Headers, verifier.Header{Name: []byte("x-pad"), Value: make([]byte, limits.MaxHeaderValueBytes+1)})
	if d := e.Decide(r); d.Allow || d.Status != 401 {
		t.Fatalf("oversized header value: got %d, want 401", d.Status)
	}
}
