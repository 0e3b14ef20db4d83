package api

import (
	"context"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/latchkeyhq/latchkey/controlplane/policyfile"
	"github.com/latchkeyhq/latchkey/controlplane/signer"
	"github.com/latchkeyhq/latchkey/controlplane/store"
	"github.com/latchkeyhq/latchkey/shared/apikey"
	"github.com/latchkeyhq/latchkey/shared/policy"
)

// TestDefaultPolicy: the embedded policy parses strictly, encodes for a snapshot, and says
// what `make dev` demonstrates.
func TestDefaultPolicy(t *testing.T) {
	for _, realm := range []string{"default", "prod-eu-1"} {
		y, err := PolicyForRealm(realm)
		if err != nil {
			t.Fatal(err)
		}
		p, err := policyfile.Parse(y)
		if err != nil {
			t.Fatalf("%s: %v", realm, err)
		}
		if _, err := policy.Encode(p); err != nil {
			t.Fatalf("%s: encode: %v", realm, err)
		}
		if p.Realm != realm || p.Tokens == nil || p.Tokens.Audience != realm || p.Tokens.Issuer != "latchkey" ||
			p.Tokens.MaxTTLSeconds != 3600 || strings.Join(p.Tokens.Scopes, " ") != "read steer" {
			t.Fatalf("%s: realm %q tokens %+v", realm, p.Realm, p.Tokens)
		}
		c, err := policy.Compile(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range []struct{ typ, prefix string }{{"live", "lk_live_"}, {"test", "lk_test_"}} {
			i := c.KeyTypeIndex(k.typ)
			if i < 0 || c.KeyType(i).Spec != (apikey.Spec{Prefix: k.prefix, Format: apikey.FormatBase62CRC32}) {
				t.Fatalf("key type %s: %+v", k.typ, c.KeyType(i))
			}
			if c.MatchKeyType([]byte(AdminKeySpec.Prefix+"x")) >= 0 {
				t.Fatal("a realm key type matches admin keys")
			}
		}
		var ps policy.Params
		health, _ := c.Match([]byte("GET"), []byte("/health"), &ps)
		events, _ := c.Match([]byte("GET"), []byte("/sessions/s1/events"), &ps)
		steer, _ := c.Match([]byte("POST"), []byte("/sessions/s1/messages"), &ps)
		other, _ := c.Match([]byte("GET"), []byte("/anything"), &ps)
		switch {
		case !health.Public:
			t.Fatal("/health is not public")
		case !events.QueryToken || events.SessionParam < 0:
			t.Fatalf("SSE route: %+v", events)
		case steer.SessionParam < 0 || steer.QueryToken:
			t.Fatalf("steer route: %+v", steer)
		case other.Name != "unmatched" || other.Scopes != 0 || !other.AllowKey || !other.AllowToken:
			t.Fatalf("unmatched: %+v", other)
		}
		if !strings.Contains(string(y), "# The policy every new realm starts with") {
			t.Fatalf("%s: comments lost", realm)
		}
	}
}

func testSealer(t testing.TB) *signer.Sealer {
	master := make([]byte, 32)
	_, _ = rand.Read(master)
	s, err := signer.NewSealer(master)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestBootstrap: the first start creates realm "default" and prints its admin key once;
// later starts change nothing and print nothing; a start that stopped halfway is completed.
func TestBootstrap(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		st, err := store.Open(ctx, b.url(t))
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		sealer := testSealer(t)
		now := time.Now().UTC()
		// A first start that got as far as the realm.
		if _, err := st.CreateRealm(ctx, DefaultRealm, now); err != nil {
			t.Fatal(err)
		}
		key, created, err := Bootstrap(ctx, st, sealer, now)
		if err != nil || !created || AdminKeySpec.Check([]byte(key)) != nil {
			t.Fatalf("Bootstrap: %q %v %v", key, created, err)
		}
		k, err := st.GetKeyByHash(ctx, DefaultRealm, hashOf(key))
		if err != nil || !k.Admin || k.Type != AdminKeyType || strings.Join(k.Scopes, ",") != ScopeAdmin {
			t.Fatalf("admin key: %+v %v", k, err)
		}
		if sk, err := st.ActiveSigningKey(ctx, DefaultRealm); err != nil || sk.Alg != store.AlgEdDSA {
			t.Fatalf("signing key: %+v %v", sk, err)
		}
		if p, err := st.LatestPolicy(ctx, DefaultRealm); err != nil || string(p.YAML) != string(DefaultPolicy) {
			t.Fatalf("policy: %v", err)
		}
		key2, created2, err := Bootstrap(ctx, st, sealer, now.Add(time.Hour))
		if err != nil || created2 || key2 != "" {
			t.Fatalf("second Bootstrap: %q %v %v", key2, created2, err)
		}
		if rl, _ := st.GetRealm(ctx, DefaultRealm); rl.PolicyVersion != 1 {
			t.Fatalf("second Bootstrap put a policy again: %+v", rl)
		}
		// Realms beside it.
		if _, err := CreateRealm(ctx, st, sealer, DefaultRealm, nil, now); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("CreateRealm(default) again: %v", err)
		}
		if _, err := CreateRealm(ctx, st, sealer, "Bad_Name", nil, now); !errors.Is(err, store.ErrInvalid) {
			t.Fatalf("CreateRealm(Bad_Name): %v", err)
		}
		own := []byte(strings.Replace(string(DefaultPolicy), "realm: default", "realm: custom", 1))
		if _, err := CreateRealm(ctx, st, sealer, "custom", own, now); err != nil {
			t.Fatal(err)
		}
		if _, err := CreateRealm(ctx, st, sealer, "mismatch", own, now); err == nil {
			t.Fatal("CreateRealm accepted a policy naming another realm")
		}
	})
}

