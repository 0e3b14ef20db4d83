package api

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/latchkeyhq/latchkey/controlplane/policyfile"
	"github.com/latchkeyhq/latchkey/controlplane/publisher"
	"github.com/latchkeyhq/latchkey/controlplane/signer"
	"github.com/latchkeyhq/latchkey/controlplane/store"
	"github.com/latchkeyhq/latchkey/shared/apikey"
	"github.com/latchkeyhq/latchkey/shared/policy"
)

// changed records a mutation in the audit log and, when it alters what the realm's snapshot
// holds, nudges the publisher. The mutation has happened: a failed audit append is logged,
// not reported as the request's failure (a retry would repeat the mutation).
func (s *Server) changed(ctx context.Context, c *call, action, target string, detail map[string]string, notify bool) {
	s.auditEvent(ctx, c.p.realm, c.p.key.ID, c.id, action, target, detail)
	if notify {
		s.pub.Notify(c.p.realm)
	}
}

func (s *Server) auditEvent(ctx context.Context, realm, actor, reqID, action, target string, detail map[string]string) {
	_, err := s.st.AppendAudit(context.WithoutCancel(ctx), store.AuditEvent{
		Realm: realm, At: s.now(), Actor: actor, Action: action, Target: target, Detail: detail,
	})
	if err != nil {
		s.log.Error("api: audit append failed", "request_id", reqID, "realm", realm, "action", action, "target", target, "err", err)
	}
}

func (s *Server) health(w http.ResponseWriter, r *http.Request, _ *call) error {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.st.Ping(ctx); err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable"})
		return nil
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	return nil
}

func (s *Server) metricsHandler(w http.ResponseWriter, r *http.Request, _ *call) error {
	s.metrics.handler.ServeHTTP(w, r)
	return nil
}

func (s *Server) openapi(w http.ResponseWriter, _ *http.Request, _ *call) error {
	h := w.Header()
	h.Set("Content-Type", "application/yaml")
	h.Set("Content-Length", strconv.Itoa(len(OpenAPI)))
	_, _ = w.Write(OpenAPI)
	return nil
}

func (s *Server) jwks(w http.ResponseWriter, r *http.Request, _ *call) error {
	q := newQuery(r)
	realm := q.str("realm")
	if err := q.done(); err != nil {
		return err
	}
	if realm == "" {
		realm = DefaultRealm
	}
	if !validRealmName(realm) {
		return invalid("realm", "must be a realm name: 1..63 characters of [a-z0-9-], starting with a letter")
	}
	ctx := r.Context()
	if _, err := s.realm(ctx, realm); err != nil {
		return err
	}
	keys, err := s.st.ListSigningKeys(ctx, realm)
	if err != nil {
		return errStore(err, "signing key")
	}
	b, err := signer.JWKS(keys, s.now())
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	// Edges verify from snapshots; the JWKS serves third parties. A rotation signs with the new
	// key at once, so a cached copy must be short-lived (verifiers refetch on an unknown kid).
	h.Set("Cache-Control", "public, max-age=60")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	_, _ = w.Write(b)
	return nil
}

// realmJSON is a realm as the API shows it.
type realmJSON struct {
	Name            string    `json:"name"`
	CreatedAt       time.Time `json:"created_at"`
	SnapshotVersion uint64    `json:"snapshot_version"`
	PolicyVersion   uint64    `json:"policy_version"`
}

func toRealmJSON(r store.Realm) realmJSON {
	return realmJSON{Name: r.Name, CreatedAt: r.CreatedAt.UTC(), SnapshotVersion: r.SnapshotVersion, PolicyVersion: r.PolicyVersion}
}

func (s *Server) getRealm(w http.ResponseWriter, r *http.Request, c *call) error {
	rl, err := s.st.GetRealm(r.Context(), c.p.realm)
	if err != nil {
		return errStore(err, "realm")
	}
	writeJSON(w, http.StatusOK, toRealmJSON(rl))
	return nil
}

