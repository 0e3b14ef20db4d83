package api

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/latchkeyhq/latchkey/controlplane/store"
	"github.com/latchkeyhq/latchkey/shared/apikey"
	"github.com/latchkeyhq/latchkey/shared/hostcrypto"
	"github.com/latchkeyhq/latchkey/shared/policy"
)

// keyJSON is a key as the API shows it: everything but the secret, of which only the prefix
// and last 4 characters are ever shown.
type keyJSON struct {
	ID          string     `json:"id"`
	Type        string     `json:"type"`
	Name        string     `json:"name"`
	Prefix      string     `json:"prefix"`
	Last4       string     `json:"last4"`
	Scopes      []string   `json:"scopes"`
	Org         string     `json:"org"`
	Agents      []string   `json:"agents"`
	Admin       bool       `json:"admin"`
	Imported    bool       `json:"imported"`
	CreatedAt   time.Time  `json:"created_at"`
	ExpiresAt   *time.Time `json:"expires_at"`
	RevokedAt   *time.Time `json:"revoked_at"`
	RotatedFrom *string    `json:"rotated_from"`
}

func toKeyJSON(k store.APIKey) keyJSON {
	j := keyJSON{
		ID: k.ID, Type: k.Type, Name: k.Name, Prefix: k.Prefix, Last4: k.Last4,
		Scopes: orEmpty(k.Scopes), Org: k.Org, Agents: orEmpty(k.Agents), Admin: k.Admin,
		Imported: k.Imported, CreatedAt: k.CreatedAt.UTC(), ExpiresAt: utcPtr(k.ExpiresAt),
		RevokedAt: utcPtr(k.RevokedAt),
	}
	if k.RotatedFrom != "" {
		j.RotatedFrom = &k.RotatedFrom
	}
	return j
}

