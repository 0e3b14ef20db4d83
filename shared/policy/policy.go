// Package policy is a realm's route policy: where credentials come from, which key types exist
// and what they may do, which routes need which scopes, and how each error is rendered.
//
// A Policy is the source form (the YAML a platform writes, decoded outside this package). The
// control plane validates and encodes it into snapshots; every edge host decodes it and compiles
// it into a Compiled policy, the form the decision function reads on every request.
package policy

// Policy is one realm's policy, the source form. The yaml tags are the file format; decoding
// YAML is the caller's business (this package stays standard-library only).
type Policy struct {
	// Realm names the realm this policy belongs to ("default", "prod", ...).
	Realm string `yaml:"realm"`
	// Scopes is the realm's scope dictionary. A key's scopes are a mask over this list,
	// so its order is part of the encoded snapshot. "*" is implicit: it means every scope.
	Scopes []string `yaml:"scopes"`
	// Credentials lists where a credential is looked for, in order; the first source present
	// in a request is the one used.
	Credentials []Source `yaml:"credentials"`
	// KeyTypes are the API key types of the realm. A key's type is found by the longest
	// matching prefix.
	KeyTypes []KeyType `yaml:"key_types"`
	// RateClasses are token-bucket parameters that key types and client tokens refer to by name.
	RateClasses []RateClass `yaml:"rate_classes"`
	// Tokens configures client tokens (JWT). Nil means the realm accepts no client tokens.
	Tokens *TokenPolicy `yaml:"tokens"`
	// AgentHeader names the request header with which a caller picks the agent it acts for
	// (e.g. "X-Agent-ID"). Empty disables acting-agent checks.
	AgentHeader string `yaml:"agent_header"`
	// Routes map method and path to requirements. The most specific pattern wins.
	Routes []Route `yaml:"routes"`
	// Unmatched is what a request matching no route needs (its Path, Methods and Session must
	// be empty). Nil means any valid credential of the realm, with no scope required.
	Unmatched *Route `yaml:"unmatched"`
	// Challenge is "bearer" (default: a 401 carries an RFC 6750 WWW-Authenticate challenge
	// naming the realm, with error="invalid_token" when a credential was rejected, and a 403 for
	// scope carries error="insufficient_scope") or "none".
	Challenge string `yaml:"challenge"`
	// Errors renders each denial. Statuses without an entry use latchkey's default rendering.
	Errors []ErrorSpec `yaml:"errors"`
	// Identity names the headers injected upstream on allow; incoming copies are always stripped.
	Identity Identity `yaml:"identity"`
}

// Source is one place a credential may be found.
type Source struct {
	// In is "bearer" (Authorization: Bearer), "header" (a named header carrying the raw key) or
	// "query" (a query parameter, honoured only on routes with QueryToken set).
	In string `yaml:"in"`
	// Name is the header or query parameter name; it must be empty for "bearer". Header names
	// are case-insensitive; query parameter names are not. At most one bearer and one query
	// source; "Authorization" is read only by the bearer source.
	Name string `yaml:"name"`
}

// KeyType is one kind of API key.
type KeyType struct {
	// Name identifies the type in the control plane's API ("standard", "internal", ...).
	Name string `yaml:"name"`
	// Prefix starts every key of this type ("tb_", "tb_internal_", ...).
	Prefix string `yaml:"prefix"`
	// Format is "base62crc32" (default), "hex64" or "opaque" (imported keys only); see
	// package apikey.
	Format string `yaml:"format"`
	// ScopeCap lists the scopes a key of this type may ever hold; empty means any scope.
	// "*" in the cap allows the "*" scope itself.
	ScopeCap []string `yaml:"scope_cap"`
	// DefaultScopes are granted when a key is created without scopes.
	DefaultScopes []string `yaml:"default_scopes"`
	// RateClass names a RateClass; empty means no rate limit.
	RateClass string `yaml:"rate_class"`
	// Agents says whether keys of this type may act for agents: "none" (default), "optional"
	// (the agent header, when present, must name one of the key's agents) or "required"
	// (the header must be present and name one of the key's agents).
	Agents string `yaml:"agents"`
	// Label is the human-readable kind shown in the identity header ("standard", "sandbox").
	Label string `yaml:"label"`
}

