package snapshot

import (
	"encoding/binary"
	"math/bits"
	"strconv"
)

// Object kinds (byte 6 of every object).
const (
	kindMeta  = 1
	kindShard = 2
	kindDelta = 3
)

// Fixed sizes of the format. Every section of an object starts at an offset that is a
// multiple of 8 and is followed by zero padding up to the next multiple of 8.
const (
	commonHeaderSize = 24 // magic, version, kind, realm length, version, base version
	metaHeaderSize   = 72
	deltaHeaderSize  = 56
	shardHeaderSize  = 16

	keyEntrySize    = 32 // hot key table entry
	removeEntrySize = 16 // delta removed-key entry: hash prefix
	revEntrySize    = 24 // revocation: hash prefix, until
	sigKeyEntrySize = 24 // signing key: not-after, kid end, public end, alg
	prefixSize      = 16 // published bytes of a key, jti or session hash

	// maxFanoutBits bounds a shard's fanout index at 2^16 entries (256 KiB).
	maxFanoutBits = 16
	// maxScopeSets is what the key entry's 16-bit scope-set index can address.
	maxScopeSets = 1 << 16
	// deltaBit marks an org or agent-set index that refers to the delta's own tables.
	deltaBit = 1 << 31
	// maxTableCount keeps base and delta indices apart (below deltaBit).
	maxTableCount = deltaBit - 1
	// maxIDLen bounds realm names, org ids, agent ids and kids (a one-byte length).
	maxIDLen = 255
)

// Offsets of the counts inside the meta and delta headers (relative to the kind header).
const (
	metaTablesAt  = 28 // nOrgs, orgBytes, nScopes, nAgentSets, nMembers, agentBytes
	deltaTablesAt = 24
)

// fanoutBits is the width of a shard's fanout index for n keys: about eight keys per bucket,
// so a lookup reads one index entry and binary-searches three or four entries. It is a pure
// function of n, so the encoding stays canonical.
func fanoutBits(n uint32) uint {
	if n <= 16 {
		return 0
	}
	f := bits.Len32(n-1) - 3
	if f > maxFanoutBits {
		f = maxFanoutBits
	}
	return uint(f)
}

// bucketOf is the fanout bucket of a hash whose first 8 bytes are hi, in a shard of 2^k
// shards with 2^f buckets: the f bits after the top k.
func bucketOf(hi uint64, k, f uint) uint32 {
	return uint32((hi << k) >> 32 >> (32 - f))
}

// pad8 rounds n up to a multiple of 8.
func pad8(n uint64) uint64 { return (n + 7) &^ 7 }

// tableCounts are the sizes of the tables meta and delta objects share.
type tableCounts struct {
	orgs, orgBytes, scopes, agentSets, members, agentBytes uint32
}

func (c *tableCounts) put(b []byte) {
	le := binary.LittleEndian
	le.PutUint32(b[0:], c.orgs)
	le.PutUint32(b[4:], c.orgBytes)
	le.PutUint32(b[8:], c.scopes)
	le.PutUint32(b[12:], c.agentSets)
	le.PutUint32(b[16:], c.members)
	le.PutUint32(b[20:], c.agentBytes)
}

func (c *tableCounts) get(b []byte) {
	le := binary.LittleEndian
	c.orgs = le.Uint32(b[0:])
	c.orgBytes = le.Uint32(b[4:])
	c.scopes = le.Uint32(b[8:])
	c.agentSets = le.Uint32(b[12:])
	c.members = le.Uint32(b[16:])
	c.agentBytes = le.Uint32(b[20:])
}

// writer appends sections, each padded to 8 bytes.
type writer struct{ b []byte }

func (w *writer) pad() {
	for len(w.b)%8 != 0 {
		w.b = append(w.b, 0)
	}
}

func (w *writer) u32(v uint32) { w.b = binary.LittleEndian.AppendUint32(w.b, v) }
func (w *writer) u64(v uint64) { w.b = binary.LittleEndian.AppendUint64(w.b, v) }