func (s *Server) listRealms(w http.ResponseWriter, r *http.Request, _ *call) error {
	rs, err := s.st.ListRealms(r.Context())
	if err != nil {
		return errStore(err, "realm")
	}
	out := make([]realmJSON, len(rs))
	for i, rl := range rs {
		out[i] = toRealmJSON(rl)
	}
	writeJSON(w, http.StatusOK, map[string][]realmJSON{"data": out})
	return nil
}

type createRealmRequest struct {
	Name string `json:"name" validate:"required,realm_name"`
}

type createRealmResponse struct {
	Realm    realmJSON `json:"realm"`
	AdminKey string    `json:"admin_key"`
}

func (s *Server) createRealm(w http.ResponseWriter, r *http.Request, c *call) error {
	var req createRealmRequest
	if err := s.decodeJSON(w, r, &req, false); err != nil {
		return err
	}
	ctx := r.Context()
	key, err := CreateRealm(ctx, s.st, s.sealer, req.Name, nil, s.now())
	if err != nil {
		if errors.Is(err, store.ErrConflict) {
			return conflict("name", "realm "+strconv.Quote(req.Name)+" already exists")
		}
		return errStore(err, "realm")
	}
	s.realms.invalidate()
	rl, err := s.st.GetRealm(ctx, req.Name)
	if err != nil {
		return errStore(err, "realm")
	}
	s.changed(ctx, c, "realm.create", req.Name, nil, false)
	s.pub.Notify(req.Name)
	writeJSON(w, http.StatusCreated, createRealmResponse{Realm: toRealmJSON(rl), AdminKey: key})
	return nil
}

// signingKeyJSON is a signing key's public description.
type signingKeyJSON struct {
	KID       string     `json:"kid"`
	Alg       string     `json:"alg"`
	CreatedAt time.Time  `json:"created_at"`
	RetiredAt *time.Time `json:"retired_at"`
	NotAfter  *time.Time `json:"not_after"`
	Active    bool       `json:"active"`
}

func toSigningKeyJSON(k store.SigningKey) signingKeyJSON {
	return signingKeyJSON{
		KID: k.KID, Alg: k.Alg, CreatedAt: k.CreatedAt.UTC(), RetiredAt: utcPtr(k.RetiredAt),
		NotAfter: utcPtr(k.NotAfter), Active: k.RetiredAt == nil,
	}
}

func (s *Server) listSigningKeys(w http.ResponseWriter, r *http.Request, c *call) error {
	keys, err := s.st.ListSigningKeys(r.Context(), c.p.realm)
	if err != nil {
		return errStore(err, "signing key")
	}
	out := make([]signingKeyJSON, len(keys))
	for i, k := range keys {
		out[i] = toSigningKeyJSON(k)
	}
	writeJSON(w, http.StatusOK, map[string][]signingKeyJSON{"data": out})
	return nil
}

type rotateSigningKeyRequest struct {
	Alg string `json:"alg" validate:"omitempty,oneof=EdDSA ES256"`
}

type rotateSigningKeyResponse struct {
	Active  signingKeyJSON  `json:"active"`
	Retired *signingKeyJSON `json:"retired"`
}

// rotateSigningKey makes a new key the realm's active one. The retired key's public half
// stays published until every token it signed has expired (now + max TTL + leeway).
func (s *Server) rotateSigningKey(w http.ResponseWriter, r *http.Request, c *call) error {
	var req rotateSigningKeyRequest
	if err := s.decodeJSON(w, r, &req, true); err != nil {
		return err
	}
	ctx := r.Context()
	ri, err := s.realm(ctx, c.p.realm)
	if err != nil {
		return err
	}
	now := s.now()
	old, err := s.st.ActiveSigningKey(ctx, c.p.realm)
	hasOld := err == nil
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return errStore(err, "signing key")
	}
	alg := req.Alg
	if alg == "" {
		alg = store.AlgEdDSA
		if hasOld {
			alg = old.Alg
		}
	}
	nk, err := signer.NewSigningKey(c.p.realm, alg, now, s.sealer)
	if err != nil {
		return err
	}
	var resp rotateSigningKeyResponse
	if hasOld {
		prev, created, err := s.st.RotateSigningKey(ctx, c.p.realm, old.KID, nk, now.Add(ri.tokenWindow()))
		if err != nil {
			return errStore(err, "signing key")
		}
		pj := toSigningKeyJSON(prev)
		resp = rotateSigningKeyResponse{Active: toSigningKeyJSON(created), Retired: &pj}
	} else {
		created, err := s.st.CreateSigningKey(ctx, nk)
		if err != nil {
			return errStore(err, "signing key")
		}
		resp.Active = toSigningKeyJSON(created)
	}
	s.signers.drop(c.p.realm)
	detail := map[string]string{"alg": alg}
	if resp.Retired != nil {
		detail["retired"] = resp.Retired.KID
	}
	s.changed(ctx, c, "signing_key.rotate", resp.Active.KID, detail, true)
	writeJSON(w, http.StatusOK, resp)
	return nil
}

