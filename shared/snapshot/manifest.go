package snapshot

import (
	"crypto/ed25519"
	"encoding/binary"
	"strconv"

	"github.com/latchkeyhq/latchkey/shared/hostcrypto"
	"github.com/latchkeyhq/latchkey/shared/limits"
)

// signatureSize is the length of every manifest signature: Ed25519, or ES256 as R||S.
const signatureSize = 64

// envelopeHeaderSize: magic, format version, signature length.
const envelopeHeaderSize = 8

// Manifest names one version of a realm's snapshot and the digest of every object in it.
type Manifest struct {
	Realm string
	// Version strictly increases over a realm's manifests, full or delta.
	Version uint64
	// BaseVersion is 0 for a full snapshot. With a delta it is the version of the full
	// snapshot that Objects hold, below Version.
	BaseVersion         uint64
	IssuedAt, ExpiresAt int64
	// Objects are the meta object, then the key shards in shard order.
	Objects []ObjectRef
	// Delta is the delta object taking the full snapshot from BaseVersion to Version.
	Delta *ObjectRef
}

// ObjectRef names an object and pins its size and SHA-256.
type ObjectRef struct {
	Name   string
	Size   uint64
	SHA256 [32]byte
}

// TrustedKey is a pinned manifest-signing public key. Its Alg alone decides how a signature
// is checked; nothing in a manifest can choose the algorithm.
type TrustedKey struct {
	Alg    uint8 // AlgEd25519 (Public: 32 bytes) or AlgES256 (Public: 65-byte uncompressed point)
	Public []byte
}

// Signer signs manifests on the control plane.
type Signer interface {
	Alg() uint8
	// KeyID names the key in the control plane's records; it is not part of the manifest.
	KeyID() string
	// Sign signs message: plain Ed25519, or ES256 over SHA-256(message) returned as R||S.
	Sign(message []byte) ([]byte, error)
}

// Ed25519Signer signs with an Ed25519 private key held in memory.
type Ed25519Signer struct {
	Key ed25519.PrivateKey
	ID  string
}

func (s Ed25519Signer) Alg() uint8    { return AlgEd25519 }
func (s Ed25519Signer) KeyID() string { return s.ID }
func (s Ed25519Signer) Sign(message []byte) ([]byte, error) {
	if len(s.Key) != ed25519.PrivateKeySize {
		return nil, fail("manifest", "signer", "Ed25519 private key must be 64 bytes", ErrInvalid)
	}
	return ed25519.Sign(s.Key, message), nil
}

// Ref describes o for a manifest.
func Ref(o Object, c hostcrypto.Provider) ObjectRef {
	return ObjectRef{Name: o.Name, Size: uint64(len(o.Data)), SHA256: c.SHA256(o.Data)}
}

// Refs describes objects for a manifest, in order.
func Refs(objs []Object, c hostcrypto.Provider) []ObjectRef {
	out := make([]ObjectRef, len(objs))
	for i := range objs {
		out[i] = Ref(objs[i], c)
	}
	return out
}

// SignManifest encodes m and signs it with s, returning the bytes to publish.
func SignManifest(m *Manifest, s Signer) ([]byte, error) {
	if err := m.validate(ErrInvalid); err != nil {
		return nil, err
	}
	if a := s.Alg(); a != AlgEd25519 && a != AlgES256 {
		return nil, fail("manifest", "signer", "unknown algorithm "+strconv.Itoa(int(a)), ErrInvalid)
	}
	body := m.appendBody(nil)
	if envelopeHeaderSize+signatureSize+len(body) > limits.MaxManifestBytes {
		return nil, fail("manifest", "", strconv.Itoa(len(body))+" byte body", ErrTooLarge)
	}
	msg := make([]byte, 0, len(ManifestLabel)+len(body))
	msg = append(append(msg, ManifestLabel...), body...)
	sig, err := s.Sign(msg)
	if err != nil {
		return nil, err
	}
	if len(sig) != signatureSize {
		return nil, fail("manifest", "signature", "signer returned "+strconv.Itoa(len(sig))+" bytes, want 64", ErrInvalid)
	}
	out := make([]byte, 0, envelopeHeaderSize+signatureSize+len(body))
	out = append(out, ManifestMagic...)
	out = binary.LittleEndian.AppendUint16(out, FormatVersion)
	out = binary.LittleEndian.AppendUint16(out, signatureSize)
	out = append(out, sig...)
	return append(out, body...), nil
}

