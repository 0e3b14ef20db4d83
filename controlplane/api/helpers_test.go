package api

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pb33f/libopenapi"
	oaval "github.com/pb33f/libopenapi-validator"
	"github.com/pb33f/libopenapi-validator/config"
	oaerrors "github.com/pb33f/libopenapi-validator/errors"
	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"

	"github.com/latchkeyhq/latchkey/controlplane/publisher"
	"github.com/latchkeyhq/latchkey/controlplane/signer"
	"github.com/latchkeyhq/latchkey/controlplane/store"
	"github.com/latchkeyhq/latchkey/controlplane/store/storetest"
	"github.com/latchkeyhq/latchkey/shared/apikey"
	"github.com/latchkeyhq/latchkey/shared/hostcrypto"
)

// backend is a kind of database the suite runs against.
type backend struct {
	name string
	url  func(t testing.TB) string
}

var backends = []backend{{"sqlite", sqliteURL}, {"postgres", postgresURL}}

func sqliteURL(t testing.TB) string {
	return "sqlite://" + filepath.Join(t.TempDir(), "latchkey.db")
}

func postgresURL(t testing.TB) string { return storetest.PostgresURL(t, "latchkey_api_test_") }

// forEachBackend runs f as a subtest per backend.
func forEachBackend(t *testing.T, f func(t *testing.T, b backend)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { f(t, b) })
	}
}

// clock is the injected clock: real time plus an offset the test can move.
type clock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off).UTC()
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.off += d
	c.mu.Unlock()
}

// recordingPublisher forwards to the real publisher and remembers every Notify, so tests can
// check that each mutation that changes a snapshot says so.
type recordingPublisher struct {
	*publisher.Publisher
	mu       sync.Mutex
	notified []string
}

func (p *recordingPublisher) Notify(realm string) {
	p.mu.Lock()
	p.notified = append(p.notified, realm)
	p.mu.Unlock()
	p.Publisher.Notify(realm)
}

// takeNotified returns and forgets the notifications so far.
func (p *recordingPublisher) takeNotified() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := p.notified
	p.notified = nil
	return n
}

// env is one API server over a fresh store.
type env struct {
	t      testing.TB
	st     store.Store
	srv    *Server
	pub    *recordingPublisher
	sealer *signer.Sealer
	clock  *clock
	reg    *prometheus.Registry
	target string // the publisher's directory
	admin  string // the bootstrap admin key of realm "default"
	// doc validates requests and responses against openapi.yaml; nil skips (benchmarks).
	doc *docChecker
}

type envOption func(*envConfig)

type envConfig struct {
	noDoc bool
	wrap  func(store.Store) store.Store
}

func withoutDoc() envOption { return func(c *envConfig) { c.noDoc = true } }

// withStore wraps the store the server sees (fault injection).
func withStore(f func(store.Store) store.Store) envOption {
	return func(c *envConfig) { c.wrap = f }
}

