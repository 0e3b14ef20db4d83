// Package store is the control plane's persistence: realms, API keys, signing keys, org
// states, policies, revocations and the audit log, behind one Store interface with two
// implementations, SQLite (the embedded default) and PostgreSQL (several replicas on one
// database). Everything that must be unique or ordered is enforced by the database, so
// replicas need no coordination of their own.
package store

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/latchkeyhq/latchkey/shared/apikey"
)

// Store persists one control plane's state. Every entity belongs to a realm; a realm must
// be created before anything is stored in it. All times are UTC with microsecond precision:
// a value read back equals the value written after time.Time.Truncate(time.Microsecond).
//
// Change feed: every mutation that changes what a realm's snapshot contains (keys, signing
// keys, org states, policies, revocations) increments the realm's change sequence in the
// same transaction, so Changed tells a publisher whether to rebuild. A builder that reads
// Changed first and the data afterwards never misses a change: the data is at least as new
// as the sequence it recorded. Per realm, change sequences commit in order, so
// KeyChangesSince never skips a change that commits late.
type Store interface {
	// CreateRealm creates a realm; an existing name gives a *Error matching ErrConflict.
	CreateRealm(ctx context.Context, name string, at time.Time) (Realm, error)
	GetRealm(ctx context.Context, name string) (Realm, error)
	ListRealms(ctx context.Context) ([]Realm, error)
	// Changed returns the realm's change sequence (0 before the first change).
	Changed(ctx context.Context, realm string) (uint64, error)
	// NextSnapshotVersion increments and returns the realm's snapshot version. Versions are
	// strictly increasing across every replica sharing the database; a version handed out
	// for a publication that then fails is never handed out again.
	NextSnapshotVersion(ctx context.Context, realm string) (uint64, error)

	// CreateKey stores a new key and returns it as stored. k.ID must be k.Hash.ID() in text
	// form. A taken id or hash gives a *Error matching ErrConflict with Field "id" or "hash".
	CreateKey(ctx context.Context, k APIKey) (APIKey, error)
	// CreateKeys stores up to MaxBatch keys of one realm in one transaction, all or none:
	// the way to import a platform's existing keys by hash. Conflicts are reported as by
	// CreateKey, for the first taken key the database finds.
	CreateKeys(ctx context.Context, realm string, keys []APIKey) error
	GetKey(ctx context.Context, realm, id string) (APIKey, error)
	GetKeyByHash(ctx context.Context, realm string, hash apikey.Hash) (APIKey, error)
	// ListKeys returns a page of keys in (CreatedAt, ID) order and the cursor of the next
	// page ("" after the last). The cursor is a position, not an offset: keys inserted while
	// paging never make a later page repeat or skip a key that existed when paging began.
	ListKeys(ctx context.Context, realm string, f KeyFilter, p Page) ([]APIKey, string, error)
	CountKeys(ctx context.Context, realm string, f KeyFilter) (int, error)
	// UpdateKey applies the non-nil fields of u and returns the updated key.
	UpdateKey(ctx context.Context, realm, id string, u KeyUpdate) (APIKey, error)
	// RevokeKey sets the key's revocation time. The earliest revocation wins: revoking again
	// keeps an earlier time, but revoking a key whose scheduled revocation (a rotation's
	// grace period) lies later brings it forward to at.
	RevokeKey(ctx context.Context, realm, id string, at time.Time) (APIKey, error)
	// RotateKey, in one transaction, schedules the revocation of oldID at oldRevokeAt and
	// creates newKey (RotatedFrom = oldID, same Type, Org and Admin as the old key). A key
	// that is already revoked, or scheduled to be, gives ErrConflict with Field "revoked_at";
	// on any error nothing changes.
	RotateKey(ctx context.Context, realm, oldID string, newKey APIKey, oldRevokeAt time.Time) (old, created APIKey, err error)
	// ActiveKeys calls fn for each non-admin key usable at now (not expired, not revoked at
	// or before now), streaming rows rather than collecting them. The order is unspecified:
	// storage order is the cheapest to read, and the snapshot builder sorts anyway. It returns
	// the change sequence the rows are consistent with. An error from fn stops the walk and
	// is returned as is. fn runs inside a read transaction that holds a pooled connection
	// (and, on PostgreSQL, an MVCC snapshot): it may call the store, but should not linger.
	ActiveKeys(ctx context.Context, realm string, now time.Time, fn func(APIKey) error) (seq uint64, err error)
	// KeyChangesSince returns the non-admin keys changed after change sequence since, split
	// into those usable at now and the hashes of those that are not (revoked or expired). When
	// more than limit keys changed (limit > 0) it returns none and sets Truncated: a full
	// snapshot is then cheaper than a delta.
	KeyChangesSince(ctx context.Context, realm string, since uint64, now time.Time, limit int) (KeyChanges, error)

	// CreateSigningKey stores a signing key. A realm has at most one active (unretired)
	// key: creating a second gives ErrConflict with Field "active"; use RotateSigningKey.
	CreateSigningKey(ctx context.Context, k SigningKey) (SigningKey, error)
	// ListSigningKeys returns every key of the realm, retired ones included, oldest first.
	ListSigningKeys(ctx context.Context, realm string) ([]SigningKey, error)
	// ActiveSigningKey returns the realm's unretired key, ErrNotFound when there is none.
	ActiveSigningKey(ctx context.Context, realm string) (SigningKey, error)
	// RetireSigningKey retires a key at at; its public key stays published until notAfter.
	// Retiring a retired key changes nothing and returns it.
	RetireSigningKey(ctx context.Context, realm, kid string, at, notAfter time.Time) (SigningKey, error)
	// RotateSigningKey, in one transaction, retires oldKID at newKey.CreatedAt (published
	// until oldNotAfter) and creates newKey as the active key, so there is never a moment
	// without an active key. oldKID must be the active key.
	RotateSigningKey(ctx context.Context, realm, oldKID string, newKey SigningKey, oldNotAfter time.Time) (old, created SigningKey, err error)

	// SetOrgState creates or replaces an org's state.
	SetOrgState(ctx context.Context, s OrgState) (OrgState, error)
	GetOrgState(ctx context.Context, realm, org string) (OrgState, error)
	ListOrgStates(ctx context.Context, realm string) ([]OrgState, error)

	// PutPolicy stores a new policy version; Version is assigned (1, 2, 3, … per realm) in
	// the transaction and returned.
	PutPolicy(ctx context.Context, p Policy) (Policy, error)
	LatestPolicy(ctx context.Context, realm string) (Policy, error)
	GetPolicy(ctx context.Context, realm string, version uint64) (Policy, error)
	// ListPolicies returns a page of versions in ascending order.
	ListPolicies(ctx context.Context, realm string, p Page) ([]Policy, string, error)

	// AddRevocation records a revoked jti or session. Adding it again changes nothing,
	// except that a later Until extends it (a retry never shortens a revocation).
	AddRevocation(ctx context.Context, r Revocation) (Revocation, error)
	// ListRevocations returns the realm's revocations with Until after now.
	ListRevocations(ctx context.Context, realm string, now time.Time) ([]Revocation, error)
	// PruneRevocations deletes, in every realm, revocations with Until at or before before,
	// and returns how many. It does not count as a change: ListRevocations already omits them
	// for any now at or after before.
	PruneRevocations(ctx context.Context, before time.Time) (int64, error)

	// AppendAudit stores an event and returns it with its ID, which increases with every
	// append to the store. The store does not inspect Detail: callers must never put a
	// secret (a key, a token, a sealed credential) in it.
	AppendAudit(ctx context.Context, e AuditEvent) (AuditEvent, error)
	// ListAudit returns a page of the realm's events in ID order.
	ListAudit(ctx context.Context, realm string, f AuditFilter, p Page) ([]AuditEvent, string, error)

	Ping(ctx context.Context) error
	Close() error
}