// VerifyManifest checks the signature over the exact received body under the pinned keys,
// then decodes the body. It does not check freshness: call CheckFresh.
func VerifyManifest(data []byte, trusted []TrustedKey, c hostcrypto.Provider) (*Manifest, error) {
	const obj = "manifest"
	if len(data) > limits.MaxManifestBytes {
		return nil, fail(obj, "", strconv.Itoa(len(data))+" bytes", ErrTooLarge)
	}
	if len(data) < envelopeHeaderSize {
		return nil, fail(obj, "envelope", "", ErrTruncated)
	}
	if string(data[:4]) != ManifestMagic {
		return nil, fail(obj, "envelope", "", ErrMagic)
	}
	if v := binary.LittleEndian.Uint16(data[4:]); v != FormatVersion {
		return nil, fail(obj, "envelope", "format version "+strconv.Itoa(int(v)), ErrVersion)
	}
	if n := binary.LittleEndian.Uint16(data[6:]); n != signatureSize {
		return nil, fail(obj, "envelope", "signature length "+strconv.Itoa(int(n)), ErrSignature)
	}
	if len(data) < envelopeHeaderSize+signatureSize {
		return nil, fail(obj, "signature", "", ErrTruncated)
	}
	sig := data[envelopeHeaderSize : envelopeHeaderSize+signatureSize]
	body := data[envelopeHeaderSize+signatureSize:]
	msg := make([]byte, 0, len(ManifestLabel)+len(body))
	msg = append(append(msg, ManifestLabel...), body...)
	ok := false
	for i := range trusted {
		switch k := &trusted[i]; k.Alg {
		case AlgEd25519:
			ok = len(k.Public) == hostcrypto.Ed25519PublicKeySize && c.VerifyEd25519(k.Public, msg, sig)
		case AlgES256:
			ok = len(k.Public) == hostcrypto.P256PublicKeySize && c.VerifyES256(k.Public, msg, sig)
		}
		if ok {
			break
		}
	}
	if !ok {
		return nil, fail(obj, "signature", strconv.Itoa(len(trusted))+" pinned keys tried", ErrSignature)
	}
	m, err := decodeBody(body)
	if err != nil {
		return nil, err
	}
	return m, nil
}

// CheckFresh refuses a manifest older than the version held (rollback), expired at now
// (freeze), or issued more than limits.MaxClockSkewSeconds in the future. A manifest of the version held is fresh: it brings nothing new.
func (m *Manifest) CheckFresh(now int64, held uint64) error {
	if m.IssuedAt > now+limits.MaxClockSkewSeconds {
		// A manifest from the future would never grow stale: staleness is measured from
		// IssuedAt. More skew than the bound means a wrong clock or a forged-ahead issue time.
		return fail("manifest", "issued at", "issued at "+strconv.FormatInt(m.IssuedAt, 10)+" is in the future (now "+strconv.FormatInt(now, 10)+")", ErrInvalid)
	}
	if m.Version < held {
		return fail("manifest", "version", strconv.FormatUint(m.Version, 10)+" < held "+strconv.FormatUint(held, 10), ErrRollback)
	}
	if now >= m.ExpiresAt {
		return fail("manifest", "expires at", "expired at "+strconv.FormatInt(m.ExpiresAt, 10)+", now "+strconv.FormatInt(now, 10), ErrExpired)
	}
	return nil
}

// fullVersion is the version of the meta and shard objects.
func (m *Manifest) fullVersion() uint64 {
	if m.Delta != nil {
		return m.BaseVersion
	}
	return m.Version
}

// validate checks the rules a decoded manifest satisfies; err is the sentinel to report.
func (m *Manifest) validate(err error) error {
	const obj = "manifest"
	if len(m.Realm) == 0 || len(m.Realm) > maxIDLen {
		return fail(obj, "realm", "length must be 1..255", err)
	}
	if m.Version == 0 {
		return fail(obj, "version", "must be at least 1", err)
	}
	if m.Delta == nil && m.BaseVersion != 0 {
		return fail(obj, "base version", "must be 0 without a delta", err)
	}
	if m.Delta != nil && (m.BaseVersion == 0 || m.BaseVersion >= m.Version) {
		return fail(obj, "base version", "must be at least 1 and below the version", err)
	}
	if m.ExpiresAt <= m.IssuedAt {
		return fail(obj, "expires at", "must be after issued at", err)
	}
	if len(m.Objects) < 2 || len(m.Objects) > limits.MaxManifestObjects {
		return fail(obj, "objects", strconv.Itoa(len(m.Objects))+" objects, want 2.."+strconv.Itoa(limits.MaxManifestObjects), err)
	}
	if n := len(m.Objects) - 1; n&(n-1) != 0 || n > 1<<limits.MaxShardBits {
		return fail(obj, "objects", "shard count "+strconv.Itoa(n)+" is not a power of two up to 2^MaxShardBits", err)
	}
	for i := range m.Objects {
		if msg := m.Objects[i].check(); msg != "" {
			return fail(obj, idx("objects", i), msg, err)
		}
		for j := 0; j < i; j++ {
			if m.Objects[j].Name == m.Objects[i].Name {
				return fail(obj, idx("objects", i), "duplicate name "+strconv.Quote(m.Objects[i].Name), err)
			}
		}
	}
	if m.Delta != nil {
		if msg := m.Delta.check(); msg != "" {
			return fail(obj, "delta", msg, err)
		}
		for i := range m.Objects {
			if m.Objects[i].Name == m.Delta.Name {
				return fail(obj, "delta", "name also used by objects["+strconv.Itoa(i)+"]", err)
			}
		}
	}
	return nil
}

