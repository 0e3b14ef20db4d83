// Package profiles holds latchkey's policy profiles for the five platforms of CONTRACTS.md
// (one <name>.yaml each) and their conformance cases (<name>.cases.yaml): requests with the
// exact status, headers and body each platform documents, run against a fixture of orgs,
// keys and client tokens by every host.
package profiles

import (
	"bytes"
	"embed"
	"errors"
	"io"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/latchkeyhq/latchkey/controlplane/policyfile"
	"github.com/latchkeyhq/latchkey/shared/policy"
)

//go:embed *.yaml
var files embed.FS

const casesSuffix = ".cases.yaml"

// CaseFile is one profile's conformance cases.
type CaseFile struct {
	// Profile is the policy file's base name ("agenttasks" for agenttasks.yaml).
	Profile string  `yaml:"profile"`
	Fixture Fixture `yaml:"fixture"`
	Cases   []Case  `yaml:"cases"`
}

// Fixture is the state a runner builds a snapshot from.
type Fixture struct {
	// Now is the clock (Unix seconds) for every case; snapshots are issued at Now.
	Now    int64          `yaml:"now"`
	Orgs   []FixtureOrg   `yaml:"orgs"`
	Keys   []FixtureKey   `yaml:"keys"`
	Tokens []FixtureToken `yaml:"tokens"`
}

// Org states a fixture may use.
const (
	OrgActive          = "active"
	OrgBudgetExhausted = "budget_exhausted"
	OrgSuspended       = "suspended"
)

// FixtureOrg is an org and its state: "active", "budget_exhausted" (402) or "suspended" (403).
type FixtureOrg struct {
	ID    string `yaml:"id"`
	State string `yaml:"state"`
}

// FixtureKey is an API key the runner generates (apikey.Spec.Generate for the type) and
// publishes; cases refer to its text as {{key.<name>}}.
type FixtureKey struct {
	Name string `yaml:"name"`
	// Type names a key type of the profile.
	Type string `yaml:"type"`
	Org  string `yaml:"org"`
	// Scopes are scope names of the profile, or "*".
	Scopes []string `yaml:"scopes"`
	// Agents are the agent ids the key may act for.
	Agents []string `yaml:"agents"`
	// Revoked keys are generated but left out of the snapshot.
	Revoked bool `yaml:"revoked"`
	// ExpiresIn sets the key's expiry to Now+ExpiresIn; 0 means the key never expires, a
	// negative value gives a key that has already expired.
	ExpiresIn int64 `yaml:"expires_in"`
}

// FixtureToken is a client token the runner mints with the realm's signing key; cases refer
// to it as {{token.<name>}}.
type FixtureToken struct {
	Name string `yaml:"name"`
	// Key names the FixtureKey that mints the token (its id goes into key_id, its org into org).
	Key string `yaml:"key"`
	// Session is the token's sub.
	Session string   `yaml:"session"`
	Scopes  []string `yaml:"scopes"`
	// TTL is seconds from issue to expiry; IssuedAgo moves the issue time back from Now.
	TTL       int64 `yaml:"ttl"`
	IssuedAgo int64 `yaml:"issued_ago"`
	// Revoke is "" (not revoked), "session" (the token's session is revoked in the snapshot)
	// or "jti" (the token's id is).
	Revoke string `yaml:"revoke"`
}

// Case is one request and what must come back.
type Case struct {
	Name    string  `yaml:"name"`
	Request Request `yaml:"request"`
	Expect  Expect  `yaml:"expect"`
}

// Request is what a client sends. Strings may hold {{key.<name>}} and {{token.<name>}}.
type Request struct {
	Method string `yaml:"method"`
	// Path is the raw request path, without a query string.
	Path    string            `yaml:"path"`
	Headers map[string]string `yaml:"headers"`
	// QueryToken is the value of the policy's query credential parameter (?token=), if any.
	QueryToken string `yaml:"query_token"`
}

