package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/latchkeyhq/latchkey/shared/apikey"
	"github.com/latchkeyhq/latchkey/shared/limits"
)

// sqlStore implements Store over either backend.
type sqlStore struct {
	b backend
}

var _ Store = (*sqlStore)(nil)

// sqlArgs collects the arguments of a statement built piece by piece.
type sqlArgs []any

// add appends v and returns its placeholder.
func (a *sqlArgs) add(v any) string {
	*a = append(*a, v)
	return "$" + strconv.Itoa(len(*a))
}

// mutate runs fn in a write transaction that first takes the realm's next change sequence.
//
// That UPDATE locks the realm's row until commit, so per realm, snapshot-affecting writes
// commit one at a time, in sequence order: a reader that sees sequence n sees every change
// numbered up to n (a sequence object would not give this: numbers are taken in one order
// and committed in another). Every such write takes the lock first, which fixes the lock
// order (no deadlocks) and means rows read inside fn cannot change before commit, which is
// what SELECT … FOR UPDATE would otherwise be for. On SQLite the write transaction already
// excludes every other writer.
//
// fn reports whether it changed anything; when it did not, the transaction is rolled back
// and the sequence number is not spent.
func (s *sqlStore) mutate(ctx context.Context, realm string, fn func(t tx, seq int64) (bool, error)) error {
	t, err := s.b.begin(ctx, true)
	if err != nil {
		return s.mapErr("realm", err)
	}
	defer t.rollback()
	var seq int64
	err = t.queryRow(ctx, `UPDATE realms SET change_seq = change_seq + 1 WHERE name = $1 RETURNING change_seq`, realm).Scan(&seq)
	if err != nil {
		return s.mapErr("realm", err)
	}
	changed, err := fn(t, seq)
	if err != nil || !changed {
		return err
	}
	return s.mapErr("realm", t.commit(ctx))
}

// read runs fn in a read transaction: one consistent view of the database.
func (s *sqlStore) read(ctx context.Context, fn func(t tx) error) error {
	t, err := s.b.begin(ctx, false)
	if err != nil {
		return s.mapErr("realm", err)
	}
	defer t.rollback()
	return fn(t)
}

// ---- realms ----

const realmCols = `name, created_at, snapshot_version, policy_version, change_seq`

func scanRealm(r row) (Realm, error) {
	var (
		rl         Realm
		created    ts
		sv, pv, cs int64
	)
	if err := r.Scan(&rl.Name, &created, &sv, &pv, &cs); err != nil {
		return Realm{}, err
	}
	rl.CreatedAt, rl.SnapshotVersion, rl.PolicyVersion, rl.ChangeSeq = created.t, uint64(sv), uint64(pv), uint64(cs)
	return rl, nil
}

func (s *sqlStore) CreateRealm(ctx context.Context, name string, at time.Time) (Realm, error) {
	if err := validRealm("realm", name); err != nil {
		return Realm{}, err
	}
	if err := validTime("realm", "created_at", at); err != nil {
		return Realm{}, err
	}
	rl, err := scanRealm(s.b.pool(true).queryRow(ctx,
		`INSERT INTO realms (name, created_at) VALUES ($1, $2) RETURNING `+realmCols, name, norm(at)))
	return rl, s.mapErr("realm", err)
}

func (s *sqlStore) GetRealm(ctx context.Context, name string) (Realm, error) {
	if err := validRealm("realm", name); err != nil {
		return Realm{}, err
	}
	rl, err := scanRealm(s.b.pool(false).queryRow(ctx, `SELECT `+realmCols+` FROM realms WHERE name = $1`, name))
	return rl, s.mapErr("realm", err)
}

func (s *sqlStore) ListRealms(ctx context.Context) ([]Realm, error) {
	rs, err := s.b.pool(false).query(ctx, `SELECT `+realmCols+` FROM realms ORDER BY name`)
	if err != nil {
		return nil, s.mapErr("realm", err)
	}
	defer rs.Close()
	var out []Realm
	for rs.Next() {
		rl, err := scanRealm(rs)
		if err != nil {
			return nil, s.mapErr("realm", err)
		}
		out = append(out, rl)
	}
	return out, s.mapErr("realm", rs.Err())
}

func (s *sqlStore) Changed(ctx context.Context, realm string) (uint64, error) {
	if err := validRealm("realm", realm); err != nil {
		return 0, err
	}
	var seq int64
	err := s.b.pool(false).queryRow(ctx, `SELECT change_seq FROM realms WHERE name = $1`, realm).Scan(&seq)
	return uint64(seq), s.mapErr("realm", err)
}

// NextSnapshotVersion is one UPDATE … RETURNING: the row lock it takes orders concurrent
// callers on every replica, each of which reads the value the previous one committed.
func (s *sqlStore) NextSnapshotVersion(ctx context.Context, realm string) (uint64, error) {
	if err := validRealm("realm", realm); err != nil {
		return 0, err
	}
	var v int64
	err := s.b.pool(true).queryRow(ctx,
		`UPDATE realms SET snapshot_version = snapshot_version + 1 WHERE name = $1 RETURNING snapshot_version`, realm).Scan(&v)
	return uint64(v), s.mapErr("realm", err)
}

// ---- API keys ----

const keyCols = `id, realm, hash, prefix, last4, name, type, scopes, org, agents, created_at, expires_at, revoked_at, rotated_from, imported, admin, change_seq`

func scanKey(r row, k *APIKey) error {
	var (
		hash                      []byte
		scopes, agents            string
		created, expires, revoked ts
		seq                       int64
	)
	err := r.Scan(&k.ID, &k.Realm, &hash, &k.Prefix, &k.Last4, &k.Name, &k.Type, &scopes, &k.Org, &agents,
		&created, &expires, &revoked, &k.RotatedFrom, &k.Imported, &k.Admin, &seq)
	if err != nil {
		return err
	}
	if len(hash) != len(k.Hash) {
		return errors.New("store: stored key hash is not 32 bytes")
	}
	copy(k.Hash[:], hash)
	if k.Scopes, err = decodeList(scopes); err != nil {
		return err
	}
	if k.Agents, err = decodeList(agents); err != nil {
		return err
	}
	k.CreatedAt, k.ExpiresAt, k.RevokedAt, k.ChangeSeq = created.t, expires.ptr(), revoked.ptr(), uint64(seq)
	return nil
}

