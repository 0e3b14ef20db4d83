package api

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/latchkeyhq/latchkey/controlplane/store"
)

// faultyStore is the real store with faults switched on by the test: a panic, a failing
// database, a failing audit append.
type faultyStore struct {
	store.Store
	panicGetKey atomic.Bool
	down        atomic.Bool
	auditDown   atomic.Bool
}

var errDown = errors.New("dial tcp 10.0.0.1:5432: connect: connection refused")

func (f *faultyStore) GetKey(ctx context.Context, realm, id string) (store.APIKey, error) {
	if f.panicGetKey.Load() {
		panic("secret internal state: lk_live_should_never_be_shown")
	}
	return f.Store.GetKey(ctx, realm, id)
}

func (f *faultyStore) ListKeys(ctx context.Context, realm string, kf store.KeyFilter, p store.Page) ([]store.APIKey, string, error) {
	if f.down.Load() {
		return nil, "", errDown
	}
	return f.Store.ListKeys(ctx, realm, kf, p)
}

func (f *faultyStore) Ping(ctx context.Context) error {
	if f.down.Load() {
		return errDown
	}
	return f.Store.Ping(ctx)
}

func (f *faultyStore) AppendAudit(ctx context.Context, ev store.AuditEvent) (store.AuditEvent, error) {
	if f.auditDown.Load() {
		return store.AuditEvent{}, errDown
	}
	return f.Store.AppendAudit(ctx, ev)
}

func faultyEnv(t *testing.T, b backend) (*env, *faultyStore) {
	var fs *faultyStore
	e := newEnv(t, b, withStore(func(s store.Store) store.Store {
		fs = &faultyStore{Store: s}
		return fs
	}))
	return e, fs
}

// TestPanicIsInternal: a panic in a handler is a 500 "internal" carrying nothing of the panic,
// and the server keeps serving.
func TestPanicIsInternal(t *testing.T) {
	e, fs := faultyEnv(t, backends[0])
	id, _ := e.realmKey(map[string]any{"type": "live"})
	fs.panicGetKey.Store(true)
	r, _ := e.build(req{method: "GET", path: "/v1/keys/" + id})
	rec := httptest.NewRecorder()
	e.srv.Handler().ServeHTTP(rec, r)
	res := &resp{status: rec.Code, header: rec.Header(), body: rec.Body.Bytes()}
	if res.status != http.StatusInternalServerError {
		t.Fatalf("status %d: %s", res.status, res.body)
	}
	code, field, msg := res.errField(t)
	if code != CodeInternal || field != "" || strings.Contains(msg, "secret") || strings.Contains(msg, "lk_live") || !strings.Contains(msg, "req_") {
		t.Fatalf("500 body: %s", res.body)
	}
	// The document describes the 500 too.
	vr, _ := e.build(req{method: "GET", path: "/v1/keys/" + id})
	if ok, errs := e.doc.v.ValidateHttpResponse(vr, rec.Result()); !ok {
		t.Fatalf("500 does not match openapi.yaml: %s", describe(errs))
	}
	fs.panicGetKey.Store(false)
	e.must(req{method: "GET", path: "/v1/keys/" + id}, 200)
}

// TestStoreDown: a database that does not answer is a 503, never a 500, and /health says so.
func TestStoreDown(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		e, fs := faultyEnv(t, b)
		fs.down.Store(true)
		_, _, msg := e.expectErr(req{method: "GET", path: "/v1/keys"}, 503, CodeUnavailable, "").errField(t)
		if strings.Contains(msg, "10.0.0.1") {
			t.Fatalf("503 shows the store's error: %s", msg)
		}
		if h := e.must(req{method: "GET", path: "/health", auth: "-"}, 503).json(t); h["status"] != "unavailable" {
			t.Fatalf("health: %v", h)
		}
		fs.down.Store(false)
		e.must(req{method: "GET", path: "/health", auth: "-"}, 200)
	})
}

// TestMintStopsWhenAuditFails: once an audit write has failed, minting waits for its own
// record, so no token is handed out that the audit log cannot hold; it resumes when the
// store does.
func TestMintStopsWhenAuditFails(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		e, fs := faultyEnv(t, b)
		_, secret := e.realmKey(map[string]any{"type": "live"})
		mint := req{method: "POST", path: "/v1/sessions/s/client-tokens", auth: bearer(secret), body: map[string]any{"scopes": []string{"read"}}}
		e.must(mint, 201)
		e.srv.audit.flush()
		fs.auditDown.Store(true)
		e.must(mint, 201) // queued: the failure is not known yet
		e.srv.audit.flush()
		e.expectErr(mint, 503, CodeUnavailable, "")
		e.expectErr(mint, 503, CodeUnavailable, "")
		fs.auditDown.Store(false)
		// Still synchronous (the last write failed): this one waits for its record, written now.
		m := e.must(mint, 201).json(t)
		events, _, err := e.st.ListAudit(t.Context(), "default", store.AuditFilter{Action: "token.mint"}, store.Page{Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		if last := events[len(events)-1]; last.Detail[m["jti"].(string)] == "" {
			t.Fatalf("the mint after recovery was answered before its record was written: %+v", last)
		}
	})
}

// TestCloseFlushesMintAudit: Close writes every queued record and refuses further mints.
func TestCloseFlushesMintAudit(t *testing.T) {
	e := newEnv(t, backends[0])
	_, secret := e.realmKey(map[string]any{"type": "live"})
	var jtis []string
	for i := range 5 {
		m := e.must(req{method: "POST", path: "/v1/sessions/s" + itoa(i) + "/client-tokens", auth: bearer(secret),
			body: map[string]any{"scopes": []string{"read"}}}, 201).json(t)
		jtis = append(jtis, m["jti"].(string))
	}
	if err := e.srv.Close(); err != nil {
		t.Fatal(err)
	}
	events, _, err := e.st.ListAudit(t.Context(), "default", store.AuditFilter{Action: "token.mint"}, store.Page{})
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	for _, ev := range events {
		for k, v := range ev.Detail {
			if strings.HasPrefix(v, "session=") {
				found[k] = true
			}
		}
	}
	for _, j := range jtis {
		if !found[j] {
			t.Errorf("jti %s not audited after Close", j)
		}
	}
	e.expectErr(req{method: "POST", path: "/v1/sessions/s/client-tokens", auth: bearer(secret),
		body: map[string]any{"scopes": []string{"read"}}}, 503, CodeUnavailable, "")
}
