package filter

import (
	"context"
	"crypto/sha256"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/examples/profiles"
	"github.com/latchkeyhq/latchkey/shared/snapshot"
)

// stream is an upstream that holds every request open until its context ends, and reports
// why it ended.
type stream struct {
	started chan struct{}
	ended   chan error
}

func newStream() *stream {
	return &stream{started: make(chan struct{}, 64), ended: make(chan error, 64)}
}

func (s *stream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.WriteHeader(http.StatusOK)
	s.started <- struct{}{}
	<-r.Context().Done()
	s.ended <- context.Cause(r.Context())
}

// open sends a request through f in the background and waits until the upstream holds it.
func (s *stream) open(t *testing.T, f *Filter, r *http.Request) {
	t.Helper()
	go f.ServeHTTP(httptest.NewRecorder(), r)
	select {
	case <-s.started:
	case <-time.After(10 * time.Second):
		t.Fatal("the request never reached the upstream")
	}
}

// cut waits for the open request to end and returns why.
func (s *stream) cut(t *testing.T) *CutError {
	t.Helper()
	select {
	case err := <-s.ended:
		var ce *CutError
		if !errors.As(err, &ce) || !errors.Is(err, ErrCut) {
			t.Fatalf("request ended by %v, not by a recheck", err)
		}
		return ce
	case <-time.After(10 * time.Second):
		t.Fatal("the open request was never ended")
	}
	return nil
}

func (s *stream) stillOpen(t *testing.T) {
	t.Helper()
	select {
	case err := <-s.ended:
		t.Fatalf("an allowed request was ended: %v", err)
	default:
	}
}

// recheckFilter is a Filter on h in front of up, holding b's snapshot, at the clock *now.
func recheckFilter(t *testing.T, h host, b *profiles.Built, up http.Handler, now *atomic.Int64, cfg Config) *Filter {
	t.Helper()
	cfg.trusted = []snapshot.TrustedKey{b.Trusted}
	cfg.now = func() time.Time { return time.Unix(now.Load(), 0) }
	if h.variant != nil {
		cfg = cfg.WithWasm(wasmFile(t, h.variant)).WithCompilationCacheDir(filepath.Join(os.TempDir(), "latchkey-test-wazero"))
	}
	f, err := New(context.Background(), up, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close(context.Background()) })
	if _, err := f.SetSnapshot(b.Manifest, b.Objects, nil); err != nil {
		t.Fatal(err)
	}
	return f
}

func sse(b *profiles.Built, session, token string) *http.Request {
	return httptest.NewRequest("GET", "/v3/sessions/"+session+"/events?token="+token, nil)
}

// TestRecheckEndsRevokedStreams: an SSE stream allowed with a client token is ended as soon as
// a snapshot revoking its session is loaded (the Filter rechecks after every swap), while a
// stream of another session stays open; once requests end, none is tracked.
func TestRecheckEndsRevokedStreams(t *testing.T) {
	for _, h := range []host{hosts()[0], hosts()[1]} {
		t.Run(h.name, func(t *testing.T) {
			b, err := profiles.Build("opencomputer", 7)
			if err != nil {
				t.Fatal(err)
			}
			var now atomic.Int64
			now.Store(b.Now)
			up := newStream()
			// Rechecks every hour: only the swap can end the stream within the test.
			f := recheckFilter(t, h, b, up, &now, NewConfig().WithRecheckInterval(time.Hour))
			up.open(t, f, sse(b, "sess_1", b.Tokens["t1"]))
			key := httptest.NewRequest("GET", "/v3/sessions", nil)
			key.Header.Set("Authorization", "Bearer "+b.Keys["org"])
			up.open(t, f, key)
			if n := f.Open(); n != 2 {
				t.Fatalf("%d open requests tracked, want 2", n)
			}

			b.Contents.Version++
			b.Contents.RevokedSessions = append(b.Contents.RevokedSessions,
				snapshot.Revocation{Hash: sha256.Sum256([]byte("sess_1")), Until: b.Now + 3600})
			if err := b.Publish(); err != nil {
				t.Fatal(err)
			}
			if _, err := f.SetSnapshot(b.Manifest, b.Objects, nil); err != nil {
				t.Fatal(err)
			}
			if ce := up.cut(t); ce.Status != 401 || ce.Reason != "revoked" {
				t.Fatalf("cut with %d %s, want 401 revoked", ce.Status, ce.Reason)
			}
			up.stillOpen(t)
			waitOpen(t, f, 1)
		})
	}
}

