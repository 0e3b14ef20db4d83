package publisher

import (
	"context"
	"crypto/sha256"
	"errors"
	"math"
	"strconv"
	"time"

	"github.com/latchkeyhq/latchkey/controlplane/policyfile"
	"github.com/latchkeyhq/latchkey/controlplane/store"
	"github.com/latchkeyhq/latchkey/shared/limits"
	"github.com/latchkeyhq/latchkey/shared/policy"
	"github.com/latchkeyhq/latchkey/shared/snapshot"
)

// DefaultValidity is how long a manifest stays fresh after it is issued when nothing says
// otherwise: an edge that hears nothing from the control plane for this long stops trusting
// the snapshot it holds.
const DefaultValidity = 24 * time.Hour

// maxSkippedDetails bounds the skipped keys a Report lists one by one: after a policy change
// that retires a key type, every key of that type is skipped, and a million log lines help
// nobody. Report.SkippedCount still counts them all.
const maxSkippedDetails = 20

// SkippedKey is a stored key left out of a snapshot because it no longer fits the realm's
// policy (its type was removed, a scope left the dictionary or the type's cap) or the snapshot
// format (no org). The key keeps working nowhere until the policy or the key is fixed; the
// publisher reports it rather than failing the realm's whole snapshot.
type SkippedKey struct {
	ID     string // "key_…"
	Type   string
	Reason string
}

// Report says what a build did besides producing contents.
type Report struct {
	// Seq is the store change sequence the contents reflect: every change numbered up to Seq
	// is in them (some later ones may be too).
	Seq uint64
	// PolicyVersion is the version of the policy the contents carry.
	PolicyVersion uint64
	// SkippedCount counts the keys left out; Skipped details the first few of them.
	SkippedCount int
	Skipped      []SkippedKey
}

// BuildContents reads a realm's full snapshot contents from the store at now: the latest
// policy (parsed, encoded and compiled), every key usable at now that fits the policy, the
// orgs those keys name plus every org with a stored state, the client-token signing keys
// still published (the active one and retired ones whose NotAfter is after now), and the
// token and session revocations still in force. It returns the store change sequence the
// contents reflect.
//
// The contents have IssuedAt now and ExpiresAt now + DefaultValidity, and Version 0: the
// caller assigns the version (store.NextSnapshotVersion) before snapshot.Build. A key that no
// longer fits the policy is left out (see BuildContentsReport), never failing the build; a
// realm without a policy gives ErrNoPolicy.
func BuildContents(ctx context.Context, st store.Store, realm string, now time.Time) (*snapshot.Contents, uint64, error) {
	c, r, err := BuildContentsReport(ctx, st, realm, now)
	if err != nil {
		return nil, 0, err
	}
	return c, r.Seq, nil
}

// BuildContentsReport is BuildContents, also reporting the keys it left out.
func BuildContentsReport(ctx context.Context, st store.Store, realm string, now time.Time) (*snapshot.Contents, *Report, error) {
	b, err := buildFull(ctx, st, realm, now, 0)
	if err != nil {
		return nil, nil, err
	}
	return b.contents, &b.report, nil
}

// realmPolicy is a realm's latest policy in the three forms a build needs.
type realmPolicy struct {
	version  uint64
	encoded  []byte
	compiled *policy.Compiled
}

