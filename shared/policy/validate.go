package policy

import (
	"errors"
	"math"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/latchkeyhq/latchkey/shared/apikey"
	"github.com/latchkeyhq/latchkey/shared/limits"
)

// ErrInvalid is matched (errors.Is) by every problem Validate reports.
var ErrInvalid = errors.New("policy: invalid policy")

// FieldError is one problem with a policy, naming the field in the YAML spelling:
// `routes[3].path`, `errors[0].messages.scope`, `tokens.max_ttl_seconds`.
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

// Unwrap lets errors.Is(err, ErrInvalid) recognise any validation failure.
func (e *FieldError) Unwrap() error { return ErrInvalid }

// Validate reports every problem with p, each as a *FieldError, joined with errors.Join.
// A valid policy encodes, decodes and compiles.
func (p *Policy) Validate() error {
	v := &validator{}
	v.policy(p)
	return errors.Join(v.errs...)
}

type validator struct {
	errs []error
	// scopes maps each declared scope to its bit.
	scopes map[string]int
	// rates maps each rate class name to its index.
	rates map[string]int
	// headers are the lower-case request header names the policy reads (credential sources,
	// agent header); identity headers may not reuse them, since they are stripped.
	headers   map[string]string
	hasQuery  bool
	hasTokens bool
	agentHdr  bool
}

func (v *validator) add(field, msg string) {
	v.errs = append(v.errs, &FieldError{Field: field, Msg: msg})
}

func idx(field string, i int) string { return field + "[" + strconv.Itoa(i) + "]" }

func q(s string) string { return strconv.Quote(s) }

func (v *validator) policy(p *Policy) {
	switch {
	case p.Realm == "":
		v.add("realm", "is required")
	case len(p.Realm) > limits.MaxIDBytes:
		v.add("realm", "is longer than "+strconv.Itoa(limits.MaxIDBytes)+" bytes")
	case !allBytes(p.Realm, isRealmByte):
		v.add("realm", q(p.Realm)+" may only contain A-Z a-z 0-9 . _ -")
	}
	v.scopeDict(p.Scopes)
	v.credentials(p.Credentials)
	v.rateClasses(p.RateClasses)
	v.keyTypes(p.KeyTypes)
	v.tokens(p.Tokens)
	if p.AgentHeader != "" {
		v.agentHdr = true
		if v.headerName("agent_header", p.AgentHeader) {
			l := strings.ToLower(p.AgentHeader)
			if prev, dup := v.headers[l]; dup || l == "authorization" {
				if !dup {
					prev = "the bearer source"
				}
				v.add("agent_header", q(p.AgentHeader)+" is also "+prev)
			} else {
				v.headers[l] = "agent_header"
			}
		}
	}
	v.routes(p.Routes)
	if p.Unmatched != nil {
		v.unmatched(p.Unmatched)
	}
	switch p.Challenge {
	case "", "bearer", "none":
	default:
		v.add("challenge", q(p.Challenge)+` is not one of "bearer", "none"`)
	}
	v.errorSpecs(p.Errors)
	v.identity(&p.Identity)
}

func (v *validator) scopeDict(scopes []string) {
	v.scopes = make(map[string]int, len(scopes))
	if len(scopes) > limits.MaxScopes {
		v.add("scopes", "has "+strconv.Itoa(len(scopes))+" entries; at most "+strconv.Itoa(limits.MaxScopes)+" scopes fit a key's mask")
	}
	for i, s := range scopes {
		f := idx("scopes", i)
		switch {
		case s == "*":
			v.add(f, `"*" is implicit (every scope) and may not be listed`)
			continue
		case s == "":
			v.add(f, "is empty")
			continue
		case len(s) > limits.MaxScopeBytes:
			v.add(f, "is longer than "+strconv.Itoa(limits.MaxScopeBytes)+" bytes")
			continue
		case strings.IndexByte(s, '*') >= 0:
			v.add(f, q(s)+` contains "*", which is reserved`)
			continue
		case !allBytes(s, isScopeByte):
			v.add(f, q(s)+" may only contain printable ASCII other than space, '\"' and '\\' (RFC 6749 scope-token)")
			continue
		}
		if j, dup := v.scopes[s]; dup {
			v.add(f, q(s)+" is also scopes["+strconv.Itoa(j)+"]")
			continue
		}
		v.scopes[s] = i
	}
}

