package snapshot

import (
	"bytes"
	"encoding/binary"
	"strconv"

	"github.com/latchkeyhq/latchkey/shared/hostcrypto"
	"github.com/latchkeyhq/latchkey/shared/limits"
)

// View is an opened snapshot: a full snapshot with at most one delta over it. It reads the
// buffers given to Open in place (they must not change afterwards), is immutable, and is safe
// for concurrent use.
type View struct {
	realm               string
	version, base       uint64
	issuedAt, expiresAt int64
	crypto              hostcrypto.Provider
	shardBits           uint
	keyCount            int
	names               []string // object names, for Stats
	meta                metaView
	shards              []shardView
	delta               *deltaView
}

type metaView struct {
	issuedAt, expiresAt    int64
	keyCount               uint32
	policy                 []byte
	t                      tables
	nSigKeys               uint32
	sigKeys, sigBlob       []byte
	revTokens, revSessions []byte
}

type shardView struct {
	f    uint
	n    uint32
	fan  []byte // [2^f]u32 cumulative end of each bucket
	keys []byte // [n]32-byte entries
}

type deltaView struct {
	issuedAt, expiresAt    int64
	t                      tables
	nAdds, nRemoves        uint32
	adds, removes          []byte
	addIndex, removeIndex  fanIndex
	revTokens, revSessions []byte
}

// fanIndex is a fanout index over a sorted delta table, built by Open (deltas carry none:
// they are small, and an index computed from validated entries needs no validation).
type fanIndex struct {
	f   uint
	fan []uint32 // cumulative end of each bucket of the top f bits
}

func newFanIndex(tab []byte, stride int, n uint32) fanIndex {
	x := fanIndex{f: fanoutBits(n)}
	x.fan = make([]uint32, 1<<x.f)
	for i := uint32(0); i < n; i++ {
		hi, _ := entryAt(tab, stride, i)
		x.fan[bucketOf(hi, 0, x.f)]++
	}
	for j := 1; j < len(x.fan); j++ {
		x.fan[j] += x.fan[j-1]
	}
	return x
}

func (x *fanIndex) find(tab []byte, stride int, hi, lo, mask uint64) (uint32, bool) {
	b := bucketOf(hi, 0, x.f)
	var start uint32
	if b > 0 {
		start = x.fan[b-1]
	}
	return search(tab, stride, start, x.fan[b], hi, lo, mask)
}

// Open checks objects (in m.Objects order) and the delta (nil when m names none) against m,
// validates their structure completely, and returns a View over them. m should come from
// VerifyManifest and have passed CheckFresh. On error the View is nil.
func Open(m *Manifest, objects [][]byte, delta []byte, c hostcrypto.Provider) (*View, error) {
	if m == nil || c == nil {
		return nil, fail("manifest", "", "Open needs a manifest and a crypto provider", ErrCorrupt)
	}
	if err := m.validate(ErrCorrupt); err != nil {
		return nil, err
	}
	if len(objects) != len(m.Objects) {
		return nil, fail("manifest", "objects", strconv.Itoa(len(objects))+" objects given, manifest names "+strconv.Itoa(len(m.Objects)), ErrCorrupt)
	}
	// Digests first: nothing below looks at bytes the manifest does not vouch for.
	for i := range objects {
		if err := checkDigest(&m.Objects[i], objects[i], c); err != nil {
			return nil, err
		}
	}
	if m.Delta == nil && len(delta) != 0 {
		return nil, fail("manifest", "delta", "a delta was given but the manifest names none", ErrCorrupt)
	}
	if m.Delta != nil {
		if err := checkDigest(m.Delta, delta, c); err != nil {
			return nil, err
		}
	}
	v := &View{realm: m.Realm, version: m.Version, base: m.BaseVersion, issuedAt: m.IssuedAt, expiresAt: m.ExpiresAt, crypto: c}
	v.names = make([]string, 0, len(m.Objects)+1)
	for i := range m.Objects {
		v.names = append(v.names, m.Objects[i].Name)
	}
	if err := v.readMeta(m.Objects[0].Name, objects[0], m.fullVersion()); err != nil {
		return nil, err
	}
	if 1<<v.shardBits != len(objects)-1 {
		return nil, fail(m.Objects[0].Name, "shard bits", "meta names "+strconv.Itoa(1<<v.shardBits)+" shards, manifest "+strconv.Itoa(len(objects)-1), ErrCorrupt)
	}
	v.shards = make([]shardView, len(objects)-1)
	var total uint64
	for i := range v.shards {
		if err := v.readShard(m.Objects[i+1].Name, objects[i+1], uint32(i), m.fullVersion()); err != nil {
			return nil, err
		}
		total += uint64(v.shards[i].n)
	}
	if total != uint64(v.meta.keyCount) {
		return nil, fail(m.Objects[0].Name, "key count", "meta says "+strconv.FormatUint(uint64(v.meta.keyCount), 10)+", shards hold "+strconv.FormatUint(total, 10), ErrCorrupt)
	}
	if err := v.meta.t.checkUsed(m.Objects[0].Name); err != nil {
		return nil, err
	}
	v.keyCount = int(total)
	if m.Delta != nil {
		v.names = append(v.names, m.Delta.Name)
		if err := v.readDelta(m.Delta.Name, delta); err != nil {
			return nil, err
		}
	}
	return v, nil
}

