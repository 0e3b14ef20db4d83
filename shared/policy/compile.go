package policy

import (
	"errors"
	"sort"
	"strconv"
	"strings"

	"github.com/latchkeyhq/latchkey/shared/apikey"
	"github.com/latchkeyhq/latchkey/shared/internal/bytestr"
	"github.com/latchkeyhq/latchkey/shared/limits"
)

// AllScopes is the mask of the "*" scope: every scope, present and future.
const AllScopes = ^uint64(0)

// AgentMode says whether a credential may, or must, name the agent it acts for.
type AgentMode uint8

const (
	// AgentInherit (routes only): use the key type's mode.
	AgentInherit AgentMode = iota
	// AgentNone: the agent header must be absent.
	AgentNone
	// AgentOptional: the agent header, when present, must name one of the key's agents.
	AgentOptional
	// AgentRequired: the agent header must be present and name one of the key's agents.
	AgentRequired
)

// parseAgentMode maps the source spelling; "" is empty (the field's default).
func parseAgentMode(s string, empty AgentMode) (AgentMode, bool) {
	switch s {
	case "":
		return empty, true
	case "none":
		return AgentNone, true
	case "optional":
		return AgentOptional, true
	case "required":
		return AgentRequired, true
	}
	return 0, false
}

// ErrUnknownScope is matched (errors.Is) by ScopeMask's error for a name not in the realm's
// scope dictionary.
var ErrUnknownScope = errors.New("policy: unknown scope")

type unknownScopeError struct{ name string }

func (e *unknownScopeError) Error() string { return "policy: unknown scope " + strconv.Quote(e.name) }
func (e *unknownScopeError) Unwrap() error { return ErrUnknownScope }

// Compiled is a policy in the form the decision function reads per request: every lookup is
// precomputed and allocation-free. It is immutable and safe for concurrent use.
type Compiled struct {
	realm       string
	sources     []Source
	queryParam  string
	agentHeader string
	identity    CompiledIdentity

	scopes []string // bit i is scopes[i]
	// sortedScopes and sortedBits are the dictionary sorted by name, for lookups by name.
	sortedScopes []string
	sortedBits   []uint8

	keyTypes []CompiledKeyType
	matcher  apikey.Matcher
	rates    []CompiledRateClass
	tokens   *CompiledTokens

	routes    []CompiledRoute
	unmatched CompiledRoute
	nodes     []node

	errs [numReasons]*Response
}

// CompiledKeyType is a key type with its scope names resolved to masks.
type CompiledKeyType struct {
	Name string
	// Label is what the identity header carries (the type's Label, or its Name).
	Label      string
	LabelBytes []byte
	Spec       apikey.Spec
	// Cap is the mask a key of this type may never exceed (AllScopes when the type has no cap).
	Cap uint64
	// Default is granted to a key created without scopes.
	Default uint64
	// RateClass is an index for RateClass, or -1 for no rate limit.
	RateClass int
	// Agents is AgentNone, AgentOptional or AgentRequired.
	Agents AgentMode
}

// CompiledRateClass is a token bucket: Burst tokens, refilled at PerSecond.
type CompiledRateClass struct {
	Name      string
	PerSecond float64
	Burst     int
}

// CompiledTokens is the realm's client-token configuration with defaults applied.
type CompiledTokens struct {
	Issuer, Audience string
	// Scopes is the most a client token may carry.
	Scopes uint64
	// MaxTTL and Leeway are seconds.
	MaxTTL, Leeway int64
	// RateClass is an index for RateClass, or -1.
	RateClass int
}

// CompiledIdentity holds the identity header names in lower case; nil means not injected.
type CompiledIdentity struct {
	Org, KeyID, KeyType, Scopes, Agent, Session, Credential []byte
}

// CompiledRoute is a route's requirements, resolved.
type CompiledRoute struct {
	// Name is the route's name, or its path when it has none ("unmatched" for the default
	// unmatched route).
	Name string
	// Path is the source pattern ("" for the unmatched route) and Methods its methods (nil: any).
	Path    string
	Methods []string
	Public  bool
	// Scopes is the required mask; All says every bit is needed (else any one). 0 means any
	// valid credential.
	Scopes uint64
	All    bool
	// AllowKey and AllowToken say which credential kinds the route accepts.
	AllowKey, AllowToken bool
	// SessionParam is the index (Params.Get) of the parameter a client token's session must
	// equal, or -1.
	SessionParam int
	// QueryToken allows the query credential source on this route.
	QueryToken bool
	// Agent overrides the key type's agent mode unless AgentInherit.
	Agent AgentMode

	getOK bool // Methods lists GET, so HEAD matches too
	// deny holds this route's own renderings (DenyMessage) for the reasons it replaces; nil
	// entries fall back to the realm's.
	deny [numReasons]*Response
}

