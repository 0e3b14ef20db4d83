package worker

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/examples/profiles"
	"github.com/latchkeyhq/latchkey/examples/profiles/conformance"
)

// TestExampleWorker runs the example worker (worker.js) as it ships, in workerd through
// Miniflare, with settings as vars and a snapshot valid at the real clock (the example has no
// test clock): an API key is forwarded with its identity, a request without one is denied
// with the realm's rendering, and a forged identity header never reaches the upstream.
func TestExampleWorker(t *testing.T) {
	needMiniflare(t)
	wasm := modules(t, "accel-tinygo")
	b, err := profiles.Build("opencomputer", conformance.Seed)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().Unix()
	b.Contents.IssuedAt, b.Contents.ExpiresAt = now-60, now+3600
	if err := b.Publish(); err != nil {
		t.Fatal(err)
	}
	fx := &conformance.Fixture{Built: b, Realm: b.Contents.Realm}
	h, err := fx.Handler()
	if err != nil {
		t.Fatal(err)
	}
	store := httptest.NewServer(h)
	defer store.Close()
	rec := &conformance.Recorder{}
	up := httptest.NewServer(rec)
	defer up.Close()
	p := startJS(t, "serve-example.mjs", wasm["accel-tinygo"], jsonArg(t, map[string]string{
		"LATCHKEY_SNAPSHOT_URL": store.URL, "LATCHKEY_REALM": fx.Realm, "LATCHKEY_TRUSTED_KEYS": trustedText(b.Trusted),
		"UPSTREAM_ORIGIN": up.URL,
	}))
	defer p.close()
	ref := conformance.Load(t, "opencomputer")

	send := func(auth string) (*http.Response, []byte) {
		req, _ := http.NewRequest(http.MethodPost, p.url+"/v3/sessions?x=1", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		for _, name := range ref.Info.Strip {
			req.Header.Set(name, "forged")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, body
	}

	resp, body := send("Bearer " + b.Keys["org"])
	got := rec.Take()
	if resp.StatusCode != conformance.UpstreamStatus || got == nil {
		t.Fatalf("API key: %s %q (%s)", resp.Status, body, p.output)
	}
	if got.Target != "/v3/sessions?x=1" {
		t.Errorf("upstream target %q", got.Target)
	}
	sawOrg := false
	for _, name := range ref.Info.Strip {
		v := got.Header.Get(name)
		if v == "forged" {
			t.Errorf("forged %s reached the upstream", name)
		}
		sawOrg = sawOrg || v == "org_1"
	}
	if !sawOrg {
		t.Errorf("no identity header names org_1: %v", got.Header)
	}

	resp, body = send("")
	want := conformance.Native(ref, &profiles.Resolved{Method: http.MethodPost, Path: "/v3/sessions"})
	if rec.Take() != nil || resp.StatusCode != want.Status || !bytes.Equal(body, want.Body) {
		t.Fatalf("no credential: %s %q, native core %d %q", resp.Status, body, want.Status, want.Body)
	}
	for _, hd := range want.Headers {
		if resp.Header.Get(string(hd.Name)) != string(hd.Value) {
			t.Errorf("header %s = %q, native core %q", hd.Name, resp.Header.Get(string(hd.Name)), hd.Value)
		}
	}
}