func checkDigest(r *ObjectRef, data []byte, c hostcrypto.Provider) error {
	if uint64(len(data)) != r.Size {
		return fail(r.Name, "size", strconv.Itoa(len(data))+" bytes, manifest says "+strconv.FormatUint(r.Size, 10), ErrDigest)
	}
	if c.SHA256(data) != r.SHA256 {
		return fail(r.Name, "sha256", "", ErrDigest)
	}
	return nil
}

func (v *View) readMeta(name string, data []byte, version uint64) error {
	r := reader{b: data, obj: name}
	h, kh, err := readHeader(&r, kindMeta, metaHeaderSize)
	if err != nil {
		return err
	}
	if err := checkHeader(name, &h, v.realm, version, 0); err != nil {
		return err
	}
	le := binary.LittleEndian
	mv := &v.meta
	mv.issuedAt = int64(le.Uint64(kh[0:]))
	mv.expiresAt = int64(le.Uint64(kh[8:]))
	if mv.expiresAt <= mv.issuedAt {
		return fail(name, "expires at", "not after issued at", ErrCorrupt)
	}
	if v.base == 0 && (mv.issuedAt != v.issuedAt || mv.expiresAt != v.expiresAt) {
		// The manifest's times are the ones checked; an object stamped otherwise was not
		// built for this manifest.
		return fail(name, "issued at", "object times differ from the manifest's", ErrMismatch)
	}
	v.shardBits = uint(kh[16])
	if v.shardBits > limits.MaxShardBits {
		return fail(name, "shard bits", strconv.Itoa(int(kh[16])), ErrCorrupt)
	}
	if kh[17]|kh[18]|kh[19]|kh[68]|kh[69]|kh[70]|kh[71] != 0 {
		return fail(name, "header", "reserved bytes not zero", ErrCorrupt)
	}
	mv.keyCount = le.Uint32(kh[20:])
	policyLen := le.Uint32(kh[24:])
	if policyLen > limits.MaxPolicyBytes {
		return fail(name, "policy", strconv.FormatUint(uint64(policyLen), 10)+" bytes", ErrTooLarge)
	}
	var counts tableCounts
	counts.get(kh[metaTablesAt:])
	mv.nSigKeys = le.Uint32(kh[52:])
	if mv.nSigKeys > limits.MaxSigningKeys {
		return fail(name, "signing keys", strconv.FormatUint(uint64(mv.nSigKeys), 10)+" keys", ErrTooLarge)
	}
	sigBytes := le.Uint32(kh[56:])
	nRevT, nRevS := le.Uint32(kh[60:]), le.Uint32(kh[64:])

	if mv.policy, err = r.section(policyLen, 1, "policy"); err != nil {
		return err
	}
	if mv.t, err = readTables(&r, &counts); err != nil {
		return err
	}
	if mv.sigKeys, err = r.section(mv.nSigKeys, sigKeyEntrySize, "signing keys"); err != nil {
		return err
	}
	if mv.sigBlob, err = r.section(sigBytes, 1, "signing key bytes"); err != nil {
		return err
	}
	if mv.revTokens, err = readRevocations(&r, nRevT, "revoked tokens"); err != nil {
		return err
	}
	if mv.revSessions, err = readRevocations(&r, nRevS, "revoked sessions"); err != nil {
		return err
	}
	if err := r.done(); err != nil {
		return err
	}
	return mv.checkSigningKeys(name)
}

