package api

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// badCase is one malformed request and the exact answer it must get.
type badCase struct {
	name   string
	q      req
	status int
	code   string
	field  string
}

// jsonRoutes are the routes with a JSON body, with a body each accepts.
func jsonRoutes(keyID string) []struct{ method, path, good string } {
	return []struct{ method, path, good string }{
		{"POST", "/v1/realms", `{"name":"r1"}`},
		{"POST", "/v1/keys", `{"type":"live"}`},
		{"PATCH", "/v1/keys/" + keyID, `{"name":"x"}`},
		{"POST", "/v1/keys/" + keyID + "/rotate", `{"grace_seconds":10}`},
		{"POST", "/v1/keys/import", `{"keys":[{"hash":"` + strings.Repeat("1f", 32) + `","type":"live"}]}`},
		{"POST", "/v1/sessions/s1/client-tokens", `{"scopes":["read"],"key_id":"` + keyID + `"}`},
		{"POST", "/v1/signing-keys/rotate", `{"alg":"EdDSA"}`},
		{"PUT", "/v1/orgs/acme", `{"state":"active"}`},
	}
}

func badCases(e *env, keyID string) []badCase {
	past := e.clock.now().Add(-time.Hour).Format(time.RFC3339)
	long := func(n int) string { return strings.Repeat("a", n) }
	hash := strings.Repeat("2e", 32)
	var cs []badCase
	// What every JSON route refuses alike.
	for _, rt := range jsonRoutes(keyID) {
		p := rt.method + " " + rt.path + ": "
		// libopenapi-validator checks no body it has no Content-Type for when the body is
		// optional (rotations): only the server's answer is checked then.
		optional := strings.HasSuffix(rt.path, "/rotate")
		big := `{"pad":"` + strings.Repeat("x", DefaultMaxBodyBytes) + `"}`
		cs = append(cs,
			badCase{p + "malformed", req{method: rt.method, path: rt.path, body: `{"a":`, docInvalid: true}, 400, CodeInvalidJSON, ""},
			badCase{p + "not JSON", req{method: rt.method, path: rt.path, body: `nope`, docInvalid: true}, 400, CodeInvalidJSON, ""},
			badCase{p + "unknown field", req{method: rt.method, path: rt.path, body: `{"bogus":1}`, docInvalid: true}, 400, CodeInvalidJSON, "bogus"},
			badCase{p + "array body", req{method: rt.method, path: rt.path, body: `[]`, docInvalid: true}, 400, CodeInvalidJSON, ""},
			badCase{p + "trailing data", req{method: rt.method, path: rt.path, body: rt.good + ` {}`, noDoc: true}, 400, CodeInvalidJSON, ""},
			badCase{p + "text/plain", req{method: rt.method, path: rt.path, body: rt.good, contentType: "text/plain", docInvalid: true}, 415, CodeUnsupportedMediaType, ""},
			badCase{p + "no content type", req{method: rt.method, path: rt.path, body: rt.good, contentType: "-", docInvalid: !optional, noDoc: optional}, 415, CodeUnsupportedMediaType, ""},
			badCase{p + "latin-1 charset", req{method: rt.method, path: rt.path, body: rt.good, contentType: "application/json; charset=latin1", noDoc: true}, 415, CodeUnsupportedMediaType, ""},
			badCase{p + "oversized", req{method: rt.method, path: rt.path, body: big, docInvalid: true}, 413, CodePayloadTooLarge, ""},
		)
	}
	// Bodies required.
	for _, rt := range [][2]string{{"POST", "/v1/realms"}, {"POST", "/v1/keys"}, {"PATCH", "/v1/keys/" + keyID}, {"POST", "/v1/keys/import"},
		{"POST", "/v1/sessions/s1/client-tokens"}, {"PUT", "/v1/orgs/acme"}} {
		cs = append(cs, badCase{rt[0] + " " + rt[1] + ": no body", req{method: rt[0], path: rt[1], docInvalid: true}, 400, CodeInvalidJSON, ""})
	}
	k := func(name, body string, status int, code, field string, docInvalid bool) badCase {
		return badCase{"POST /v1/keys: " + name, req{method: "POST", path: "/v1/keys", body: body, docInvalid: docInvalid}, status, code, field}
	}
	m := func(name, path, body string, status int, code, field string, docInvalid bool) badCase {
		return badCase{"mint: " + name, req{method: "POST", path: path, body: body, docInvalid: docInvalid}, status, code, field}
	}
	const mp = "/v1/sessions/s1/client-tokens"
	kid := `,"key_id":"` + keyID + `"`
	imp := func(name, elems string, status int, code, field string, docInvalid bool) badCase {
		return badCase{"import: " + name, req{method: "POST", path: "/v1/keys/import", body: `{"keys":[` + elems + `]}`, docInvalid: docInvalid}, status, code, field}
	}
	cs = append(cs,
		k("missing type", `{}`, 422, CodeInvalidRequest, "type", true),
		k("type wrong type", `{"type":5}`, 400, CodeInvalidJSON, "type", true),
		k("unknown type", `{"type":"gold"}`, 422, CodeInvalidRequest, "type", false),
		k("name too long", `{"type":"live","name":"`+long(257)+`"}`, 422, CodeInvalidRequest, "name", true),
		k("name control char", `{"type":"live","name":"a\u0007"}`, 422, CodeInvalidRequest, "name", false),
		k("scopes not array", `{"type":"live","scopes":"read"}`, 400, CodeInvalidJSON, "scopes", true),
		k("scope with space", `{"type":"live","scopes":["read","a b"]}`, 422, CodeInvalidRequest, "scopes[1]", true),
		k("unknown scope", `{"type":"live","scopes":["read","foo"]}`, 422, CodeInvalidRequest, "scopes[1]", false),
		k("duplicate scopes", `{"type":"live","scopes":["read","read"]}`, 422, CodeInvalidRequest, "scopes", true),
		k("scope too long", `{"type":"live","scopes":["`+long(65)+`"]}`, 422, CodeInvalidRequest, "scopes[0]", true),
		k("org malformed", `{"type":"live","org":"a b"}`, 422, CodeInvalidRequest, "org", true),
		k("org too long", `{"type":"live","org":"`+long(129)+`"}`, 422, CodeInvalidRequest, "org", true),
		k("agent empty", `{"type":"live","agents":[""]}`, 422, CodeInvalidRequest, "agents[0]", true),
		k("expires_at not a time", `{"type":"live","expires_at":"tomorrow"}`, 422, CodeInvalidRequest, "expires_at", true),
		k("expires_at number", `{"type":"live","expires_at":5}`, 400, CodeInvalidJSON, "expires_at", true),
		k("expires_at past", `{"type":"live","expires_at":"`+past+`"}`, 422, CodeInvalidRequest, "expires_at", false),
		k("admin without scopes", `{"type":"admin"}`, 422, CodeInvalidRequest, "scopes", false),
		k("admin unknown scope", `{"type":"admin","scopes":["keys:read","root"]}`, 422, CodeInvalidRequest, "scopes[1]", false),
		k("admin with agents", `{"type":"admin","scopes":["keys:read"],"agents":["a"]}`, 422, CodeInvalidRequest, "agents", false),

		m("no scopes", mp, `{"ttl":60`+kid+`}`, 422, CodeInvalidRequest, "scopes", true),
		m("empty scopes", mp, `{"scopes":[]`+kid+`}`, 422, CodeInvalidRequest, "scopes", true),
		m("ttl 0", mp, `{"scopes":["read"],"ttl":0`+kid+`}`, 422, CodeInvalidRequest, "ttl", true),
		m("ttl negative", mp, `{"scopes":["read"],"ttl":-5`+kid+`}`, 422, CodeInvalidRequest, "ttl", true),
		m("ttl over cap", mp, `{"scopes":["read"],"ttl":3601`+kid+`}`, 422, CodeInvalidRequest, "ttl", false),
		m("ttl fractional", mp, `{"scopes":["read"],"ttl":1.5`+kid+`}`, 400, CodeInvalidJSON, "ttl", true),
		m("ttl string", mp, `{"scopes":["read"],"ttl":"60"`+kid+`}`, 400, CodeInvalidJSON, "ttl", true),
		m("ttl huge", mp, `{"scopes":["read"],"ttl":1e30`+kid+`}`, 400, CodeInvalidJSON, "ttl", true),
		m("unknown scope", mp, `{"scopes":["read","nope"]`+kid+`}`, 422, CodeInvalidRequest, "scopes[1]", false),
		m("scope not for tokens", mp, `{"scopes":["write"]`+kid+`}`, 403, CodeForbidden, "scopes[0]", false),
		m("scope the key lacks", mp, `{"scopes":["steer"]`+kid+`}`, 403, CodeForbidden, "scopes[0]", false),
		m("star not for tokens", mp, `{"scopes":["*"]`+kid+`}`, 403, CodeForbidden, "scopes[0]", false),
		m("key_id malformed", mp, `{"scopes":["read"],"key_id":"key_XYZ"}`, 422, CodeInvalidRequest, "key_id", true),
		m("key_id unknown", mp, `{"scopes":["read"],"key_id":"key_00000000000000000000"}`, 422, CodeInvalidRequest, "key_id", false),
		m("key_id of an admin key", mp, `{"scopes":["read"],"key_id":"`+hashOf(e.admin).ID().String()+`"}`, 422, CodeInvalidRequest, "key_id", false),
		m("session too long", "/v1/sessions/"+long(129)+"/client-tokens", `{"scopes":["read"]`+kid+`}`, 422, CodeInvalidRequest, "id", true),
		m("session bad char", "/v1/sessions/a%2Fb/client-tokens", `{"scopes":["read"]`+kid+`}`, 422, CodeInvalidRequest, "id", true),

		badCase{"PATCH: scopes wrong type", req{method: "PATCH", path: "/v1/keys/" + keyID, body: `{"scopes":{}}`, docInvalid: true}, 400, CodeInvalidJSON, "scopes"},
		badCase{"PATCH: expires_at number", req{method: "PATCH", path: "/v1/keys/" + keyID, body: `{"expires_at":5}`, docInvalid: true}, 400, CodeInvalidJSON, "expires_at"},
		badCase{"PATCH: expires_at past", req{method: "PATCH", path: "/v1/keys/" + keyID, body: `{"expires_at":"` + past + `"}`}, 422, CodeInvalidRequest, "expires_at"},
		badCase{"PATCH: name too long", req{method: "PATCH", path: "/v1/keys/" + keyID, body: `{"name":"` + long(300) + `"}`, docInvalid: true}, 422, CodeInvalidRequest, "name"},
		badCase{"PATCH: scope outside the realm", req{method: "PATCH", path: "/v1/keys/" + keyID, body: `{"scopes":["read","zzz"]}`}, 422, CodeInvalidRequest, "scopes[1]"},
		badCase{"PATCH: malformed id", req{method: "PATCH", path: "/v1/keys/key_1", body: `{"name":"x"}`, docInvalid: true}, 422, CodeInvalidRequest, "id"},
		badCase{"PATCH: unknown id", req{method: "PATCH", path: "/v1/keys/key_00000000000000000001", body: `{"name":"x"}`}, 404, CodeNotFound, ""},

		badCase{"rotate: grace too long", req{method: "POST", path: "/v1/keys/" + keyID + "/rotate", body: `{"grace_seconds":2592001}`, docInvalid: true}, 422, CodeInvalidRequest, "grace_seconds"},
		badCase{"rotate: grace string", req{method: "POST", path: "/v1/keys/" + keyID + "/rotate", body: `{"grace_seconds":"1"}`, docInvalid: true}, 400, CodeInvalidJSON, "grace_seconds"},
		badCase{"rotate: malformed id", req{method: "POST", path: "/v1/keys/xyz/rotate", docInvalid: true}, 422, CodeInvalidRequest, "id"},

		imp("no keys", ``, 422, CodeInvalidRequest, "keys", true),
		imp("missing hash", `{"type":"live"}`, 422, CodeInvalidRequest, "keys[0].hash", true),
		imp("uppercase hash", `{"hash":"`+strings.ToUpper(hash)+`","type":"live"}`, 422, CodeInvalidRequest, "keys[0].hash", true),
		imp("short hash", `{"hash":"abcd","type":"live"}`, 422, CodeInvalidRequest, "keys[0].hash", true),
		imp("unknown field", `{"hash":"`+hash+`","type":"live"},{"hash":"`+hash+`","type":"live","secret":"x"}`, 400, CodeInvalidJSON, "keys[1].secret", true),
		imp("type wrong type", `{"hash":"`+hash+`","type":"live"},{"hash":"`+hash+`","type":1}`, 400, CodeInvalidJSON, "keys[1].type", true),
		imp("element not an object", `{"hash":"`+hash+`","type":"live"},7`, 400, CodeInvalidJSON, "keys[1]", true),
		imp("admin type", `{"hash":"`+hash+`","type":"admin"}`, 422, CodeInvalidRequest, "keys[0].type", false),
		imp("unknown type", `{"hash":"`+hash+`","type":"gold"}`, 422, CodeInvalidRequest, "keys[0].type", false),
		imp("prefix of another type", `{"hash":"`+hash+`","type":"live","prefix":"lk_test_"}`, 422, CodeInvalidRequest, "keys[0].prefix", false),
		imp("malformed last4", `{"hash":"`+hash+`","type":"live","last4":"abcde"}`, 422, CodeInvalidRequest, "keys[0].last4", true),
		imp("unknown scope", `{"hash":"`+hash+`","type":"live","scopes":["nope"]}`, 422, CodeInvalidRequest, "keys[0].scopes[0]", false),
		imp("duplicate hash", `{"hash":"`+hash+`","type":"live"},{"hash":"`+hash+`","type":"test"}`, 422, CodeInvalidRequest, "keys[1].hash", false),
		imp("expired", `{"hash":"`+hash+`","type":"live","expires_at":"`+past+`"}`, 422, CodeInvalidRequest, "keys[0].expires_at", false),
		imp("too many", strings.TrimSuffix(strings.Repeat(`{"hash":"`+hash+`","type":"live"},`, 10001), ","), 422, CodeInvalidRequest, "keys", true),

		badCase{"realm: missing name", req{method: "POST", path: "/v1/realms", body: `{}`, docInvalid: true}, 422, CodeInvalidRequest, "name"},
		badCase{"realm: starts with digit", req{method: "POST", path: "/v1/realms", body: `{"name":"1abc"}`, docInvalid: true}, 422, CodeInvalidRequest, "name"},
		badCase{"realm: too long", req{method: "POST", path: "/v1/realms", body: `{"name":"` + long(64) + `"}`, docInvalid: true}, 422, CodeInvalidRequest, "name"},
		badCase{"realm: name not a string", req{method: "POST", path: "/v1/realms", body: `{"name":["a"]}`, docInvalid: true}, 400, CodeInvalidJSON, "name"},

		badCase{"signing key: unknown alg", req{method: "POST", path: "/v1/signing-keys/rotate", body: `{"alg":"none"}`, docInvalid: true}, 422, CodeInvalidRequest, "alg"},
		badCase{"org: missing state", req{method: "PUT", path: "/v1/orgs/acme", body: `{}`, docInvalid: true}, 422, CodeInvalidRequest, "state"},
		badCase{"org: malformed id", req{method: "PUT", path: "/v1/orgs/" + long(129), body: `{"state":"active"}`, docInvalid: true}, 422, CodeInvalidRequest, "org"},

		// The validator does not enforce a required YAML body: the server alone refuses it.
		badCase{"policy: empty", req{method: "PUT", path: "/v1/policy", body: "", contentType: "application/yaml", noDoc: true}, 422, CodeInvalidRequest, ""},
		badCase{"policy: not YAML", req{method: "PUT", path: "/v1/policy", body: "realm: [", contentType: "application/yaml"}, 422, CodeInvalidRequest, ""},
		badCase{"policy: unknown key", req{method: "PUT", path: "/v1/policy", body: "realm: default\nbogus: 1\n", contentType: "application/yaml"}, 422, CodeInvalidRequest, ""},
		badCase{"policy: invalid", req{method: "PUT", path: "/v1/policy", body: "realm: default\nscopes: [\"a b\"]\ncredentials: [{in: bearer}]\n", contentType: "application/yaml"}, 422, CodeInvalidRequest, "scopes[0]"},
		badCase{"policy: admin prefix", req{method: "PUT", path: "/v1/policy", body: "realm: default\ncredentials: [{in: bearer}]\nkey_types: [{name: x, prefix: lk_admin_x}]\n", contentType: "application/yaml"}, 422, CodeInvalidRequest, "key_types[0].prefix"},
		badCase{"policy: key type named admin", req{method: "PUT", path: "/v1/policy", body: "realm: default\ncredentials: [{in: bearer}]\nkey_types: [{name: admin, prefix: ad_}]\n", contentType: "application/yaml"}, 422, CodeInvalidRequest, "key_types[0].name"},
		badCase{"policy: JSON content type", req{method: "PUT", path: "/v1/policy", body: "realm: default", docInvalid: true}, 415, CodeUnsupportedMediaType, ""},
		badCase{"policy: oversized", req{method: "PUT", path: "/v1/policy", body: "# " + strings.Repeat("x", 4<<20+1), contentType: "application/yaml"}, 413, CodePayloadTooLarge, ""},

		badCase{"list keys: bool", req{method: "GET", path: "/v1/keys?include_revoked=maybe", docInvalid: true}, 422, CodeInvalidRequest, "include_revoked"},
		badCase{"list keys: limit too big", req{method: "GET", path: "/v1/keys?limit=1001", docInvalid: true}, 422, CodeInvalidRequest, "limit"},
		badCase{"list keys: limit negative", req{method: "GET", path: "/v1/keys?limit=-1", docInvalid: true}, 422, CodeInvalidRequest, "limit"},
		badCase{"list keys: repeated", req{method: "GET", path: "/v1/keys?limit=1&limit=2"}, 422, CodeInvalidRequest, "limit"},
		badCase{"list keys: unknown parameter", req{method: "GET", path: "/v1/keys?orgs=acme"}, 422, CodeInvalidRequest, "orgs"},
		badCase{"list keys: org malformed", req{method: "GET", path: "/v1/keys?org=a%20b", docInvalid: true}, 422, CodeInvalidRequest, "org"},
		badCase{"list keys: bad cursor", req{method: "GET", path: "/v1/keys?cursor=zzz"}, 422, CodeInvalidRequest, "cursor"},
		badCase{"audit: since", req{method: "GET", path: "/v1/audit?since=2026-13-01", docInvalid: true}, 422, CodeInvalidRequest, "since"},
		badCase{"policy: version 0", req{method: "GET", path: "/v1/policy?version=0", docInvalid: true}, 422, CodeInvalidRequest, "version"},
		badCase{"policy: version text", req{method: "GET", path: "/v1/policy?version=v2", docInvalid: true}, 422, CodeInvalidRequest, "version"},
		badCase{"jwks: unknown parameter", req{method: "GET", path: "/.well-known/jwks.json?kid=1", auth: "-"}, 422, CodeInvalidRequest, "kid"},
		badCase{"get key: malformed", req{method: "GET", path: "/v1/keys/key_" + strings.Repeat("A", 20), docInvalid: true}, 422, CodeInvalidRequest, "id"},
	)
	return cs
}

