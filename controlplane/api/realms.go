package api

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/latchkeyhq/latchkey/controlplane/policyfile"
	"github.com/latchkeyhq/latchkey/controlplane/store"
	"github.com/latchkeyhq/latchkey/shared/limits"
	"github.com/latchkeyhq/latchkey/shared/policy"
)

// realmCacheTTL bounds how stale the realm list and each realm's compiled policy may be:
// a realm created or a policy put through another replica is seen here within it.
const (
	realmCacheTTL    = time.Second
	realmMissRefresh = 100 * time.Millisecond
)

// realmInfo is a realm with its latest policy compiled (nil when it has none).
type realmInfo struct {
	realm  store.Realm
	policy *policy.Compiled
}

// checkKey reports whether key has the shape of one of the realm's key types.
func (ri *realmInfo) checkKey(key []byte) bool {
	if ri.policy == nil {
		return false
	}
	i := ri.policy.MatchKeyType(key)
	return i >= 0 && ri.policy.KeyType(i).Spec.Check(key) == nil
}

// tokenWindow is how long a client token minted now can be honoured: the realm's TTL cap
// plus its leeway. A revoked session, or a retired signing key's public half, must outlive it.
func (ri *realmInfo) tokenWindow() time.Duration {
	maxTTL, leeway := int64(limits.DefaultTokenTTLCapSeconds), int64(limits.DefaultLeewaySeconds)
	if ri.policy != nil {
		if t := ri.policy.Tokens(); t != nil {
			maxTTL, leeway = t.MaxTTL, t.Leeway
		}
	}
	return time.Duration(maxTTL+leeway) * time.Second
}

type realmState struct {
	at     time.Time
	list   []*realmInfo
	byName map[string]*realmInfo
}

// realmCache keeps the realm list and compiled policies, one compilation per policy version.
type realmCache struct {
	cur atomic.Pointer[realmState]
	mu  sync.Mutex // serialises refreshes
	// compiled holds the last compiled policy per realm, reused while its version is current.
	compiled map[string]compiledPolicy
}

type compiledPolicy struct {
	version uint64
	c       *policy.Compiled
}

// state returns the cached state, refreshing it from the store when older than
// realmCacheTTL (wall clock, as for authCache).
func (c *realmCache) state(ctx context.Context, s *Server) (*realmState, error) {
	if st := c.cur.Load(); st != nil && time.Since(st.at) < realmCacheTTL {
		return st, nil
	}
	return c.refresh(ctx, s, false)
}

// invalidate makes the next state call read the store (after a change made here).
func (c *realmCache) invalidate() {
	c.mu.Lock()
	if st := c.cur.Load(); st != nil {
		stale := *st
		stale.at = time.Time{}
		c.cur.Store(&stale)
	}
	c.mu.Unlock()
}

func (c *realmCache) refresh(ctx context.Context, s *Server, force bool) (*realmState, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st := c.cur.Load(); !force && st != nil && time.Since(st.at) < realmCacheTTL {
		return st, nil // another request refreshed it while this one waited
	}
	realms, err := s.st.ListRealms(ctx)
	if err != nil {
		return nil, errStore(err, "realm")
	}
	if c.compiled == nil {
		c.compiled = make(map[string]compiledPolicy)
	}
	st := &realmState{at: time.Now(), byName: make(map[string]*realmInfo, len(realms))}
	for _, r := range realms {
		ri := &realmInfo{realm: r}
		if r.PolicyVersion > 0 {
			cp, ok := c.compiled[r.Name]
			if !ok || cp.version != r.PolicyVersion {
				cp, err = s.compilePolicy(ctx, r.Name, r.PolicyVersion)
				if err != nil {
					return nil, err
				}
				c.compiled[r.Name] = cp
			}
			ri.policy = cp.c
		}
		st.list = append(st.list, ri)
		st.byName[r.Name] = ri
	}
	c.cur.Store(st)
	return st, nil
}

// compilePolicy reads and compiles one stored policy version. A stored policy that no longer
// parses (it passed when it was put) leaves the realm without a policy, logged, rather than
// taking every realm's authentication down with it.
func (s *Server) compilePolicy(ctx context.Context, realm string, version uint64) (compiledPolicy, error) {
	sp, err := s.st.GetPolicy(ctx, realm, version)
	if err != nil {
		return compiledPolicy{}, errStore(err, "policy")
	}
	p, err := policyfile.Parse(sp.YAML)
	var c *policy.Compiled
	if err == nil {
		c, err = policy.Compile(p)
	}
	if err != nil {
		s.log.Error("api: stored policy does not compile", "realm", realm, "version", version, "err", err)
		return compiledPolicy{version: version}, nil
	}
	return compiledPolicy{version: version, c: c}, nil
}

// realm returns a realm's cached info; a realm missing from the cache is looked for again in
// the store before it is declared not found.
func (s *Server) realm(ctx context.Context, name string) (*realmInfo, error) {
	st, err := s.realms.state(ctx, s)
	if err != nil {
		return nil, err
	}
	if ri, ok := st.byName[name]; ok {
		return ri, nil
	}
	// Unknown names may come from anyone (the JWKS is public): ask the store again only when
	// the cache is not brand new.
	if time.Since(st.at) >= realmMissRefresh {
		if st, err = s.realms.refresh(ctx, s, true); err != nil {
			return nil, err
		}
		if ri, ok := st.byName[name]; ok {
			return ri, nil
		}
	}
	return nil, notFound("realm " + quote(name) + " not found")
}

// realmPolicy is realm with a policy required: changing keys needs the realm's key types.
func (s *Server) realmPolicy(ctx context.Context, name string) (*realmInfo, error) {
	ri, err := s.realm(ctx, name)
	if err != nil {
		return nil, err
	}
	if ri.policy == nil {
		return nil, conflict("", "realm "+quote(name)+" has no usable policy: PUT /v1/policy first")
	}
	return ri, nil
}