// RateClass is a token bucket: Burst tokens, refilled at PerSecond.
type RateClass struct {
	Name      string  `yaml:"name"`
	PerSecond float64 `yaml:"per_second"`
	Burst     int     `yaml:"burst"`
}

// TokenPolicy configures client tokens.
type TokenPolicy struct {
	// Issuer and Audience must match the token's iss and one of its aud.
	Issuer   string `yaml:"issuer"`
	Audience string `yaml:"audience"`
	// Scopes are the only scopes a client token may carry.
	Scopes []string `yaml:"scopes"`
	// MaxTTLSeconds caps a minted token's lifetime: 1..86400, 0 means the default 3600.
	MaxTTLSeconds int64 `yaml:"max_ttl_seconds"`
	// LeewaySeconds is the clock skew tolerated on exp/nbf/iat: 0..300, 0 means the default 30.
	LeewaySeconds int64 `yaml:"leeway_seconds"`
	// RateClass applies to requests made with client tokens (bucket keyed by the minting key).
	RateClass string `yaml:"rate_class"`
}

// Route is a method and path pattern with its requirements.
type Route struct {
	// Name is for humans and logs.
	Name string `yaml:"name"`
	// Methods lists HTTP methods; empty means any method.
	Methods []string `yaml:"methods"`
	// Path is a pattern: literal segments, "{param}" for one segment, and a final "*" for any
	// remainder, including none ("/v3/sessions/{id}/events", "/api/v1/*"). Literal segments are
	// written decoded (requests are matched after percent-decoding); a pattern has no trailing
	// "/" (a request's trailing slash is ignored).
	Path string `yaml:"path"`
	// Public routes need no credential; a credential that is present is ignored.
	Public bool `yaml:"public"`
	// Scopes required; Match says whether "any" (default) or "all" of them must be held.
	// No scopes means any valid credential. ["*"] alone means full access: only a credential
	// holding "*" passes.
	Scopes []string `yaml:"scopes"`
	Match  string   `yaml:"match"`
	// Credentials restricts which kinds may call the route: "key", "token". Empty means both.
	Credentials []string `yaml:"credentials"`
	// Session names the path parameter that must equal a client token's session (sub).
	// API keys are not bound to sessions.
	Session string `yaml:"session"`
	// QueryToken allows the query source (e.g. ?token=) on this route; the parameter is removed
	// before forwarding.
	QueryToken bool `yaml:"query_token"`
	// Agent overrides the key type's agent mode on this route ("" keeps it; "none",
	// "optional", "required").
	Agent string `yaml:"agent"`
	// DenyMessage replaces the message of the 403s that mean "this caller may not do this
	// here" on this route: scope and credential denials ("Agent tokens cannot create agents").
	// Session, agent and suspended denials keep their own messages.
	DenyMessage string `yaml:"deny_message"`
}

// ErrorSpec renders one status.
type ErrorSpec struct {
	// Status is 401, 402, 403, 429 or 503.
	Status int `yaml:"status"`
	// Message is the default message; Messages overrides it per reason, for reasons rendered
	// with this status ("missing", "invalid", "expired", "revoked" → 401; "scope", "session",
	// "agent", "credential", "path", "suspended" → 403; "budget" → 402; "rate_limited" → 429;
	// "unavailable" → 503). Without either, latchkey's default message for the reason is used.
	Message  string            `yaml:"message"`
	Messages map[string]string `yaml:"messages"`
	// Body is a JSON template; {{message}} is replaced by the message, JSON-string-escaped
	// (without quotes), {{status}} by the status code, {{reason}} by the reason name. It must
	// be valid JSON once substituted. Empty means {"error":"{{reason}}","message":"{{message}}"}.
	Body string `yaml:"body"`
	// Headers are added to the response (Content-Type defaults to application/json; a
	// WWW-Authenticate here replaces the Challenge's).
	Headers []Header `yaml:"headers"`
}

// Header is a name and value.
type Header struct {
	Name  string `yaml:"name"`
	Value string `yaml:"value"`
}

// Identity names the headers injected upstream on allow. Empty names are not injected.
type Identity struct {
	Org     string `yaml:"org"`
	KeyID   string `yaml:"key_id"`
	KeyType string `yaml:"key_type"`
	Scopes  string `yaml:"scopes"`
	Agent   string `yaml:"agent"`
	Session string `yaml:"session"`
	// Credential names the header carrying "key" or "token".
	Credential string `yaml:"credential"`
}
