package snapshot

import (
	"encoding/binary"
	"slices"

	"github.com/latchkeyhq/latchkey/shared/apikey"
)

// Stats counts what a View holds, for `latchkey snapshot inspect`.
type Stats struct {
	Realm                string
	Version, BaseVersion uint64
	IssuedAt, ExpiresAt  int64
	Objects              []string // object names, the delta last
	ShardBits            int
	ShardKeys            []int // keys per shard
	Keys                 int   // live keys, the delta applied
	BaseKeys             int
	KeyTableBytes        int // 32 per base key
	FanoutBytes          int
	PolicyBytes          int
	Orgs, ScopeSets      int
	AgentSets, AgentIDs  int
	SigningKeys          int
	RevokedTokens        int
	RevokedSessions      int
	Delta                *DeltaStats
	ObjectIssuedAt       int64 // the meta object's own times (the full build's)
	ObjectExpiresAt      int64
}

// DeltaStats counts what a delta holds.
type DeltaStats struct {
	AddKeys, RemoveKeys int
	Orgs, ScopeSets     int
	AgentSets, AgentIDs int
	RevokedTokens       int
	RevokedSessions     int
	IssuedAt, ExpiresAt int64
}

// Stats counts the tables of the View.
func (v *View) Stats() Stats {
	mv := &v.meta
	s := Stats{
		Realm: v.realm, Version: v.version, BaseVersion: v.base, IssuedAt: v.issuedAt, ExpiresAt: v.expiresAt,
		Objects: slices.Clone(v.names), ShardBits: int(v.shardBits), Keys: v.keyCount, BaseKeys: int(mv.keyCount),
		PolicyBytes: len(mv.policy), Orgs: int(mv.t.nOrgs), ScopeSets: int(mv.t.nScopes),
		AgentSets: int(mv.t.nAgentSets), AgentIDs: int(mv.t.nMembers), SigningKeys: int(mv.nSigKeys),
		RevokedTokens: len(mv.revTokens) / revEntrySize, RevokedSessions: len(mv.revSessions) / revEntrySize,
		ObjectIssuedAt: mv.issuedAt, ObjectExpiresAt: mv.expiresAt,
	}
	for i := range v.shards {
		s.ShardKeys = append(s.ShardKeys, int(v.shards[i].n))
		s.KeyTableBytes += len(v.shards[i].keys)
		s.FanoutBytes += len(v.shards[i].fan)
	}
	if d := v.delta; d != nil {
		s.Delta = &DeltaStats{
			AddKeys: int(d.nAdds), RemoveKeys: int(d.nRemoves), Orgs: int(d.t.nOrgs), ScopeSets: int(d.t.nScopes),
			AgentSets: int(d.t.nAgentSets), AgentIDs: int(d.t.nMembers),
			RevokedTokens: len(d.revTokens) / revEntrySize, RevokedSessions: len(d.revSessions) / revEntrySize,
			IssuedAt: d.issuedAt, ExpiresAt: d.expiresAt,
		}
	}
	return s
}

// Contents decodes the full snapshot under the View (without the delta). Build(Contents(),
// BuildOptions{Shards: 1 << ShardBits()}) gives back the same objects. Hashes carry their
// published 16 bytes, the rest zero. Keys with the same agent set share one Agents slice.
func (v *View) Contents() (*Contents, error) {
	mv := &v.meta
	c := &Contents{
		Realm: v.realm, Version: v.version, IssuedAt: mv.issuedAt, ExpiresAt: mv.expiresAt,
	}
	if len(mv.policy) > 0 {
		c.Policy = slices.Clone(mv.policy)
	}
	if v.delta != nil {
		c.Version = v.base
	}
	orgs, names := decodeOrgs(&mv.t)
	c.Orgs = orgs
	sets := decodeSets(&mv.t)
	if mv.keyCount > 0 {
		c.Keys = make([]KeyRecord, 0, mv.keyCount)
	}
	for i := range v.shards {
		s := &v.shards[i]
		for j := 0; j < len(s.keys); j += keyEntrySize {
			c.Keys = append(c.Keys, decodeRecord(&mv.t, s.keys[j:j+keyEntrySize], names, sets))
		}
	}
	for i := uint32(0); i < mv.nSigKeys; i++ {
		alg, pub, notAfter := mv.sigKey(i)
		c.SigningKeys = append(c.SigningKeys, SigningKey{KID: string(mv.kid(i)), Alg: alg, Public: slices.Clone(pub), NotAfter: notAfter})
	}
	c.RevokedTokens = decodeRevocations(mv.revTokens)
	c.RevokedSessions = decodeRevocations(mv.revSessions)
	return c, nil
}

// DeltaContents decodes the View's delta; nil when it has none. BuildDelta of the result
// gives back the same object.
func (v *View) DeltaContents() (*Delta, error) {
	d := v.delta
	if d == nil {
		return nil, nil
	}
	out := &Delta{Realm: v.realm, BaseVersion: v.base, Version: v.version, IssuedAt: d.issuedAt, ExpiresAt: d.expiresAt}
	orgs, names := decodeOrgs(&d.t)
	out.Orgs = orgs
	sets := decodeSets(&d.t)
	for j := 0; j < len(d.adds); j += keyEntrySize {
		out.AddKeys = append(out.AddKeys, decodeRecord(&d.t, d.adds[j:j+keyEntrySize], names, sets))
	}
	for j := 0; j < len(d.removes); j += removeEntrySize {
		var h apikey.Hash
		copy(h[:], d.removes[j:j+prefixSize])
		out.RemoveKeys = append(out.RemoveKeys, h)
	}
	out.RevokedTokens = decodeRevocations(d.revTokens)
	out.RevokedSessions = decodeRevocations(d.revSessions)
	return out, nil
}

func decodeOrgs(t *tables) ([]Org, []string) {
	if t.nOrgs == 0 {
		return nil, nil
	}
	orgs := make([]Org, t.nOrgs)
	names := make([]string, t.nOrgs)
	for i := range orgs {
		names[i] = string(t.orgID(uint32(i)))
		orgs[i] = Org{ID: names[i], State: t.orgStates[i]}
	}
	return orgs, names
}

func decodeSets(t *tables) [][]string {
	sets := make([][]string, t.nAgentSets+1)
	for i := uint32(1); i <= t.nAgentSets; i++ {
		sets[i] = t.agents(i)
	}
	return sets
}

func decodeRecord(t *tables, e []byte, orgs []string, sets [][]string) KeyRecord {
	var r KeyRecord
	copy(r.Hash[:], e[:prefixSize])
	r.Expiry = int64(le32(e[16:]))
	r.Org = orgs[le32(e[20:])]
	r.Agents = sets[le32(e[24:])]
	r.Scopes = t.scope(binary.LittleEndian.Uint16(e[28:]))
	r.Type, r.Flags = e[30], e[31]
	return r
}

func decodeRevocations(tab []byte) []Revocation {
	var out []Revocation
	for j := 0; j < len(tab); j += revEntrySize {
		var r Revocation
		copy(r.Hash[:], tab[j:j+prefixSize])
		r.Until = int64(binary.LittleEndian.Uint64(tab[j+16:]))
		out = append(out, r)
	}
	return out
}