// header writes the common object header. kindHeader is reserved zeroed after it and returned
// for the caller to fill.
func (w *writer) header(kind uint8, realm string, version, base uint64, kindHeader int) []byte {
	w.b = append(w.b, ObjectMagic...)
	w.b = binary.LittleEndian.AppendUint16(w.b, FormatVersion)
	w.b = append(w.b, kind, byte(len(realm)))
	w.u64(version)
	w.u64(base)
	w.b = append(w.b, realm...)
	w.pad()
	at := len(w.b)
	w.b = append(w.b, make([]byte, kindHeader)...)
	return w.b[at : at+kindHeader]
}

// reader takes sections off an object, checking bounds and padding.
type reader struct {
	b   []byte
	off int
	obj string
}

// section returns the next count*size bytes and skips the zero padding after them.
func (r *reader) section(count uint32, size int, field string) ([]byte, error) {
	n := uint64(count) * uint64(size) // at most 2^32 * 32: no overflow
	rem := uint64(len(r.b) - r.off)
	if n > rem {
		return nil, fail(r.obj, field, "needs "+strconv.FormatUint(n, 10)+" bytes, "+strconv.FormatUint(rem, 10)+" left", ErrTruncated)
	}
	s := r.b[r.off : r.off+int(n)]
	end := r.off + int(n)
	padded := pad8(uint64(end))
	if padded > uint64(len(r.b)) {
		return nil, fail(r.obj, field, "padding missing", ErrTruncated)
	}
	for _, c := range r.b[end:int(padded)] {
		if c != 0 {
			return nil, fail(r.obj, field, "non-zero padding", ErrCorrupt)
		}
	}
	r.off = int(padded)
	return s[:len(s):len(s)], nil
}

func (r *reader) done() error {
	if r.off != len(r.b) {
		return fail(r.obj, "", strconv.Itoa(len(r.b)-r.off)+" trailing bytes", ErrCorrupt)
	}
	return nil
}

// objHeader is the decoded common header of an object.
type objHeader struct {
	kind          uint8
	realm         []byte
	version, base uint64
}

// readHeader decodes the common header and returns the kind header (size bytes) after it.
func readHeader(r *reader, wantKind uint8, size int) (objHeader, []byte, error) {
	var h objHeader
	b := r.b
	if len(b) < commonHeaderSize {
		return h, nil, fail(r.obj, "header", "", ErrTruncated)
	}
	if string(b[0:4]) != ObjectMagic {
		return h, nil, fail(r.obj, "header", "", ErrMagic)
	}
	if v := binary.LittleEndian.Uint16(b[4:]); v != FormatVersion {
		return h, nil, fail(r.obj, "header", "format version "+strconv.Itoa(int(v)), ErrVersion)
	}
	h.kind = b[6]
	if h.kind != wantKind {
		return h, nil, fail(r.obj, "header", "object kind "+strconv.Itoa(int(h.kind))+", want "+strconv.Itoa(int(wantKind)), ErrCorrupt)
	}
	h.version = binary.LittleEndian.Uint64(b[8:])
	h.base = binary.LittleEndian.Uint64(b[16:])
	r.off = commonHeaderSize
	if b[7] == 0 {
		return h, nil, fail(r.obj, "realm", "empty", ErrCorrupt)
	}
	realm, err := r.section(uint32(b[7]), 1, "realm")
	if err != nil {
		return h, nil, err
	}
	h.realm = realm
	kh, err := r.section(uint32(size), 1, "header")
	if err != nil {
		return h, nil, err
	}
	return h, kh, nil
}

// checkHeader checks that an object belongs to the realm and version the manifest names.
func checkHeader(obj string, h *objHeader, realm string, version, base uint64) error {
	if string(h.realm) != realm {
		return fail(obj, "realm", "object is for realm "+strconv.Quote(string(h.realm)), ErrRealm)
	}
	if h.version != version {
		return fail(obj, "version", "object is version "+strconv.FormatUint(h.version, 10)+", manifest needs "+strconv.FormatUint(version, 10), ErrMismatch)
	}
	if h.base != base {
		return fail(obj, "base version", "object has base "+strconv.FormatUint(h.base, 10)+", manifest needs "+strconv.FormatUint(base, 10), ErrMismatch)
	}
	return nil
}

func idx(field string, i int) string { return field + "[" + strconv.Itoa(i) + "]" }
