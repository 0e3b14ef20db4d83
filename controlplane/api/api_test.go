package api

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"errors"
	"strings"
	"testing"
	"time"

	jwtlib "github.com/golang-jwt/jwt/v5"

	"github.com/latchkeyhq/latchkey/controlplane/store"
)

// TestEveryRoute drives every route through the real handler, on each backend, with
// successes and failures, each request and response checked against openapi.yaml; at the end
// every documented operation must have answered at least one 2xx and one 4xx.
func TestEveryRoute(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		e := newEnv(t, b)
		cov := map[string]map[int]bool{}
		e.doc = &docChecker{v: loadDoc(t).v, covered: cov}

		// Public routes.
		e.must(req{method: "GET", path: "/health", auth: "-"}, 200)
		if r := e.must(req{method: "GET", path: "/openapi.yaml", auth: "-"}, 200); !strings.HasPrefix(string(r.body), "openapi: 3.1") {
			t.Fatalf("/openapi.yaml: %.40s", r.body)
		}
		e.must(req{method: "GET", path: "/metrics", auth: "-"}, 200)
		jw := e.must(req{method: "GET", path: "/.well-known/jwks.json", auth: "-"}, 200).json(t)
		if ks := jw["keys"].([]any); len(ks) != 1 {
			t.Fatalf("jwks: %v", jw)
		}
		e.expectErr(req{method: "GET", path: "/.well-known/jwks.json?realm=nope", auth: "-"}, 404, CodeNotFound, "")
		e.expectErr(req{method: "GET", path: "/.well-known/jwks.json?realm=No_Pe", auth: "-", docInvalid: true}, 422, CodeInvalidRequest, "realm")

		// Realms.
		rl := e.must(req{method: "GET", path: "/v1/realm"}, 200).json(t)
		if rl["name"] != "default" || rl["policy_version"].(float64) != 1 {
			t.Fatalf("realm: %v", rl)
		}
		e.expectErr(req{method: "GET", path: "/v1/realm", auth: "-", docInvalid: true}, 401, CodeUnauthorized, "")
		e.must(req{method: "GET", path: "/v1/realms"}, 200)
		cr := e.must(req{method: "POST", path: "/v1/realms", body: map[string]any{"name": "prod"}}, 201).json(t)
		prodAdmin := cr["admin_key"].(string)
		e.expectErr(req{method: "POST", path: "/v1/realms", body: map[string]any{"name": "prod"}}, 409, CodeConflict, "name")
		e.expectErr(req{method: "POST", path: "/v1/realms", body: map[string]any{"name": "Prod"}, docInvalid: true}, 422, CodeInvalidRequest, "name")
		e.expectErr(req{method: "GET", path: "/v1/realms", auth: bearer(prodAdmin)}, 403, CodeForbidden, "")
		if got := e.must(req{method: "GET", path: "/v1/realm", auth: bearer(prodAdmin)}, 200).json(t); got["name"] != "prod" {
			t.Fatalf("prod admin acts on %v", got)
		}

		// Keys.
		kr := e.must(req{method: "POST", path: "/v1/keys", body: map[string]any{
			"type": "live", "name": "ci", "scopes": []string{"read", "steer"}, "org": "acme", "agents": []string{"a1"},
		}}, 201).json(t)
		key := kr["key"].(map[string]any)
		liveID, liveSecret := key["id"].(string), kr["secret"].(string)
		if !strings.HasPrefix(liveSecret, "lk_live_") || key["last4"] != liveSecret[len(liveSecret)-4:] || key["prefix"] != "lk_live_" {
			t.Fatalf("created key: %v", kr)
		}
		defID, _ := e.realmKey(map[string]any{"type": "test"})
		if got := e.must(req{method: "GET", path: "/v1/keys/" + defID}, 200).json(t); got["scopes"].([]any)[0] != "read" {
			t.Fatalf("default scopes: %v", got)
		}
		e.expectErr(req{method: "POST", path: "/v1/keys", body: map[string]any{"type": "nope"}}, 422, CodeInvalidRequest, "type")
		list := e.must(req{method: "GET", path: "/v1/keys?admin=false&limit=1"}, 200).json(t)
		if len(list["data"].([]any)) != 1 || list["next_cursor"] == "" {
			t.Fatalf("page 1: %v", list)
		}
		list = e.must(req{method: "GET", path: "/v1/keys?admin=false&limit=1&cursor=" + list["next_cursor"].(string)}, 200).json(t)
		if len(list["data"].([]any)) != 1 {
			t.Fatalf("page 2: %v", list)
		}
		e.must(req{method: "GET", path: "/v1/keys?type=live&org=acme&name_prefix=c&include_revoked=true"}, 200)
		e.expectErr(req{method: "GET", path: "/v1/keys?limit=0", docInvalid: true}, 422, CodeInvalidRequest, "limit")
		e.expectErr(req{method: "GET", path: "/v1/keys/key_00000000000000000000"}, 404, CodeNotFound, "")
		e.expectErr(req{method: "GET", path: "/v1/keys/nope", docInvalid: true}, 422, CodeInvalidRequest, "id")

		upd := e.must(req{method: "PATCH", path: "/v1/keys/" + liveID, body: map[string]any{
			"name": "ci-2", "scopes": []string{"read", "steer", "write"},
			"expires_at": e.clock.now().Add(48 * time.Hour).Format(time.RFC3339),
		}}, 200).json(t)
		if upd["name"] != "ci-2" || upd["expires_at"] == nil || len(upd["scopes"].([]any)) != 3 {
			t.Fatalf("patched: %v", upd)
		}
		upd = e.must(req{method: "PATCH", path: "/v1/keys/" + liveID, body: `{"expires_at":null}`}, 200).json(t)
		if upd["expires_at"] != nil {
			t.Fatalf("expiry not cleared: %v", upd)
		}
		e.expectErr(req{method: "PATCH", path: "/v1/keys/" + liveID, body: map[string]any{"scopes": []string{"nope"}}}, 422, CodeInvalidRequest, "scopes[0]")

		// Minting with the realm key itself.
		mint := e.must(req{method: "POST", path: "/v1/sessions/sess-1/client-tokens", auth: bearer(liveSecret),
			body: map[string]any{"scopes": []string{"read", "steer"}, "ttl": 600}}, 201).json(t)
		claims := verifyToken(t, e, mint)
		if claims["sub"] != "sess-1" || claims["org"] != "acme" || claims["key_id"] != liveID || claims["scope"] != "read steer" ||
			claims["iss"] != "latchkey" || claims["jti"] != mint["jti"] {
			t.Fatalf("claims: %v", claims)
		}
		if exp, iat := claims["exp"].(float64), claims["iat"].(float64); exp-iat != 600 {
			t.Fatalf("ttl: exp-iat = %v", exp-iat)
		}
		e.expectErr(req{method: "POST", path: "/v1/sessions/sess-1/client-tokens", auth: bearer(liveSecret),
			body: map[string]any{"scopes": []string{"write"}}}, 403, CodeForbidden, "scopes[0]")
		e.expectErr(req{method: "GET", path: "/v1/keys", auth: bearer(liveSecret)}, 403, CodeForbidden, "")
		// Minting with an admin key on a key's behalf.
		mint = e.must(req{method: "POST", path: "/v1/sessions/sess-2/client-tokens",
			body: map[string]any{"scopes": []string{"read"}, "key_id": liveID}}, 201).json(t)
		if c := verifyToken(t, e, mint); c["key_id"] != liveID || c["exp"].(float64)-c["iat"].(float64) != DefaultTokenTTL {
			t.Fatalf("admin-minted claims: %v", c)
		}
		e.expectErr(req{method: "POST", path: "/v1/sessions/sess-2/client-tokens", body: map[string]any{"scopes": []string{"read"}}},
			422, CodeInvalidRequest, "key_id")

		// Session revocation.
		e.must(req{method: "DELETE", path: "/v1/sessions/sess-1/client-tokens"}, 204)
		e.expectErr(req{method: "DELETE", path: "/v1/sessions/bad%20id/client-tokens", docInvalid: true}, 422, CodeInvalidRequest, "id")

		// Rotation with a grace period: the old key keeps working until it ends.
		rot := e.must(req{method: "POST", path: "/v1/keys/" + liveID + "/rotate", body: map[string]any{"grace_seconds": 60}}, 200).json(t)
		newSecret := rot["secret"].(string)
		newID := rot["key"].(map[string]any)["id"].(string)
		if rot["previous"].(map[string]any)["revoked_at"] == nil || rot["key"].(map[string]any)["rotated_from"] != liveID {
			t.Fatalf("rotate: %v", rot)
		}
		e.must(req{method: "POST", path: "/v1/sessions/s/client-tokens", auth: bearer(liveSecret), body: map[string]any{"scopes": []string{"read"}}}, 201)
		e.must(req{method: "POST", path: "/v1/sessions/s/client-tokens", auth: bearer(newSecret), body: map[string]any{"scopes": []string{"read"}}}, 201)
		e.expectErr(req{method: "POST", path: "/v1/keys/" + liveID + "/rotate"}, 409, CodeConflict, "id")
		e.expectErr(req{method: "POST", path: "/v1/keys/" + liveID + "/rotate", body: map[string]any{"grace_seconds": -1}, docInvalid: true},
			422, CodeInvalidRequest, "grace_seconds")
		e.clock.advance(61 * time.Second)
		e.srv.auth.drop(hashOf(liveSecret)) // the cache would keep it for up to a second more
		e.expectErr(req{method: "POST", path: "/v1/sessions/s/client-tokens", auth: bearer(liveSecret),
			body: map[string]any{"scopes": []string{"read"}}, docInvalid: false}, 401, CodeUnauthorized, "")

		// Revocation, both ways; the cache forgets the key at once.
		e.must(req{method: "POST", path: "/v1/keys/" + newID + "/revoke"}, 200)
		e.expectErr(req{method: "POST", path: "/v1/sessions/s/client-tokens", auth: bearer(newSecret),
			body: map[string]any{"scopes": []string{"read"}}}, 401, CodeUnauthorized, "")
		if got := e.must(req{method: "DELETE", path: "/v1/keys/" + defID}, 200).json(t); got["revoked_at"] == nil {
			t.Fatalf("revoked: %v", got)
		}
		e.expectErr(req{method: "POST", path: "/v1/keys/key_00000000000000000000/revoke"}, 404, CodeNotFound, "")
		e.expectErr(req{method: "DELETE", path: "/v1/keys/KEY", docInvalid: true}, 422, CodeInvalidRequest, "id")

		// Import by hash.
		h1, h2 := strings.Repeat("ab", 32), strings.Repeat("cd", 32)
		imp := e.must(req{method: "POST", path: "/v1/keys/import", body: map[string]any{"keys": []map[string]any{
			{"hash": h1, "type": "live", "name": "old-1", "org": "acme", "last4": "wxyz"},
			{"hash": h2, "type": "test", "scopes": []string{"read", "write"}, "prefix": "lk_test_"},
		}}}, 201).json(t)
		if imp["imported"].(float64) != 2 {
			t.Fatalf("import: %v", imp)
		}
		e.expectErr(req{method: "POST", path: "/v1/keys/import", body: map[string]any{"keys": []map[string]any{{"hash": h1, "type": "live"}}}},
			409, CodeConflict, "keys")
		e.expectErr(req{method: "POST", path: "/v1/keys/import", auth: bearer(prodAdmin),
			body: map[string]any{"keys": []map[string]any{{"hash": h1, "type": "live"}}}}, 409, CodeConflict, "keys[0].hash")

		// Signing keys.
		sk := e.must(req{method: "GET", path: "/v1/signing-keys"}, 200).json(t)
		e.expectErr(req{method: "GET", path: "/v1/signing-keys", auth: bearer(liveSecret)}, 401, CodeUnauthorized, "")
		oldKID := sk["data"].([]any)[0].(map[string]any)["kid"].(string)
		rs := e.must(req{method: "POST", path: "/v1/signing-keys/rotate", body: map[string]any{"alg": "ES256"}}, 200).json(t)
		if rs["retired"].(map[string]any)["kid"] != oldKID || rs["active"].(map[string]any)["alg"] != "ES256" {
			t.Fatalf("rotate signing key: %v", rs)
		}
		e.expectErr(req{method: "POST", path: "/v1/signing-keys/rotate", body: map[string]any{"alg": "RS256"}, docInvalid: true},
			422, CodeInvalidRequest, "alg")
		_, s3 := e.realmKey(map[string]any{"type": "live", "scopes": []string{"read"}})
		m3 := e.must(req{method: "POST", path: "/v1/sessions/s3/client-tokens", auth: bearer(s3), body: map[string]any{"scopes": []string{"read"}}}, 201).json(t)
		if m3["kid"] != rs["active"].(map[string]any)["kid"] {
			t.Fatalf("minted with %v after rotation to %v", m3["kid"], rs["active"])
		}
		verifyToken(t, e, m3)
		if jw := e.must(req{method: "GET", path: "/.well-known/jwks.json?realm=default", auth: "-"}, 200).json(t); len(jw["keys"].([]any)) != 2 {
			t.Fatalf("jwks after rotation: %v", jw)
		}

		// Orgs.
		org := e.must(req{method: "PUT", path: "/v1/orgs/acme", body: map[string]any{"state": "budget_exhausted"}}, 200).json(t)
		if org["state"] != "budget_exhausted" {
			t.Fatalf("org: %v", org)
		}
		e.expectErr(req{method: "PUT", path: "/v1/orgs/acme", body: map[string]any{"state": "broke"}, docInvalid: true}, 422, CodeInvalidRequest, "state")
		if orgs := e.must(req{method: "GET", path: "/v1/orgs"}, 200).json(t); len(orgs["data"].([]any)) != 1 {
			t.Fatalf("orgs: %v", orgs)
		}
		e.expectErr(req{method: "GET", path: "/v1/orgs", auth: bearer(s3)}, 403, CodeForbidden, "")

		// Policy.
		pol := e.must(req{method: "GET", path: "/v1/policy"}, 200)
		if pol.header.Get("Latchkey-Policy-Version") != "1" || pol.header.Get("Content-Type") != "application/yaml" {
			t.Fatalf("policy headers: %v", pol.header)
		}
		y := strings.Replace(string(pol.body), "scopes: [read, write, steer]", "scopes: [read, write, steer, billing]", 1)
		if v := e.must(req{method: "PUT", path: "/v1/policy", body: y, contentType: "application/yaml"}, 201).json(t); v["version"].(float64) != 2 {
			t.Fatalf("put policy: %v", v)
		}
		e.must(req{method: "POST", path: "/v1/keys", body: map[string]any{"type": "live", "scopes": []string{"billing"}}}, 201)
		e.expectErr(req{method: "PUT", path: "/v1/policy", body: strings.Replace(y, "realm: default", "realm: prod", 1), contentType: "text/yaml"},
			422, CodeInvalidRequest, "realm")
		e.expectErr(req{method: "PUT", path: "/v1/policy", body: y, contentType: "application/json", docInvalid: true}, 415, CodeUnsupportedMediaType, "")
		e.must(req{method: "GET", path: "/v1/policy?version=1"}, 200)
		e.expectErr(req{method: "GET", path: "/v1/policy?version=9"}, 404, CodeNotFound, "")
		if vs := e.must(req{method: "GET", path: "/v1/policy/versions?limit=10"}, 200).json(t); len(vs["data"].([]any)) != 2 {
			t.Fatalf("versions: %v", vs)
		}
		e.expectErr(req{method: "GET", path: "/v1/policy/versions?limit=x", docInvalid: true}, 422, CodeInvalidRequest, "limit")

		// Snapshots.
		ps := e.must(req{method: "POST", path: "/v1/snapshots/publish"}, 200).json(t)
		if ps["version"].(float64) < 1 || ps["full"] != true {
			t.Fatalf("publish: %v", ps)
		}
		if st := e.must(req{method: "GET", path: "/v1/snapshots/status"}, 200).json(t); st["version"] != ps["version"] {
			t.Fatalf("status %v after publish %v", st, ps)
		}
		e.expectErr(req{method: "POST", path: "/v1/snapshots/publish", auth: bearer(s3)}, 403, CodeForbidden, "")
		e.expectErr(req{method: "GET", path: "/v1/snapshots/status", auth: "Bearer lk_admin_nope", docInvalid: false}, 401, CodeUnauthorized, "")

		// Audit.
		e.srv.audit.flush()
		au := e.must(req{method: "GET", path: "/v1/audit?action=token.mint&limit=100"}, 200).json(t)
		if len(au["data"].([]any)) == 0 {
			t.Fatalf("no token.mint events: %v", au)
		}
		e.must(req{method: "GET", path: "/v1/audit?since=" + e.clock.now().Add(-time.Hour).Format(time.RFC3339) + "&target=" + liveID}, 200)
		e.expectErr(req{method: "GET", path: "/v1/audit?since=yesterday", docInvalid: true}, 422, CodeInvalidRequest, "since")

		// Not routed: JSON errors too.
		e.expectErr(req{method: "GET", path: "/v1/nope", noOp: true}, 404, CodeNotFound, "")
		r := e.expectErr(req{method: "PUT", path: "/v1/keys", noOp: true}, 405, CodeMethodNotAllowed, "")
		if !strings.Contains(r.header.Get("Allow"), "POST") {
			t.Fatalf("405 Allow: %q", r.header.Get("Allow"))
		}

		// Coverage: every operation of the document answered a success and a failure.
		ops := documentOperations(t)
		for _, op := range ops {
			codes := cov[op]
			var ok2, ok4 bool
			for c := range codes {
				ok2 = ok2 || c < 300
				ok4 = ok4 || (c >= 400 && c < 500)
			}
			// The public, parameterless routes cannot fail on input.
			public := op == "GET /health" || op == "GET /metrics" || op == "GET /openapi.yaml"
			if !ok2 || (!ok4 && !public) {
				t.Errorf("%s: statuses %v: want a 2xx and a 4xx", op, codes)
			}
		}
	})
}

