package profiles

import (
	"bytes"
	"reflect"
	"strings"
	"testing"

	"github.com/latchkeyhq/latchkey/shared/apikey"
	"github.com/latchkeyhq/latchkey/shared/policy"
)

var want = []string{"agentcontainer", "agenttasks", "agrenting", "computer-agents", "opencomputer"}

func TestNames(t *testing.T) {
	if got := Names(); !reflect.DeepEqual(got, want) {
		t.Fatalf("Names() = %q, want %q", got, want)
	}
}

func compiled(t *testing.T, name string) (*policy.Policy, *policy.Compiled) {
	t.Helper()
	p, err := Policy(name)
	if err != nil {
		t.Fatal(err)
	}
	c, err := policy.Compile(p)
	if err != nil {
		t.Fatalf("%s: Compile: %v", name, err)
	}
	return p, c
}

func TestProfilesEncodeDecode(t *testing.T) {
	for _, name := range Names() {
		p, _ := compiled(t, name)
		b, err := policy.Encode(p)
		if err != nil {
			t.Fatalf("%s: Encode: %v", name, err)
		}
		back, err := policy.Decode(b)
		if err != nil {
			t.Fatalf("%s: Decode: %v", name, err)
		}
		if !reflect.DeepEqual(back, p) {
			t.Fatalf("%s: Decode(Encode(p)) differs from p", name)
		}
		again, _ := policy.Encode(back)
		if !bytes.Equal(again, b) {
			t.Fatalf("%s: encoding is not canonical", name)
		}
	}
}

// TestCasesAgreeWithPolicy checks every case file against its compiled profile as far as can
// be done without a snapshot: the route each request matches, and the exact bytes and headers
// of every expected denial, which must be what the renderer produces for that reason there.
func TestCasesAgreeWithPolicy(t *testing.T) {
	for _, name := range Names() {
		_, c := compiled(t, name)
		cf, err := Cases(name)
		if err != nil {
			t.Fatal(err)
		}
		if n := len(cf.Cases); n < 10 || n > 25 {
			t.Fatalf("%s: %d cases, want 10..25", name, n)
		}
		var ps policy.Params
		for _, tc := range cf.Cases {
			where := name + ": " + tc.Name
			route, ok := c.Match([]byte(tc.Request.Method), []byte(tc.Request.Path), &ps)
			if tc.Expect.Reason == "path" {
				if ok {
					t.Fatalf("%s: path is routed (to %q)", where, route.Name)
				}
			} else if !ok {
				t.Fatalf("%s: path refused", where)
			}
			if tc.Expect.Route != "" && (route == nil || route.Name != tc.Expect.Route) {
				t.Fatalf("%s: matches route %v, want %q", where, routeName(route), tc.Expect.Route)
			}
			if tc.Expect.Status == 200 && route != nil && route.Public && tc.Expect.Identity != nil {
				t.Fatalf("%s: a public route carries no identity", where)
			}
			if tc.Expect.Status != 200 && tc.Expect.Reason == "" {
				t.Fatalf("%s: denial without a reason", where)
			}
			if tc.Expect.Reason == "" {
				continue
			}
			r, _ := policy.ParseReason(tc.Expect.Reason)
			var resp *policy.Response
			if route == nil {
				resp = c.Error(r)
			} else {
				if route.Public {
					t.Fatalf("%s: public routes deny nothing", where)
				}
				resp = route.Error(c, r)
			}
			if resp.Status != tc.Expect.Status {
				t.Fatalf("%s: renders status %d, want %d", where, resp.Status, tc.Expect.Status)
			}
			if tc.Expect.Body == "" {
				t.Fatalf("%s: denial without an expected body", where)
			}
			if string(resp.Body) != tc.Expect.Body {
				t.Fatalf("%s: body\n got %s\nwant %s", where, resp.Body, tc.Expect.Body)
			}
			for k, v := range tc.Expect.Headers {
				if got := resp.Header(k); got != v {
					t.Fatalf("%s: header %s = %q, want %q", where, k, got, v)
				}
			}
		}
	}
}

func routeName(r *policy.CompiledRoute) string {
	if r == nil {
		return "(refused)"
	}
	return r.Name
}

