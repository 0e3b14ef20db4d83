package store

import (
	"bytes"
	"context"
	"errors"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/shared/apikey"
)

// TestStore runs the one suite against every backend.
func TestStore(t *testing.T) {
	for _, b := range testBackends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			runSuite(t, b)
		})
	}
}

func runSuite(t *testing.T, b testBackend) {
	tests := []struct {
		name string
		fn   func(t *testing.T, b testBackend)
	}{
		{"Realms", testRealms},
		{"KeyRoundTrip", testKeyRoundTrip},
		{"KeyConflicts", testKeyConflicts},
		{"KeyInvalid", testKeyInvalid},
		{"ListKeysFilters", testListKeysFilters},
		{"ListKeysPaginationStableUnderInserts", testListKeysPaginationStable},
		{"ListKeysBadPage", testListKeysBadPage},
		{"UpdateKey", testUpdateKey},
		{"RevokeKeyEarliestWins", testRevokeKey},
		{"RotateKey", testRotateKey},
		{"RotateKeyAtomic", testRotateKeyAtomic},
		{"CreateKeysBatchAllOrNothing", testCreateKeys},
		{"ActiveKeys", testActiveKeys},
		{"ActiveKeysStreams10k", testActiveKeys10k},
		{"KeyChangesSince", testKeyChangesSince},
		{"SigningKeys", testSigningKeys},
		{"RotateSigningKey", testRotateSigningKey},
		{"OrgStates", testOrgStates},
		{"Policies", testPolicies},
		{"Revocations", testRevocations},
		{"Audit", testAudit},
		{"ChangeFeed", testChangeFeed},
		{"MissingRealm", testMissingRealm},
		{"ConcurrentSnapshotVersionsTwoReplicas", testSnapshotVersionsConcurrent},
		{"ConcurrentPolicyVersionsTwoReplicas", testPolicyVersionsConcurrent},
		{"ConcurrentKeyWritesOrderChanges", testConcurrentKeyWrites},
		{"ConcurrentRotationOneWinner", testConcurrentRotation},
		{"MigrationsIdempotent", testMigrationsIdempotent},
		{"MigrationsConcurrent", testMigrationsConcurrent},
		{"MigrationTamperedRefused", testMigrationTampered},
		{"PingClose", testPingClose},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, b)
		})
	}
}

var ctx = context.Background()

