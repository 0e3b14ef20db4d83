package publisher

import (
	"context"
	"crypto/sha256"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/controlplane/store"
	"github.com/latchkeyhq/latchkey/shared/apikey"
	"github.com/latchkeyhq/latchkey/shared/policy"
	"github.com/latchkeyhq/latchkey/shared/snapshot"
)

func forEachBackend(t *testing.T, fn func(t *testing.T, st store.Store)) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) { fn(t, be.open(t)) })
	}
}

func findKey(c *snapshot.Contents, h apikey.Hash) *snapshot.KeyRecord {
	for i := range c.Keys {
		if c.Keys[i].Hash == h {
			return &c.Keys[i]
		}
	}
	return nil
}

func TestBuildContents(t *testing.T) {
	forEachBackend(t, func(t *testing.T, st store.Store) {
		ctx := context.Background()
		e := newEnv(t, st, "acme")
		now := t0.Add(time.Hour)

		_, plain := e.createKey(keySpec{typ: "live", org: "org-a", scopes: []string{"read"}})
		_, both := e.createKey(keySpec{typ: "live", org: "org-a", scopes: []string{"read", "write"}})
		_, star := e.createKey(keySpec{typ: "live", org: "org-b", scopes: []string{"*"}})
		_, agent := e.createKey(keySpec{typ: "agent", org: "org-b", scopes: []string{"read"}, agents: []string{"a2", "a1"}})
		_, expiring := e.createKey(keySpec{typ: "live", org: "org-a", scopes: []string{"read"}})
		exp := now.Add(90*time.Minute + 500*time.Millisecond)
		if _, err := st.UpdateKey(ctx, "acme", expiring.ID, store.KeyUpdate{ExpiresAt: ptr(&exp)}); err != nil {
			t.Fatal(err)
		}
		// A rotation's old key works until its revocation, which the edge must apply itself.
		_, old := e.createKey(keySpec{typ: "live", org: "org-a", scopes: []string{"read"}})
		_, rotated := e.createKey(keySpec{typ: "live", org: "org-a", scopes: []string{"read"}})
		graceEnd := now.Add(10 * time.Minute)
		if _, err := st.RevokeKey(ctx, "acme", old.ID, graceEnd); err != nil {
			t.Fatal(err)
		}
		_, revoked := e.createKey(keySpec{typ: "live", org: "org-c", scopes: []string{"read"}})
		e.revoke(revoked.ID) // at t0, before now
		adminHash := apikey.Hash(sha256.Sum256([]byte("admin key")))
		if _, err := st.CreateKey(ctx, store.APIKey{ID: adminHash.ID().String(), Realm: "acme", Hash: adminHash, Prefix: "lk_admin_",
			Type: "admin", Scopes: []string{"admin"}, Org: "org-a", Admin: true, CreatedAt: t0}); err != nil {
			t.Fatal(err)
		}

		if _, err := st.SetOrgState(ctx, store.OrgState{Realm: "acme", Org: "org-b", State: store.OrgBudgetExhausted, UpdatedAt: t0}); err != nil {
			t.Fatal(err)
		}
		if _, err := st.SetOrgState(ctx, store.OrgState{Realm: "acme", Org: "org-z", State: store.OrgSuspended, UpdatedAt: t0}); err != nil {
			t.Fatal(err)
		}

		// Signing keys: the active one (newEnv), one retired but still published, one gone.
		sk := func(kid string, notAfter time.Time) {
			k := store.SigningKey{KID: kid, Realm: "acme", Alg: store.AlgEdDSA, Public: make([]byte, 32), CreatedAt: t0}
			if _, err := st.CreateSigningKey(ctx, k); err != nil {
				t.Fatal(err)
			}
			if _, err := st.RetireSigningKey(ctx, "acme", kid, t0, notAfter); err != nil {
				t.Fatal(err)
			}
		}
		// CreateSigningKey allows one active key: retire the env's first, then re-create it.
		retiredNotAfter := now.Add(30*time.Minute + 900*time.Millisecond)
		if _, err := st.RetireSigningKey(ctx, "acme", e.tokenKID, t0, retiredNotAfter); err != nil {
			t.Fatal(err)
		}
		sk("sk_gone", now.Add(-time.Second))
		active := store.SigningKey{KID: "sk_active", Realm: "acme", Alg: store.AlgES256, Public: append([]byte{4}, make([]byte, 64)...), CreatedAt: t0}
		if _, err := st.CreateSigningKey(ctx, active); err != nil {
			t.Fatal(err)
		}

		until := now.Add(15*time.Minute + time.Microsecond)
		for _, r := range []store.Revocation{
			{Realm: "acme", Kind: store.RevokeJTI, Value: "tok_1", Until: until, CreatedAt: t0},
			{Realm: "acme", Kind: store.RevokeSession, Value: "sess_1", Until: until, CreatedAt: t0},
			{Realm: "acme", Kind: store.RevokeSession, Value: "sess_old", Until: now.Add(-time.Second), CreatedAt: t0},
		} {
			if _, err := st.AddRevocation(ctx, r); err != nil {
				t.Fatal(err)
			}
		}

		seqBefore, err := st.Changed(ctx, "acme")
		if err != nil {
			t.Fatal(err)
		}
		c, rep, err := BuildContentsReport(ctx, st, "acme", now)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Seq != seqBefore || rep.PolicyVersion != 1 || rep.SkippedCount != 0 {
			t.Fatalf("report %+v, want seq %d, policy 1, nothing skipped", rep, seqBefore)
		}
		if c.Realm != "acme" || c.Version != 0 || c.IssuedAt != now.Unix() || c.ExpiresAt != now.Add(DefaultValidity).Unix() {
			t.Fatalf("stamp: %+v", c)
		}
		pol, err := policy.Decode(c.Policy)
		if err != nil || pol.Realm != "acme" {
			t.Fatalf("policy: %v", err)
		}
		comp, err := policy.Compile(pol)
		if err != nil {
			t.Fatal(err)
		}
		mask := func(names ...string) uint64 {
			m, err := comp.ScopeMask(names)
			if err != nil {
				t.Fatal(err)
			}
			return m
		}

		if len(c.Keys) != 7 {
			t.Fatalf("%d keys, want 7 (revoked and admin keys are not published)", len(c.Keys))
		}
		for _, tc := range []struct {
			name   string
			key    store.APIKey
			scopes uint64
			typ    string
			org    string
			agents []string
			expiry int64
		}{
			{"plain", plain, mask("read"), "live", "org-a", nil, 0},
			{"two scopes", both, mask("read", "write"), "live", "org-a", nil, 0},
			{"star", star, policy.AllScopes, "live", "org-b", nil, 0},
			{"agent", agent, mask("read"), "agent", "org-b", []string{"a2", "a1"}, 0},
			// Rounded down: the edge never accepts a key longer than the store does.
			{"expiring", expiring, mask("read"), "live", "org-a", nil, exp.Unix()},
			{"rotated", rotated, mask("read"), "live", "org-a", nil, 0},
			// In its grace period: published, expiring when its revocation takes effect.
			{"old", old, mask("read"), "live", "org-a", nil, graceEnd.Unix()},
		} {
			rec := findKey(c, tc.key.Hash)
			if rec == nil {
				t.Fatalf("%s: key missing", tc.name)
			}
			if rec.Scopes != tc.scopes || int(rec.Type) != comp.KeyTypeIndex(tc.typ) || rec.Org != tc.org ||
				!slices.Equal(rec.Agents, tc.agents) || rec.Expiry != tc.expiry || rec.Flags != 0 {
				t.Errorf("%s: record %+v", tc.name, *rec)
			}
		}
		if findKey(c, revoked.Hash) != nil || findKey(c, adminHash) != nil {
			t.Fatal("revoked or admin key published")
		}

		wantOrgs := []snapshot.Org{{ID: "org-a", State: snapshot.OrgActive}, {ID: "org-b", State: snapshot.OrgBudgetExhausted}, {ID: "org-z", State: snapshot.OrgSuspended}}
		orgs := slices.Clone(c.Orgs)
		slices.SortFunc(orgs, func(a, b snapshot.Org) int { return strings.Compare(a.ID, b.ID) })
		if !slices.Equal(orgs, wantOrgs) {
			t.Fatalf("orgs %v, want %v", orgs, wantOrgs)
		}

		sks := slices.Clone(c.SigningKeys)
		slices.SortFunc(sks, func(a, b snapshot.SigningKey) int { return strings.Compare(a.KID, b.KID) })
		if len(sks) != 2 || sks[0].KID != "sk_acme" || sks[1].KID != "sk_active" {
			t.Fatalf("signing keys %+v, want sk_acme (retired, still published) and sk_active", sks)
		}
		if sks[0].Alg != snapshot.AlgEd25519 || sks[0].NotAfter != retiredNotAfter.Unix() || len(sks[0].Public) != 32 {
			t.Errorf("retired key %+v, NotAfter want %d", sks[0], retiredNotAfter.Unix())
		}
		if sks[1].Alg != snapshot.AlgES256 || sks[1].NotAfter != 0 || len(sks[1].Public) != 65 {
			t.Errorf("active key %+v", sks[1])
		}

		// Revocations: SHA-256 of the value, Until rounded up (never ends early).
		wantRev := func(value string) []snapshot.Revocation {
			return []snapshot.Revocation{{Hash: sha256.Sum256([]byte(value)), Until: until.Unix() + 1}}
		}
		if !slices.Equal(c.RevokedTokens, wantRev("tok_1")) || !slices.Equal(c.RevokedSessions, wantRev("sess_1")) {
			t.Fatalf("revocations %v / %v", c.RevokedTokens, c.RevokedSessions)
		}

		// The contents build, and BuildContents says the same as BuildContentsReport.
		c.Version = 1
		if _, err := snapshot.Build(c, snapshot.BuildOptions{}); err != nil {
			t.Fatalf("snapshot.Build: %v", err)
		}
		c2, seq2, err := BuildContents(ctx, st, "acme", now)
		if err != nil || seq2 != seqBefore || len(c2.Keys) != len(c.Keys) {
			t.Fatalf("BuildContents: %d keys, seq %d, %v", len(c2.Keys), seq2, err)
		}
	})
}