// Error returns the rendered response for r on this route: the route's DenyMessage rendering
// for scope and credential denials when it has one, else the realm's.
func (r *CompiledRoute) Error(c *Compiled, reason Reason) *Response {
	if reason < numReasons {
		if resp := r.deny[reason]; resp != nil {
			return resp
		}
	}
	return c.Error(reason)
}

// allows reports whether the route accepts method. GET implies HEAD, as in most servers
// (net/http, Express): a HEAD request runs the GET handler upstream, so it must be held to
// the GET route's requirements.
func (r *CompiledRoute) allows(method []byte) bool {
	if r.Methods == nil {
		return true
	}
	for _, m := range r.Methods {
		if bytestr.Equal(method, m) {
			return true
		}
	}
	return r.getOK && bytestr.Equal(method, "HEAD")
}

// Compile validates p and compiles it. The result does not refer to p.
func Compile(p *Policy) (*Compiled, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	c := &Compiled{realm: p.Realm}

	c.scopes = append([]string(nil), p.Scopes...)
	c.sortedScopes = append([]string(nil), p.Scopes...)
	sort.Strings(c.sortedScopes)
	c.sortedBits = make([]uint8, len(c.sortedScopes))
	for i, s := range c.sortedScopes {
		for b, t := range c.scopes {
			if t == s {
				c.sortedBits[i] = uint8(b)
			}
		}
	}

	for _, s := range p.Credentials {
		switch s.In {
		case "bearer":
			s.Name = "authorization"
		case "header":
			s.Name = strings.ToLower(s.Name)
		case "query":
			c.queryParam = s.Name
		}
		c.sources = append(c.sources, s)
	}
	c.agentHeader = strings.ToLower(p.AgentHeader)
	c.identity = CompiledIdentity{
		Org: lowerBytes(p.Identity.Org), KeyID: lowerBytes(p.Identity.KeyID), KeyType: lowerBytes(p.Identity.KeyType),
		Scopes: lowerBytes(p.Identity.Scopes), Agent: lowerBytes(p.Identity.Agent), Session: lowerBytes(p.Identity.Session),
		Credential: lowerBytes(p.Identity.Credential),
	}

	rateIndex := func(name string) int {
		for i, rc := range p.RateClasses {
			if rc.Name == name && name != "" {
				return i
			}
		}
		return -1
	}
	for _, rc := range p.RateClasses {
		c.rates = append(c.rates, CompiledRateClass(rc))
	}

	prefixes := make([]string, len(p.KeyTypes))
	for i, kt := range p.KeyTypes {
		format := apikey.FormatBase62CRC32
		if kt.Format != "" {
			format, _ = apikey.ParseFormat(kt.Format)
		}
		label := kt.Label
		if label == "" {
			label = kt.Name
		}
		agents, _ := parseAgentMode(kt.Agents, AgentNone)
		ck := CompiledKeyType{
			Name: kt.Name, Label: label, LabelBytes: []byte(label),
			Spec:      apikey.Spec{Prefix: kt.Prefix, Format: format},
			Cap:       AllScopes,
			Default:   c.mustMask(kt.DefaultScopes),
			RateClass: rateIndex(kt.RateClass),
			Agents:    agents,
		}
		if len(kt.ScopeCap) > 0 {
			ck.Cap = c.mustMask(kt.ScopeCap)
		}
		c.keyTypes = append(c.keyTypes, ck)
		prefixes[i] = kt.Prefix
	}
	c.matcher = apikey.NewMatcher(prefixes)

	if t := p.Tokens; t != nil {
		ct := &CompiledTokens{
			Issuer: t.Issuer, Audience: t.Audience, Scopes: c.mustMask(t.Scopes),
			MaxTTL: t.MaxTTLSeconds, Leeway: t.LeewaySeconds, RateClass: rateIndex(t.RateClass),
		}
		if ct.MaxTTL == 0 {
			ct.MaxTTL = limits.DefaultTokenTTLCapSeconds
		}
		if ct.Leeway == 0 {
			ct.Leeway = limits.DefaultLeewaySeconds
		}
		c.tokens = ct
	}

	rd := newRenderer(p.Realm, p.Challenge != "none", p.Errors)
	for r := ReasonMissing; r < numReasons; r++ {
		c.errs[r] = rd.render(r, rd.message(r))
	}

	c.routes = make([]CompiledRoute, len(p.Routes))
	pats := make([]pattern, len(p.Routes))
	for i := range p.Routes {
		pats[i], _ = parsePattern(p.Routes[i].Path)
		c.compileRoute(&c.routes[i], &p.Routes[i], pats[i].params, rd)
	}
	if p.Unmatched != nil {
		c.compileRoute(&c.unmatched, p.Unmatched, nil, rd)
		if c.unmatched.Name == "" {
			c.unmatched.Name = "unmatched"
		}
	} else {
		c.unmatched = CompiledRoute{Name: "unmatched", AllowKey: true, AllowToken: true, SessionParam: -1}
	}
	c.unmatched.Path, c.unmatched.Methods = "", nil
	c.buildTrie(pats)
	return c, nil
}

