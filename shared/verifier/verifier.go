// Package verifier decides requests offline from a snapshot: allow (with the caller's identity)
// or deny with the realm's rendered 401, 402, 403, 429 or 503.
//
// Every host runs this same code: natively, inside a Wasm guest, behind Envoy or a worker. A
// State (snapshot view + compiled policy) is immutable and shared; an Engine holds the per-caller
// scratch, the verified-token cache and the rate buckets, and is used by one goroutine (or one
// Wasm instance) at a time. Same request, same state, same clock: same decision.
package verifier

import (
	"errors"
	"strconv"

	"github.com/latchkeyhq/latchkey/shared/apikey"
	"github.com/latchkeyhq/latchkey/shared/hostcrypto"
	"github.com/latchkeyhq/latchkey/shared/jwt"
	"github.com/latchkeyhq/latchkey/shared/policy"
	"github.com/latchkeyhq/latchkey/shared/snapshot"
)

// Header is one request header. Hosts pass names in lower case.
type Header struct {
	Name, Value []byte
}

// Request is everything a decision looks at. Hosts fill it from the HTTP request; the guest
// never reads a clock, so the time travels with the request.
type Request struct {
	// Now is the host's clock, in Unix nanoseconds.
	Now int64
	// Method is the HTTP method, Path the request path without the query string.
	Method, Path []byte
	// QueryToken is the value of the policy's query credential parameter (e.g. ?token=), when
	// the request carries one. It is honoured only on routes that allow it.
	QueryToken []byte
	// HasQueryToken distinguishes an empty ?token= from none.
	HasQueryToken bool
	// Headers are the request's headers; only those the policy names are looked at.
	Headers []Header
	// Recheck marks a request that was allowed before and is decided again while it is still
	// open (a long-lived stream, after a new snapshot or as time passes): the decision is made
	// as usual but takes nothing from the rate limiter, which admitted the request already.
	Recheck bool
}

// Credential says which kind of credential a request was allowed with.
type Credential uint8

const (
	// CredentialNone: a public route.
	CredentialNone Credential = iota
	// CredentialKey: an API key.
	CredentialKey
	// CredentialToken: a client token (JWT).
	CredentialToken
)

// String names the kind as the identity header carries it.
func (c Credential) String() string {
	switch c {
	case CredentialKey:
		return "key"
	case CredentialToken:
		return "token"
	}
	return "none"
}

// maxIdentity is the number of identity headers a decision can inject.
const maxIdentity = 7

// Decision is the outcome of one request. Its byte slices point into the Engine's buffers or
// the snapshot and stay valid until the Engine's next Decide.
type Decision struct {
	// Allow is true when the request may go upstream; Status is then 200.
	Allow  bool
	Status int
	// Reason says why a request was denied (or ReasonNone on allow).
	Reason Reason
	// Response is the rendered denial (status, headers, body); nil on allow.
	Response *policy.Response
	// RetryAfter is the number of seconds to wait before retrying, on 429.
	RetryAfter int64

	// Credential, Route and the identity fields describe an allowed caller.
	Credential Credential
	Route      string
	Org        []byte
	KeyID      apikey.ID
	KeyType    *policy.CompiledKeyType
	Session    []byte
	Agent      []byte
	// Scopes is the caller's effective scopes, space separated.
	Scopes []byte

	// Identity holds the headers to set upstream on allow (names from the policy).
	Identity    [maxIdentity]Header
	NumIdentity int
	// StripQueryToken is true when the query credential parameter must be removed from the
	// request before it is forwarded (routes that honour query tokens).
	StripQueryToken bool
	// TokenCached is true when a client token was decided from the verified-token cache, with
	// no signature verification (allowed or denied); false for every other decision.
	TokenCached bool
}

// IdentityHeaders returns the headers to inject upstream.
func (d *Decision) IdentityHeaders() []Header { return d.Identity[:d.NumIdentity] }

// Reason is why a request was denied. It is the policy's reason, re-exported so hosts need
// only this package; ReasonNone marks an allow.
type Reason = policy.Reason

// ReasonNone is the Reason of an allowed request.
const ReasonNone Reason = 0

// State is one loaded snapshot with its compiled policy. It is immutable and may be shared by
// any number of Engines.
type State struct {
	view   *snapshot.View
	policy *policy.Compiled
	// stripNames are the identity header names (lower case) every host strips from requests.
	stripNames []string
	// tokenProfile names what a cached token was validated against (issuer, audience, leeway):
	// a cache entry stays good across snapshots as long as it does not change.
	tokenProfile string
}

// NewState compiles the policy a snapshot carries. It fails if the policy does not decode or
// compile, so a host never swaps to a state it cannot decide from.
func NewState(v *snapshot.View) (*State, error) {
	if v == nil {
		return nil, errors.New("verifier: no snapshot view")
	}
	p, err := policy.Decode(v.Policy())
	if err != nil {
		return nil, err
	}
	if p.Realm != v.Realm() {
		return nil, errors.New("verifier: snapshot realm " + v.Realm() + " carries a policy for realm " + p.Realm)
	}
	c, err := policy.Compile(p)
	if err != nil {
		return nil, err
	}
	s := &State{view: v, policy: c}
	if tp := c.Tokens(); tp != nil {
		s.tokenProfile = tp.Issuer + "\x00" + tp.Audience + "\x00" + strconv.FormatInt(tp.Leeway, 10)
	}
	for _, n := range []string{p.Identity.Org, p.Identity.KeyID, p.Identity.KeyType, p.Identity.Scopes, p.Identity.Agent, p.Identity.Session, p.Identity.Credential} {
		if n != "" {
			s.stripNames = append(s.stripNames, lower(n))
		}
	}
	return s, nil
}

// View returns the snapshot the state was built from.
func (s *State) View() *snapshot.View { return s.view }

// Policy returns the compiled policy.
func (s *State) Policy() *policy.Compiled { return s.policy }

// StripHeaders names (in lower case) the identity headers a host must remove from every
// incoming request, allowed or not, so that a caller can never assert an identity itself.
func (s *State) StripHeaders() []string { return s.stripNames }

// signingKeys adapts the snapshot's published public keys to jwt.KeySet: a key past its
// NotAfter is no longer published, so tokens it signed stop verifying.
type signingKeys struct {
	v   *snapshot.View
	now int64
	// found is the key the last lookup returned: the one a successful verification used.
	found jwt.Key
}

func (k *signingKeys) LookupKey(kid []byte) (jwt.Key, bool) {
	alg, pub, ok := k.v.SigningKeyAt(kid, k.now)
	if !ok {
		return jwt.Key{}, false
	}
	k.found = jwt.Key{KID: kid, Alg: jwt.Alg(alg), Public: pub}
	return k.found, true
}

func lower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// Options configure an Engine. The zero value is usable: standard-library crypto, a
// 4096-entry token cache, no staleness limit.
type Options struct {
	// Crypto supplies hashing and signature checks; nil means hostcrypto.Std, except in builds
	// tagged accel (the Wasm guest with host crypto), where it is required.
	Crypto hostcrypto.Provider
	// TokenCacheSize bounds the verified-token cache; 0 means 4096, negative disables it.
	TokenCacheSize int
	// MaxStalenessSeconds: once the state's snapshot was issued longer ago than this, every
	// request is denied with 503 (fail closed). 0 disables the check.
	MaxStalenessSeconds int64
	// Limiter applies rate classes; nil means a per-Engine token-bucket limiter.
	Limiter Limiter
}