func testRealms(t *testing.T, b testBackend) {
	s := openURL(t, b.newURL(t))
	r, err := s.CreateRealm(ctx, "prod", t0)
	if err != nil {
		t.Fatal(err)
	}
	want := Realm{Name: "prod", CreatedAt: t0.Truncate(time.Microsecond)}
	if r != want {
		t.Fatalf("CreateRealm = %+v, want %+v", r, want)
	}
	mustRealm(t, s, "dev-1")
	_, err = s.CreateRealm(ctx, "prod", t0)
	wantErr(t, err, ErrConflict, "name")
	for _, bad := range []string{"", "Prod", "a_b", "é", string(make([]byte, 64))} {
		_, err = s.CreateRealm(ctx, bad, t0)
		wantErr(t, err, ErrInvalid, "realm")
	}
	got, err := s.GetRealm(ctx, "prod")
	if err != nil || got != want {
		t.Fatalf("GetRealm = %+v, %v; want %+v", got, err, want)
	}
	_, err = s.GetRealm(ctx, "staging")
	wantErr(t, err, ErrNotFound, "")
	list, err := s.ListRealms(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Name != "dev-1" || list[1].Name != "prod" {
		t.Fatalf("ListRealms = %+v", list)
	}
	if seq := changed(t, s, "prod"); seq != 0 {
		t.Fatalf("Changed of a new realm = %d", seq)
	}
}

func testKeyRoundTrip(t *testing.T, b testBackend) {
	s := openURL(t, b.newURL(t))
	mustRealm(t, s, "prod")
	mustRealm(t, s, "dev")
	k := testKey("prod", 1)
	k.ExpiresAt = ptr(at(time.Hour + 999*time.Nanosecond))
	k.RevokedAt = ptr(at(48 * time.Hour).In(time.FixedZone("X", 3600)))
	k.Imported, k.Admin = true, true
	k.RotatedFrom = testHash(99).ID().String()
	// Strings that take encodeList's slow path (escapes) and its fast path (non-ASCII).
	k.Scopes = []string{"tasks:read", `quote"d`, "back\\slash", "<html>&"}
	k.Agents = []string{"agent_é", "agent 2"}
	got := mustKey(t, s, k)

	want := k
	want.CreatedAt = k.CreatedAt.Truncate(time.Microsecond)
	want.ExpiresAt = ptr(k.ExpiresAt.Truncate(time.Microsecond))
	want.RevokedAt = ptr(k.RevokedAt.UTC().Truncate(time.Microsecond))
	want.ChangeSeq = 1
	sameKey(t, got, want)
	byID, err := s.GetKey(ctx, "prod", k.ID)
	if err != nil {
		t.Fatal(err)
	}
	sameKey(t, byID, want)
	byHash, err := s.GetKeyByHash(ctx, "prod", k.Hash)
	if err != nil {
		t.Fatal(err)
	}
	sameKey(t, byHash, want)

	// Empty lists come back nil, and a key is per realm.
	k2 := testKey("dev", 1)
	k2.Scopes, k2.Agents = []string{}, nil
	got2 := mustKey(t, s, k2)
	if got2.Scopes != nil || got2.Agents != nil {
		t.Fatalf("empty lists stored as %#v %#v", got2.Scopes, got2.Agents)
	}
	back, err := s.GetKey(ctx, "dev", k2.ID)
	if err != nil || back.Scopes != nil || back.Agents != nil || back.Realm != "dev" {
		t.Fatalf("GetKey dev = %+v, %v", back, err)
	}

	_, err = s.GetKey(ctx, "prod", testHash(2).ID().String())
	wantErr(t, err, ErrNotFound, "")
	_, err = s.GetKeyByHash(ctx, "prod", testHash(2))
	wantErr(t, err, ErrNotFound, "")
	_, err = s.GetKey(ctx, "prod", "key_nothex")
	wantErr(t, err, ErrInvalid, "id")
}

func testKeyConflicts(t *testing.T, b testBackend) {
	s := openURL(t, b.newURL(t))
	mustRealm(t, s, "prod")
	k := mustKey(t, s, testKey("prod", 1))
	seq := changed(t, s, "prod")

	_, err := s.CreateKey(ctx, testKey("prod", 1))
	var e *Error
	if !errors.Is(err, ErrConflict) || !errors.As(err, &e) || (e.Field != "id" && e.Field != "hash") || e.Entity != "key" {
		t.Fatalf("duplicate key: %v", err)
	}
	// Another hash with the same first 10 bytes: the id is taken, the hash is not.
	twin := testKey("prod", 2)
	twin.Hash = k.Hash
	twin.Hash[31] ^= 1
	twin.ID = twin.Hash.ID().String()
	_, err = s.CreateKey(ctx, twin)
	wantErr(t, err, ErrConflict, "id")
	if got := changed(t, s, "prod"); got != seq {
		t.Fatalf("a failed create moved the change sequence: %d → %d", seq, got)
	}
}

func testKeyInvalid(t *testing.T, b testBackend) {
	s := openURL(t, b.newURL(t))
	mustRealm(t, s, "prod")
	tests := []struct {
		field  string
		mutate func(k *APIKey)
	}{
		{"realm", func(k *APIKey) { k.Realm = "Prod" }},
		{"id", func(k *APIKey) { k.ID = "key_123" }},
		{"id", func(k *APIKey) { k.ID = testHash(7).ID().String() }},
		{"hash", func(k *APIKey) { k.Hash = apikey.Hash{}; k.ID = k.Hash.ID().String() }},
		{"prefix", func(k *APIKey) { k.Prefix = "" }},
		{"last4", func(k *APIKey) { k.Last4 = "abcde" }},
		{"name", func(k *APIKey) { k.Name = "nul\x00" }},
		{"name", func(k *APIKey) { k.Name = "\xff" }},
		{"type", func(k *APIKey) { k.Type = "" }},
		{"scopes", func(k *APIKey) { k.Scopes = []string{"ok", ""} }},
		{"agents", func(k *APIKey) { k.Agents = make([]string, 1025) }},
		{"created_at", func(k *APIKey) { k.CreatedAt = time.Time{} }},
		{"expires_at", func(k *APIKey) { k.ExpiresAt = &time.Time{} }},
		{"rotated_from", func(k *APIKey) { k.RotatedFrom = "key_" }},
	}
	for _, tc := range tests {
		k := testKey("prod", 1)
		tc.mutate(&k)
		_, err := s.CreateKey(ctx, k)
		wantErr(t, err, ErrInvalid, tc.field)
	}
	if n, err := s.CountKeys(ctx, "prod", KeyFilter{IncludeRevoked: true}); err != nil || n != 0 {
		t.Fatalf("invalid keys were stored: %d, %v", n, err)
	}
}

// keyMatches is the reference for KeyFilter.
func keyMatches(k APIKey, f KeyFilter) bool {
	switch {
	case f.Type != "" && k.Type != f.Type,
		f.Org != "" && k.Org != f.Org,
		len(k.Name) < len(f.NamePrefix) || k.Name[:len(f.NamePrefix)] != f.NamePrefix,
		f.Admin != nil && k.Admin != *f.Admin:
		return false
	case f.IncludeRevoked || k.RevokedAt == nil:
		return true
	}
	return !f.Now.IsZero() && k.RevokedAt.After(f.Now)
}

func sortKeys(ks []APIKey) {
	sort.Slice(ks, func(i, j int) bool {
		if !ks[i].CreatedAt.Equal(ks[j].CreatedAt) {
			return ks[i].CreatedAt.Before(ks[j].CreatedAt)
		}
		return ks[i].ID < ks[j].ID
	})
}

func testListKeysFilters(t *testing.T, b testBackend) {
	s := openURL(t, b.newURL(t))
	mustRealm(t, s, "prod")
	mustRealm(t, s, "other")
	mustKey(t, s, testKey("other", 1))
	var all []APIKey
	for n := 1; n <= 30; n++ {
		k := testKey("prod", n)
		if n%2 == 0 {
			k.Type = "tb_internal"
		}
		if n%3 == 0 {
			k.Org = "org_a"
		}
		if n < 6 {
			k.Name = "alpha " + strconv.Itoa(n)
		}
		if n >= 20 { // ties on created_at: ordered by id
			k.CreatedAt = at(20 * time.Second)
		}
		switch n {
		case 12:
			k.Admin = true
		case 4, 21:
			k.RevokedAt = ptr(at(time.Hour))
		case 5:
			k.RevokedAt = ptr(at(100 * time.Hour)) // a grace period
		}
		all = append(all, mustKey(t, s, k))
	}
	sortKeys(all)
	filters := []KeyFilter{
		{},
		{Now: at(2 * time.Hour)},
		{IncludeRevoked: true},
		{Type: "tb_internal", IncludeRevoked: true},
		{Org: "org_a"},
		{NamePrefix: "alpha"},
		{NamePrefix: "ALPHA", IncludeRevoked: true},
		{Admin: ptr(true), IncludeRevoked: true},
		{Admin: ptr(false), Now: at(2 * time.Hour), Type: "tb"},
	}
	for _, f := range filters {
		var want []string
		for _, k := range all {
			if keyMatches(k, f) {
				want = append(want, k.ID)
			}
		}
		// Page through with a small limit; the pages must add up to the whole list.
		var got []string
		cursor, pages := "", 0
		for {
			page, next, err := s.ListKeys(ctx, "prod", f, Page{Limit: 4, Cursor: cursor})
			if err != nil {
				t.Fatalf("ListKeys(%+v): %v", f, err)
			}
			if len(page) > 4 || (next != "" && len(page) != 4) {
				t.Fatalf("ListKeys(%+v): page of %d with next %q", f, len(page), next)
			}
			got = append(got, keyIDs(page)...)
			if pages++; next == "" {
				break
			}
			cursor = next
		}
		if !slices.Equal(got, want) {
			t.Fatalf("ListKeys(%+v) = %v, want %v", f, got, want)
		}
		n, err := s.CountKeys(ctx, "prod", f)
		if err != nil || n != len(want) {
			t.Fatalf("CountKeys(%+v) = %d, %v; want %d", f, n, err, len(want))
		}
		one, _, err := s.ListKeys(ctx, "prod", f, Page{})
		if err != nil || len(one) != len(want) {
			t.Fatalf("ListKeys(%+v) default page: %d keys, %v", f, len(one), err)
		}
	}
}

func testListKeysPaginationStable(t *testing.T, b testBackend) {
	s := openURL(t, b.newURL(t))
	mustRealm(t, s, "prod")
	var original []string
	for n := 1; n <= 30; n++ {
		original = append(original, mustKey(t, s, testKey("prod", n)).ID)
	}
	seen := map[string]int{}
	cursor := ""
	var inserted []APIKey
	for page := 0; ; page++ {
		keys, next, err := s.ListKeys(ctx, "prod", KeyFilter{}, Page{Limit: 7, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			seen[k.ID]++
		}
		if page == 0 {
			// Between pages: one key before the cursor, one among later pages, one at the end.
			for i, d := range []time.Duration{3 * time.Second, 15 * time.Second, time.Hour} {
				k := testKey("prod", 100+i)
				k.CreatedAt = at(d + time.Millisecond)
				inserted = append(inserted, mustKey(t, s, k))
			}
		}
		if next == "" {
			break
		}
		cursor = next
	}
	for _, id := range original {
		if seen[id] != 1 {
			t.Fatalf("key %s seen %d times", id, seen[id])
		}
	}
	if seen[inserted[0].ID] != 0 || seen[inserted[1].ID] != 1 || seen[inserted[2].ID] != 1 {
		t.Fatalf("inserted keys seen %d, %d, %d times; want 0 (before the cursor), 1, 1",
			seen[inserted[0].ID], seen[inserted[1].ID], seen[inserted[2].ID])
	}
}

func testListKeysBadPage(t *testing.T, b testBackend) {
	s := openURL(t, b.newURL(t))
	mustRealm(t, s, "prod")
	for _, p := range []Page{{Limit: -1}, {Limit: MaxLimit + 1}} {
		_, _, err := s.ListKeys(ctx, "prod", KeyFilter{}, p)
		wantErr(t, err, ErrInvalid, "limit")
	}
	for _, c := range []string{"!!", "AAAA", encodeCursor(cursorPolicies, 1, ""), encodeCursor(cursorKeys, 1, "key_zz")} {
		_, _, err := s.ListKeys(ctx, "prod", KeyFilter{}, Page{Cursor: c})
		wantErr(t, err, ErrInvalid, "cursor")
	}
	_, _, err := s.ListKeys(ctx, "prod", KeyFilter{Org: "a\x00"}, Page{})
	wantErr(t, err, ErrInvalid, "org")
	keys, next, err := s.ListKeys(ctx, "nowhere", KeyFilter{}, Page{})
	if err != nil || len(keys) != 0 || next != "" {
		t.Fatalf("ListKeys of a missing realm = %v, %q, %v", keys, next, err)
	}
}

func testUpdateKey(t *testing.T, b testBackend) {
	s := openURL(t, b.newURL(t))
	mustRealm(t, s, "prod")
	k := mustKey(t, s, testKey("prod", 1))
	seq := changed(t, s, "prod")

	// A name is not published: no change.
	got, err := s.UpdateKey(ctx, "prod", k.ID, KeyUpdate{Name: ptr("renamed")})
	if err != nil || got.Name != "renamed" || got.ChangeSeq != k.ChangeSeq {
		t.Fatalf("rename = %+v, %v", got, err)
	}
	if changed(t, s, "prod") != seq {
		t.Fatal("a rename counted as a change")
	}
	got, err = s.UpdateKey(ctx, "prod", k.ID, KeyUpdate{Scopes: &[]string{"only"}, ExpiresAt: ptr(ptr(at(time.Hour)))})
	if err != nil || !slices.Equal(got.Scopes, []string{"only"}) || got.ExpiresAt == nil || !got.ExpiresAt.Equal(at(time.Hour).Truncate(time.Microsecond)) {
		t.Fatalf("update = %+v, %v", got, err)
	}
	if seq2 := changed(t, s, "prod"); seq2 != seq+1 || got.ChangeSeq != seq2 {
		t.Fatalf("scopes update: Changed %d → %d, key seq %d", seq, seq2, got.ChangeSeq)
	}
	got, err = s.UpdateKey(ctx, "prod", k.ID, KeyUpdate{ExpiresAt: ptr((*time.Time)(nil))})
	if err != nil || got.ExpiresAt != nil || got.Name != "renamed" {
		t.Fatalf("clear expiry = %+v, %v", got, err)
	}
	back, err := s.GetKey(ctx, "prod", k.ID)
	if err != nil {
		t.Fatal(err)
	}
	sameKey(t, back, got)
	same, err := s.UpdateKey(ctx, "prod", k.ID, KeyUpdate{})
	if err != nil {
		t.Fatal(err)
	}
	sameKey(t, same, got)

	seq = changed(t, s, "prod")
	_, err = s.UpdateKey(ctx, "prod", testHash(5).ID().String(), KeyUpdate{Scopes: &[]string{"x"}})
	wantErr(t, err, ErrNotFound, "")
	_, err = s.UpdateKey(ctx, "prod", testHash(5).ID().String(), KeyUpdate{Name: ptr("x")})
	wantErr(t, err, ErrNotFound, "")
	_, err = s.UpdateKey(ctx, "prod", k.ID, KeyUpdate{Scopes: &[]string{""}})
	wantErr(t, err, ErrInvalid, "scopes")
	if changed(t, s, "prod") != seq {
		t.Fatal("failed updates counted as changes")
	}
}

func testRevokeKey(t *testing.T, b testBackend) {
	s := openURL(t, b.newURL(t))
	mustRealm(t, s, "prod")
	k := mustKey(t, s, testKey("prod", 1))
	seq := changed(t, s, "prod")

	got, err := s.RevokeKey(ctx, "prod", k.ID, at(10*time.Second))
	if err != nil || got.RevokedAt == nil || !got.RevokedAt.Equal(at(10*time.Second).Truncate(time.Microsecond)) {
		t.Fatalf("revoke = %+v, %v", got, err)
	}
	if changed(t, s, "prod") != seq+1 || got.ChangeSeq != seq+1 {
		t.Fatal("revoke did not count as one change")
	}
	// Again, later: the first time stays and nothing changes.
	again, err := s.RevokeKey(ctx, "prod", k.ID, at(20*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	sameKey(t, again, got)
	if changed(t, s, "prod") != seq+1 {
		t.Fatal("a repeated revoke counted as a change")
	}
	// A scheduled revocation (a rotation's grace period) is brought forward.
	k2 := testKey("prod", 2)
	k2.RevokedAt = ptr(at(100 * time.Hour))
	mustKey(t, s, k2)
	got2, err := s.RevokeKey(ctx, "prod", k2.ID, at(time.Hour))
	if err != nil || !got2.RevokedAt.Equal(at(time.Hour).Truncate(time.Microsecond)) {
		t.Fatalf("revoke during grace = %+v, %v", got2, err)
	}
	_, err = s.RevokeKey(ctx, "prod", testHash(9).ID().String(), t0)
	wantErr(t, err, ErrNotFound, "")
	_, err = s.RevokeKey(ctx, "prod", k.ID, time.Time{})
	wantErr(t, err, ErrInvalid, "revoked_at")
}

func testRotateKey(t *testing.T, b testBackend) {
	s := openURL(t, b.newURL(t))
	mustRealm(t, s, "prod")
	old := mustKey(t, s, testKey("prod", 1))
	seq := changed(t, s, "prod")

	nk := testKey("prod", 2)
	nk.Name = "rotated"
	grace := at(24 * time.Hour)
	gotOld, gotNew, err := s.RotateKey(ctx, "prod", old.ID, nk, grace)
	if err != nil {
		t.Fatal(err)
	}
	if gotOld.RevokedAt == nil || !gotOld.RevokedAt.Equal(grace.Truncate(time.Microsecond)) {
		t.Fatalf("old key after rotation: %+v", gotOld)
	}
	if gotNew.RotatedFrom != old.ID || gotNew.Name != "rotated" || gotNew.ChangeSeq != seq+1 || gotOld.ChangeSeq != seq+1 {
		t.Fatalf("new key after rotation: %+v", gotNew)
	}
	if changed(t, s, "prod") != seq+1 {
		t.Fatal("rotation is not one change")
	}
	for _, want := range []APIKey{gotOld, gotNew} {
		back, err := s.GetKey(ctx, "prod", want.ID)
		if err != nil {
			t.Fatal(err)
		}
		sameKey(t, back, want)
	}
	// Rotating the rotated key again would fork it.
	_, _, err = s.RotateKey(ctx, "prod", old.ID, testKey("prod", 3), grace)
	wantErr(t, err, ErrConflict, "revoked_at")
	_, _, err = s.RotateKey(ctx, "prod", testHash(50).ID().String(), testKey("prod", 3), grace)
	wantErr(t, err, ErrNotFound, "")
	bad := testKey("prod", 3)
	bad.RotatedFrom = testHash(50).ID().String()
	_, _, err = s.RotateKey(ctx, "prod", gotNew.ID, bad, grace)
	wantErr(t, err, ErrInvalid, "rotated_from")
	_, _, err = s.RotateKey(ctx, "prod", gotNew.ID, testKey("dev", 3), grace)
	wantErr(t, err, ErrInvalid, "realm")
}

func testRotateKeyAtomic(t *testing.T, b testBackend) {
	s := openURL(t, b.newURL(t))
	mustRealm(t, s, "prod")
	taken := mustKey(t, s, testKey("prod", 1))
	old := mustKey(t, s, testKey("prod", 2))
	seq := changed(t, s, "prod")

	// The new key's insert fails after the old key's update: both must roll back.
	_, _, err := s.RotateKey(ctx, "prod", old.ID, testKey("prod", 1), at(time.Hour))
	if !errors.Is(err, ErrConflict) {
		t.Fatalf("rotation onto a taken key: %v", err)
	}
	other := testKey("prod", 3)
	other.Org = "org_2"
	_, _, err = s.RotateKey(ctx, "prod", old.ID, other, at(time.Hour))
	wantErr(t, err, ErrInvalid, "org")
	other = testKey("prod", 3)
	other.Type = "tb_internal"
	_, _, err = s.RotateKey(ctx, "prod", old.ID, other, at(time.Hour))
	wantErr(t, err, ErrInvalid, "type")

	back, err := s.GetKey(ctx, "prod", old.ID)
	if err != nil {
		t.Fatal(err)
	}
	sameKey(t, back, old)
	takenBack, _ := s.GetKey(ctx, "prod", taken.ID)
	sameKey(t, takenBack, taken)
	if _, err := s.GetKey(ctx, "prod", testHash(3).ID().String()); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a failed rotation left its new key: %v", err)
	}
	if changed(t, s, "prod") != seq {
		t.Fatal("failed rotations counted as changes")
	}
}

func testCreateKeys(t *testing.T, b testBackend) {
	s := openURL(t, b.newURL(t))
	mustRealm(t, s, "prod")
	mustKey(t, s, testKey("prod", 0))
	var batch []APIKey
	for n := 1; n <= 250; n++ { // more than one multi-row INSERT
		k := testKey("prod", n)
		k.Imported = true
		batch = append(batch, k)
	}
	seq := changed(t, s, "prod")
	// A taken key at the end of the batch fails all of it.
	bad := append(slices.Clone(batch), testKey("prod", 0))
	err := s.CreateKeys(ctx, "prod", bad)
	if !errors.Is(err, ErrConflict) {
		t.Fatalf("batch with a taken key: %v", err)
	}
	if n, _ := s.CountKeys(ctx, "prod", KeyFilter{}); n != 1 {
		t.Fatalf("a failed batch left %d keys", n-1)
	}
	if err := s.CreateKeys(ctx, "prod", batch); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.CountKeys(ctx, "prod", KeyFilter{}); n != 251 {
		t.Fatalf("CountKeys = %d, want 251", n)
	}
	if changed(t, s, "prod") != seq+1 {
		t.Fatal("a batch is not one change")
	}
	k, err := s.GetKey(ctx, "prod", batch[199].ID)
	if err != nil || !k.Imported || k.ChangeSeq != seq+1 {
		t.Fatalf("batch key = %+v, %v", k, err)
	}
	wantErr(t, s.CreateKeys(ctx, "prod", []APIKey{testKey("dev", 1)}), ErrInvalid, "realm")
	wantErr(t, s.CreateKeys(ctx, "prod", make([]APIKey, MaxBatch+1)), ErrInvalid, "")
	if err := s.CreateKeys(ctx, "prod", nil); err != nil {
		t.Fatal(err)
	}
}

func testActiveKeys(t *testing.T, b testBackend) {
	s := openURL(t, b.newURL(t))
	mustRealm(t, s, "prod")
	now := at(10 * time.Hour)
	var all []APIKey
	for n := 1; n <= 9; n++ {
		k := testKey("prod", n)
		switch n {
		case 2:
			k.ExpiresAt = ptr(at(5 * time.Hour))
		case 3:
			k.ExpiresAt = ptr(at(20 * time.Hour))
		case 4:
			k.RevokedAt = ptr(at(time.Hour))
		case 5:
			k.RevokedAt = ptr(at(100 * time.Hour)) // grace period: still works
		case 6:
			k.Admin = true
		case 7:
			k.ExpiresAt = ptr(now) // expiry is exclusive
		case 8:
			k.RevokedAt = ptr(now)
		}
		all = append(all, mustKey(t, s, k))
	}
	var want []APIKey
	for _, k := range all {
		if k.ActiveAt(now) && !k.Admin {
			want = append(want, k)
		}
	}
	sort.Slice(want, func(i, j int) bool { return bytes.Compare(want[i].Hash[:], want[j].Hash[:]) < 0 })
	if len(want) != 4 {
		t.Fatalf("reference selected %d keys, want 4 (1, 3, 5, 9)", len(want))
	}
	var got []APIKey
	seq, err := s.ActiveKeys(ctx, "prod", now, func(k APIKey) error {
		got = append(got, k)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Slice(got, func(i, j int) bool { return bytes.Compare(got[i].Hash[:], got[j].Hash[:]) < 0 })
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("ActiveKeys = %v, want %v", keyIDs(got), keyIDs(want))
	}
	if seq != changed(t, s, "prod") {
		t.Fatalf("ActiveKeys seq %d, Changed %d", seq, changed(t, s, "prod"))
	}
	stop := errors.New("stop")
	calls := 0
	_, err = s.ActiveKeys(ctx, "prod", now, func(APIKey) error { calls++; return stop })
	if err != stop || calls != 1 {
		t.Fatalf("callback error: %v after %d calls", err, calls)
	}
	_, err = s.ActiveKeys(ctx, "nowhere", now, func(APIKey) error { return nil })
	wantErr(t, err, ErrNotFound, "")
}

func testActiveKeys10k(t *testing.T, b testBackend) {
	if testing.Short() {
		t.Skip("short")
	}
	s := openURL(t, b.newURL(t))
	mustRealm(t, s, "big")
	const n = 10000
	batch := make([]APIKey, 0, n)
	for i := range n {
		k := testKey("big", i)
		if i%10 == 0 {
			k.RevokedAt = ptr(t0) // 1000 revoked
		}
		batch = append(batch, k)
	}
	if err := s.CreateKeys(ctx, "big", batch); err != nil {
		t.Fatal(err)
	}
	seen := make(map[apikey.Hash]bool, n)
	_, err := s.ActiveKeys(ctx, "big", at(time.Hour), func(k APIKey) error {
		if seen[k.Hash] || k.ID != k.Hash.ID().String() || len(k.Scopes) != 2 || k.RevokedAt != nil {
			t.Fatalf("row %d: %+v (seen before: %v)", len(seen), k, seen[k.Hash])
		}
		seen[k.Hash] = true
		return nil
	})
	if err != nil || len(seen) != n-n/10 {
		t.Fatalf("ActiveKeys streamed %d keys, %v; want %d", len(seen), err, n-n/10)
	}
}

func testKeyChangesSince(t *testing.T, b testBackend) {
	s := openURL(t, b.newURL(t))
	mustRealm(t, s, "prod")
	now := at(10 * time.Hour)
	var keys []APIKey
	for n := 1; n <= 5; n++ {
		keys = append(keys, mustKey(t, s, testKey("prod", n)))
	}
	c0, err := s.KeyChangesSince(ctx, "prod", 0, now, 0)
	if err != nil || len(c0.Upserted) != 5 || len(c0.Removed) != 0 || c0.Truncated || c0.Seq != changed(t, s, "prod") {
		t.Fatalf("KeyChangesSince(0) = %+v, %v", c0, err)
	}
	if _, err := s.RevokeKey(ctx, "prod", keys[1].ID, at(time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateKey(ctx, "prod", keys[2].ID, KeyUpdate{Scopes: &[]string{"x"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateKey(ctx, "prod", keys[3].ID, KeyUpdate{Name: ptr("unpublished")}); err != nil {
		t.Fatal(err)
	}
	k6 := mustKey(t, s, testKey("prod", 6))
	admin := testKey("prod", 7)
	admin.Admin = true
	mustKey(t, s, admin)

	c1, err := s.KeyChangesSince(ctx, "prod", c0.Seq, now, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := keyIDs(c1.Upserted); !slices.Equal(got, []string{keys[2].ID, k6.ID}) {
		t.Fatalf("upserted %v, want [%s %s]", got, keys[2].ID, k6.ID)
	}
	if !slices.Equal(c1.Removed, []apikey.Hash{keys[1].Hash}) || c1.Truncated || c1.Seq != changed(t, s, "prod") {
		t.Fatalf("KeyChangesSince = %+v", c1)
	}
	if !slices.Equal(c1.Upserted[0].Scopes, []string{"x"}) {
		t.Fatalf("upserted key is not current: %+v", c1.Upserted[0])
	}
	full, err := s.KeyChangesSince(ctx, "prod", c0.Seq, now, 3)
	if err != nil || full.Truncated || len(full.Upserted)+len(full.Removed) != 3 {
		t.Fatalf("limit 3 of 3 changes: %+v, %v", full, err)
	}
	trunc, err := s.KeyChangesSince(ctx, "prod", c0.Seq, now, 2)
	if err != nil || !trunc.Truncated || trunc.Upserted != nil || trunc.Removed != nil || trunc.Seq != c1.Seq {
		t.Fatalf("limit 2 of 3 changes: %+v, %v", trunc, err)
	}
	none, err := s.KeyChangesSince(ctx, "prod", c1.Seq, now, 0)
	if err != nil || len(none.Upserted)+len(none.Removed) != 0 || none.Seq != c1.Seq {
		t.Fatalf("no changes: %+v, %v", none, err)
	}
	// An expiry passing is seen as a removal by whoever asks after it.
	later, err := s.KeyChangesSince(ctx, "prod", c0.Seq, at(100*time.Hour), 0)
	if err != nil || len(later.Removed) != 1 {
		t.Fatalf("later: %+v, %v", later, err)
	}
	_, err = s.KeyChangesSince(ctx, "prod", 0, now, -1)
	wantErr(t, err, ErrInvalid, "limit")
}

func ed25519Key(realm, kid string, created time.Time) SigningKey {
	return SigningKey{KID: kid, Realm: realm, Alg: AlgEdDSA, Public: bytes.Repeat([]byte{1}, 32),
		PrivateSealed: []byte("sealed:" + kid), CreatedAt: created}
}

func testSigningKeys(t *testing.T, b testBackend) {
	s := openURL(t, b.newURL(t))
	mustRealm(t, s, "prod")
	_, err := s.ActiveSigningKey(ctx, "prod")
	wantErr(t, err, ErrNotFound, "")

	k1 := ed25519Key("prod", "k1", t0)
	got, err := s.CreateSigningKey(ctx, k1)
	if err != nil {
		t.Fatal(err)
	}
	k1.CreatedAt = t0.Truncate(time.Microsecond)
	if !reflect.DeepEqual(got, k1) {
		t.Fatalf("CreateSigningKey = %+v, want %+v", got, k1)
	}
	if active, err := s.ActiveSigningKey(ctx, "prod"); err != nil || !reflect.DeepEqual(active, k1) {
		t.Fatalf("ActiveSigningKey = %+v, %v", active, err)
	}
	_, err = s.CreateSigningKey(ctx, ed25519Key("prod", "k2", at(time.Hour)))
	wantErr(t, err, ErrConflict, "active")
	dup := ed25519Key("prod", "k1", at(time.Hour))
	dup.RetiredAt, dup.NotAfter = ptr(at(time.Hour)), ptr(at(2*time.Hour))
	_, err = s.CreateSigningKey(ctx, dup)
	wantErr(t, err, ErrConflict, "kid")

	seq := changed(t, s, "prod")
	retired, err := s.RetireSigningKey(ctx, "prod", "k1", at(time.Hour), at(3*time.Hour))
	if err != nil || retired.RetiredAt == nil || !retired.NotAfter.Equal(at(3*time.Hour).Truncate(time.Microsecond)) {
		t.Fatalf("RetireSigningKey = %+v, %v", retired, err)
	}
	if changed(t, s, "prod") != seq+1 {
		t.Fatal("retiring is not a change")
	}
	again, err := s.RetireSigningKey(ctx, "prod", "k1", at(2*time.Hour), at(9*time.Hour))
	if err != nil || !reflect.DeepEqual(again, retired) || changed(t, s, "prod") != seq+1 {
		t.Fatalf("retiring twice: %+v, %v", again, err)
	}
	_, err = s.ActiveSigningKey(ctx, "prod")
	wantErr(t, err, ErrNotFound, "")

	// A KMS key: no sealed private half.
	es := SigningKey{KID: "kms-1", Realm: "prod", Alg: AlgES256, Public: bytes.Repeat([]byte{4}, 65), CreatedAt: at(time.Hour)}
	if _, err := s.CreateSigningKey(ctx, es); err != nil {
		t.Fatal(err)
	}
	list, err := s.ListSigningKeys(ctx, "prod")
	if err != nil || len(list) != 2 || list[0].KID != "k1" || list[1].KID != "kms-1" || list[1].PrivateSealed != nil {
		t.Fatalf("ListSigningKeys = %+v, %v", list, err)
	}

	_, err = s.RetireSigningKey(ctx, "prod", "nope", at(time.Hour), at(2*time.Hour))
	wantErr(t, err, ErrNotFound, "")
	_, err = s.RetireSigningKey(ctx, "prod", "kms-1", at(time.Hour), at(0))
	wantErr(t, err, ErrInvalid, "not_after")
	bad := ed25519Key("prod", "k9", t0)
	bad.Alg = "RS256"
	_, err = s.CreateSigningKey(ctx, bad)
	wantErr(t, err, ErrInvalid, "alg")
	bad = ed25519Key("prod", "k9", t0)
	bad.Public = bad.Public[:31]
	_, err = s.CreateSigningKey(ctx, bad)
	wantErr(t, err, ErrInvalid, "public")
}

func testRotateSigningKey(t *testing.T, b testBackend) {
	s := openURL(t, b.newURL(t))
	mustRealm(t, s, "prod")
	if _, err := s.CreateSigningKey(ctx, ed25519Key("prod", "k1", t0)); err != nil {
		t.Fatal(err)
	}
	seq := changed(t, s, "prod")
	old, created, err := s.RotateSigningKey(ctx, "prod", "k1", ed25519Key("prod", "k2", at(time.Hour)), at(3*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if old.RetiredAt == nil || !old.RetiredAt.Equal(created.CreatedAt) || !old.NotAfter.Equal(at(3*time.Hour).Truncate(time.Microsecond)) {
		t.Fatalf("old key after rotation: %+v", old)
	}
	if active, err := s.ActiveSigningKey(ctx, "prod"); err != nil || active.KID != "k2" {
		t.Fatalf("active after rotation: %+v, %v", active, err)
	}
	if changed(t, s, "prod") != seq+1 {
		t.Fatal("rotation is not one change")
	}
	_, _, err = s.RotateSigningKey(ctx, "prod", "k1", ed25519Key("prod", "k3", at(2*time.Hour)), at(4*time.Hour))
	wantErr(t, err, ErrConflict, "retired_at")
	// The new key's kid is taken: the old key stays active.
	_, _, err = s.RotateSigningKey(ctx, "prod", "k2", ed25519Key("prod", "k1", at(2*time.Hour)), at(4*time.Hour))
	wantErr(t, err, ErrConflict, "kid")
	if active, err := s.ActiveSigningKey(ctx, "prod"); err != nil || active.KID != "k2" || active.RetiredAt != nil {
		t.Fatalf("a failed rotation retired the active key: %+v, %v", active, err)
	}
	_, _, err = s.RotateSigningKey(ctx, "prod", "nope", ed25519Key("prod", "k3", at(2*time.Hour)), at(4*time.Hour))
	wantErr(t, err, ErrNotFound, "")
	_, _, err = s.RotateSigningKey(ctx, "prod", "k2", ed25519Key("prod", "k3", at(2*time.Hour)), at(time.Hour))
	wantErr(t, err, ErrInvalid, "not_after")
	if changed(t, s, "prod") != seq+1 {
		t.Fatal("failed rotations counted as changes")
	}
}

func testOrgStates(t *testing.T, b testBackend) {
	s := openURL(t, b.newURL(t))
	mustRealm(t, s, "prod")
	seq := changed(t, s, "prod")
	us := func(d time.Duration) time.Time { return at(d).Truncate(time.Microsecond) }
	o := OrgState{Realm: "prod", Org: "org_b", State: OrgBudgetExhausted, UpdatedAt: us(time.Hour)}
	got, err := s.SetOrgState(ctx, o)
	if err != nil || got != o {
		t.Fatalf("SetOrgState = %+v, %v", got, err)
	}
	// The same state again: no change, UpdatedAt says since when.
	got, err = s.SetOrgState(ctx, OrgState{Realm: "prod", Org: "org_b", State: OrgBudgetExhausted, UpdatedAt: at(2 * time.Hour)})
	if err != nil || got != o || changed(t, s, "prod") != seq+1 {
		t.Fatalf("unchanged SetOrgState = %+v, %v", got, err)
	}
	o2 := OrgState{Realm: "prod", Org: "org_b", State: OrgActive, UpdatedAt: us(3 * time.Hour)}
	if got, err = s.SetOrgState(ctx, o2); err != nil || got != o2 || changed(t, s, "prod") != seq+2 {
		t.Fatalf("SetOrgState = %+v, %v", got, err)
	}
	o3 := OrgState{Realm: "prod", Org: "org_a", State: OrgSuspended, UpdatedAt: us(time.Hour)}
	if _, err := s.SetOrgState(ctx, o3); err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetOrgState(ctx, "prod", "org_b"); err != nil || got != o2 {
		t.Fatalf("GetOrgState = %+v, %v", got, err)
	}
	list, err := s.ListOrgStates(ctx, "prod")
	if err != nil || !reflect.DeepEqual(list, []OrgState{o3, o2}) {
		t.Fatalf("ListOrgStates = %+v, %v", list, err)
	}
	_, err = s.GetOrgState(ctx, "prod", "org_z")
	wantErr(t, err, ErrNotFound, "")
	_, err = s.SetOrgState(ctx, OrgState{Realm: "prod", Org: "org_a", State: "over_budget", UpdatedAt: t0})
	wantErr(t, err, ErrInvalid, "state")
}

func testPolicies(t *testing.T, b testBackend) {
	s := openURL(t, b.newURL(t))
	mustRealm(t, s, "prod")
	_, err := s.LatestPolicy(ctx, "prod")
	wantErr(t, err, ErrNotFound, "")
	for v := 1; v <= 3; v++ {
		seq := changed(t, s, "prod")
		p, err := s.PutPolicy(ctx, Policy{Realm: "prod", YAML: []byte("version: " + strconv.Itoa(v)), CreatedAt: at(time.Duration(v) * time.Hour), CreatedBy: "key_admin"})
		if err != nil || p.Version != uint64(v) {
			t.Fatalf("PutPolicy #%d = %+v, %v", v, p, err)
		}
		if changed(t, s, "prod") != seq+1 {
			t.Fatal("a policy is not a change")
		}
	}
	latest, err := s.LatestPolicy(ctx, "prod")
	if err != nil || latest.Version != 3 || string(latest.YAML) != "version: 3" || latest.CreatedBy != "key_admin" ||
		!latest.CreatedAt.Equal(at(3*time.Hour).Truncate(time.Microsecond)) {
		t.Fatalf("LatestPolicy = %+v, %v", latest, err)
	}
	p2, err := s.GetPolicy(ctx, "prod", 2)
	if err != nil || string(p2.YAML) != "version: 2" {
		t.Fatalf("GetPolicy(2) = %+v, %v", p2, err)
	}
	_, err = s.GetPolicy(ctx, "prod", 4)
	wantErr(t, err, ErrNotFound, "")
	_, err = s.GetPolicy(ctx, "prod", 0)
	wantErr(t, err, ErrInvalid, "version")
	page, next, err := s.ListPolicies(ctx, "prod", Page{Limit: 2})
	if err != nil || len(page) != 2 || page[0].Version != 1 || page[1].Version != 2 || next == "" {
		t.Fatalf("ListPolicies page 1 = %+v, %q, %v", page, next, err)
	}
	page, next, err = s.ListPolicies(ctx, "prod", Page{Limit: 2, Cursor: next})
	if err != nil || len(page) != 1 || page[0].Version != 3 || next != "" {
		t.Fatalf("ListPolicies page 2 = %+v, %q, %v", page, next, err)
	}
	_, _, err = s.ListPolicies(ctx, "prod", Page{Cursor: encodeCursor(cursorAudit, 1, "")})
	wantErr(t, err, ErrInvalid, "cursor")
	if r, _ := s.GetRealm(ctx, "prod"); r.PolicyVersion != 3 {
		t.Fatalf("realm policy version %d", r.PolicyVersion)
	}
	_, err = s.PutPolicy(ctx, Policy{Realm: "prod", CreatedAt: t0})
	wantErr(t, err, ErrInvalid, "yaml")
}

func testRevocations(t *testing.T, b testBackend) {
	s := openURL(t, b.newURL(t))
	mustRealm(t, s, "prod")
	mustRealm(t, s, "dev")
	add := func(r Revocation) Revocation {
		t.Helper()
		got, err := s.AddRevocation(ctx, r)
		if err != nil {
			t.Fatalf("AddRevocation(%+v): %v", r, err)
		}
		return got
	}
	rev := func(realm, kind, value string, until time.Duration) Revocation {
		return Revocation{Realm: realm, Kind: kind, Value: value, Until: at(until), CreatedAt: t0}
	}
	seq := changed(t, s, "prod")
	first := add(rev("prod", RevokeJTI, "j1", time.Hour))
	if got := add(rev("prod", RevokeJTI, "j1", time.Hour)); got != first || changed(t, s, "prod") != seq+1 {
		t.Fatalf("adding twice: %+v, changes %d", got, changed(t, s, "prod")-seq)
	}
	if got := add(rev("prod", RevokeJTI, "j1", 2*time.Hour)); !got.Until.Equal(at(2*time.Hour).Truncate(time.Microsecond)) || changed(t, s, "prod") != seq+2 {
		t.Fatalf("extending: %+v", got)
	}
	if got := add(rev("prod", RevokeJTI, "j1", 30*time.Minute)); !got.Until.Equal(at(2*time.Hour).Truncate(time.Microsecond)) || changed(t, s, "prod") != seq+2 {
		t.Fatalf("a shorter retry shortened the revocation: %+v", got)
	}
	add(rev("prod", RevokeSession, "s1", 3*time.Hour))
	add(rev("prod", RevokeJTI, "old", 10*time.Minute))
	add(rev("dev", RevokeJTI, "x", 5*time.Minute))

	list, err := s.ListRevocations(ctx, "prod", at(20*time.Minute))
	if err != nil || len(list) != 2 || list[0].Value != "j1" || list[1].Value != "s1" {
		t.Fatalf("ListRevocations = %+v, %v", list, err)
	}
	n, err := s.PruneRevocations(ctx, at(30*time.Minute))
	if err != nil || n != 2 {
		t.Fatalf("PruneRevocations = %d, %v; want 2 (one per realm)", n, err)
	}
	list, _ = s.ListRevocations(ctx, "prod", t0)
	if len(list) != 2 {
		t.Fatalf("after prune: %+v", list)
	}
	if list, _ = s.ListRevocations(ctx, "dev", t0); len(list) != 0 {
		t.Fatalf("dev after prune: %+v", list)
	}
	_, err = s.AddRevocation(ctx, rev("prod", "key", "k", time.Hour))
	wantErr(t, err, ErrInvalid, "kind")
	_, err = s.AddRevocation(ctx, rev("prod", RevokeJTI, "", time.Hour))
	wantErr(t, err, ErrInvalid, "value")
}

func testAudit(t *testing.T, b testBackend) {
	s := openURL(t, b.newURL(t))
	mustRealm(t, s, "prod")
	mustRealm(t, s, "dev")
	seq := changed(t, s, "prod")
	var events []AuditEvent
	for i, a := range []struct{ action, target string }{
		{"key.create", "key_a"}, {"key.revoke", "key_a"}, {"key.create", "key_b"}, {"policy.put", "1"}, {"key.create", "key_c"},
	} {
		e := AuditEvent{Realm: "prod", At: at(time.Duration(i) * time.Minute), Actor: "key_admin", Action: a.action, Target: a.target}
		if i%2 == 0 {
			e.Detail = map[string]string{"name": "n" + strconv.Itoa(i), "scopes": "tasks:read tasks:write"}
		}
		got, err := s.AppendAudit(ctx, e)
		if err != nil {
			t.Fatal(err)
		}
		if len(events) > 0 && got.ID <= events[len(events)-1].ID {
			t.Fatalf("audit ids not increasing: %d after %d", got.ID, events[len(events)-1].ID)
		}
		e.ID, e.At = got.ID, e.At.Truncate(time.Microsecond)
		if !reflect.DeepEqual(got, e) {
			t.Fatalf("AppendAudit = %+v, want %+v", got, e)
		}
		events = append(events, got)
	}
	if _, err := s.AppendAudit(ctx, AuditEvent{Realm: "dev", At: t0, Action: "key.create"}); err != nil {
		t.Fatal(err)
	}
	if changed(t, s, "prod") != seq {
		t.Fatal("audit appends counted as changes")
	}
	list := func(f AuditFilter, limit int) []AuditEvent {
		t.Helper()
		var out []AuditEvent
		cursor := ""
		for {
			page, next, err := s.ListAudit(ctx, "prod", f, Page{Limit: limit, Cursor: cursor})
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, page...)
			if next == "" {
				return out
			}
			cursor = next
		}
	}
	if got := list(AuditFilter{}, 2); !reflect.DeepEqual(got, events) {
		t.Fatalf("ListAudit = %+v", got)
	}
	if got := list(AuditFilter{Action: "key.create"}, 1); len(got) != 3 || got[2].Target != "key_c" {
		t.Fatalf("by action: %+v", got)
	}
	if got := list(AuditFilter{Target: "key_a"}, 0); len(got) != 2 || got[1].Action != "key.revoke" {
		t.Fatalf("by target: %+v", got)
	}
	if got := list(AuditFilter{Since: at(3 * time.Minute)}, 0); len(got) != 2 || got[0].ID != events[3].ID {
		t.Fatalf("since: %+v", got)
	}
	_, err := s.AppendAudit(ctx, AuditEvent{Realm: "nowhere", At: t0, Action: "x"})
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("audit in a missing realm: %v", err)
	}
	_, err = s.AppendAudit(ctx, AuditEvent{Realm: "prod", At: t0})
	wantErr(t, err, ErrInvalid, "action")
	_, _, err = s.ListAudit(ctx, "prod", AuditFilter{}, Page{Cursor: encodeCursor(cursorKeys, 1, testHash(1).ID().String())})
	wantErr(t, err, ErrInvalid, "cursor")
}

// testChangeFeed checks that exactly the mutations a snapshot can see count as changes.
func testChangeFeed(t *testing.T, b testBackend) {
	s := openURL(t, b.newURL(t))
	mustRealm(t, s, "prod")
	k := mustKey(t, s, testKey("prod", 1))
	if _, err := s.CreateSigningKey(ctx, ed25519Key("prod", "k1", t0)); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name    string
		changes bool
		do      func() error
	}{
		{"CreateKey", true, func() error { _, err := s.CreateKey(ctx, testKey("prod", 2)); return err }},
		{"CreateKeys", true, func() error { return s.CreateKeys(ctx, "prod", []APIKey{testKey("prod", 3)}) }},
		{"UpdateKey scopes", true, func() error {
			_, err := s.UpdateKey(ctx, "prod", k.ID, KeyUpdate{Scopes: &[]string{"a"}})
			return err
		}},
		{"UpdateKey name", false, func() error { _, err := s.UpdateKey(ctx, "prod", k.ID, KeyUpdate{Name: ptr("n")}); return err }},
		{"RotateKey", true, func() error {
			_, _, err := s.RotateKey(ctx, "prod", k.ID, testKey("prod", 4), at(time.Hour))
			return err
		}},
		{"RevokeKey", true, func() error { _, err := s.RevokeKey(ctx, "prod", testHash(2).ID().String(), t0); return err }},
		{"RotateSigningKey", true, func() error {
			_, _, err := s.RotateSigningKey(ctx, "prod", "k1", ed25519Key("prod", "k2", at(time.Hour)), at(2*time.Hour))
			return err
		}},
		{"RetireSigningKey", true, func() error {
			_, err := s.RetireSigningKey(ctx, "prod", "k2", at(3*time.Hour), at(4*time.Hour))
			return err
		}},
		{"CreateSigningKey", true, func() error { _, err := s.CreateSigningKey(ctx, ed25519Key("prod", "k3", at(3*time.Hour))); return err }},
		{"SetOrgState", true, func() error {
			_, err := s.SetOrgState(ctx, OrgState{Realm: "prod", Org: "o", State: OrgSuspended, UpdatedAt: t0})
			return err
		}},
		{"PutPolicy", true, func() error {
			_, err := s.PutPolicy(ctx, Policy{Realm: "prod", YAML: []byte("x"), CreatedAt: t0})
			return err
		}},
		{"AddRevocation", true, func() error {
			_, err := s.AddRevocation(ctx, Revocation{Realm: "prod", Kind: RevokeSession, Value: "s", Until: at(time.Hour), CreatedAt: t0})
			return err
		}},
		{"PruneRevocations", false, func() error { _, err := s.PruneRevocations(ctx, at(2*time.Hour)); return err }},
		{"AppendAudit", false, func() error { _, err := s.AppendAudit(ctx, AuditEvent{Realm: "prod", At: t0, Action: "x"}); return err }},
		{"NextSnapshotVersion", false, func() error { _, err := s.NextSnapshotVersion(ctx, "prod"); return err }},
	}
	for _, st := range steps {
		before := changed(t, s, "prod")
		if err := st.do(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		after := changed(t, s, "prod")
		if want := before + map[bool]uint64{true: 1}[st.changes]; after != want {
			t.Fatalf("%s: Changed %d → %d, want %d", st.name, before, after, want)
		}
	}
	r, err := s.GetRealm(ctx, "prod")
	if err != nil || r.SnapshotVersion != 1 || r.ChangeSeq != changed(t, s, "prod") {
		t.Fatalf("realm = %+v, %v", r, err)
	}
}

func testMissingRealm(t *testing.T, b testBackend) {
	s := openURL(t, b.newURL(t))
	errs := map[string]error{}
	_, errs["CreateKey"] = s.CreateKey(ctx, testKey("nowhere", 1))
	errs["CreateKeys"] = s.CreateKeys(ctx, "nowhere", []APIKey{testKey("nowhere", 1)})
	_, errs["CreateSigningKey"] = s.CreateSigningKey(ctx, ed25519Key("nowhere", "k", t0))
	_, errs["SetOrgState"] = s.SetOrgState(ctx, OrgState{Realm: "nowhere", Org: "o", State: OrgActive, UpdatedAt: t0})
	_, errs["PutPolicy"] = s.PutPolicy(ctx, Policy{Realm: "nowhere", YAML: []byte("x"), CreatedAt: t0})
	_, errs["AddRevocation"] = s.AddRevocation(ctx, Revocation{Realm: "nowhere", Kind: RevokeJTI, Value: "j", Until: t0, CreatedAt: t0})
	_, errs["AppendAudit"] = s.AppendAudit(ctx, AuditEvent{Realm: "nowhere", At: t0, Action: "x"})
	_, errs["Changed"] = s.Changed(ctx, "nowhere")
	_, errs["NextSnapshotVersion"] = s.NextSnapshotVersion(ctx, "nowhere")
	_, errs["KeyChangesSince"] = s.KeyChangesSince(ctx, "nowhere", 0, t0, 0)
	for name, err := range errs {
		var e *Error
		if !errors.Is(err, ErrNotFound) || !errors.As(err, &e) || e.Entity != "realm" {
			t.Errorf("%s in a missing realm: %v", name, err)
		}
	}
}

// twoReplicas opens the same database twice: two pools, as two control-plane replicas.
func twoReplicas(t *testing.T, b testBackend) [2]Store {
	u := b.newURL(t)
	return [2]Store{openURL(t, u), openURL(t, u)}
}

func testSnapshotVersionsConcurrent(t *testing.T, b testBackend) {
	r := twoReplicas(t, b)
	mustRealm(t, r[0], "prod")
	const goroutines, calls = 20, 10
	got := make([][]uint64, goroutines)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for range calls {
				v, err := r[g%2].NextSnapshotVersion(ctx, "prod")
				if err != nil {
					t.Errorf("NextSnapshotVersion: %v", err)
					return
				}
				got[g] = append(got[g], v)
			}
		})
	}
	wg.Wait()
	seen := map[uint64]bool{}
	for g, vs := range got {
		for i, v := range vs {
			if i > 0 && v <= vs[i-1] {
				t.Fatalf("goroutine %d: version %d after %d", g, v, vs[i-1])
			}
			if seen[v] {
				t.Fatalf("version %d handed out twice", v)
			}
			seen[v] = true
		}
	}
	for v := uint64(1); v <= goroutines*calls; v++ {
		if !seen[v] {
			t.Fatalf("version %d missing: versions are not dense", v)
		}
	}
	if rl, _ := r[1].GetRealm(ctx, "prod"); rl.SnapshotVersion != goroutines*calls {
		t.Fatalf("realm snapshot version %d", rl.SnapshotVersion)
	}
}

func testPolicyVersionsConcurrent(t *testing.T, b testBackend) {
	r := twoReplicas(t, b)
	mustRealm(t, r[0], "prod")
	const n = 20
	versions := make(chan uint64, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			p, err := r[i%2].PutPolicy(ctx, Policy{Realm: "prod", YAML: []byte(strconv.Itoa(i)), CreatedAt: t0})
			if err != nil {
				t.Errorf("PutPolicy: %v", err)
				return
			}
			versions <- p.Version
		})
	}
	wg.Wait()
	close(versions)
	var got []uint64
	for v := range versions {
		got = append(got, v)
	}
	slices.Sort(got)
	for i, v := range got {
		if v != uint64(i+1) {
			t.Fatalf("policy versions %v, want 1..%d", got, n)
		}
	}
	list, _, err := r[1].ListPolicies(ctx, "prod", Page{})
	if err != nil || len(list) != n {
		t.Fatalf("ListPolicies: %d, %v", len(list), err)
	}
}

// testConcurrentKeyWrites checks that concurrent writers on two replicas get distinct change
// sequences and that a reader following KeyChangesSince misses none of them.
func testConcurrentKeyWrites(t *testing.T, b testBackend) {
	r := twoReplicas(t, b)
	mustRealm(t, r[0], "prod")
	const writers, each = 8, 10
	var (
		wg    sync.WaitGroup
		done  = make(chan struct{})
		seen  = map[string]bool{}
		since uint64
	)
	follow := func() {
		c, err := r[1].KeyChangesSince(ctx, "prod", since, t0, 0)
		if err != nil {
			t.Errorf("KeyChangesSince: %v", err)
			return
		}
		for _, k := range c.Upserted {
			seen[k.ID] = true
		}
		since = c.Seq
	}
	var fw sync.WaitGroup
	fw.Go(func() {
		for {
			select {
			case <-done:
				follow()
				return
			default:
				follow()
			}
		}
	})
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				if _, err := r[w%2].CreateKey(ctx, testKey("prod", w*1000+i)); err != nil {
					t.Errorf("CreateKey: %v", err)
				}
			}
		})
	}
	wg.Wait()
	close(done)
	fw.Wait()
	if len(seen) != writers*each {
		t.Fatalf("a follower of KeyChangesSince saw %d of %d keys", len(seen), writers*each)
	}
	c, err := r[0].KeyChangesSince(ctx, "prod", 0, t0, 0)
	if err != nil {
		t.Fatal(err)
	}
	seqs := map[uint64]bool{}
	for _, k := range c.Upserted {
		seqs[k.ChangeSeq] = true
	}
	if len(seqs) != writers*each || c.Seq != writers*each {
		t.Fatalf("%d distinct change sequences, realm at %d; want %d", len(seqs), c.Seq, writers*each)
	}
}

// testConcurrentRotation rotates one key from many goroutines on two replicas: the read of
// the old key and its update must not interleave, so exactly one rotation wins.
func testConcurrentRotation(t *testing.T, b testBackend) {
	r := twoReplicas(t, b)
	mustRealm(t, r[0], "prod")
	old := mustKey(t, r[0], testKey("prod", 1))
	const n = 10
	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		wins      int
		conflicts int
	)
	for i := range n {
		wg.Go(func() {
			_, _, err := r[i%2].RotateKey(ctx, "prod", old.ID, testKey("prod", 100+i), at(time.Hour))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				wins++
			case errors.Is(err, ErrConflict):
				conflicts++
			default:
				t.Errorf("RotateKey: %v", err)
			}
		})
	}
	wg.Wait()
	if wins != 1 || conflicts != n-1 {
		t.Fatalf("%d rotations won, %d conflicted; want 1 and %d", wins, conflicts, n-1)
	}
	if c, _ := r[0].CountKeys(ctx, "prod", KeyFilter{IncludeRevoked: true}); c != 2 {
		t.Fatalf("%d keys after rotation, want 2", c)
	}
}