// The documented bodies, byte for byte, as CONTRACTS.md gives them.
func TestDocumentedBodies(t *testing.T) {
	tests := []struct {
		profile string
		method  string
		path    string
		reason  policy.Reason
		body    string
	}{
		{"computer-agents", "GET", "/v1/threads", policy.ReasonMissing,
			`{"error":"Unauthorized","message":"API key required. Provide via Authorization header (Bearer token) or X-API-Key header."}`},
		{"computer-agents", "GET", "/v1/threads", policy.ReasonInvalid,
			`{"error":"Unauthorized","message":"API key required. Provide via Authorization header (Bearer token) or X-API-Key header."}`},
		{"agentcontainer", "GET", "/api/v1/containers", policy.ReasonMissing,
			`{"error":{"code":"unauthorized","message":"Invalid or missing API key."}}`},
		{"agentcontainer", "GET", "/api/v1/containers", policy.ReasonExpired,
			`{"error":{"code":"unauthorized","message":"Invalid or missing API key."}}`},
		{"agenttasks", "GET", "/api/teams/t/tasks", policy.ReasonInvalid,
			`{"error":"Invalid or missing token","code":"UNAUTHORIZED","statusCode":401}`},
		{"agenttasks", "POST", "/api/teams/t/agents", policy.ReasonScope,
			`{"error":"Agent tokens cannot create agents","code":"FORBIDDEN","statusCode":403}`},
	}
	for _, tt := range tests {
		_, c := compiled(t, tt.profile)
		var ps policy.Params
		route, ok := c.Match([]byte(tt.method), []byte(tt.path), &ps)
		if !ok {
			t.Fatalf("%s %s refused", tt.method, tt.path)
		}
		if got := string(route.Error(c, tt.reason).Body); got != tt.body {
			t.Fatalf("%s %v:\n got %s\nwant %s", tt.profile, tt.reason, got, tt.body)
		}
	}
}