type orgJSON struct {
	Org       string    `json:"org"`
	State     string    `json:"state"`
	UpdatedAt time.Time `json:"updated_at"`
}

type setOrgRequest struct {
	State string `json:"state" validate:"required,oneof=active budget_exhausted suspended"`
}

func (s *Server) setOrg(w http.ResponseWriter, r *http.Request, c *call) error {
	org := r.PathValue("org")
	if !validIDText(org, maxOrgBytes) {
		return invalid("org", "must be an org id: 1..128 characters of [A-Za-z0-9._:-]")
	}
	var req setOrgRequest
	if err := s.decodeJSON(w, r, &req, false); err != nil {
		return err
	}
	ctx := r.Context()
	st, err := s.st.SetOrgState(ctx, store.OrgState{Realm: c.p.realm, Org: org, State: req.State, UpdatedAt: s.now()})
	if err != nil {
		return errStore(err, "org")
	}
	s.changed(ctx, c, "org.set", org, map[string]string{"state": st.State}, true)
	writeJSON(w, http.StatusOK, orgJSON{Org: st.Org, State: st.State, UpdatedAt: st.UpdatedAt.UTC()})
	return nil
}

func (s *Server) listOrgs(w http.ResponseWriter, r *http.Request, c *call) error {
	states, err := s.st.ListOrgStates(r.Context(), c.p.realm)
	if err != nil {
		return errStore(err, "org")
	}
	out := make([]orgJSON, len(states))
	for i, st := range states {
		out[i] = orgJSON{Org: st.Org, State: st.State, UpdatedAt: st.UpdatedAt.UTC()}
	}
	writeJSON(w, http.StatusOK, map[string][]orgJSON{"data": out})
	return nil
}

// putPolicy stores a new policy version for the caller's realm after the same checks an edge
// relies on: strict parsing, validation, and a canonical encoding that fits a snapshot.
func (s *Server) putPolicy(w http.ResponseWriter, r *http.Request, c *call) error {
	if err := requireMediaType(r, "application/yaml", "text/yaml", "application/x-yaml"); err != nil {
		return err
	}
	body, err := readBody(w, r, max(s.maxBody, policyfile.MaxFileBytes))
	if err != nil {
		return err
	}
	if len(body) == 0 {
		return invalid("", "request body is required: the policy YAML")
	}
	p, err := policyfile.Parse(body)
	if err != nil {
		return policyProblems(err)
	}
	if p.Realm != c.p.realm {
		return invalid("realm", strconv.Quote(p.Realm)+" is not this realm ("+strconv.Quote(c.p.realm)+"): a policy is put in the realm it names")
	}
	if err := checkRealmPolicy(p); err != nil {
		return err
	}
	ctx := r.Context()
	sp, err := s.st.PutPolicy(ctx, store.Policy{Realm: c.p.realm, YAML: body, CreatedAt: s.now(), CreatedBy: c.p.key.ID})
	if err != nil {
		return errStore(err, "policy")
	}
	s.realms.invalidate()
	s.changed(ctx, c, "policy.put", "v"+strconv.FormatUint(sp.Version, 10), map[string]string{"version": strconv.FormatUint(sp.Version, 10)}, true)
	writeJSON(w, http.StatusCreated, map[string]uint64{"version": sp.Version})
	return nil
}

