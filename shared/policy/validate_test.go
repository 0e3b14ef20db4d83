package policy

import (
	"errors"
	"math"
	"strconv"
	"strings"
	"testing"
)

func TestSamplePolicyValid(t *testing.T) {
	if err := samplePolicy().Validate(); err != nil {
		t.Fatalf("sample policy: %v", err)
	}
}

func TestValidateRefuses(t *testing.T) {
	manyScopes := make([]string, 64)
	for i := range manyScopes {
		manyScopes[i] = "s" + strconv.Itoa(i)
	}
	tests := []struct {
		name   string
		mutate func(p *Policy)
		field  string
		substr string
	}{
		{"missing realm", func(p *Policy) { p.Realm = "" }, "realm", "required"},
		{"realm with quote", func(p *Policy) { p.Realm = `a"b` }, "realm", "may only contain"},
		{"star listed as scope", func(p *Policy) { p.Scopes = append(p.Scopes, "*") }, "scopes[6]", "implicit"},
		{"duplicate scope", func(p *Policy) { p.Scopes = append(p.Scopes, "read") }, "scopes[6]", "also scopes[4]"},
		{"scope with space", func(p *Policy) { p.Scopes[0] = "a b" }, "scopes[0]", "scope-token"},
		{"scope with star", func(p *Policy) { p.Scopes[0] = "threads:*" }, "scopes[0]", "reserved"},
		{"too many scopes", func(p *Policy) {
			p.Scopes = manyScopes
			p.KeyTypes[2].ScopeCap = nil
			p.KeyTypes[2].DefaultScopes = nil
			p.Tokens.Scopes = nil
			p.Routes = p.Routes[:1]
		}, "scopes", "at most 63"},
		{"no credential sources", func(p *Policy) { p.Credentials = nil; p.Routes = p.Routes[:6] }, "credentials", "empty"},
		{"unknown source", func(p *Policy) { p.Credentials[1].In = "cookie" }, "credentials[1].in", `"cookie" is not one of`},
		{"bearer with name", func(p *Policy) { p.Credentials[0].Name = "X" }, "credentials[0].name", "must be empty"},
		{"bad header name", func(p *Policy) { p.Credentials[1].Name = "X API Key" }, "credentials[1].name", "not a valid HTTP header name"},
		{"authorization as header source", func(p *Policy) { p.Credentials[1].Name = "authorization" }, "credentials[1].name", "use in: bearer"},
		{"duplicate header source", func(p *Policy) {
			p.Credentials = append(p.Credentials, Source{In: "header", Name: "x-api-key"})
		}, "credentials[3].name", "also credentials[1].name"},
		{"two query sources", func(p *Policy) { p.Credentials = append(p.Credentials, Source{In: "query", Name: "t"}) }, "credentials[3].in", "only one query source"},
		{"query name with space", func(p *Policy) { p.Credentials[2].Name = "a b" }, "credentials[2].name", "not a valid query parameter"},
		{"key type without name", func(p *Policy) { p.KeyTypes[0].Name = "" }, "key_types[0].name", "required"},
		{"duplicate key type name", func(p *Policy) { p.KeyTypes[1].Name = "standard" }, "key_types[1].name", "also key_types[0]"},
		{"duplicate prefix", func(p *Policy) { p.KeyTypes[1].Prefix = "tb_" }, "key_types[1].prefix", `"tb_" is also the prefix of key_types[0]`},
		{"upper-case prefix", func(p *Policy) { p.KeyTypes[0].Prefix = "TB_" }, "key_types[0].prefix", `"TB_"`},
		{"prefix of every JWT", func(p *Policy) { p.KeyTypes[0].Prefix = "ey" }, "key_types[0].prefix", `would match every client token`},
		{"one-letter prefix of every JWT", func(p *Policy) { p.KeyTypes[0].Prefix = "e" }, "key_types[0].prefix", `would match every client token`},
		{"unknown format", func(p *Policy) { p.KeyTypes[0].Format = "base64" }, "key_types[0].format", `"base64" is not one of`},
		{"cap names unknown scope", func(p *Policy) { p.KeyTypes[2].ScopeCap = []string{"nope"} }, "key_types[2].scope_cap[0]", `unknown scope "nope"`},
		{"default outside cap", func(p *Policy) { p.KeyTypes[2].DefaultScopes = []string{"agents:write"} }, "key_types[2].default_scopes[0]", "outside the type's scope_cap"},
		{"star default outside cap", func(p *Policy) { p.KeyTypes[2].DefaultScopes = []string{"*"} }, "key_types[2].default_scopes[0]", "outside"},
		{"unknown rate class on key type", func(p *Policy) { p.KeyTypes[0].RateClass = "gold" }, "key_types[0].rate_class", `unknown rate class "gold"`},
		{"bad agents mode", func(p *Policy) { p.KeyTypes[0].Agents = "sometimes" }, "key_types[0].agents", `"sometimes" is not one of`},
		{"bad label", func(p *Policy) { p.KeyTypes[0].Label = "a b" }, "key_types[0].label", "may only contain"},
		{"zero rate", func(p *Policy) { p.RateClasses[0].PerSecond = 0 }, "rate_classes[0].per_second", "greater than 0"},
		{"NaN rate", func(p *Policy) { p.RateClasses[0].PerSecond = math.NaN() }, "rate_classes[0].per_second", "greater than 0"},
		{"zero burst", func(p *Policy) { p.RateClasses[0].Burst = 0 }, "rate_classes[0].burst", "not in 1.."},
		{"duplicate rate class", func(p *Policy) { p.RateClasses[1].Name = "billed" }, "rate_classes[1].name", "also rate_classes[0]"},
		{"token issuer missing", func(p *Policy) { p.Tokens.Issuer = "" }, "tokens.issuer", "required"},
		{"token audience missing", func(p *Policy) { p.Tokens.Audience = "" }, "tokens.audience", "required"},
		{"token ttl too long", func(p *Policy) { p.Tokens.MaxTTLSeconds = 86401 }, "tokens.max_ttl_seconds", "not in 1..86400"},
		{"token ttl negative", func(p *Policy) { p.Tokens.MaxTTLSeconds = -1 }, "tokens.max_ttl_seconds", "not in 1..86400"},
		{"leeway too large", func(p *Policy) { p.Tokens.LeewaySeconds = 301 }, "tokens.leeway_seconds", "not in 0..300"},
		{"token scope unknown", func(p *Policy) { p.Tokens.Scopes = []string{"write"} }, "tokens.scopes[0]", `unknown scope "write"`},
		{"token rate class unknown", func(p *Policy) { p.Tokens.RateClass = "x" }, "tokens.rate_class", "unknown rate class"},
		{"agent header invalid", func(p *Policy) { p.AgentHeader = "X Agent" }, "agent_header", "not a valid HTTP header name"},
		{"agent header is a credential header", func(p *Policy) { p.AgentHeader = "X-Api-Key" }, "agent_header", "also credentials[1].name"},
		{"unclosed parameter", func(p *Policy) { p.Routes[3].Path = "/v1/threads/{id" }, "routes[3].path", `segment "{id" is not a valid parameter`},
		{"empty parameter", func(p *Policy) { p.Routes[3].Path = "/v1/threads/{}" }, "routes[3].path", `segment "{}" is not a valid parameter`},
		{"parameter with text", func(p *Policy) { p.Routes[3].Path = "/v1/threads/x{id}" }, "routes[3].path", "not a valid parameter"},
		{"parameter twice", func(p *Policy) { p.Routes[3].Path = "/v1/{id}/{id}" }, "routes[3].path", `parameter "id" appears twice`},
		{"path without slash", func(p *Policy) { p.Routes[1].Path = "v1/threads" }, "routes[1].path", `must start with "/"`},
		{"empty path", func(p *Policy) { p.Routes[1].Path = "" }, "routes[1].path", "required"},
		{"double slash", func(p *Policy) { p.Routes[1].Path = "/v1//threads" }, "routes[1].path", "empty segment"},
		{"trailing slash", func(p *Policy) { p.Routes[1].Path = "/v1/threads/" }, "routes[1].path", "trailing slash"},
		{"inner wildcard", func(p *Policy) { p.Routes[1].Path = "/v1/*/threads" }, "routes[1].path", "last segment"},
		{"partial wildcard", func(p *Policy) { p.Routes[1].Path = "/v1/thr*" }, "routes[1].path", "whole final segment"},
		{"dot segment", func(p *Policy) { p.Routes[1].Path = "/v1/../threads" }, "routes[1].path", "dot segment"},
		{"encoded literal", func(p *Policy) { p.Routes[1].Path = "/v1/a%20b" }, "routes[1].path", "decoded"},
		{"semicolon literal", func(p *Policy) { p.Routes[1].Path = "/v1/a;b" }, "routes[1].path", "not allowed"},
		{"too many segments", func(p *Policy) { p.Routes[1].Path = strings.Repeat("/a", 33) }, "routes[1].path", "more than 32 segments"},
		{"lower-case method", func(p *Policy) { p.Routes[1].Methods = []string{"get"} }, "routes[1].methods[0]", "upper-case"},
		{"method twice", func(p *Policy) { p.Routes[1].Methods = []string{"GET", "GET"} }, "routes[1].methods[1]", "twice"},
		{"duplicate route", func(p *Policy) {
			p.Routes = append(p.Routes, Route{Methods: []string{"GET"}, Path: "/v1/threads/{thread}"})
		}, "routes[11].path", "routes[3] has the same methods and path"},
		{"duplicate route, methods reordered", func(p *Policy) {
			p.Routes = append(p.Routes, Route{Methods: []string{"PUT", "POST"}, Path: "/v1/agents/{a}/act"})
		}, "routes[11].path", "routes[9]"},
		{"unknown route scope", func(p *Policy) { p.Routes[1].Scopes = []string{"threads:delete"} }, "routes[1].scopes[0]", `unknown scope "threads:delete"`},
		{"star with other scopes", func(p *Policy) { p.Routes[1].Scopes = []string{"*", "read"} }, "routes[1].scopes", "only scope"},
		{"bad match", func(p *Policy) { p.Routes[1].Match = "some" }, "routes[1].match", `"some" is not one of`},
		{"bad credential kind", func(p *Policy) { p.Routes[1].Credentials = []string{"cookie"} }, "routes[1].credentials[0]", `"cookie" is not one of`},
		{"token route without tokens", func(p *Policy) {
			p.Tokens = nil
			p.Routes = p.Routes[:6]
			p.Routes[1].Credentials = []string{"token"}
		}, "routes[1].credentials[0]", "accepts no client tokens"},
		{"session names no parameter", func(p *Policy) { p.Routes[6].Session = "id" }, "routes[6].session", `"id" is not a parameter`},
		{"session on key-only route", func(p *Policy) { p.Routes[8].Session = "session" }, "routes[8].session", "does not accept tokens"},
		{"query token without query source", func(p *Policy) { p.Credentials = p.Credentials[:2] }, "routes[6].query_token", "in: query"},
		{"bad route agent", func(p *Policy) { p.Routes[9].Agent = "maybe" }, "routes[9].agent", `"maybe" is not one of`},
		{"route agent without header", func(p *Policy) { p.AgentHeader = "" }, "routes[9].agent", "agent_header is not set"},
		{"public route with scopes", func(p *Policy) { p.Routes[0].Scopes = []string{"read"} }, "routes[0].scopes", "no effect on a public route"},
		{"public route with deny message", func(p *Policy) { p.Routes[0].DenyMessage = "no" }, "routes[0].deny_message", "no effect"},
		{"unmatched with path", func(p *Policy) { p.Unmatched.Path = "/x" }, "unmatched.path", "must be empty"},
		{"unmatched with methods", func(p *Policy) { p.Unmatched.Methods = []string{"GET"} }, "unmatched.methods", "must be empty"},
		{"unmatched with session", func(p *Policy) { p.Unmatched.Credentials = nil; p.Unmatched.Session = "id" }, "unmatched.session", "no path parameters"},
		{"unmatched unknown scope", func(p *Policy) { p.Unmatched.Scopes = []string{"x"} }, "unmatched.scopes[0]", "unknown scope"},
		{"bad challenge", func(p *Policy) { p.Challenge = "basic" }, "challenge", `"basic" is not one of`},
		{"status 418", func(p *Policy) { p.Errors[0].Status = 418 }, "errors[0].status", "418 is not one of 401, 402, 403, 429, 503"},
		{"duplicate status", func(p *Policy) { p.Errors[1].Status = 401; p.Errors[1].Body = "" }, "errors[1].status", "also errors[0]"},
		{"unknown reason", func(p *Policy) { p.Errors[0].Messages["bogus"] = "x" }, "errors[0].messages.bogus", "not a reason"},
		{"reason of another status", func(p *Policy) { p.Errors[0].Messages["scope"] = "x" }, "errors[0].messages.scope", "renders with status 403, not 401"},
		{"invalid UTF-8 message", func(p *Policy) { p.Errors[0].Message = "\xff" }, "errors[0].message", "UTF-8"},
		{"body not JSON", func(p *Policy) { p.Errors[0].Body = `{"error":` }, "errors[0].body", "not valid JSON"},
		{"message outside string", func(p *Policy) { p.Errors[0].Body = `{"error":{{message}}}` }, "errors[0].body", "not valid JSON"},
		{"reason outside string", func(p *Policy) { p.Errors[1].Body = `{"error":{{reason}}}` }, "errors[1].body", "not valid JSON"},
		{"unknown placeholder", func(p *Policy) { p.Errors[0].Body = `{"error":"{{realm}}"}` }, "errors[0].body", "unknown placeholder"},
		{"trailing garbage", func(p *Policy) { p.Errors[0].Body = `{} x` }, "errors[0].body", "not valid JSON"},
		{"body too long", func(p *Policy) { p.Errors[0].Body = `"` + strings.Repeat("a", 4096) + `"` }, "errors[0].body", "longer than 4096"},
		{"bad error header name", func(p *Policy) { p.Errors[1].Headers[0].Name = "Cache Control" }, "errors[1].headers[0].name", "not a valid HTTP header name"},
		{"header value with newline", func(p *Policy) { p.Errors[1].Headers[0].Value = "a\r\nSet-Cookie: x" }, "errors[1].headers[0].value", "printable"},
		{"duplicate error header", func(p *Policy) {
			p.Errors[1].Headers = append(p.Errors[1].Headers, Header{Name: "cache-control", Value: "x"})
		}, "errors[1].headers[1].name", "also errors[1].headers[0]"},
		{"identity bad name", func(p *Policy) { p.Identity.Org = "X Org" }, "identity.org", "not a valid HTTP header name"},
		{"identity strips the credential", func(p *Policy) { p.Identity.Org = "x-api-key" }, "identity.org", "also credentials[1].name"},
		{"identity strips the agent header", func(p *Policy) { p.Identity.Agent = "X-Agent-Id" }, "identity.agent", "also agent_header"},
		{"identity is authorization", func(p *Policy) { p.Identity.KeyID = "Authorization" }, "identity.key_id", "may not be Authorization"},
		{"identity duplicate", func(p *Policy) { p.Identity.Session = "X-Latchkey-Org" }, "identity.session", "also identity.org"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := samplePolicy()
			tt.mutate(p)
			err := p.Validate()
			if err == nil {
				t.Fatalf("Validate accepted the policy")
			}
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error does not match ErrInvalid: %v", err)
			}
			if !hasFieldError(err, tt.field, tt.substr) {
				t.Fatalf("want %s: …%s…; got:\n%v", tt.field, tt.substr, err)
			}
			if _, cerr := Compile(p); cerr == nil {
				t.Fatalf("Compile accepted an invalid policy")
			}
			if b, eerr := Encode(p); eerr == nil || b != nil {
				t.Fatalf("Encode accepted an invalid policy")
			}
		})
	}
}

