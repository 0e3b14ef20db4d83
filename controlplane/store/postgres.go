package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// PostgreSQL is shared by every control-plane replica. Writes run at READ COMMITTED and
// serialise per realm on the realm's row (see sqlStore.mutate); reads that must be
// consistent across statements run at REPEATABLE READ, read only.
type pgBackend struct {
	p *pgxpool.Pool
}

// rollbackTimeout bounds a rollback issued after the caller's context has ended.
const rollbackTimeout = 5 * time.Second

func openPostgres(ctx context.Context, url string) (Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// pgx's parse errors redact the password.
		return nil, invalid("store", "url", err.Error())
	}
	p, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("store: postgres: %w", err)
	}
	b := &pgBackend{p: p}
	if err := p.Ping(ctx); err != nil {
		p.Close()
		return nil, fmt.Errorf("store: postgres: %w", err)
	}
	if err := migrate(ctx, b); err != nil {
		p.Close()
		return nil, err
	}
	return &sqlStore{b: b}, nil
}

func (b *pgBackend) pool(bool) querier { return pgQ{b.p} }

func (b *pgBackend) begin(ctx context.Context, write bool) (tx, error) {
	opts := pgx.TxOptions{IsoLevel: pgx.ReadCommitted}
	if !write {
		opts = pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}
	}
	t, err := b.p.BeginTx(ctx, opts)
	if err != nil {
		return nil, err
	}
	return &pgTx{pgQ{t}, t, ctx}, nil
}

func (b *pgBackend) classify(err error) error {
	if err == nil {
		return nil
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "23505": // unique_violation
			return &constraintError{pe.ConstraintName}
		case "23503": // foreign_key_violation
			return errForeignKey
		}
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return fmt.Errorf("store: postgres: %w", err)
}

// migrationLock takes a transaction-scoped advisory lock named after the schema, so that
// replicas starting together migrate one after the other, while databases' other schemas
// (parallel test runs, say) do not wait on each other.
func (b *pgBackend) migrationLock(ctx context.Context, t tx) error {
	_, err := t.exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('latchkey/store/migrate/' || coalesce(current_schema(), ''), 0))`)
	return err
}

func (b *pgBackend) migrationsTable() string {
	return `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    integer     PRIMARY KEY,
		name       text        NOT NULL,
		checksum   text        NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now()
	)`
}

func (b *pgBackend) migrations() fs.FS {
	sub, _ := fs.Sub(migrationFiles, "migrations/postgres") // the directory is embedded
	return sub
}

func (b *pgBackend) ping(ctx context.Context) error { return b.classify(b.p.Ping(ctx)) }

func (b *pgBackend) close() error {
	b.p.Close()
	return nil
}

// pgQ adapts *pgxpool.Pool and pgx.Tx; pgx.Rows and pgx.Row already fit rows and row.
type pgQ struct {
	db interface {
		Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
		Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
		QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	}
}

func (q pgQ) exec(ctx context.Context, s string, args ...any) (int64, error) {
	tag, err := q.db.Exec(ctx, s, args...)
	return tag.RowsAffected(), err
}

func (q pgQ) query(ctx context.Context, s string, args ...any) (rows, error) {
	return q.db.Query(ctx, s, args...)
}

func (q pgQ) queryRow(ctx context.Context, s string, args ...any) row {
	return q.db.QueryRow(ctx, s, args...)
}

type pgTx struct {
	pgQ
	t   pgx.Tx
	ctx context.Context
}

func (t *pgTx) commit(ctx context.Context) error { return t.t.Commit(ctx) }

// rollback must run even when the caller's context is done, or the connection would go
// back to the pool inside a transaction (pgx closes it then, but says so as an error).
func (t *pgTx) rollback() {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(t.ctx), rollbackTimeout)
	defer cancel()
	_ = t.t.Rollback(ctx)
}
