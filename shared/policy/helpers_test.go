package policy

import (
	"errors"
	"strings"
	"testing"
)

// samplePolicy exercises every field of the model.
func samplePolicy() *Policy {
	return &Policy{
		Realm:  "prod",
		Scopes: []string{"threads:read", "threads:write", "agents:read", "agents:write", "read", "steer"},
		Credentials: []Source{
			{In: "bearer"},
			{In: "header", Name: "X-API-Key"},
			{In: "query", Name: "token"},
		},
		KeyTypes: []KeyType{
			{Name: "standard", Prefix: "tb_", RateClass: "billed", Label: "std"},
			{Name: "internal", Prefix: "tb_internal_", DefaultScopes: []string{"*"}},
			{Name: "agent", Prefix: "at_", Format: "hex64", ScopeCap: []string{"threads:read", "agents:read"},
				DefaultScopes: []string{"threads:read"}, Agents: "optional"},
		},
		RateClasses: []RateClass{{Name: "billed", PerSecond: 10, Burst: 20}, {Name: "browser", PerSecond: 0.5, Burst: 5}},
		Tokens: &TokenPolicy{Issuer: "https://auth.example", Audience: "api", Scopes: []string{"read", "steer"},
			MaxTTLSeconds: 600, LeewaySeconds: 10, RateClass: "browser"},
		AgentHeader: "X-Agent-ID",
		Routes: []Route{
			{Name: "health", Methods: []string{"GET"}, Path: "/health", Public: true},
			{Name: "list threads", Methods: []string{"GET"}, Path: "/v1/threads", Scopes: []string{"threads:read"}},
			{Name: "create thread", Methods: []string{"POST"}, Path: "/v1/threads", Scopes: []string{"threads:write"},
				DenyMessage: "Agent keys cannot create threads"},
			{Name: "get thread", Methods: []string{"GET"}, Path: "/v1/threads/{id}", Scopes: []string{"threads:read", "threads:write"}},
			{Name: "thread me", Methods: []string{"GET"}, Path: "/v1/threads/me", Scopes: []string{"threads:read"}},
			{Name: "thread any", Path: "/v1/threads/{id}/*", Scopes: []string{"threads:write"}, Match: "all"},
			{Name: "events", Methods: []string{"GET"}, Path: "/v3/sessions/{session}/events", Scopes: []string{"read"},
				Session: "session", QueryToken: true},
			{Name: "steer", Methods: []string{"POST"}, Path: "/v3/sessions/{session}/messages", Scopes: []string{"steer"},
				Session: "session", Credentials: []string{"token", "key"}},
			{Name: "mint", Methods: []string{"POST"}, Path: "/v3/sessions/{session}/client-tokens", Credentials: []string{"key"}},
			{Name: "act", Methods: []string{"POST", "PUT"}, Path: "/v1/agents/{agent}/act", Agent: "required"},
			{Name: "admin", Path: "/v1/admin/*", Scopes: []string{"*"}},
		},
		Unmatched: &Route{Name: "fallback", Credentials: []string{"key"}},
		Challenge: "bearer",
		Errors: []ErrorSpec{
			{Status: 401, Message: "Invalid or missing token", Messages: map[string]string{"expired": "Token expired"},
				Body: `{"error":"{{message}}","code":"UNAUTHORIZED","statusCode":{{status}}}`},
			{Status: 403, Body: `{"error":"{{message}}","reason":"{{reason}}"}`,
				Headers: []Header{{Name: "Cache-Control", Value: "no-store"}}},
			{Status: 429, Message: "Slow down", Headers: []Header{{Name: "Content-Type", Value: "application/problem+json"}}},
		},
		Identity: Identity{Org: "X-Latchkey-Org", KeyID: "X-Latchkey-Key-Id", KeyType: "X-Latchkey-Key-Type",
			Scopes: "X-Latchkey-Scopes", Agent: "X-Latchkey-Agent", Session: "X-Latchkey-Session", Credential: "X-Latchkey-Credential"},
	}
}

func mustCompile(t testing.TB, p *Policy) *Compiled {
	t.Helper()
	c, err := Compile(p)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return c
}

// fieldErrors flattens a Validate error into its FieldErrors.
func fieldErrors(err error) []*FieldError {
	var out []*FieldError
	var walk func(error)
	walk = func(e error) {
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, x := range j.Unwrap() {
				walk(x)
			}
			return
		}
		var fe *FieldError
		if errors.As(e, &fe) {
			out = append(out, fe)
		}
	}
	if err != nil {
		walk(err)
	}
	return out
}

func hasFieldError(err error, field, substr string) bool {
	for _, fe := range fieldErrors(err) {
		if fe.Field == field && strings.Contains(fe.Msg, substr) {
			return true
		}
	}
	return false
}
