package snapshot

import (
	"cmp"
	"encoding/binary"
	"encoding/hex"
	"math"
	"math/bits"
	"slices"
	"strconv"

	"github.com/latchkeyhq/latchkey/shared/limits"
)

// BuildOptions tune Build. The zero value chooses everything.
type BuildOptions struct {
	// Shards forces the number of key shards: a power of two from 1 to 2^limits.MaxShardBits.
	// 0 chooses the fewest shards that keep every shard at or below ShardTargetKeys keys.
	Shards int
}

// Build encodes a full snapshot: the meta object first, then the key shards in shard order.
// The result is canonical: the same contents (in any order) always give the same bytes.
// Build refuses contents the edge would refuse, naming the cause (ErrInvalid, ErrTooLarge).
func Build(c *Contents, opt BuildOptions) ([]Object, error) {
	const obj = "contents"
	if err := checkStamp(obj, c.Realm, c.Version, c.IssuedAt, c.ExpiresAt); err != nil {
		return nil, err
	}
	if len(c.Policy) > limits.MaxPolicyBytes {
		return nil, fail(obj, "policy", strconv.Itoa(len(c.Policy))+" bytes, limit "+strconv.Itoa(limits.MaxPolicyBytes), ErrTooLarge)
	}
	tb, err := newTables(obj, c.Orgs)
	if err != nil {
		return nil, err
	}
	keys, err := tb.encodeKeys(obj, "keys", c.Keys)
	if err != nil {
		return nil, err
	}
	sks, err := sortSigningKeys(c.SigningKeys)
	if err != nil {
		return nil, err
	}
	revT, err := sortRevocations(obj, "revoked tokens", c.RevokedTokens)
	if err != nil {
		return nil, err
	}
	revS, err := sortRevocations(obj, "revoked sessions", c.RevokedSessions)
	if err != nil {
		return nil, err
	}
	k, err := chooseShardBits(keys, opt.Shards)
	if err != nil {
		return nil, err
	}
	if uint64(len(keys)) > math.MaxUint32 {
		return nil, fail(obj, "keys", "more than 2^32-1 keys", ErrTooLarge)
	}

	objs := make([]Object, 0, 1+1<<k)
	ver := strconv.FormatUint(c.Version, 10)

	// Meta object.
	var skBytes uint64
	for i := range sks {
		skBytes += uint64(len(sks[i].KID) + len(sks[i].Public))
	}
	counts := tb.counts()
	size := uint64(commonHeaderSize) + pad8(uint64(len(c.Realm))) + metaHeaderSize + pad8(uint64(len(c.Policy))) +
		tb.size() + pad8(uint64(len(sks))*sigKeyEntrySize) + pad8(skBytes) +
		pad8(uint64(len(revT))*revEntrySize) + pad8(uint64(len(revS))*revEntrySize)
	if size > limits.MaxSnapshotObjectBytes {
		return nil, fail(obj, "meta", "object would be "+strconv.FormatUint(size, 10)+" bytes", ErrTooLarge)
	}
	w := writer{b: make([]byte, 0, size)}
	kh := w.header(kindMeta, c.Realm, c.Version, 0, metaHeaderSize)
	le := binary.LittleEndian
	le.PutUint64(kh[0:], uint64(c.IssuedAt))
	le.PutUint64(kh[8:], uint64(c.ExpiresAt))
	kh[16] = byte(k)
	le.PutUint32(kh[20:], uint32(len(keys)))
	le.PutUint32(kh[24:], uint32(len(c.Policy)))
	counts.put(kh[metaTablesAt:])
	le.PutUint32(kh[52:], uint32(len(sks)))
	le.PutUint32(kh[56:], uint32(skBytes))
	le.PutUint32(kh[60:], uint32(len(revT)))
	le.PutUint32(kh[64:], uint32(len(revS)))
	w.b = append(w.b, c.Policy...)
	w.pad()
	tb.write(&w)
	var end uint32
	for i := range sks {
		sk := &sks[i]
		w.u64(uint64(sk.NotAfter))
		end += uint32(len(sk.KID))
		w.u32(end)
		end += uint32(len(sk.Public))
		w.u32(end)
		w.b = append(w.b, sk.Alg, 0, 0, 0, 0, 0, 0, 0)
	}
	for i := range sks {
		w.b = append(w.b, sks[i].KID...)
		w.b = append(w.b, sks[i].Public...)
	}
	w.pad()
	writeRevocations(&w, revT)
	writeRevocations(&w, revS)
	objs = append(objs, Object{Name: "v" + ver + "-meta", Data: w.b})

	// Key shards: keys are sorted, so shard i is a contiguous run.
	start := 0
	for i := 0; i < 1<<k; i++ {
		end := start
		for end < len(keys) && keys[end].hi>>(64-k) == uint64(i) {
			end++
		}
		data, err := encodeShard(c.Realm, c.Version, k, uint32(i), keys[start:end])
		if err != nil {
			return nil, err
		}
		objs = append(objs, Object{Name: "v" + ver + "-shard-" + strconv.Itoa(i), Data: data})
		start = end
	}
	return objs, nil
}

