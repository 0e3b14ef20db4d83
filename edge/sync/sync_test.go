package sync

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	gosync "sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/examples/profiles"
	"github.com/latchkeyhq/latchkey/shared/hostcrypto"
	"github.com/latchkeyhq/latchkey/shared/snapshot"
	"github.com/latchkeyhq/latchkey/shared/verifier"
)

// fixture is a realm publishing into a directory in the publisher's layout.
type fixture struct {
	b     *profiles.Built
	dir   string
	clock atomic.Int64 // unix seconds
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	b, err := profiles.Build("opencomputer", 3)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{b: b, dir: t.TempDir()}
	f.clock.Store(b.Now)
	f.write(t)
	return f
}

func (f *fixture) realm() string { return f.b.Contents.Realm }

func (f *fixture) now() time.Time { return time.Unix(f.clock.Load(), 0) }

// write puts the current manifest and its objects where the publisher would.
func (f *fixture) write(t *testing.T) {
	t.Helper()
	m, err := snapshot.VerifyManifest(f.b.Manifest, []snapshot.TrustedKey{f.b.Trusted}, hostcrypto.Std)
	if err != nil {
		t.Fatal(err)
	}
	for i, ref := range m.Objects {
		put(t, f.dir, ObjectName(f.realm(), ref.Name), f.b.Objects[i])
	}
	put(t, f.dir, ManifestName(f.realm()), f.b.Manifest)
}

// next publishes the next version (a key removed, say) and returns its manifest bytes.
func (f *fixture) next(t *testing.T, mutate func(c *snapshot.Contents)) []byte {
	t.Helper()
	mutate(f.b.Contents)
	f.b.Contents.Version++
	if err := f.b.Publish(); err != nil {
		t.Fatal(err)
	}
	f.write(t)
	return f.b.Manifest
}

