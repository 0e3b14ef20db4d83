package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"time"
)

// The SQL in sql.go is written once for both databases. What differs (driver API, how a
// time is bound, how an error is recognised, how migrations are serialised) lives behind
// backend, implemented in sqlite.go and postgres.go. The SQL keeps to what both dialects
// share: RETURNING, ON CONFLICT, row values, partial indexes, and $N placeholders (which
// the SQLite side rewrites, see sqliteStatement).

// querier runs statements on a pool or inside a transaction.
type querier interface {
	exec(ctx context.Context, q string, args ...any) (int64, error)
	query(ctx context.Context, q string, args ...any) (rows, error)
	queryRow(ctx context.Context, q string, args ...any) row
}

type rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close()
}

type row interface {
	Scan(dest ...any) error
}

type tx interface {
	querier
	commit(ctx context.Context) error
	// rollback is a no-op after commit, so it can be deferred.
	rollback()
}

type backend interface {
	// pool runs autocommit statements; write selects SQLite's writer connection.
	pool(write bool) querier
	// begin starts a transaction. A write transaction holds the database's write lock
	// (SQLite) or runs at READ COMMITTED (PostgreSQL); a read transaction sees one
	// consistent snapshot of the database.
	begin(ctx context.Context, write bool) (tx, error)
	// classify turns a driver error into a *constraintError or errForeignKey when it is
	// one, and otherwise into an error that says which database failed. A missing row
	// needs no classifying: both drivers' errors match sql.ErrNoRows.
	classify(err error) error
	// migrationLock serialises migrations across processes, inside tx.
	migrationLock(ctx context.Context, t tx) error
	migrationsTable() string
	migrations() fs.FS
	ping(ctx context.Context) error
	close() error
}

var errForeignKey = errors.New("store: foreign key violation")

// constraintError is a unique or primary key violation, named as in the PostgreSQL
// schema (SQLite's messages are mapped to the same names).
type constraintError struct{ name string }

func (e *constraintError) Error() string { return "store: unique constraint " + e.name + " violated" }

// uniqueFields maps each unique constraint to the entity and field it protects.
var uniqueFields = map[string][2]string{
	"realms_pkey":         {"realm", "name"},
	"api_keys_pkey":       {"key", "id"},
	"api_keys_hash_key":   {"key", "hash"},
	"signing_keys_pkey":   {"signing_key", "kid"},
	"signing_keys_active": {"signing_key", "active"},
	"policies_pkey":       {"policy", "version"},
}

// mapErr turns the classified error of a statement about entity into the package's errors:
// a missing row is ErrNotFound for entity, a violated unique constraint ErrConflict naming
// its field, a violated foreign key (every one points at realms) ErrNotFound for the realm.
func (s *sqlStore) mapErr(entity string, err error) error {
	if err == nil {
		return nil
	}
	var se *Error
	if errors.As(err, &se) {
		return err
	}
	if errors.Is(err, sql.ErrNoRows) {
		return notFound(entity)
	}
	err = s.b.classify(err)
	var ce *constraintError
	switch {
	case errors.As(err, &ce):
		if f, ok := uniqueFields[ce.name]; ok {
			return conflict(f[0], f[1], "already taken")
		}
		return conflict(entity, "", ce.name)
	case errors.Is(err, errForeignKey):
		return notFound("realm")
	}
	return err
}

// ts scans a time stored as integer microseconds (SQLite) or timestamptz (PostgreSQL);
// NULL leaves valid false.
type ts struct {
	t     time.Time
	valid bool
}

func (v *ts) Scan(src any) error {
	switch x := src.(type) {
	case nil:
		*v = ts{}
	case int64:
		*v = ts{time.UnixMicro(x).UTC(), true}
	case time.Time:
		*v = ts{x.UTC(), true}
	default:
		return fmt.Errorf("store: cannot scan %T as a time", src)
	}
	return nil
}

func (v ts) ptr() *time.Time {
	if !v.valid {
		return nil
	}
	t := v.t
	return &t
}

var _ sql.Scanner = (*ts)(nil)