// BuildDelta encodes a delta object. Its keys' orgs must all be in d.Orgs.
func BuildDelta(d *Delta) (Object, error) {
	const obj = "delta"
	if err := checkStamp(obj, d.Realm, d.Version, d.IssuedAt, d.ExpiresAt); err != nil {
		return Object{}, err
	}
	if d.BaseVersion == 0 || d.BaseVersion >= d.Version {
		return Object{}, fail(obj, "base version", "must be at least 1 and below the version", ErrInvalid)
	}
	tb, err := newTables(obj, d.Orgs)
	if err != nil {
		return Object{}, err
	}
	adds, err := tb.encodeKeys(obj, "add keys", d.AddKeys)
	if err != nil {
		return Object{}, err
	}
	removes := make([]bkey, len(d.RemoveKeys))
	for i := range d.RemoveKeys {
		removes[i].hi = binary.BigEndian.Uint64(d.RemoveKeys[i][0:])
		removes[i].lo = binary.BigEndian.Uint64(d.RemoveKeys[i][8:])
	}
	slices.SortFunc(removes, compareBKeys)
	removes = slices.CompactFunc(removes, func(a, b bkey) bool { return a.hi == b.hi && a.lo == b.lo })
	for i, j := 0, 0; i < len(adds) && j < len(removes); {
		switch c := compareBKeys(adds[i], removes[j]); {
		case c == 0:
			return Object{}, fail(obj, "remove keys", "key "+adds[i].text()+" is both added and removed", ErrInvalid)
		case c < 0:
			i++
		default:
			j++
		}
	}
	revT, err := sortRevocations(obj, "revoked tokens", d.RevokedTokens)
	if err != nil {
		return Object{}, err
	}
	revS, err := sortRevocations(obj, "revoked sessions", d.RevokedSessions)
	if err != nil {
		return Object{}, err
	}
	size := uint64(commonHeaderSize) + pad8(uint64(len(d.Realm))) + deltaHeaderSize + tb.size() +
		uint64(len(adds))*keyEntrySize + uint64(len(removes))*removeEntrySize +
		pad8(uint64(len(revT))*revEntrySize) + pad8(uint64(len(revS))*revEntrySize)
	if size > limits.MaxSnapshotObjectBytes {
		return Object{}, fail(obj, "", "object would be "+strconv.FormatUint(size, 10)+" bytes", ErrTooLarge)
	}
	w := writer{b: make([]byte, 0, size)}
	kh := w.header(kindDelta, d.Realm, d.Version, d.BaseVersion, deltaHeaderSize)
	le := binary.LittleEndian
	le.PutUint64(kh[0:], uint64(d.IssuedAt))
	le.PutUint64(kh[8:], uint64(d.ExpiresAt))
	le.PutUint32(kh[16:], uint32(len(adds)))
	le.PutUint32(kh[20:], uint32(len(removes)))
	counts := tb.counts()
	counts.put(kh[deltaTablesAt:])
	le.PutUint32(kh[48:], uint32(len(revT)))
	le.PutUint32(kh[52:], uint32(len(revS)))
	tb.write(&w)
	for i := range adds {
		w.b = adds[i].appendEntry(w.b)
	}
	for i := range removes {
		w.b = binary.BigEndian.AppendUint64(w.b, removes[i].hi)
		w.b = binary.BigEndian.AppendUint64(w.b, removes[i].lo)
	}
	writeRevocations(&w, revT)
	writeRevocations(&w, revS)
	name := "v" + strconv.FormatUint(d.Version, 10) + "-delta-from-v" + strconv.FormatUint(d.BaseVersion, 10)
	return Object{Name: name, Data: w.b}, nil
}

