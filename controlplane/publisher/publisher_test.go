package publisher

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/controlplane/store"
	"github.com/latchkeyhq/latchkey/examples/profiles"
	"github.com/latchkeyhq/latchkey/shared/hostcrypto"
	"github.com/latchkeyhq/latchkey/shared/snapshot"
)

// TestPublishedSnapshotDecides is the end-to-end path: a key created in the store is allowed
// by an edge that loads the published snapshot; once revoked and published again, denied.
func TestPublishedSnapshotDecides(t *testing.T) {
	forEachBackend(t, func(t *testing.T, st store.Store) {
		ctx := context.Background()
		e := newEnv(t, st, "acme")
		target := newDirTarget(t)
		p := e.newPublisher(target, nil)

		reader, rk := e.createKey(keySpec{typ: "live", org: "org-a", scopes: []string{"read"}})
		writer, _ := e.createKey(keySpec{typ: "live", org: "org-a", scopes: []string{"read", "write"}})
		s1, err := p.PublishNow(ctx, "acme")
		if err != nil {
			t.Fatal(err)
		}
		if !s1.Full || s1.Version == 0 || s1.Keys != 2 || s1.LastError != "" || !s1.PublishedAt.Equal(e.clock.Now()) {
			t.Fatalf("status %+v", s1)
		}
		if got := p.Status("acme"); got != s1 {
			t.Fatalf("Status = %+v, PublishNow said %+v", got, s1)
		}

		now := e.clock.Now()
		edge := edgeLoad(t, target, "acme", e.signer.Trusted(), now, 0)
		wantStatus(t, decide(edge, now, "GET", "/v1/things", bearer(reader)...), 200, "reader lists")
		wantStatus(t, decide(edge, now, "POST", "/v1/things", bearer(reader)...), 403, "reader creates")
		wantStatus(t, decide(edge, now, "POST", "/v1/things", bearer(writer)...), 200, "writer creates")
		d := decide(edge, now, "GET", "/v1/things", bearer(reader)...)
		if string(d.Org) != "org-a" || d.KeyID != rk.Hash.ID() {
			t.Fatalf("identity org %q key %v", d.Org, d.KeyID)
		}

		e.clock.Add(time.Second)
		e.revoke(rk.ID)
		s2, err := p.PublishNow(ctx, "acme")
		if err != nil {
			t.Fatal(err)
		}
		if s2.Version <= s1.Version || s2.Full || s2.BaseVersion != s1.Version || s2.Keys != 1 {
			t.Fatalf("after revoke: %+v", s2)
		}
		now = e.clock.Now()
		edge = edgeLoad(t, target, "acme", e.signer.Trusted(), now, s1.Version)
		wantStatus(t, decide(edge, now, "GET", "/v1/things", bearer(reader)...), 401, "revoked key")
		wantStatus(t, decide(edge, now, "GET", "/v1/things", bearer(writer)...), 200, "other key")
	})
}

