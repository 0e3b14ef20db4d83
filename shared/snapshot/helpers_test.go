package snapshot

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	mrand "math/rand/v2"
	"slices"
	"testing"

	"github.com/latchkeyhq/latchkey/shared/apikey"
	"github.com/latchkeyhq/latchkey/shared/hostcrypto"
)

var std = hostcrypto.Std

// Fixed test keys: a deterministic Ed25519 key, and P-256 keys made once per run.
var (
	edKey    = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32))
	edSigner = Ed25519Signer{Key: edKey, ID: "test-ed25519"}
	edPin    = TrustedKey{Alg: AlgEd25519, Public: edKey.Public().(ed25519.PublicKey)}

	otherEdKey = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, 32))
	otherEdPin = TrustedKey{Alg: AlgEd25519, Public: otherEdKey.Public().(ed25519.PublicKey)}

	esKey    = mustP256()
	esSigner = es256Signer{key: esKey, id: "test-es256"}
	esPin    = TrustedKey{Alg: AlgES256, Public: p256Bytes(esKey)}
)

func mustP256() *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	return k
}

func p256Bytes(k *ecdsa.PrivateKey) []byte {
	b, err := k.PublicKey.Bytes()
	if err != nil {
		panic(err)
	}
	return b
}

// es256Signer is what the control plane's KMS signer does: ES256 over SHA-256(message),
// returned as R||S.
type es256Signer struct {
	key *ecdsa.PrivateKey
	id  string
}

func (s es256Signer) Alg() uint8    { return AlgES256 }
func (s es256Signer) KeyID() string { return s.id }
func (s es256Signer) Sign(message []byte) ([]byte, error) {
	d := sha256.Sum256(message)
	r, ss, err := ecdsa.Sign(rand.Reader, s.key, d[:])
	if err != nil {
		return nil, err
	}
	out := make([]byte, 64)
	r.FillBytes(out[:32])
	ss.FillBytes(out[32:])
	return out, nil
}

// hashOf is the hash of a test key string.
func hashOf(s string) apikey.Hash { return apikey.HashOf(std, []byte(s)) }

func revOf(s string, until int64) Revocation {
	return Revocation{Hash: sha256.Sum256([]byte(s)), Until: until}
}

const (
	t0      = 1_750_000_000
	expires = t0 + 3600
)

// sampleContents exercises every table.
func sampleContents() *Contents {
	c := &Contents{
		Realm: "prod", Version: 7, IssuedAt: t0, ExpiresAt: expires,
		Policy: []byte("LKPL\x01opaque policy bytes"),
		Orgs: []Org{
			{ID: "org_zeta", State: OrgSuspended},
			{ID: "org_alpha", State: OrgActive},
			{ID: "org_broke", State: OrgBudgetExhausted},
		},
		SigningKeys: []SigningKey{
			{KID: "k2", Alg: AlgES256, Public: p256Bytes(esKey), NotAfter: expires},
			{KID: "k1", Alg: AlgEd25519, Public: []byte(edKey.Public().(ed25519.PublicKey))},
		},
		RevokedTokens:   []Revocation{revOf("jti-1", 0), revOf("jti-2", t0+100)},
		RevokedSessions: []Revocation{revOf("sess-1", t0+50)},
	}
	for i, spec := range []struct {
		key    string
		org    string
		scopes uint64
		agents []string
		exp    int64
	}{
		{"tb_alpha_1", "org_alpha", 0b011, nil, 0},
		{"tb_alpha_2", "org_alpha", 0b011, []string{"agent-b", "agent-a"}, t0 + 10},
		{"tb_alpha_3", "org_alpha", 0b100, []string{"agent-a", "agent-b", "agent-a"}, 0},
		{"tb_broke_1", "org_broke", 0b001, []string{"agent-z"}, 0},
		{"tb_zeta_1", "org_zeta", ^uint64(0), nil, 1<<32 - 1},
	} {
		c.Keys = append(c.Keys, KeyRecord{Hash: hashOf(spec.key), Expiry: spec.exp, Org: spec.org, Scopes: spec.scopes,
			Agents: spec.agents, Type: uint8(i % 3), Flags: uint8(i)})
	}
	return c
}

