// Package api is the control plane's HTTP API: API keys, client tokens, signing keys, org
// states, policies, audit and snapshot publication under /v1, the public JWKS, health,
// Prometheus metrics and the OpenAPI 3.1 document that describes it all (openapi.yaml,
// served at /openapi.yaml). Every request is authenticated by the verification core's own
// key checks and validated before it reaches the store; bad input is a 4xx naming the field,
// never a 500.
package api

import (
	"context"
	"crypto/rand"
	_ "embed" // openapi.yaml and default-policy.yaml
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/go-playground/validator/v10"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/latchkeyhq/latchkey/controlplane/publisher"
	"github.com/latchkeyhq/latchkey/controlplane/signer"
	"github.com/latchkeyhq/latchkey/controlplane/store"
)

// OpenAPI is the API's OpenAPI 3.1 document, served at /openapi.yaml.
//
//go:embed openapi.yaml
var OpenAPI []byte

// DefaultMaxBodyBytes bounds a JSON request body when Options.MaxBodyBytes is 0. An import
// of the most keys a request may carry (10,000) fits.
const DefaultMaxBodyBytes = 1 << 20

// Publisher is what the API needs of the snapshot publisher: a nudge after each change that
// alters a realm's snapshot, an immediate publication on request, and its status.
type Publisher interface {
	Notify(realm string)
	PublishNow(ctx context.Context, realm string) (publisher.Status, error)
	Status(realm string) publisher.Status
}

// Options configures a Server. Store, Sealer and Publisher are required.
type Options struct {
	Store     store.Store
	Sealer    *signer.Sealer
	Publisher Publisher
	// Now is the clock every decision reads (key expiry, token times, audit times);
	// default time.Now.
	Now func() time.Time
	// Logger receives request failures; default: discard.
	Logger *slog.Logger
	// Registry receives the API's metrics and is what /metrics serves; default: a new one.
	Registry *prometheus.Registry
	// MaxBodyBytes bounds a JSON request body (a policy may be up to policyfile.MaxFileBytes);
	// default DefaultMaxBodyBytes.
	MaxBodyBytes int64
}

// Server serves the API. It is safe for concurrent use. Close it before closing the store.
type Server struct {
	st       store.Store
	sealer   *signer.Sealer
	pub      Publisher
	now      func() time.Time
	log      *slog.Logger
	reg      *prometheus.Registry
	maxBody  int64
	validate *validator.Validate
	metrics  *metrics
	mux      *http.ServeMux
	handler  http.Handler

	realms  realmCache
	auth    authCache
	signers signerCache
	audit   mintAuditor

	reqPrefix string
	reqSeq    atomic.Uint64
}

// New returns a Server. It registers its metrics on o.Registry, so two Servers need two
// registries.
func New(o Options) (*Server, error) {
	switch {
	case o.Store == nil:
		return nil, errors.New("api: Options.Store is required")
	case o.Sealer == nil:
		return nil, errors.New("api: Options.Sealer is required")
	case o.Publisher == nil:
		return nil, errors.New("api: Options.Publisher is required")
	case o.MaxBodyBytes < 0:
		return nil, errors.New("api: Options.MaxBodyBytes must not be negative")
	}
	s := &Server{
		st: o.Store, sealer: o.Sealer, pub: o.Publisher, now: o.Now, log: o.Logger,
		reg: o.Registry, maxBody: o.MaxBodyBytes, validate: newValidator(),
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.reg == nil {
		s.reg = prometheus.NewRegistry()
	}
	if s.maxBody == 0 {
		s.maxBody = DefaultMaxBodyBytes
	}
	m, err := newMetrics(s.reg, s)
	if err != nil {
		return nil, err
	}
	s.metrics = m
	s.audit.init(s.st, s.log)
	s.auth.init()
	var rnd [4]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return nil, err
	}
	s.reqPrefix = "req_" + hex.EncodeToString(rnd[:]) + "_"
	s.mux = http.NewServeMux()
	for _, rt := range s.routes() {
		s.mux.Handle(rt.method+" "+rt.path, s.wrap(rt))
	}
	s.handler = http.HandlerFunc(s.serve)
	return s, nil
}

// Handler returns the HTTP handler serving every route.
func (s *Server) Handler() http.Handler { return s.handler }

// access says who may call a route.
type access uint8

