package store

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/controlplane/store/storetest"
	"github.com/latchkeyhq/latchkey/shared/apikey"
)

// testBackend names a kind of database the suite runs against and makes fresh ones.
type testBackend struct {
	name string
	// newURL returns the URL of a new, empty database that lives until the test ends,
	// skipping the test when the backend is not available.
	newURL func(t testing.TB) string
}

var testBackends = []testBackend{
	{"sqlite", sqliteURL},
	{"postgres", postgresURL},
}

func sqliteURL(t testing.TB) string {
	return "sqlite://" + filepath.Join(t.TempDir(), "latchkey.db")
}

func postgresURL(t testing.TB) string { return storetest.PostgresURL(t, "latchkey_test_") }

// openURL opens a store and closes it when the test ends.
func openURL(t testing.TB, u string) Store {
	t.Helper()
	s, err := Open(context.Background(), u)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// t0 is the suite's clock: every time is derived from it.
var t0 = time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC)

func at(d time.Duration) time.Time { return t0.Add(d) }

func ptr[T any](v T) *T { return &v }

// testHash returns a distinct hash per n.
func testHash(n int) apikey.Hash {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(n))
	return apikey.Hash(sha256.Sum256(b[:]))
}

// testKey returns a valid key numbered n in realm, created n seconds after t0.
func testKey(realm string, n int) APIKey {
	h := testHash(n)
	return APIKey{
		ID:        h.ID().String(),
		Realm:     realm,
		Hash:      h,
		Prefix:    "tb_",
		Last4:     "a1B2",
		Name:      "key " + strconv.Itoa(n),
		Type:      "tb",
		Scopes:    []string{"tasks:read", "tasks:write"},
		Org:       "org_1",
		Agents:    []string{"agent_1"},
		CreatedAt: at(time.Duration(n) * time.Second),
	}
}

func mustRealm(t testing.TB, s Store, name string) {
	t.Helper()
	if _, err := s.CreateRealm(context.Background(), name, t0); err != nil {
		t.Fatalf("CreateRealm(%q): %v", name, err)
	}
}

func mustKey(t testing.TB, s Store, k APIKey) APIKey {
	t.Helper()
	got, err := s.CreateKey(context.Background(), k)
	if err != nil {
		t.Fatalf("CreateKey(%s): %v", k.ID, err)
	}
	return got
}

// wantErr checks that err is a *Error of kind on field.
func wantErr(t testing.TB, err error, kind error, field string) {
	t.Helper()
	var e *Error
	if !errors.Is(err, kind) || !errors.As(err, &e) || e.Field != field {
		t.Fatalf("error = %v, want %v on field %q", err, kind, field)
	}
}

func changed(t testing.TB, s Store, realm string) uint64 {
	t.Helper()
	seq, err := s.Changed(context.Background(), realm)
	if err != nil {
		t.Fatalf("Changed: %v", err)
	}
	return seq
}

// sameKey compares keys field by field.
func sameKey(t testing.TB, got, want APIKey) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("key mismatch:\n got  %+v\n want %+v", got, want)
	}
}

func keyIDs(ks []APIKey) []string {
	out := make([]string, len(ks))
	for i, k := range ks {
		out[i] = k.ID
	}
	return out
}