// TestDeltaCarriesChanges: after a full snapshot, key, org and revocation changes are
// published as one cumulative delta over it, which an edge applies.
func TestDeltaCarriesChanges(t *testing.T) {
	forEachBackend(t, func(t *testing.T, st store.Store) {
		ctx := context.Background()
		e := newEnv(t, st, "acme")
		target := newDirTarget(t)
		p := e.newPublisher(target, nil)

		gone, gk := e.createKey(keySpec{typ: "live", org: "org-a", scopes: []string{"read"}})
		minter, mk := e.createKey(keySpec{typ: "live", org: "org-b", scopes: []string{"read"}})
		full, err := p.PublishNow(ctx, "acme")
		if err != nil {
			t.Fatal(err)
		}

		e.clock.Add(time.Second)
		e.revoke(gk.ID)
		added, _ := e.createKey(keySpec{typ: "agent", org: "org-c", scopes: []string{"read"}, agents: []string{"bot-1"}})
		if _, err := st.SetOrgState(ctx, store.OrgState{Realm: "acme", Org: "org-b", State: store.OrgBudgetExhausted, UpdatedAt: e.clock.Now()}); err != nil {
			t.Fatal(err)
		}
		now := e.clock.Now()
		token := func(session string) string {
			tok, err := profiles.SignToken(e.tokenKey, e.tokenKID, map[string]any{
				"iss": "https://latchkey.test", "aud": "test-api", "sub": session, "org": "org-b", "scope": "read",
				"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Unix() + 300, "jti": "tok_" + session, "key_id": mk.ID,
			})
			if err != nil {
				t.Fatal(err)
			}
			return tok
		}
		if _, err := st.AddRevocation(ctx, store.Revocation{Realm: "acme", Kind: store.RevokeSession, Value: "s-revoked", Until: now.Add(time.Hour), CreatedAt: now}); err != nil {
			t.Fatal(err)
		}
		s, err := p.PublishNow(ctx, "acme")
		if err != nil {
			t.Fatal(err)
		}
		if s.Full || s.BaseVersion != full.Version || s.Keys != 2 {
			t.Fatalf("status %+v, want a delta over v%d with 2 keys", s, full.Version)
		}

		edge := edgeLoad(t, target, "acme", e.signer.Trusted(), now, full.Version)
		v := edge.View()
		if v.BaseVersion() != full.Version || v.Version() != s.Version || v.KeyCount() != 2 {
			t.Fatalf("view: base %d version %d keys %d", v.BaseVersion(), v.Version(), v.KeyCount())
		}
		if _, ok := v.LookupKey(&gk.Hash); ok {
			t.Fatal("the edge still finds the revoked key")
		}
		dc, err := v.DeltaContents()
		if err != nil || dc == nil {
			t.Fatalf("DeltaContents: %v", err)
		}
		if len(dc.RemoveKeys) != 1 || len(dc.AddKeys) != 1 || len(dc.RevokedSessions) != 1 || len(dc.RevokedTokens) != 0 {
			t.Fatalf("delta: %d added, %d removed, %d sessions, %d tokens", len(dc.AddKeys), len(dc.RemoveKeys), len(dc.RevokedSessions), len(dc.RevokedTokens))
		}
		wantStatus(t, decide(edge, now, "GET", "/v1/things", bearer(gone)...), 401, "revoked key")
		wantStatus(t, decide(edge, now, "GET", "/v1/things", append(bearer(added), "x-agent-id", "bot-1")...), 200, "added agent key")
		wantStatus(t, decide(edge, now, "GET", "/v1/things", append(bearer(added), "x-agent-id", "bot-2")...), 403, "added key, other agent")
		wantStatus(t, decide(edge, now, "GET", "/v1/things", bearer(minter)...), 402, "org over budget")

		// Client tokens: the revoked session is denied; revoking the minting key kills the rest.
		if _, err := st.SetOrgState(ctx, store.OrgState{Realm: "acme", Org: "org-b", State: store.OrgActive, UpdatedAt: now}); err != nil {
			t.Fatal(err)
		}
		if _, err := p.PublishNow(ctx, "acme"); err != nil {
			t.Fatal(err)
		}
		edge = edgeLoad(t, target, "acme", e.signer.Trusted(), now, s.Version)
		wantStatus(t, decide(edge, now, "GET", "/v1/sessions/s-ok/events", bearer(token("s-ok"))...), 200, "token")
		wantStatus(t, decide(edge, now, "GET", "/v1/sessions/s-revoked/events", bearer(token("s-revoked"))...), 401, "token of a revoked session")
		e.revoke(mk.ID)
		s3, err := p.PublishNow(ctx, "acme")
		if err != nil {
			t.Fatal(err)
		}
		if s3.Full || s3.BaseVersion != full.Version {
			t.Fatalf("status %+v, want still a delta over v%d", s3, full.Version)
		}
		edge = edgeLoad(t, target, "acme", e.signer.Trusted(), now, s.Version)
		wantStatus(t, decide(edge, now, "GET", "/v1/sessions/s-ok/events", bearer(token("s-ok"))...), 401, "token of a revoked key")
	})
}