const (
	// accessPublic: no credential.
	accessPublic access = iota
	// accessAdmin: an admin key holding the route's scope (or "admin").
	accessAdmin
	// accessMint: an admin key holding tokens:mint, or a realm API key minting for itself.
	accessMint
	// accessRoot: an admin key of realm "default" holding "admin".
	accessRoot
)

// route is one entry of the route table: the table registers the mux and is what the
// OpenAPI tests compare the document with.
type route struct {
	method, path string
	access       access
	scope        string
	h            handlerFunc
}

// call is what a handler knows about the request beyond http.Request.
type call struct {
	p  *principal // nil on public routes
	id string     // request id, logged with failures
}

type handlerFunc func(w http.ResponseWriter, r *http.Request, c *call) error

// Admin scopes (API.md, "Auth").
const (
	ScopeAdmin            = "admin"
	ScopeKeysRead         = "keys:read"
	ScopeKeysWrite        = "keys:write"
	ScopeTokensMint       = "tokens:mint"
	ScopeSessionsRevoke   = "sessions:revoke"
	ScopeSigningKeysWrite = "signing_keys:write"
	ScopeOrgsWrite        = "orgs:write"
	ScopePolicyRead       = "policy:read"
	ScopePolicyWrite      = "policy:write"
	ScopeAuditRead        = "audit:read"
	ScopeSnapshotsPublish = "snapshots:publish"
)

// AdminScopes lists every scope an admin key may hold.
var AdminScopes = []string{
	ScopeAdmin, ScopeKeysRead, ScopeKeysWrite, ScopeTokensMint, ScopeSessionsRevoke,
	ScopeSigningKeysWrite, ScopeOrgsWrite, ScopePolicyRead, ScopePolicyWrite, ScopeAuditRead,
	ScopeSnapshotsPublish,
}

func (s *Server) routes() []route {
	return []route{
		{"GET", "/health", accessPublic, "", s.health},
		{"GET", "/metrics", accessPublic, "", s.metricsHandler},
		{"GET", "/openapi.yaml", accessPublic, "", s.openapi},
		{"GET", "/.well-known/jwks.json", accessPublic, "", s.jwks},

		{"GET", "/v1/realm", accessAdmin, "", s.getRealm},
		{"GET", "/v1/realms", accessRoot, ScopeAdmin, s.listRealms},
		{"POST", "/v1/realms", accessRoot, ScopeAdmin, s.createRealm},

		{"POST", "/v1/keys", accessAdmin, ScopeKeysWrite, s.createKey},
		{"GET", "/v1/keys", accessAdmin, ScopeKeysRead, s.listKeys},
		{"POST", "/v1/keys/import", accessAdmin, ScopeKeysWrite, s.importKeys},
		{"GET", "/v1/keys/{id}", accessAdmin, ScopeKeysRead, s.getKey},
		{"PATCH", "/v1/keys/{id}", accessAdmin, ScopeKeysWrite, s.updateKey},
		{"DELETE", "/v1/keys/{id}", accessAdmin, ScopeKeysWrite, s.revokeKey},
		{"POST", "/v1/keys/{id}/rotate", accessAdmin, ScopeKeysWrite, s.rotateKey},
		{"POST", "/v1/keys/{id}/revoke", accessAdmin, ScopeKeysWrite, s.revokeKey},

		{"POST", "/v1/sessions/{id}/client-tokens", accessMint, ScopeTokensMint, s.mintToken},
		{"DELETE", "/v1/sessions/{id}/client-tokens", accessAdmin, ScopeSessionsRevoke, s.revokeSession},

		{"GET", "/v1/signing-keys", accessAdmin, ScopeKeysRead, s.listSigningKeys},
		{"POST", "/v1/signing-keys/rotate", accessAdmin, ScopeSigningKeysWrite, s.rotateSigningKey},

		{"GET", "/v1/orgs", accessAdmin, ScopeKeysRead, s.listOrgs},
		{"PUT", "/v1/orgs/{org}", accessAdmin, ScopeOrgsWrite, s.setOrg},

		{"GET", "/v1/policy", accessAdmin, ScopePolicyRead, s.getPolicy},
		{"PUT", "/v1/policy", accessAdmin, ScopePolicyWrite, s.putPolicy},
		{"GET", "/v1/policy/versions", accessAdmin, ScopePolicyRead, s.listPolicies},

		{"GET", "/v1/audit", accessAdmin, ScopeAuditRead, s.listAudit},

		{"POST", "/v1/snapshots/publish", accessAdmin, ScopeSnapshotsPublish, s.publish},
		{"GET", "/v1/snapshots/status", accessAdmin, ScopeKeysRead, s.snapshotStatus},
	}
}

