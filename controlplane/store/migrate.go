package store

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
)

// Each dialect has its own numbered migrations, NNNN_name.sql, applied in order and recorded
// in schema_migrations with a digest of their text. A migration once released is never
// edited: a changed digest stops Open rather than leave the schema in an unknown state.
//
//go:embed migrations/sqlite/*.sql migrations/postgres/*.sql
var migrationFiles embed.FS

type migration struct {
	version int
	name    string
	sql     string
	sum     string // lowercase hex SHA-256 of sql
}

func loadMigrations(fsys fs.FS) ([]migration, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, err
	}
	var ms []migration
	seen := map[int]bool{}
	for _, e := range entries {
		name := e.Name()
		num, rest, ok := strings.Cut(strings.TrimSuffix(name, ".sql"), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 || !strings.HasSuffix(name, ".sql") || rest == "" || seen[v] {
			return nil, fmt.Errorf("store: bad migration file name %q", name)
		}
		seen[v] = true
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, err
		}
		sum := sha256.Sum256(b)
		ms = append(ms, migration{version: v, name: rest, sql: string(b), sum: hex.EncodeToString(sum[:])})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	return ms, nil
}

// migrate applies pending migrations in one transaction, under the backend's migration
// lock: replicas starting together apply each migration once, and the others find it done.
// Versions the database has but this binary does not know (a newer replica migrated first)
// are left alone, so additive migrations allow rolling upgrades.
func migrate(ctx context.Context, b backend) error {
	ms, err := loadMigrations(b.migrations())
	if err != nil {
		return err
	}
	t, err := b.begin(ctx, true)
	if err != nil {
		return b.classify(err)
	}
	defer t.rollback()
	if err := b.migrationLock(ctx, t); err != nil {
		return b.classify(err)
	}
	if _, err := t.exec(ctx, b.migrationsTable()); err != nil {
		return b.classify(err)
	}
	applied := map[int]string{}
	rs, err := t.query(ctx, `SELECT version, checksum FROM schema_migrations`)
	if err != nil {
		return b.classify(err)
	}
	for rs.Next() {
		var (
			v   int64
			sum string
		)
		if err := rs.Scan(&v, &sum); err != nil {
			rs.Close()
			return b.classify(err)
		}
		applied[int(v)] = sum
	}
	rs.Close()
	if err := rs.Err(); err != nil {
		return b.classify(err)
	}
	for _, m := range ms {
		if sum, ok := applied[m.version]; ok {
			if sum != m.sum {
				return fmt.Errorf("store: migration %04d_%s was changed after it was applied (digest %s, applied %s)", m.version, m.name, m.sum, sum)
			}
			continue
		}
		if _, err := t.exec(ctx, m.sql); err != nil {
			return fmt.Errorf("store: migration %04d_%s: %w", m.version, m.name, b.classify(err))
		}
		if _, err := t.exec(ctx, `INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)`,
			int64(m.version), m.name, m.sum); err != nil {
			return b.classify(err)
		}
	}
	if err := t.commit(ctx); err != nil {
		return b.classify(err)
	}
	return nil
}