// verifyToken checks a minted token's signature with the realm's published key of its kid
// (golang-jwt, independent of the code that signed it) and returns its claims.
func verifyToken(t *testing.T, e *env, mint map[string]any) jwtlib.MapClaims {
	t.Helper()
	keys, err := e.st.ListSigningKeys(t.Context(), "default")
	if err != nil {
		t.Fatal(err)
	}
	var sk *store.SigningKey
	for i := range keys {
		if keys[i].KID == mint["kid"] {
			sk = &keys[i]
		}
	}
	if sk == nil {
		t.Fatalf("kid %v not among the realm's signing keys", mint["kid"])
	}
	claims := jwtlib.MapClaims{}
	_, err = jwtlib.ParseWithClaims(mint["token"].(string), claims, func(tok *jwtlib.Token) (any, error) {
		if tok.Header["kid"] != sk.KID || tok.Header["typ"] != "JWT" {
			return nil, errors.New("wrong header")
		}
		if sk.Alg == store.AlgEdDSA {
			return ed25519.PublicKey(sk.Public), nil
		}
		return ecdsa.ParseUncompressedPublicKey(elliptic.P256(), sk.Public)
	}, jwtlib.WithValidMethods([]string{sk.Alg}), jwtlib.WithTimeFunc(e.clock.now), jwtlib.WithAudience("default"))
	if err != nil {
		t.Fatalf("minted token does not verify: %v", err)
	}
	return claims
}

