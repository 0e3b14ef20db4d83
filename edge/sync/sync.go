// Package sync keeps an edge on the newest snapshot it can trust. It polls a realm's manifest
// (local directory, HTTP with ETag, or S3), verifies its signature under pinned keys, refuses
// rollback, expired and future-dated manifests, checks the digest of every object, persists
// the last trusted version (so a restart cannot be rolled back either), and hands a verified
// Snapshot to the host. While the source fails, the last good snapshot stays in use; the
// decision function fails closed (503) once it is older than the host's maximum staleness.
//
// Tests are named after the attack they stop (TestRollbackRefused, TestFreezeRefused, …).
package sync

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	gosync "sync"
	"sync/atomic"
	"time"

	"github.com/latchkeyhq/latchkey/shared/hostcrypto"
	"github.com/latchkeyhq/latchkey/shared/snapshot"
)

// Snapshot is one verified, opened snapshot: the raw bytes (for Wasm guests, which verify
// again inside) and the native View.
type Snapshot struct {
	Manifest []byte
	M        *snapshot.Manifest
	Objects  [][]byte
	Delta    []byte
	View     *snapshot.View
	// FetchedAt is when this edge accepted it.
	FetchedAt time.Time
}

// Config configures a Syncer.
type Config struct {
	Source Source
	Realm  string
	// Trusted are the pinned manifest keys; a manifest must verify under one of them.
	Trusted []snapshot.TrustedKey
	// StateDir, when set, persists the last trusted version and the snapshot bytes, so a
	// restart refuses rollback and can serve while the source is down.
	StateDir string
	// Interval between polls (default 1 s).
	Interval time.Duration
	// Now is the clock (default time.Now).
	Now    func() time.Time
	Crypto hostcrypto.Provider
	// OnSwap is called (from the polling goroutine) after a new snapshot is accepted.
	OnSwap func(*Snapshot)
	Logger *slog.Logger
}

// Status is what a host reports about synchronisation (/healthz, /metrics).
type Status struct {
	Realm       string
	Version     uint64 // 0: no snapshot yet
	IssuedAt    time.Time
	LastSuccess time.Time // last poll that reached the source and found a valid manifest
	LastError   string
	Failures    int // consecutive failed polls
	Refused     int // manifests refused (signature, rollback, expiry, digest) since start
}

// Syncer polls one realm. Current is safe for concurrent use with polling.
type Syncer struct {
	cfg     Config
	current atomic.Pointer[Snapshot]
	held    uint64 // highest version trusted, persisted

	mu      gosync.Mutex
	etag    string
	objects map[string][]byte // immutable objects by name, kept across deltas
	status  Status
}

// Errors a poll reports besides the snapshot package's (ErrSignature, ErrRollback, …).
var (
	// ErrRealm: the manifest is for another realm than the one configured.
	ErrRealm = errors.New("sync: manifest is for another realm")
	// ErrNoTrustedKey: Config.Trusted is empty; nothing could ever verify.
	ErrNoTrustedKey = errors.New("sync: no trusted manifest key configured")
)

// New returns a Syncer. With a StateDir holding an earlier snapshot it verifies that snapshot
// again (signature, digests, expiry) and serves it until the source answers.
func New(cfg Config) (*Syncer, error) {
	if cfg.Source == nil || cfg.Realm == "" {
		return nil, errors.New("sync: Source and Realm are required")
	}
	if len(cfg.Trusted) == 0 {
		return nil, ErrNoTrustedKey
	}
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Crypto == nil {
		cfg.Crypto = hostcrypto.Std
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Syncer{cfg: cfg, objects: map[string][]byte{}}
	s.status.Realm = cfg.Realm
	if cfg.StateDir != "" {
		if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
			return nil, errors.New("sync: state dir: " + err.Error())
		}
		if err := s.restore(); err != nil {
			cfg.Logger.Warn("sync: persisted snapshot not used", "realm", cfg.Realm, "err", err)
		}
	}
	return s, nil
}

// Current returns the snapshot in use, or nil before the first one.
func (s *Syncer) Current() *Snapshot { return s.current.Load() }

