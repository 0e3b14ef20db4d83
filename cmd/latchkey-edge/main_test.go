package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/controlplane/signer"
	edgesync "github.com/latchkeyhq/latchkey/edge/sync"
	"github.com/latchkeyhq/latchkey/examples/profiles"
	"github.com/latchkeyhq/latchkey/shared/hostcrypto"
	"github.com/latchkeyhq/latchkey/shared/snapshot"
)

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

// fixtureDir publishes a profile's snapshot into a directory laid out like the publisher's,
// re-issued at the real clock (the command has no clock to inject).
func fixtureDir(t *testing.T) (*profiles.Built, string) {
	t.Helper()
	b, err := profiles.Build("opencomputer", 11)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().Unix()
	b.Contents.IssuedAt, b.Contents.ExpiresAt = now, now+3600
	b.Contents.Version++
	if err := b.Publish(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	m, err := snapshot.VerifyManifest(b.Manifest, []snapshot.TrustedKey{b.Trusted}, hostcrypto.Std)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, data []byte) {
		p := filepath.Join(dir, filepath.FromSlash(name))
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, data, 0o644)
	}
	for i, ref := range m.Objects {
		write(edgesync.ObjectName(m.Realm, ref.Name), b.Objects[i])
	}
	write(edgesync.ManifestName(m.Realm), b.Manifest)
	return b, dir
}

func TestSettingsPrecedence(t *testing.T) {
	cfgFile := filepath.Join(t.TempDir(), "edge.yaml")
	os.WriteFile(cfgFile, []byte("upstream: http://file:1\nrealm: fromfile\npoll: 5s\ntrusted_keys: [ed25519:AAAA]\n"), 0o644)
	s, err := parse([]string{"--config", cfgFile, "--realm", "fromflag"}, envOf(map[string]string{
		"LATCHKEY_EDGE_UPSTREAM": "http://env:2", "LATCHKEY_EDGE_REALM": "fromenv",
	}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if s.Upstream != "http://env:2" || s.Realm != "fromflag" || s.Poll != 5*time.Second || len(s.TrustedKeys) != 1 || s.Listen != "127.0.0.1:8081" {
		t.Fatalf("settings: %+v", s)
	}
	os.WriteFile(cfgFile, []byte("upstrem: http://typo\n"), 0o644)
	if _, err := parse([]string{"--config", cfgFile}, envOf(nil), io.Discard); err == nil || !strings.Contains(err.Error(), "upstrem") {
		t.Fatalf("unknown YAML field: %v", err)
	}
}

func TestBadSettingsNameTheSetting(t *testing.T) {
	key := "ed25519:" + strings.Repeat("A", 43)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--trusted-key", key, "--snapshot-dir", "x"}, "upstream: required"},
		{[]string{"--upstream", "ftp://x", "--trusted-key", key, "--snapshot-dir", "x"}, "upstream:"},
		{[]string{"--upstream", "http://x"}, "trusted-key: required"},
		{[]string{"--upstream", "http://x", "--trusted-key", "rsa:zz", "--snapshot-dir", "x"}, "trusted-key"},
		{[]string{"--upstream", "http://x", "--trusted-key", key}, "snapshot source"},
		{[]string{"--upstream", "http://x", "--trusted-key", key, "--snapshot-dir", "x", "--snapshot-url", "http://y"}, "snapshot source"},
		{[]string{"--poll", "soon"}, "poll"},
	} {
		err := run(context.Background(), tc.args, envOf(nil), io.Discard, io.Discard, nil)
		var ue usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: got %v, want a usage error naming %q", tc.args, err, tc.want)
		}
	}
}

// TestServesFromSnapshotDir runs the command as a user would: flags, a snapshot directory,
// an upstream, and real sockets.
func TestServesFromSnapshotDir(t *testing.T) {
	b, dir := fixtureDir(t)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello from upstream, org="+r.Header.Get("X-Latchkey-Org"))
	}))
	defer up.Close()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	var out bytes.Buffer
	args := []string{"--listen", "127.0.0.1:0", "--upstream", up.URL, "--realm", b.Contents.Realm,
		"--trusted-key", signer.TrustedText(b.Trusted), "--snapshot-dir", dir, "--state-dir", t.TempDir(), "--poll", "50ms",
	}
	go func() { done <- run(ctx, args, envOf(nil), &out, io.Discard, ready) }()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("latchkey-edge exited: %v", err)
	}
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("shutdown: %v", err)
		}
	}()
	base := "http://" + addr
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("edge never became healthy")
		}
		time.Sleep(20 * time.Millisecond)
	}
	req, _ := http.NewRequest("GET", base+"/v3/sessions", nil)
	req.Header.Set("Authorization", "Bearer "+b.Keys["org"])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(string(body), "hello from upstream, org=") || strings.HasSuffix(string(body), "=") {
		t.Fatalf("proxied request: %d %s", resp.StatusCode, body)
	}
	resp, _ = http.Get(base + "/v3/sessions")
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("no key: %d", resp.StatusCode)
	}
	if !strings.Contains(out.String(), "listening on") {
		t.Fatalf("start-up line missing: %q", out.String())
	}
}