func checkStamp(obj, realm string, version uint64, issuedAt, expiresAt int64) error {
	if len(realm) == 0 || len(realm) > maxIDLen {
		return fail(obj, "realm", "length must be 1..255", ErrInvalid)
	}
	if version == 0 {
		return fail(obj, "version", "must be at least 1", ErrInvalid)
	}
	if expiresAt <= issuedAt {
		return fail(obj, "expires at", "must be after issued at", ErrInvalid)
	}
	return nil
}

// bkey is a key entry while building; sorting 32-byte structs is cheaper than sorting
// KeyRecords or byte slices.
type bkey struct {
	hi, lo              uint64 // the first 16 bytes of the hash, big-endian
	expiry, org, agents uint32
	scope               uint16
	typ, flags          uint8
}

func compareBKeys(a, b bkey) int {
	if c := cmp.Compare(a.hi, b.hi); c != 0 {
		return c
	}
	return cmp.Compare(a.lo, b.lo)
}

func (k *bkey) appendEntry(b []byte) []byte {
	b = binary.BigEndian.AppendUint64(b, k.hi)
	b = binary.BigEndian.AppendUint64(b, k.lo)
	b = binary.LittleEndian.AppendUint32(b, k.expiry)
	b = binary.LittleEndian.AppendUint32(b, k.org)
	b = binary.LittleEndian.AppendUint32(b, k.agents)
	b = binary.LittleEndian.AppendUint16(b, k.scope)
	return append(b, k.typ, k.flags)
}

// text names a key in errors by its published hash prefix.
func (k *bkey) text() string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[0:], k.hi)
	binary.BigEndian.PutUint64(b[8:], k.lo)
	return hex.EncodeToString(b[:])
}

// tableBuilder collects the org, scope-set and agent-set tables of one object.
type tableBuilder struct {
	orgs      []Org
	orgIndex  map[string]uint32
	scopes    []uint64
	agentSets [][]string
}

func newTables(obj string, orgs []Org) (*tableBuilder, error) {
	if uint64(len(orgs)) > maxTableCount {
		return nil, fail(obj, "orgs", "more than 2^31-1 orgs", ErrTooLarge)
	}
	tb := &tableBuilder{orgs: slices.Clone(orgs), orgIndex: make(map[string]uint32, len(orgs))}
	for i := range orgs {
		if len(orgs[i].ID) == 0 || len(orgs[i].ID) > maxIDLen {
			return nil, fail(obj, idx("orgs", i), "id length must be 1..255", ErrInvalid)
		}
		if orgs[i].State > OrgSuspended {
			return nil, fail(obj, idx("orgs", i), "unknown state "+strconv.Itoa(int(orgs[i].State)), ErrInvalid)
		}
	}
	slices.SortFunc(tb.orgs, func(a, b Org) int { return cmp.Compare(a.ID, b.ID) })
	for i := range tb.orgs {
		if i > 0 && tb.orgs[i-1].ID == tb.orgs[i].ID {
			return nil, fail(obj, "orgs", "duplicate org "+strconv.Quote(tb.orgs[i].ID), ErrInvalid)
		}
		tb.orgIndex[tb.orgs[i].ID] = uint32(i)
	}
	return tb, nil
}