// loadPolicy reads, parses, encodes and compiles the realm's latest policy. A stored policy
// that no longer parses (a stricter policyfile than the one that accepted it) is an error
// for the whole realm: without a policy there is nothing an edge could decide from.
func loadPolicy(ctx context.Context, st store.Store, realm string) (*realmPolicy, error) {
	sp, err := st.LatestPolicy(ctx, realm)
	if errors.Is(err, store.ErrNotFound) {
		// The realm itself may be missing too; say which.
		if _, rerr := st.GetRealm(ctx, realm); rerr != nil {
			return nil, &Error{Op: "build", Realm: realm, Err: rerr}
		}
		return nil, &Error{Op: "build", Realm: realm, Err: ErrNoPolicy}
	}
	if err != nil {
		return nil, &Error{Op: "build", Realm: realm, Err: err}
	}
	pol, err := policyfile.Parse(sp.YAML)
	if err != nil {
		return nil, &Error{Op: "build", Realm: realm, Name: "policy v" + strconv.FormatUint(sp.Version, 10), Err: err}
	}
	if pol.Realm != realm {
		return nil, &Error{Op: "build", Realm: realm, Name: "policy v" + strconv.FormatUint(sp.Version, 10),
			Err: errors.New("policy names realm " + strconv.Quote(pol.Realm))}
	}
	enc, err := policy.Encode(pol)
	if err != nil {
		return nil, &Error{Op: "build", Realm: realm, Name: "policy v" + strconv.FormatUint(sp.Version, 10), Err: err}
	}
	comp, err := policy.Compile(pol)
	if err != nil {
		return nil, &Error{Op: "build", Realm: realm, Name: "policy v" + strconv.FormatUint(sp.Version, 10), Err: err}
	}
	return &realmPolicy{version: sp.Version, encoded: enc, compiled: comp}, nil
}

// keyMapper turns stored keys into key records under one compiled policy. It caches the
// mask of each distinct scope list and the index of each type name: a realm's million keys
// typically share a handful of both, and ScopeMask allocates.
type keyMapper struct {
	pol    *policy.Compiled
	types  map[string]int
	scopes map[string]scopeResult
	buf    []byte
	// The previous key's type and scope list: store.ActiveSnapshotKeys shares one slice
	// between keys with the same list, so comparing the type name and the slice's first
	// element's address usually settles a key without a map lookup.
	lastType   string
	lastTI     int
	lastScopes *string
	lastLen    int
	lastResult scopeResult
}

type scopeResult struct {
	mask   uint64
	reason string // why the list does not fit, or ""
}

func newKeyMapper(p *policy.Compiled) *keyMapper {
	return &keyMapper{pol: p, types: map[string]int{}, scopes: map[string]scopeResult{}}
}

// record maps k, or returns why it cannot be published.
func (m *keyMapper) record(k *store.APIKey) (snapshot.KeyRecord, string) {
	var (
		ti int
		sr scopeResult
	)
	if k.Type == m.lastType && m.lastScopes != nil && len(k.Scopes) == m.lastLen && &k.Scopes[0] == m.lastScopes {
		ti, sr = m.lastTI, m.lastResult
	} else {
		var ok bool
		if ti, ok = m.types[k.Type]; !ok {
			ti = m.pol.KeyTypeIndex(k.Type)
			m.types[k.Type] = ti
		}
		if ti < 0 {
			return snapshot.KeyRecord{}, "key type " + strconv.Quote(k.Type) + " is not in the policy"
		}
		if ti > math.MaxUint8 {
			return snapshot.KeyRecord{}, "key type index above 255"
		}
		// The cache key is the type index and the scope list, NUL-separated (no scope name
		// holds a NUL).
		m.buf = m.buf[:0]
		m.buf = strconv.AppendInt(m.buf, int64(ti), 10)
		for _, s := range k.Scopes {
			m.buf = append(m.buf, 0)
			m.buf = append(m.buf, s...)
		}
		if sr, ok = m.scopes[string(m.buf)]; !ok {
			sr = m.scopeMask(ti, k.Scopes)
			m.scopes[string(m.buf)] = sr
		}
		m.lastType, m.lastTI, m.lastResult, m.lastScopes, m.lastLen = k.Type, ti, sr, nil, 0
		if len(k.Scopes) > 0 {
			m.lastScopes, m.lastLen = &k.Scopes[0], len(k.Scopes)
		}
	}
	if sr.reason != "" {
		return snapshot.KeyRecord{}, sr.reason
	}
	if k.Org == "" {
		return snapshot.KeyRecord{}, "key has no org (every published key needs one)"
	}
	if len(k.Org) > limits.MaxIDBytes {
		return snapshot.KeyRecord{}, "org id longer than 255 bytes"
	}
	if len(k.Agents) > limits.MaxAgentsPerKey {
		return snapshot.KeyRecord{}, "more than " + strconv.Itoa(limits.MaxAgentsPerKey) + " agents"
	}
	for _, a := range k.Agents {
		if a == "" || len(a) > limits.MaxIDBytes {
			return snapshot.KeyRecord{}, "agent id length not 1..255"
		}
	}
	return snapshot.KeyRecord{
		Hash:   k.Hash,
		Expiry: keyExpiry(k),
		Org:    k.Org,
		Scopes: sr.mask,
		Agents: k.Agents,
		Type:   uint8(ti),
	}, ""
}