func insertKey(ctx context.Context, q querier, k *APIKey) error {
	return insertKeys(ctx, q, []APIKey{*k})
}

// keysPerInsert bounds the rows of one multi-row INSERT: 17 parameters each stays far below
// either database's limit on parameters per statement.
const keysPerInsert = 100

// insertKeys inserts keys with as few statements (round trips) as keysPerInsert allows.
func insertKeys(ctx context.Context, q querier, keys []APIKey) error {
	for len(keys) > 0 {
		n := min(len(keys), keysPerInsert)
		var (
			b strings.Builder
			a = make(sqlArgs, 0, 17*n)
		)
		b.WriteString(`INSERT INTO api_keys (` + keyCols + `) VALUES `)
		for i := range keys[:n] {
			k := &keys[i]
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString("(")
			for j, v := range []any{k.ID, k.Realm, k.Hash[:], k.Prefix, k.Last4, k.Name, k.Type, encodeList(k.Scopes),
				k.Org, encodeList(k.Agents), k.CreatedAt, nullTime(k.ExpiresAt), nullTime(k.RevokedAt), k.RotatedFrom,
				k.Imported, k.Admin, int64(k.ChangeSeq)} {
				if j > 0 {
					b.WriteString(", ")
				}
				b.WriteString(a.add(v))
			}
			b.WriteString(")")
		}
		if _, err := q.exec(ctx, b.String(), a...); err != nil {
			return err
		}
		keys = keys[n:]
	}
	return nil
}

// normKey returns k as it will be stored.
func normKey(k APIKey) APIKey {
	k.CreatedAt, k.ExpiresAt, k.RevokedAt = norm(k.CreatedAt), normPtr(k.ExpiresAt), normPtr(k.RevokedAt)
	if len(k.Scopes) == 0 {
		k.Scopes = nil
	}
	if len(k.Agents) == 0 {
		k.Agents = nil
	}
	return k
}

func (s *sqlStore) CreateKey(ctx context.Context, k APIKey) (APIKey, error) {
	if err := validKey(&k); err != nil {
		return APIKey{}, err
	}
	k = normKey(k)
	err := s.mutate(ctx, k.Realm, func(t tx, seq int64) (bool, error) {
		k.ChangeSeq = uint64(seq)
		return true, s.mapErr("key", insertKey(ctx, t, &k))
	})
	if err != nil {
		return APIKey{}, err
	}
	return k, nil
}

func (s *sqlStore) CreateKeys(ctx context.Context, realm string, keys []APIKey) error {
	if err := validRealm("key", realm); err != nil {
		return err
	}
	if len(keys) > MaxBatch {
		return invalid("key", "", "at most "+strconv.Itoa(MaxBatch)+" keys per batch")
	}
	if len(keys) == 0 {
		return nil
	}
	norms := make([]APIKey, len(keys))
	for i := range keys {
		k := keys[i]
		if k.Realm != realm {
			return invalid("key", "realm", "every key of a batch must be in its realm")
		}
		if err := validKey(&k); err != nil {
			return err
		}
		norms[i] = normKey(k)
	}
	return s.mutate(ctx, realm, func(t tx, seq int64) (bool, error) {
		for i := range norms {
			norms[i].ChangeSeq = uint64(seq)
		}
		return true, s.mapErr("key", insertKeys(ctx, t, norms))
	})
}

func (s *sqlStore) GetKey(ctx context.Context, realm, id string) (APIKey, error) {
	if err := validRealm("key", realm); err != nil {
		return APIKey{}, err
	}
	if err := validKeyID("id", id); err != nil {
		return APIKey{}, err
	}
	var k APIKey
	err := scanKey(s.b.pool(false).queryRow(ctx, `SELECT `+keyCols+` FROM api_keys WHERE realm = $1 AND id = $2`, realm, id), &k)
	return k, s.mapErr("key", err)
}

func (s *sqlStore) GetKeyByHash(ctx context.Context, realm string, hash apikey.Hash) (APIKey, error) {
	if err := validRealm("key", realm); err != nil {
		return APIKey{}, err
	}
	var k APIKey
	err := scanKey(s.b.pool(false).queryRow(ctx, `SELECT `+keyCols+` FROM api_keys WHERE realm = $1 AND hash = $2`, realm, hash[:]), &k)
	return k, s.mapErr("key", err)
}

// keyWhere renders f as a WHERE condition.
func keyWhere(realm string, f KeyFilter, a *sqlArgs) (string, error) {
	if err := validRealm("key", realm); err != nil {
		return "", err
	}
	for _, c := range []struct{ field, v string }{{"type", f.Type}, {"org", f.Org}, {"name_prefix", f.NamePrefix}} {
		if err := text("key_filter", c.field, c.v, 0, maxNameBytes); err != nil {
			return "", err
		}
	}
	var b strings.Builder
	b.WriteString("realm = " + a.add(realm))
	if f.Type != "" {
		b.WriteString(" AND type = " + a.add(f.Type))
	}
	if f.Org != "" {
		b.WriteString(" AND org = " + a.add(f.Org))
	}
	if f.NamePrefix != "" {
		// substr counts characters in both databases; LIKE would need escaping and is
		// case-insensitive in SQLite.
		n := a.add(int64(utf8.RuneCountInString(f.NamePrefix)))
		b.WriteString(" AND substr(name, 1, " + n + ") = " + a.add(f.NamePrefix))
	}
	if f.Admin != nil {
		b.WriteString(" AND admin = " + a.add(*f.Admin))
	}
	if !f.IncludeRevoked {
		if f.Now.IsZero() {
			b.WriteString(" AND revoked_at IS NULL")
		} else {
			b.WriteString(" AND (revoked_at IS NULL OR revoked_at > " + a.add(norm(f.Now)) + ")")
		}
	}
	return b.String(), nil
}