// checkRealmPolicy is what the control plane requires of a valid policy beyond the core's
// validation: it must encode for a snapshot, and its key types must stay clear of the
// built-in admin key type (its name and its prefix).
func checkRealmPolicy(p *policy.Policy) error {
	for i, kt := range p.KeyTypes {
		f := "key_types[" + itoa(i) + "]"
		if kt.Name == AdminKeyType {
			return invalid(f+".name", strconv.Quote(AdminKeyType)+" is reserved for admin keys")
		}
		if overlapsAdminPrefix(kt) {
			return invalid(f+".prefix", strconv.Quote(kt.Prefix)+" could match admin keys ("+strconv.Quote(AdminKeySpec.Prefix)+")")
		}
	}
	if _, err := policy.Encode(p); err != nil {
		return policyProblems(err)
	}
	return nil
}

// overlapsAdminPrefix reports whether a realm key type could produce keys shaped like admin
// keys: a prefix inside the admin prefix's namespace, or a shorter one followed by a body
// that may spell "admin_…" (only the opaque format's alphabet holds '_').
func overlapsAdminPrefix(kt policy.KeyType) bool {
	ap := AdminKeySpec.Prefix
	if strings.HasPrefix(kt.Prefix, ap) {
		return true
	}
	return strings.HasPrefix(ap, kt.Prefix) && kt.Format == apikey.FormatOpaque.String()
}

// policyProblems turns policyfile's joined errors into a 422 listing each, the first one's
// field on top.
func policyProblems(err error) error {
	var list []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		list = j.Unwrap()
	} else {
		list = []error{err}
	}
	e := &Error{Status: http.StatusUnprocessableEntity, Code: CodeInvalidRequest}
	for _, one := range list {
		fp := FieldProblem{Message: one.Error()}
		var pe *policyfile.Error
		if errors.As(one, &pe) {
			fp.Line = pe.Line
			fp.Message = pe.Err.Error()
		}
		var fe *policy.FieldError
		if errors.As(one, &fe) {
			fp.Field, fp.Message = fe.Field, fe.Msg
		}
		e.Details = append(e.Details, fp)
	}
	if len(e.Details) == 0 {
		e.Details = []FieldProblem{{Message: err.Error()}}
	}
	first := e.Details[0]
	e.Field = first.Field
	e.Message = "the policy is invalid: " + first.Message
	if first.Field != "" {
		e.Message = "the policy is invalid: " + first.Field + ": " + first.Message
	}
	if first.Line > 0 {
		e.Message += " (line " + itoa(first.Line) + ")"
	}
	if n := len(e.Details); n > 1 {
		e.Message += " (and " + itoa(n-1) + " more problems, see details)"
	}
	return e
}

func (s *Server) getPolicy(w http.ResponseWriter, r *http.Request, c *call) error {
	q := newQuery(r)
	v := q.integer("version")
	if err := q.done(); err != nil {
		return err
	}
	ctx := r.Context()
	var (
		p   store.Policy
		err error
	)
	if v != nil {
		if *v < 1 {
			return invalid("version", "must be at least 1")
		}
		p, err = s.st.GetPolicy(ctx, c.p.realm, uint64(*v))
	} else {
		p, err = s.st.LatestPolicy(ctx, c.p.realm)
	}
	if err != nil {
		return errStore(err, "policy")
	}
	h := w.Header()
	h.Set("Content-Type", "application/yaml")
	h.Set("Latchkey-Policy-Version", strconv.FormatUint(p.Version, 10))
	h.Set("Content-Length", strconv.Itoa(len(p.YAML)))
	_, _ = w.Write(p.YAML)
	return nil
}

type policyVersionJSON struct {
	Version   uint64    `json:"version"`
	CreatedAt time.Time `json:"created_at"`
	CreatedBy string    `json:"created_by"`
}