// scopeRefs checks a list of scope names referring to the dictionary. allowStar says whether
// "*" may appear.
func (v *validator) scopeRefs(field string, refs []string, allowStar bool) {
	seen := make(map[string]int, len(refs))
	for i, s := range refs {
		f := idx(field, i)
		if j, dup := seen[s]; dup {
			v.add(f, q(s)+" is also "+idx(field, j))
			continue
		}
		seen[s] = i
		if s == "*" {
			if !allowStar {
				v.add(f, `"*" is not allowed here`)
			}
			continue
		}
		if _, ok := v.scopes[s]; !ok {
			v.add(f, "unknown scope "+q(s)+" (not in scopes)")
		}
	}
}

func (v *validator) credentials(srcs []Source) {
	v.headers = map[string]string{}
	if len(srcs) == 0 {
		v.add("credentials", "is empty: name at least one source (bearer, header or query)")
	}
	if len(srcs) > limits.MaxCredentialSources {
		v.add("credentials", "has more than "+strconv.Itoa(limits.MaxCredentialSources)+" sources")
	}
	bearer := -1
	query := -1
	for i, s := range srcs {
		f := idx("credentials", i)
		switch s.In {
		case "bearer":
			if s.Name != "" {
				v.add(f+".name", "must be empty: bearer reads the Authorization header")
			}
			if bearer >= 0 {
				v.add(f+".in", "bearer is also "+idx("credentials", bearer))
			}
			bearer = i
		case "header":
			if !v.headerName(f+".name", s.Name) {
				continue
			}
			if strings.EqualFold(s.Name, "authorization") {
				v.add(f+".name", `use in: bearer for the Authorization header`)
				continue
			}
			l := strings.ToLower(s.Name)
			if prev, dup := v.headers[l]; dup {
				v.add(f+".name", q(s.Name)+" is also "+prev)
				continue
			}
			v.headers[l] = f + ".name"
		case "query":
			if s.Name == "" {
				v.add(f+".name", "is required: the query parameter that carries the token")
			} else if len(s.Name) > limits.MaxIDBytes || !allBytes(s.Name, isUnreservedByte) {
				v.add(f+".name", q(s.Name)+" is not a valid query parameter name (A-Z a-z 0-9 - . _ ~)")
			}
			if query >= 0 {
				v.add(f+".in", "only one query source is allowed; "+idx("credentials", query)+" is one")
			}
			query = i
			v.hasQuery = true
		default:
			v.add(f+".in", q(s.In)+` is not one of "bearer", "header", "query"`)
		}
	}
}

// headerName checks an HTTP header field name (RFC 9110 token).
func (v *validator) headerName(field, name string) bool {
	switch {
	case name == "":
		v.add(field, "is required")
	case len(name) > limits.MaxIDBytes:
		v.add(field, "is longer than "+strconv.Itoa(limits.MaxIDBytes)+" bytes")
	case !allBytes(name, isTokenByte):
		v.add(field, q(name)+" is not a valid HTTP header name")
	default:
		return true
	}
	return false
}