func (m *keyMapper) scopeMask(ti int, names []string) scopeResult {
	mask, err := m.pol.ScopeMask(names)
	if err != nil {
		return scopeResult{reason: err.Error()}
	}
	kt := m.pol.KeyType(ti)
	if mask&^kt.Cap != 0 {
		return scopeResult{reason: "scopes exceed the cap of key type " + strconv.Quote(kt.Name)}
	}
	return scopeResult{mask: mask}
}

// keyExpiry is when the edge must stop accepting k: the earlier of its expiry and a scheduled
// revocation (a rotation's grace period), rounded down to the second so that the edge never
// accepts a key longer than the store does. A time beyond the format's 32-bit range is
// clamped to its end (2106), not turned into "never".
func keyExpiry(k *store.APIKey) int64 {
	var end *time.Time
	switch {
	case k.ExpiresAt == nil:
		end = k.RevokedAt
	case k.RevokedAt == nil || k.ExpiresAt.Before(*k.RevokedAt):
		end = k.ExpiresAt
	default:
		end = k.RevokedAt
	}
	if end == nil {
		return 0
	}
	s := end.Unix()
	switch {
	case s < 1:
		return 1 // already over; 0 would mean never
	case s > math.MaxUint32:
		return math.MaxUint32
	}
	return s
}

// orgState maps a stored org state to the snapshot's. An unknown state (a newer control plane
// wrote it) suspends the org: failing closed is the only safe reading.
func orgState(s string) uint8 {
	switch s {
	case store.OrgActive:
		return snapshot.OrgActive
	case store.OrgBudgetExhausted:
		return snapshot.OrgBudgetExhausted
	}
	return snapshot.OrgSuspended
}

// signingKeys returns the client-token keys to publish at now: the active key, and retired
// keys whose NotAfter is after now (tokens they signed may still be live).
func signingKeys(keys []store.SigningKey, now time.Time) ([]snapshot.SigningKey, error) {
	var out []snapshot.SigningKey
	for i := range keys {
		k := &keys[i]
		var notAfter int64
		if k.RetiredAt != nil {
			if k.NotAfter == nil || !k.NotAfter.After(now) {
				continue
			}
			notAfter = max(k.NotAfter.Unix(), 1) // rounded down: stop verifying early, never late
		}
		var alg uint8
		switch k.Alg {
		case store.AlgEdDSA:
			alg = snapshot.AlgEd25519
		case store.AlgES256:
			alg = snapshot.AlgES256
		default:
			return nil, errors.New("signing key " + strconv.Quote(k.KID) + ": unknown algorithm " + strconv.Quote(k.Alg))
		}
		out = append(out, snapshot.SigningKey{KID: k.KID, Alg: alg, Public: k.Public, NotAfter: notAfter})
	}
	return out, nil
}

// revocations splits the store's revocations into the snapshot's token and session tables:
// SHA-256 of the jti or session id, Until rounded up so a revocation never ends early.
func revocations(rs []store.Revocation) (tokens, sessions []snapshot.Revocation) {
	for i := range rs {
		r := &rs[i]
		until := r.Until.Unix()
		if r.Until.Nanosecond() != 0 {
			until++
		}
		rev := snapshot.Revocation{Hash: sha256.Sum256([]byte(r.Value)), Until: until}
		switch r.Kind {
		case store.RevokeJTI:
			tokens = append(tokens, rev)
		default:
			// RevokeSession, and any kind a newer control plane adds: revoking a session
			// denies more than intended at worst, never less.
			sessions = append(sessions, rev)
		}
	}
	return tokens, sessions
}

// fullBuild is a full snapshot's contents with what the publisher keeps to build deltas
// over it later.
type fullBuild struct {
	contents *snapshot.Contents
	report   Report
	policy   *realmPolicy
	// storedOrgs are the org states stored at build time (orgs named only by keys are active).
	storedOrgs map[string]uint8
}

