package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/edge/demo"
	"github.com/latchkeyhq/latchkey/edge/proxy"
	edgesync "github.com/latchkeyhq/latchkey/edge/sync"
	"github.com/latchkeyhq/latchkey/shared/limits"
	"github.com/latchkeyhq/latchkey/shared/snapshot"
)

// raw sends a request with a body as given (not JSON-encoded) and the headers named.
func raw(t testing.TB, method, target, body string, header map[string]string) reply {
	t.Helper()
	req, err := http.NewRequest(method, target, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	return reply{resp.StatusCode, b.Bytes(), resp.Header}
}

type devAPIError struct {
	Error struct{ Code, Message, Field string }
}

func errorOf(t testing.TB, r reply) devAPIError {
	t.Helper()
	var e devAPIError
	if err := json.Unmarshal(r.body, &e); err != nil || e.Error.Message == "" {
		t.Fatalf("want the API's JSON error body, got %d %q", r.status, r.body)
	}
	return e
}

var jsonCT = map[string]string{"Content-Type": "application/json"}

// TestDevHandoffBackend drives the handoff page's backend as the page does: mint a token
// for a new session, use it at the edge, revoke the session, see the edge refuse it.
func TestDevHandoffBackend(t *testing.T) {
	s := startDev(t)
	api := s.Edge + handoffPagePath + "api/"

	r := call(t, "GET", api+"token-policy", "", nil)
	var tp struct {
		LeewaySeconds     int64 `json:"leeway_seconds"`
		MaxTTLSeconds     int64 `json:"max_ttl_seconds"`
		DefaultTTLSeconds int64 `json:"default_ttl_seconds"`
	}
	if err := json.Unmarshal(r.body, &tp); r.status != 200 || err != nil {
		t.Fatalf("token-policy: %d %s", r.status, r.body)
	}
	// The default policy names no leeway: the realm gets the default, and no cap below 1 s.
	if tp.LeewaySeconds != limits.DefaultLeewaySeconds || tp.MaxTTLSeconds != 3600 || tp.DefaultTTLSeconds != handoffTTL {
		t.Fatalf("token-policy: %+v", tp)
	}

	r = raw(t, "POST", api+"sessions", `{"ttl":60}`, jsonCT)
	if r.status != 201 {
		t.Fatalf("mint: %d %s", r.status, r.body)
	}
	if bytes.Contains(r.body, []byte("lk_")) {
		t.Fatalf("the mint answer carries an API key: %s", r.body)
	}
	var m struct {
		Session, Token string
		Scopes         []string
		TTLSeconds     int64     `json:"ttl_seconds"`
		LeewaySeconds  int64     `json:"leeway_seconds"`
		ExpiresAt      time.Time `json:"expires_at"`
		RefusedFrom    time.Time `json:"refused_from"`
	}
	json.Unmarshal(r.body, &m)
	if !regexp.MustCompile(`^demo-[0-9a-f]{12}$`).MatchString(m.Session) || m.Token == "" || m.TTLSeconds != 60 ||
		strings.Join(m.Scopes, " ") != "read steer" || m.LeewaySeconds != limits.DefaultLeewaySeconds {
		t.Fatalf("mint answer: %s", r.body)
	}
	if d := time.Until(m.ExpiresAt); d <= 0 || d > 61*time.Second {
		t.Fatalf("expires_at %v is not about 60 s ahead", m.ExpiresAt)
	}
	if !m.RefusedFrom.Equal(m.ExpiresAt.Add(limits.DefaultLeewaySeconds * time.Second)) {
		t.Fatalf("refused_from %v, want expires_at %v + leeway", m.RefusedFrom, m.ExpiresAt)
	}

	// The token is the page's: it streams and steers its session through the edge.
	steer := s.Edge + "/sessions/" + m.Session + "/messages"
	if r := call(t, "POST", steer, m.Token, map[string]string{"text": "hi"}); r.status != 200 || !bytes.Contains(r.body, []byte(`"session": "`+m.Session+`"`)) {
		t.Fatalf("steer with the minted token: %d %s", r.status, r.body)
	}
	if st, ev := firstEvent(t, s.Edge+"/sessions/"+m.Session+"/events?token="+m.Token); st != 200 || ev["session"] != m.Session {
		t.Fatalf("stream with the minted token: %d %v", st, ev)
	}

	// A body-less mint takes the default lifetime.
	r = raw(t, "POST", api+"sessions", "", nil)
	var d struct {
		TTLSeconds int64 `json:"ttl_seconds"`
	}
	if json.Unmarshal(r.body, &d); r.status != 201 || d.TTLSeconds != handoffTTL {
		t.Fatalf("mint without a body: %d %s", r.status, r.body)
	}

	if r := raw(t, "DELETE", api+"sessions/"+m.Session, "", nil); r.status != 204 {
		t.Fatalf("revoke: %d %s", r.status, r.body)
	}
	eventually(t, "the revoked session refused at the edge", func() bool {
		r := call(t, "POST", steer, m.Token, map[string]string{"text": "hi"})
		return r.status == 401 && bytes.Contains(r.body, []byte(`"revoked"`))
	})

	// Once the banner's last curl line has revoked the sample key, the backend says so.
	if r := call(t, "POST", s.ControlPlane+"/v1/keys/"+s.SampleKeyID+"/revoke", s.AdminKey, nil); r.status != 200 {
		t.Fatalf("revoke the sample key: %d %s", r.status, r.body)
	}
	r = raw(t, "POST", api+"sessions", "", nil)
	if e := errorOf(t, r); r.status != 502 || !strings.Contains(e.Error.Message, "401") || !strings.Contains(e.Error.Message, "restart latchkey dev") {
		t.Fatalf("mint with the sample key revoked: %d %s", r.status, r.body)
	}
}

// TestDevHandoffBackendBadInput: every refusal is a 4xx with the API's error body naming
// the field at fault, never a 500, with the API's statuses: 400 for a body that does not
// decode (wrong type, unknown field), 422 for a value out of range, 413, 415.
func TestDevHandoffBackendBadInput(t *testing.T) {
	s := startDev(t)
	api := s.Edge + handoffPagePath + "api/"
	for _, tc := range []struct {
		name, method, path, body string
		header                   map[string]string
		status                   int
		field, message           string
	}{
		{"ttl a string", "POST", "sessions", `{"ttl":"5"}`, jsonCT, 400, "ttl", "whole number"},
		{"ttl a fraction", "POST", "sessions", `{"ttl":1.5}`, jsonCT, 400, "ttl", "whole number"},
		{"ttl zero", "POST", "sessions", `{"ttl":0}`, jsonCT, 422, "ttl", "at least 1"},
		{"ttl negative", "POST", "sessions", `{"ttl":-3}`, jsonCT, 422, "ttl", "at least 1"},
		{"ttl above the realm's cap", "POST", "sessions", `{"ttl":86400}`, jsonCT, 422, "ttl", "max_ttl_seconds"},
		{"unknown field", "POST", "sessions", `{"session":"mine"}`, jsonCT, 400, "session", "unknown field"},
		{"not an object", "POST", "sessions", `[5]`, jsonCT, 400, "", "not a JSON object"},
		{"broken JSON", "POST", "sessions", `{"ttl":`, jsonCT, 400, "", "not a JSON object"},
		{"two values", "POST", "sessions", `{"ttl":5}{"ttl":6}`, jsonCT, 400, "", "more than one"},
		{"too large", "POST", "sessions", `{"ttl":5` + strings.Repeat(" ", 5000) + `}`, jsonCT, 413, "", "larger than"},
		{"not JSON", "POST", "sessions", `ttl=5`, map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, 415, "Content-Type", "application/json"},
		{"session id with a space", "DELETE", "sessions/a%20b", "", nil, 422, "id", "session id"},
		{"session id too long", "DELETE", "sessions/" + strings.Repeat("s", 129), "", nil, 422, "id", "session id"},
		{"cross-site", "POST", "sessions", `{"ttl":5}`, map[string]string{"Content-Type": "application/json", "Sec-Fetch-Site": "cross-site"}, 403, "Sec-Fetch-Site", "only the handoff page"},
		{"rebound host name", "POST", "sessions", `{"ttl":5}`, map[string]string{"Content-Type": "application/json", "Host": "attacker.example"}, 403, "Host", "loopback"},
		{"no such endpoint", "GET", "keys", "", nil, 404, "", "no such endpoint"},
		{"wrong method", "PUT", "sessions", `{}`, jsonCT, 404, "", "no such endpoint"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := raw(t, tc.method, api+tc.path, tc.body, tc.header)
			e := errorOf(t, r)
			if r.status != tc.status || e.Error.Field != tc.field || !strings.Contains(e.Error.Message, tc.message) {
				t.Fatalf("%d %s, want %d naming field %q with %q", r.status, r.body, tc.status, tc.field, tc.message)
			}
		})
	}
	if r := raw(t, "GET", s.Edge+handoffPagePath+"nope.js", "", nil); r.status != 404 {
		t.Fatalf("an unknown page file: %d", r.status)
	}
	if r := raw(t, "POST", s.Edge+handoffPagePath, "", nil); r.status != 405 || r.header.Get("Allow") != "GET, HEAD" {
		t.Fatalf("POST to the page: %d %v", r.status, r.header)
	}
}