func (v *validator) rateClasses(rcs []RateClass) {
	v.rates = make(map[string]int, len(rcs))
	if len(rcs) > limits.MaxKeyTypes {
		v.add("rate_classes", "has more than "+strconv.Itoa(limits.MaxKeyTypes)+" entries")
	}
	for i, rc := range rcs {
		f := idx("rate_classes", i)
		if v.name(f+".name", rc.Name) {
			if j, dup := v.rates[rc.Name]; dup {
				v.add(f+".name", q(rc.Name)+" is also rate_classes["+strconv.Itoa(j)+"]")
			} else {
				v.rates[rc.Name] = i
			}
		}
		if !(rc.PerSecond > 0 && rc.PerSecond <= limits.MaxRatePerSecond) || math.IsNaN(rc.PerSecond) {
			v.add(f+".per_second", "must be greater than 0 and at most "+strconv.Itoa(limits.MaxRatePerSecond))
		}
		if rc.Burst < 1 || rc.Burst > limits.MaxRateBurst {
			v.add(f+".burst", strconv.Itoa(rc.Burst)+" is not in 1.."+strconv.Itoa(limits.MaxRateBurst))
		}
	}
}

// name checks an identifier (key type, rate class).
func (v *validator) name(field, s string) bool {
	switch {
	case s == "":
		v.add(field, "is required")
	case len(s) > limits.MaxIDBytes:
		v.add(field, "is longer than "+strconv.Itoa(limits.MaxIDBytes)+" bytes")
	case !allBytes(s, isNameByte):
		v.add(field, q(s)+" may only contain A-Z a-z 0-9 . _ : -")
	default:
		return true
	}
	return false
}

func (v *validator) rateRef(field, name string) {
	if name == "" {
		return
	}
	if _, ok := v.rates[name]; !ok {
		v.add(field, "unknown rate class "+q(name)+" (not in rate_classes)")
	}
}

func (v *validator) keyTypes(kts []KeyType) {
	if len(kts) > limits.MaxKeyTypes {
		v.add("key_types", "has more than "+strconv.Itoa(limits.MaxKeyTypes)+" entries")
	}
	names := map[string]int{}
	prefixes := map[string]int{}
	for i, kt := range kts {
		f := idx("key_types", i)
		if v.name(f+".name", kt.Name) {
			if j, dup := names[kt.Name]; dup {
				v.add(f+".name", q(kt.Name)+" is also key_types["+strconv.Itoa(j)+"]")
			} else {
				names[kt.Name] = i
			}
		}
		format := apikey.FormatBase62CRC32
		if kt.Format != "" {
			fm, err := apikey.ParseFormat(kt.Format)
			if err != nil {
				v.add(f+".format", q(kt.Format)+` is not one of "base62crc32", "hex64", "opaque"`)
			} else {
				format = fm
			}
		}
		if err := (apikey.Spec{Prefix: kt.Prefix, Format: format}).Validate(); err != nil {
			v.add(f+".prefix", q(kt.Prefix)+": "+err.Error())
		} else if strings.HasPrefix(kt.Prefix, "eyJ") || strings.HasPrefix("eyJ", kt.Prefix) {
			// Every JWT starts with "eyJ" (base64url of `{"`): such a prefix would claim every
			// client token as a malformed API key.
			v.add(f+".prefix", q(kt.Prefix)+" would match every client token (JWTs start with \"eyJ\")")
		} else if j, dup := prefixes[kt.Prefix]; dup {
			v.add(f+".prefix", q(kt.Prefix)+" is also the prefix of key_types["+strconv.Itoa(j)+"]")
		} else {
			prefixes[kt.Prefix] = i
		}
		v.scopeRefs(f+".scope_cap", kt.ScopeCap, true)
		v.scopeRefs(f+".default_scopes", kt.DefaultScopes, true)
		if len(kt.ScopeCap) > 0 && !contains(kt.ScopeCap, "*") {
			for j, s := range kt.DefaultScopes {
				if !contains(kt.ScopeCap, s) {
					v.add(idx(f+".default_scopes", j), q(s)+" is outside the type's scope_cap")
				}
			}
		}
		v.rateRef(f+".rate_class", kt.RateClass)
		if _, ok := parseAgentMode(kt.Agents, AgentNone); !ok {
			v.add(f+".agents", q(kt.Agents)+` is not one of "none", "optional", "required"`)
		}
		if kt.Label != "" {
			if len(kt.Label) > limits.MaxIDBytes || !allBytes(kt.Label, isNameByte) {
				v.add(f+".label", q(kt.Label)+" may only contain A-Z a-z 0-9 . _ : - (at most "+strconv.Itoa(limits.MaxIDBytes)+" bytes)")
			}
		}
	}
}