func (mv *metaView) checkSigningKeys(name string) error {
	var end uint32
	for i := uint32(0); i < mv.nSigKeys; i++ {
		e := mv.sigKeys[i*sigKeyEntrySize : (i+1)*sigKeyEntrySize]
		notAfter := int64(binary.LittleEndian.Uint64(e[0:]))
		kidEnd, pubEnd := le32(e[8:]), le32(e[12:])
		if kidEnd <= end || pubEnd < kidEnd || uint64(pubEnd) > uint64(len(mv.sigBlob)) {
			return fail(name, idx("signing keys", int(i)), "kid or public key outside the key bytes", ErrCorrupt)
		}
		for _, c := range e[17:] {
			if c != 0 {
				return fail(name, idx("signing keys", int(i)), "reserved bytes not zero", ErrCorrupt)
			}
		}
		if msg := checkSigningKey(int(kidEnd-end), e[16], mv.sigBlob[kidEnd:pubEnd], notAfter); msg != "" {
			return fail(name, idx("signing keys", int(i)), msg, ErrCorrupt)
		}
		if i > 0 && bytes.Compare(mv.kid(i-1), mv.kid(i)) >= 0 {
			return fail(name, idx("signing keys", int(i)), "kids not in strictly ascending order", ErrCorrupt)
		}
		end = pubEnd
	}
	if uint64(end) != uint64(len(mv.sigBlob)) {
		return fail(name, "signing keys", "keys do not cover the key bytes", ErrCorrupt)
	}
	return nil
}

// readRevocations takes a revocation table: strictly ascending prefixes, Until ≥ 0.
func readRevocations(r *reader, n uint32, field string) ([]byte, error) {
	s, err := r.section(n, revEntrySize, field)
	if err != nil {
		return nil, err
	}
	var phi, plo uint64
	for i := 0; i < len(s); i += revEntrySize {
		e := s[i : i+revEntrySize]
		hi, lo := binary.BigEndian.Uint64(e[0:]), binary.BigEndian.Uint64(e[8:])
		if i > 0 && (hi < phi || hi == phi && lo <= plo) {
			return nil, fail(r.obj, idx(field, i/revEntrySize), "not in strictly ascending order", ErrCorrupt)
		}
		if int64(binary.LittleEndian.Uint64(e[16:])) < 0 {
			return nil, fail(r.obj, idx(field, i/revEntrySize), "negative until", ErrCorrupt)
		}
		phi, plo = hi, lo
	}
	return s, nil
}

func (v *View) readShard(name string, data []byte, index uint32, version uint64) error {
	r := reader{b: data, obj: name}
	h, kh, err := readHeader(&r, kindShard, shardHeaderSize)
	if err != nil {
		return err
	}
	if err := checkHeader(name, &h, v.realm, version, 0); err != nil {
		return err
	}
	le := binary.LittleEndian
	k := v.shardBits
	if uint(kh[0]) != k {
		return fail(name, "shard bits", strconv.Itoa(int(kh[0]))+", meta says "+strconv.Itoa(int(k)), ErrCorrupt)
	}
	if got := le.Uint32(kh[4:]); got != index {
		return fail(name, "shard index", "shard "+strconv.FormatUint(uint64(got), 10)+" in place of shard "+strconv.FormatUint(uint64(index), 10), ErrCorrupt)
	}
	if kh[2]|kh[3]|kh[12]|kh[13]|kh[14]|kh[15] != 0 {
		return fail(name, "header", "reserved bytes not zero", ErrCorrupt)
	}
	s := &v.shards[index]
	s.n = le.Uint32(kh[8:])
	s.f = fanoutBits(s.n)
	if uint(kh[1]) != s.f {
		return fail(name, "fanout bits", strconv.Itoa(int(kh[1]))+", want "+strconv.Itoa(int(s.f))+" for "+strconv.FormatUint(uint64(s.n), 10)+" keys", ErrCorrupt)
	}
	if s.fan, err = r.section(1<<s.f, 4, "fanout"); err != nil {
		return err
	}
	if s.keys, err = r.section(s.n, keyEntrySize, "keys"); err != nil {
		return err
	}
	if err := r.done(); err != nil {
		return err
	}
	var prev uint32
	for j := 0; j < len(s.fan); j += 4 {
		c := le32(s.fan[j:])
		if c < prev || c > s.n {
			return fail(name, idx("fanout", j/4), "counts not cumulative", ErrCorrupt)
		}
		prev = c
	}
	if prev != s.n {
		return fail(name, "fanout", "last count is not the key count", ErrCorrupt)
	}
	t := &v.meta.t
	var phi, plo uint64
	for i := uint32(0); i < s.n; i++ {
		e := s.keys[int(i)*keyEntrySize : int(i+1)*keyEntrySize]
		hi, lo := binary.BigEndian.Uint64(e[0:]), binary.BigEndian.Uint64(e[8:])
		if hi>>(64-k) != uint64(index) {
			return fail(name, idx("keys", int(i)), "key belongs to another shard", ErrCorrupt)
		}
		if i > 0 {
			if hi < phi || hi == phi && lo <= plo {
				return fail(name, idx("keys", int(i)), "not in strictly ascending order", ErrCorrupt)
			}
			if hi == phi && lo>>48 == plo>>48 {
				return fail(name, idx("keys", int(i)), "same key id as the key before", ErrCorrupt)
			}
		}
		b := bucketOf(hi, k, s.f)
		start, end := s.bucket(b)
		if i < start || i >= end {
			return fail(name, idx("keys", int(i)), "outside its fanout bucket", ErrCorrupt)
		}
		if msg := t.checkKey(e); msg != "" {
			return fail(name, idx("keys", int(i)), msg, ErrCorrupt)
		}
		phi, plo = hi, lo
	}
	return nil
}

