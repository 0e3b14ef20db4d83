package main

import (
	"bytes"
	"context"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/controlplane/config"
)

// testServer is a real control plane (SQLite in a temp dir, snapshots to a temp dir)
// behind httptest, the way `latchkey serve` assembles it.
type testServer struct {
	url      string
	adminKey string
	dataDir  string
	snapDir  string
	cp       *config.ControlPlane
}

func startServer(t *testing.T) *testServer {
	t.Helper()
	dir := t.TempDir()
	cfg := config.Config{Addr: "127.0.0.1:0", DataDir: dir, LogLevel: "info", ShutdownTimeout: 5 * time.Second}
	cp, err := config.Open(context.Background(), cfg, config.Options{Getenv: envOf(nil)})
	if err != nil {
		t.Fatalf("config.Open: %v", err)
	}
	if !strings.HasPrefix(cp.AdminKey, "lk_admin_") {
		t.Fatalf("bootstrap admin key %q", cp.AdminKey)
	}
	srv := httptest.NewServer(cp.API.Handler())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cp.Publisher.Run(ctx) }()
	t.Cleanup(func() {
		srv.Close()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("publisher: %v", err)
		}
		if err := cp.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	return &testServer{url: srv.URL, adminKey: cp.AdminKey, dataDir: dir, snapDir: cfg.SnapshotPath(), cp: cp}
}

// env is the environment a CLI user of s has: URL and admin key set.
func (s *testServer) env() map[string]string {
	return map[string]string{envURL: s.url, envAdminKey: s.adminKey}
}

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// result is one in-process run of the CLI.
type result struct {
	stdout, stderr string
	code           int
}

func runCLI(t *testing.T, env map[string]string, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), args, envOf(env), &stdout, &stderr)
	code := exitCode(err, &stderr)
	return result{stdout.String(), stderr.String(), code}
}

// ok runs the CLI and fails the test unless it exits 0.
func ok(t *testing.T, env map[string]string, args ...string) string {
	t.Helper()
	r := runCLI(t, env, args...)
	if r.code != 0 {
		t.Fatalf("latchkey %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// fails runs the CLI and checks the exit code and that stderr matches pattern.
func fails(t *testing.T, env map[string]string, code int, pattern string, args ...string) result {
	t.Helper()
	r := runCLI(t, env, args...)
	if r.code != code || !regexp.MustCompile(pattern).MatchString(r.stderr) {
		t.Fatalf("latchkey %s: exit %d, want %d; stderr should match %q:\n%s\nstdout: %s",
			strings.Join(args, " "), r.code, code, pattern, r.stderr, r.stdout)
	}
	return r
}

var secretRE = regexp.MustCompile(`lk_(live|test|admin)_[A-Za-z0-9]+`)

// syncBuffer is a bytes.Buffer safe for a writer and a reader in different goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