// TestBadInput sends malformed requests to every route and checks the exact status, error
// code and field of each answer — and that openapi.yaml agrees the request is bad.
func TestBadInput(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		e := newEnv(t, b)
		keyID, _ := e.realmKey(map[string]any{"type": "live", "scopes": []string{"read"}})
		for _, c := range badCases(e, keyID) {
			t.Run(c.name, func(t *testing.T) {
				e.t = t
				r := e.expectErr(c.q, c.status, c.code, c.field)
				if c.status == http.StatusUnauthorized && r.header.Get("WWW-Authenticate") == "" {
					t.Fatal("401 without WWW-Authenticate")
				}
			})
		}
		// Nothing above changed the key.
		e.t = t
		k := e.must(req{method: "GET", path: "/v1/keys/" + keyID}, 200).json(t)
		if k["revoked_at"] != nil || k["name"] != "" {
			t.Fatalf("a refused request changed the key: %v", k)
		}
	})
}

// FuzzRequestBody feeds arbitrary bodies to every JSON route: whatever arrives, the answer is
// never a 5xx, and an error answer is the API's error body.
func FuzzRequestBody(f *testing.F) {
	e := newEnv(f, backends[0], withoutDoc())
	keyID, _ := e.realmKey(map[string]any{"type": "live", "scopes": []string{"read", "steer"}})
	routes := jsonRoutes(keyID)
	for i, rt := range routes {
		f.Add(uint8(i), []byte(rt.good), "application/json")
	}
	for _, c := range badCases(e, keyID) {
		if s, ok := c.q.body.(string); ok && len(s) < 4096 {
			for i, rt := range routes {
				if c.q.method == rt.method && c.q.path == rt.path {
					f.Add(uint8(i), []byte(s), "application/json")
				}
			}
		}
	}
	f.Add(uint8(1), []byte(`{"type":"live","scopes":["read"],"expires_at":"9999-12-31T23:59:59Z"}`), "application/json; charset=utf-8")
	f.Add(uint8(5), []byte(`{"scopes":["read"],"ttl":9223372036854775807,"key_id":"`+keyID+`"}`), "application/json")
	f.Fuzz(func(t *testing.T, route uint8, body []byte, ct string) {
		rt := routes[int(route)%len(routes)]
		e.t = t
		r := e.do(req{method: rt.method, path: rt.path, body: body, contentType: ct})
		if r.status >= 500 {
			t.Fatalf("%s %s %q: status %d: %s", rt.method, rt.path, body, r.status, r.body)
		}
		if r.status >= 400 {
			if code, _, msg := r.errField(t); code == "" || msg == "" {
				t.Fatalf("error body without code or message: %s", r.body)
			}
		}
	})
}