func (v *validator) tokens(t *TokenPolicy) {
	if t == nil {
		return
	}
	v.hasTokens = true
	for _, c := range [...]struct{ f, s string }{{"tokens.issuer", t.Issuer}, {"tokens.audience", t.Audience}} {
		switch {
		case c.s == "":
			v.add(c.f, "is required")
		case len(c.s) > limits.MaxClaimBytes:
			v.add(c.f, "is longer than "+strconv.Itoa(limits.MaxClaimBytes)+" bytes")
		case !allBytes(c.s, isVisibleByte):
			v.add(c.f, q(c.s)+" may only contain printable ASCII other than space")
		}
	}
	v.scopeRefs("tokens.scopes", t.Scopes, true)
	if t.MaxTTLSeconds != 0 && (t.MaxTTLSeconds < 1 || t.MaxTTLSeconds > limits.MaxTokenTTLSeconds) {
		v.add("tokens.max_ttl_seconds", strconv.FormatInt(t.MaxTTLSeconds, 10)+" is not in 1.."+strconv.Itoa(limits.MaxTokenTTLSeconds)+" (0 means "+strconv.Itoa(limits.DefaultTokenTTLCapSeconds)+")")
	}
	if t.LeewaySeconds < 0 || t.LeewaySeconds > limits.MaxLeewaySeconds {
		v.add("tokens.leeway_seconds", strconv.FormatInt(t.LeewaySeconds, 10)+" is not in 0.."+strconv.Itoa(limits.MaxLeewaySeconds)+" (0 means "+strconv.Itoa(limits.DefaultLeewaySeconds)+")")
	}
	v.rateRef("tokens.rate_class", t.RateClass)
}

func (v *validator) routes(rs []Route) {
	if len(rs) > limits.MaxRoutes {
		v.add("routes", "has more than "+strconv.Itoa(limits.MaxRoutes)+" routes")
	}
	seen := map[string]int{}
	for i := range rs {
		f := idx("routes", i)
		key, ok := v.route(f, &rs[i], false)
		if !ok {
			continue
		}
		if j, dup := seen[key]; dup {
			v.add(f+".path", "routes["+strconv.Itoa(j)+"] has the same methods and path "+q(rs[i].Path))
			continue
		}
		seen[key] = i
	}
}

func (v *validator) unmatched(r *Route) {
	if r.Path != "" {
		v.add("unmatched.path", "must be empty: unmatched applies to every path no route matches")
	}
	if len(r.Methods) != 0 {
		v.add("unmatched.methods", "must be empty: unmatched applies to every method")
	}
	v.route("unmatched", r, true)
}