// encodeKeys turns records into sorted entries, filling the scope-set and agent-set tables.
func (tb *tableBuilder) encodeKeys(obj, field string, recs []KeyRecord) ([]bkey, error) {
	keys := make([]bkey, len(recs))
	scopeSeen := make(map[uint64]uint16)
	setIDs := make(map[string]uint32) // canonical set encoding -> 1-based id in first-seen order
	var sets [][]string
	var setKey []byte
	for i := range recs {
		r := &recs[i]
		k := &keys[i]
		org, ok := tb.orgIndex[r.Org]
		if !ok {
			return nil, fail(obj, idx(field, i)+".org", "org "+strconv.Quote(r.Org)+" is not in the org table", ErrInvalid)
		}
		if r.Expiry < 0 || r.Expiry > math.MaxUint32 {
			return nil, fail(obj, idx(field, i)+".expiry", strconv.FormatInt(r.Expiry, 10)+" is not 0..2^32-1 (unix seconds until 2106)", ErrInvalid)
		}
		if i == 0 || r.Scopes != recs[i-1].Scopes {
			scopeSeen[r.Scopes] = 0
		}
		k.hi = binary.BigEndian.Uint64(r.Hash[0:])
		k.lo = binary.BigEndian.Uint64(r.Hash[8:])
		k.expiry, k.org, k.typ, k.flags = uint32(r.Expiry), org, r.Type, r.Flags
		if len(r.Agents) == 0 {
			continue
		}
		set := slices.Clone(r.Agents)
		slices.Sort(set)
		set = slices.Compact(set)
		if len(set) > limits.MaxAgentsPerKey {
			return nil, fail(obj, idx(field, i)+".agents", strconv.Itoa(len(set))+" agents, limit "+strconv.Itoa(limits.MaxAgentsPerKey), ErrTooLarge)
		}
		setKey = setKey[:0]
		for _, a := range set {
			if len(a) == 0 || len(a) > maxIDLen {
				return nil, fail(obj, idx(field, i)+".agents", "agent id length must be 1..255", ErrInvalid)
			}
			setKey = append(setKey, byte(len(a)))
			setKey = append(setKey, a...)
		}
		id, ok := setIDs[string(setKey)]
		if !ok {
			sets = append(sets, set)
			id = uint32(len(sets))
			setIDs[string(setKey)] = id
		}
		k.agents = id
	}
	if len(scopeSeen) > maxScopeSets {
		return nil, fail(obj, field, strconv.Itoa(len(scopeSeen))+" distinct scope sets; the key table addresses at most 65536", ErrTooLarge)
	}
	if uint64(len(sets)) > maxTableCount {
		return nil, fail(obj, field, "more than 2^31-1 distinct agent sets", ErrTooLarge)
	}
	tb.scopes = make([]uint64, 0, len(scopeSeen))
	for m := range scopeSeen {
		tb.scopes = append(tb.scopes, m)
	}
	slices.Sort(tb.scopes)
	for i, m := range tb.scopes {
		scopeSeen[m] = uint16(i)
	}
	// Agent sets are ordered by content so that the encoding does not depend on key order.
	order := make([]uint32, len(sets))
	for i := range order {
		order[i] = uint32(i)
	}
	slices.SortFunc(order, func(a, b uint32) int { return slices.Compare(sets[a], sets[b]) })
	remap := make([]uint32, len(sets)+1)
	tb.agentSets = make([][]string, len(sets))
	for final, tmp := range order {
		remap[tmp+1] = uint32(final + 1)
		tb.agentSets[final] = sets[tmp]
	}
	for i := range keys {
		keys[i].scope = scopeSeen[recs[i].Scopes]
		keys[i].agents = remap[keys[i].agents]
	}
	slices.SortFunc(keys, compareBKeys)
	for i := 1; i < len(keys); i++ {
		a, b := &keys[i-1], &keys[i]
		if a.hi == b.hi && a.lo == b.lo {
			return nil, fail(obj, field, "two keys share the hash prefix "+b.text(), ErrInvalid)
		}
		if a.hi == b.hi && a.lo>>48 == b.lo>>48 {
			return nil, fail(obj, field, "two keys share the key id of hash prefix "+b.text(), ErrInvalid)
		}
	}
	return keys, nil
}

