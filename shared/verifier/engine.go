package verifier

import (
	"bytes"

	"github.com/latchkeyhq/latchkey/shared/apikey"
	"github.com/latchkeyhq/latchkey/shared/hostcrypto"
	"github.com/latchkeyhq/latchkey/shared/internal/bytestr"
	"github.com/latchkeyhq/latchkey/shared/jwt"
	"github.com/latchkeyhq/latchkey/shared/limits"
	"github.com/latchkeyhq/latchkey/shared/policy"
	"github.com/latchkeyhq/latchkey/shared/snapshot"
)

// DefaultTokenCacheSize is the verified-token cache size of an Engine whose Options say nothing.
const DefaultTokenCacheSize = 4096

// Engine decides requests. It is not safe for concurrent use: give each goroutine (or Wasm
// instance) its own, all sharing one State.
type Engine struct {
	opts    Options
	crypto  hostcrypto.Provider
	state   *State
	limiter Limiter
	cache   *tokenCache

	params  policy.Params
	scratch jwt.Scratch
	keys    signingKeys
	claims  jwt.Claims
	// out is the buffer identity values are rendered into.
	out [512]byte
	d   Decision
}

// NewEngine returns an Engine with no state: until SetState it answers 503.
func NewEngine(opts Options) *Engine {
	e := &Engine{opts: opts, crypto: opts.Crypto, limiter: opts.Limiter}
	if e.crypto == nil {
		e.crypto = defaultCrypto()
	}
	if e.limiter == nil {
		e.limiter = NewBucketLimiter(0)
	}
	switch {
	case opts.TokenCacheSize == 0:
		e.cache = newTokenCache(DefaultTokenCacheSize)
	case opts.TokenCacheSize > 0:
		e.cache = newTokenCache(opts.TokenCacheSize)
	default:
		e.cache = newTokenCache(0)
	}
	return e
}

// SetState swaps the snapshot the Engine decides from. Cached tokens stay cached while the
// token profile (issuer, audience, leeway) is unchanged; every hit is checked again against the
// new state's revocations, signing keys, minting key and policy.
func (e *Engine) SetState(s *State) { e.state = s }

// State returns the current state (nil before the first SetState).
func (e *Engine) State() *State { return e.state }

// Decide decides one request. The returned Decision is owned by the Engine and valid until
// the next call.
func (e *Engine) Decide(r *Request) *Decision {
	d := &e.d
	*d = Decision{}
	st := e.state
	if st == nil {
		return e.deny(d, nil, nil, policy.ReasonUnavailable)
	}
	pol := st.policy
	now := r.Now / 1e9
	if now >= st.view.ExpiresAt() {
		// The manifest has expired while held (a frozen store): fail closed, as on load.
		return e.deny(d, pol, nil, policy.ReasonUnavailable)
	}
	if e.opts.MaxStalenessSeconds > 0 && now-st.view.IssuedAt() > e.opts.MaxStalenessSeconds {
		return e.deny(d, pol, nil, policy.ReasonUnavailable)
	}
	route, ok := pol.Match(r.Method, r.Path, &e.params)
	if !ok {
		return e.deny(d, pol, nil, policy.ReasonPath)
	}
	d.Route = route.Name
	// The query credential never goes upstream, whether or not this route honours it: a token
	// in a URL ends up in the upstream's access logs.
	d.StripQueryToken = r.HasQueryToken
	if route.Public {
		d.Allow, d.Status = true, 200
		return d
	}
	if len(r.Headers) > limits.MaxRequestHeaders {
		return e.deny(d, pol, route, policy.ReasonInvalid)
	}
	for i := range r.Headers {
		if len(r.Headers[i].Value) > limits.MaxHeaderValueBytes {
			return e.deny(d, pol, route, policy.ReasonInvalid)
		}
	}

	cred, fromQuery := e.credential(pol, route, r)
	if cred == nil {
		return e.deny(d, pol, route, policy.ReasonMissing)
	}
	if fromQuery {
		// A query string ends up in access logs and browser history: only short-lived client
		// tokens may travel there, never an API key.
		return e.decideToken(d, st, route, r, cred, now)
	}
	if kt := pol.MatchKeyType(cred); kt >= 0 {
		return e.decideKey(d, st, route, r, cred, kt, now)
	}
	if pol.Tokens() != nil && looksLikeJWS(cred) {
		return e.decideToken(d, st, route, r, cred, now)
	}
	return e.deny(d, pol, route, policy.ReasonInvalid)
}