// serve answers requests no route matches with the API's JSON errors (the mux's own are
// plain text) and hands the rest to the mux.
func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	h, pattern := s.mux.Handler(r)
	if pattern != "" {
		s.mux.ServeHTTP(w, r)
		return
	}
	// The mux's fallback says which: 404, 405 (with Allow), or a redirect to a clean path.
	rec := &headerRecorder{h: http.Header{}}
	h.ServeHTTP(rec, r)
	start := time.Now()
	var e *Error
	switch rec.code {
	case http.StatusMethodNotAllowed:
		w.Header().Set("Allow", rec.h.Get("Allow"))
		e = &Error{Status: http.StatusMethodNotAllowed, Code: CodeMethodNotAllowed,
			Message: "method " + r.Method + " is not allowed here; allowed: " + rec.h.Get("Allow")}
	case http.StatusMovedPermanently, http.StatusPermanentRedirect, http.StatusTemporaryRedirect, http.StatusFound:
		w.Header().Set("Location", rec.h.Get("Location"))
		w.WriteHeader(rec.code)
		s.metrics.observe("unmatched", r.Method, rec.code, start)
		return
	default:
		e = notFound("no such endpoint: " + r.Method + " " + r.URL.Path)
	}
	s.writeError(w, e)
	s.metrics.observe("unmatched", r.Method, e.Status, start)
}

// headerRecorder captures the mux's fallback response without writing it.
type headerRecorder struct {
	h    http.Header
	code int
}

func (r *headerRecorder) Header() http.Header { return r.h }
func (r *headerRecorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	return len(b), nil
}
func (r *headerRecorder) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
}

// statusWriter remembers the status a handler wrote, for metrics and panics.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection (the MaxBytesReader needs it to
// close a connection after an oversized body).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// wrap is every route's middleware: request id, panic recovery, authentication, error
// rendering and metrics.
func (s *Server) wrap(rt route) http.Handler {
	label := rt.path
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		c := &call{id: s.reqPrefix + strconv.FormatUint(s.reqSeq.Add(1), 36)}
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				s.log.Error("api: panic", "request_id", c.id, "route", label, "method", r.Method, "panic", p)
				if sw.code == 0 {
					s.writeInternal(sw, c.id)
				}
			}
			code := sw.code
			if code == 0 {
				code = http.StatusOK
			}
			s.metrics.observe(label, r.Method, code, start)
		}()
		if rt.path != "/openapi.yaml" && rt.path != "/.well-known/jwks.json" {
			// Responses can carry secrets (a new key, a token): keep them out of every cache.
			sw.Header().Set("Cache-Control", "no-store")
		}
		err := s.authorize(r, rt, c)
		if err == nil {
			err = rt.h(sw, r, c)
		}
		if err != nil {
			s.fail(sw, r, c, label, err)
		}
	})
}

// fail renders err: an *Error as it says; a store failure as 503; anything else as 500.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, c *call, label string, err error) {
	var e *Error
	var sf *storeFailure
	switch {
	case errors.As(err, &e):
		s.writeError(w, e)
	case errors.As(err, &sf):
		if r.Context().Err() == nil {
			s.log.Error("api: store failure", "request_id", c.id, "route", label, "method", r.Method, "err", sf.err)
		}
		s.writeError(w, unavailable("the store is unavailable; try again"))
	default:
		s.log.Error("api: internal error", "request_id", c.id, "route", label, "method", r.Method, "err", err)
		s.writeInternal(w, c.id)
	}
}

func (s *Server) writeInternal(w http.ResponseWriter, id string) {
	s.writeError(w, &Error{Status: http.StatusInternalServerError, Code: CodeInternal,
		Message: "internal error (request id " + id + ")"})
}

func (s *Server) writeError(w http.ResponseWriter, e *Error) {
	if e.challenge != "" {
		w.Header().Set("WWW-Authenticate", e.challenge)
	}
	writeJSON(w, e.Status, errorBody{Error: errorObject{Code: e.Code, Message: e.Message, Field: e.Field, Details: e.Details}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Only the API's own response types reach here, and they always marshal.
		status = http.StatusInternalServerError
		b = []byte(`{"error":{"code":"internal","message":"internal error"}}`)
	}
	b = append(b, '\n')
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