func put(t *testing.T, dir, name string, data []byte) {
	t.Helper()
	p := filepath.Join(dir, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) syncer(t *testing.T, src Source, stateDir string) *Syncer {
	t.Helper()
	s, err := New(Config{Source: src, Realm: f.realm(), Trusted: []snapshot.TrustedKey{f.b.Trusted}, StateDir: stateDir, Now: f.now})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustPoll(t *testing.T, s *Syncer) {
	t.Helper()
	if _, err := s.Poll(context.Background()); err != nil {
		t.Fatalf("poll: %v", err)
	}
}

// decide runs the org key through the snapshot s holds.
func decide(t *testing.T, f *fixture, s *Syncer, staleness int64) *verifier.Decision {
	t.Helper()
	st, err := verifier.NewState(s.Current().View)
	if err != nil {
		t.Fatal(err)
	}
	e := verifier.NewEngine(verifier.Options{MaxStalenessSeconds: staleness})
	e.SetState(st)
	return e.Decide(&verifier.Request{
		Now: f.clock.Load() * 1e9, Method: []byte("POST"), Path: []byte("/v3/sessions"),
		Headers: []verifier.Header{{Name: []byte("authorization"), Value: []byte("Bearer " + f.b.Keys["org"])}},
	})
}

func TestFirstSnapshotAccepted(t *testing.T) {
	f := newFixture(t)
	s := f.syncer(t, DirSource{Root: f.dir}, "")
	if s.Current() != nil {
		t.Fatal("a snapshot before the first poll")
	}
	var swaps int
	s.cfg.OnSwap = func(*Snapshot) { swaps++ }
	mustPoll(t, s)
	if s.Current() == nil || s.Current().M.Version != f.b.Contents.Version || swaps != 1 {
		t.Fatalf("after poll: %+v, %d swaps", s.Status(), swaps)
	}
	if d := decide(t, f, s, 0); !d.Allow {
		t.Fatalf("org key denied from the synced snapshot: %d %s", d.Status, d.Reason)
	}
	mustPoll(t, s) // same manifest: nothing new
	if swaps != 1 {
		t.Fatalf("an unchanged manifest swapped again (%d swaps)", swaps)
	}
}

// TestRollbackRefused: an attacker (or a stale replica) serving an older signed manifest cannot
// take the edge back to a snapshot in which a revoked key still works.
func TestRollbackRefused(t *testing.T) {
	f := newFixture(t)
	old := append([]byte(nil), f.b.Manifest...)
	oldObjects := append([][]byte(nil), f.b.Objects...)
	s := f.syncer(t, DirSource{Root: f.dir}, "")
	mustPoll(t, s)
	f.next(t, func(c *snapshot.Contents) {})
	mustPoll(t, s)
	v2 := s.Current().M.Version

	put(t, f.dir, ManifestName(f.realm()), old)
	_ = oldObjects // the old objects are still in place, under their own names
	_, err := s.Poll(context.Background())
	if !errors.Is(err, snapshot.ErrRollback) {
		t.Fatalf("older manifest: got %v, want ErrRollback", err)
	}
	if s.Current().M.Version != v2 || s.Status().Refused != 1 {
		t.Fatalf("after a rollback attempt: version %d (want %d), status %+v", s.Current().M.Version, v2, s.Status())
	}
}

// TestRollbackRefusedAfterRestart: the trusted version is persisted, so restarting the edge
// does not reopen the rollback window, and the last good snapshot serves while the store is down.
func TestRollbackRefusedAfterRestart(t *testing.T) {
	f := newFixture(t)
	state := t.TempDir()
	old := append([]byte(nil), f.b.Manifest...)
	s := f.syncer(t, DirSource{Root: f.dir}, state)
	mustPoll(t, s)
	f.next(t, func(c *snapshot.Contents) {})
	mustPoll(t, s)
	v2 := s.Current().M.Version

	put(t, f.dir, ManifestName(f.realm()), old)
	restarted := f.syncer(t, DirSource{Root: f.dir}, state)
	if restarted.Current() == nil || restarted.Current().M.Version != v2 {
		t.Fatal("restart did not restore the persisted snapshot")
	}
	if _, err := restarted.Poll(context.Background()); !errors.Is(err, snapshot.ErrRollback) {
		t.Fatalf("older manifest after restart: got %v, want ErrRollback", err)
	}

	// Even with the persisted files gone, the version survives in the state file.
	for _, e := range mustReadDir(t, state) {
		if e != f.realm()+".state.json" {
			os.Remove(filepath.Join(state, e))
		}
	}
	again := f.syncer(t, DirSource{Root: f.dir}, state)
	if _, err := again.Poll(context.Background()); !errors.Is(err, snapshot.ErrRollback) {
		t.Fatalf("older manifest with only the state file: got %v, want ErrRollback", err)
	}
}

func mustReadDir(t *testing.T, dir string) []string {
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// TestFreezeRefused: replaying the last manifest forever (a frozen store) does not keep an edge
// on it past its expiry; a new edge refuses it outright.
func TestFreezeRefused(t *testing.T) {
	f := newFixture(t)
	s := f.syncer(t, DirSource{Root: f.dir}, "")
	mustPoll(t, s)
	f.clock.Store(s.Current().M.ExpiresAt)
	if _, err := s.Poll(context.Background()); !errors.Is(err, snapshot.ErrExpired) {
		t.Fatalf("held manifest past expiry: got %v, want ErrExpired", err)
	}
	if d := decide(t, f, s, 0); d.Allow || d.Status != 503 {
		t.Fatalf("deciding from an expired snapshot: got %d, want 503", d.Status)
	}
	fresh := f.syncer(t, DirSource{Root: f.dir}, "")
	if _, err := fresh.Poll(context.Background()); !errors.Is(err, snapshot.ErrExpired) || fresh.Current() != nil {
		t.Fatalf("expired manifest on a new edge: got %v", err)
	}
}

// TestForgedManifestRefused: a manifest signed by any key but the pinned one is refused.
func TestForgedManifestRefused(t *testing.T) {
	f := newFixture(t)
	other, err := profiles.Build("opencomputer", 99) // same realm, another manifest key
	if err != nil {
		t.Fatal(err)
	}
	put(t, f.dir, ManifestName(f.realm()), other.Manifest)
	s := f.syncer(t, DirSource{Root: f.dir}, "")
	if _, err := s.Poll(context.Background()); !errors.Is(err, snapshot.ErrSignature) || s.Current() != nil {
		t.Fatalf("forged manifest: got %v, want ErrSignature", err)
	}
}

// TestTamperedObjectRefused: an object changed in storage (or in transit) fails its digest and
// the edge stays on what it had.
func TestTamperedObjectRefused(t *testing.T) {
	f := newFixture(t)
	s := f.syncer(t, DirSource{Root: f.dir}, "")
	mustPoll(t, s)
	v1 := s.Current().M.Version
	f.next(t, func(c *snapshot.Contents) { c.Keys = c.Keys[:0] })
	m, _ := snapshot.VerifyManifest(f.b.Manifest, []snapshot.TrustedKey{f.b.Trusted}, hostcrypto.Std)
	name := ObjectName(f.realm(), m.Objects[len(m.Objects)-1].Name)
	p := filepath.Join(f.dir, filepath.FromSlash(name))
	data, _ := os.ReadFile(p)
	data[len(data)-1] ^= 1
	put(t, f.dir, name, data)
	if _, err := s.Poll(context.Background()); !errors.Is(err, snapshot.ErrDigest) {
		t.Fatalf("tampered object: got %v, want ErrDigest", err)
	}
	if s.Current().M.Version != v1 {
		t.Fatal("the edge left its good snapshot for a tampered one")
	}
}

// TestOtherRealmRefused: a validly signed manifest of another realm (same signing key, wrong
// path or a confused operator) is not served as this realm.
func TestOtherRealmRefused(t *testing.T) {
	f := newFixture(t)
	put(t, f.dir, ManifestName("prod"), f.b.Manifest)
	s, err := New(Config{Source: DirSource{Root: f.dir}, Realm: "prod", Trusted: []snapshot.TrustedKey{f.b.Trusted}, Now: f.now})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Poll(context.Background()); !errors.Is(err, ErrRealm) {
		t.Fatalf("other realm's manifest: got %v, want ErrRealm", err)
	}
}

// TestStoreOutageKeepsLastGood: while the source fails the edge keeps deciding from the last
// good snapshot, and fails closed (503) once that is older than the maximum staleness.
func TestStoreOutageKeepsLastGood(t *testing.T) {
	f := newFixture(t)
	s := f.syncer(t, DirSource{Root: f.dir}, "")
	mustPoll(t, s)
	if err := os.RemoveAll(f.dir); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if _, err := s.Poll(context.Background()); err == nil {
			t.Fatal("poll of a missing source succeeded")
		}
	}
	if st := s.Status(); st.Failures != 3 || st.Version == 0 {
		t.Fatalf("status during outage: %+v", st)
	}
	issued := s.Current().M.IssuedAt
	f.clock.Store(issued + 60)
	if d := decide(t, f, s, 60); !d.Allow {
		t.Fatalf("within max staleness: %d %s", d.Status, d.Reason)
	}
	f.clock.Store(issued + 61)
	if d := decide(t, f, s, 60); d.Allow || d.Status != 503 {
		t.Fatalf("past max staleness: got %d, want 503", d.Status)
	}
}

// TestHotSwapUnderLoad: readers deciding concurrently with swaps always see a whole snapshot
// (run with -race).
func TestHotSwapUnderLoad(t *testing.T) {
	f := newFixture(t)
	s := f.syncer(t, DirSource{Root: f.dir}, "")
	mustPoll(t, s)
	stop := make(chan struct{})
	var wg gosync.WaitGroup
	var denied atomic.Int64
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e := verifier.NewEngine(verifier.Options{})
			for {
				select {
				case <-stop:
					return
				default:
				}
				st, err := verifier.NewState(s.Current().View)
				if err != nil {
					t.Error(err)
					return
				}
				e.SetState(st)
				d := e.Decide(&verifier.Request{Now: f.b.Now * 1e9, Method: []byte("POST"), Path: []byte("/v3/sessions"),
					Headers: []verifier.Header{{Name: []byte("authorization"), Value: []byte("Bearer " + f.b.Keys["org"])}}})
				if !d.Allow {
					denied.Add(1)
				}
			}
		}()
	}
	for range 10 {
		f.next(t, func(c *snapshot.Contents) {})
		mustPoll(t, s)
	}
	close(stop)
	wg.Wait()
	if denied.Load() != 0 {
		t.Fatalf("%d requests denied while swapping snapshots", denied.Load())
	}
}