// credential returns the first credential present in the policy's source order.
func (e *Engine) credential(pol *policy.Compiled, route *policy.CompiledRoute, r *Request) (cred []byte, fromQuery bool) {
	for _, src := range pol.Sources() {
		switch src.In {
		case "bearer":
			v := header(r, "authorization")
			if v == nil {
				continue
			}
			if len(v) < 7 || !equalFold(v[:7], "bearer ") {
				// Another scheme (Basic, ...) is not ours: the request has no usable credential
				// from this source.
				continue
			}
			v = bytes.TrimLeft(v[7:], " ")
			if len(v) == 0 {
				continue
			}
			return v, false
		case "header":
			v := header(r, src.Name)
			if len(v) == 0 {
				continue
			}
			return v, false
		case "query":
			if !route.QueryToken || !r.HasQueryToken || len(r.QueryToken) == 0 {
				continue
			}
			return r.QueryToken, true
		}
	}
	return nil, false
}

func (e *Engine) decideKey(d *Decision, st *State, route *policy.CompiledRoute, r *Request, cred []byte, kt int, now int64) *Decision {
	pol := st.policy
	typ := pol.KeyType(kt)
	if typ.Spec.Check(cred) != nil {
		return e.deny(d, pol, route, policy.ReasonInvalid)
	}
	h := apikey.Hash(e.crypto.SHA256(cred))
	k, ok := st.view.LookupKey(&h)
	if !ok || int(k.Type) != kt {
		return e.deny(d, pol, route, policy.ReasonInvalid)
	}
	if k.Expiry != 0 && now >= k.Expiry {
		return e.deny(d, pol, route, policy.ReasonExpired)
	}
	if !route.AllowKey {
		return e.deny(d, pol, route, policy.ReasonCredential)
	}
	// A key never holds more than its type allows, even if a snapshot says otherwise.
	return e.authorize(d, st, route, r, k, typ, k.Scopes&typ.Cap, CredentialKey, nil, now)
}