// TestAuth covers how credentials are refused.
func TestAuth(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		e := newEnv(t, b)
		_, live := e.realmKey(map[string]any{"type": "live"})
		ro := e.must(req{method: "POST", path: "/v1/keys", body: map[string]any{"type": "admin", "scopes": []string{"keys:read"}}}, 201).json(t)
		roKey := ro["secret"].(string)
		if !strings.HasPrefix(roKey, "lk_admin_") || ro["key"].(map[string]any)["admin"] != true {
			t.Fatalf("admin key: %v", ro)
		}
		mutated := []byte(e.admin)
		mutated[len(mutated)-1] ^= 1
		for _, c := range []struct {
			name, auth, challenge string
			docInvalid            bool // the document's bearer scheme refuses it too
		}{
			{"missing", "-", `Bearer realm="latchkey"`, true},
			{"basic scheme", "Basic dXNlcjpwYXNz", `Bearer realm="latchkey", error="invalid_token"`, true},
			{"empty bearer", "Bearer ", `Bearer realm="latchkey", error="invalid_token"`, false},
			{"bad checksum", bearer(string(mutated)), `Bearer realm="latchkey", error="invalid_token"`, false},
			{"unknown prefix", bearer("sk_" + strings.Repeat("a", 40)), `Bearer realm="latchkey", error="invalid_token"`, false},
			{"too long", bearer(strings.Repeat("a", 200)), `Bearer realm="latchkey", error="invalid_token"`, false},
			{"well-formed but unknown", bearer(mustGenerate(t, AdminKeySpec)), `Bearer realm="latchkey", error="invalid_token"`, false},
		} {
			t.Run(c.name, func(t *testing.T) {
				r := e.expectErr(req{method: "GET", path: "/v1/realm", auth: c.auth, docInvalid: c.docInvalid}, 401, CodeUnauthorized, "")
				if got := r.header.Get("WWW-Authenticate"); got != c.challenge {
					t.Fatalf("WWW-Authenticate %q, want %q", got, c.challenge)
				}
			})
		}
		// Lowercase scheme is the same scheme (RFC 7235 section 2.1). libopenapi-validator
		// compares schemes case-sensitively, so this request is not checked against the document.
		e.must(req{method: "GET", path: "/v1/realm", auth: "bearer " + e.admin, noDoc: true}, 200)
		// Scopes.
		e.must(req{method: "GET", path: "/v1/keys", auth: bearer(roKey)}, 200)
		_, _, msg := e.expectErr(req{method: "POST", path: "/v1/keys", auth: bearer(roKey), body: map[string]any{"type": "live"}}, 403, CodeForbidden, "").errField(t)
		if !strings.Contains(msg, `"keys:write"`) {
			t.Fatalf("403 does not name the scope: %s", msg)
		}
		// keys:write cannot create, change or revoke admin keys.
		kw := e.must(req{method: "POST", path: "/v1/keys", body: map[string]any{"type": "admin", "scopes": []string{"keys:write"}}}, 201).json(t)
		kwKey := kw["secret"].(string)
		e.expectErr(req{method: "POST", path: "/v1/keys", auth: bearer(kwKey), body: map[string]any{"type": "admin", "scopes": []string{"admin"}}}, 403, CodeForbidden, "type")
		kwID := kw["key"].(map[string]any)["id"].(string)
		e.expectErr(req{method: "PATCH", path: "/v1/keys/" + kwID, auth: bearer(kwKey), body: map[string]any{"scopes": []string{"admin"}}}, 403, CodeForbidden, "")
		e.expectErr(req{method: "POST", path: "/v1/keys/" + kwID + "/rotate", auth: bearer(kwKey)}, 403, CodeForbidden, "")
		e.must(req{method: "POST", path: "/v1/keys", auth: bearer(kwKey), body: map[string]any{"type": "live"}}, 201)
		// A realm key may only mint.
		e.expectErr(req{method: "GET", path: "/v1/realm", auth: bearer(live)}, 403, CodeForbidden, "")
		// Expiry is checked at now on every request, cache or not.
		exp := e.must(req{method: "POST", path: "/v1/keys", body: map[string]any{"type": "live", "expires_at": e.clock.now().Add(time.Minute).Format(time.RFC3339)}}, 201).json(t)
		expKey := exp["secret"].(string)
		e.must(req{method: "POST", path: "/v1/sessions/x/client-tokens", auth: bearer(expKey), body: map[string]any{"scopes": []string{"read"}}}, 201)
		e.clock.advance(2 * time.Minute)
		_, _, msg = e.expectErr(req{method: "POST", path: "/v1/sessions/x/client-tokens", auth: bearer(expKey), body: map[string]any{"scopes": []string{"read"}}}, 401, CodeUnauthorized, "").errField(t)
		if msg != "API key expired" {
			t.Fatalf("expired key: %q", msg)
		}
		e.expectErr(req{method: "POST", path: "/v1/keys/" + exp["key"].(map[string]any)["id"].(string) + "/rotate"}, 409, CodeConflict, "id")
		// Revoking the bootstrap key through the API locks it out at once.
		bootID := hashOf(e.admin).ID().String()
		e.must(req{method: "POST", path: "/v1/keys/" + bootID + "/revoke"}, 200)
		e.expectErr(req{method: "GET", path: "/v1/realm"}, 401, CodeUnauthorized, "")
	})
}

