// Package storetest gives tests real databases: a fresh SQLite file, or a schema of their own
// in the PostgreSQL database LATCHKEY_TEST_POSTGRES names (CI sets it; without it the
// PostgreSQL tests skip naming the variable, and fail when CI is set).
package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	"github.com/jackc/pgx/v5"
)

// Env names the PostgreSQL database tests may create schemas in.
const Env = "LATCHKEY_TEST_POSTGRES"

// SQLiteURL returns the URL of a new SQLite database in the test's temporary directory.
func SQLiteURL(t testing.TB) string {
	return "sqlite://" + filepath.Join(t.TempDir(), "latchkey.db")
}

// PostgresURL creates a schema of its own (named prefix + random hex) in the database Env
// names and returns a URL whose connections use it, so parallel runs never meet; the schema is
// dropped when the test ends.
func PostgresURL(t testing.TB, prefix string) string {
	t.Helper()
	base := os.Getenv(Env)
	if base == "" {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s must name a PostgreSQL database in CI", Env)
		}
		t.Skipf("%s not set: skipping the PostgreSQL backend", Env)
	}
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	schema := prefix + hex.EncodeToString(rnd[:])
	exec := func(stmt string) {
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Fatalf("connect to %s: %v", Env, err)
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	exec("CREATE SCHEMA " + schema)
	t.Cleanup(func() { exec("DROP SCHEMA " + schema + " CASCADE") })
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}