// route checks one route and returns its duplicate-detection key (sorted methods and the path
// with parameter names erased); ok is false when the path or methods are invalid.
func (v *validator) route(f string, r *Route, unmatched bool) (key string, ok bool) {
	ok = true
	if len(r.Name) > limits.MaxIDBytes || !allBytes(r.Name, isPrintableByte) {
		v.add(f+".name", "must be printable ASCII, at most "+strconv.Itoa(limits.MaxIDBytes)+" bytes")
	}
	if len(r.Methods) > limits.MaxRouteMethods {
		v.add(f+".methods", "lists more than "+strconv.Itoa(limits.MaxRouteMethods)+" methods")
		ok = false
	}
	methods := make([]string, 0, len(r.Methods))
	for i, m := range r.Methods {
		mf := idx(f+".methods", i)
		if m == "" || len(m) > 32 || !allBytes(m, isMethodByte) {
			v.add(mf, q(m)+" is not an upper-case HTTP method token")
			ok = false
			continue
		}
		if contains(methods, m) {
			v.add(mf, q(m)+" is listed twice")
			ok = false
			continue
		}
		methods = append(methods, m)
	}

	var params []string
	if !unmatched {
		pat, msg := parsePattern(r.Path)
		if msg != "" {
			v.add(f+".path", msg)
			ok = false
		} else {
			params = pat.params
			sort.Strings(methods)
			key = strings.Join(methods, ",") + " " + pat.shape
		}
	}

	if r.Public {
		for _, c := range [...]struct {
			name string
			set  bool
		}{
			{"scopes", len(r.Scopes) > 0}, {"match", r.Match != ""}, {"credentials", len(r.Credentials) > 0},
			{"session", r.Session != ""}, {"query_token", r.QueryToken}, {"agent", r.Agent != ""},
			{"deny_message", r.DenyMessage != ""},
		} {
			if c.set {
				v.add(f+"."+c.name, "has no effect on a public route")
			}
		}
		return key, ok
	}

	v.scopeRefs(f+".scopes", r.Scopes, true)
	if contains(r.Scopes, "*") && len(r.Scopes) > 1 {
		v.add(f+".scopes", `"*" (full access) must be the only scope when listed`)
	}
	switch r.Match {
	case "", "any", "all":
	default:
		v.add(f+".match", q(r.Match)+` is not one of "any", "all"`)
	}
	allowToken := len(r.Credentials) == 0
	if len(r.Credentials) > 2 {
		v.add(f+".credentials", "lists more than key and token")
	}
	for i, c := range r.Credentials {
		cf := idx(f+".credentials", i)
		switch {
		case c != "key" && c != "token":
			v.add(cf, q(c)+` is not one of "key", "token"`)
		case contains(r.Credentials[:i], c):
			v.add(cf, q(c)+" is listed twice")
		case c == "token":
			allowToken = true
			if !v.hasTokens {
				v.add(cf, "the realm accepts no client tokens (tokens is not set)")
			}
		}
	}
	if r.Session != "" {
		switch {
		case unmatched:
			v.add(f+".session", "must be empty: unmatched has no path parameters")
		case !contains(params, r.Session) && ok:
			v.add(f+".session", q(r.Session)+" is not a parameter of the path")
		case !allowToken:
			v.add(f+".session", "binds client tokens, but the route does not accept tokens")
		case !v.hasTokens:
			v.add(f+".session", "binds client tokens, but the realm accepts none (tokens is not set)")
		}
	}
	if r.QueryToken && !v.hasQuery {
		v.add(f+".query_token", "no credential source has in: query")
	}
	if _, good := parseAgentMode(r.Agent, AgentInherit); !good {
		v.add(f+".agent", q(r.Agent)+` is not one of "none", "optional", "required"`)
	} else if r.Agent != "" && !v.agentHdr {
		v.add(f+".agent", "agent_header is not set")
	}
	v.message(f+".deny_message", r.DenyMessage)
	return key, ok
}

func (v *validator) message(field, s string) {
	switch {
	case len(s) > limits.MaxErrorBodyBytes:
		v.add(field, "is longer than "+strconv.Itoa(limits.MaxErrorBodyBytes)+" bytes")
	case !utf8.ValidString(s):
		v.add(field, "is not valid UTF-8")
	}
}