func newEnv(t testing.TB, b backend, opts ...envOption) *env {
	t.Helper()
	var cfg envConfig
	for _, o := range opts {
		o(&cfg)
	}
	ctx := context.Background()
	st, err := store.Open(ctx, b.url(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	master := make([]byte, 32)
	_, _ = rand.Read(master)
	sealer, err := signer.NewSealer(master)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, st: st, sealer: sealer, clock: &clock{}, reg: prometheus.NewRegistry()}
	admin, created, err := Bootstrap(ctx, st, sealer, e.clock.now())
	if err != nil || !created || admin == "" {
		t.Fatalf("Bootstrap: %q %v %v", admin, created, err)
	}
	e.admin = admin
	e.target = t.TempDir()
	tgt, err := publisher.NewDirTarget(e.target)
	if err != nil {
		t.Fatal(err)
	}
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	mk, err := signer.NewManifestKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	p, err := publisher.New(publisher.Options{Store: st, Target: tgt, Signer: mk, Now: e.clock.now})
	if err != nil {
		t.Fatal(err)
	}
	e.pub = &recordingPublisher{Publisher: p}
	seen := st
	if cfg.wrap != nil {
		seen = cfg.wrap(st)
	}
	srv, err := New(Options{Store: seen, Sealer: sealer, Publisher: e.pub, Now: e.clock.now, Registry: e.reg, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	e.srv = srv
	t.Cleanup(func() { _ = srv.Close() }) // before the store closes: cleanups run last-in first-out
	if !cfg.noDoc {
		e.doc = loadDoc(t)
	}
	return e
}

// req describes one request.
type req struct {
	method, path string
	// body is marshalled to JSON unless it is a string or []byte (sent as is).
	body        any
	contentType string // default application/json when there is a body
	auth        string // Authorization value; "" means the env's admin key, "-" none
	// docInvalid says the request breaks openapi.yaml (wrong type, pattern, missing field...):
	// the document must refuse it too. Otherwise the document must accept it.
	docInvalid bool
	// noDoc skips checking the request against the document (where the validator is known to
	// differ; each use says why); the response is still checked.
	noDoc bool
	// noOp: no operation describes the request (unknown path or method): nothing is checked.
	noOp bool
}

type resp struct {
	status int
	header http.Header
	body   []byte
}

// json decodes the body into a generic value.
func (r *resp) json(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("response body is not a JSON object: %v: %s", err, r.body)
	}
	return m
}

// errField returns the error body's code and field.
func (r *resp) errField(t testing.TB) (code, field, msg string) {
	t.Helper()
	m := r.json(t)
	e, ok := m["error"].(map[string]any)
	if !ok {
		t.Fatalf("no error object in %s", r.body)
	}
	code, _ = e["code"].(string)
	field, _ = e["field"].(string)
	msg, _ = e["message"].(string)
	return code, field, msg
}

func bearer(key string) string { return "Bearer " + key }

func (e *env) build(q req) (*http.Request, []byte) {
	var body []byte
	switch b := q.body.(type) {
	case nil:
	case string:
		body = []byte(b)
	case []byte:
		body = b
	default:
		var err error
		if body, err = json.Marshal(b); err != nil {
			e.t.Fatal(err)
		}
	}
	var rd io.Reader = http.NoBody
	if body != nil {
		rd = bytes.NewReader(body)
	}
	r := httptest.NewRequest(q.method, "http://latchkey.test"+q.path, rd)
	if body == nil {
		r.Body = http.NoBody
		r.ContentLength = 0
	}
	ct := q.contentType
	if ct == "" && body != nil {
		ct = "application/json"
	}
	if ct != "-" && ct != "" {
		r.Header.Set("Content-Type", ct)
	}
	switch q.auth {
	case "":
		r.Header.Set("Authorization", bearer(e.admin))
	case "-":
	default:
		r.Header.Set("Authorization", q.auth)
	}
	return r, body
}

// do sends q through the server's handler and checks request and response against the
// OpenAPI document.
func (e *env) do(q req) *resp {
	e.t.Helper()
	r, body := e.build(q)
	rec := httptest.NewRecorder()
	e.srv.Handler().ServeHTTP(rec, r)
	res := rec.Result()
	out := &resp{status: res.StatusCode, header: res.Header, body: rec.Body.Bytes()}
	if out.status >= 500 && out.status != http.StatusServiceUnavailable {
		e.t.Errorf("%s %s: status %d: %s", q.method, q.path, out.status, out.body)
	}
	if e.doc != nil {
		e.doc.check(e.t, q, e, body, res, out)
	}
	return out
}

// must sends q and fails unless the status is want.
func (e *env) must(q req, want int) *resp {
	e.t.Helper()
	r := e.do(q)
	if r.status != want {
		e.t.Fatalf("%s %s: status %d, want %d: %s", q.method, q.path, r.status, want, r.body)
	}
	return r
}

// expectErr sends q and checks status, error code and field.
func (e *env) expectErr(q req, status int, code, field string) *resp {
	e.t.Helper()
	r := e.do(q)
	if r.status != status {
		e.t.Fatalf("%s %s: status %d, want %d: %s", q.method, q.path, r.status, status, r.body)
	}
	c, f, _ := r.errField(e.t)
	if c != code || f != field {
		e.t.Fatalf("%s %s: error code %q field %q, want %q %q: %s", q.method, q.path, c, f, code, field, r.body)
	}
	return r
}

// docChecker holds the OpenAPI validator and which operations the tests drove.
type docChecker struct {
	v oaval.Validator
	// covered records "METHOD /path" → status codes seen, for the coverage test.
	mu      sync.Mutex
	covered map[string]map[int]bool
}

var (
	docOnce sync.Once
	docVal  *docChecker
	docErr  error
)

// loadDoc builds the validator once per test binary: building it is the slow part.
func loadDoc(t testing.TB) *docChecker {
	docOnce.Do(func() {
		doc, err := libopenapi.NewDocument(OpenAPI)
		if err != nil {
			docErr = err
			return
		}
		v, errs := oaval.NewValidator(doc, config.WithFormatAssertions())
		if len(errs) > 0 {
			docErr = errs[0]
			return
		}
		docVal = &docChecker{v: v, covered: map[string]map[int]bool{}}
	})
	if docErr != nil {
		t.Fatalf("openapi.yaml: %v", docErr)
	}
	return docVal
}

func (d *docChecker) check(t testing.TB, q req, e *env, body []byte, res *http.Response, out *resp) {
	t.Helper()
	if q.noOp {
		return
	}
	if !q.noDoc {
		// Validators read the body: give each its own copy of the request.
		vr, _ := e.build(q)
		ok, errs := d.v.ValidateHttpRequestSync(vr)
		switch {
		case q.docInvalid && ok:
			t.Errorf("%s %s: the server refused the request with %d, but openapi.yaml accepts it (body %.200s)", q.method, q.path, out.status, body)
		case !q.docInvalid && !ok:
			t.Errorf("%s %s: openapi.yaml refuses the request: %s", q.method, q.path, describe(errs))
		}
	}
	vr2, _ := e.build(q)
	res.Body = io.NopCloser(bytes.NewReader(out.body))
	if ok, errs := d.v.ValidateHttpResponse(vr2, res); !ok {
		t.Errorf("%s %s: response %d does not match openapi.yaml: %s\n%s", q.method, q.path, out.status, describe(errs), out.body)
	}
	d.mu.Lock()
	key := q.method + " " + templateOf(q.path)
	if d.covered[key] == nil {
		d.covered[key] = map[int]bool{}
	}
	d.covered[key][out.status] = true
	d.mu.Unlock()
}

func describe(errs []*oaerrors.ValidationError) string {
	var b strings.Builder
	for _, e := range errs {
		b.WriteString("\n  - " + e.Message + ": " + e.Reason)
		for _, s := range e.SchemaValidationErrors {
			b.WriteString("\n      " + s.Reason + " at " + s.FieldPath + " (" + s.KeywordLocation + ")")
		}
	}
	return b.String()
}

// templateOf maps a concrete request path to its route pattern.
func templateOf(path string) string {
	path, _, _ = strings.Cut(path, "?")
	segs := strings.Split(path, "/")
	for _, rt := range (&Server{}).routes() {
		ps := strings.Split(rt.path, "/")
		if len(ps) != len(segs) {
			continue
		}
		match := true
		for i := range ps {
			if ps[i] != segs[i] && !(strings.HasPrefix(ps[i], "{") && segs[i] != "import") {
				match = false
				break
			}
		}
		if match {
			return rt.path
		}
	}
	return path
}

// testLogger sends the server's log to the test log, and drops lines written after the test
// ended (a goroutine finishing an audit write may log late).
func testLogger(t testing.TB) *slog.Logger {
	w := &testWriter{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	return slog.New(slog.NewTextHandler(w, nil))
}

type testWriter struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *testWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimSpace(string(b)))
	}
	return len(b), nil
}