func orEmpty(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

type createKeyRequest struct {
	Type   string   `json:"type" validate:"required,max=255,text"`
	Name   string   `json:"name" validate:"max=256,text"`
	Scopes []string `json:"scopes" validate:"omitempty,max=64,unique,dive,scope"`
	Org    string   `json:"org" validate:"omitempty,org_id"`
	Agents []string `json:"agents" validate:"max=1024,unique,dive,agent_id"`
	// ExpiresAt is text so that a malformed time is a 422 naming the field.
	ExpiresAt *string `json:"expires_at" validate:"omitempty,rfc3339"`
}

type secretResponse struct {
	Key      keyJSON  `json:"key"`
	Secret   string   `json:"secret"`
	Previous *keyJSON `json:"previous,omitempty"`
}

// keyKind is what a key type allows, for realm types and the built-in admin type alike.
// DefaultOrg is the org of a realm key created or imported without one.
const DefaultOrg = "default"

type keyKind struct {
	admin bool
	kt    *policy.CompiledKeyType // nil for admin
	spec  apikey.Spec
}

func (s *Server) kindOf(ri *realmInfo, typ, field string) (keyKind, error) {
	if typ == AdminKeyType {
		return keyKind{admin: true, spec: AdminKeySpec}, nil
	}
	i := ri.policy.KeyTypeIndex(typ)
	if i < 0 {
		return keyKind{}, invalid(field, "unknown key type "+strconv.Quote(typ)+" (not in the realm's key_types, nor \"admin\")")
	}
	kt := ri.policy.KeyType(i)
	return keyKind{kt: kt, spec: kt.Spec}, nil
}

// scopesFor resolves a key's requested scopes: the type's defaults when nil, else each one
// known to the realm (admin scopes for admin keys) and within the type's scope_cap.
func (k keyKind) scopesFor(p *policy.Compiled, req []string, field string) ([]string, error) {
	if k.admin {
		if req == nil {
			return nil, invalid(field, "is required for admin keys (e.g. [\"keys:read\"])")
		}
		for i, sc := range req {
			if !slices.Contains(AdminScopes, sc) {
				return nil, invalid(field+"["+itoa(i)+"]", "unknown admin scope "+strconv.Quote(sc)+" (one of "+strings.Join(AdminScopes, ", ")+")")
			}
		}
		return req, nil
	}
	if req == nil {
		return orEmpty(p.ScopeNames(k.kt.Default)), nil
	}
	for i, sc := range req {
		f := field + "[" + itoa(i) + "]"
		m, err := p.ScopeMask([]string{sc})
		if err != nil {
			return nil, invalid(f, "unknown scope "+strconv.Quote(sc))
		}
		if m&^k.kt.Cap != 0 {
			return nil, invalid(f, "scope "+strconv.Quote(sc)+" is outside the scope_cap of key type "+strconv.Quote(k.kt.Name))
		}
	}
	return req, nil
}

// mayTouch refuses a change to an admin key by a caller without the admin scope: otherwise a
// keys:write key could grant itself more.
func mayTouch(c *call, k store.APIKey) error {
	if k.Admin && !c.p.has(ScopeAdmin) {
		return forbidden("", `missing scope "admin": admin keys are changed only with it`)
	}
	return nil
}

func (s *Server) futureTime(field string, v *string) (*time.Time, error) {
	if v == nil {
		return nil, nil
	}
	t, err := parseTime(*v)
	if err != nil {
		return nil, invalid(field, "must be an RFC 3339 time (2026-01-02T15:04:05Z)")
	}
	if !t.After(s.now()) {
		return nil, invalid(field, "must be in the future")
	}
	return &t, nil
}

func (s *Server) createKey(w http.ResponseWriter, r *http.Request, c *call) error {
	var req createKeyRequest
	if err := s.decodeJSON(w, r, &req, false); err != nil {
		return err
	}
	ctx := r.Context()
	ri, err := s.realmPolicy(ctx, c.p.realm)
	if err != nil {
		return err
	}
	kind, err := s.kindOf(ri, req.Type, "type")
	if err != nil {
		return err
	}
	if kind.admin && !c.p.has(ScopeAdmin) {
		return forbidden("type", `missing scope "admin": creating an admin key needs it`)
	}
	if !kind.admin && req.Org == "" {
		// Every published key belongs to an org (the edge's org state and identity header
		// hang on it): a key created without one joins the realm's DefaultOrg.
		req.Org = DefaultOrg
	}
	if kind.spec.Format == apikey.FormatOpaque {
		return invalid("type", "key type "+strconv.Quote(req.Type)+" is import-only (format opaque): use POST /v1/keys/import")
	}
	if kind.admin && len(req.Agents) > 0 {
		return invalid("agents", "admin keys act for no agent")
	}
	scopes, err := kind.scopesFor(ri.policy, req.Scopes, "scopes")
	if err != nil {
		return err
	}
	exp, err := s.futureTime("expires_at", req.ExpiresAt)
	if err != nil {
		return err
	}
	rec := store.APIKey{
		Realm: ri.realm.Name, Name: req.Name, Type: req.Type, Scopes: scopes, Org: req.Org,
		Agents: orEmpty(req.Agents), ExpiresAt: exp, Admin: kind.admin,
	}
	k, secret, err := s.issueKey(ctx, kind.spec, rec)
	if err != nil {
		return err
	}
	s.changed(ctx, c, "key.create", k.ID, map[string]string{
		"type": k.Type, "name": k.Name, "scopes": strings.Join(k.Scopes, " "), "org": k.Org,
		"admin": strconv.FormatBool(k.Admin),
	}, !k.Admin)
	writeJSON(w, http.StatusCreated, secretResponse{Key: toKeyJSON(k), Secret: secret.Reveal()})
	return nil
}

// issueKey generates a key of spec and stores rec with its hash. A taken id (an 80-bit hash
// prefix) is astronomically unlikely but refused by the store; a fresh key is drawn then.
func (s *Server) issueKey(ctx context.Context, spec apikey.Spec, rec store.APIKey) (store.APIKey, apikey.Key, error) {
	var err error
	for range 3 {
		var key apikey.Key
		key, err = generateKey(spec, &rec)
		if err != nil {
			return store.APIKey{}, apikey.Key{}, err
		}
		rec.CreatedAt = s.now()
		var k store.APIKey
		k, err = s.st.CreateKey(ctx, rec)
		if err == nil {
			return k, key, nil
		}
		if !takenID(err) {
			break
		}
	}
	return store.APIKey{}, apikey.Key{}, errStore(err, "key")
}

// takenID reports a store conflict on a generated key's id or hash: drawing another key
// resolves it (any other conflict is the caller's).
func takenID(err error) bool {
	var se *store.Error
	return errors.As(err, &se) && errors.Is(err, store.ErrConflict) && (se.Field == "id" || se.Field == "hash")
}

// generateKey draws a key and fills rec's hash, id, prefix and last 4.
func generateKey(spec apikey.Spec, rec *store.APIKey) (apikey.Key, error) {
	key, err := spec.Generate(rand.Reader)
	if err != nil {
		return apikey.Key{}, err
	}
	rec.Hash = apikey.HashOf(hostcrypto.Std, []byte(key.Reveal()))
	rec.ID = rec.Hash.ID().String()
	rec.Prefix = spec.Prefix
	rec.Last4 = key.Last4()
	return key, nil
}

func (s *Server) listKeys(w http.ResponseWriter, r *http.Request, c *call) error {
	q := newQuery(r)
	f := store.KeyFilter{
		Type: q.str("type"), Org: q.str("org"), NamePrefix: q.str("name_prefix"), Now: s.now(),
	}
	if b := q.boolean("include_revoked"); b != nil {
		f.IncludeRevoked = *b
	}
	f.Admin = q.boolean("admin")
	page, err := pageFrom(q)
	if err != nil {
		return err
	}
	switch {
	case len(f.Type) > 255 || !validText(f.Type):
		return invalid("type", "must be a key type name")
	case f.Org != "" && !validIDText(f.Org, maxOrgBytes):
		return invalid("org", "must be an org id: 1..128 characters of [A-Za-z0-9._:-]")
	case len(f.NamePrefix) > maxNameBytes || !validText(f.NamePrefix):
		return invalid("name_prefix", "must be at most 256 characters of text")
	}
	keys, next, err := s.st.ListKeys(r.Context(), c.p.realm, f, page)
	if err != nil {
		return errStore(err, "key")
	}
	out := make([]keyJSON, len(keys))
	for i, k := range keys {
		out[i] = toKeyJSON(k)
	}
	writeJSON(w, http.StatusOK, listResponse[keyJSON]{Data: out, NextCursor: next})
	return nil
}

type listResponse[T any] struct {
	Data       []T    `json:"data"`
	NextCursor string `json:"next_cursor"`
}

// pageFrom reads limit and cursor and checks the rest of the query.
func pageFrom(q *query) (store.Page, error) {
	var p store.Page
	if n := q.integer("limit"); n != nil {
		if *n < 1 || *n > store.MaxLimit {
			if q.err == nil {
				q.err = invalid("limit", "must be 1.."+itoa(store.MaxLimit))
			}
		} else {
			p.Limit = int(*n)
		}
	}
	p.Cursor = q.str("cursor")
	if err := q.done(); err != nil {
		return p, err
	}
	if len(p.Cursor) > maxCursorBytes || !validText(p.Cursor) {
		return p, invalid("cursor", "is not a cursor this API returned")
	}
	return p, nil
}

// keyID reads and checks the {id} path parameter.
func keyID(r *http.Request) (string, error) {
	id := r.PathValue("id")
	if _, err := apikey.ParseID(id); err != nil {
		return "", invalid("id", "must be a key id: \"key_\" followed by 20 lowercase hex characters")
	}
	return id, nil
}

func (s *Server) getKey(w http.ResponseWriter, r *http.Request, c *call) error {
	id, err := keyID(r)
	if err != nil {
		return err
	}
	k, err := s.st.GetKey(r.Context(), c.p.realm, id)
	if err != nil {
		return errStore(err, "key")
	}
	writeJSON(w, http.StatusOK, toKeyJSON(k))
	return nil
}

// optionalTime is a JSON field that can be absent (leave as is), null (clear) or a time.
type optionalTime struct {
	Set   bool
	Value *string
}

func (o *optionalTime) UnmarshalJSON(b []byte) error {
	o.Set = true
	if string(b) == "null" {
		o.Value = nil
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return &json.UnmarshalTypeError{Value: jsonKind(b), Type: reflect.TypeFor[string]()}
	}
	o.Value = &s
	return nil
}

type updateKeyRequest struct {
	Name      *string      `json:"name" validate:"omitempty,max=256,text"`
	Scopes    *[]string    `json:"scopes" validate:"omitempty,max=64,unique,dive,scope"`
	ExpiresAt optionalTime `json:"expires_at"`
}

func (s *Server) updateKey(w http.ResponseWriter, r *http.Request, c *call) error {
	id, err := keyID(r)
	if err != nil {
		return err
	}
	var req updateKeyRequest
	if err := s.decodeJSON(w, r, &req, false); err != nil {
		return err
	}
	ctx := r.Context()
	old, err := s.st.GetKey(ctx, c.p.realm, id)
	if err != nil {
		return errStore(err, "key")
	}
	if err := mayTouch(c, old); err != nil {
		return err
	}
	var u store.KeyUpdate
	detail := map[string]string{}
	if req.Name != nil {
		u.Name = req.Name
		detail["name"] = *req.Name
	}
	if req.Scopes != nil {
		ri, err := s.realmPolicy(ctx, c.p.realm)
		if err != nil {
			return err
		}
		kind, err := s.kindOf(ri, old.Type, "scopes")
		if err != nil {
			return conflict("scopes", "the key's type "+strconv.Quote(old.Type)+" is no longer in the realm's policy")
		}
		scopes, err := kind.scopesFor(ri.policy, *req.Scopes, "scopes")
		if err != nil {
			return err
		}
		u.Scopes = &scopes
		detail["scopes"] = strings.Join(scopes, " ")
	}
	if req.ExpiresAt.Set {
		exp, err := s.futureTime("expires_at", req.ExpiresAt.Value)
		if err != nil {
			return err
		}
		u.ExpiresAt = &exp
		detail["expires_at"] = ""
		if exp != nil {
			detail["expires_at"] = exp.Format(time.RFC3339)
		}
	}
	if len(detail) == 0 {
		writeJSON(w, http.StatusOK, toKeyJSON(old))
		return nil
	}
	k, err := s.st.UpdateKey(ctx, c.p.realm, id, u)
	if err != nil {
		return errStore(err, "key")
	}
	s.auth.drop(k.Hash)
	s.changed(ctx, c, "key.update", k.ID, detail, !k.Admin)
	writeJSON(w, http.StatusOK, toKeyJSON(k))
	return nil
}

type rotateKeyRequest struct {
	GraceSeconds int64 `json:"grace_seconds" validate:"min=0,max=2592000"`
}

func (s *Server) rotateKey(w http.ResponseWriter, r *http.Request, c *call) error {
	id, err := keyID(r)
	if err != nil {
		return err
	}
	var req rotateKeyRequest
	if err := s.decodeJSON(w, r, &req, true); err != nil {
		return err
	}
	ctx := r.Context()
	old, err := s.st.GetKey(ctx, c.p.realm, id)
	if err != nil {
		return errStore(err, "key")
	}
	if err := mayTouch(c, old); err != nil {
		return err
	}
	ri, err := s.realmPolicy(ctx, c.p.realm)
	if err != nil {
		return err
	}
	kind, err := s.kindOf(ri, old.Type, "")
	if err != nil {
		return conflict("", "the key's type "+strconv.Quote(old.Type)+" is no longer in the realm's policy")
	}
	if kind.spec.Format == apikey.FormatOpaque {
		return conflict("", "key type "+strconv.Quote(old.Type)+" is import-only (format opaque): its keys cannot be rotated into generated ones")
	}
	now := s.now()
	if old.ExpiresAt != nil && !old.ExpiresAt.After(now) {
		return conflict("id", "the key has expired: create a new one")
	}
	rec := store.APIKey{
		Realm: old.Realm, Name: old.Name, Type: old.Type, Scopes: old.Scopes, Org: old.Org,
		Agents: old.Agents, ExpiresAt: old.ExpiresAt, Admin: old.Admin, RotatedFrom: old.ID, CreatedAt: now,
	}
	var (
		prev, k store.APIKey
		key     apikey.Key
	)
	revokeAt := now.Add(time.Duration(req.GraceSeconds) * time.Second)
	for range 3 {
		if key, err = generateKey(kind.spec, &rec); err != nil {
			return err
		}
		if prev, k, err = s.st.RotateKey(ctx, c.p.realm, old.ID, rec, revokeAt); !takenID(err) {
			break
		}
	}
	if err != nil {
		var se *store.Error
		if errors.As(err, &se) && se.Field == "revoked_at" {
			return conflict("id", "the key is already revoked or scheduled to be")
		}
		return errStore(err, "key")
	}
	s.auth.drop(prev.Hash)
	s.changed(ctx, c, "key.rotate", prev.ID, map[string]string{
		"new_id": k.ID, "grace_seconds": strconv.FormatInt(req.GraceSeconds, 10),
	}, !k.Admin)
	pj := toKeyJSON(prev)
	writeJSON(w, http.StatusOK, secretResponse{Key: toKeyJSON(k), Secret: key.Reveal(), Previous: &pj})
	return nil
}

func (s *Server) revokeKey(w http.ResponseWriter, r *http.Request, c *call) error {
	id, err := keyID(r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	old, err := s.st.GetKey(ctx, c.p.realm, id)
	if err != nil {
		return errStore(err, "key")
	}
	if err := mayTouch(c, old); err != nil {
		return err
	}
	k, err := s.st.RevokeKey(ctx, c.p.realm, id, s.now())
	if err != nil {
		return errStore(err, "key")
	}
	s.auth.drop(k.Hash)
	s.changed(ctx, c, "key.revoke", k.ID, nil, !k.Admin)
	writeJSON(w, http.StatusOK, toKeyJSON(k))
	return nil
}

type importRequest struct {
	Keys []json.RawMessage `json:"keys" validate:"required,min=1,max=10000"`
}

type importKey struct {
	Hash      string   `json:"hash" validate:"required,sha256hex"`
	Type      string   `json:"type" validate:"required,max=255,text"`
	Name      string   `json:"name" validate:"max=256,text"`
	Scopes    []string `json:"scopes" validate:"omitempty,max=64,unique,dive,scope"`
	Org       string   `json:"org" validate:"omitempty,org_id"`
	Agents    []string `json:"agents" validate:"max=1024,unique,dive,agent_id"`
	ExpiresAt *string  `json:"expires_at" validate:"omitempty,rfc3339"`
	Prefix    string   `json:"prefix" validate:"omitempty,key_prefix"`
	Last4     string   `json:"last4" validate:"omitempty,last4"`
}

type importResponse struct {
	Imported int      `json:"imported"`
	IDs      []string `json:"ids"`
}

// importKeys stores a platform's existing keys by hash, all or none. Each element is decoded
// on its own so that every problem names its index ("keys[12].hash").
func (s *Server) importKeys(w http.ResponseWriter, r *http.Request, c *call) error {
	var req importRequest
	if err := s.decodeJSON(w, r, &req, false); err != nil {
		return err
	}
	ctx := r.Context()
	ri, err := s.realmPolicy(ctx, c.p.realm)
	if err != nil {
		return err
	}
	now := s.now()
	keys := make([]store.APIKey, len(req.Keys))
	ids := make([]string, len(req.Keys))
	seen := make(map[apikey.Hash]int, len(req.Keys))
	for i, raw := range req.Keys {
		at := "keys[" + itoa(i) + "]"
		var ik importKey
		if err := unmarshalStrict(raw, &ik, at); err != nil {
			return err
		}
		if err := s.validate.Struct(&ik); err != nil {
			return prefixField(problem(err), at)
		}
		if ik.Type == AdminKeyType {
			return invalid(at+".type", "admin keys cannot be imported")
		}
		kind, err := s.kindOf(ri, ik.Type, at+".type")
		if err != nil {
			return err
		}
		if ik.Org == "" {
			ik.Org = DefaultOrg
		}
		if ik.Prefix != "" && ik.Prefix != kind.spec.Prefix {
			return invalid(at+".prefix", "must be the prefix of key type "+strconv.Quote(ik.Type)+" ("+strconv.Quote(kind.spec.Prefix)+"): the edge finds a key's type by it")
		}
		scopes, err := kind.scopesFor(ri.policy, ik.Scopes, at+".scopes")
		if err != nil {
			return err
		}
		exp, err := s.futureTime(at+".expires_at", ik.ExpiresAt)
		if err != nil {
			return err
		}
		h, _ := apikey.ParseHash(ik.Hash)
		if j, dup := seen[h]; dup {
			return invalid(at+".hash", "is also keys["+itoa(j)+"].hash")
		}
		seen[h] = i
		keys[i] = store.APIKey{
			ID: h.ID().String(), Realm: ri.realm.Name, Hash: h, Prefix: kind.spec.Prefix, Last4: ik.Last4,
			Name: ik.Name, Type: ik.Type, Scopes: scopes, Org: ik.Org, Agents: orEmpty(ik.Agents),
			CreatedAt: now, ExpiresAt: exp, Imported: true,
		}
		ids[i] = keys[i].ID
	}
	// A hash must name one key across realms: authentication looks a key up in every realm
	// where it could be valid (see authenticate).
	rs, err := s.realms.state(ctx, s)
	if err != nil {
		return err
	}
	for _, other := range rs.list {
		if other.realm.Name == ri.realm.Name {
			continue
		}
		for i := range keys {
			_, err := s.st.GetKeyByHash(ctx, other.realm.Name, keys[i].Hash)
			if err == nil {
				return conflict("keys["+itoa(i)+"].hash", "a key with this hash exists in another realm")
			}
			if !errors.Is(err, store.ErrNotFound) {
				return errStore(err, "key")
			}
		}
	}
	if err := s.st.CreateKeys(ctx, ri.realm.Name, keys); err != nil {
		var se *store.Error
		if errors.As(err, &se) && errors.Is(err, store.ErrConflict) {
			return conflict("keys", "a key with this "+se.Field+" already exists in the realm (nothing was imported)")
		}
		return errStore(err, "key")
	}
	s.changed(ctx, c, "key.import", "", map[string]string{"count": itoa(len(keys))}, true)
	writeJSON(w, http.StatusCreated, importResponse{Imported: len(keys), IDs: ids})
	return nil
}

// prefixField puts an element's path in front of a validation error's field.
func prefixField(err error, at string) error {
	e, ok := err.(*Error)
	if !ok {
		return err
	}
	e2 := *e
	e2.Field = at + "." + e.Field
	e2.Message = at + "." + e.Message
	return &e2
}

// jsonKind names the kind of a JSON value, as encoding/json's type errors do.
func jsonKind(b []byte) string {
	switch b[0] {
	case '{':
		return "object"
	case '[':
		return "array"
	case 't', 'f':
		return "bool"
	case '"':
		return "string"
	}
	return "number"
}