// randomContents makes n keys with random hashes over a few orgs and scope sets; keys get
// agents now and then.
func randomContents(n int, seed uint64) *Contents {
	rng := mrand.New(mrand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	c := &Contents{Realm: "big", Version: 1, IssuedAt: t0, ExpiresAt: expires, Policy: []byte("p")}
	for i := 0; i < 20; i++ {
		c.Orgs = append(c.Orgs, Org{ID: "org_" + string(rune('a'+i)), State: uint8(i % 3)})
	}
	agents := [][]string{{"a1"}, {"a1", "a2"}, {"a3"}}
	c.Keys = make([]KeyRecord, n)
	seen := make(map[[10]byte]bool, n)
	for i := range c.Keys {
		k := &c.Keys[i]
		for {
			for j := 0; j < 32; j += 8 {
				v := rng.Uint64()
				for b := 0; b < 8; b++ {
					k.Hash[j+b] = byte(v >> (8 * b))
				}
			}
			id := k.Hash.ID()
			if !seen[id] {
				seen[id] = true
				break
			}
		}
		k.Org = c.Orgs[i%20].ID
		k.Scopes = uint64(1) << (i % 10)
		if i%100 == 0 {
			k.Agents = agents[i%3]
		}
		if i%7 == 0 {
			k.Expiry = t0 + int64(i)
		}
		k.Type = uint8(i % 4)
	}
	return c
}

// snapshotFiles is a published snapshot as an edge receives it.
type snapshotFiles struct {
	manifest []byte
	m        Manifest // as signed
	objects  [][]byte
	delta    []byte
}

func publish(t testing.TB, c *Contents, opt BuildOptions, s Signer) *snapshotFiles {
	t.Helper()
	f, err := publishE(c, opt, s)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func publishE(c *Contents, opt BuildOptions, s Signer) (*snapshotFiles, error) {
	objs, err := Build(c, opt)
	if err != nil {
		return nil, err
	}
	f := &snapshotFiles{m: Manifest{Realm: c.Realm, Version: c.Version, IssuedAt: c.IssuedAt, ExpiresAt: c.ExpiresAt, Objects: Refs(objs, std)}}
	for _, o := range objs {
		f.objects = append(f.objects, o.Data)
	}
	f.manifest, err = SignManifest(&f.m, s)
	return f, err
}

// withDelta republishes f with a delta over it.
func withDelta(t testing.TB, f *snapshotFiles, d *Delta, s Signer) *snapshotFiles {
	t.Helper()
	o, err := BuildDelta(d)
	if err != nil {
		t.Fatalf("BuildDelta: %v", err)
	}
	ref := Ref(o, std)
	g := &snapshotFiles{m: f.m, objects: f.objects, delta: o.Data}
	g.m.Version, g.m.BaseVersion, g.m.IssuedAt, g.m.ExpiresAt, g.m.Delta = d.Version, f.m.Version, d.IssuedAt, d.ExpiresAt, &ref
	g.manifest, err = SignManifest(&g.m, s)
	if err != nil {
		t.Fatalf("SignManifest: %v", err)
	}
	return g
}

// load is what an edge does: verify the manifest, then open the objects.
func (f *snapshotFiles) load(pins ...TrustedKey) (*View, error) {
	if len(pins) == 0 {
		pins = []TrustedKey{edPin}
	}
	m, err := VerifyManifest(f.manifest, pins, std)
	if err != nil {
		return nil, err
	}
	return Open(m, f.objects, f.delta, std)
}

func mustLoad(t testing.TB, f *snapshotFiles) *View {
	t.Helper()
	v, err := f.load()
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	return v
}

// resign re-signs f's manifest after objects changed, so that a test reaches the structural
// checks behind the digests.
func (f *snapshotFiles) resign(t testing.TB) {
	t.Helper()
	for i := range f.objects {
		f.m.Objects[i].Size = uint64(len(f.objects[i]))
		f.m.Objects[i].SHA256 = sha256.Sum256(f.objects[i])
	}
	if f.m.Delta != nil {
		d := *f.m.Delta
		d.Size, d.SHA256 = uint64(len(f.delta)), sha256.Sum256(f.delta)
		f.m.Delta = &d
	}
	var err error
	if f.manifest, err = SignManifest(&f.m, edSigner); err != nil {
		t.Fatalf("SignManifest: %v", err)
	}
}

func (f *snapshotFiles) clone() *snapshotFiles {
	g := *f
	g.manifest = slices.Clone(f.manifest)
	g.m.Objects = slices.Clone(f.m.Objects)
	g.objects = make([][]byte, len(f.objects))
	for i := range f.objects {
		g.objects[i] = slices.Clone(f.objects[i])
	}
	g.delta = slices.Clone(f.delta)
	return &g
}

// truncate16 is what publishing keeps of a hash.
func truncate16[T ~[32]byte](h T) T {
	var out T
	copy(out[:16], h[:16])
	return out
}

func wantErr(t *testing.T, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("error = %v, want %v", err, want)
	}
}
