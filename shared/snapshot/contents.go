package snapshot

import "github.com/latchkeyhq/latchkey/shared/apikey"

// Contents is a realm's full state at one version: what Build encodes and View.Contents
// decodes. Only the first 16 bytes of each hash are published (see SPEC.md for why that is
// enough); hashes decoded from a snapshot have their last 16 bytes zero.
type Contents struct {
	Realm               string
	Version             uint64
	IssuedAt, ExpiresAt int64
	// Policy is the opaque encoded policy (policy.Encode output).
	Policy          []byte
	Keys            []KeyRecord
	Orgs            []Org
	SigningKeys     []SigningKey
	RevokedTokens   []Revocation
	RevokedSessions []Revocation
}

// Delta is what changed since the full snapshot at BaseVersion. It is cumulative, so an edge
// never needs more than the newest full snapshot and one delta.
type Delta struct {
	Realm               string
	BaseVersion         uint64
	Version             uint64
	IssuedAt, ExpiresAt int64
	// AddKeys are new keys and replacements (same hash) of keys in the base.
	AddKeys    []KeyRecord
	RemoveKeys []apikey.Hash
	// Orgs are upserts. They must include the org of every key in AddKeys, so that a delta
	// resolves its keys' orgs without the base.
	Orgs            []Org
	RevokedTokens   []Revocation
	RevokedSessions []Revocation
}

// KeyRecord is one API key as the control plane publishes it.
type KeyRecord struct {
	Hash apikey.Hash
	// Expiry is a unix time in seconds, 0 for never; it must fit in 32 bits.
	Expiry int64
	// Org names an entry of Contents.Orgs (or Delta.Orgs).
	Org string
	// Scopes is a mask over the policy's scopes.
	Scopes uint64
	// Agents are the agent ids the key may act for; order and duplicates do not matter.
	Agents []string
	// Type is the index of the key's type in the policy.
	Type  uint8
	Flags uint8
}

// Org is an organisation (a platform's customer) and its state: OrgActive,
// OrgBudgetExhausted or OrgSuspended.
type Org struct {
	ID    string
	State uint8
}

// SigningKey is a published client-token verification key.
type SigningKey struct {
	KID string
	// Alg is AlgEd25519 (Public: 32 bytes) or AlgES256 (Public: 65-byte uncompressed point).
	Alg    uint8
	Public []byte
	// NotAfter is the unix time from which the key no longer verifies; 0 for no limit.
	NotAfter int64
}

// Revocation revokes a client token (by jti) or a session (by session id).
type Revocation struct {
	// Hash is the SHA-256 of the jti or session id.
	Hash [32]byte
	// Until is the unix time after which the revocation may be ignored (the revoked token
	// has expired by then); 0 for never.
	Until int64
}

// Object is one named snapshot object as Build returns it.
type Object struct {
	Name string
	Data []byte
}
