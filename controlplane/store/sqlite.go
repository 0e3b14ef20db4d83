package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"runtime"
	"strings"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// SQLite runs in WAL mode behind two pools: one connection for writes, whose transactions
// begin IMMEDIATE (they take the write lock up front, so a transaction that reads and then
// writes cannot fail halfway on a lock upgrade), and a pool of query-only connections for
// reads, which WAL lets run beside the writer. Queueing writers on one connection in
// database/sql replaces SQLite's busy polling with a fair wait; busy_timeout still covers
// other processes on the same file. synchronous=FULL because losing a committed revocation
// on power loss is worse than a slower write. The writer keeps statement journals in memory
// and a 64 MiB page cache, which more than halves the time of a 10,000-key import.
const (
	sqliteWriteParams = "_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=temp_store(MEMORY)&_pragma=cache_size(-65536)&_txlock=immediate"
	sqliteReadParams  = "_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)&_pragma=query_only(1)"
)

type sqliteBackend struct {
	w, r *sql.DB
}

func openSQLite(ctx context.Context, path string) (Store, error) {
	switch {
	case path == "":
		return nil, invalid("store", "url", "empty SQLite path")
	case path == ":memory:" || strings.HasPrefix(path, "file:"):
		return nil, invalid("store", "url", "SQLite needs a file path (the store opens it more than once)")
	case strings.ContainsAny(path, "?#\x00"):
		return nil, invalid("store", "url", "SQLite path must not contain '?', '#' or NUL")
	}
	w, err := sql.Open("sqlite", path+"?"+sqliteWriteParams)
	if err != nil {
		return nil, fmt.Errorf("store: sqlite: %w", err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	b := &sqliteBackend{w: w}
	if err := w.PingContext(ctx); err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("store: sqlite: open %s: %w", path, err)
	}
	if err := migrate(ctx, b); err != nil {
		_ = w.Close()
		return nil, err
	}
	r, err := sql.Open("sqlite", path+"?"+sqliteReadParams)
	if err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("store: sqlite: %w", err)
	}
	n := max(4, runtime.GOMAXPROCS(0))
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)
	b.r = r
	if err := r.PingContext(ctx); err != nil {
		_ = b.close()
		return nil, fmt.Errorf("store: sqlite: open %s: %w", path, err)
	}
	return &sqlStore{b: b}, nil
}

func (b *sqliteBackend) pool(write bool) querier {
	if write {
		return sqliteQ{b.w}
	}
	return sqliteQ{b.r}
}

func (b *sqliteBackend) begin(ctx context.Context, write bool) (tx, error) {
	var (
		t   *sql.Tx
		err error
	)
	if write {
		t, err = b.w.BeginTx(ctx, nil) // BEGIN IMMEDIATE, from _txlock
	} else {
		t, err = b.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true}) // BEGIN (deferred): a snapshot from the first read
	}
	if err != nil {
		return nil, err
	}
	return &sqliteTx{sqliteQ{t}, t}, nil
}

// sqliteUnique maps the column lists in SQLite's "UNIQUE constraint failed: …" messages to
// the constraint names of the PostgreSQL schema.
var sqliteUnique = map[string]string{
	"realms.name":                          "realms_pkey",
	"api_keys.realm, api_keys.id":          "api_keys_pkey",
	"api_keys.realm, api_keys.hash":        "api_keys_hash_key",
	"signing_keys.realm, signing_keys.kid": "signing_keys_pkey",
	"signing_keys.realm":                   "signing_keys_active",
	"index 'signing_keys_active'":          "signing_keys_active",
	"policies.realm, policies.version":     "policies_pkey",
}

func (b *sqliteBackend) classify(err error) error {
	if err == nil {
		return nil
	}
	var se *sqlite.Error
	if !errors.As(err, &se) {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		return fmt.Errorf("store: sqlite: %w", err)
	}
	switch se.Code() {
	case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
		msg := se.Error()
		if i := strings.LastIndex(msg, "failed: "); i >= 0 {
			cols := msg[i+len("failed: "):]
			if j := strings.LastIndex(cols, " ("); j >= 0 {
				cols = cols[:j]
			}
			if name, ok := sqliteUnique[cols]; ok {
				return &constraintError{name}
			}
			return &constraintError{cols}
		}
	case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
		return errForeignKey
	}
	return fmt.Errorf("store: sqlite: %w", err)
}

// The write transaction's BEGIN IMMEDIATE already excludes every other writer, in this
// process and in others.
func (b *sqliteBackend) migrationLock(context.Context, tx) error { return nil }

func (b *sqliteBackend) migrationsTable() string {
	return `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		name       TEXT    NOT NULL,
		checksum   TEXT    NOT NULL,
		applied_at INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000000 AS INTEGER))
	) STRICT`
}

func (b *sqliteBackend) migrations() fs.FS {
	sub, _ := fs.Sub(migrationFiles, "migrations/sqlite") // the directory is embedded
	return sub
}

func (b *sqliteBackend) ping(ctx context.Context) error {
	if err := b.w.PingContext(ctx); err != nil {
		return b.classify(err)
	}
	return b.classify(b.r.PingContext(ctx))
}

func (b *sqliteBackend) close() error {
	var err error
	if b.r != nil {
		err = b.r.Close()
	}
	return errors.Join(err, b.w.Close())
}

// sqliteQ adapts *sql.DB and *sql.Tx.
type sqliteQ struct {
	db interface {
		ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error)
		QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
		QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row
	}
}

func (q sqliteQ) exec(ctx context.Context, s string, args ...any) (int64, error) {
	s, args = sqliteStatement(s, args)
	res, err := q.db.ExecContext(ctx, s, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (q sqliteQ) query(ctx context.Context, s string, args ...any) (rows, error) {
	s, args = sqliteStatement(s, args)
	rs, err := q.db.QueryContext(ctx, s, args...)
	if err != nil {
		return nil, err
	}
	return sqliteRows{rs}, nil
}

func (q sqliteQ) queryRow(ctx context.Context, s string, args ...any) row {
	s, args = sqliteStatement(s, args)
	return q.db.QueryRowContext(ctx, s, args...)
}

// sqliteStatement rewrites a statement for SQLite: each $N placeholder becomes an anonymous
// "?" with its argument repeated in order of appearance, and times become integer
// microseconds. SQLite would accept $N, but as a named parameter that binding looks up
// by a linear search: a 1,700-parameter batch INSERT spent most of its time there. No
// statement of the store has a '$' other than in a placeholder.
func sqliteStatement(s string, args []any) (string, []any) {
	out := make([]any, 0, len(args))
	var b []byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '$' || i+1 == len(s) || s[i+1] < '0' || s[i+1] > '9' {
			b = append(b, c)
			continue
		}
		n := 0
		for i+1 < len(s) && s[i+1] >= '0' && s[i+1] <= '9' {
			i++
			n = n*10 + int(s[i]-'0')
		}
		b = append(b, '?')
		if n < 1 || n > len(args) {
			// Leave the count short: the driver reports the missing argument.
			continue
		}
		a := args[n-1]
		if t, ok := a.(time.Time); ok {
			a = t.UnixMicro()
		}
		out = append(out, a)
	}
	return string(b), out
}

type sqliteRows struct{ *sql.Rows }

func (r sqliteRows) Close() { _ = r.Rows.Close() }

type sqliteTx struct {
	sqliteQ
	t *sql.Tx
}

func (t *sqliteTx) commit(context.Context) error { return t.t.Commit() }

func (t *sqliteTx) rollback() { _ = t.t.Rollback() }
