// Package snapshot is a realm's published state — key hashes, orgs, revocations, token signing
// keys and the policy — in a signed, versioned, little-endian binary form that edge hosts use in
// place: Open checks digests and validates every offset and order once, then lookups read the
// received buffers directly, without allocating and without any way to read out of bounds.
//
// The byte layout is specified in SPEC.md ("Snapshots"); the constants below are its version
// and domain-separation labels.
package snapshot

import (
	"errors"
)

// FormatVersion is the version of every encoding in this package: manifest envelope,
// manifest body and objects. A reader refuses any other value (ErrVersion).
const FormatVersion = 1

// ManifestLabel is prepended to the manifest body to form the signed message, so that a
// manifest signature can never be replayed as (or made from) a signature over anything else
// a latchkey key signs.
const ManifestLabel = "latchkey/snapshot/manifest/v1\x00"

// Magic numbers: the first four bytes of a signed manifest and of every object.
const (
	ManifestMagic = "LKSM"
	ObjectMagic   = "LKSO"
)

// ShardTargetKeys is the most keys Build puts in one shard when it chooses the shard count
// itself: a 2^18-key shard is 8 MiB of key table, small enough to fetch and hash quickly.
const ShardTargetKeys = 1 << 18

// Org states.
const (
	OrgActive          uint8 = 0
	OrgBudgetExhausted uint8 = 1
	OrgSuspended       uint8 = 2
)

// Signing key algorithms. The values equal jwt.AlgEdDSA and jwt.AlgES256; this package does
// not import jwt so that the snapshot codec stands alone.
const (
	AlgEd25519 uint8 = 1
	AlgES256   uint8 = 2
)

var (
	// ErrMagic: the data does not start with the expected magic number.
	ErrMagic = errors.New("snapshot: bad magic number")
	// ErrVersion: a format version other than FormatVersion.
	ErrVersion = errors.New("snapshot: unsupported format version")
	// ErrTruncated: the data ends before a field or table it declares.
	ErrTruncated = errors.New("snapshot: truncated")
	// ErrCorrupt: a structural rule is broken (order, bounds, padding, trailing bytes,
	// non-canonical value, an object in the wrong place).
	ErrCorrupt = errors.New("snapshot: corrupt")
	// ErrDigest: an object's size or SHA-256 differs from what the manifest names.
	ErrDigest = errors.New("snapshot: object digest mismatch")
	// ErrSignature: no pinned key verifies the manifest signature.
	ErrSignature = errors.New("snapshot: manifest signature not valid under any pinned key")
	// ErrRollback: the manifest's version is lower than the one already held.
	ErrRollback = errors.New("snapshot: manifest version lower than the one held (rollback)")
	// ErrExpired: the manifest has expired (a frozen snapshot stream).
	ErrExpired = errors.New("snapshot: manifest expired")
	// ErrRealm: an object or manifest names another realm.
	ErrRealm = errors.New("snapshot: realm mismatch")
	// ErrMismatch: an object belongs to another version (mix and match), or a delta to
	// another base.
	ErrMismatch = errors.New("snapshot: object from another version")
	// ErrTooLarge: a size or count above the limits in shared/limits or the format.
	ErrTooLarge = errors.New("snapshot: too large")
	// ErrInvalid: Build, BuildDelta or SignManifest refused their input.
	ErrInvalid = errors.New("snapshot: invalid contents")
)

// Error says where a snapshot or manifest is wrong. Err is one of the sentinel errors.
type Error struct {
	Object string // object name, "manifest", "contents" or "delta"
	Field  string // table or field, e.g. "keys[17]"; may be empty
	Reason string // what is wrong, for people; may be empty
	Err    error
}

func (e *Error) Error() string {
	s := e.Err.Error() + ": " + e.Object
	if e.Field != "" {
		s += " " + e.Field
	}
	if e.Reason != "" {
		s += ": " + e.Reason
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

func fail(obj, field, reason string, err error) error {
	return &Error{Object: obj, Field: field, Reason: reason, Err: err}
}