// Expect is the outcome. Empty fields are not checked.
type Expect struct {
	// Status is 200 for an allowed request, else the denial's status.
	Status int `yaml:"status"`
	// Reason is the denial's reason name ("missing", "scope", ...).
	Reason string `yaml:"reason"`
	// Route is the name of the route the request matches.
	Route string `yaml:"route"`
	// Body is the exact response body of a denial.
	Body string `yaml:"body"`
	// Headers must be present in the denial with exactly these values (names case-insensitive);
	// other headers may be present too.
	Headers map[string]string `yaml:"headers"`
	// Identity is checked on allow.
	Identity *Identity `yaml:"identity"`
}

// Identity is a subset of the identity of an allowed request.
type Identity struct {
	Org string `yaml:"org"`
	// KeyType is the key type's label as the identity header carries it.
	KeyType string `yaml:"key_type"`
	// Key names the FixtureKey whose id the decision must carry (for a token: the minting key).
	Key string `yaml:"key"`
	// Scopes are the effective scopes, space separated, in dictionary order ("*" for all).
	Scopes     string `yaml:"scopes"`
	Agent      string `yaml:"agent"`
	Session    string `yaml:"session"`
	Credential string `yaml:"credential"` // "key" or "token"
}

// Names returns the profile names, sorted.
func Names() []string {
	entries, _ := files.ReadDir(".")
	var out []string
	for _, e := range entries {
		n := e.Name()
		if strings.HasSuffix(n, ".yaml") && !strings.HasSuffix(n, casesSuffix) {
			out = append(out, strings.TrimSuffix(n, ".yaml"))
		}
	}
	sort.Strings(out)
	return out
}

// Policy parses and validates the named profile.
func Policy(name string) (*policy.Policy, error) {
	data, err := files.ReadFile(name + ".yaml")
	if err != nil {
		return nil, err
	}
	p, err := policyfile.Parse(data)
	if err != nil {
		return nil, errors.New(name + ".yaml: " + err.Error())
	}
	return p, nil
}