// TestDevPagesOnlyInDev: the pages and the minting backend are latchkey dev's; neither
// `latchkey serve` nor a standalone edge answers them.
func TestDevPagesOnlyInDev(t *testing.T) {
	d := startDevOutput(t, "--quiet")
	s := d.setup
	for _, u := range []string{s.Edge + handoffPagePath, s.Edge + handoffPagePath + "handoff.js", s.ControlPlane + keysPagePath, s.ControlPlane + keysPagePath + "keys.js"} {
		r := call(t, "GET", u, "", nil)
		if r.status != 200 || !strings.Contains(r.header.Get("Content-Security-Policy"), "script-src 'self'") {
			t.Fatalf("dev serves %s: %d %v", u, r.status, r.header)
		}
	}
	// The banner opens both pages; the keys page signs in from the URL fragment.
	for _, want := range []string{s.Edge + handoffPagePath + "\n", s.ControlPlane + keysPagePath + "#admin=" + s.AdminKey + "\n"} {
		if !strings.Contains(d.stdout.String(), want) {
			t.Errorf("banner lacks %q:\n%s", want, d.stdout.String())
		}
	}

	srv := startServer(t) // what `latchkey serve` serves
	for _, p := range []string{keysPagePath, keysPagePath + "keys.js", handoffPagePath, handoffPagePath + "api/token-policy"} {
		if r := call(t, "GET", srv.url+p, "", nil); r.status != 404 {
			t.Errorf("latchkey serve answers GET %s: %d", p, r.status)
		}
	}
	if r := call(t, "POST", srv.url+handoffPagePath+"api/sessions", "", map[string]int{"ttl": 5}); r.status != 404 {
		t.Errorf("latchkey serve answers the mint endpoint: %d", r.status)
	}

	// A standalone edge (as latchkey-edge runs it) sends the paths to its filter, which
	// wants a credential: nothing there mints.
	up := httptest.NewServer(demo.Handler(demo.Options{}))
	defer up.Close()
	ctx := context.Background()
	upURL, _ := url.Parse(up.URL)
	edge, err := proxy.New(ctx, proxy.Config{
		Upstream: upURL, Realm: "default", Trusted: []snapshot.TrustedKey{srv.cp.ManifestKey.Trusted()},
		Source: edgesync.DirSource{Root: srv.snapDir}, PathPrefix: "/_latchkey",
	})
	if err != nil {
		t.Fatal(err)
	}
	defer edge.Close(ctx)
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	go edge.Run(runCtx)
	es := httptest.NewServer(edge.Handler())
	defer es.Close()
	eventually(t, "the standalone edge holds a snapshot", func() bool { return edge.Health().Status == "ok" })
	if r := call(t, "POST", es.URL+handoffPagePath+"api/sessions", "", map[string]int{"ttl": 5}); r.status != 401 || bytes.Contains(r.body, []byte("token")) {
		t.Errorf("a standalone edge on the mint endpoint: %d %s, want the filter's 401", r.status, r.body)
	}
	if r := call(t, "GET", es.URL+handoffPagePath, "", nil); r.status != 401 {
		t.Errorf("a standalone edge on the handoff page: %d %s, want the filter's 401", r.status, r.body)
	}
}

// TestDevReusedDataDir: a second run on the same data directory holds no sample key, so the
// handoff backend says so (503), and the banner still names the keys page.
func TestDevReusedDataDir(t *testing.T) {
	dir := t.TempDir()
	t.Run("first run", func(t *testing.T) { startDev(t, "--data-dir", dir) })
	d := startDevOutput(t, "--quiet", "--data-dir", dir)
	r := raw(t, "POST", d.setup.Edge+handoffPagePath+"api/sessions", `{"ttl":5}`, jsonCT)
	if e := errorOf(t, r); r.status != 503 || !strings.Contains(e.Error.Message, "without --data-dir") {
		t.Fatalf("mint on a reused data dir: %d %s", r.status, r.body)
	}
	if !strings.Contains(d.stdout.String(), d.setup.ControlPlane+keysPagePath) {
		t.Fatalf("banner of a reused data dir lacks the keys page:\n%s", d.stdout.String())
	}
}