func (v *validator) errorSpecs(specs []ErrorSpec) {
	seen := map[int]int{}
	for i := range specs {
		s := &specs[i]
		f := idx("errors", i)
		known := false
		for _, st := range renderedStatuses {
			known = known || st == s.Status
		}
		if !known {
			v.add(f+".status", strconv.Itoa(s.Status)+" is not one of 401, 402, 403, 429, 503")
		} else if j, dup := seen[s.Status]; dup {
			v.add(f+".status", strconv.Itoa(s.Status)+" is also errors["+strconv.Itoa(j)+"]")
		} else {
			seen[s.Status] = i
		}
		v.message(f+".message", s.Message)
		keys := make([]string, 0, len(s.Messages))
		for k := range s.Messages {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			mf := f + ".messages." + k
			r, ok := ParseReason(k)
			switch {
			case !ok:
				v.add(mf, q(k)+" is not a reason (missing, invalid, expired, revoked, scope, session, agent, credential, path, budget, suspended, rate_limited, unavailable)")
			case known && r.Status() != s.Status:
				v.add(mf, "reason "+k+" renders with status "+strconv.Itoa(r.Status())+", not "+strconv.Itoa(s.Status))
			}
			if s.Messages[k] == "" {
				v.add(mf, "is empty (leave the reason out to use the status's message)")
			}
			v.message(mf, s.Messages[k])
		}
		if len(s.Body) > limits.MaxErrorBodyBytes {
			v.add(f+".body", "is longer than "+strconv.Itoa(limits.MaxErrorBodyBytes)+" bytes")
		} else if s.Body != "" && known {
			if msg := checkTemplate(s.Body, s.Status); msg != "" {
				v.add(f+".body", msg)
			}
		}
		if len(s.Headers) > limits.MaxErrorHeaders {
			v.add(f+".headers", "has more than "+strconv.Itoa(limits.MaxErrorHeaders)+" headers")
		}
		for j, h := range s.Headers {
			hf := idx(f+".headers", j)
			if v.headerName(hf+".name", h.Name) {
				for k := 0; k < j; k++ {
					if strings.EqualFold(s.Headers[k].Name, h.Name) {
						v.add(hf+".name", q(h.Name)+" is also "+idx(f+".headers", k))
						break
					}
				}
			}
			if len(h.Value) > limits.MaxHeaderValueBytes || !allBytes(h.Value, isHeaderValueByte) {
				v.add(hf+".value", "must be printable ASCII (space and tab allowed), at most "+strconv.Itoa(limits.MaxHeaderValueBytes)+" bytes")
			}
		}
	}
}

func (v *validator) identity(id *Identity) {
	used := map[string]string{}
	for _, c := range id.fields() {
		if c.value == "" {
			continue
		}
		f := "identity." + c.name
		if !v.headerName(f, c.value) {
			continue
		}
		l := strings.ToLower(c.value)
		if l == "authorization" {
			v.add(f, "may not be Authorization: identity headers are stripped from every request")
			continue
		}
		if prev, ok := v.headers[l]; ok {
			v.add(f, q(c.value)+" is also "+prev+": identity headers are stripped from every request")
			continue
		}
		if prev, ok := used[l]; ok {
			v.add(f, q(c.value)+" is also "+prev)
			continue
		}
		used[l] = f
	}
}

type identityField struct{ name, value string }

// fields lists the identity header fields in encoding order.
func (id *Identity) fields() [7]identityField {
	return [7]identityField{
		{"org", id.Org}, {"key_id", id.KeyID}, {"key_type", id.KeyType}, {"scopes", id.Scopes},
		{"agent", id.Agent}, {"session", id.Session}, {"credential", id.Credential},
	}
}

// pattern is a parsed route path.
type pattern struct {
	segs   []patSeg
	params []string
	// shape is the path with parameter names erased, for duplicate detection.
	shape string
}

type segKind uint8

const (
	segLiteral segKind = iota
	segParam
	segWild
)

type patSeg struct {
	kind segKind
	text string // literal text or parameter name
}