// Realm is an isolated deployment with its own keys, policy and snapshot stream.
type Realm struct {
	Name      string
	CreatedAt time.Time
	// SnapshotVersion is the last version NextSnapshotVersion handed out.
	SnapshotVersion uint64
	// PolicyVersion is the latest policy version (0: none yet).
	PolicyVersion uint64
	// ChangeSeq is the change sequence (see Store).
	ChangeSeq uint64
}

// APIKey is a stored API key: everything but the secret, of which only the hash is kept.
type APIKey struct {
	ID        string // Hash.ID() in text form: "key_" + 20 hex
	Realm     string
	Hash      apikey.Hash
	Prefix    string
	Last4     string
	Name      string
	Type      string // key type name from the realm's policy
	Scopes    []string
	Org       string
	Agents    []string
	CreatedAt time.Time
	ExpiresAt *time.Time
	// RevokedAt is when the key stops working; a future time is a rotation's grace period.
	RevokedAt   *time.Time
	RotatedFrom string
	Imported    bool // created from a hash, its plaintext never seen
	Admin       bool // authenticates to the control plane, never published to the edge
	// ChangeSeq is the change sequence of the key's last change that a snapshot can see.
	ChangeSeq uint64
}

// ActiveAt reports whether the key works at now: not expired and not revoked.
func (k *APIKey) ActiveAt(now time.Time) bool {
	return (k.ExpiresAt == nil || k.ExpiresAt.After(now)) && (k.RevokedAt == nil || k.RevokedAt.After(now))
}

// KeyFilter selects keys for ListKeys and CountKeys; zero fields select everything.
type KeyFilter struct {
	Type       string
	Org        string
	NamePrefix string
	// IncludeRevoked also selects keys revoked at or before Now. Keys whose revocation is
	// still ahead of Now (a rotation's grace period) work, and are always selected. With a
	// zero Now every key with a revocation time counts as revoked.
	IncludeRevoked bool
	Now            time.Time
	Admin          *bool
}

// KeyUpdate names the fields UpdateKey changes; nil leaves a field as it is. ExpiresAt
// pointing at a nil *time.Time removes the expiry.
type KeyUpdate struct {
	Name      *string
	Scopes    *[]string
	ExpiresAt **time.Time
}