// TestNewNeedsItsParts: New refuses incomplete options, and a registry can back one server.
func TestNewNeedsItsParts(t *testing.T) {
	e := newEnv(t, backends[0], withoutDoc())
	for name, o := range map[string]Options{
		"store":     {Sealer: e.sealer, Publisher: e.pub},
		"sealer":    {Store: e.st, Publisher: e.pub},
		"publisher": {Store: e.st, Sealer: e.sealer},
		"max body":  {Store: e.st, Sealer: e.sealer, Publisher: e.pub, MaxBodyBytes: -1},
		"registry":  {Store: e.st, Sealer: e.sealer, Publisher: e.pub, Registry: e.reg},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("New without %s: no error", name)
		}
	}
	if _, err := New(Options{Store: e.st, Sealer: e.sealer, Publisher: e.pub, Registry: prometheus.NewRegistry()}); err != nil {
		t.Fatal(err)
	}
}

// TestMetrics: /metrics serves every metric API.md names, with the realm labels filled.
func TestMetrics(t *testing.T) {
	e := newEnv(t, backends[0])
	_, secret := e.realmKey(map[string]any{"type": "live"})
	e.must(req{method: "POST", path: "/v1/sessions/s/client-tokens", auth: bearer(secret), body: map[string]any{"scopes": []string{"read"}}}, 201)
	e.must(req{method: "POST", path: "/v1/snapshots/publish"}, 200)
	e.must(req{method: "GET", path: "/v1/nope", noOp: true}, 404)
	body := string(e.must(req{method: "GET", path: "/metrics", auth: "-"}, 200).body)
	for _, want := range []string{
		`latchkey_http_requests_total{code="201",method="POST",route="/v1/sessions/{id}/client-tokens"} 1`,
		`latchkey_http_requests_total{code="404",method="GET",route="unmatched"} 1`,
		`latchkey_http_request_duration_seconds_bucket{route="/v1/keys",le="+Inf"} 1`,
		`latchkey_keys{realm="default",state="active"} 1`,
		`latchkey_keys{realm="default",state="revoked"} 0`,
		`latchkey_snapshot_version{realm="default"} 1`,
		`latchkey_snapshot_publish_lag_seconds{realm="default"}`,
		`latchkey_snapshot_publish_total{kind="full",realm="default",result="ok"} 1`,
		`latchkey_client_tokens_minted_total{realm="default"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
