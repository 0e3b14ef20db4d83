package main

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/http-wasm/http-wasm-host-go/api"
	"github.com/http-wasm/http-wasm-host-go/handler"

	"github.com/tetratelabs/wazero"

	"github.com/latchkeyhq/latchkey/examples/profiles"
	"github.com/latchkeyhq/latchkey/examples/profiles/conformance"
	"github.com/latchkeyhq/latchkey/shared/snapshot"
	"github.com/latchkeyhq/latchkey/wasm/httpwasm/config"
	"github.com/latchkeyhq/latchkey/wasm/verifier/abi"
)

// realTimeConfig re-issues the agrenting fixture at the real time (the conformance fixtures are
// fixed in 2026-09) and returns its configuration, with nowOverride, and an API key.
func realTimeConfig(t *testing.T, nowOverride int64) (string, string) {
	t.Helper()
	b, err := profiles.Build("agrenting", 1)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().Unix()
	b.Contents.Version++
	b.Contents.IssuedAt, b.Contents.ExpiresAt = now-60, now+3600
	if err := b.Publish(); err != nil {
		t.Fatal(err)
	}
	text, err := config.Text(&config.Config{NowOverride: nowOverride,
		Load: abi.Load{Trusted: []snapshot.TrustedKey{b.Trusted}, Manifest: b.Manifest, Objects: b.Objects}})
	if err != nil {
		t.Fatal(err)
	}
	return text, b.Keys["user"]
}

func status(t *testing.T, url, key string) int {
	t.Helper()
	req, _ := http.NewRequest("GET", url+"/api/v1/wallet", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode
}

// TestClock: without now_override the guest decides at WASI's clock (a snapshot issued now is
// loaded and an API key allowed); under a host that gives the guest no real wall clock
// (wazero's default: a fake clock in 2022) the snapshot, issued in the guest's future, is
// refused and every request denied 503; a release build refuses now_override (503).
func TestClock(t *testing.T) {
	cfg, key := realTimeConfig(t, 0)
	for _, c := range []struct {
		name     string
		compiler string
		config   string
		mc       wazero.ModuleConfig
		want     int
		log      string // what the guest logs at instantiation
	}{
		{"go/real-clock", "go-release", cfg, nil, 299, ""},
		{"tinygo/real-clock", "tinygo-release", cfg, nil, 299, ""},
		{"go/fake-host-clock", "go-release", cfg, wazero.NewModuleConfig(), 503, "in the future"},
		{"go/release-refuses-now-override", "go-release", guestConfig(t, conformance.Load(t, "agrenting")), nil, 503, "now_override"},
		{"go/no-config", "go-release", "", nil, 503, "no guest configuration"},
		{"go/bad-config", "go-release", "{\"config\": \"bm9wZQ==\"}", nil, 503, "malformed"},
	} {
		t.Run(c.name, func(t *testing.T) {
			logs := &logger{}
			srv := front(t, c.compiler, []byte(c.config), &conformance.Recorder{}, c.mc, handler.Logger(logs))
			if got := status(t, srv.URL, key); got != c.want {
				t.Fatalf("status %d, want %d (logs %q)", got, c.want, logs.text())
			}
			if got := logs.text(); (c.log == "") != (got == "") || !strings.Contains(got, c.log) {
				t.Fatalf("guest logged %q, want %q", got, c.log)
			}
		})
	}
}

type logger struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (l *logger) IsEnabled(api.LogLevel) bool { return true }

func (l *logger) Log(_ context.Context, _ api.LogLevel, msg string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.WriteString(msg + "\n")
}

func (l *logger) text() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}
