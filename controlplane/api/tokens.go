package api

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/latchkeyhq/latchkey/controlplane/signer"
	"github.com/latchkeyhq/latchkey/controlplane/store"
	"github.com/latchkeyhq/latchkey/shared/policy"
)

// DefaultTokenTTL is a client token's lifetime when the request names none (capped by the
// realm's max_ttl_seconds).
const DefaultTokenTTL = 900

type mintRequest struct {
	Scopes []string `json:"scopes" validate:"required,min=1,max=64,unique,dive,scope"`
	// TTL is a pointer so that an explicit 0 is refused rather than defaulted.
	TTL   *int64 `json:"ttl" validate:"omitempty"`
	KeyID string `json:"key_id" validate:"omitempty,key_id"`
}

type mintResponse struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
	JTI       string    `json:"jti"`
	KID       string    `json:"kid"`
}

// mintToken signs a client token for one session. It never escalates: the scopes must be
// allowed for client tokens by the realm's policy and held by the minting key, and the token
// carries the minting key's org and id, so revoking that key revokes its tokens at the edge.
func (s *Server) mintToken(w http.ResponseWriter, r *http.Request, c *call) error {
	session := r.PathValue("id")
	if !validIDText(session, maxSessionBytes) {
		return invalid("id", "must be a session id: 1.."+itoa(maxSessionBytes)+" characters of [A-Za-z0-9._:-]")
	}
	var req mintRequest
	if err := s.decodeJSON(w, r, &req, false); err != nil {
		return err
	}
	ctx := r.Context()
	ri, err := s.realmPolicy(ctx, c.p.realm)
	if err != nil {
		return err
	}
	tp := ri.policy.Tokens()
	if tp == nil {
		return conflict("", "realm "+quote(ri.realm.Name)+" accepts no client tokens (its policy has no tokens section)")
	}

	// The minting key: a realm key mints for itself; an admin key names the key it mints for.
	var mk store.APIKey
	if c.p.admin() {
		if req.KeyID == "" {
			return invalid("key_id", "is required when an admin key mints: name the API key the token acts for")
		}
		k, err := s.st.GetKey(ctx, c.p.realm, req.KeyID)
		if err != nil {
			if e := errStore(err, "key"); isStatus(e, http.StatusNotFound) {
				return invalid("key_id", "no such key in realm "+quote(c.p.realm))
			}
			return errStore(err, "key")
		}
		if k.Admin {
			return invalid("key_id", "admin keys cannot mint client tokens: name a realm API key")
		}
		if !k.ActiveAt(s.now()) {
			return invalid("key_id", "the key is revoked or expired")
		}
		mk = k
	} else {
		if req.KeyID != "" && req.KeyID != c.p.key.ID {
			return forbidden("key_id", "an API key mints client tokens only for itself")
		}
		mk = c.p.key
	}

	for i, name := range req.Scopes {
		f := "scopes[" + itoa(i) + "]"
		m, err := ri.policy.ScopeMask([]string{name})
		if err != nil {
			return invalid(f, "unknown scope "+strconv.Quote(name))
		}
		if m&^tp.Scopes != 0 {
			return forbidden(f, f+": scope "+strconv.Quote(name)+" is not allowed in client tokens")
		}
		if m&^keyMask(ri.policy, mk.Scopes) != 0 {
			return forbidden(f, f+": the minting key does not hold scope "+strconv.Quote(name))
		}
	}
	mask, _ := ri.policy.ScopeMask(req.Scopes)
	ttl := min(int64(DefaultTokenTTL), tp.MaxTTL)
	if req.TTL != nil {
		ttl = *req.TTL
		if ttl < 1 || ttl > tp.MaxTTL {
			return invalid("ttl", "must be 1.."+strconv.FormatInt(tp.MaxTTL, 10)+" seconds (the realm's max_ttl_seconds)")
		}
	}

	ts, err := s.activeSigner(ctx, ri.realm.Name)
	if err != nil {
		return err
	}
	now := s.now()
	token, jti, exp, err := ts.Mint(signer.ClientClaims{
		Issuer: tp.Issuer, Audience: tp.Audience, Session: session, Org: mk.Org, KeyID: mk.ID,
		Scopes: ri.policy.ScopeNames(mask), IssuedAt: now, TTL: time.Duration(ttl) * time.Second,
	})
	if err != nil {
		return err
	}
	// The audit record is queued (see mintAuditor); while audit writes fail, this waits for
	// it and a failure withholds the token.
	if err := s.audit.record(ctx, mintRecord{
		realm: ri.realm.Name, actor: c.p.key.ID, keyID: mk.ID, at: now,
		jti: jti, session: session, scopes: strings.Join(req.Scopes, " "), ttl: ttl,
	}); err != nil {
		if errors.Is(err, errClosed) {
			return unavailable("the server is shutting down")
		}
		return errStore(err, "audit event")
	}
	s.metrics.minted(ri.realm.Name)
	writeJSON(w, http.StatusCreated, mintResponse{Token: token, ExpiresAt: exp.UTC(), JTI: jti, KID: ts.KID()})
	return nil
}