// TestRealmKeysAcrossRealms: a realm key authenticates in its own realm, whichever realm
// that is, and mints with that realm's signing key and audience.
func TestRealmKeysAcrossRealms(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		e := newEnv(t, b)
		cr := e.must(req{method: "POST", path: "/v1/realms", body: map[string]any{"name": "staging"}}, 201).json(t)
		stAdmin := cr["admin_key"].(string)
		kr := e.must(req{method: "POST", path: "/v1/keys", auth: bearer(stAdmin), body: map[string]any{"type": "live", "org": "o1"}}, 201).json(t)
		m := e.must(req{method: "POST", path: "/v1/sessions/abc/client-tokens", auth: bearer(kr["secret"].(string)), body: map[string]any{"scopes": []string{"read"}}}, 201).json(t)
		sk, err := e.st.ActiveSigningKey(t.Context(), "staging")
		if err != nil {
			t.Fatal(err)
		}
		if m["kid"] != sk.KID {
			t.Fatalf("minted with %v, staging's key is %v", m["kid"], sk.KID)
		}
		tok, _, err := jwtlib.NewParser().ParseUnverified(m["token"].(string), jwtlib.MapClaims{})
		if err != nil {
			t.Fatal(err)
		}
		if aud, _ := tok.Claims.GetAudience(); len(aud) != 1 || aud[0] != "staging" {
			t.Fatalf("audience %v", aud)
		}
		// The keys of one realm are invisible to another's admin.
		e.expectErr(req{method: "GET", path: "/v1/keys/" + kr["key"].(map[string]any)["id"].(string)}, 404, CodeNotFound, "")
	})
}

