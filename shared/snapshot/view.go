package snapshot

import (
	"bytes"
	"encoding/binary"

	"github.com/latchkeyhq/latchkey/shared/apikey"
)

// Key is a key's record as a lookup returns it. OrgIndex and AgentSet are opaque indices for
// View.Org and View.AgentAllowed of the same View.
type Key struct {
	ID       apikey.ID
	Expiry   int64 // unix seconds; 0 for never
	OrgIndex uint32
	Scopes   uint64
	AgentSet uint32 // 0: the key may act for no agent
	Type     uint8
	Flags    uint8
}

// idMask keeps the part of an entry's second word that belongs to the 10-byte key id.
const idMask = uint64(0xffff) << 48

// entryAt returns the hash prefix of entry i of a table with the given stride.
func entryAt(tab []byte, stride int, i uint32) (uint64, uint64) {
	e := tab[int(i)*stride:]
	return binary.BigEndian.Uint64(e[0:8]), binary.BigEndian.Uint64(e[8:16])
}

// search binary-searches entries [start, end) of a table sorted by 16-byte prefix for the
// prefix (hi, lo), comparing only the bits of lo in mask.
func search(tab []byte, stride int, start, end uint32, hi, lo, mask uint64) (uint32, bool) {
	lo &= mask
	for start < end {
		m := start + (end-start)/2
		e := tab[int(m)*stride : int(m)*stride+16]
		ehi := binary.BigEndian.Uint64(e[0:8])
		if ehi == hi {
			elo := binary.BigEndian.Uint64(e[8:16]) & mask
			if elo == lo {
				return m, true
			}
			if elo < lo {
				start = m + 1
			} else {
				end = m
			}
		} else if ehi < hi {
			start = m + 1
		} else {
			end = m
		}
	}
	return 0, false
}

// bucket returns the key range [start, end) of fanout bucket b.
func (s *shardView) bucket(b uint32) (uint32, uint32) {
	var start uint32
	if b > 0 {
		start = le32(s.fan[4*(b-1):])
	}
	return start, le32(s.fan[4*b:])
}

// findBase looks a prefix up in the base shards and returns the 32-byte entry.
func (v *View) findBase(hi, lo, mask uint64) ([]byte, bool) {
	s := &v.shards[hi>>(64-v.shardBits)]
	start, end := s.bucket(bucketOf(hi, v.shardBits, s.f))
	i, ok := search(s.keys, keyEntrySize, start, end, hi, lo, mask)
	if !ok {
		return nil, false
	}
	return s.keys[int(i)*keyEntrySize : int(i+1)*keyEntrySize], true
}

func (t *tables) key(e []byte) Key {
	k := Key{
		Expiry:   int64(le32(e[16:])),
		OrgIndex: le32(e[20:]),
		AgentSet: le32(e[24:]),
		Scopes:   t.scope(binary.LittleEndian.Uint16(e[28:])),
		Type:     e[30],
		Flags:    e[31],
	}
	copy(k.ID[:], e[:apikey.IDSize])
	return k
}

func (d *deltaView) key(i uint32) Key {
	k := d.t.key(d.adds[int(i)*keyEntrySize : int(i+1)*keyEntrySize])
	k.OrgIndex |= deltaBit
	if k.AgentSet != 0 {
		k.AgentSet |= deltaBit
	}
	return k
}

// LookupKey finds a key by hash. A key the delta removes is absent; one it adds or replaces
// is found with the delta's record.
func (v *View) LookupKey(h *apikey.Hash) (Key, bool) {
	hi, lo := binary.BigEndian.Uint64(h[0:8]), binary.BigEndian.Uint64(h[8:16])
	if d := v.delta; d != nil {
		if _, ok := d.removeIndex.find(d.removes, removeEntrySize, hi, lo, ^uint64(0)); ok {
			return Key{}, false
		}
		if i, ok := d.addIndex.find(d.adds, keyEntrySize, hi, lo, ^uint64(0)); ok {
			return d.key(i), true
		}
	}
	e, ok := v.findBase(hi, lo, ^uint64(0))
	if !ok {
		return Key{}, false
	}
	return v.meta.t.key(e), true
}

// LookupKeyID finds a key by its id (the first 10 bytes of its hash), as a client token
// names the key that minted it.
func (v *View) LookupKeyID(id apikey.ID) (Key, bool) {
	hi := binary.BigEndian.Uint64(id[0:8])
	lo := uint64(binary.BigEndian.Uint16(id[8:10])) << 48
	if d := v.delta; d != nil {
		if i, ok := d.addIndex.find(d.adds, keyEntrySize, hi, lo, idMask); ok {
			return d.key(i), true
		}
	}
	e, ok := v.findBase(hi, lo, idMask)
	if !ok {
		return Key{}, false
	}
	if d := v.delta; d != nil {
		ehi, elo := entryAt(e, keyEntrySize, 0)
		if _, removed := d.removeIndex.find(d.removes, removeEntrySize, ehi, elo, ^uint64(0)); removed {
			return Key{}, false
		}
	}
	return v.meta.t.key(e), true
}