func (c *Compiled) compileRoute(cr *CompiledRoute, r *Route, params []string, rd *renderer) {
	*cr = CompiledRoute{
		Name: r.Name, Path: r.Path, Public: r.Public, SessionParam: -1, QueryToken: r.QueryToken,
	}
	if cr.Name == "" {
		cr.Name = r.Path
	}
	if len(r.Methods) > 0 {
		cr.Methods = append([]string(nil), r.Methods...)
		cr.getOK = contains(r.Methods, "GET")
	}
	if r.Public {
		return
	}
	cr.Scopes = c.mustMask(r.Scopes)
	cr.All = r.Match == "all" || cr.Scopes == AllScopes
	cr.AllowKey = len(r.Credentials) == 0 || contains(r.Credentials, "key")
	cr.AllowToken = len(r.Credentials) == 0 || contains(r.Credentials, "token")
	for i, name := range params {
		if name == r.Session && r.Session != "" {
			cr.SessionParam = i
		}
	}
	cr.Agent, _ = parseAgentMode(r.Agent, AgentInherit)
	if r.DenyMessage != "" {
		for _, reason := range denyMessageReasons {
			cr.deny[reason] = rd.render(reason, r.DenyMessage)
		}
	}
}

// mustMask resolves names Validate has already checked.
func (c *Compiled) mustMask(names []string) uint64 {
	m, _ := c.ScopeMask(names)
	return m
}

func lowerBytes(s string) []byte {
	if s == "" {
		return nil
	}
	return []byte(strings.ToLower(s))
}

// Realm returns the realm name.
func (c *Compiled) Realm() string { return c.realm }

// Sources returns the credential sources in order. Header names are lower case (hosts pass
// header names lower-cased); a bearer source's Name is "authorization"; a query source's Name is
// the parameter name as written (query names are case-sensitive).
func (c *Compiled) Sources() []Source { return c.sources }

// QueryParam names the query parameter that may carry a client token, or "".
func (c *Compiled) QueryParam() string { return c.queryParam }

// AgentHeader is the acting-agent header name in lower case, or "".
func (c *Compiled) AgentHeader() string { return c.agentHeader }

// Identity returns the identity header names.
func (c *Compiled) Identity() *CompiledIdentity { return &c.identity }

// Scopes returns the scope dictionary: bit i of a mask is Scopes()[i].
func (c *Compiled) Scopes() []string { return c.scopes }

// NumKeyTypes returns the number of key types.
func (c *Compiled) NumKeyTypes() int { return len(c.keyTypes) }

// KeyType returns key type i (as MatchKeyType and snapshot key records number them), or nil.
func (c *Compiled) KeyType(i int) *CompiledKeyType {
	if i < 0 || i >= len(c.keyTypes) {
		return nil
	}
	return &c.keyTypes[i]
}

// KeyTypeIndex returns the index of the key type named name, or -1.
func (c *Compiled) KeyTypeIndex(name string) int {
	for i := range c.keyTypes {
		if c.keyTypes[i].Name == name {
			return i
		}
	}
	return -1
}