// keyMask is the mask of a stored key's scopes under the realm's current policy. Names the
// policy no longer knows grant nothing, as at the edge.
func keyMask(p *policy.Compiled, scopes []string) uint64 {
	var m uint64
	for _, n := range scopes {
		if b, err := p.ScopeMask([]string{n}); err == nil {
			m |= b
		}
	}
	return m
}

func isStatus(err error, status int) bool {
	e, ok := err.(*Error)
	return ok && e.Status == status
}

// revokeSession revokes every client token of a session until the last one it could have
// been minted with has expired.
func (s *Server) revokeSession(w http.ResponseWriter, r *http.Request, c *call) error {
	session := r.PathValue("id")
	if !validIDText(session, maxSessionBytes) {
		return invalid("id", "must be a session id: 1.."+itoa(maxSessionBytes)+" characters of [A-Za-z0-9._:-]")
	}
	ctx := r.Context()
	ri, err := s.realm(ctx, c.p.realm)
	if err != nil {
		return err
	}
	now := s.now()
	until := now.Add(ri.tokenWindow())
	if _, err := s.st.AddRevocation(ctx, store.Revocation{
		Realm: ri.realm.Name, Kind: store.RevokeSession, Value: session, Until: until, CreatedAt: now,
	}); err != nil {
		return errStore(err, "revocation")
	}
	s.changed(ctx, c, "session.revoke", session, map[string]string{"until": until.UTC().Format(time.RFC3339)}, true)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// signerCacheTTL bounds how long the realm's active signing key is assumed unchanged; a
// rotation through this process takes effect at once.
const signerCacheTTL = time.Second

// signerCache keeps each realm's active signing key unsealed: unsealing per token would cost
// more than signing.
type signerCache struct {
	mu     sync.RWMutex
	active map[string]activeSigner
	byKID  map[string]*signer.TokenSigner
}

type activeSigner struct {
	ts *signer.TokenSigner
	at time.Time
}

func (s *Server) activeSigner(ctx context.Context, realm string) (*signer.TokenSigner, error) {
	c := &s.signers
	c.mu.RLock()
	a, ok := c.active[realm]
	c.mu.RUnlock()
	if ok && time.Since(a.at) < signerCacheTTL {
		return a.ts, nil
	}
	k, err := s.st.ActiveSigningKey(ctx, realm)
	if err != nil {
		if isStatus(errStore(err, "signing key"), http.StatusNotFound) {
			return nil, conflict("", "realm "+quote(realm)+" has no active signing key: POST /v1/signing-keys/rotate")
		}
		return nil, errStore(err, "signing key")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	ts, ok := c.byKID[realm+"/"+k.KID]
	if !ok {
		if ts, err = signer.LoadTokenSigner(k, s.sealer); err != nil {
			return nil, err // a wrong master key: internal, logged
		}
		if c.byKID == nil {
			c.byKID = make(map[string]*signer.TokenSigner)
			c.active = make(map[string]activeSigner)
		}
		c.byKID[realm+"/"+k.KID] = ts
	}
	c.active[realm] = activeSigner{ts: ts, at: time.Now()}
	return ts, nil
}

// dropSigner forgets a realm's active key after a rotation here.
func (c *signerCache) drop(realm string) {
	c.mu.Lock()
	delete(c.active, realm)
	c.mu.Unlock()
}