// Org returns the id and state of org i (a Key's OrgIndex). A delta's upsert of the org wins.
// An index no key of this View carries returns nil and OrgSuspended, so a caller that
// mixes up Views fails closed.
func (v *View) Org(i uint32) (id []byte, state uint8) {
	if i&deltaBit != 0 {
		j := i &^ deltaBit
		if v.delta == nil || j >= v.delta.t.nOrgs {
			return nil, OrgSuspended
		}
		return v.delta.t.orgID(j), v.delta.t.orgStates[j]
	}
	t := &v.meta.t
	if i >= t.nOrgs {
		return nil, OrgSuspended
	}
	id, state = t.orgID(i), t.orgStates[i]
	if d := v.delta; d != nil && d.t.nOrgs > 0 {
		if j, ok := d.t.findOrg(id); ok {
			state = d.t.orgStates[j]
		}
	}
	return id, state
}

// OrgState returns the state of the org with this id.
func (v *View) OrgState(id []byte) (state uint8, ok bool) {
	if d := v.delta; d != nil {
		if j, ok := d.t.findOrg(id); ok {
			return d.t.orgStates[j], true
		}
	}
	if i, ok := v.meta.t.findOrg(id); ok {
		return v.meta.t.orgStates[i], true
	}
	return 0, false
}

// AgentAllowed reports whether a key with this AgentSet may act for agent.
func (v *View) AgentAllowed(set uint32, agent []byte) bool {
	if set&deltaBit != 0 {
		return v.delta != nil && v.delta.t.agentAllowed(set&^deltaBit, agent)
	}
	return v.meta.t.agentAllowed(set, agent)
}

// TokenRevoked reports whether the client token with this jti is revoked at now.
func (v *View) TokenRevoked(jti []byte, now int64) bool {
	var dt []byte
	if v.delta != nil {
		dt = v.delta.revTokens
	}
	return v.revoked(v.meta.revTokens, dt, jti, now)
}

// SessionRevoked reports whether the session with this id is revoked at now.
func (v *View) SessionRevoked(session []byte, now int64) bool {
	var dt []byte
	if v.delta != nil {
		dt = v.delta.revSessions
	}
	return v.revoked(v.meta.revSessions, dt, session, now)
}

func (v *View) revoked(base, delta, id []byte, now int64) bool {
	if len(base) == 0 && len(delta) == 0 {
		return false
	}
	h := v.crypto.SHA256(id)
	hi, lo := binary.BigEndian.Uint64(h[0:8]), binary.BigEndian.Uint64(h[8:16])
	return revokedIn(base, hi, lo, now) || revokedIn(delta, hi, lo, now)
}

func revokedIn(tab []byte, hi, lo uint64, now int64) bool {
	i, ok := search(tab, revEntrySize, 0, uint32(len(tab)/revEntrySize), hi, lo, ^uint64(0))
	if !ok {
		return false
	}
	until := int64(binary.LittleEndian.Uint64(tab[int(i)*revEntrySize+16:]))
	return until == 0 || now <= until
}

func (mv *metaView) kid(i uint32) []byte {
	e := mv.sigKeys[i*sigKeyEntrySize:]
	var start uint32
	if i > 0 {
		start = le32(mv.sigKeys[(i-1)*sigKeyEntrySize+12:])
	}
	return mv.sigBlob[start:le32(e[8:])]
}

func (mv *metaView) findKID(kid []byte) (uint32, bool) {
	lo, hi := uint32(0), mv.nSigKeys
	for lo < hi {
		m := lo + (hi-lo)/2
		switch c := bytes.Compare(mv.kid(m), kid); {
		case c == 0:
			return m, true
		case c < 0:
			lo = m + 1
		default:
			hi = m
		}
	}
	return 0, false
}

func (mv *metaView) sigKey(i uint32) (alg uint8, public []byte, notAfter int64) {
	e := mv.sigKeys[i*sigKeyEntrySize : (i+1)*sigKeyEntrySize]
	return e[16], mv.sigBlob[le32(e[8:]):le32(e[12:])], int64(binary.LittleEndian.Uint64(e[0:]))
}

// SigningKey returns the published client-token key with this kid, whatever its NotAfter;
// SigningKeyAt also applies NotAfter.
func (v *View) SigningKey(kid []byte) (alg uint8, public []byte, ok bool) {
	i, ok := v.meta.findKID(kid)
	if !ok {
		return 0, nil, false
	}
	alg, public, _ = v.meta.sigKey(i)
	return alg, public, true
}

// SigningKeyAt is SigningKey for a key still valid at now (now < NotAfter, or no NotAfter).
func (v *View) SigningKeyAt(kid []byte, now int64) (alg uint8, public []byte, ok bool) {
	i, ok := v.meta.findKID(kid)
	if !ok {
		return 0, nil, false
	}
	alg, public, notAfter := v.meta.sigKey(i)
	if notAfter != 0 && now >= notAfter {
		return 0, nil, false
	}
	return alg, public, true
}

// Policy returns the encoded policy (a slice of the meta object; do not modify).
func (v *View) Policy() []byte { return v.meta.policy }

// Realm returns the realm the manifest names.
func (v *View) Realm() string { return v.realm }

// Version returns the manifest's version (the delta's, when there is one).
func (v *View) Version() uint64 { return v.version }

// BaseVersion returns the full snapshot's version under a delta, 0 without one.
func (v *View) BaseVersion() uint64 { return v.base }

// IssuedAt returns the manifest's issue time.
func (v *View) IssuedAt() int64 { return v.issuedAt }

// ExpiresAt returns the manifest's expiry.
func (v *View) ExpiresAt() int64 { return v.expiresAt }

// KeyCount returns the number of live keys, the delta applied.
func (v *View) KeyCount() int { return v.keyCount }

// ShardBits returns k for the 2^k key shards of the full snapshot.
func (v *View) ShardBits() int { return int(v.shardBits) }
