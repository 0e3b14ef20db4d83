package abi

import (
	"errors"
	"math"

	"github.com/latchkeyhq/latchkey/shared/hostcrypto"
	"github.com/latchkeyhq/latchkey/shared/limits"
	"github.com/latchkeyhq/latchkey/shared/policy"
	"github.com/latchkeyhq/latchkey/shared/snapshot"
	"github.com/latchkeyhq/latchkey/shared/verifier"
)

// Load is everything a snapshot load needs: the host's clock, the pinned manifest keys, the
// signed manifest, the objects in manifest order and the delta the manifest names (nil when
// it names none).
type Load struct {
	// Now is the host's clock in Unix nanoseconds; freshness is checked against it.
	Now      int64
	Trusted  []snapshot.TrustedKey
	Manifest []byte
	Objects  [][]byte
	Delta    []byte
}

// loadFixed is the size of a load's fixed part: version, flags, key count, object count, now.
const loadFixed = 1 + 1 + 1 + 2 + 8

// Load flags.
const (
	flagDelta = 1 << 0
	loadFlags = flagDelta
)

// LoadLen returns the size of l's encoding, or -1 when l cannot be encoded: no trusted key or
// more than MaxTrustedKeys, a public key above 255 bytes, or a manifest, object count, object
// or delta above the limits of shared/limits.
func LoadLen(l *Load) int {
	if len(l.Trusted) == 0 || len(l.Trusted) > MaxTrustedKeys || len(l.Manifest) > limits.MaxManifestBytes ||
		len(l.Objects) > limits.MaxManifestObjects || len(l.Delta) > limits.MaxSnapshotObjectBytes {
		return -1
	}
	n := loadFixed + 4 + len(l.Manifest)
	for _, k := range l.Trusted {
		if len(k.Public) > math.MaxUint8 {
			return -1
		}
		n += 2 + len(k.Public)
	}
	for _, o := range l.Objects {
		if len(o) > limits.MaxSnapshotObjectBytes {
			return -1
		}
		n += 4 + len(o)
	}
	if l.Delta != nil {
		n += 4 + len(l.Delta)
	}
	return n
}

// AppendLoad appends the encoding of l to dst; it fails with ErrTooLarge (dst unchanged) when
// LoadLen(l) is -1.
func AppendLoad(dst []byte, l *Load) ([]byte, error) {
	if LoadLen(l) < 0 {
		return dst, ErrTooLarge
	}
	var flags byte
	if l.Delta != nil {
		flags |= flagDelta
	}
	dst = append(dst, Version, flags, byte(len(l.Trusted)))
	dst = appendU16(dst, uint16(len(l.Objects)))
	dst = appendU64(dst, uint64(l.Now))
	for _, k := range l.Trusted {
		dst = append(dst, k.Alg, byte(len(k.Public)))
		dst = append(dst, k.Public...)
	}
	dst = appendBytes32(dst, l.Manifest)
	for _, o := range l.Objects {
		dst = appendBytes32(dst, o)
	}
	if l.Delta != nil {
		dst = appendBytes32(dst, l.Delta)
	}
	return dst, nil
}

// DecodeLoad decodes b into l, reusing l's Trusted and Objects storage. The decoded slices
// point into b, which must then stay unchanged for as long as a snapshot opened from them is
// in use. On error l is reset and the error is ErrVersion or ErrMalformed.
func DecodeLoad(b []byte, l *Load) error {
	keys, objs := l.Trusted[:0], l.Objects[:0]
	*l = Load{Trusted: keys, Objects: objs}
	rd := reader{b: b}
	if rd.u8() != Version {
		if rd.bad {
			return ErrMalformed
		}
		return ErrVersion
	}
	flags, nk, no := rd.u8(), int(rd.u8()), int(rd.u16())
	now := int64(rd.u64())
	if rd.bad || flags&^loadFlags != 0 || nk == 0 || nk > MaxTrustedKeys || no > limits.MaxManifestObjects {
		return ErrMalformed
	}
	for i := 0; i < nk && !rd.bad; i++ {
		alg := rd.u8()
		keys = append(keys, snapshot.TrustedKey{Alg: alg, Public: rd.take(int(rd.u8()))})
	}
	manifest := rd.bytes32(limits.MaxManifestBytes)
	for i := 0; i < no && !rd.bad; i++ {
		objs = append(objs, rd.bytes32(limits.MaxSnapshotObjectBytes))
	}
	var delta []byte
	if flags&flagDelta != 0 {
		if delta = rd.bytes32(limits.MaxSnapshotObjectBytes); delta == nil && !rd.bad {
			delta = []byte{}
		}
	}
	if !rd.done() {
		clear(keys)
		clear(objs)
		return ErrMalformed
	}
	*l = Load{Now: now, Trusted: keys, Manifest: manifest, Objects: objs, Delta: delta}
	return nil
}