func (s *sqlStore) ListKeys(ctx context.Context, realm string, f KeyFilter, p Page) ([]APIKey, string, error) {
	limit, err := pageLimit("key", p)
	if err != nil {
		return nil, "", err
	}
	var a sqlArgs
	where, err := keyWhere(realm, f, &a)
	if err != nil {
		return nil, "", err
	}
	if p.Cursor != "" {
		micros, id, ok := decodeCursor(cursorKeys, p.Cursor, true)
		if !ok {
			return nil, "", invalid("key", "cursor", "not a cursor of this list")
		}
		at := time.UnixMicro(int64(micros)).UTC()
		where += " AND (created_at, id) > (" + a.add(at) + ", " + a.add(id) + ")"
	}
	q := `SELECT ` + keyCols + ` FROM api_keys WHERE ` + where + ` ORDER BY created_at, id LIMIT ` + a.add(int64(limit+1))
	rs, err := s.b.pool(false).query(ctx, q, a...)
	if err != nil {
		return nil, "", s.mapErr("key", err)
	}
	defer rs.Close()
	out := make([]APIKey, 0, min(limit, 64))
	for rs.Next() {
		var k APIKey
		if err := scanKey(rs, &k); err != nil {
			return nil, "", s.mapErr("key", err)
		}
		out = append(out, k)
	}
	if err := rs.Err(); err != nil {
		return nil, "", s.mapErr("key", err)
	}
	next := ""
	if len(out) > limit {
		out = out[:limit]
		last := out[limit-1]
		next = encodeCursor(cursorKeys, uint64(last.CreatedAt.UnixMicro()), last.ID)
	}
	return out, next, nil
}

func (s *sqlStore) CountKeys(ctx context.Context, realm string, f KeyFilter) (int, error) {
	var a sqlArgs
	where, err := keyWhere(realm, f, &a)
	if err != nil {
		return 0, err
	}
	var n int64
	err = s.b.pool(false).queryRow(ctx, `SELECT count(*) FROM api_keys WHERE `+where, a...).Scan(&n)
	return int(n), s.mapErr("key", err)
}

func (s *sqlStore) UpdateKey(ctx context.Context, realm, id string, u KeyUpdate) (APIKey, error) {
	if err := validRealm("key", realm); err != nil {
		return APIKey{}, err
	}
	if err := validKeyID("id", id); err != nil {
		return APIKey{}, err
	}
	var a sqlArgs
	a.add(realm)
	a.add(id)
	var set []string
	if u.Name != nil {
		if err := text("key", "name", *u.Name, 0, maxNameBytes); err != nil {
			return APIKey{}, err
		}
		set = append(set, "name = "+a.add(*u.Name))
	}
	if u.Scopes != nil {
		if err := validScopes(*u.Scopes); err != nil {
			return APIKey{}, err
		}
		set = append(set, "scopes = "+a.add(encodeList(*u.Scopes)))
	}
	if u.ExpiresAt != nil {
		if err := validOptTime("key", "expires_at", *u.ExpiresAt); err != nil {
			return APIKey{}, err
		}
		set = append(set, "expires_at = "+a.add(nullTime(*u.ExpiresAt)))
	}
	if len(set) == 0 {
		return s.GetKey(ctx, realm, id)
	}
	update := func(q querier) (APIKey, error) {
		var k APIKey
		err := scanKey(q.queryRow(ctx, `UPDATE api_keys SET `+strings.Join(set, ", ")+
			` WHERE realm = $1 AND id = $2 RETURNING `+keyCols, a...), &k)
		return k, s.mapErr("key", err)
	}
	if u.Scopes == nil && u.ExpiresAt == nil {
		// A name is not published: no change to announce.
		return update(s.b.pool(true))
	}
	var k APIKey
	err := s.mutate(ctx, realm, func(t tx, seq int64) (bool, error) {
		set = append(set, "change_seq = "+a.add(seq))
		var err error
		k, err = update(t)
		return err == nil, err
	})
	return k, err
}

func (s *sqlStore) RevokeKey(ctx context.Context, realm, id string, at time.Time) (APIKey, error) {
	if err := validRealm("key", realm); err != nil {
		return APIKey{}, err
	}
	if err := validKeyID("id", id); err != nil {
		return APIKey{}, err
	}
	if err := validTime("key", "revoked_at", at); err != nil {
		return APIKey{}, err
	}
	var k APIKey
	err := s.mutate(ctx, realm, func(t tx, seq int64) (bool, error) {
		err := scanKey(t.queryRow(ctx, `UPDATE api_keys SET revoked_at = $3, change_seq = $4
			WHERE realm = $1 AND id = $2 AND (revoked_at IS NULL OR revoked_at > $3) RETURNING `+keyCols,
			realm, id, norm(at), seq), &k)
		if err == nil {
			return true, nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return false, s.mapErr("key", err)
		}
		// Revoked no later than at already, or missing.
		return false, s.mapErr("key", scanKey(t.queryRow(ctx, `SELECT `+keyCols+` FROM api_keys WHERE realm = $1 AND id = $2`, realm, id), &k))
	})
	return k, err
}