func TestValidateMessageFormat(t *testing.T) {
	p := samplePolicy()
	p.Routes[3].Path = "/v1/threads/{id"
	p.KeyTypes[1].Prefix = "tb_"
	p.Errors[0].Status = 418
	err := p.Validate()
	for _, want := range []string{
		`routes[3].path: segment "{id" is not a valid parameter`,
		`key_types[1].prefix: "tb_" is also the prefix of key_types[0]`,
		`errors[0].status: 418 is not one of 401, 402, 403, 429, 503`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("want %q in:\n%v", want, err)
		}
	}
	if n := len(fieldErrors(err)); n != 3 {
		t.Fatalf("want exactly 3 problems, got %d:\n%v", n, err)
	}
}

func TestValidateAccepts(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(p *Policy)
	}{
		{"nested prefixes", func(p *Policy) { p.KeyTypes[1].Prefix = "tb_internal_x_" }},
		{"63 scopes", func(p *Policy) {
			for i := len(p.Scopes); i < 63; i++ {
				p.Scopes = append(p.Scopes, "s"+strconv.Itoa(i))
			}
		}},
		{"zero ttl and leeway mean defaults", func(p *Policy) { p.Tokens.MaxTTLSeconds, p.Tokens.LeewaySeconds = 0, 0 }},
		{"ttl 86400", func(p *Policy) { p.Tokens.MaxTTLSeconds = 86400 }},
		{"leeway 300", func(p *Policy) { p.Tokens.LeewaySeconds = 300 }},
		{"no tokens, no token routes", func(p *Policy) { p.Tokens = nil; p.Routes = p.Routes[:6] }},
		{"no challenge", func(p *Policy) { p.Challenge = "none" }},
		{"same path, other methods", func(p *Policy) {
			p.Routes = append(p.Routes, Route{Methods: []string{"DELETE"}, Path: "/v1/threads/{x}"})
		}},
		{"same path as public", func(p *Policy) { p.Routes = append(p.Routes, Route{Methods: []string{"POST"}, Path: "/health"}) }},
		{"root route", func(p *Policy) { p.Routes = append(p.Routes, Route{Path: "/", Public: true}) }},
		{"body with nested JSON and status string", func(p *Policy) {
			p.Errors[0].Body = ` {"error":{"code":"x","status":"{{status}}","list":[1,2.5e3,true,null,"\u00e9\n"]}} `
		}},
		{"agents none on route", func(p *Policy) { p.Routes[9].Agent = "none" }},
		{"unicode literal", func(p *Policy) { p.Routes = append(p.Routes, Route{Path: "/v1/caf\u00e9"}) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := samplePolicy()
			tt.mutate(p)
			if err := p.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			mustCompile(t, p)
		})
	}
}