// realmKey creates a realm API key through the API and returns its id and secret.
func (e *env) realmKey(body map[string]any) (id, secret string) {
	e.t.Helper()
	r := e.must(req{method: "POST", path: "/v1/keys", body: body}, http.StatusCreated)
	m := r.json(e.t)
	return m["key"].(map[string]any)["id"].(string), m["secret"].(string)
}

func hashOf(secret string) apikey.Hash { return apikey.HashOf(hostcrypto.Std, []byte(secret)) }

func mustGenerate(t testing.TB, spec apikey.Spec) string {
	t.Helper()
	k, err := spec.Generate(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k.Reveal()
}

// documentOperations lists "METHOD /path" for every operation in openapi.yaml.
func documentOperations(t testing.TB) []string {
	t.Helper()
	var doc struct {
		Paths map[string]map[string]any `yaml:"paths"`
	}
	if err := yaml.Unmarshal(OpenAPI, &doc); err != nil {
		t.Fatal(err)
	}
	var ops []string
	for path, item := range doc.Paths {
		for method := range item {
			switch method {
			case "get", "put", "post", "delete", "patch", "head", "options", "trace":
				ops = append(ops, strings.ToUpper(method)+" "+path)
			}
		}
	}
	slices.Sort(ops)
	return ops
}
