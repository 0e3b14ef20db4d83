package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	listeningRE   = regexp.MustCompile(`listening on (http://\S+)`)
	manifestKeyRE = regexp.MustCompile(`manifest public key \(pin it on every edge\): (ed25519:\S+)`)
)

// serveRun is one `latchkey serve` running in-process.
type serveRun struct {
	url, stderr string
	stop        func() error
}

// startServe runs `latchkey serve` in a goroutine until it prints its address. waitFor
// bounds how long a broken server is waited for; nothing is asserted about time.
func startServe(t *testing.T, env map[string]string, args ...string) serveRun {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stderr := &syncBuffer{}
	done := make(chan error, 1)
	go func() { done <- run(ctx, append([]string{"serve"}, args...), envOf(env), io.Discard, stderr) }()
	const waitFor = 30 * time.Second
	deadline := time.Now().Add(waitFor)
	for {
		if m := listeningRE.FindStringSubmatch(stderr.String()); m != nil {
			var once sync.Once
			var stopErr error
			stop := func() error {
				once.Do(func() {
					cancel()
					stopErr = <-done
				})
				return stopErr
			}
			t.Cleanup(func() { _ = stop() })
			return serveRun{url: m[1], stderr: stderr.String(), stop: stop}
		}
		select {
		case err := <-done:
			cancel()
			t.Fatalf("serve exited early: %v\n%s", err, stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("serve printed no address within %v:\n%s", waitFor, stderr.String())
		}
	}
}

func TestServe(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")

	// First start: flags; the admin key is created and printed once, in a banner.
	first := startServe(t, nil, "--addr", "127.0.0.1:0", "--data-dir", dir)
	resp, err := http.Get(first.url + "/health")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Contains(body, []byte(`"ok"`)) {
		t.Fatalf("/health: %d %s", resp.StatusCode, body)
	}
	if n := strings.Count(first.stderr, "ADMIN KEY"); n != 1 {
		t.Fatalf("banner printed %d times:\n%s", n, first.stderr)
	}
	keys := secretRE.FindAllString(first.stderr, -1)
	if len(keys) != 1 || !strings.HasPrefix(keys[0], "lk_admin_") {
		t.Fatalf("admin key in output: %v\n%s", keys, first.stderr)
	}
	mk := manifestKeyRE.FindStringSubmatch(first.stderr)
	if mk == nil {
		t.Fatalf("no manifest public key printed:\n%s", first.stderr)
	}
	adminEnv := map[string]string{envURL: first.url, envAdminKey: keys[0]}
	if out := ok(t, adminEnv, "keys", "list"); !strings.Contains(out, "admin") {
		t.Fatalf("keys list with the printed admin key:\n%s", out)
	}
	for _, f := range []string{"latchkey.db", "master.key", "manifest.key"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Fatalf("data dir: %v", err)
		}
	}
	ok(t, adminEnv, "snapshot", "publish")
	if err := first.stop(); err != nil {
		t.Fatalf("graceful shutdown: %v", err)
	}
	// The snapshot the publisher wrote verifies under the printed key.
	ok(t, nil, "snapshot", "inspect", "--dir", filepath.Join(dir, "snapshots"), "--trusted-key", mk[1])

	// Second start on the same data dir, configured by the environment: no banner, the same
	// manifest key, and the admin key from the first start still works.
	second := startServe(t, map[string]string{"LATCHKEY_ADDR": "127.0.0.1:0", "LATCHKEY_DATA_DIR": dir})
	if strings.Contains(second.stderr, "ADMIN KEY") || secretRE.MatchString(second.stderr) {
		t.Fatalf("second start printed an admin key:\n%s", second.stderr)
	}
	if mk2 := manifestKeyRE.FindStringSubmatch(second.stderr); mk2 == nil || mk2[1] != mk[1] {
		t.Fatalf("manifest key changed across restarts: %v vs %s", mk2, mk[1])
	}
	adminEnv[envURL] = second.url
	ok(t, adminEnv, "realm")
	if err := second.stop(); err != nil {
		t.Fatalf("graceful shutdown: %v", err)
	}
}

func TestServeRefusesTakenPort(t *testing.T) {
	first := startServe(t, nil, "--addr", "127.0.0.1:0", "--data-dir", t.TempDir())
	addr := strings.TrimPrefix(first.url, "http://")
	dir := t.TempDir()
	fails(t, nil, 1, `listen on `+regexp.QuoteMeta(addr), "serve", "--addr", addr, "--data-dir", dir)
	// Nothing was created: a failed start leaves no keys behind.
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("a failed start wrote %d files", len(entries))
	}
	if err := first.stop(); err != nil {
		t.Fatal(err)
	}
}
