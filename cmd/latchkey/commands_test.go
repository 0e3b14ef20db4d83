package main

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
	jwxt "github.com/lestrrat-go/jwx/v3/jwt"
)

func TestTokensMint(t *testing.T) {
	s := startServer(t)
	env := s.env()
	var created keyJSON
	if err := json.Unmarshal([]byte(ok(t, env, "keys", "create", "--type", "live", "--scope", "read,write", "--org", "acme", "--json")), &created); err != nil {
		t.Fatal(err)
	}

	// With the admin key, naming the key the token acts for.
	out := ok(t, env, "tokens", "mint", "--session", "sess_1", "--scope", "read", "--ttl", "10m", "--key-id", created.Key.ID)
	for _, want := range []string{"token:", "eyJ", "jti:", "kid:", "expires:"} {
		if !strings.Contains(out, want) {
			t.Fatalf("tokens mint output lacks %q:\n%s", want, out)
		}
	}
	// An admin key must name the key (the API says which field).
	fails(t, env, 1, `^latchkey: .*key_id`, "tokens", "mint", "--session", "sess_1", "--scope", "read")

	// With the realm key itself (the platform's backend forwarding its customer's key),
	// printing only the token, which verifies against the published JWKS.
	keyEnv := map[string]string{envURL: s.url, envAdminKey: created.Secret}
	token := strings.TrimSpace(ok(t, keyEnv, "tokens", "mint", "--session", "sess_2", "--scope", "read", "--ttl", "5m", "--token-only"))
	if strings.Count(token, ".") != 2 || strings.ContainsAny(token, " \n") {
		t.Fatalf("--token-only printed %q", token)
	}
	resp, err := http.Get(s.url + "/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	jwks, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	set, err := jwk.Parse(jwks)
	if err != nil {
		t.Fatalf("JWKS: %v\n%s", err, jwks)
	}
	tok, err := jwxt.Parse([]byte(token), jwxt.WithKeySet(set), jwxt.WithAcceptableSkew(time.Minute))
	if err != nil {
		t.Fatalf("minted token does not verify under the JWKS: %v", err)
	}
	if sub, _ := tok.Subject(); sub != "sess_2" {
		t.Fatalf("sub %q", sub)
	}

	// --json is the API's answer.
	var minted struct {
		Token, JTI, KID string
		ExpiresAt       time.Time `json:"expires_at"`
	}
	if err := json.Unmarshal([]byte(ok(t, keyEnv, "tokens", "mint", "--session", "sess_3", "--scope", "read", "--json")), &minted); err != nil {
		t.Fatal(err)
	}
	if minted.Token == "" || !strings.HasPrefix(minted.KID, "sk_") || minted.JTI == "" || minted.ExpiresAt.IsZero() {
		t.Fatalf("tokens mint --json: %+v", minted)
	}
}

func TestRealmCommands(t *testing.T) {
	s := startServer(t)
	env := s.env()
	for _, args := range [][]string{{"realm"}, {"realm", "show"}} {
		out := ok(t, env, args...)
		if !strings.Contains(out, "realm:") || !strings.Contains(out, "default") || !strings.Contains(out, "policy version:") {
			t.Fatalf("%v:\n%s", args, out)
		}
	}
	out := ok(t, env, "realm", "create", "prod")
	keys := secretRE.FindAllString(out, -1)
	if !strings.Contains(out, "Created realm prod") || len(keys) != 1 || !strings.HasPrefix(keys[0], "lk_admin_") {
		t.Fatalf("realm create:\n%s", out)
	}
	fails(t, env, 1, `^latchkey: .*`, "realm", "create", "prod") // exists already: 409

	list := ok(t, env, "realm", "list")
	if !strings.Contains(list, "default") || !strings.Contains(list, "prod") || !strings.HasPrefix(list, "NAME") {
		t.Fatalf("realm list:\n%s", list)
	}
	var realms struct{ Data []apiRealm }
	if err := json.Unmarshal([]byte(ok(t, env, "realm", "list", "--json")), &realms); err != nil || len(realms.Data) != 2 {
		t.Fatalf("realm list --json: %v %+v", err, realms)
	}

	// The new realm's admin key acts on the new realm.
	prod := map[string]string{envURL: s.url, envAdminKey: keys[0]}
	var r apiRealm
	if err := json.Unmarshal([]byte(ok(t, prod, "realm", "--json")), &r); err != nil || r.Name != "prod" {
		t.Fatalf("realm show with prod's key: %v %+v", err, r)
	}
}