// Status reports the last poll's outcome.
func (s *Syncer) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.status
	if cur := s.current.Load(); cur != nil {
		st.Version = cur.M.Version
		st.IssuedAt = time.Unix(cur.M.IssuedAt, 0)
	}
	return st
}

// Run polls every Interval until ctx ends.
func (s *Syncer) Run(ctx context.Context) error {
	t := time.NewTicker(s.cfg.Interval)
	defer t.Stop()
	for {
		if _, err := s.Poll(ctx); err != nil && ctx.Err() == nil {
			s.cfg.Logger.Warn("sync: poll failed; keeping the last good snapshot", "realm", s.cfg.Realm, "err", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Poll fetches the manifest once; it reports whether a new snapshot was accepted. On any
// error the current snapshot stays in use.
func (s *Syncer) Poll(ctx context.Context) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	changed, refused, err := s.poll(ctx)
	if err != nil {
		s.status.Failures++
		s.status.LastError = err.Error()
		if refused {
			s.status.Refused++
		}
		return false, err
	}
	s.status.Failures = 0
	s.status.LastError = ""
	s.status.LastSuccess = s.cfg.Now()
	return changed, nil
}

func (s *Syncer) poll(ctx context.Context) (changed, refused bool, err error) {
	data, etag, err := s.cfg.Source.Get(ctx, ManifestName(s.cfg.Realm), s.etag)
	if errors.Is(err, ErrNotModified) {
		// Unchanged, but time moves on: a held manifest can expire without changing.
		if cur := s.current.Load(); cur != nil {
			if err := cur.M.CheckFresh(s.cfg.Now().Unix(), s.held); err != nil {
				return false, false, err
			}
		}
		return false, false, nil
	}
	if err != nil {
		return false, false, err
	}
	snap, err := s.verify(ctx, data)
	if err != nil {
		return false, true, err
	}
	s.etag = etag
	if snap == nil {
		return false, false, nil
	}
	if err := s.persist(snap); err != nil {
		// Not fatal for serving, but a restart could then be rolled back: say so loudly.
		s.cfg.Logger.Error("sync: could not persist the trusted version", "realm", s.cfg.Realm, "err", err)
	}
	s.held = snap.M.Version
	s.current.Store(snap)
	s.pruneObjects(snap)
	if s.cfg.OnSwap != nil {
		s.cfg.OnSwap(snap)
	}
	return true, false, nil
}

// verify checks a manifest and everything it names. It returns nil, nil for a valid manifest
// of the version already held (nothing new).
func (s *Syncer) verify(ctx context.Context, data []byte) (*Snapshot, error) {
	now := s.cfg.Now()
	m, err := snapshot.VerifyManifest(data, s.cfg.Trusted, s.cfg.Crypto)
	if err != nil {
		return nil, err
	}
	if m.Realm != s.cfg.Realm {
		return nil, fmt.Errorf("%w: %q", ErrRealm, m.Realm)
	}
	if err := m.CheckFresh(now.Unix(), s.held); err != nil {
		return nil, err
	}
	if cur := s.current.Load(); cur != nil && m.Version == cur.M.Version {
		return nil, nil
	}
	objs := make([][]byte, len(m.Objects))
	for i, ref := range m.Objects {
		if objs[i], err = s.object(ctx, ref.Name); err != nil {
			return nil, err
		}
	}
	var delta []byte
	if m.Delta != nil {
		if delta, err = s.object(ctx, m.Delta.Name); err != nil {
			return nil, err
		}
	}
	v, err := snapshot.Open(m, objs, delta, s.cfg.Crypto)
	if err != nil {
		// A digest mismatch may be a torn read of a cached object: forget them so the next
		// poll fetches afresh.
		for _, ref := range m.Objects {
			delete(s.objects, ref.Name)
		}
		return nil, err
	}
	return &Snapshot{Manifest: data, M: m, Objects: objs, Delta: delta, View: v, FetchedAt: now}, nil
}

// object returns an immutable object, from memory when an earlier manifest named it.
func (s *Syncer) object(ctx context.Context, ref string) ([]byte, error) {
	if b, ok := s.objects[ref]; ok {
		return b, nil
	}
	b, _, err := s.cfg.Source.Get(ctx, ObjectName(s.cfg.Realm, ref), "")
	if err != nil {
		return nil, errors.New("sync: object " + ref + ": " + err.Error())
	}
	s.objects[ref] = b
	return b, nil
}

// pruneObjects keeps only what the current snapshot names.
func (s *Syncer) pruneObjects(snap *Snapshot) {
	keep := map[string]bool{}
	for _, r := range snap.M.Objects {
		keep[r.Name] = true
	}
	if snap.M.Delta != nil {
		keep[snap.M.Delta.Name] = true
	}
	for name := range s.objects {
		if !keep[name] {
			delete(s.objects, name)
		}
	}
}

// persisted is the state file: the highest trusted version and the files of that snapshot.
type persisted struct {
	Realm    string   `json:"realm"`
	Version  uint64   `json:"version"`
	Manifest string   `json:"manifest_sha256"`
	Objects  []string `json:"objects"`
}

func (s *Syncer) statePath() string { return filepath.Join(s.cfg.StateDir, s.cfg.Realm+".state.json") }
func (s *Syncer) filePath(name string) string {
	return filepath.Join(s.cfg.StateDir, s.cfg.Realm+"."+name)
}

func (s *Syncer) persist(snap *Snapshot) error {
	if s.cfg.StateDir == "" {
		return nil
	}
	p := persisted{Realm: s.cfg.Realm, Version: snap.M.Version}
	sum := sha256.Sum256(snap.Manifest)
	p.Manifest = hex.EncodeToString(sum[:])
	files := map[string][]byte{"manifest": snap.Manifest}
	for i, r := range snap.M.Objects {
		files["obj."+r.Name] = snap.Objects[i]
		p.Objects = append(p.Objects, r.Name)
	}
	if snap.M.Delta != nil {
		files["obj."+snap.M.Delta.Name] = snap.Delta
		p.Objects = append(p.Objects, snap.M.Delta.Name)
	}
	for name, b := range files {
		if err := writeAtomic(s.filePath(name), b); err != nil {
			return err
		}
	}
	js, err := json.Marshal(p)
	if err != nil {
		return err
	}
	// The state file goes last: it never names files that are not there.
	if err := writeAtomic(s.statePath(), js); err != nil {
		return err
	}
	s.removeStale(p.Objects)
	return nil
}

func (s *Syncer) removeStale(keep []string) {
	want := map[string]bool{}
	for _, n := range keep {
		want[s.cfg.Realm+".obj."+n] = true
	}
	ents, err := os.ReadDir(s.cfg.StateDir)
	if err != nil {
		return
	}
	prefix := s.cfg.Realm + ".obj."
	for _, e := range ents {
		if n := e.Name(); len(n) > len(prefix) && n[:len(prefix)] == prefix && !want[n] {
			os.Remove(filepath.Join(s.cfg.StateDir, n))
		}
	}
}

// restore loads the persisted state: the held version always (rollback protection survives a
// restart even when the files are unusable), the snapshot when it still verifies.
func (s *Syncer) restore() error {
	js, err := os.ReadFile(s.statePath())
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var p persisted
	if err := json.Unmarshal(js, &p); err != nil {
		return errors.New("state file: " + err.Error())
	}
	if p.Realm != s.cfg.Realm {
		return errors.New("state file is for realm " + strconv.Quote(p.Realm))
	}
	s.held = p.Version
	data, err := os.ReadFile(s.filePath("manifest"))
	if err != nil {
		return err
	}
	for _, name := range p.Objects {
		b, err := os.ReadFile(s.filePath("obj." + name))
		if err != nil {
			return err
		}
		s.objects[name] = b
	}
	snap, err := s.verify(context.Background(), data)
	if err != nil {
		s.objects = map[string][]byte{}
		return err
	}
	if snap != nil {
		s.current.Store(snap)
		s.status.Version = snap.M.Version
		if s.cfg.OnSwap != nil {
			s.cfg.OnSwap(snap)
		}
	}
	return nil
}

func writeAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), path)
}