func (e *Engine) decideToken(d *Decision, st *State, route *policy.CompiledRoute, r *Request, token []byte, now int64) *Decision {
	pol := st.policy
	tp := pol.Tokens()
	if tp == nil || len(token) > maxTokenLen {
		return e.deny(d, pol, route, policy.ReasonInvalid)
	}
	ent := e.cache.get(token, st.tokenProfile)
	if ent != nil {
		// A cached token was verified once; what may have changed since is the key set
		// (a signing key withdrawn or replaced under the same kid) and time.
		if alg, pub, ok := st.view.SigningKeyAt(ent.kid, now); !ok || jwt.Alg(alg) != ent.alg || !bytestr.EqualBytes(pub, ent.pub) {
			ent = nil
		} else {
			d.TokenCached = true
			if now >= ent.exp+tp.Leeway {
				return e.deny(d, pol, route, policy.ReasonExpired)
			}
			if ent.nbf != 0 && now < ent.nbf-tp.Leeway {
				return e.deny(d, pol, route, policy.ReasonInvalid)
			}
		}
	}
	if ent == nil {
		v := jwt.Validator{Issuer: tp.Issuer, Audience: tp.Audience, Typ: "JWT", Leeway: tp.Leeway}
		// The steps of jwt.Verify, spelled out because the cache keeps the header's kid.
		p, err := jwt.Parse(token, &e.scratch)
		if err == nil {
			e.keys = signingKeys{v: st.view, now: now}
			err = p.VerifySignature(e.crypto, &e.keys)
		}
		if err == nil {
			err = p.Claims(&e.claims)
		}
		if err == nil {
			err = v.Check(&p, &e.claims, now)
		}
		if err != nil {
			if isExpired(err) {
				return e.deny(d, pol, route, policy.ReasonExpired)
			}
			return e.deny(d, pol, route, policy.ReasonInvalid)
		}
		c := &e.claims
		id, err := apikey.ParseIDBytes(c.KeyID)
		if err != nil || len(c.Subject) == 0 || len(c.JTI) == 0 || !c.HasIssuedAt {
			// Our profile always names the minting key, the session and the token id, and
			// says when it was issued; a token without them was not minted by a latchkey
			// control plane.
			return e.deny(d, pol, route, policy.ReasonInvalid)
		}
		if c.Expiry-c.IssuedAt > tp.MaxTTL {
			// Longer-lived than the realm lets the control plane mint: a leaked signing key
			// must not be able to mint long-lived tokens.
			return e.deny(d, pol, route, policy.ReasonInvalid)
		}
		ent = e.cache.put(token, st.tokenProfile, c, id, &e.keys.found)
	}

	// Revocation is checked on every request, cached or not: a newer snapshot must be able to
	// kill a token the cache already trusts.
	mk, ok := st.view.LookupKeyID(ent.keyID)
	if !ok || (mk.Expiry != 0 && now >= mk.Expiry) {
		return e.deny(d, pol, route, policy.ReasonRevoked)
	}
	if st.view.TokenRevoked(ent.jti, now) || st.view.SessionRevoked(ent.sub, now) {
		return e.deny(d, pol, route, policy.ReasonRevoked)
	}
	if len(ent.org) != 0 {
		org, _ := st.view.Org(mk.OrgIndex)
		if !bytestr.EqualBytes(org, ent.org) {
			return e.deny(d, pol, route, policy.ReasonInvalid)
		}
	}
	if !route.AllowToken {
		return e.deny(d, pol, route, policy.ReasonCredential)
	}
	if route.SessionParam >= 0 && !bytestr.EqualBytes(e.params.Get(route.SessionParam), ent.sub) {
		return e.deny(d, pol, route, policy.ReasonSession)
	}
	// A token never holds more than client tokens may, nor more than the key that minted it:
	// the control plane enforces both at minting, and the edge does not take that on trust.
	typ := pol.KeyType(int(mk.Type))
	if typ == nil {
		// The minting key's type is not in this policy: nothing it minted can be honoured.
		return e.deny(d, pol, route, policy.ReasonInvalid)
	}
	scopes := pol.ScopeMaskBytes(ent.scope) & tp.Scopes & mk.Scopes & typ.Cap
	return e.authorize(d, st, route, r, mk, typ, scopes, CredentialToken, ent.sub, now)
}