func (s *Server) listPolicies(w http.ResponseWriter, r *http.Request, c *call) error {
	page, err := pageFrom(newQuery(r))
	if err != nil {
		return err
	}
	ps, next, err := s.st.ListPolicies(r.Context(), c.p.realm, page)
	if err != nil {
		return errStore(err, "policy")
	}
	out := make([]policyVersionJSON, len(ps))
	for i, p := range ps {
		out[i] = policyVersionJSON{Version: p.Version, CreatedAt: p.CreatedAt.UTC(), CreatedBy: p.CreatedBy}
	}
	writeJSON(w, http.StatusOK, listResponse[policyVersionJSON]{Data: out, NextCursor: next})
	return nil
}

type auditJSON struct {
	ID     uint64            `json:"id"`
	At     time.Time         `json:"at"`
	Actor  string            `json:"actor"`
	Action string            `json:"action"`
	Target string            `json:"target"`
	Detail map[string]string `json:"detail"`
}

func (s *Server) listAudit(w http.ResponseWriter, r *http.Request, c *call) error {
	q := newQuery(r)
	f := store.AuditFilter{Action: q.str("action"), Target: q.str("target")}
	since := q.str("since")
	page, err := pageFrom(q)
	if err != nil {
		return err
	}
	switch {
	case len(f.Action) > 255 || !validText(f.Action):
		return invalid("action", "must be an audit action (key.create, token.mint, …)")
	case len(f.Target) > maxTargetBytes || !validText(f.Target):
		return invalid("target", "must be at most 1024 characters of text")
	}
	if since != "" {
		t, err := parseTime(since)
		if err != nil {
			return invalid("since", "must be an RFC 3339 time (2026-01-02T15:04:05Z)")
		}
		f.Since = t
	}
	events, next, err := s.st.ListAudit(r.Context(), c.p.realm, f, page)
	if err != nil {
		return errStore(err, "audit event")
	}
	out := make([]auditJSON, len(events))
	for i, e := range events {
		d := e.Detail
		if d == nil {
			d = map[string]string{}
		}
		out[i] = auditJSON{ID: e.ID, At: e.At.UTC(), Actor: e.Actor, Action: e.Action, Target: e.Target, Detail: d}
	}
	writeJSON(w, http.StatusOK, listResponse[auditJSON]{Data: out, NextCursor: next})
	return nil
}

// statusJSON is a publisher status; LagMS and LastError appear on GET /v1/snapshots/status.
type statusJSON struct {
	Version     uint64     `json:"version"`
	Full        bool       `json:"full"`
	BaseVersion uint64     `json:"base_version"`
	PublishedAt *time.Time `json:"published_at"`
	ChangeSeq   uint64     `json:"change_seq"`
	Keys        int        `json:"keys"`
	LagMS       *int64     `json:"lag_ms,omitempty"`
	LastError   *string    `json:"last_error,omitempty"`
}

func toStatusJSON(st publisher.Status, withLag bool) statusJSON {
	j := statusJSON{Version: st.Version, Full: st.Full, BaseVersion: st.BaseVersion, ChangeSeq: st.ChangeSeq, Keys: st.Keys}
	if !st.PublishedAt.IsZero() {
		t := st.PublishedAt.UTC()
		j.PublishedAt = &t
	}
	if withLag {
		lag, le := st.Lag.Milliseconds(), st.LastError
		j.LagMS, j.LastError = &lag, &le
	}
	return j
}

func (s *Server) publish(w http.ResponseWriter, r *http.Request, c *call) error {
	ctx := r.Context()
	st, err := s.pub.PublishNow(ctx, c.p.realm)
	s.metrics.published(c.p.realm, st, err)
	if err != nil {
		s.log.Error("api: publish failed", "request_id", c.id, "realm", c.p.realm, "err", err)
		return unavailable("the snapshot could not be published; GET /v1/snapshots/status shows the last error")
	}
	s.refreshKeyGauge(ctx, c.p.realm)
	s.changed(ctx, c, "snapshot.publish", c.p.realm, map[string]string{"version": strconv.FormatUint(st.Version, 10)}, false)
	writeJSON(w, http.StatusOK, toStatusJSON(st, false))
	return nil
}

func (s *Server) snapshotStatus(w http.ResponseWriter, _ *http.Request, c *call) error {
	writeJSON(w, http.StatusOK, toStatusJSON(s.pub.Status(c.p.realm), true))
	return nil
}