func migrationCount(t *testing.T, s Store) int {
	t.Helper()
	var n int64
	if err := s.(*sqlStore).b.pool(false).queryRow(ctx, `SELECT count(*) FROM schema_migrations`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return int(n)
}

func migrationFileCount(t *testing.T, s Store) int {
	t.Helper()
	ms, err := loadMigrations(s.(*sqlStore).b.migrations())
	if err != nil || len(ms) == 0 {
		t.Fatalf("loadMigrations: %d, %v", len(ms), err)
	}
	return len(ms)
}

func testMigrationsIdempotent(t *testing.T, b testBackend) {
	u := b.newURL(t)
	s1 := openURL(t, u)
	mustRealm(t, s1, "prod")
	mustKey(t, s1, testKey("prod", 1))
	want := migrationFileCount(t, s1)
	if err := migrate(ctx, s1.(*sqlStore).b); err != nil {
		t.Fatalf("migrating twice: %v", err)
	}
	s2 := openURL(t, u)
	if got := migrationCount(t, s2); got != want {
		t.Fatalf("schema_migrations has %d rows, want %d", got, want)
	}
	if n, err := s2.CountKeys(ctx, "prod", KeyFilter{}); err != nil || n != 1 {
		t.Fatalf("data after reopening: %d, %v", n, err)
	}
}

func testMigrationsConcurrent(t *testing.T, b testBackend) {
	u := b.newURL(t)
	const n = 6
	stores := make([]Store, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { stores[i], errs[i] = Open(ctx, u) })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("concurrent Open #%d: %v", i, errs[i])
		}
		t.Cleanup(func() { _ = stores[i].Close() })
	}
	if got, want := migrationCount(t, stores[0]), migrationFileCount(t, stores[0]); got != want {
		t.Fatalf("schema_migrations has %d rows, want %d", got, want)
	}
	mustRealm(t, stores[n-1], "prod")
}

func testMigrationTampered(t *testing.T, b testBackend) {
	u := b.newURL(t)
	s, err := Open(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.(*sqlStore).b.pool(true).exec(ctx, `UPDATE schema_migrations SET checksum = 'edited' WHERE version = 1`); err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	if s, err := Open(ctx, u); err == nil {
		_ = s.Close()
		t.Fatal("Open accepted a database whose applied migration differs from the binary's")
	}
}

func testPingClose(t *testing.T, b testBackend) {
	s, err := Open(ctx, b.newURL(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.GetRealm(canceled, "prod"); !errors.Is(err, context.Canceled) {
		t.Fatalf("GetRealm with a canceled context: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(ctx); err == nil {
		t.Fatal("Ping after Close succeeded")
	}
}