func (s *sqlStore) RotateKey(ctx context.Context, realm, oldID string, nk APIKey, oldRevokeAt time.Time) (APIKey, APIKey, error) {
	if err := validRealm("key", realm); err != nil {
		return APIKey{}, APIKey{}, err
	}
	if err := validKeyID("id", oldID); err != nil {
		return APIKey{}, APIKey{}, err
	}
	if err := validTime("key", "revoked_at", oldRevokeAt); err != nil {
		return APIKey{}, APIKey{}, err
	}
	if nk.Realm != realm {
		return APIKey{}, APIKey{}, invalid("key", "realm", "the new key must be in the old key's realm")
	}
	if nk.RotatedFrom != "" && nk.RotatedFrom != oldID {
		return APIKey{}, APIKey{}, invalid("key", "rotated_from", "must be the rotated key's id")
	}
	nk.RotatedFrom = oldID
	if err := validKey(&nk); err != nil {
		return APIKey{}, APIKey{}, err
	}
	nk = normKey(nk)
	var old APIKey
	err := s.mutate(ctx, realm, func(t tx, seq int64) (bool, error) {
		err := scanKey(t.queryRow(ctx, `SELECT `+keyCols+` FROM api_keys WHERE realm = $1 AND id = $2`, realm, oldID), &old)
		if err != nil {
			return false, s.mapErr("key", err)
		}
		switch {
		case old.RevokedAt != nil:
			return false, conflict("key", "revoked_at", "the key is already revoked or rotated")
		case old.Type != nk.Type:
			return false, invalid("key", "type", "must be the rotated key's")
		case old.Org != nk.Org:
			return false, invalid("key", "org", "must be the rotated key's")
		case old.Admin != nk.Admin:
			return false, invalid("key", "admin", "must be the rotated key's")
		}
		err = scanKey(t.queryRow(ctx, `UPDATE api_keys SET revoked_at = $3, change_seq = $4
			WHERE realm = $1 AND id = $2 RETURNING `+keyCols, realm, oldID, norm(oldRevokeAt), seq), &old)
		if err != nil {
			return false, s.mapErr("key", err)
		}
		nk.ChangeSeq = uint64(seq)
		return true, s.mapErr("key", insertKey(ctx, t, &nk))
	})
	if err != nil {
		return APIKey{}, APIKey{}, err
	}
	return old, nk, nil
}

func (s *sqlStore) ActiveKeys(ctx context.Context, realm string, now time.Time, fn func(APIKey) error) (uint64, error) {
	return s.activeKeys(ctx, realm, now, false, func(k *APIKey) error { return fn(*k) })
}

// activeKeysWhere selects the keys ActiveKeys walks; $1 is the realm, $2 now.
const activeKeysWhere = ` FROM api_keys WHERE realm = $1 AND NOT admin AND (expires_at IS NULL OR expires_at > $2) AND (revoked_at IS NULL OR revoked_at > $2)`

// snapshotKeyCols are the columns ActiveSnapshotKeys reads: what a snapshot publishes.
const snapshotKeyCols = `hash, type, scopes, org, agents, expires_at, revoked_at`

// activeKeys walks the realm's active keys, whole (ActiveKeys) or as the snapshot builder
// needs them (slim). fn gets a pointer to a value reused for every row.
func (s *sqlStore) activeKeys(ctx context.Context, realm string, now time.Time, slim bool, fn func(*APIKey) error) (uint64, error) {
	if err := validRealm("key", realm); err != nil {
		return 0, err
	}
	if err := validTime("key", "now", now); err != nil {
		return 0, err
	}
	var seq int64
	err := s.read(ctx, func(t tx) error {
		if err := t.queryRow(ctx, `SELECT change_seq FROM realms WHERE name = $1`, realm).Scan(&seq); err != nil {
			return s.mapErr("realm", err)
		}
		cols := keyCols
		if slim {
			cols = snapshotKeyCols
		}
		rs, err := t.query(ctx, `SELECT `+cols+activeKeysWhere, realm, norm(now))
		if err != nil {
			return s.mapErr("key", err)
		}
		defer rs.Close()
		var (
			k  APIKey
			sc slimScanner
		)
		for rs.Next() {
			if slim {
				err = sc.scan(rs, &k)
			} else {
				k = APIKey{}
				err = scanKey(rs, &k)
			}
			if err != nil {
				return s.mapErr("key", err)
			}
			if err := fn(&k); err != nil {
				return err
			}
		}
		return s.mapErr("key", rs.Err())
	})
	if err != nil {
		return 0, err
	}
	return uint64(seq), nil
}

// slimScanner reads snapshotKeyCols rows. Keys of a realm share a handful of scope and agent
// lists, so the decoded lists are cached by their stored text and shared between keys.
type slimScanner struct {
	hash                   []byte
	scopes, agents         string
	expires, revoked       ts
	lastScopes, lastAgents string
	scopeList, agentList   []string
	lists                  map[string][]string
}

func (sc *slimScanner) list(s string, last *string, cached *[]string) ([]string, error) {
	if s == *last && *last != "" {
		return *cached, nil
	}
	l, ok := sc.lists[s]
	if !ok {
		var err error
		if l, err = decodeList(s); err != nil {
			return nil, err
		}
		if sc.lists == nil {
			sc.lists = map[string][]string{}
		}
		if len(sc.lists) < 4096 {
			sc.lists[s] = l
		}
	}
	*last, *cached = s, l
	return l, nil
}

func (sc *slimScanner) scan(r row, k *APIKey) error {
	if err := r.Scan(&sc.hash, &k.Type, &sc.scopes, &k.Org, &sc.agents, &sc.expires, &sc.revoked); err != nil {
		return err
	}
	if len(sc.hash) != len(k.Hash) {
		return errors.New("store: stored key hash is not 32 bytes")
	}
	copy(k.Hash[:], sc.hash)
	var err error
	if k.Scopes, err = sc.list(sc.scopes, &sc.lastScopes, &sc.scopeList); err != nil {
		return err
	}
	if k.Agents, err = sc.list(sc.agents, &sc.lastAgents, &sc.agentList); err != nil {
		return err
	}
	k.ExpiresAt, k.RevokedAt = sc.expires.ptr(), sc.revoked.ptr()
	return nil
}