// authorize applies what is common to keys and tokens once the credential is known good:
// org state, scopes, acting agent, rate class; then fills in the identity.
func (e *Engine) authorize(d *Decision, st *State, route *policy.CompiledRoute, r *Request, k snapshot.Key, typ *policy.CompiledKeyType, scopes uint64, cred Credential, session []byte, now int64) *Decision {
	pol := st.policy
	org, state := st.view.Org(k.OrgIndex)
	switch state {
	case snapshot.OrgActive:
	case snapshot.OrgBudgetExhausted:
		return e.deny(d, pol, route, policy.ReasonBudget)
	default:
		return e.deny(d, pol, route, policy.ReasonSuspended)
	}
	if !covers(scopes, route.Scopes, route.All) {
		return e.deny(d, pol, route, policy.ReasonScope)
	}

	var agent []byte
	if name := pol.AgentHeader(); name != "" {
		mode := typ.Agents
		if route.Agent != policy.AgentInherit {
			mode = route.Agent
		}
		agent = header(r, name)
		switch {
		case agent != nil:
			if mode == policy.AgentNone || !st.view.AgentAllowed(k.AgentSet, agent) {
				return e.deny(d, pol, route, policy.ReasonAgent)
			}
		case mode == policy.AgentRequired:
			return e.deny(d, pol, route, policy.ReasonAgent)
		}
	}

	class := typ.RateClass
	if cred == CredentialToken {
		class = pol.Tokens().RateClass
	}
	if class >= 0 && !r.Recheck {
		rc := pol.RateClass(class)
		if ok, wait := e.limiter.Take(class, rc.PerSecond, rc.Burst, k.ID, r.Now); !ok {
			e.deny(d, pol, route, policy.ReasonRateLimited)
			d.RetryAfter = wait
			return d
		}
	}

	d.Allow, d.Status = true, 200
	d.Credential = cred
	d.Org = org
	d.KeyID = k.ID
	d.KeyType = typ
	d.Session = session
	d.Agent = agent
	e.identity(d, pol, typ, scopes)
	return d
}

// identity renders the identity values and headers into the Engine's buffer.
func (e *Engine) identity(d *Decision, pol *policy.Compiled, typ *policy.CompiledKeyType, scopes uint64) {
	buf := e.out[:0]
	buf, _ = d.KeyID.AppendText(buf)
	keyID := buf
	start := len(buf)
	buf = pol.AppendScopes(buf, scopes)
	d.Scopes = buf[start:]

	id := pol.Identity()
	h := d.Identity[:0]
	if n := id.Org; n != nil {
		h = append(h, Header{n, d.Org})
	}
	if n := id.KeyID; n != nil {
		h = append(h, Header{n, keyID})
	}
	if n := id.KeyType; n != nil {
		h = append(h, Header{n, typ.LabelBytes})
	}
	if n := id.Scopes; n != nil {
		h = append(h, Header{n, d.Scopes})
	}
	if n := id.Agent; n != nil && d.Agent != nil {
		h = append(h, Header{n, d.Agent})
	}
	if n := id.Session; n != nil && d.Session != nil {
		h = append(h, Header{n, d.Session})
	}
	if n := id.Credential; n != nil {
		h = append(h, Header{n, credentialNames[d.Credential]})
	}
	d.NumIdentity = len(h)
}

var credentialNames = [...][]byte{CredentialNone: []byte("none"), CredentialKey: []byte("key"), CredentialToken: []byte("token")}

func (e *Engine) deny(d *Decision, pol *policy.Compiled, route *policy.CompiledRoute, r policy.Reason) *Decision {
	var resp *policy.Response
	switch {
	case pol == nil:
		resp = policy.DefaultError(r)
	case route == nil:
		resp = pol.Error(r)
	default:
		resp = route.Error(pol, r)
	}
	*d = Decision{Status: resp.Status, Reason: r, Response: resp, StripQueryToken: d.StripQueryToken, Route: d.Route, TokenCached: d.TokenCached}
	return d
}

// covers reports whether held satisfies the route's required scopes.
func covers(held, required uint64, all bool) bool {
	if required == 0 {
		return true
	}
	if all {
		return held&required == required
	}
	return held&required != 0
}

// looksLikeJWS is a cheap shape test (two dots) that keeps random strings out of the JWT parser's
// error path; the parser does the real checking.
func looksLikeJWS(b []byte) bool { return bytes.Count(b, dot) == 2 }

var dot = []byte{'.'}

func header(r *Request, lowerName string) []byte {
	for i := range r.Headers {
		if equalFold(r.Headers[i].Name, lowerName) {
			return r.Headers[i].Value
		}
	}
	return nil
}

// equalFold compares an ASCII header name with a lower-case name.
func equalFold(b []byte, lowerName string) bool {
	if len(b) != len(lowerName) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lowerName[i] {
			return false
		}
	}
	return true
}