func (tb *tableBuilder) counts() tableCounts {
	var c tableCounts
	c.orgs = uint32(len(tb.orgs))
	for i := range tb.orgs {
		c.orgBytes += uint32(len(tb.orgs[i].ID))
	}
	c.scopes = uint32(len(tb.scopes))
	c.agentSets = uint32(len(tb.agentSets))
	for _, s := range tb.agentSets {
		c.members += uint32(len(s))
		for _, a := range s {
			c.agentBytes += uint32(len(a))
		}
	}
	return c
}

// size is the encoded size of the tables, computed without overflow so Build can refuse an
// object over the limit before encoding.
func (tb *tableBuilder) size() uint64 {
	var orgBytes, members, agentBytes uint64
	for i := range tb.orgs {
		orgBytes += uint64(len(tb.orgs[i].ID))
	}
	for _, s := range tb.agentSets {
		members += uint64(len(s))
		for _, a := range s {
			agentBytes += uint64(len(a))
		}
	}
	n := uint64(len(tb.orgs))
	return pad8(4*n) + pad8(n) + pad8(orgBytes) + 8*uint64(len(tb.scopes)) +
		pad8(4*uint64(len(tb.agentSets))) + pad8(4*members) + pad8(agentBytes)
}

func (tb *tableBuilder) write(w *writer) {
	var end uint32
	for i := range tb.orgs {
		end += uint32(len(tb.orgs[i].ID))
		w.u32(end)
	}
	w.pad()
	for i := range tb.orgs {
		w.b = append(w.b, tb.orgs[i].State)
	}
	w.pad()
	for i := range tb.orgs {
		w.b = append(w.b, tb.orgs[i].ID...)
	}
	w.pad()
	for _, m := range tb.scopes {
		w.u64(m)
	}
	end = 0
	for _, s := range tb.agentSets {
		end += uint32(len(s))
		w.u32(end)
	}
	w.pad()
	end = 0
	for _, s := range tb.agentSets {
		for _, a := range s {
			end += uint32(len(a))
			w.u32(end)
		}
	}
	w.pad()
	for _, s := range tb.agentSets {
		for _, a := range s {
			w.b = append(w.b, a...)
		}
	}
	w.pad()
}

func sortSigningKeys(in []SigningKey) ([]SigningKey, error) {
	const obj = "contents"
	if len(in) > limits.MaxSigningKeys {
		return nil, fail(obj, "signing keys", strconv.Itoa(len(in))+" keys, limit "+strconv.Itoa(limits.MaxSigningKeys), ErrTooLarge)
	}
	for i := range in {
		if msg := checkSigningKey(len(in[i].KID), in[i].Alg, in[i].Public, in[i].NotAfter); msg != "" {
			return nil, fail(obj, idx("signing keys", i), msg, ErrInvalid)
		}
	}
	out := slices.Clone(in)
	slices.SortFunc(out, func(a, b SigningKey) int { return cmp.Compare(a.KID, b.KID) })
	for i := 1; i < len(out); i++ {
		if out[i-1].KID == out[i].KID {
			return nil, fail(obj, "signing keys", "duplicate kid "+strconv.Quote(out[i].KID), ErrInvalid)
		}
	}
	return out, nil
}

// checkSigningKey returns what is wrong with a signing key, or "".
func checkSigningKey(kidLen int, alg uint8, pub []byte, notAfter int64) string {
	if kidLen == 0 || kidLen > maxIDLen {
		return "kid length must be 1..255"
	}
	if notAfter < 0 {
		return "negative not-after"
	}
	switch alg {
	case AlgEd25519:
		if len(pub) != 32 {
			return "Ed25519 public key must be 32 bytes"
		}
	case AlgES256:
		if len(pub) != 65 || pub[0] != 4 {
			return "ES256 public key must be a 65-byte uncompressed P-256 point"
		}
	default:
		return "unknown algorithm " + strconv.Itoa(int(alg))
	}
	return ""
}