// TestBuildContentsScheduledRevocation checks that a key in a rotation's grace period is
// published with its revocation time as expiry.
func TestBuildContentsScheduledRevocation(t *testing.T) {
	st := openSQLite(t)
	ctx := context.Background()
	e := newEnv(t, st, "acme")
	now := t0.Add(time.Hour)
	_, k := e.createKey(keySpec{typ: "live", org: "o", scopes: []string{"read"}})
	exp := now.Add(time.Hour)
	if _, err := st.UpdateKey(ctx, "acme", k.ID, store.KeyUpdate{ExpiresAt: ptr(&exp)}); err != nil {
		t.Fatal(err)
	}
	grace := now.Add(10*time.Minute + 999*time.Millisecond)
	if _, err := st.RevokeKey(ctx, "acme", k.ID, grace); err != nil {
		t.Fatal(err)
	}
	c, _, err := BuildContents(ctx, st, "acme", now)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Keys) != 1 || c.Keys[0].Expiry != grace.Unix() {
		t.Fatalf("keys %+v, want one expiring at %d (the scheduled revocation, rounded down)", c.Keys, grace.Unix())
	}
}

// TestBuildContentsSkipsKeysThatDoNotFit: keys the policy no longer admits are left out and
// reported; the rest of the snapshot is published.
func TestBuildContentsSkipsKeysThatDoNotFit(t *testing.T) {
	forEachBackend(t, func(t *testing.T, st store.Store) {
		ctx := context.Background()
		e := newEnv(t, st, "acme")
		_, good := e.createKey(keySpec{typ: "live", org: "o", scopes: []string{"read"}})
		_, gone := e.createKey(keySpec{typ: "legacy", org: "o", scopes: []string{"read"}})
		_, unknown := e.createKey(keySpec{typ: "live", org: "o", scopes: []string{"read", "billing"}})
		_, overCap := e.createKey(keySpec{typ: "agent", org: "o", scopes: []string{"write"}})
		_, starOverCap := e.createKey(keySpec{typ: "agent", org: "o", scopes: []string{"*"}})
		_, noOrg := e.createKey(keySpec{typ: "live", scopes: []string{"read"}})

		c, rep, err := BuildContentsReport(ctx, st, "acme", t0.Add(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		if len(c.Keys) != 1 || c.Keys[0].Hash != good.Hash {
			t.Fatalf("published %d keys, want only the one that fits", len(c.Keys))
		}
		want := map[string]string{
			gone.ID:        `key type "legacy" is not in the policy`,
			unknown.ID:     "billing",
			overCap.ID:     `exceed the cap of key type "agent"`,
			starOverCap.ID: `exceed the cap of key type "agent"`,
			noOrg.ID:       "no org",
		}
		if rep.SkippedCount != len(want) || len(rep.Skipped) != len(want) {
			t.Fatalf("report %+v, want %d skipped", rep, len(want))
		}
		for _, s := range rep.Skipped {
			if w, ok := want[s.ID]; !ok || !strings.Contains(s.Reason, w) {
				t.Errorf("skipped %+v, want reason containing %q", s, w)
			}
		}
	})
}

func TestBuildContentsNoPolicy(t *testing.T) {
	st := openSQLite(t)
	ctx := context.Background()
	if _, err := st.CreateRealm(ctx, "empty", t0); err != nil {
		t.Fatal(err)
	}
	_, _, err := BuildContents(ctx, st, "empty", t0)
	var pe *Error
	if !errors.Is(err, ErrNoPolicy) || !errors.As(err, &pe) || pe.Realm != "empty" {
		t.Fatalf("err = %v, want ErrNoPolicy for realm empty", err)
	}
	if _, _, err := BuildContents(ctx, st, "missing", t0); !errors.Is(err, store.ErrNotFound) || errors.Is(err, ErrNoPolicy) {
		t.Fatalf("unknown realm: %v, want store.ErrNotFound", err)
	}
}

// TestBuildContentsRefusesPolicyOfAnotherRealm: a stored policy naming another realm is an
// error, not a snapshot that edges of this realm would decide with.
func TestBuildContentsRefusesPolicyOfAnotherRealm(t *testing.T) {
	st := openSQLite(t)
	ctx := context.Background()
	newEnv(t, st, "acme")
	if _, err := st.PutPolicy(ctx, store.Policy{Realm: "acme", YAML: policyYAML(t, "other"), CreatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := BuildContents(ctx, st, "acme", t0); err == nil || !strings.Contains(err.Error(), `"other"`) {
		t.Fatalf("err = %v, want a realm mismatch", err)
	}
}

// TestActiveSnapshotKeys checks the store's slim read against ActiveKeys on both backends:
// the same keys, with the fields a snapshot needs equal.
func TestActiveSnapshotKeys(t *testing.T) {
	forEachBackend(t, func(t *testing.T, st store.Store) {
		ctx := context.Background()
		e := newEnv(t, st, "acme")
		for i := range 50 {
			ks := keySpec{typ: "live", org: "org-" + string(rune('a'+i%3)), scopes: []string{"read"}}
			switch i % 5 {
			case 1:
				ks.scopes = []string{"read", "write"}
			case 2:
				ks.typ, ks.agents = "agent", []string{"x", "y"}
			case 3:
				ks.scopes = nil
			}
			_, k := e.createKey(ks)
			if i%7 == 0 {
				e.revoke(k.ID)
			}
			if i%11 == 0 {
				exp := t0.Add(time.Duration(i) * time.Hour)
				if _, err := st.UpdateKey(ctx, "acme", k.ID, store.KeyUpdate{ExpiresAt: ptr(&exp)}); err != nil {
					t.Fatal(err)
				}
			}
		}
		now := t0.Add(time.Minute)
		full := map[apikey.Hash]store.APIKey{}
		seq1, err := st.ActiveKeys(ctx, "acme", now, func(k store.APIKey) error { full[k.Hash] = k; return nil })
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		seq2, err := store.ActiveSnapshotKeys(ctx, st, "acme", now, func(k *store.APIKey) error {
			n++
			f, ok := full[k.Hash]
			if !ok {
				t.Fatalf("key %x not in ActiveKeys", k.Hash[:4])
			}
			if k.Realm != "acme" || k.Type != f.Type || k.Org != f.Org || !slices.Equal(k.Scopes, f.Scopes) ||
				!slices.Equal(k.Agents, f.Agents) || !sameTime(k.ExpiresAt, f.ExpiresAt) || !sameTime(k.RevokedAt, f.RevokedAt) {
				t.Fatalf("slim %+v\nfull %+v", *k, f)
			}
			return nil
		})
		if err != nil || seq1 != seq2 || n != len(full) || n == 0 {
			t.Fatalf("%d keys (want %d), seq %d/%d, %v", n, len(full), seq2, seq1, err)
		}
		stop := errors.New("stop")
		if _, err := store.ActiveSnapshotKeys(ctx, st, "acme", now, func(*store.APIKey) error { return stop }); err != stop {
			t.Fatalf("fn's error: %v", err)
		}
	})
}

func sameTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(*b)
}

func ptr[T any](v T) *T { return &v }