// Open does what a load call does with a decoded Load, in the guest and in a native host
// alike: verify the manifest signature under the pinned keys, refuse a manifest of another
// realm than the snapshot held (snapshot.ErrRealm: versions only order one realm's stream),
// older than the version held (rollback) or expired at l.Now (freeze), check every object's
// size and SHA-256, and compile the snapshot's policy. held is the state in use (nil for
// none). On error the state is nil.
func (l *Load) Open(held *verifier.State, c hostcrypto.Provider) (*verifier.State, error) {
	m, err := snapshot.VerifyManifest(l.Manifest, l.Trusted, c)
	if err != nil {
		return nil, err
	}
	var version uint64
	if held != nil {
		if realm := held.View().Realm(); m.Realm != realm {
			return nil, &snapshot.Error{Object: "manifest", Field: "realm", Reason: "names realm " + m.Realm + ", the snapshot held is realm " + realm, Err: snapshot.ErrRealm}
		}
		version = held.View().Version()
	}
	if err := m.CheckFresh(l.Now/1e9, version); err != nil {
		return nil, err
	}
	v, err := snapshot.Open(m, l.Objects, l.Delta, c)
	if err != nil {
		return nil, err
	}
	return verifier.NewState(v)
}

// Status is the outcome of a load: 0 for success, else which check refused the snapshot.
type Status uint8

// Load statuses. Each but StatusOK, StatusPolicy and StatusOther stands for one sentinel
// error (Status.Err).
const (
	StatusOK Status = iota
	// StatusMalformed: the load encoding itself is malformed (ErrMalformed, ErrVersion).
	StatusMalformed
	StatusMagic     // snapshot.ErrMagic
	StatusVersion   // snapshot.ErrVersion
	StatusTruncated // snapshot.ErrTruncated
	StatusCorrupt   // snapshot.ErrCorrupt
	StatusDigest    // snapshot.ErrDigest
	StatusSignature // snapshot.ErrSignature
	StatusRollback  // snapshot.ErrRollback
	StatusExpired   // snapshot.ErrExpired
	StatusRealm     // snapshot.ErrRealm
	StatusMismatch  // snapshot.ErrMismatch
	StatusTooLarge  // snapshot.ErrTooLarge
	StatusInvalid   // snapshot.ErrInvalid
	// StatusPolicy: the snapshot's policy does not decode or compile (ErrPolicy).
	StatusPolicy
	// StatusOther: any other failure (ErrLoad).
	StatusOther
)

var (
	// ErrPolicy is what StatusPolicy unwraps to.
	ErrPolicy = errors.New("abi: snapshot policy refused")
	// ErrLoad is what StatusOther unwraps to.
	ErrLoad = errors.New("abi: snapshot load failed")
)

var statusErrors = [...]error{
	StatusOK:        nil,
	StatusMalformed: ErrMalformed,
	StatusMagic:     snapshot.ErrMagic,
	StatusVersion:   snapshot.ErrVersion,
	StatusTruncated: snapshot.ErrTruncated,
	StatusCorrupt:   snapshot.ErrCorrupt,
	StatusDigest:    snapshot.ErrDigest,
	StatusSignature: snapshot.ErrSignature,
	StatusRollback:  snapshot.ErrRollback,
	StatusExpired:   snapshot.ErrExpired,
	StatusRealm:     snapshot.ErrRealm,
	StatusMismatch:  snapshot.ErrMismatch,
	StatusTooLarge:  snapshot.ErrTooLarge,
	StatusInvalid:   snapshot.ErrInvalid,
	StatusPolicy:    ErrPolicy,
	StatusOther:     ErrLoad,
}

// Err returns the sentinel error the status stands for (nil for StatusOK, ErrLoad for an
// unknown status).
func (s Status) Err() error {
	if int(s) < len(statusErrors) {
		return statusErrors[s]
	}
	return ErrLoad
}

// StatusOf classifies a load error: the status of the first sentinel it matches (errors.Is),
// StatusPolicy for an error from the snapshot's policy, else StatusOther.
func StatusOf(err error) Status {
	if err == nil {
		return StatusOK
	}
	if errors.Is(err, ErrVersion) {
		return StatusMalformed
	}
	for s := StatusMalformed; s < StatusPolicy; s++ {
		if errors.Is(err, statusErrors[s]) {
			return s
		}
	}
	if isPolicyError(err) {
		return StatusPolicy
	}
	return StatusOther
}

// LoadError is a refused load as hosts report it: the status and the core's error text.
// errors.Is matches the status's sentinel (snapshot.ErrRollback, ...).
type LoadError struct {
	Status Status
	Text   string
}