// parsePattern parses a route path; msg says what is wrong, or is "".
func parsePattern(path string) (p pattern, msg string) {
	switch {
	case path == "":
		return p, "is required"
	case path[0] != '/':
		return p, q(path) + ` must start with "/"`
	case len(path) > limits.MaxRequestPathBytes:
		return p, "is longer than " + strconv.Itoa(limits.MaxRequestPathBytes) + " bytes"
	}
	if path == "/" {
		p.shape = "/"
		return p, ""
	}
	parts := strings.Split(path[1:], "/")
	if len(parts) > limits.MaxPathSegments {
		return p, "has more than " + strconv.Itoa(limits.MaxPathSegments) + " segments"
	}
	var shape strings.Builder
	for i, s := range parts {
		last := i == len(parts)-1
		switch {
		case s == "" && last:
			return p, `ends with "/": a request's trailing slash is ignored when matching, so write ` + q(strings.TrimSuffix(path, "/"))
		case s == "":
			return p, `has an empty segment ("//")`
		case s == "*":
			if !last {
				return p, `"*" must be the last segment`
			}
			p.segs = append(p.segs, patSeg{kind: segWild})
			shape.WriteString("/*")
		case s[0] == '{' || s[len(s)-1] == '}' || strings.ContainsAny(s, "{}"):
			name := ""
			if len(s) >= 3 && s[0] == '{' && s[len(s)-1] == '}' {
				name = s[1 : len(s)-1]
			}
			if !isParamName(name) {
				return p, "segment " + q(s) + " is not a valid parameter (want {name}, name of A-Z a-z 0-9 _ starting with a letter or _)"
			}
			if contains(p.params, name) {
				return p, "parameter " + q(name) + " appears twice"
			}
			p.params = append(p.params, name)
			p.segs = append(p.segs, patSeg{kind: segParam, text: name})
			shape.WriteString("/{}")
		case s == "." || s == "..":
			return p, "segment " + q(s) + " is a dot segment"
		case strings.IndexByte(s, '*') >= 0:
			return p, "segment " + q(s) + `: "*" is only allowed as a whole final segment`
		case strings.IndexByte(s, '%') >= 0:
			return p, "segment " + q(s) + ": write literal segments decoded (requests are matched after percent-decoding)"
		case !utf8.ValidString(s) || !allBytes(s, isLiteralByte):
			return p, "segment " + q(s) + " contains a character that is not allowed in a path segment"
		default:
			p.segs = append(p.segs, patSeg{kind: segLiteral, text: s})
			shape.WriteString("/")
			shape.WriteString(s)
		}
	}
	p.shape = shape.String()
	return p, ""
}

func isParamName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'):
		case c >= '0' && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func allBytes(s string, ok func(byte) bool) bool {
	for i := 0; i < len(s); i++ {
		if !ok(s[i]) {
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
}

func isRealmByte(c byte) bool { return isAlnum(c) || c == '.' || c == '_' || c == '-' }

func isNameByte(c byte) bool { return isRealmByte(c) || c == ':' }

func isUnreservedByte(c byte) bool { return isRealmByte(c) || c == '~' }

// isScopeByte is RFC 6749's scope-token: %x21 / %x23-5B / %x5D-7E.
func isScopeByte(c byte) bool { return c >= 0x21 && c <= 0x7e && c != '"' && c != '\\' }

// isTokenByte is RFC 9110's tchar.
func isTokenByte(c byte) bool {
	if isAlnum(c) {
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

func isMethodByte(c byte) bool { return isTokenByte(c) && !(c >= 'a' && c <= 'z') }

func isVisibleByte(c byte) bool { return c >= 0x21 && c <= 0x7e }

func isPrintableByte(c byte) bool { return c >= 0x20 && c <= 0x7e }

func isHeaderValueByte(c byte) bool { return isPrintableByte(c) || c == '\t' }

// isLiteralByte is what a literal pattern segment may hold: RFC 3986 pchar without
// percent-encoding, without ';' (requests holding it are refused) and '*' (wildcard), plus
// UTF-8 (non-ASCII bytes; validity is checked separately).
func isLiteralByte(c byte) bool {
	if isUnreservedByte(c) || c >= 0x80 {
		return true
	}
	return strings.IndexByte("!$&'()+,=:@", c) >= 0
}