// ActiveSnapshotKeys is ActiveKeys for the snapshot builder, which needs only what a snapshot
// publishes: fn gets keys with Realm, Hash, Type, Scopes, Org, Agents, ExpiresAt and RevokedAt
// set and the other fields zero (ID too: Hash.ID() is the key's id). The *APIKey is reused for
// the next row, so fn copies what it keeps of it (the strings and slices it holds stay valid);
// Scopes and Agents may be shared between keys, so fn must not modify them. Reading 7 columns
// instead of 17 halves the time of a million-key read on SQLite, whose driver costs per
// column. A Store from another package gets ActiveKeys' keys.
func ActiveSnapshotKeys(ctx context.Context, st Store, realm string, now time.Time, fn func(*APIKey) error) (uint64, error) {
	if s, ok := st.(*sqlStore); ok {
		return s.activeKeys(ctx, realm, now, true, func(k *APIKey) error { k.Realm = realm; return fn(k) })
	}
	return st.ActiveKeys(ctx, realm, now, func(k APIKey) error { return fn(&k) })
}

func (s *sqlStore) KeyChangesSince(ctx context.Context, realm string, since uint64, now time.Time, limit int) (KeyChanges, error) {
	if err := validRealm("key", realm); err != nil {
		return KeyChanges{}, err
	}
	if err := validTime("key", "now", now); err != nil {
		return KeyChanges{}, err
	}
	if limit < 0 {
		return KeyChanges{}, invalid("key", "limit", "must not be negative")
	}
	if since > 1<<63-1 {
		return KeyChanges{}, invalid("key", "since", "out of range")
	}
	now = norm(now)
	var c KeyChanges
	err := s.read(ctx, func(t tx) error {
		var seq int64
		if err := t.queryRow(ctx, `SELECT change_seq FROM realms WHERE name = $1`, realm).Scan(&seq); err != nil {
			return s.mapErr("realm", err)
		}
		c.Seq = uint64(seq)
		a := sqlArgs{realm, int64(since)}
		q := `SELECT ` + keyCols + ` FROM api_keys WHERE realm = $1 AND change_seq > $2 AND NOT admin ORDER BY change_seq, id`
		if limit > 0 {
			q += ` LIMIT ` + a.add(int64(limit+1))
		}
		rs, err := t.query(ctx, q, a...)
		if err != nil {
			return s.mapErr("key", err)
		}
		defer rs.Close()
		n := 0
		for rs.Next() {
			if n++; limit > 0 && n > limit {
				c.Upserted, c.Removed, c.Truncated = nil, nil, true
				return nil
			}
			var k APIKey
			if err := scanKey(rs, &k); err != nil {
				return s.mapErr("key", err)
			}
			if k.ActiveAt(now) {
				c.Upserted = append(c.Upserted, k)
			} else {
				c.Removed = append(c.Removed, k.Hash)
			}
		}
		return s.mapErr("key", rs.Err())
	})
	if err != nil {
		return KeyChanges{}, err
	}
	return c, nil
}

// ---- signing keys ----

const signingKeyCols = `kid, realm, alg, public_key, private_sealed, created_at, retired_at, not_after`

func scanSigningKey(r row, k *SigningKey) error {
	var created, retired, notAfter ts
	if err := r.Scan(&k.KID, &k.Realm, &k.Alg, &k.Public, &k.PrivateSealed, &created, &retired, &notAfter); err != nil {
		return err
	}
	if len(k.PrivateSealed) == 0 {
		k.PrivateSealed = nil
	}
	k.CreatedAt, k.RetiredAt, k.NotAfter = created.t, retired.ptr(), notAfter.ptr()
	return nil
}

func normSigningKey(k SigningKey) SigningKey {
	k.CreatedAt, k.RetiredAt, k.NotAfter = norm(k.CreatedAt), normPtr(k.RetiredAt), normPtr(k.NotAfter)
	k.Public = append([]byte(nil), k.Public...)
	if len(k.PrivateSealed) == 0 {
		k.PrivateSealed = nil
	} else {
		k.PrivateSealed = append([]byte(nil), k.PrivateSealed...)
	}
	return k
}

func insertSigningKey(ctx context.Context, q querier, k *SigningKey) error {
	sealed := k.PrivateSealed
	if sealed == nil {
		sealed = []byte{} // the column is NOT NULL; a nil slice would bind as NULL
	}
	_, err := q.exec(ctx, `INSERT INTO signing_keys (`+signingKeyCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		k.KID, k.Realm, k.Alg, k.Public, sealed, k.CreatedAt, nullTime(k.RetiredAt), nullTime(k.NotAfter))
	return err
}

func (s *sqlStore) CreateSigningKey(ctx context.Context, k SigningKey) (SigningKey, error) {
	if err := validSigningKey(&k); err != nil {
		return SigningKey{}, err
	}
	k = normSigningKey(k)
	err := s.mutate(ctx, k.Realm, func(t tx, _ int64) (bool, error) {
		return true, s.mapErr("signing_key", insertSigningKey(ctx, t, &k))
	})
	if err != nil {
		return SigningKey{}, err
	}
	return k, nil
}

func (s *sqlStore) ListSigningKeys(ctx context.Context, realm string) ([]SigningKey, error) {
	if err := validRealm("signing_key", realm); err != nil {
		return nil, err
	}
	rs, err := s.b.pool(false).query(ctx, `SELECT `+signingKeyCols+` FROM signing_keys WHERE realm = $1 ORDER BY created_at, kid`, realm)
	if err != nil {
		return nil, s.mapErr("signing_key", err)
	}
	defer rs.Close()
	var out []SigningKey
	for rs.Next() {
		var k SigningKey
		if err := scanSigningKey(rs, &k); err != nil {
			return nil, s.mapErr("signing_key", err)
		}
		out = append(out, k)
	}
	return out, s.mapErr("signing_key", rs.Err())
}