// MatchKeyType returns the index of the key type whose prefix is the longest one key starts
// with, or -1. It does not check the rest of the key (CompiledKeyType.Spec.Check does).
func (c *Compiled) MatchKeyType(key []byte) int { return c.matcher.Match(key) }

// NumRateClasses returns the number of rate classes.
func (c *Compiled) NumRateClasses() int { return len(c.rates) }

// RateClass returns rate class i, or nil.
func (c *Compiled) RateClass(i int) *CompiledRateClass {
	if i < 0 || i >= len(c.rates) {
		return nil
	}
	return &c.rates[i]
}

// Tokens returns the client-token configuration, or nil when the realm accepts no tokens.
func (c *Compiled) Tokens() *CompiledTokens { return c.tokens }

// Unmatched returns the route applied to requests no route matches.
func (c *Compiled) Unmatched() *CompiledRoute { return &c.unmatched }

// Routes returns the compiled routes in declaration order.
func (c *Compiled) Routes() []CompiledRoute { return c.routes }

// Error returns the realm's rendering of r. An unknown reason renders as ReasonUnavailable.
func (c *Compiled) Error(r Reason) *Response {
	if r == 0 || r >= numReasons {
		r = ReasonUnavailable
	}
	return c.errs[r]
}

// ScopeMask returns the mask of names; "*" anywhere gives AllScopes. An unknown name is an
// error matching ErrUnknownScope that names it.
func (c *Compiled) ScopeMask(names []string) (uint64, error) {
	var m uint64
	for _, n := range names {
		if n == "*" {
			m = AllScopes
			continue
		}
		b := c.scopeBit(n)
		if b < 0 {
			return 0, &unknownScopeError{n}
		}
		m |= 1 << uint(b)
	}
	return m, nil
}

// ScopeMaskBytes returns the mask of a space-separated scope list, as a client token's scope
// claim carries it. Unknown names grant nothing; "*" grants everything. It does not allocate.
func (c *Compiled) ScopeMaskBytes(list []byte) uint64 {
	var m uint64
	for len(list) > 0 {
		i := 0
		for i < len(list) && list[i] != ' ' {
			i++
		}
		name := list[:i]
		if i < len(list) {
			list = list[i+1:]
		} else {
			list = nil
		}
		switch {
		case len(name) == 0:
		case len(name) == 1 && name[0] == '*':
			return AllScopes
		default:
			if b := c.scopeBitBytes(name); b >= 0 {
				m |= 1 << uint(b)
			}
		}
	}
	return m
}

// scopeBit returns the bit of scope name, or -1.
func (c *Compiled) scopeBit(name string) int {
	lo, hi := 0, len(c.sortedScopes)
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if c.sortedScopes[mid] < name {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	if lo < len(c.sortedScopes) && c.sortedScopes[lo] == name {
		return int(c.sortedBits[lo])
	}
	return -1
}

// scopeBitBytes is scopeBit for a []byte, which it never converts: TinyGo would allocate.
func (c *Compiled) scopeBitBytes(name []byte) int {
	lo, hi := 0, len(c.sortedScopes)
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		switch cmp := bytestr.Compare(name, c.sortedScopes[mid]); {
		case cmp == 0:
			return int(c.sortedBits[mid])
		case cmp > 0:
			lo = mid + 1
		default:
			hi = mid
		}
	}
	return -1
}

// AppendScopes appends mask's scope names, space separated, in dictionary order, to dst;
// AllScopes appends "*". Bits beyond the dictionary are ignored.
func (c *Compiled) AppendScopes(dst []byte, mask uint64) []byte {
	if mask == AllScopes {
		return append(dst, '*')
	}
	first := true
	for i, s := range c.scopes {
		if mask&(1<<uint(i)) == 0 {
			continue
		}
		if !first {
			dst = append(dst, ' ')
		}
		first = false
		dst = append(dst, s...)
	}
	return dst
}

// ScopeNames returns mask's scope names in dictionary order; AllScopes gives ["*"].
func (c *Compiled) ScopeNames(mask uint64) []string {
	if mask == AllScopes {
		return []string{"*"}
	}
	var out []string
	for i, s := range c.scopes {
		if mask&(1<<uint(i)) != 0 {
			out = append(out, s)
		}
	}
	return out
}