// Cases parses the named profile's case file strictly and checks it against the profile:
// every key type, org, scope, key and token it names exists, every placeholder resolves,
// statuses and reasons are ones latchkey produces.
func Cases(name string) (*CaseFile, error) {
	data, err := files.ReadFile(name + casesSuffix)
	if err != nil {
		return nil, err
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var cf CaseFile
	if err := dec.Decode(&cf); err != nil {
		return nil, errors.New(name + casesSuffix + ": " + err.Error())
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err != io.EOF {
		return nil, errors.New(name + casesSuffix + ": more than one YAML document")
	}
	p, err := Policy(name)
	if err != nil {
		return nil, err
	}
	if err := cf.check(name, p); err != nil {
		return nil, errors.New(name + casesSuffix + ": " + err.Error())
	}
	return &cf, nil
}

func (cf *CaseFile) check(name string, p *policy.Policy) error {
	var errs []error
	bad := func(where, msg string) { errs = append(errs, errors.New(where+": "+msg)) }
	if cf.Profile != name {
		bad("profile", strconv.Quote(cf.Profile)+" is not "+strconv.Quote(name))
	}
	if cf.Fixture.Now <= 0 {
		bad("fixture.now", "must be set")
	}
	scopes := map[string]bool{"*": true}
	for _, s := range p.Scopes {
		scopes[s] = true
	}
	types := map[string]bool{}
	for _, kt := range p.KeyTypes {
		types[kt.Name] = true
	}
	orgs := map[string]bool{}
	for i, o := range cf.Fixture.Orgs {
		w := "fixture.orgs[" + strconv.Itoa(i) + "]"
		if o.ID == "" || orgs[o.ID] {
			bad(w+".id", "empty or duplicate")
		}
		orgs[o.ID] = true
		switch o.State {
		case OrgActive, OrgBudgetExhausted, OrgSuspended:
		default:
			bad(w+".state", strconv.Quote(o.State)+" is not active, budget_exhausted or suspended")
		}
	}
	keys := map[string]bool{}
	for i, k := range cf.Fixture.Keys {
		w := "fixture.keys[" + strconv.Itoa(i) + "]"
		if k.Name == "" || keys[k.Name] {
			bad(w+".name", "empty or duplicate")
		}
		keys[k.Name] = true
		if !types[k.Type] {
			bad(w+".type", "unknown key type "+strconv.Quote(k.Type))
		}
		if !orgs[k.Org] {
			bad(w+".org", "unknown org "+strconv.Quote(k.Org))
		}
		for _, s := range k.Scopes {
			if !scopes[s] {
				bad(w+".scopes", "unknown scope "+strconv.Quote(s))
			}
		}
	}
	tokens := map[string]bool{}
	for i, t := range cf.Fixture.Tokens {
		w := "fixture.tokens[" + strconv.Itoa(i) + "]"
		if p.Tokens == nil {
			bad(w, "the profile accepts no client tokens")
		}
		if t.Name == "" || tokens[t.Name] {
			bad(w+".name", "empty or duplicate")
		}
		tokens[t.Name] = true
		if !keys[t.Key] {
			bad(w+".key", "unknown key "+strconv.Quote(t.Key))
		}
		if t.Session == "" || t.TTL <= 0 || t.IssuedAgo < 0 {
			bad(w, "needs a session, a positive ttl and a non-negative issued_ago")
		}
		for _, s := range t.Scopes {
			if !scopes[s] {
				bad(w+".scopes", "unknown scope "+strconv.Quote(s))
			}
		}
		switch t.Revoke {
		case "", "session", "jti":
		default:
			bad(w+".revoke", strconv.Quote(t.Revoke)+" is not session or jti")
		}
	}
	lookup := func(kind, n string) (string, bool) {
		switch kind {
		case "key":
			return n, keys[n]
		case "token":
			return n, tokens[n]
		}
		return "", false
	}
	names := map[string]bool{}
	for i, c := range cf.Cases {
		w := "cases[" + strconv.Itoa(i) + "] (" + c.Name + ")"
		if c.Name == "" || names[c.Name] {
			bad(w, "empty or duplicate name")
		}
		names[c.Name] = true
		if c.Request.Method == "" || c.Request.Path == "" {
			bad(w, "request needs a method and a path")
		}
		for _, s := range append([]string{c.Request.Path, c.Request.QueryToken}, mapValues(c.Request.Headers)...) {
			if _, err := Expand(s, lookup); err != nil {
				bad(w, err.Error())
			}
		}
		switch c.Expect.Status {
		case 200:
			if c.Expect.Reason != "" || c.Expect.Body != "" {
				bad(w, "an allowed request has no reason or body")
			}
		case 401, 402, 403, 429, 503:
			if c.Expect.Identity != nil {
				bad(w, "a denied request has no identity")
			}
		default:
			bad(w+".expect.status", strconv.Itoa(c.Expect.Status)+" is not 200, 401, 402, 403, 429 or 503")
		}
		if c.Expect.Reason != "" {
			r, ok := policy.ParseReason(c.Expect.Reason)
			if !ok {
				bad(w+".expect.reason", "unknown reason "+strconv.Quote(c.Expect.Reason))
			} else if r.Status() != c.Expect.Status {
				bad(w+".expect.reason", c.Expect.Reason+" renders with status "+strconv.Itoa(r.Status()))
			}
		}
		if id := c.Expect.Identity; id != nil && id.Key != "" && !keys[id.Key] {
			bad(w+".expect.identity.key", "unknown key "+strconv.Quote(id.Key))
		}
	}
	return errors.Join(errs...)
}

func mapValues(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// Expand replaces every {{key.<name>}} and {{token.<name>}} in s with lookup(kind, name). An
// unknown placeholder or a name lookup does not know is an error.
func Expand(s string, lookup func(kind, name string) (string, bool)) (string, error) {
	var b strings.Builder
	for {
		i := strings.Index(s, "{{")
		if i < 0 {
			b.WriteString(s)
			return b.String(), nil
		}
		b.WriteString(s[:i])
		j := strings.Index(s[i:], "}}")
		if j < 0 {
			return "", errors.New("unterminated placeholder in " + strconv.Quote(s))
		}
		ph := s[i+2 : i+j]
		kind, n, ok := strings.Cut(ph, ".")
		if !ok || (kind != "key" && kind != "token") {
			return "", errors.New("unknown placeholder {{" + ph + "}}")
		}
		v, found := lookup(kind, n)
		if !found {
			return "", errors.New("{{" + ph + "}} names no fixture " + kind)
		}
		b.WriteString(v)
		s = s[i+j+2:]
	}
}