// TestRecheckEndsExpiredStreams: a stream outliving its token (expiry plus leeway) is ended by
// the periodic recheck; one whose token is still valid is not.
func TestRecheckEndsExpiredStreams(t *testing.T) {
	for _, h := range []host{hosts()[0], hosts()[1]} {
		t.Run(h.name, func(t *testing.T) {
			b := profile(t, "opencomputer")
			var now atomic.Int64
			now.Store(b.Now)
			up := newStream()
			f := recheckFilter(t, h, b, up, &now, NewConfig().WithRecheckInterval(time.Hour))
			up.open(t, f, sse(b, "sess_1", b.Tokens["t1"]))
			if n := f.Recheck(); n != 0 {
				t.Fatalf("a valid stream was ended (%d)", n)
			}
			up.stillOpen(t)
			now.Store(b.Now + 600 + 30 + 1) // t1: 600 s TTL, 30 s leeway
			if n := f.Recheck(); n != 1 {
				t.Fatalf("Recheck ended %d requests, want 1", n)
			}
			if ce := up.cut(t); ce.Status != 401 || ce.Reason != "expired" {
				t.Fatalf("cut with %d %s, want 401 expired", ce.Status, ce.Reason)
			}
			waitOpen(t, f, 0)
		})
	}
}

// TestRecheckTakesNoRateTokens: rechecks of open streams do not drain the rate bucket that
// admitted them (opencomputer's client class: burst 20), and a 429 never ends a stream.
func TestRecheckTakesNoRateTokens(t *testing.T) {
	for _, h := range []host{hosts()[0], hosts()[1]} {
		t.Run(h.name, func(t *testing.T) {
			b := profile(t, "opencomputer")
			var now atomic.Int64
			now.Store(b.Now)
			up := newStream()
			f := recheckFilter(t, h, b, up, &now, NewConfig().WithRecheckInterval(time.Hour).WithPoolSize(1))
			for range 20 {
				up.open(t, f, sse(b, "sess_1", b.Tokens["t1"]))
			}
			for range 5 {
				if n := f.Recheck(); n != 0 {
					t.Fatalf("rechecks ended %d streams", n)
				}
			}
			// The bucket is empty now (20 admitted), not below: one refill second later exactly
			// one more request is allowed.
			w := httptest.NewRecorder()
			f.ServeHTTP(w, sse(b, "sess_1", b.Tokens["t1"]))
			if w.Code != http.StatusTooManyRequests {
				t.Fatalf("21st stream: %d, want 429", w.Code)
			}
			now.Store(b.Now + 1)
			up.open(t, f, sse(b, "sess_1", b.Tokens["t1"]))
			up.stillOpen(t)
		})
	}
}

// TestRecheckUnderLoad: requests start and end while rechecks and swaps run (race detector).
func TestRecheckUnderLoad(t *testing.T) {
	b := profile(t, "opencomputer")
	var now atomic.Int64
	now.Store(b.Now)
	f := recheckFilter(t, hosts()[0], b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}), &now,
		NewConfig().WithRecheckInterval(time.Millisecond))
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 200 {
				r := httptest.NewRequest("GET", "/v3/sessions", nil)
				r.Header.Set("Authorization", "Bearer "+b.Keys["org"])
				w := httptest.NewRecorder()
				f.ServeHTTP(w, r)
				if w.Code != http.StatusOK {
					t.Errorf("status %d", w.Code)
					return
				}
			}
		})
	}
	for range 20 {
		f.Recheck()
		_, _ = f.SetSnapshot(b.Manifest, b.Objects, nil)
	}
	wg.Wait()
	waitOpen(t, f, 0)
}

func waitOpen(t *testing.T, f *Filter, want int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for f.Open() != want {
		if time.Now().After(deadline) {
			t.Fatalf("%d open requests tracked, want %d", f.Open(), want)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestRecheckDisabled: with rechecks off nothing is tracked and nothing is ended.
func TestRecheckDisabled(t *testing.T) {
	b := profile(t, "opencomputer")
	var now atomic.Int64
	now.Store(b.Now)
	up := newStream()
	f := recheckFilter(t, hosts()[0], b, up, &now, NewConfig().WithRecheckInterval(-1))
	up.open(t, f, sse(b, "sess_1", b.Tokens["t1"]))
	now.Store(b.Now + 3600)
	if n, open := f.Recheck(), f.Open(); n != 0 || open != 0 {
		t.Fatalf("rechecks disabled, yet %d ended and %d tracked", n, open)
	}
	up.stillOpen(t)
}
