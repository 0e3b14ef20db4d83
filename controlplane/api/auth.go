package api

import (
	"context"
	"crypto/subtle"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/latchkeyhq/latchkey/controlplane/store"
	"github.com/latchkeyhq/latchkey/shared/apikey"
	"github.com/latchkeyhq/latchkey/shared/hostcrypto"
	"github.com/latchkeyhq/latchkey/shared/limits"
)

// AdminKeySpec is the format of every admin key, in every realm: fixed rather than taken from
// a realm's policy, so a policy can never make an admin key unrecognisable (or a customer's
// key look like one).
var AdminKeySpec = apikey.Spec{Prefix: "lk_admin_", Format: apikey.FormatBase62CRC32}

// AdminKeyType is the Type of admin keys in the store.
const AdminKeyType = "admin"

// principal is an authenticated caller.
type principal struct {
	key   store.APIKey
	realm string
}

func (p *principal) admin() bool { return p.key.Admin }

// has reports whether an admin caller holds scope ("admin" holds every scope).
func (p *principal) has(scope string) bool {
	return p.key.Admin && (slices.Contains(p.key.Scopes, ScopeAdmin) || slices.Contains(p.key.Scopes, scope))
}

// authorize authenticates the request as rt requires and checks the caller's scope.
func (s *Server) authorize(r *http.Request, rt route, c *call) error {
	if rt.access == accessPublic {
		return nil
	}
	p, err := s.authenticate(r.Context(), r.Header.Get("Authorization"))
	if err != nil {
		return err
	}
	c.p = p
	if !p.admin() {
		if rt.access == accessMint {
			return nil
		}
		return forbidden("", "realm API keys may only mint client tokens (POST /v1/sessions/{id}/client-tokens); this endpoint needs an admin key")
	}
	switch rt.access {
	case accessRoot:
		if p.realm != DefaultRealm || !p.has(ScopeAdmin) {
			return forbidden("", `missing scope "admin" in realm "default"`)
		}
	case accessAdmin, accessMint:
		if rt.scope != "" && !p.has(rt.scope) {
			return forbidden("", "missing scope "+quote(rt.scope))
		}
	}
	return nil
}

// authenticate finds the key a bearer credential names.
//
// The key is checked the way the edge checks it: its type's apikey.Spec (format and checksum)
// before any lookup, then its SHA-256 looked up in the store, then its validity at now. The
// realm is not known before the lookup (API.md puts no realm in a request), so the key is
// looked for in every realm where it could be valid: for an admin key (the fixed lk_admin_
// format) every realm, for a realm key the realms whose policy has a key type it passes. A
// key found in more than one realm is refused: imports refuse a hash another realm holds, and
// generated keys never collide, so that only happens when the store was written behind the
// API's back. Found keys are cached for at most authCacheTTL, so a client minting tokens in
// a loop costs one lookup per second, and a revocation made through another replica takes
// effect here within that second (at once through this one).
func (s *Server) authenticate(ctx context.Context, header string) (*principal, error) {
	const scheme = "Bearer "
	if header == "" {
		return nil, unauthorized("missing credential: send Authorization: Bearer <admin or API key>", false)
	}
	if len(header) < len(scheme) || !strings.EqualFold(header[:len(scheme)], scheme) {
		return nil, unauthorized("the Authorization header must use the Bearer scheme", true)
	}
	token := strings.TrimLeft(header[len(scheme):], " ")
	if token == "" || len(token) > limits.MaxKeyBytes {
		return nil, unauthorized("invalid API key", true)
	}
	kb := []byte(token)
	isAdmin := AdminKeySpec.Check(kb) == nil
	rs, err := s.realms.state(ctx, s)
	if err != nil {
		return nil, err
	}
	var cands []*realmInfo
	for _, ri := range rs.list {
		if isAdmin || ri.checkKey(kb) {
			cands = append(cands, ri)
		}
	}
	if len(cands) == 0 {
		return nil, unauthorized("invalid API key", true)
	}
	hash := apikey.HashOf(hostcrypto.Std, kb)
	now := s.now()
	k, ok := s.auth.get(hash)
	if ok && !slices.ContainsFunc(cands, func(ri *realmInfo) bool { return ri.realm.Name == k.Realm }) {
		ok = false
	}
	if !ok {
		var found []store.APIKey
		for _, ri := range cands {
			fk, err := s.st.GetKeyByHash(ctx, ri.realm.Name, hash)
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			if err != nil {
				return nil, errStore(err, "key")
			}
			found = append(found, fk)
		}
		if len(found) != 1 {
			if len(found) > 1 {
				s.log.Warn("api: a key hash exists in several realms; refusing it", "key_id", found[0].ID)
			}
			return nil, unauthorized("invalid API key", true)
		}
		k = found[0]
		s.auth.put(hash, k)
	}
	// The store found the key by this hash; comparing again in constant time costs nothing
	// and keeps a cache or store bug from admitting another key.
	if subtle.ConstantTimeCompare(k.Hash[:], hash[:]) != 1 || k.Admin != isAdmin {
		return nil, unauthorized("invalid API key", true)
	}
	switch {
	case k.RevokedAt != nil && !k.RevokedAt.After(now):
		return nil, unauthorized("API key revoked", true)
	case k.ExpiresAt != nil && !k.ExpiresAt.After(now):
		return nil, unauthorized("API key expired", true)
	}
	return &principal{key: k, realm: k.Realm}, nil
}

// authCacheTTL bounds how long a found key is trusted without asking the store again.
const (
	authCacheTTL = time.Second
	authCacheMax = 10000
)

// authCache holds recently found keys by hash. Ages are measured on the monotonic wall clock,
// not the injected one: how long a copy may be trusted is an operational bound, and a test's
// frozen clock must not make it eternal.
type authCache struct {
	mu sync.RWMutex
	m  map[apikey.Hash]authEntry
}

type authEntry struct {
	key store.APIKey
	at  time.Time
}

func (c *authCache) init() { c.m = make(map[apikey.Hash]authEntry) }

func (c *authCache) get(h apikey.Hash) (store.APIKey, bool) {
	c.mu.RLock()
	e, ok := c.m[h]
	c.mu.RUnlock()
	if !ok || time.Since(e.at) >= authCacheTTL {
		return store.APIKey{}, false
	}
	return e.key, true
}

func (c *authCache) put(h apikey.Hash, k store.APIKey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= authCacheMax {
		for kh, e := range c.m {
			if time.Since(e.at) >= authCacheTTL {
				delete(c.m, kh)
			}
		}
		if len(c.m) >= authCacheMax {
			clear(c.m)
		}
	}
	c.m[h] = authEntry{key: k, at: time.Now()}
}

// drop forgets a key changed through this process (revoked, rotated, rescoped).
func (c *authCache) drop(h apikey.Hash) {
	c.mu.Lock()
	delete(c.m, h)
	c.mu.Unlock()
}

func quote(s string) string { return `"` + s + `"` }