func (s *sqlStore) ActiveSigningKey(ctx context.Context, realm string) (SigningKey, error) {
	if err := validRealm("signing_key", realm); err != nil {
		return SigningKey{}, err
	}
	var k SigningKey
	err := scanSigningKey(s.b.pool(false).queryRow(ctx,
		`SELECT `+signingKeyCols+` FROM signing_keys WHERE realm = $1 AND retired_at IS NULL`, realm), &k)
	return k, s.mapErr("signing_key", err)
}

func (s *sqlStore) RetireSigningKey(ctx context.Context, realm, kid string, at, notAfter time.Time) (SigningKey, error) {
	if err := validRealm("signing_key", realm); err != nil {
		return SigningKey{}, err
	}
	if err := text("signing_key", "kid", kid, 1, limits.MaxIDBytes); err != nil {
		return SigningKey{}, err
	}
	if err := validRetire(at, notAfter); err != nil {
		return SigningKey{}, err
	}
	var k SigningKey
	err := s.mutate(ctx, realm, func(t tx, _ int64) (bool, error) {
		err := scanSigningKey(t.queryRow(ctx, `UPDATE signing_keys SET retired_at = $3, not_after = $4
			WHERE realm = $1 AND kid = $2 AND retired_at IS NULL RETURNING `+signingKeyCols,
			realm, kid, norm(at), norm(notAfter)), &k)
		if err == nil {
			return true, nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return false, s.mapErr("signing_key", err)
		}
		return false, s.mapErr("signing_key", scanSigningKey(t.queryRow(ctx,
			`SELECT `+signingKeyCols+` FROM signing_keys WHERE realm = $1 AND kid = $2`, realm, kid), &k))
	})
	return k, err
}

func validRetire(at, notAfter time.Time) error {
	if err := validTime("signing_key", "retired_at", at); err != nil {
		return err
	}
	if err := validTime("signing_key", "not_after", notAfter); err != nil {
		return err
	}
	if notAfter.Before(at) {
		return invalid("signing_key", "not_after", "must not be before retired_at")
	}
	return nil
}

func (s *sqlStore) RotateSigningKey(ctx context.Context, realm, oldKID string, nk SigningKey, oldNotAfter time.Time) (SigningKey, SigningKey, error) {
	if err := validRealm("signing_key", realm); err != nil {
		return SigningKey{}, SigningKey{}, err
	}
	if err := text("signing_key", "kid", oldKID, 1, limits.MaxIDBytes); err != nil {
		return SigningKey{}, SigningKey{}, err
	}
	if nk.Realm != realm {
		return SigningKey{}, SigningKey{}, invalid("signing_key", "realm", "the new key must be in the old key's realm")
	}
	if nk.RetiredAt != nil {
		return SigningKey{}, SigningKey{}, invalid("signing_key", "retired_at", "the new key must be active")
	}
	if err := validSigningKey(&nk); err != nil {
		return SigningKey{}, SigningKey{}, err
	}
	if err := validRetire(nk.CreatedAt, oldNotAfter); err != nil {
		return SigningKey{}, SigningKey{}, err
	}
	nk = normSigningKey(nk)
	var old SigningKey
	err := s.mutate(ctx, realm, func(t tx, _ int64) (bool, error) {
		err := scanSigningKey(t.queryRow(ctx, `UPDATE signing_keys SET retired_at = $3, not_after = $4
			WHERE realm = $1 AND kid = $2 AND retired_at IS NULL RETURNING `+signingKeyCols,
			realm, oldKID, nk.CreatedAt, norm(oldNotAfter)), &old)
		if errors.Is(err, sql.ErrNoRows) {
			err = scanSigningKey(t.queryRow(ctx, `SELECT `+signingKeyCols+` FROM signing_keys WHERE realm = $1 AND kid = $2`, realm, oldKID), &old)
			if err == nil {
				return false, conflict("signing_key", "retired_at", "the key is already retired")
			}
		}
		if err != nil {
			return false, s.mapErr("signing_key", err)
		}
		return true, s.mapErr("signing_key", insertSigningKey(ctx, t, &nk))
	})
	if err != nil {
		return SigningKey{}, SigningKey{}, err
	}
	return old, nk, nil
}

// ---- org states ----

const orgCols = `realm, org, state, updated_at`

func scanOrg(r row) (OrgState, error) {
	var (
		o       OrgState
		updated ts
	)
	if err := r.Scan(&o.Realm, &o.Org, &o.State, &updated); err != nil {
		return OrgState{}, err
	}
	o.UpdatedAt = updated.t
	return o, nil
}

// SetOrgState leaves UpdatedAt alone when the state does not change: it says since when
// the org has been in its state, and an unchanged state is no change to publish.
func (s *sqlStore) SetOrgState(ctx context.Context, o OrgState) (OrgState, error) {
	if err := validOrgState(&o); err != nil {
		return OrgState{}, err
	}
	o.UpdatedAt = norm(o.UpdatedAt)
	var out OrgState
	err := s.mutate(ctx, o.Realm, func(t tx, _ int64) (bool, error) {
		var err error
		out, err = scanOrg(t.queryRow(ctx, `INSERT INTO org_states (`+orgCols+`) VALUES ($1, $2, $3, $4)
			ON CONFLICT (realm, org) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at
			WHERE org_states.state <> excluded.state RETURNING `+orgCols, o.Realm, o.Org, o.State, o.UpdatedAt))
		if err == nil {
			return true, nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return false, s.mapErr("org_state", err)
		}
		out, err = scanOrg(t.queryRow(ctx, `SELECT `+orgCols+` FROM org_states WHERE realm = $1 AND org = $2`, o.Realm, o.Org))
		return false, s.mapErr("org_state", err)
	})
	return out, err
}