func TestContractDetails(t *testing.T) {
	t.Run("computer-agents", func(t *testing.T) {
		_, c := compiled(t, "computer-agents")
		src := c.Sources()
		if len(src) != 2 || src[0].In != "bearer" || src[1].In != "header" || src[1].Name != "x-api-key" {
			t.Fatalf("sources %+v", src)
		}
		std, internal := c.KeyTypeIndex("standard"), c.KeyTypeIndex("internal")
		if c.MatchKeyType([]byte("tb_internal_abc")) != internal || c.MatchKeyType([]byte("tb_abc")) != std {
			t.Fatalf("longest prefix does not win")
		}
		if c.KeyType(std).RateClass < 0 || c.KeyType(internal).RateClass != -1 {
			t.Fatalf("tb_ must have a rate class, tb_internal_ none")
		}
		want := []string{"threads:read", "threads:write", "agents:read", "agents:write", "environments:read",
			"environments:write", "schedules:read", "schedules:write", "billing:read", "execute"}
		if !reflect.DeepEqual(c.Scopes(), want) {
			t.Fatalf("scopes %q", c.Scopes())
		}
		for _, path := range []string{"/health", "/metrics", "/metrics/history"} {
			assertPublic(t, c, "GET", path, true)
			assertPublic(t, c, "POST", path, false)
		}
		if c.Error(policy.ReasonBudget).Status != 402 {
			t.Fatalf("budget is not 402")
		}
	})
	t.Run("opencomputer", func(t *testing.T) {
		_, c := compiled(t, "opencomputer")
		tok := c.Tokens()
		if tok == nil || c.ScopeNames(tok.Scopes)[0] != "read" || len(c.ScopeNames(tok.Scopes)) != 2 || tok.MaxTTL > 3600 {
			t.Fatalf("client tokens: %+v", tok)
		}
		if c.QueryParam() != "token" {
			t.Fatalf("query param %q", c.QueryParam())
		}
		// ?token= is honoured on the SSE event stream and nowhere else.
		for _, r := range c.Routes() {
			if r.QueryToken != (r.Name == "session events (SSE)") {
				t.Fatalf("route %q: QueryToken %v", r.Name, r.QueryToken)
			}
		}
		if c.Unmatched().QueryToken || c.Unmatched().AllowToken {
			t.Fatalf("unmatched route accepts client tokens")
		}
		var ps policy.Params
		for _, path := range []string{"/v3/sessions/s/events", "/v3/sessions/s/messages", "/v3/sessions/s"} {
			m := "GET"
			if strings.HasSuffix(path, "messages") {
				m = "POST"
			}
			r, _ := c.Match([]byte(m), []byte(path), &ps)
			if r.SessionParam < 0 || string(ps.Get(r.SessionParam)) != "s" || !r.AllowToken {
				t.Fatalf("%s is not session-bound", path)
			}
		}
		for _, rt := range []struct{ m, p string }{{"POST", "/v3/sessions"}, {"POST", "/v3/sessions/s/client-tokens"},
			{"POST", "/v3/credentials"}, {"PUT", "/v3/credentials/default"}} {
			r, _ := c.Match([]byte(rt.m), []byte(rt.p), &ps)
			if r.AllowToken || !r.AllowKey {
				t.Fatalf("%s %s accepts client tokens", rt.m, rt.p)
			}
		}
	})
	t.Run("agentcontainer", func(t *testing.T) {
		_, c := compiled(t, "agentcontainer")
		if len(c.Sources()) != 1 || c.Sources()[0].In != "bearer" || c.MatchKeyType([]byte("ac_live_x")) != 0 {
			t.Fatalf("sources or key type")
		}
		assertPublic(t, c, "GET", "/api/v1/openapi.yaml", true)
		assertPublic(t, c, "GET", "/api/v1/anything", false)
	})
	t.Run("agrenting", func(t *testing.T) {
		_, c := compiled(t, "agrenting")
		src := c.Sources()
		if len(src) != 3 || src[0].Name != "x-api-key" || src[1].Name != "api-key" || src[2].In != "bearer" {
			t.Fatalf("sources %+v", src)
		}
		if c.AgentHeader() != "x-agent-id" || c.Tokens() == nil {
			t.Fatalf("agent header %q, tokens %v", c.AgentHeader(), c.Tokens())
		}
		user := c.KeyType(c.MatchKeyType([]byte("ap_x")))
		if user == nil || user.Name != "user" || user.Agents != policy.AgentOptional {
			t.Fatalf("ap_ key type %+v", user)
		}
	})
	t.Run("agenttasks", func(t *testing.T) {
		_, c := compiled(t, "agenttasks")
		for _, prefix := range []string{"tk_", "at_"} {
			kt := c.KeyType(c.MatchKeyType([]byte(prefix)))
			if kt == nil || kt.Spec.Format != apikey.FormatHex64 {
				t.Fatalf("%s is not hex64", prefix)
			}
			if kt.Spec.Check([]byte(prefix+strings.Repeat("0a", 32))) != nil {
				t.Fatalf("%s: 64 lowercase hex refused", prefix)
			}
		}
		agent := c.KeyType(c.KeyTypeIndex("agent"))
		allowed := c.ScopeNames(agent.Cap)
		wantCap := []string{"tasks:read", "tasks:update", "tasks:claim", "tasks:complete", "projects:read", "agents:read"}
		if !reflect.DeepEqual(allowed, wantCap) || agent.Default != agent.Cap {
			t.Fatalf("agent cap %q", allowed)
		}
		if c.KeyType(c.KeyTypeIndex("team")).Default != policy.AllScopes {
			t.Fatalf("team keys are not full access")
		}
	})
}

func assertPublic(t *testing.T, c *policy.Compiled, method, path string, public bool) {
	t.Helper()
	var ps policy.Params
	r, ok := c.Match([]byte(method), []byte(path), &ps)
	if !ok || r.Public != public {
		t.Fatalf("%s %s: public=%v, want %v", method, path, ok && r.Public, public)
	}
}

func TestExpand(t *testing.T) {
	lookup := func(kind, name string) (string, bool) {
		if name == "x" {
			return kind + "-value", true
		}
		return "", false
	}
	got, err := Expand("Bearer {{key.x}} and {{token.x}}!", lookup)
	if err != nil || got != "Bearer key-value and token-value!" {
		t.Fatalf("%q %v", got, err)
	}
	for _, bad := range []string{"{{key.y}}", "{{secret.x}}", "{{key.x", "{{keyx}}"} {
		if _, err := Expand(bad, lookup); err == nil {
			t.Fatalf("%q accepted", bad)
		}
	}
}