// rev is a revocation entry while building.
type rev struct {
	hi, lo uint64
	until  int64
}

// sortRevocations sorts by published prefix and merges duplicates, keeping the later Until
// (0, never, is latest).
func sortRevocations(obj, field string, in []Revocation) ([]rev, error) {
	out := make([]rev, len(in))
	for i := range in {
		if in[i].Until < 0 {
			return nil, fail(obj, idx(field, i)+".until", "negative", ErrInvalid)
		}
		out[i] = rev{binary.BigEndian.Uint64(in[i].Hash[0:]), binary.BigEndian.Uint64(in[i].Hash[8:]), in[i].Until}
	}
	slices.SortFunc(out, func(a, b rev) int {
		if c := cmp.Compare(a.hi, b.hi); c != 0 {
			return c
		}
		return cmp.Compare(a.lo, b.lo)
	})
	n := 0
	for i := range out {
		if n > 0 && out[n-1].hi == out[i].hi && out[n-1].lo == out[i].lo {
			if out[n-1].until != 0 && (out[i].until == 0 || out[i].until > out[n-1].until) {
				out[n-1].until = out[i].until
			}
			continue
		}
		out[n] = out[i]
		n++
	}
	return out[:n], nil
}

func writeRevocations(w *writer, rs []rev) {
	for i := range rs {
		w.b = binary.BigEndian.AppendUint64(w.b, rs[i].hi)
		w.b = binary.BigEndian.AppendUint64(w.b, rs[i].lo)
		w.u64(uint64(rs[i].until))
	}
}

// chooseShardBits returns k for 2^k shards: forced by opt, or the smallest k for which no
// shard exceeds ShardTargetKeys.
func chooseShardBits(keys []bkey, shards int) (uint, error) {
	if shards != 0 {
		if shards < 0 || shards > 1<<limits.MaxShardBits || shards&(shards-1) != 0 {
			return 0, fail("contents", "shards", strconv.Itoa(shards)+" is not a power of two from 1 to 2^MaxShardBits", ErrInvalid)
		}
		return uint(bits.TrailingZeros(uint(shards))), nil
	}
	var hist [1 << limits.MaxShardBits]int
	for i := range keys {
		hist[keys[i].hi>>(64-limits.MaxShardBits)]++
	}
	for k := uint(0); k < limits.MaxShardBits; k++ {
		per := 1 << (limits.MaxShardBits - k)
		fits := true
		for s := 0; s < len(hist) && fits; s += per {
			n := 0
			for _, c := range hist[s : s+per] {
				n += c
			}
			fits = n <= ShardTargetKeys
		}
		if fits {
			return k, nil
		}
	}
	return limits.MaxShardBits, nil
}

func encodeShard(realm string, version uint64, k uint, index uint32, keys []bkey) ([]byte, error) {
	n := uint64(len(keys))
	f := uint(0)
	if n <= math.MaxUint32 {
		f = fanoutBits(uint32(n))
	}
	size := uint64(commonHeaderSize) + pad8(uint64(len(realm))) + shardHeaderSize + pad8(4<<f) + n*keyEntrySize
	if size > limits.MaxSnapshotObjectBytes {
		return nil, fail("contents", "shard "+strconv.Itoa(int(index)), strconv.FormatUint(n, 10)+" keys make "+strconv.FormatUint(size, 10)+" bytes; use more shards", ErrTooLarge)
	}
	w := writer{b: make([]byte, 0, size)}
	kh := w.header(kindShard, realm, version, 0, shardHeaderSize)
	kh[0], kh[1] = byte(k), byte(f)
	binary.LittleEndian.PutUint32(kh[4:], index)
	binary.LittleEndian.PutUint32(kh[8:], uint32(n))
	fan := make([]uint32, 1<<f)
	for i := range keys {
		fan[bucketOf(keys[i].hi, k, f)]++
	}
	var sum uint32
	for _, c := range fan {
		sum += c
		w.u32(sum)
	}
	w.pad()
	for i := range keys {
		w.b = keys[i].appendEntry(w.b)
	}
	return w.b, nil
}