func (s *sqlStore) GetOrgState(ctx context.Context, realm, org string) (OrgState, error) {
	if err := validRealm("org_state", realm); err != nil {
		return OrgState{}, err
	}
	if err := text("org_state", "org", org, 1, limits.MaxIDBytes); err != nil {
		return OrgState{}, err
	}
	o, err := scanOrg(s.b.pool(false).queryRow(ctx, `SELECT `+orgCols+` FROM org_states WHERE realm = $1 AND org = $2`, realm, org))
	return o, s.mapErr("org_state", err)
}

func (s *sqlStore) ListOrgStates(ctx context.Context, realm string) ([]OrgState, error) {
	if err := validRealm("org_state", realm); err != nil {
		return nil, err
	}
	rs, err := s.b.pool(false).query(ctx, `SELECT `+orgCols+` FROM org_states WHERE realm = $1 ORDER BY org`, realm)
	if err != nil {
		return nil, s.mapErr("org_state", err)
	}
	defer rs.Close()
	var out []OrgState
	for rs.Next() {
		o, err := scanOrg(rs)
		if err != nil {
			return nil, s.mapErr("org_state", err)
		}
		out = append(out, o)
	}
	return out, s.mapErr("org_state", rs.Err())
}

// ---- policies ----

const policyCols = `realm, version, yaml, created_at, created_by`

func scanPolicy(r row) (Policy, error) {
	var (
		p       Policy
		version int64
		created ts
	)
	if err := r.Scan(&p.Realm, &version, &p.YAML, &created, &p.CreatedBy); err != nil {
		return Policy{}, err
	}
	p.Version, p.CreatedAt = uint64(version), created.t
	return p, nil
}

func (s *sqlStore) PutPolicy(ctx context.Context, p Policy) (Policy, error) {
	if err := validPolicy(&p); err != nil {
		return Policy{}, err
	}
	p.CreatedAt = norm(p.CreatedAt)
	p.YAML = append([]byte(nil), p.YAML...)
	err := s.mutate(ctx, p.Realm, func(t tx, _ int64) (bool, error) {
		// The realm's row is locked by mutate, so the increment cannot race.
		var v int64
		err := t.queryRow(ctx, `UPDATE realms SET policy_version = policy_version + 1 WHERE name = $1 RETURNING policy_version`, p.Realm).Scan(&v)
		if err != nil {
			return false, s.mapErr("realm", err)
		}
		p.Version = uint64(v)
		_, err = t.exec(ctx, `INSERT INTO policies (`+policyCols+`) VALUES ($1, $2, $3, $4, $5)`, p.Realm, v, p.YAML, p.CreatedAt, p.CreatedBy)
		return true, s.mapErr("policy", err)
	})
	if err != nil {
		return Policy{}, err
	}
	return p, nil
}

func (s *sqlStore) LatestPolicy(ctx context.Context, realm string) (Policy, error) {
	if err := validRealm("policy", realm); err != nil {
		return Policy{}, err
	}
	p, err := scanPolicy(s.b.pool(false).queryRow(ctx,
		`SELECT `+policyCols+` FROM policies WHERE realm = $1 ORDER BY version DESC LIMIT 1`, realm))
	return p, s.mapErr("policy", err)
}

func (s *sqlStore) GetPolicy(ctx context.Context, realm string, version uint64) (Policy, error) {
	if err := validRealm("policy", realm); err != nil {
		return Policy{}, err
	}
	if version == 0 || version > 1<<63-1 {
		return Policy{}, invalid("policy", "version", "out of range")
	}
	p, err := scanPolicy(s.b.pool(false).queryRow(ctx,
		`SELECT `+policyCols+` FROM policies WHERE realm = $1 AND version = $2`, realm, int64(version)))
	return p, s.mapErr("policy", err)
}

func (s *sqlStore) ListPolicies(ctx context.Context, realm string, pg Page) ([]Policy, string, error) {
	if err := validRealm("policy", realm); err != nil {
		return nil, "", err
	}
	limit, err := pageLimit("policy", pg)
	if err != nil {
		return nil, "", err
	}
	var after uint64
	if pg.Cursor != "" {
		var ok bool
		if after, _, ok = decodeCursor(cursorPolicies, pg.Cursor, false); !ok || after > 1<<63-1 {
			return nil, "", invalid("policy", "cursor", "not a cursor of this list")
		}
	}
	rs, err := s.b.pool(false).query(ctx, `SELECT `+policyCols+` FROM policies WHERE realm = $1 AND version > $2
		ORDER BY version LIMIT $3`, realm, int64(after), int64(limit+1))
	if err != nil {
		return nil, "", s.mapErr("policy", err)
	}
	defer rs.Close()
	var out []Policy
	for rs.Next() {
		p, err := scanPolicy(rs)
		if err != nil {
			return nil, "", s.mapErr("policy", err)
		}
		out = append(out, p)
	}
	if err := rs.Err(); err != nil {
		return nil, "", s.mapErr("policy", err)
	}
	next := ""
	if len(out) > limit {
		out = out[:limit]
		next = encodeCursor(cursorPolicies, out[limit-1].Version, "")
	}
	return out, next, nil
}

// ---- revocations ----

const revocationCols = `realm, kind, value, until_at, created_at`

func scanRevocation(r row) (Revocation, error) {
	var (
		v              Revocation
		until, created ts
	)
	if err := r.Scan(&v.Realm, &v.Kind, &v.Value, &until, &created); err != nil {
		return Revocation{}, err
	}
	v.Until, v.CreatedAt = until.t, created.t
	return v, nil
}