func (v *View) readDelta(name string, data []byte) error {
	r := reader{b: data, obj: name}
	h, kh, err := readHeader(&r, kindDelta, deltaHeaderSize)
	if err != nil {
		return err
	}
	if err := checkHeader(name, &h, v.realm, v.version, v.base); err != nil {
		return err
	}
	le := binary.LittleEndian
	d := &deltaView{}
	d.issuedAt = int64(le.Uint64(kh[0:]))
	d.expiresAt = int64(le.Uint64(kh[8:]))
	if d.expiresAt <= d.issuedAt {
		return fail(name, "expires at", "not after issued at", ErrCorrupt)
	}
	if d.issuedAt != v.issuedAt || d.expiresAt != v.expiresAt {
		return fail(name, "issued at", "object times differ from the manifest's", ErrMismatch)
	}
	d.nAdds, d.nRemoves = le.Uint32(kh[16:]), le.Uint32(kh[20:])
	var counts tableCounts
	counts.get(kh[deltaTablesAt:])
	nRevT, nRevS := le.Uint32(kh[48:]), le.Uint32(kh[52:])
	if d.t, err = readTables(&r, &counts); err != nil {
		return err
	}
	if d.adds, err = r.section(d.nAdds, keyEntrySize, "add keys"); err != nil {
		return err
	}
	if d.removes, err = r.section(d.nRemoves, removeEntrySize, "remove keys"); err != nil {
		return err
	}
	if d.revTokens, err = readRevocations(&r, nRevT, "revoked tokens"); err != nil {
		return err
	}
	if d.revSessions, err = readRevocations(&r, nRevS, "revoked sessions"); err != nil {
		return err
	}
	if err := r.done(); err != nil {
		return err
	}
	var phi, plo uint64
	for i := uint32(0); i < d.nRemoves; i++ {
		hi, lo := entryAt(d.removes, removeEntrySize, i)
		if i > 0 && (hi < phi || hi == phi && lo <= plo) {
			return fail(name, idx("remove keys", int(i)), "not in strictly ascending order", ErrCorrupt)
		}
		if _, ok := v.findBase(hi, lo, ^uint64(0)); ok {
			v.keyCount--
		}
		phi, plo = hi, lo
	}
	for i := uint32(0); i < d.nAdds; i++ {
		e := d.adds[int(i)*keyEntrySize : int(i+1)*keyEntrySize]
		hi, lo := entryAt(d.adds, keyEntrySize, i)
		if i > 0 {
			if hi < phi || hi == phi && lo <= plo {
				return fail(name, idx("add keys", int(i)), "not in strictly ascending order", ErrCorrupt)
			}
			if hi == phi && lo>>48 == plo>>48 {
				return fail(name, idx("add keys", int(i)), "same key id as the key before", ErrCorrupt)
			}
		}
		if msg := d.t.checkKey(e); msg != "" {
			return fail(name, idx("add keys", int(i)), msg, ErrCorrupt)
		}
		if _, ok := search(d.removes, removeEntrySize, 0, d.nRemoves, hi, lo, ^uint64(0)); ok {
			return fail(name, idx("add keys", int(i)), "key is also removed", ErrCorrupt)
		}
		// A key id must name one live key, or a token minted by one key could be checked
		// against another's org and scopes.
		if be, ok := v.findBase(hi, lo, idMask); ok {
			bhi, blo := entryAt(be, keyEntrySize, 0)
			if bhi != hi || blo != lo {
				if _, removed := search(d.removes, removeEntrySize, 0, d.nRemoves, bhi, blo, ^uint64(0)); !removed {
					return fail(name, idx("add keys", int(i)), "key id collides with a different live key of the base", ErrCorrupt)
				}
				v.keyCount++
			}
		} else {
			v.keyCount++
		}
		phi, plo = hi, lo
	}
	if err := d.t.checkUsed(name); err != nil {
		return err
	}
	d.addIndex = newFanIndex(d.adds, keyEntrySize, d.nAdds)
	d.removeIndex = newFanIndex(d.removes, removeEntrySize, d.nRemoves)
	v.delta = d
	return nil
}