// buildFull reads everything a full snapshot holds. The change sequence is read first: every
// read after it sees at least that state (store.Store's change feed contract), so the
// contents reflect Seq even though they come from several reads. sizeHint is the number of
// keys expected (the last build's), 0 when unknown.
func buildFull(ctx context.Context, st store.Store, realm string, now time.Time, sizeHint int) (*fullBuild, error) {
	fail := func(err error) (*fullBuild, error) { return nil, &Error{Op: "build", Realm: realm, Err: err} }
	seq, err := st.Changed(ctx, realm)
	if err != nil {
		return fail(err)
	}
	rp, err := loadPolicy(ctx, st, realm)
	if err != nil {
		return nil, err
	}
	c := &snapshot.Contents{
		Realm:     realm,
		IssuedAt:  now.Unix(),
		ExpiresAt: now.Add(DefaultValidity).Unix(),
		Policy:    rp.encoded,
	}
	b := &fullBuild{contents: c, policy: rp, report: Report{Seq: seq, PolicyVersion: rp.version}}

	// Keys: the bulk of the work. Records are collected in fixed-size chunks and joined once
	// at the end: growing one slice of a million 96-byte records by doubling cost half a
	// second in copies and zeroing, and counting the keys first costs a third of the read.
	// Org ids are interned (a realm's keys share far fewer orgs than keys), so the strings the
	// driver allocates per row die young instead of staying reachable until the build ends.
	m := newKeyMapper(rp.compiled)
	orgs := map[string]uint8{}
	orgIDs := map[string]string{}
	var lastOrg string
	const chunkSize = 1 << 15
	var (
		chunks [][]snapshot.KeyRecord
		cur    = make([]snapshot.KeyRecord, 0, min(max(sizeHint, 1024), chunkSize))
		total  int
	)
	_, err = store.ActiveSnapshotKeys(ctx, st, realm, now, func(k *store.APIKey) error {
		rec, reason := m.record(k)
		if reason != "" {
			b.report.skip(k, reason)
			return nil
		}
		if k.Org != lastOrg {
			id, ok := orgIDs[k.Org]
			if !ok {
				id = k.Org
				orgIDs[id] = id
				orgs[id] = snapshot.OrgActive
			}
			lastOrg = id
		}
		rec.Org = lastOrg
		if len(cur) == cap(cur) {
			chunks = append(chunks, cur)
			cur = make([]snapshot.KeyRecord, 0, chunkSize)
		}
		cur = append(cur, rec)
		total++
		return nil
	})
	if err != nil {
		return fail(err)
	}
	chunks = append(chunks, cur)
	if len(chunks) == 1 {
		c.Keys = cur
	} else {
		c.Keys = make([]snapshot.KeyRecord, 0, total)
		for i, ch := range chunks {
			c.Keys = append(c.Keys, ch...)
			chunks[i] = nil
		}
	}
	orgIDs = nil

	stored, err := st.ListOrgStates(ctx, realm)
	if err != nil {
		return fail(err)
	}
	b.storedOrgs = make(map[string]uint8, len(stored))
	for _, o := range stored {
		s := orgState(o.State)
		orgs[o.Org] = s
		b.storedOrgs[o.Org] = s
	}
	c.Orgs = make([]snapshot.Org, 0, len(orgs))
	for id, s := range orgs {
		c.Orgs = append(c.Orgs, snapshot.Org{ID: id, State: s})
	}

	sks, err := st.ListSigningKeys(ctx, realm)
	if err != nil {
		return fail(err)
	}
	if c.SigningKeys, err = signingKeys(sks, now); err != nil {
		return fail(err)
	}
	revs, err := st.ListRevocations(ctx, realm, now)
	if err != nil {
		return fail(err)
	}
	c.RevokedTokens, c.RevokedSessions = revocations(revs)
	return b, nil
}

// skip records a key left out of the snapshot.
func (r *Report) skip(k *store.APIKey, reason string) {
	r.SkippedCount++
	if len(r.Skipped) < maxSkippedDetails {
		id := k.ID
		if id == "" {
			id = k.Hash.ID().String()
		}
		r.Skipped = append(r.Skipped, SkippedKey{ID: id, Type: k.Type, Reason: reason})
	}
}