func (s *sqlStore) AddRevocation(ctx context.Context, r Revocation) (Revocation, error) {
	if err := validRevocation(&r); err != nil {
		return Revocation{}, err
	}
	r.Until, r.CreatedAt = norm(r.Until), norm(r.CreatedAt)
	var out Revocation
	err := s.mutate(ctx, r.Realm, func(t tx, _ int64) (bool, error) {
		var err error
		out, err = scanRevocation(t.queryRow(ctx, `INSERT INTO revocations (`+revocationCols+`) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (realm, kind, value) DO UPDATE SET until_at = excluded.until_at
			WHERE revocations.until_at < excluded.until_at RETURNING `+revocationCols,
			r.Realm, r.Kind, r.Value, r.Until, r.CreatedAt))
		if err == nil {
			return true, nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return false, s.mapErr("revocation", err)
		}
		out, err = scanRevocation(t.queryRow(ctx, `SELECT `+revocationCols+` FROM revocations
			WHERE realm = $1 AND kind = $2 AND value = $3`, r.Realm, r.Kind, r.Value))
		return false, s.mapErr("revocation", err)
	})
	return out, err
}

func (s *sqlStore) ListRevocations(ctx context.Context, realm string, now time.Time) ([]Revocation, error) {
	if err := validRealm("revocation", realm); err != nil {
		return nil, err
	}
	if err := validTime("revocation", "now", now); err != nil {
		return nil, err
	}
	rs, err := s.b.pool(false).query(ctx, `SELECT `+revocationCols+` FROM revocations
		WHERE realm = $1 AND until_at > $2 ORDER BY kind, value`, realm, norm(now))
	if err != nil {
		return nil, s.mapErr("revocation", err)
	}
	defer rs.Close()
	var out []Revocation
	for rs.Next() {
		v, err := scanRevocation(rs)
		if err != nil {
			return nil, s.mapErr("revocation", err)
		}
		out = append(out, v)
	}
	return out, s.mapErr("revocation", rs.Err())
}

func (s *sqlStore) PruneRevocations(ctx context.Context, before time.Time) (int64, error) {
	if err := validTime("revocation", "before", before); err != nil {
		return 0, err
	}
	n, err := s.b.pool(true).exec(ctx, `DELETE FROM revocations WHERE until_at <= $1`, norm(before))
	return n, s.mapErr("revocation", err)
}

// ---- audit ----

const auditCols = `id, realm, at, actor, action, target, detail`

func scanAudit(r row) (AuditEvent, error) {
	var (
		e      AuditEvent
		id     int64
		at     ts
		detail string
	)
	if err := r.Scan(&id, &e.Realm, &at, &e.Actor, &e.Action, &e.Target, &detail); err != nil {
		return AuditEvent{}, err
	}
	e.ID, e.At = uint64(id), at.t
	if detail != "{}" {
		if err := json.Unmarshal([]byte(detail), &e.Detail); err != nil {
			return AuditEvent{}, errors.New("store: malformed audit detail in database")
		}
		if len(e.Detail) == 0 {
			e.Detail = nil
		}
	}
	return e, nil
}

// AppendAudit takes no realm lock: the audit log is not published, and appends should not
// wait behind key writes. IDs come from the database (AUTOINCREMENT, an identity column), so
// they increase across replicas; on PostgreSQL two concurrent appends may commit in the
// other order than their IDs.
func (s *sqlStore) AppendAudit(ctx context.Context, e AuditEvent) (AuditEvent, error) {
	if err := validAudit(&e); err != nil {
		return AuditEvent{}, err
	}
	e.At = norm(e.At)
	detail := "{}"
	if len(e.Detail) > 0 {
		b, _ := json.Marshal(e.Detail) // a map[string]string always marshals
		detail = string(b)
	}
	out, err := scanAudit(s.b.pool(true).queryRow(ctx, `INSERT INTO audit_events (realm, at, actor, action, target, detail)
		VALUES ($1, $2, $3, $4, $5, $6) RETURNING `+auditCols, e.Realm, e.At, e.Actor, e.Action, e.Target, detail))
	return out, s.mapErr("audit_event", err)
}

func (s *sqlStore) ListAudit(ctx context.Context, realm string, f AuditFilter, p Page) ([]AuditEvent, string, error) {
	if err := validRealm("audit_event", realm); err != nil {
		return nil, "", err
	}
	limit, err := pageLimit("audit_event", p)
	if err != nil {
		return nil, "", err
	}
	if err := text("audit_filter", "action", f.Action, 0, limits.MaxIDBytes); err != nil {
		return nil, "", err
	}
	if err := text("audit_filter", "target", f.Target, 0, maxAuditTargetBytes); err != nil {
		return nil, "", err
	}
	a := sqlArgs{realm}
	where := "realm = $1"
	if f.Action != "" {
		where += " AND action = " + a.add(f.Action)
	}
	if f.Target != "" {
		where += " AND target = " + a.add(f.Target)
	}
	if !f.Since.IsZero() {
		if err := validTime("audit_filter", "since", f.Since); err != nil {
			return nil, "", err
		}
		where += " AND at >= " + a.add(norm(f.Since))
	}
	if p.Cursor != "" {
		after, _, ok := decodeCursor(cursorAudit, p.Cursor, false)
		if !ok || after > 1<<63-1 {
			return nil, "", invalid("audit_event", "cursor", "not a cursor of this list")
		}
		where += " AND id > " + a.add(int64(after))
	}
	rs, err := s.b.pool(false).query(ctx, `SELECT `+auditCols+` FROM audit_events WHERE `+where+
		` ORDER BY id LIMIT `+a.add(int64(limit+1)), a...)
	if err != nil {
		return nil, "", s.mapErr("audit_event", err)
	}
	defer rs.Close()
	var out []AuditEvent
	for rs.Next() {
		e, err := scanAudit(rs)
		if err != nil {
			return nil, "", s.mapErr("audit_event", err)
		}
		out = append(out, e)
	}
	if err := rs.Err(); err != nil {
		return nil, "", s.mapErr("audit_event", err)
	}
	next := ""
	if len(out) > limit {
		out = out[:limit]
		next = encodeCursor(cursorAudit, out[limit-1].ID, "")
	}
	return out, next, nil
}

func (s *sqlStore) Ping(ctx context.Context) error { return s.b.ping(ctx) }

func (s *sqlStore) Close() error { return s.b.close() }