// TestFullSnapshotWhenDeltaCannotCarryIt: a policy change, a signing-key rotation, too many
// key changes and FullEvery deltas each make the next publication a full snapshot.
func TestFullSnapshotWhenDeltaCannotCarryIt(t *testing.T) {
	st := openSQLite(t)
	ctx := context.Background()
	e := newEnv(t, st, "acme")
	target := newDirTarget(t)
	p := e.newPublisher(target, func(o *Options) { o.FullEvery = 3 })
	publish := func(wantFull bool, what string) Status {
		t.Helper()
		s, err := p.PublishNow(ctx, "acme")
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if s.Full != wantFull {
			t.Fatalf("%s: full = %v, want %v (%+v)", what, s.Full, wantFull, s)
		}
		// Every publication is what an edge can load.
		edgeLoad(t, target, "acme", e.signer.Trusted(), e.clock.Now(), 0)
		return s
	}
	e.createKey(keySpec{typ: "live", org: "o", scopes: []string{"read"}})
	publish(true, "first")
	e.createKey(keySpec{typ: "live", org: "o", scopes: []string{"read"}})
	publish(false, "a key")

	if _, err := st.PutPolicy(ctx, store.Policy{Realm: "acme", YAML: append(policyYAML(t, "acme"), "# v2\n"...), CreatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	publish(true, "policy changed")

	old, err := st.ActiveSigningKey(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	nk := store.SigningKey{KID: "sk_2", Realm: "acme", Alg: store.AlgEdDSA, Public: make([]byte, 32), CreatedAt: e.clock.Now()}
	if _, _, err := st.RotateSigningKey(ctx, "acme", old.KID, nk, e.clock.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	publish(true, "signing key rotated")

	// More key changes than a delta over a small base takes (256).
	batch := make([]store.APIKey, 300)
	for i := range batch {
		batch[i] = benchKey("acme", 1_000_000+i)
	}
	if err := st.CreateKeys(ctx, "acme", batch); err != nil {
		t.Fatal(err)
	}
	s := publish(true, "300 keys")
	if s.Keys != 302 {
		t.Fatalf("%d keys, want 302", s.Keys)
	}

	// FullEvery = 3: three deltas, then a full snapshot.
	for i := range 3 {
		e.createKey(keySpec{typ: "live", org: "o", scopes: []string{"read"}})
		publish(false, "delta "+strconv.Itoa(i+1))
	}
	publish(true, "after FullEvery deltas")

	// A retired signing key whose NotAfter passes needs no full snapshot: it verifies nothing.
	e.clock.Add(2 * time.Hour)
	publish(false, "retired key past NotAfter")
}

// TestPublishFullOnly: FullEvery < 0 never publishes deltas.
func TestPublishFullOnly(t *testing.T) {
	st := openSQLite(t)
	e := newEnv(t, st, "acme")
	p := e.newPublisher(newDirTarget(t), func(o *Options) { o.FullEvery = -1 })
	for range 3 {
		s, err := p.PublishNow(context.Background(), "acme")
		if err != nil || !s.Full {
			t.Fatalf("%+v, %v", s, err)
		}
	}
}

// TestObjectsBeforeManifest: every object a manifest names is written before the manifest.
func TestObjectsBeforeManifest(t *testing.T) {
	st := openSQLite(t)
	ctx := context.Background()
	e := newEnv(t, st, "acme")
	rec := &recordingTarget{Target: newDirTarget(t)}
	p := e.newPublisher(rec, func(o *Options) { o.Shards = 4 })
	for i := range 6 {
		_, k := e.createKey(keySpec{typ: "live", org: "o", scopes: []string{"read"}})
		if i == 3 {
			e.revoke(k.ID)
		}
		if _, err := p.PublishNow(ctx, "acme"); err != nil {
			t.Fatal(err)
		}
		log := rec.log()
		last := log[len(log)-1]
		if last != "manifest "+ManifestName("acme") {
			t.Fatalf("last write %q, want the manifest", last)
		}
		data, _, err := rec.Get(ctx, ManifestName("acme"))
		if err != nil {
			t.Fatal(err)
		}
		m, err := snapshot.VerifyManifest(data, []snapshot.TrustedKey{e.signer.Trusted()}, hostcrypto.Std)
		if err != nil {
			t.Fatal(err)
		}
		refs := m.Objects
		if m.Delta != nil {
			refs = append(refs, *m.Delta)
		}
		for _, r := range refs {
			want := "object " + ObjectName("acme", r.Name)
			at := -1
			for j, w := range log[:len(log)-1] {
				if w == want {
					at = j
				}
			}
			if at < 0 {
				t.Fatalf("publication %d: %s not written before its manifest", i, r.Name)
			}
		}
	}
	if n := rec.manifests(); n != 6 {
		t.Fatalf("%d manifests written, want 6", n)
	}
}

// TestFailedManifestWriteKeepsState: a manifest write that fails leaves the previous manifest
// in place, records the error, and the next publication succeeds with a newer version.
func TestFailedManifestWriteKeepsState(t *testing.T) {
	st := openSQLite(t)
	ctx := context.Background()
	e := newEnv(t, st, "acme")
	rec := &recordingTarget{Target: newDirTarget(t)}
	p := e.newPublisher(rec, nil)
	s1, err := p.PublishNow(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	rec.failManifest = errors.New("disk full")
	e.createKey(keySpec{typ: "live", org: "o", scopes: []string{"read"}})
	s2, err := p.PublishNow(ctx, "acme")
	if err == nil || !strings.Contains(s2.LastError, "disk full") || s2.Version != s1.Version {
		t.Fatalf("failed publish: %+v, %v", s2, err)
	}
	edgeLoad(t, rec, "acme", e.signer.Trusted(), e.clock.Now(), s1.Version) // still there
	rec.failManifest = nil
	s3, err := p.PublishNow(ctx, "acme")
	if err != nil || s3.LastError != "" || s3.Version <= s1.Version+1 || s3.Keys != 1 {
		t.Fatalf("after recovery: %+v, %v (the failed attempt's version is never reused)", s3, err)
	}
}

// TestConditionalManifestWrite: two publishers (replicas) on one store and one target. A
// writer holding a stale ETag gets ErrPrecondition and nothing is lost; a publisher that loses
// the race publishes again with a newer version, so versions only ever increase.
func TestConditionalManifestWrite(t *testing.T) {
	forEachBackend(t, func(t *testing.T, st store.Store) {
		ctx := context.Background()
		e := newEnv(t, st, "acme")
		target := newDirTarget(t)
		p1 := e.newPublisher(target, nil)
		p2 := e.newPublisher(target, nil)

		s1, err := p1.PublishNow(ctx, "acme")
		if err != nil {
			t.Fatal(err)
		}
		_, etag1, err := target.Get(ctx, ManifestName("acme"))
		if err != nil {
			t.Fatal(err)
		}
		e.createKey(keySpec{typ: "live", org: "o", scopes: []string{"read"}})
		s2, err := p2.PublishNow(ctx, "acme")
		if err != nil || s2.Version <= s1.Version {
			t.Fatalf("second replica: %+v, %v", s2, err)
		}
		second, _, err := target.Get(ctx, ManifestName("acme"))
		if err != nil {
			t.Fatal(err)
		}
		// The first replica's ETag is stale now.
		if _, err := target.PutManifest(ctx, ManifestName("acme"), []byte("stale"), etag1); !errors.Is(err, ErrPrecondition) {
			t.Fatalf("stale write: %v, want ErrPrecondition", err)
		}
		if cur, _, _ := target.Get(ctx, ManifestName("acme")); !bytes.Equal(cur, second) {
			t.Fatal("the second replica's manifest was lost")
		}
		// p1 still holds etag1: its publication loses the conditional write, re-reads and
		// publishes again with a version above p2's.
		e.createKey(keySpec{typ: "live", org: "o", scopes: []string{"read"}})
		s3, err := p1.PublishNow(ctx, "acme")
		if err != nil || s3.Version <= s2.Version || s3.Keys != 2 {
			t.Fatalf("first replica again: %+v, %v", s3, err)
		}
		edge := edgeLoad(t, target, "acme", e.signer.Trusted(), e.clock.Now(), s2.Version)
		if edge.View().Version() != s3.Version {
			t.Fatalf("edge holds v%d, want v%d", edge.View().Version(), s3.Version)
		}

		// Both replicas publishing at once: every call succeeds (retrying as needed) and the
		// manifest an edge sees never goes back.
		var wg sync.WaitGroup
		held := s3.Version
		for _, p := range []*Publisher{p1, p2} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 5 {
					if _, err := p.PublishNow(ctx, "acme"); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		for range 10 {
			data, _, err := target.Get(ctx, ManifestName("acme"))
			if err != nil {
				t.Fatal(err)
			}
			m, err := snapshot.VerifyManifest(data, []snapshot.TrustedKey{e.signer.Trusted()}, hostcrypto.Std)
			if err != nil {
				t.Fatal(err)
			}
			if m.Version < held {
				t.Fatalf("manifest went back from v%d to v%d", held, m.Version)
			}
			held = m.Version
		}
		wg.Wait()
		edgeLoad(t, target, "acme", e.signer.Trusted(), e.clock.Now(), held)
	})
}

// TestVersionBehindTarget: a store reset under a kept target would publish versions that
// edges refuse as rollbacks. The publisher skips versions past the target's when they are
// few, and says so (ErrVersionBehind) when they are many.
func TestVersionBehindTarget(t *testing.T) {
	ctx := context.Background()
	target := newDirTarget(t)
	e1 := newEnv(t, openSQLite(t), "acme")
	p1 := e1.newPublisher(target, nil)
	for range 5 {
		if _, err := p1.PublishNow(ctx, "acme"); err != nil {
			t.Fatal(err)
		}
	}

	// A fresh store, the same manifest key: versions 1..5 are skipped.
	e2 := newEnv(t, openSQLite(t), "acme")
	e2.signer = e1.signer
	p2 := e2.newPublisher(target, nil)
	s, err := p2.PublishNow(ctx, "acme")
	if err != nil || s.Version != 6 {
		t.Fatalf("%+v, %v; want version 6", s, err)
	}
	edgeLoad(t, target, "acme", e1.signer.Trusted(), e2.clock.Now(), 5)

	e3 := newEnv(t, openSQLite(t), "acme")
	e3.signer = e1.signer
	p3 := e3.newPublisher(target, nil)
	p3.catchUp = 3
	s, err = p3.PublishNow(ctx, "acme")
	if !errors.Is(err, ErrVersionBehind) || !strings.Contains(s.LastError, "target holds 6") {
		t.Fatalf("err = %v (status %+v), want ErrVersionBehind", err, s)
	}
	edgeLoad(t, target, "acme", e1.signer.Trusted(), e3.clock.Now(), 6) // untouched
}

func TestPublishNoPolicy(t *testing.T) {
	st := openSQLite(t)
	ctx := context.Background()
	if _, err := st.CreateRealm(ctx, "empty", t0); err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, st: st, realm: "empty", clock: newClock(), signer: newManifestKey(t)}
	p := e.newPublisher(newDirTarget(t), nil)
	s, err := p.PublishNow(ctx, "empty")
	if !errors.Is(err, ErrNoPolicy) || !strings.Contains(s.LastError, "no policy") || s.Version != 0 {
		t.Fatalf("%+v, %v", s, err)
	}
}

// TestSkippedKeysReported: a key the policy no longer admits is counted in Status and logged
// by id, without failing the publication; nothing secret is logged.
func TestSkippedKeysReported(t *testing.T) {
	st := openSQLite(t)
	ctx := context.Background()
	e := newEnv(t, st, "acme")
	var logs bytes.Buffer
	p := e.newPublisher(newDirTarget(t), func(o *Options) {
		o.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	good, _ := e.createKey(keySpec{typ: "live", org: "o", scopes: []string{"read"}})
	badText, bad := e.createKey(keySpec{typ: "legacy", org: "o", scopes: []string{"read"}})
	s, err := p.PublishNow(ctx, "acme")
	if err != nil || s.Keys != 1 || s.Skipped != 1 {
		t.Fatalf("%+v, %v", s, err)
	}
	_, bad2 := e.createKey(keySpec{typ: "live", org: "o", scopes: []string{"nope"}})
	s, err = p.PublishNow(ctx, "acme")
	if err != nil || s.Full || s.Keys != 1 || s.Skipped != 2 {
		t.Fatalf("delta: %+v, %v", s, err)
	}
	out := logs.String()
	for _, want := range []string{bad.ID, bad2.ID, `legacy`, "snapshot published"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	for _, secret := range []string{good, badText} {
		if strings.Contains(out, secret) {
			t.Fatal("a key's plaintext was logged")
		}
	}
}

// TestNotifyDebounces: a burst of notifications is published once, after the debounce.
func TestNotifyDebounces(t *testing.T) {
	st := openSQLite(t)
	e := newEnv(t, st, "acme")
	rec := &recordingTarget{Target: newDirTarget(t)}
	// A long debounce keeps the burst inside one window however slow the machine is.
	p := e.newPublisher(rec, func(o *Options) { o.Debounce = 500 * time.Millisecond; o.Now = time.Now })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	// Run publishes every realm when it starts.
	waitFor(t, "the first publication", func() bool { return rec.manifests() == 1 })
	first := p.Status("acme")

	for range 20 {
		p.Notify("acme")
	}
	waitFor(t, "the burst's publication", func() bool { return p.Status("acme").Version > first.Version })
	burst := p.Status("acme")
	// One more notification gives one more publication; had the burst published twice, the
	// count would be off by one.
	p.Notify("acme")
	waitFor(t, "the last publication", func() bool { return p.Status("acme").Version > burst.Version })
	if n := rec.manifests(); n != 3 {
		t.Fatalf("%d manifests written, want 3 (start, one for 20 notifications, one for the last)", n)
	}
	if burst.Full || burst.Lag <= 0 {
		t.Fatalf("burst status %+v: want a delta with a lag", burst)
	}
}

// TestRunPicksUpOtherReplicasChanges: a change made without Notify (through another replica)
// is published by Run's poll of the store's change sequence.
func TestRunPicksUpOtherReplicasChanges(t *testing.T) {
	st := openSQLite(t)
	e := newEnv(t, st, "acme")
	target := newDirTarget(t)
	p := e.newPublisher(target, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	waitFor(t, "the first publication", func() bool { return p.Status("acme").Version > 0 })
	key, _ := e.createKey(keySpec{typ: "live", org: "o", scopes: []string{"read"}})
	seq, err := st.Changed(context.Background(), "acme")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the poll's publication", func() bool { return p.Status("acme").ChangeSeq >= seq })
	now := e.clock.Now()
	edge := edgeLoad(t, target, "acme", e.signer.Trusted(), now, 0)
	wantStatus(t, decide(edge, now, "GET", "/v1/things", bearer(key)...), 200, "key created elsewhere")

	// A second realm created while Run runs is published too.
	newEnv(t, st, "beta")
	waitFor(t, "the new realm's publication", func() bool { return p.Status("beta").Version > 0 })
	edgeLoad(t, target, "beta", e.signer.Trusted(), now, 0)
}

// TestRunRefreshesExpiry: without changes, Run republishes every Interval so the manifest's
// ExpiresAt keeps moving ahead.
func TestRunRefreshesExpiry(t *testing.T) {
	st := openSQLite(t)
	e := newEnv(t, st, "acme")
	target := newDirTarget(t)
	p := e.newPublisher(target, func(o *Options) { o.Interval = time.Minute; o.Validity = 10 * time.Minute })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	waitFor(t, "the first publication", func() bool { return p.Status("acme").Version > 0 })
	first := p.Status("acme")
	e.clock.Add(61 * time.Second)
	waitFor(t, "the refresh", func() bool { return p.Status("acme").Version > first.Version })
	now := e.clock.Now()
	data, _, err := target.Get(context.Background(), ManifestName("acme"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := snapshot.VerifyManifest(data, []snapshot.TrustedKey{e.signer.Trusted()}, hostcrypto.Std)
	if err != nil {
		t.Fatal(err)
	}
	if m.IssuedAt != now.Unix() || m.ExpiresAt != now.Add(10*time.Minute).Unix() || m.Delta == nil {
		t.Fatalf("manifest issued %d expires %d delta %v; want a delta issued at %d", m.IssuedAt, m.ExpiresAt, m.Delta != nil, now.Unix())
	}
}

func TestRunTwice(t *testing.T) {
	e := newEnv(t, openSQLite(t), "acme")
	p := e.newPublisher(newDirTarget(t), nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	waitFor(t, "Run", func() bool { return p.Status("acme").Version > 0 })
	if err := p.Run(ctx); err == nil {
		t.Fatal("a second Run started")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestNewValidates(t *testing.T) {
	e := newEnv(t, openSQLite(t), "acme")
	target := newDirTarget(t)
	for name, o := range map[string]Options{
		"no store":           {Target: target, Signer: e.signer},
		"no target":          {Store: e.st, Signer: e.signer},
		"no signer":          {Store: e.st, Target: target},
		"validity<=interval": {Store: e.st, Target: target, Signer: e.signer, Interval: time.Hour, Validity: time.Hour},
		"negative debounce":  {Store: e.st, Target: target, Signer: e.signer, Debounce: -1},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestS3Publish publishes to versitygw and decides from what an edge reads back.
func TestS3Publish(t *testing.T) {
	srv := startVersityGW(t)
	st := openSQLite(t)
	ctx := context.Background()
	e := newEnv(t, st, "acme")
	target := newS3Target(t, srv, "")
	p := e.newPublisher(target, func(o *Options) { o.Shards = 2 })
	key, k := e.createKey(keySpec{typ: "live", org: "o", scopes: []string{"read"}})
	s1, err := p.PublishNow(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	now := e.clock.Now()
	wantStatus(t, decide(edgeLoad(t, target, "acme", e.signer.Trusted(), now, 0), now, "GET", "/v1/things", bearer(key)...), 200, "key")
	e.revoke(k.ID)
	if s, err := p.PublishNow(ctx, "acme"); err != nil || s.Full {
		t.Fatalf("%+v, %v", s, err)
	}
	wantStatus(t, decide(edgeLoad(t, target, "acme", e.signer.Trusted(), now, s1.Version), now, "GET", "/v1/things", bearer(key)...), 401, "revoked key")
	// A second replica's publication makes the first one's ETag stale; it recovers.
	p2 := e.newPublisher(target, nil)
	if _, err := p2.PublishNow(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	if _, err := p.PublishNow(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	names, err := target.List(ctx, "acme/objects/")
	if err != nil || len(names) < 4 {
		t.Fatalf("objects %v, %v", names, err)
	}
}