func (e *LoadError) Error() string { return e.Text }

func (e *LoadError) Unwrap() error { return e.Status.Err() }

// NewLoadError wraps a load error from the core the way a guest reports it.
func NewLoadError(err error) *LoadError {
	return &LoadError{Status: StatusOf(err), Text: err.Error()}
}

// LoadResult is what a load call returns: its status and error text, and a description of
// the snapshot the guest holds after the call (the previous one when the load was refused).
type LoadResult struct {
	Status Status
	// Error is the core's error text; "" on success.
	Error string
	// Version is the version held, 0 when none.
	Version uint64
	// Realm is the realm of the snapshot held.
	Realm string
	// QueryParam is the policy's query credential parameter ("token"), "" when it has none.
	QueryParam string
	// Headers are the request headers (lower case) the policy reads: a host passes only these.
	Headers []string
	// Strip are the identity headers (lower case) a host removes from every request.
	Strip []string
}

// Describe fills r with the description of st (nil: no snapshot held), leaving Status and
// Error alone.
func Describe(st *verifier.State, r *LoadResult) {
	r.Version, r.Realm, r.QueryParam, r.Headers, r.Strip = 0, "", "", r.Headers[:0], r.Strip[:0]
	if st == nil {
		return
	}
	pol := st.Policy()
	r.Version, r.Realm, r.QueryParam = st.View().Version(), st.View().Realm(), pol.QueryParam()
	add := func(name string) {
		for _, h := range r.Headers {
			if h == name {
				return
			}
		}
		r.Headers = append(r.Headers, name)
	}
	for _, s := range pol.Sources() {
		if s.In == "bearer" || s.In == "header" {
			add(s.Name)
		}
	}
	if a := pol.AgentHeader(); a != "" {
		add(a)
	}
	r.Strip = append(r.Strip, st.StripHeaders()...)
}

// AppendLoadResult appends the encoding of r to dst. An error text longer than MaxFieldBytes
// is cut; it fails with ErrTooLarge (dst unchanged) when a name or list is above its bound.
func AppendLoadResult(dst []byte, r *LoadResult) ([]byte, error) {
	if len(r.Headers) > MaxNames || len(r.Strip) > MaxNames || len(r.Realm) > MaxFieldBytes || len(r.QueryParam) > MaxFieldBytes {
		return dst, ErrTooLarge
	}
	for _, l := range [2][]string{r.Headers, r.Strip} {
		for _, n := range l {
			if len(n) > MaxFieldBytes {
				return dst, ErrTooLarge
			}
		}
	}
	text := r.Error
	if len(text) > MaxFieldBytes {
		text = text[:MaxFieldBytes]
	}
	dst = append(dst, Version, byte(r.Status), byte(len(r.Headers)), byte(len(r.Strip)))
	dst = appendU64(dst, r.Version)
	dst = appendString16(dst, text)
	dst = appendString16(dst, r.Realm)
	dst = appendString16(dst, r.QueryParam)
	for _, l := range [2][]string{r.Headers, r.Strip} {
		for _, n := range l {
			dst = appendString16(dst, n)
		}
	}
	return dst, nil
}

// DecodeLoadResult decodes a load result; its strings are copies. On error it returns nil and
// ErrVersion or ErrMalformed.
func DecodeLoadResult(b []byte) (*LoadResult, error) {
	rd := reader{b: b}
	if rd.u8() != Version {
		if rd.bad {
			return nil, ErrMalformed
		}
		return nil, ErrVersion
	}
	status, nh, ns := Status(rd.u8()), int(rd.u8()), int(rd.u8())
	r := &LoadResult{Status: status, Version: rd.u64()}
	if rd.bad || status > StatusOther || nh > MaxNames || ns > MaxNames {
		return nil, ErrMalformed
	}
	r.Error = string(rd.bytes16(MaxFieldBytes))
	r.Realm = string(rd.bytes16(MaxFieldBytes))
	r.QueryParam = string(rd.bytes16(MaxFieldBytes))
	for i := 0; i < nh && !rd.bad; i++ {
		r.Headers = append(r.Headers, string(rd.bytes16(MaxFieldBytes)))
	}
	for i := 0; i < ns && !rd.bad; i++ {
		r.Strip = append(r.Strip, string(rd.bytes16(MaxFieldBytes)))
	}
	if !rd.done() {
		return nil, ErrMalformed
	}
	return r, nil
}

func isPolicyError(err error) bool {
	return errors.Is(err, ErrPolicy) || errors.Is(err, policy.ErrMalformed) || errors.Is(err, policy.ErrVersion) ||
		errors.Is(err, policy.ErrTooLarge) || errors.Is(err, policy.ErrInvalid)
}