// etagServer serves a directory over HTTP with strong ETags and If-None-Match, as a bucket or
// CDN does, and counts full manifest transfers.
func etagServer(t *testing.T, dir string) (*httptest.Server, *atomic.Int64) {
	var full atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		data, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(r.URL.Path)))
		if err != nil {
			http.NotFound(w, r)
			return
		}
		sum := sha256.Sum256(data)
		tag := `"` + hex.EncodeToString(sum[:]) + `"`
		w.Header().Set("ETag", tag)
		if r.Header.Get("If-None-Match") == tag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		if filepath.Base(r.URL.Path) == "manifest" {
			full.Add(1)
		}
		w.Write(data)
	}))
	t.Cleanup(srv.Close)
	return srv, &full
}

func TestHTTPSourceUsesETag(t *testing.T) {
	f := newFixture(t)
	srv, full := etagServer(t, f.dir)
	s := f.syncer(t, HTTPSource{Base: srv.URL}, "")
	for range 3 {
		mustPoll(t, s)
	}
	if full.Load() != 1 {
		t.Fatalf("3 polls of an unchanged manifest transferred it %d times, want 1", full.Load())
	}
	f.next(t, func(c *snapshot.Contents) {})
	mustPoll(t, s)
	if full.Load() != 2 || s.Current().M.Version != f.b.Contents.Version {
		t.Fatalf("new manifest over HTTP: %d transfers, version %d", full.Load(), s.Current().M.Version)
	}
}

func TestNamesCannotEscapeTheRoot(t *testing.T) {
	for _, n := range []string{"../etc/passwd", "a/../../b", "/abs", "a//b", ".hidden/x", "a/b\\c", ""} {
		if _, _, err := (DirSource{Root: t.TempDir()}).Get(context.Background(), n, ""); err == nil || errors.Is(err, ErrNotFound) {
			t.Errorf("name %q: got %v, want a refusal", n, err)
		}
	}
}