// check returns what is wrong with a reference, or "". Names are restricted to a set that is
// safe as a file name and an object-storage key everywhere: [A-Za-z0-9._-], not starting
// with '.'.
func (r *ObjectRef) check() string {
	if len(r.Name) == 0 || len(r.Name) > limits.MaxSnapshotObjectNameBytes {
		return "name length must be 1.." + strconv.Itoa(limits.MaxSnapshotObjectNameBytes)
	}
	if r.Name[0] == '.' {
		return "name starts with '.'"
	}
	for i := 0; i < len(r.Name); i++ {
		c := r.Name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return "name has a character outside [A-Za-z0-9._-]"
		}
	}
	if r.Size > limits.MaxSnapshotObjectBytes {
		return "size " + strconv.FormatUint(r.Size, 10) + " above limits.MaxSnapshotObjectBytes"
	}
	return ""
}

func (m *Manifest) appendBody(b []byte) []byte {
	le := binary.LittleEndian
	b = le.AppendUint16(b, FormatVersion)
	b = append(b, byte(len(m.Realm)))
	b = append(b, m.Realm...)
	b = le.AppendUint64(b, m.Version)
	b = le.AppendUint64(b, m.BaseVersion)
	b = le.AppendUint64(b, uint64(m.IssuedAt))
	b = le.AppendUint64(b, uint64(m.ExpiresAt))
	b = le.AppendUint16(b, uint16(len(m.Objects)))
	for i := range m.Objects {
		b = m.Objects[i].appendTo(b)
	}
	if m.Delta == nil {
		return append(b, 0)
	}
	return m.Delta.appendTo(append(b, 1))
}

func (r *ObjectRef) appendTo(b []byte) []byte {
	b = append(b, byte(len(r.Name)))
	b = append(b, r.Name...)
	b = binary.LittleEndian.AppendUint64(b, r.Size)
	return append(b, r.SHA256[:]...)
}

// bodyReader reads the sequential manifest body.
type bodyReader struct {
	b   []byte
	bad bool
}

func (r *bodyReader) take(n int) []byte {
	if r.bad || n > len(r.b) {
		r.bad = true
		return nil
	}
	s := r.b[:n]
	r.b = r.b[n:]
	return s
}

func (r *bodyReader) u8() uint8 {
	if s := r.take(1); s != nil {
		return s[0]
	}
	return 0
}

func (r *bodyReader) u16() uint16 {
	if s := r.take(2); s != nil {
		return binary.LittleEndian.Uint16(s)
	}
	return 0
}

func (r *bodyReader) u64() uint64 {
	if s := r.take(8); s != nil {
		return binary.LittleEndian.Uint64(s)
	}
	return 0
}

func (r *bodyReader) ref() ObjectRef {
	var o ObjectRef
	o.Name = string(r.take(int(r.u8())))
	o.Size = r.u64()
	copy(o.SHA256[:], r.take(32))
	return o
}

func decodeBody(body []byte) (*Manifest, error) {
	const obj = "manifest"
	r := bodyReader{b: body}
	if v := r.u16(); !r.bad && v != FormatVersion {
		return nil, fail(obj, "body", "format version "+strconv.Itoa(int(v)), ErrVersion)
	}
	m := &Manifest{}
	m.Realm = string(r.take(int(r.u8())))
	m.Version = r.u64()
	m.BaseVersion = r.u64()
	m.IssuedAt = int64(r.u64())
	m.ExpiresAt = int64(r.u64())
	n := int(r.u16())
	if n > limits.MaxManifestObjects {
		return nil, fail(obj, "objects", strconv.Itoa(n)+" objects", ErrTooLarge)
	}
	if !r.bad {
		m.Objects = make([]ObjectRef, n)
		for i := range m.Objects {
			m.Objects[i] = r.ref()
		}
	}
	switch r.u8() {
	case 0:
	case 1:
		d := r.ref()
		m.Delta = &d
	default:
		if !r.bad {
			return nil, fail(obj, "delta", "presence byte not 0 or 1", ErrCorrupt)
		}
	}
	if r.bad {
		return nil, fail(obj, "body", "", ErrTruncated)
	}
	if len(r.b) != 0 {
		return nil, fail(obj, "body", strconv.Itoa(len(r.b))+" trailing bytes", ErrCorrupt)
	}
	if err := m.validate(ErrCorrupt); err != nil {
		return nil, err
	}
	return m, nil
}