// TestMutationsNotifyAndAudit: every mutation that changes a snapshot notifies the publisher,
// every mutation is audited, and no audit event holds a secret.
func TestMutationsNotifyAndAudit(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		e := newEnv(t, b)
		var secrets []string
		step := func(q req, status int, wantNotify bool) map[string]any {
			t.Helper()
			e.pub.takeNotified()
			r := e.must(q, status)
			n := e.pub.takeNotified()
			if wantNotify != (len(n) > 0) {
				t.Fatalf("%s %s: notified %v, want notify=%v", q.method, q.path, n, wantNotify)
			}
			if status == 204 {
				return nil
			}
			m := r.json(t)
			for _, k := range []string{"secret", "token", "admin_key"} {
				if s, ok := m[k].(string); ok {
					secrets = append(secrets, s)
				}
			}
			return m
		}
		k := step(req{method: "POST", path: "/v1/keys", body: map[string]any{"type": "live"}}, 201, true)
		id := k["key"].(map[string]any)["id"].(string)
		step(req{method: "POST", path: "/v1/keys", body: map[string]any{"type": "admin", "scopes": []string{"audit:read"}}}, 201, false)
		step(req{method: "PATCH", path: "/v1/keys/" + id, body: map[string]any{"name": "n"}}, 200, true)
		step(req{method: "POST", path: "/v1/sessions/s1/client-tokens", body: map[string]any{"scopes": []string{"read"}, "key_id": id}}, 201, false)
		step(req{method: "DELETE", path: "/v1/sessions/s1/client-tokens"}, 204, true)
		r := step(req{method: "POST", path: "/v1/keys/" + id + "/rotate", body: map[string]any{"grace_seconds": 0}}, 200, true)
		step(req{method: "POST", path: "/v1/keys/" + r["key"].(map[string]any)["id"].(string) + "/revoke"}, 200, true)
		step(req{method: "POST", path: "/v1/keys/import", body: map[string]any{"keys": []map[string]any{{"hash": strings.Repeat("0a", 32), "type": "live"}}}}, 201, true)
		step(req{method: "POST", path: "/v1/signing-keys/rotate"}, 200, true)
		step(req{method: "PUT", path: "/v1/orgs/o", body: map[string]any{"state": "suspended"}}, 200, true)
		pol := e.must(req{method: "GET", path: "/v1/policy"}, 200)
		step(req{method: "PUT", path: "/v1/policy", body: string(pol.body), contentType: "application/yaml"}, 201, true)
		step(req{method: "POST", path: "/v1/realms", body: map[string]any{"name": "other"}}, 201, true)
		step(req{method: "POST", path: "/v1/snapshots/publish"}, 200, false)

		e.srv.audit.flush()
		events, _, err := e.st.ListAudit(t.Context(), "default", store.AuditFilter{}, store.Page{Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for _, ev := range events {
			seen[ev.Action] = true
			blob := ev.Actor + ev.Target
			for k, v := range ev.Detail {
				blob += k + v
			}
			for _, s := range secrets {
				if strings.Contains(blob, s) || strings.Contains(blob, s[len(s)-12:]) {
					t.Fatalf("audit event %s holds a secret: %+v", ev.Action, ev)
				}
			}
		}
		for _, a := range []string{"key.create", "key.update", "key.rotate", "key.revoke", "key.import", "token.mint",
			"session.revoke", "signing_key.rotate", "org.set", "policy.put", "realm.create", "snapshot.publish"} {
			if !seen[a] {
				t.Errorf("no %s event", a)
			}
		}
	})
}
