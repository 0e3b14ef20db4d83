package verifier_test

import (
	"crypto/ed25519"
	"crypto/sha256"
	"strings"
	"testing"

	"github.com/latchkeyhq/latchkey/examples/profiles"
	"github.com/latchkeyhq/latchkey/shared/apikey"
	"github.com/latchkeyhq/latchkey/shared/hostcrypto"
	"github.com/latchkeyhq/latchkey/shared/jwt"
	"github.com/latchkeyhq/latchkey/shared/policy"
	"github.com/latchkeyhq/latchkey/shared/snapshot"
	"github.com/latchkeyhq/latchkey/shared/verifier"
)

// countingCrypto counts signature checks, to tell cache hits from misses.
type countingCrypto struct {
	hostcrypto.Provider
	verifies int
}

func (c *countingCrypto) VerifyEd25519(pub, msg, sig []byte) bool {
	c.verifies++
	return c.Provider.VerifyEd25519(pub, msg, sig)
}

func build(t testing.TB, profile string) *profiles.Built {
	t.Helper()
	b, err := profiles.Build(profile, 7)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// republish publishes the next version of b after mutate changed its contents.
func republish(t testing.TB, b *profiles.Built, mutate func(c *snapshot.Contents)) *verifier.State {
	t.Helper()
	mutate(b.Contents)
	b.Contents.Version++
	if err := b.Publish(); err != nil {
		t.Fatal(err)
	}
	return loadBuilt(t, b)
}

func sseRequest(b *profiles.Built, session, token string, now int64) *verifier.Request {
	return &verifier.Request{
		Now: now * 1e9, Method: []byte("GET"), Path: []byte("/v3/sessions/" + session + "/events"),
		QueryToken: []byte(token), HasQueryToken: true,
	}
}

func bearer(method, path, cred string, now int64) *verifier.Request {
	return &verifier.Request{
		Now: now * 1e9, Method: []byte(method), Path: []byte(path),
		Headers: []verifier.Header{{Name: []byte("Authorization"), Value: []byte("Bearer " + cred)}},
	}
}

func TestNoSnapshotFailsClosed(t *testing.T) {
	e := verifier.NewEngine(verifier.Options{})
	d := e.Decide(bearer("GET", "/v3/sessions", "oc_x", 1))
	if d.Allow || d.Status != 503 || d.Reason != policy.ReasonUnavailable || len(d.Response.Body) == 0 {
		t.Fatalf("no snapshot: %+v", d)
	}
}

func TestStaleSnapshotFailsClosed(t *testing.T) {
	b := build(t, "opencomputer")
	e := verifier.NewEngine(verifier.Options{MaxStalenessSeconds: 60})
	e.SetState(loadBuilt(t, b))
	if d := e.Decide(bearer("POST", "/v3/sessions", b.Keys["org"], b.Now+60)); !d.Allow {
		t.Fatalf("fresh snapshot denied: %d %s", d.Status, d.Reason)
	}
	d := e.Decide(bearer("POST", "/v3/sessions", b.Keys["org"], b.Now+61))
	if d.Allow || d.Status != 503 {
		t.Fatalf("stale snapshot: got %d, want 503", d.Status)
	}
	if !strings.Contains(string(d.Response.Body), "unavailable") {
		t.Fatalf("503 body %s not rendered by the realm's policy", d.Response.Body)
	}
}

// TestCachedTokenRevokedByNewerSnapshot: the cache must not outlive a revocation.
func TestCachedTokenRevokedByNewerSnapshot(t *testing.T) {
	for _, kind := range []string{"session", "key"} {
		t.Run(kind, func(t *testing.T) {
			b := build(t, "opencomputer")
			cc := &countingCrypto{Provider: hostcrypto.Std}
			e := verifier.NewEngine(verifier.Options{Crypto: cc})
			e.SetState(loadBuilt(t, b))
			tok := b.Tokens["t1"]
			for i := 0; i < 3; i++ {
				if d := e.Decide(sseRequest(b, "sess_1", tok, b.Now)); !d.Allow {
					t.Fatalf("request %d denied: %s", i, d.Reason)
				}
			}
			if cc.verifies != 1 {
				t.Fatalf("3 requests with one token verified %d signatures, want 1 (cache)", cc.verifies)
			}
			e.SetState(republish(t, b, func(c *snapshot.Contents) {
				if kind == "session" {
					c.RevokedSessions = append(c.RevokedSessions, snapshot.Revocation{Hash: sha256.Sum256([]byte("sess_1")), Until: b.Now + 3600})
					return
				}
				h := sha256.Sum256([]byte(b.Keys["org"]))
				var kept []snapshot.KeyRecord
				for _, k := range c.Keys {
					if k.Hash != apikey.Hash(h) {
						kept = append(kept, k)
					}
				}
				c.Keys = kept
			}))
			d := e.Decide(sseRequest(b, "sess_1", tok, b.Now))
			if d.Allow || d.Status != 401 || d.Reason != policy.ReasonRevoked {
				t.Fatalf("after revoking the %s: got %d %s, want 401 revoked", kind, d.Status, d.Reason)
			}
		})
	}
}

// TestKnownSignatureOnChangedPayloadRefused: the cache is keyed by the whole token.
func TestKnownSignatureOnChangedPayloadRefused(t *testing.T) {
	b := build(t, "opencomputer")
	e := verifier.NewEngine(verifier.Options{})
	e.SetState(loadBuilt(t, b))
	tok := b.Tokens["t1"]
	if d := e.Decide(sseRequest(b, "sess_1", tok, b.Now)); !d.Allow {
		t.Fatalf("denied: %s", d.Reason)
	}
	parts := strings.Split(tok, ".")
	other := strings.Split(b.Tokens["killed"], ".") // same key, another session's claims
	forged := parts[0] + "." + other[1] + "." + parts[2]
	d := e.Decide(sseRequest(b, "sess_2", forged, b.Now))
	if d.Allow || d.Reason != policy.ReasonInvalid {
		t.Fatalf("forged token: got %d %s, want 401 invalid", d.Status, d.Reason)
	}
}

// TestWithdrawnSigningKeyKillsCachedTokens: removing a signing key from the snapshot (key
// compromise) must invalidate tokens it signed, cached or not.
func TestWithdrawnSigningKeyKillsCachedTokens(t *testing.T) {
	b := build(t, "opencomputer")
	e := verifier.NewEngine(verifier.Options{})
	e.SetState(loadBuilt(t, b))
	if d := e.Decide(sseRequest(b, "sess_1", b.Tokens["t1"], b.Now)); !d.Allow {
		t.Fatalf("denied: %s", d.Reason)
	}
	newKey := ed25519.NewKeyFromSeed(make([]byte, 32))
	e.SetState(republish(t, b, func(c *snapshot.Contents) {
		c.SigningKeys = []snapshot.SigningKey{{KID: "rotated", Alg: uint8(jwt.AlgEdDSA), Public: newKey.Public().(ed25519.PublicKey)}}
	}))
	d := e.Decide(sseRequest(b, "sess_1", b.Tokens["t1"], b.Now))
	if d.Allow || d.Status != 401 {
		t.Fatalf("token of a withdrawn key: got %d %s, want 401", d.Status, d.Reason)
	}
}

// TestRetiredSigningKeyStopsAtNotAfter: a retired key stays published until NotAfter so the
// tokens it signed live out their TTL, and verifies nothing from then on, cached or fresh.
func TestRetiredSigningKeyStopsAtNotAfter(t *testing.T) {
	b := build(t, "opencomputer")
	cached := verifier.NewEngine(verifier.Options{})
	cached.SetState(loadBuilt(t, b))
	if d := cached.Decide(sseRequest(b, "sess_1", b.Tokens["t1"], b.Now)); !d.Allow {
		t.Fatalf("denied: %s", d.Reason)
	}
	st := republish(t, b, func(c *snapshot.Contents) {
		for i := range c.SigningKeys {
			c.SigningKeys[i].NotAfter = b.Now + 60
		}
	})
	fresh := verifier.NewEngine(verifier.Options{})
	fresh.SetState(st)
	cached.SetState(st)
	for name, e := range map[string]*verifier.Engine{"fresh": fresh, "cached": cached} {
		if d := e.Decide(sseRequest(b, "sess_1", b.Tokens["t1"], b.Now+59)); !d.Allow {
			t.Errorf("%s: before NotAfter: denied %s", name, d.Reason)
		}
		d := e.Decide(sseRequest(b, "sess_1", b.Tokens["t1"], b.Now+60))
		if d.Allow || d.Status != 401 {
			t.Errorf("%s: at NotAfter: got %d %s, want 401", name, d.Status, d.Reason)
		}
	}
}

func TestCachedTokenExpires(t *testing.T) {
	b := build(t, "opencomputer")
	e := verifier.NewEngine(verifier.Options{})
	e.SetState(loadBuilt(t, b))
	tok := b.Tokens["t1"] // ttl 600, leeway 30
	if d := e.Decide(sseRequest(b, "sess_1", tok, b.Now)); !d.Allow {
		t.Fatalf("denied: %s", d.Reason)
	}
	if d := e.Decide(sseRequest(b, "sess_1", tok, b.Now+629)); !d.Allow {
		t.Fatalf("inside leeway: %s", d.Reason)
	}
	d := e.Decide(sseRequest(b, "sess_1", tok, b.Now+630))
	if d.Allow || d.Reason != policy.ReasonExpired {
		t.Fatalf("cached token past exp+leeway: got %d %s, want 401 expired", d.Status, d.Reason)
	}
}

func TestTokenCacheBounded(t *testing.T) {
	b := build(t, "opencomputer")
	cc := &countingCrypto{Provider: hostcrypto.Std}
	e := verifier.NewEngine(verifier.Options{Crypto: cc, TokenCacheSize: 2})
	e.SetState(loadBuilt(t, b))
	order := []string{"t1", "reader", "t1", "burned", "reader", "t1"}
	// With room for two: t1 miss, reader miss, t1 hit, burned miss (evicts reader, the least
	// recently used), reader miss (evicts t1), t1 miss. ("burned" is revoked, but it verifies
	// and is cached: revocation is checked on every hit.)
	want := []int{1, 2, 2, 3, 4, 5}
	for i, name := range order {
		e.Decide(sseRequest(b, "sess_1", b.Tokens[name], b.Now))
		if cc.verifies != want[i] {
			t.Fatalf("after %d (%s): %d signature checks, want %d", i, name, cc.verifies, want[i])
		}
	}
}

// TestTokenCachedReported: Decision.TokenCached is set exactly when a token was decided without
// a signature check (a cache hit, allowed or denied), never for keys or a disabled cache.
func TestTokenCachedReported(t *testing.T) {
	b := build(t, "opencomputer")
	st := loadBuilt(t, b)
	cc := &countingCrypto{Provider: hostcrypto.Std}
	e := verifier.NewEngine(verifier.Options{Crypto: cc, TokenCacheSize: 2})
	e.SetState(st)
	for i, name := range []string{"t1", "t1", "reader", "burned", "t1", "burned", "burned"} {
		before := cc.verifies
		d := e.Decide(sseRequest(b, "sess_1", b.Tokens[name], b.Now))
		if hit := cc.verifies == before; d.TokenCached != hit {
			t.Fatalf("request %d (%s, %d %s): TokenCached %v, cache hit %v", i, name, d.Status, d.Reason, d.TokenCached, hit)
		}
		if i == 6 && (!d.TokenCached || d.Reason != policy.ReasonRevoked) {
			t.Fatalf("revoked token from the cache: %d %s cached %v", d.Status, d.Reason, d.TokenCached)
		}
	}
	if d := e.Decide(sseRequest(b, "sess_1", b.Tokens["t1"], b.Now+630)); d.Reason != policy.ReasonExpired || !d.TokenCached {
		t.Fatalf("cached token past exp: %d %s cached %v", d.Status, d.Reason, d.TokenCached)
	}
	if d := e.Decide(bearer("POST", "/v3/sessions", b.Keys["org"], b.Now)); !d.Allow || d.TokenCached {
		t.Fatalf("API key: %d %s cached %v", d.Status, d.Reason, d.TokenCached)
	}
	off := verifier.NewEngine(verifier.Options{TokenCacheSize: -1})
	off.SetState(st)
	for i := 0; i < 2; i++ {
		if d := off.Decide(sseRequest(b, "sess_1", b.Tokens["t1"], b.Now)); !d.Allow || d.TokenCached {
			t.Fatalf("cache disabled, request %d: %d %s cached %v", i, d.Status, d.Reason, d.TokenCached)
		}
	}
}

func TestRateLimited(t *testing.T) {
	b := build(t, "opencomputer") // client class: burst 20, 1 per second
	e := verifier.NewEngine(verifier.Options{})
	e.SetState(loadBuilt(t, b))
	for i := 0; i < 20; i++ {
		if d := e.Decide(sseRequest(b, "sess_1", b.Tokens["t1"], b.Now)); !d.Allow {
			t.Fatalf("request %d within burst denied: %s", i, d.Reason)
		}
	}
	d := e.Decide(sseRequest(b, "sess_1", b.Tokens["t1"], b.Now))
	if d.Allow || d.Status != 429 || d.RetryAfter < 1 {
		t.Fatalf("21st request: got %d retry %d, want 429 with Retry-After", d.Status, d.RetryAfter)
	}
	// An open stream decided again (a recheck) takes nothing from the exhausted bucket and is
	// still judged on everything else: another session's stream is refused.
	recheck := func(session string) *verifier.Decision {
		r := sseRequest(b, session, b.Tokens["t1"], b.Now)
		r.Recheck = true
		return e.Decide(r)
	}
	if d := recheck("sess_1"); !d.Allow {
		t.Fatalf("recheck of an admitted stream: %d %s", d.Status, d.Reason)
	}
	if d := recheck("sess_2"); d.Allow || d.Reason != policy.ReasonSession {
		t.Fatalf("recheck on another session: %d %s", d.Status, d.Reason)
	}
	if d := e.Decide(sseRequest(b, "sess_1", b.Tokens["t1"], b.Now)); d.Status != 429 {
		t.Fatalf("a new request after rechecks: %d, want 429 still", d.Status)
	}
	// One second later one token has been refilled.
	if d := e.Decide(sseRequest(b, "sess_1", b.Tokens["t1"], b.Now+1)); !d.Allow {
		t.Fatalf("after refill: %d %s", d.Status, d.Reason)
	}
	// API keys of the org key type have no rate class.
	for i := 0; i < 50; i++ {
		if d := e.Decide(bearer("POST", "/v3/sessions", b.Keys["org"], b.Now)); !d.Allow {
			t.Fatalf("key request %d: %s", i, d.Reason)
		}
	}
}

func TestIdentityHeaders(t *testing.T) {
	b := build(t, "opencomputer")
	st := loadBuilt(t, b)
	e := verifier.NewEngine(verifier.Options{})
	e.SetState(st)
	d := e.Decide(sseRequest(b, "sess_1", b.Tokens["t1"], b.Now))
	if !d.Allow || !d.StripQueryToken {
		t.Fatalf("allow %v strip %v", d.Allow, d.StripQueryToken)
	}
	got := map[string]string{}
	for _, h := range d.IdentityHeaders() {
		got[string(h.Name)] = string(h.Value)
	}
	if len(got) == 0 {
		t.Fatal("no identity headers")
	}
	wantKeyID := apikey.Hash(sha256.Sum256([]byte(b.Keys["org"]))).ID().String()
	var sawKey, sawSession bool
	for _, v := range got {
		sawKey = sawKey || v == wantKeyID
		sawSession = sawSession || v == "sess_1"
	}
	if !sawKey || !sawSession {
		t.Fatalf("identity %v lacks key id %s or session sess_1", got, wantKeyID)
	}
	if len(st.StripHeaders()) != len(got) {
		t.Fatalf("strip list %v does not name every identity header %v", st.StripHeaders(), got)
	}
}

func TestRefusedCredentials(t *testing.T) {
	b := build(t, "opencomputer")
	e := verifier.NewEngine(verifier.Options{})
	e.SetState(loadBuilt(t, b))
	key := b.Keys["org"]
	cases := []struct {
		name   string
		req    *verifier.Request
		status int
		reason policy.Reason
	}{
		{"basic scheme", &verifier.Request{Now: b.Now * 1e9, Method: []byte("POST"), Path: []byte("/v3/sessions"),
			Headers: []verifier.Header{{Name: []byte("authorization"), Value: []byte("Basic " + key)}}}, 401, policy.ReasonMissing},
		{"bearer without value", bearer("POST", "/v3/sessions", "", b.Now), 401, policy.ReasonMissing},
		{"lower-case scheme", bearer("POST", "/v3/sessions", key, b.Now), 200, 0},
		{"key with a flipped character", bearer("POST", "/v3/sessions", key[:10]+flip(key[10])+key[11:], b.Now), 401, policy.ReasonInvalid},
		{"api key in the query string", sseRequest(b, "sess_1", key, b.Now), 401, policy.ReasonInvalid},
		{"random junk", bearer("POST", "/v3/sessions", "hello", b.Now), 401, policy.ReasonInvalid},
		{"jws-shaped junk", bearer("POST", "/v3/sessions", "a.b.c", b.Now), 401, policy.ReasonInvalid},
		{"path with dot segment", bearer("POST", "/v3/sessions/../sessions", key, b.Now), 403, policy.ReasonPath},
	}
	cases[2].req.Headers[0].Value = []byte("bearer " + key)
	for _, c := range cases {
		d := e.Decide(c.req)
		if d.Status != c.status || (c.status != 200 && d.Reason != c.reason) {
			t.Errorf("%s: got %d %s, want %d %s", c.name, d.Status, d.Reason, c.status, c.reason)
		}
	}
}

func flip(c byte) string {
	if c == 'a' {
		return "b"
	}
	return "a"
}

// BenchmarkDecision measures the native core; edge/filter benchmarks the Wasm hosts against it.
func BenchmarkDecision(b *testing.B) {
	fx := build(b, "opencomputer")
	st := loadBuilt(b, fx)
	run := func(b *testing.B, opts verifier.Options, req *verifier.Request) {
		e := verifier.NewEngine(opts)
		e.SetState(st)
		if d := e.Decide(req); !d.Allow {
			b.Fatalf("denied: %d %s", d.Status, d.Reason)
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			e.Decide(req)
		}
	}
	b.Run("apikey", func(b *testing.B) {
		run(b, verifier.Options{}, bearer("GET", "/v3/sessions/sess_1/events", fx.Keys["org"], fx.Now))
	})
	noRate := verifier.Options{Limiter: unlimited{}}
	b.Run("token-first", func(b *testing.B) {
		o := noRate
		o.TokenCacheSize = -1
		run(b, o, bearer("GET", "/v3/sessions/sess_1/events", fx.Tokens["t1"], fx.Now))
	})
	b.Run("token-cached", func(b *testing.B) {
		run(b, noRate, bearer("GET", "/v3/sessions/sess_1/events", fx.Tokens["t1"], fx.Now))
	})
}

type unlimited struct{}

func (unlimited) Take(int, float64, int, apikey.ID, int64) (bool, int64) { return true, 0 }

// TestDecisionAllocations pins the zero-allocation paths (run under -race too, where
// benchmarks are not).
func TestDecisionAllocations(t *testing.T) {
	fx := build(t, "opencomputer")
	st := loadBuilt(t, fx)
	for _, c := range []struct {
		name string
		opts verifier.Options
		req  *verifier.Request
	}{
		{"apikey", verifier.Options{}, bearer("GET", "/v3/sessions/sess_1/events", fx.Keys["org"], fx.Now)},
		{"token-first", verifier.Options{TokenCacheSize: -1, Limiter: unlimited{}}, bearer("GET", "/v3/sessions/sess_1/events", fx.Tokens["t1"], fx.Now)},
		{"token-cached", verifier.Options{Limiter: unlimited{}}, bearer("GET", "/v3/sessions/sess_1/events", fx.Tokens["t1"], fx.Now)},
		{"denied", verifier.Options{}, bearer("GET", "/v3/sessions/sess_1/events", "oc_nope", fx.Now)},
	} {
		e := verifier.NewEngine(c.opts)
		e.SetState(st)
		e.Decide(c.req)
		if n := testing.AllocsPerRun(50, func() { e.Decide(c.req) }); n != 0 {
			t.Errorf("%s: %.1f allocations per decision, want 0", c.name, n)
		}
	}
}