// KeyChanges is what changed among a realm's keys after a change sequence.
type KeyChanges struct {
	// Seq is the change sequence the result is consistent with: pass it as since next time.
	Seq       uint64
	Upserted  []APIKey      // usable at now: add or replace
	Removed   []apikey.Hash // revoked or expired at now: remove
	Truncated bool          // more than the limit changed; Upserted and Removed are empty
}

// Signing key algorithms.
const (
	AlgEdDSA = "EdDSA"
	AlgES256 = "ES256"
)

// SigningKey is a key that signs client tokens. The private half is sealed by the caller
// (empty when it lives in a KMS); the store never sees it in plaintext.
type SigningKey struct {
	KID           string
	Realm         string
	Alg           string // AlgEdDSA or AlgES256
	Public        []byte
	PrivateSealed []byte
	CreatedAt     time.Time
	RetiredAt     *time.Time
	NotAfter      *time.Time // publish the public key until then
}

// Org states.
const (
	OrgActive          = "active"
	OrgBudgetExhausted = "budget_exhausted"
	OrgSuspended       = "suspended"
)

// OrgState is an org's standing, published so the edge can answer 402 or 403.
type OrgState struct {
	Realm     string
	Org       string
	State     string // OrgActive, OrgBudgetExhausted or OrgSuspended
	UpdatedAt time.Time
}

// Policy is one version of a realm's route policy, kept as the YAML it was written in.
type Policy struct {
	Realm     string
	Version   uint64
	YAML      []byte
	CreatedAt time.Time
	CreatedBy string // id of the key that put it
}

// Revocation kinds.
const (
	RevokeJTI     = "jti"
	RevokeSession = "session"
)

// Revocation revokes one client token (by jti) or every token of a session until Until,
// after which the tokens have expired anyway.
type Revocation struct {
	Realm     string
	Kind      string // RevokeJTI or RevokeSession
	Value     string
	Until     time.Time
	CreatedAt time.Time
}

// AuditEvent records one change made through the control plane.
type AuditEvent struct {
	ID     uint64
	Realm  string
	At     time.Time
	Actor  string // id of the key that acted
	Action string // "key.create", "key.revoke", …
	Target string
	// Detail is stored as given. It must never hold a secret: the store cannot tell one.
	Detail map[string]string
}

// AuditFilter selects events for ListAudit; zero fields select everything.
type AuditFilter struct {
	Action string
	Target string
	Since  time.Time // At at or after Since
}

// Page bounds a list. Limit 0 means DefaultLimit; Cursor "" starts at the beginning.
type Page struct {
	Limit  int
	Cursor string
}

// Page and batch sizes.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
	MaxBatch     = 10000
)

var (
	// ErrNotFound: the realm or entity does not exist.
	ErrNotFound = errors.New("store: not found")
	// ErrConflict: a unique field is taken, or the entity's state forbids the change.
	ErrConflict = errors.New("store: conflict")
	// ErrInvalid: an argument is malformed or out of range.
	ErrInvalid = errors.New("store: invalid")
)

// Error is the detailed form of ErrNotFound, ErrConflict and ErrInvalid; errors.Is matches
// it against Kind.
type Error struct {
	Kind   error  // ErrNotFound, ErrConflict or ErrInvalid
	Entity string // "realm", "key", "signing_key", …
	Field  string // the field at fault, "" when the whole entity is meant
	Reason string // for ErrInvalid and state conflicts: what is wrong
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("store: ")
	b.WriteString(e.Entity)
	if e.Field != "" {
		b.WriteString(".")
		b.WriteString(e.Field)
	}
	b.WriteString(": ")
	b.WriteString(strings.TrimPrefix(e.Kind.Error(), "store: "))
	if e.Reason != "" {
		b.WriteString(": ")
		b.WriteString(e.Reason)
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Kind }

func notFound(entity string) error { return &Error{Kind: ErrNotFound, Entity: entity} }

func conflict(entity, field, reason string) error {
	return &Error{Kind: ErrConflict, Entity: entity, Field: field, Reason: reason}
}

func invalid(entity, field, reason string) error {
	return &Error{Kind: ErrInvalid, Entity: entity, Field: field, Reason: reason}
}

// Open opens the store a URL names and applies pending migrations:
// "postgres://…" or "postgresql://…" for PostgreSQL, "sqlite:///path/to.db",
// "sqlite:path/to.db" or a plain file path for SQLite.
func Open(ctx context.Context, url string) (Store, error) {
	switch {
	case strings.HasPrefix(url, "postgres://"), strings.HasPrefix(url, "postgresql://"):
		return openPostgres(ctx, url)
	case strings.HasPrefix(url, "sqlite://"):
		return openSQLite(ctx, strings.TrimPrefix(url, "sqlite://"))
	case strings.HasPrefix(url, "sqlite:"):
		return openSQLite(ctx, strings.TrimPrefix(url, "sqlite:"))
	case strings.Contains(url, "://"):
		return nil, invalid("store", "url", "unknown scheme (want postgres://, postgresql:// or sqlite://)")
	default:
		return openSQLite(ctx, url)
	}
}
