package snapshot

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/latchkeyhq/latchkey/shared/apikey"
	"github.com/latchkeyhq/latchkey/shared/limits"
)

// normalize is what a snapshot keeps of contents: sorted tables, 16-byte hashes, canonical
// agent sets, merged revocations.
func normalize(c *Contents) *Contents {
	out := *c
	out.Policy = slices.Clone(c.Policy)
	out.Keys = normalizeKeys(c.Keys)
	out.Orgs = slices.Clone(c.Orgs)
	slices.SortFunc(out.Orgs, func(a, b Org) int { return cmp.Compare(a.ID, b.ID) })
	out.SigningKeys = slices.Clone(c.SigningKeys)
	slices.SortFunc(out.SigningKeys, func(a, b SigningKey) int { return cmp.Compare(a.KID, b.KID) })
	out.RevokedTokens = normalizeRevs(c.RevokedTokens)
	out.RevokedSessions = normalizeRevs(c.RevokedSessions)
	return &out
}

func normalizeKeys(in []KeyRecord) []KeyRecord {
	var out []KeyRecord
	for _, k := range in {
		k.Hash = truncate16(k.Hash)
		if len(k.Agents) == 0 {
			k.Agents = nil
		} else {
			k.Agents = slices.Compact(slices.Sorted(slices.Values(k.Agents)))
		}
		out = append(out, k)
	}
	slices.SortFunc(out, func(a, b KeyRecord) int { return bytes.Compare(a.Hash[:], b.Hash[:]) })
	return out
}

func normalizeRevs(in []Revocation) []Revocation {
	var out []Revocation
	for _, r := range in {
		r.Hash = truncate16(r.Hash)
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b Revocation) int { return bytes.Compare(a.Hash[:], b.Hash[:]) })
	return out
}

func TestContentsRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name   string
		c      *Contents
		shards int
	}{
		{"sample auto", sampleContents(), 0},
		{"sample 1 shard", sampleContents(), 1},
		{"sample 2 shards", sampleContents(), 2},
		{"sample 256 shards", sampleContents(), 256},
		{"empty", &Contents{Realm: "r", Version: 1, IssuedAt: 0, ExpiresAt: 1}, 0},
		{"random 5000 keys, 8 shards", randomContents(5000, 3), 8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := publish(t, tc.c, BuildOptions{Shards: tc.shards}, edSigner)
			v := mustLoad(t, f)
			if want := max(tc.shards, 1); v.ShardBits() != 0 && 1<<v.ShardBits() != want {
				t.Fatalf("ShardBits = %d, want %d shards", v.ShardBits(), want)
			}
			got, err := v.Contents()
			if err != nil {
				t.Fatalf("Contents: %v", err)
			}
			want := normalize(tc.c)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("Contents() =\n%+v\nwant\n%+v", got, want)
			}
			objs, err := Build(got, BuildOptions{Shards: 1 << v.ShardBits()})
			if err != nil {
				t.Fatalf("Build(Contents()): %v", err)
			}
			if len(objs) != len(f.objects) {
				t.Fatalf("re-encoding gives %d objects, want %d", len(objs), len(f.objects))
			}
			for i := range objs {
				if objs[i].Name != f.m.Objects[i].Name || !bytes.Equal(objs[i].Data, f.objects[i]) {
					t.Fatalf("re-encoded object %d (%s) differs from %s", i, objs[i].Name, f.m.Objects[i].Name)
				}
			}
			if v.KeyCount() != len(want.Keys) {
				t.Fatalf("KeyCount = %d, want %d", v.KeyCount(), len(want.Keys))
			}
		})
	}
}

// TestBuildIsCanonical: the order of the input does not change the bytes.
func TestBuildIsCanonical(t *testing.T) {
	a := sampleContents()
	b := sampleContents()
	slices.Reverse(b.Keys)
	slices.Reverse(b.Orgs)
	slices.Reverse(b.SigningKeys)
	slices.Reverse(b.RevokedTokens)
	b.Keys[3].Agents = []string{"agent-a", "agent-b", "agent-b"} // tb_alpha_2, same set
	oa, err := Build(a, BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ob, err := Build(b, BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range oa {
		if !bytes.Equal(oa[i].Data, ob[i].Data) {
			t.Fatalf("object %d depends on input order", i)
		}
	}
}

func sampleDelta() *Delta {
	return &Delta{
		Realm: "prod", BaseVersion: 7, Version: 9, IssuedAt: t0 + 60, ExpiresAt: expires + 60,
		RemoveKeys: []apikey.Hash{hashOf("tb_alpha_1"), hashOf("never_existed")},
		AddKeys: []KeyRecord{
			{Hash: hashOf("tb_new_1"), Org: "org_new", Scopes: 0b1000, Agents: []string{"x"}, Type: 1, Flags: 4},
			{Hash: hashOf("tb_alpha_2"), Org: "org_alpha", Scopes: 0b1, Expiry: t0 + 999, Type: 2},
		},
		Orgs:            []Org{{ID: "org_new", State: OrgActive}, {ID: "org_alpha", State: OrgBudgetExhausted}},
		RevokedTokens:   []Revocation{revOf("jti-3", 0)},
		RevokedSessions: []Revocation{revOf("sess-1", t0+500)},
	}
}

func TestDeltaRoundTrip(t *testing.T) {
	base := publish(t, sampleContents(), BuildOptions{}, edSigner)
	d := sampleDelta()
	f := withDelta(t, base, d, edSigner)
	v := mustLoad(t, f)
	got, err := v.DeltaContents()
	if err != nil {
		t.Fatal(err)
	}
	want := *d
	want.AddKeys = normalizeKeys(d.AddKeys)
	want.RemoveKeys = nil
	for _, h := range d.RemoveKeys {
		want.RemoveKeys = append(want.RemoveKeys, truncate16(h))
	}
	slices.SortFunc(want.RemoveKeys, func(a, b apikey.Hash) int { return bytes.Compare(a[:], b[:]) })
	want.Orgs = slices.Clone(d.Orgs)
	slices.SortFunc(want.Orgs, func(a, b Org) int { return cmp.Compare(a.ID, b.ID) })
	want.RevokedTokens = normalizeRevs(d.RevokedTokens)
	want.RevokedSessions = normalizeRevs(d.RevokedSessions)
	if !reflect.DeepEqual(got, &want) {
		t.Fatalf("DeltaContents() =\n%+v\nwant\n%+v", got, &want)
	}
	o, err := BuildDelta(got)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(o.Data, f.delta) || o.Name != f.m.Delta.Name {
		t.Fatalf("re-encoded delta differs")
	}
	if base, _ := mustLoad(t, base).DeltaContents(); base != nil {
		t.Fatalf("DeltaContents of a view without delta = %+v", base)
	}
}

func TestManifestRoundTrip(t *testing.T) {
	for _, s := range []Signer{edSigner, esSigner} {
		f := publish(t, sampleContents(), BuildOptions{Shards: 4}, s)
		g := withDelta(t, f, sampleDelta(), s)
		for _, data := range [][]byte{f.manifest, g.manifest} {
			m, err := VerifyManifest(data, []TrustedKey{edPin, esPin}, std)
			if err != nil {
				t.Fatalf("VerifyManifest: %v", err)
			}
			body := data[envelopeHeaderSize+signatureSize:]
			if !bytes.Equal(m.appendBody(nil), body) {
				t.Fatalf("decode/encode of the manifest body is not the identity")
			}
		}
		m, _ := VerifyManifest(g.manifest, []TrustedKey{edPin, esPin}, std)
		if !reflect.DeepEqual(*m, g.m) {
			t.Fatalf("manifest = %+v, want %+v", *m, g.m)
		}
	}
	// Ed25519 is deterministic: signing the decoded manifest gives the same bytes.
	f := publish(t, sampleContents(), BuildOptions{}, edSigner)
	m, _ := VerifyManifest(f.manifest, []TrustedKey{edPin}, std)
	again, err := SignManifest(m, edSigner)
	if err != nil || !bytes.Equal(again, f.manifest) {
		t.Fatalf("re-signed manifest differs (err %v)", err)
	}
}

func TestRollbackRefused(t *testing.T) {
	m := &Manifest{Version: 7, ExpiresAt: expires}
	for _, tc := range []struct {
		held uint64
		want error
	}{{8, ErrRollback}, {1 << 40, ErrRollback}, {7, nil}, {6, nil}, {0, nil}} {
		if err := m.CheckFresh(t0, tc.held); !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
			t.Fatalf("CheckFresh(held %d) = %v, want %v", tc.held, err, tc.want)
		}
	}
}

// TestExpiredManifestRefused stops a freeze attack: an attacker who replays the last
// manifest forever cannot keep an edge on it past its expiry.
func TestExpiredManifestRefused(t *testing.T) {
	f := publish(t, sampleContents(), BuildOptions{}, edSigner)
	m, err := VerifyManifest(f.manifest, []TrustedKey{edPin}, std)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.CheckFresh(expires-1, 7); err != nil {
		t.Fatalf("fresh manifest refused: %v", err)
	}
	for _, now := range []int64{expires, expires + 1, 1 << 62} {
		wantErr(t, m.CheckFresh(now, 7), ErrExpired)
	}
}

func TestTamperedObjectRefused(t *testing.T) {
	base := publish(t, sampleContents(), BuildOptions{Shards: 2}, edSigner)
	f := withDelta(t, base, sampleDelta(), edSigner)
	n := len(f.objects) + 1
	for i := 0; i < n; i++ {
		get := func(g *snapshotFiles) *[]byte {
			if i == len(f.objects) {
				return &g.delta
			}
			return &g.objects[i]
		}
		size := len(*get(f))
		for _, pos := range []int{0, 7, size / 2, size - 1} {
			g := f.clone()
			(*get(g))[pos] ^= 0x01
			v, err := g.load()
			wantErr(t, err, ErrDigest)
			if v != nil {
				t.Fatalf("a View was returned with an error")
			}
			var e *Error
			if !errors.As(err, &e) || (i < len(f.objects) && e.Object != f.m.Objects[i].Name) {
				t.Fatalf("error %v does not name object %d", err, i)
			}
		}
		g := f.clone()
		*get(g) = (*get(g))[:size-8]
		_, err := g.load()
		wantErr(t, err, ErrDigest)
	}
}

func TestSwappedObjectRefused(t *testing.T) {
	f := publish(t, randomContents(200, 5), BuildOptions{Shards: 4}, edSigner)
	// Objects handed over in the wrong order.
	g := f.clone()
	g.objects[1], g.objects[2] = g.objects[2], g.objects[1]
	_, err := g.load()
	wantErr(t, err, ErrDigest)
	// A manifest that itself lists shards in the wrong places.
	g = f.clone()
	g.objects[1], g.objects[2] = g.objects[2], g.objects[1]
	g.m.Objects[1], g.m.Objects[2] = g.m.Objects[2], g.m.Objects[1]
	g.resign(t)
	_, err = g.load()
	wantErr(t, err, ErrCorrupt)
	if !strings.Contains(err.Error(), "shard index") {
		t.Fatalf("error %v does not name the shard index", err)
	}
	// The meta object in place of a shard, and a shard in place of the meta object.
	g = f.clone()
	g.objects[0], g.objects[3] = g.objects[3], g.objects[0]
	g.m.Objects[0], g.m.Objects[3] = g.m.Objects[3], g.m.Objects[0]
	g.resign(t)
	_, err = g.load()
	wantErr(t, err, ErrCorrupt)
}

func TestManifestSignatureOverExactBytes(t *testing.T) {
	f := publish(t, sampleContents(), BuildOptions{}, edSigner)
	pins := []TrustedKey{edPin}
	// Any changed body byte.
	for i := envelopeHeaderSize + signatureSize; i < len(f.manifest); i++ {
		data := slices.Clone(f.manifest)
		data[i] ^= 0x80
		if m, err := VerifyManifest(data, pins, std); !errors.Is(err, ErrSignature) || m != nil {
			t.Fatalf("byte %d flipped: %v", i, err)
		}
	}
	// A manifest re-encoded with a higher version under the old signature.
	m, _ := VerifyManifest(f.manifest, pins, std)
	m.Version++
	forged := append(slices.Clone(f.manifest[:envelopeHeaderSize+signatureSize]), m.appendBody(nil)...)
	_, err := VerifyManifest(forged, pins, std)
	wantErr(t, err, ErrSignature)
	// Extra bytes after a valid body are not ignored.
	_, err = VerifyManifest(append(slices.Clone(f.manifest), 0), pins, std)
	wantErr(t, err, ErrSignature)
	// A signature over the body alone (no domain-separation label) is refused.
	body := f.manifest[envelopeHeaderSize+signatureSize:]
	raw := slices.Clone(f.manifest)
	copy(raw[envelopeHeaderSize:], edSignRaw(body))
	_, err = VerifyManifest(raw, pins, std)
	wantErr(t, err, ErrSignature)
	// Envelope damage.
	for _, tc := range []struct {
		data []byte
		want error
	}{
		{nil, ErrTruncated},
		{f.manifest[:envelopeHeaderSize+10], ErrTruncated},
		{append([]byte("LKSX"), f.manifest[4:]...), ErrMagic},
		{append(append([]byte("LKSM"), 2, 0), f.manifest[6:]...), ErrVersion},
		{append(append([]byte("LKSM"), 1, 0, 63, 0), f.manifest[8:]...), ErrSignature},
		{make([]byte, limits.MaxManifestBytes+1), ErrTooLarge},
	} {
		_, err := VerifyManifest(tc.data, pins, std)
		wantErr(t, err, tc.want)
	}
}

func edSignRaw(msg []byte) []byte { s, _ := edSigner.Sign(msg); return s }

func TestWrongPinnedKeyRefused(t *testing.T) {
	f := publish(t, sampleContents(), BuildOptions{}, edSigner)
	_, err := f.load(otherEdPin)
	wantErr(t, err, ErrSignature)
	_, err = VerifyManifest(f.manifest, nil, std)
	wantErr(t, err, ErrSignature)
	// During a rotation both keys are pinned.
	if _, err := f.load(otherEdPin, edPin); err != nil {
		t.Fatalf("rotation pin set refused a good manifest: %v", err)
	}
}

// TestAlgorithmFixedByPinnedKey: the pin decides the algorithm; a signature of another
// algorithm, or a pin of no known algorithm, verifies nothing.
func TestAlgorithmFixedByPinnedKey(t *testing.T) {
	es := publish(t, sampleContents(), BuildOptions{}, esSigner)
	ed := publish(t, sampleContents(), BuildOptions{}, edSigner)
	for _, tc := range []struct {
		name string
		f    *snapshotFiles
		pin  TrustedKey
		ok   bool
	}{
		{"ES256 signature, ES256 pin", es, esPin, true},
		{"ES256 signature, Ed25519 pin", es, edPin, false},
		{"ES256 signature, its P-256 key pinned as Ed25519", es, TrustedKey{Alg: AlgEd25519, Public: esPin.Public}, false},
		{"ES256 signature, pin of unknown alg", es, TrustedKey{Alg: 0, Public: esPin.Public}, false},
		{"Ed25519 signature, Ed25519 pin", ed, edPin, true},
		{"Ed25519 signature, ES256 pin", ed, esPin, false},
		{"Ed25519 signature, its key pinned as ES256", ed, TrustedKey{Alg: AlgES256, Public: edPin.Public}, false},
		{"Ed25519 signature, pin of unknown alg", ed, TrustedKey{Alg: 3, Public: edPin.Public}, false},
	} {
		_, err := VerifyManifest(tc.f.manifest, []TrustedKey{tc.pin}, std)
		if tc.ok != (err == nil) || (err != nil && !errors.Is(err, ErrSignature)) {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
}

func TestMixAndMatchRefused(t *testing.T) {
	v7 := publish(t, sampleContents(), BuildOptions{}, edSigner)
	c8 := sampleContents()
	c8.Version = 8
	c8.Keys = c8.Keys[:2]
	v8 := publish(t, c8, BuildOptions{}, edSigner)
	cs := sampleContents()
	cs.Realm = "staging"
	cs.Version = 8
	staging := publish(t, cs, BuildOptions{}, edSigner)
	for _, tc := range []struct {
		name  string
		mixed [2][]byte // meta, shard
		want  error
	}{
		{"v8 meta with v7 shard", [2][]byte{v8.objects[0], v7.objects[1]}, ErrMismatch},
		{"v7 meta under a v8 manifest", [2][]byte{v7.objects[0], v8.objects[1]}, ErrMismatch},
		{"another realm's shard", [2][]byte{v8.objects[0], staging.objects[1]}, ErrRealm},
		{"another realm's meta", [2][]byte{staging.objects[0], v8.objects[1]}, ErrRealm},
	} {
		g := v8.clone()
		g.objects = [][]byte{tc.mixed[0], tc.mixed[1]}
		g.resign(t) // the manifest vouches for the bytes: only the binding can catch this
		v, err := g.load()
		if !errors.Is(err, tc.want) || v != nil {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestDeltaRemovesKey(t *testing.T) {
	base := publish(t, sampleContents(), BuildOptions{}, edSigner)
	h := hashOf("tb_alpha_1")
	if _, ok := mustLoad(t, base).LookupKey(&h); !ok {
		t.Fatal("key missing before the delta")
	}
	v := mustLoad(t, withDelta(t, base, sampleDelta(), edSigner))
	if _, ok := v.LookupKey(&h); ok {
		t.Fatal("removed key still found by hash")
	}
	if _, ok := v.LookupKeyID(h.ID()); ok {
		t.Fatal("removed key still found by id")
	}
	// 5 keys - 1 removed + 1 new (the other add replaces a key).
	if v.KeyCount() != 5 {
		t.Fatalf("KeyCount = %d, want 5", v.KeyCount())
	}
	if v.Version() != 9 || v.BaseVersion() != 7 || v.IssuedAt() != t0+60 {
		t.Fatalf("version %d base %d issued %d", v.Version(), v.BaseVersion(), v.IssuedAt())
	}
}

func TestDeltaAddsKey(t *testing.T) {
	base := publish(t, sampleContents(), BuildOptions{Shards: 2}, edSigner)
	v := mustLoad(t, withDelta(t, base, sampleDelta(), edSigner))

	h := hashOf("tb_new_1")
	k, ok := v.LookupKey(&h)
	if !ok {
		t.Fatal("added key not found")
	}
	if id, st := v.Org(k.OrgIndex); string(id) != "org_new" || st != OrgActive {
		t.Fatalf("added key's org = %q %d", id, st)
	}
	if k.Scopes != 0b1000 || k.Type != 1 || k.Flags != 4 || k.ID != h.ID() || k.Expiry != 0 {
		t.Fatalf("added key = %+v", k)
	}
	if !v.AgentAllowed(k.AgentSet, []byte("x")) || v.AgentAllowed(k.AgentSet, []byte("agent-a")) {
		t.Fatal("added key's agents wrong")
	}
	if k2, ok := v.LookupKeyID(h.ID()); !ok || k2 != k {
		t.Fatalf("LookupKeyID = %+v %v, want %+v", k2, ok, k)
	}

	// A replaced key carries the delta's record.
	h = hashOf("tb_alpha_2")
	k, ok = v.LookupKey(&h)
	if !ok || k.Scopes != 0b1 || k.Expiry != t0+999 || k.Type != 2 || k.AgentSet != 0 {
		t.Fatalf("replaced key = %+v %v", k, ok)
	}
	// An org upsert reaches keys of the base too.
	h = hashOf("tb_alpha_3")
	k, ok = v.LookupKey(&h)
	if !ok {
		t.Fatal("base key lost")
	}
	if id, st := v.Org(k.OrgIndex); string(id) != "org_alpha" || st != OrgBudgetExhausted {
		t.Fatalf("base key's org after upsert = %q %d", id, st)
	}
	if !v.AgentAllowed(k.AgentSet, []byte("agent-b")) {
		t.Fatal("base key's agents lost")
	}
	if st, ok := v.OrgState([]byte("org_alpha")); !ok || st != OrgBudgetExhausted {
		t.Fatalf("OrgState(org_alpha) = %d %v", st, ok)
	}
	if st, ok := v.OrgState([]byte("org_zeta")); !ok || st != OrgSuspended {
		t.Fatalf("OrgState(org_zeta) = %d %v", st, ok)
	}
	// Revocations of the delta add to the base's.
	if !v.TokenRevoked([]byte("jti-3"), t0) || !v.TokenRevoked([]byte("jti-1"), t0) {
		t.Fatal("revocations of base or delta lost")
	}
	// The base revoked sess-1 until t0+50, the delta extends it to t0+500.
	if !v.SessionRevoked([]byte("sess-1"), t0+400) || v.SessionRevoked([]byte("sess-1"), t0+501) {
		t.Fatal("delta session revocation not applied")
	}
}

func TestDeltaBaseMismatchRefused(t *testing.T) {
	base := publish(t, sampleContents(), BuildOptions{}, edSigner)
	c := sampleContents()
	c.Version = 8
	other := publish(t, c, BuildOptions{}, edSigner)

	// A delta built against v7, served over the full snapshot v8.
	d := sampleDelta()
	f := withDelta(t, other, d, edSigner) // manifest: base 8, version 9; delta says base 7
	_, err := f.load()
	wantErr(t, err, ErrMismatch)

	// A delta of another version than the manifest names.
	f = withDelta(t, base, d, edSigner)
	f.m.Version = 10
	f.resign(t)
	_, err = f.load()
	wantErr(t, err, ErrMismatch)

	// The delta is missing, or given where the manifest names none.
	f = withDelta(t, base, d, edSigner)
	f.delta = nil
	_, err = f.load()
	wantErr(t, err, ErrDigest)
	g := base.clone()
	g.delta = withDelta(t, base, d, edSigner).delta
	_, err = g.load()
	wantErr(t, err, ErrCorrupt)
}

// TestDeltaKeyIDCollisionRefused: a delta may not add a key whose id names a different
// live key of the base, or a token minted by one would be checked against the other.
func TestDeltaKeyIDCollisionRefused(t *testing.T) {
	base := publish(t, sampleContents(), BuildOptions{}, edSigner)
	h := hashOf("tb_zeta_1")
	h[15] ^= 1
	d := &Delta{Realm: "prod", BaseVersion: 7, Version: 8, IssuedAt: t0, ExpiresAt: expires,
		Orgs: []Org{{ID: "o", State: OrgActive}}, AddKeys: []KeyRecord{{Hash: h, Org: "o"}}}
	_, err := withDelta(t, base, d, edSigner).load()
	wantErr(t, err, ErrCorrupt)
	// Fine once the base key is removed.
	d.RemoveKeys = []apikey.Hash{hashOf("tb_zeta_1")}
	v := mustLoad(t, withDelta(t, base, d, edSigner))
	k, ok := v.LookupKeyID(h.ID())
	if id, _ := v.Org(k.OrgIndex); !ok || string(id) != "o" {
		t.Fatalf("LookupKeyID found %+v %v", k, ok)
	}
	if v.KeyCount() != 5 {
		t.Fatalf("KeyCount = %d", v.KeyCount())
	}
}

func TestLookupSample(t *testing.T) {
	c := sampleContents()
	for _, shards := range []int{1, 4, 256} {
		v := mustLoad(t, publish(t, c, BuildOptions{Shards: shards}, edSigner))
		for _, r := range c.Keys {
			k, ok := v.LookupKey(&r.Hash)
			if !ok {
				t.Fatalf("key %x not found", r.Hash[:4])
			}
			if k.ID != r.Hash.ID() || k.Expiry != r.Expiry || k.Scopes != r.Scopes || k.Type != r.Type || k.Flags != r.Flags {
				t.Fatalf("key = %+v, record %+v", k, r)
			}
			org, _ := v.Org(k.OrgIndex)
			if string(org) != r.Org {
				t.Fatalf("org = %q, want %q", org, r.Org)
			}
			for _, a := range r.Agents {
				if !v.AgentAllowed(k.AgentSet, []byte(a)) {
					t.Fatalf("agent %q not allowed", a)
				}
			}
			if v.AgentAllowed(k.AgentSet, []byte("agent-c")) || v.AgentAllowed(k.AgentSet, nil) {
				t.Fatal("unlisted agent allowed")
			}
			if k2, ok := v.LookupKeyID(r.Hash.ID()); !ok || k2 != k {
				t.Fatalf("LookupKeyID = %+v %v, want %+v", k2, ok, k)
			}
		}
		for _, s := range []string{"", "tb_alpha_4", "nope"} {
			h := hashOf(s)
			if _, ok := v.LookupKey(&h); ok {
				t.Fatalf("absent key %q found", s)
			}
			if _, ok := v.LookupKeyID(h.ID()); ok {
				t.Fatalf("absent key id %q found", s)
			}
		}
	}
}

// TestLookupBoundaries puts keys at the first and last hash of every shard and probes the
// hashes right next to them.
func TestLookupBoundaries(t *testing.T) {
	const shards = 16
	var c = &Contents{Realm: "r", Version: 1, IssuedAt: t0, ExpiresAt: expires, Orgs: []Org{{ID: "o"}}}
	var present []apikey.Hash
	for s := 0; s < shards; s++ {
		var lo, hi apikey.Hash
		for i := range hi {
			hi[i] = 0xff
		}
		lo[0] = byte(s << 4)
		hi[0] = byte(s<<4 | 0x0f)
		mid := lo
		mid[1], mid[9], mid[15] = 0x80, 0x01, 0x01
		present = append(present, lo, hi, mid)
	}
	for i, h := range present {
		c.Keys = append(c.Keys, KeyRecord{Hash: h, Org: "o", Type: uint8(i)})
	}
	for _, n := range []int{1, shards, 256} {
		v := mustLoad(t, publish(t, c, BuildOptions{Shards: n}, edSigner))
		for i, h := range present {
			k, ok := v.LookupKey(&h)
			if !ok || k.Type != uint8(i) {
				t.Fatalf("%d shards: key %x: %+v %v", n, h[:16], k, ok)
			}
			if k, ok := v.LookupKeyID(h.ID()); !ok || k.Type != uint8(i) {
				t.Fatalf("%d shards: id %x: %+v %v", n, h[:10], k, ok)
			}
			// Same 16 bytes, other tail: published hashes are 16 bytes, so this is a hit.
			other := h
			other[31] ^= 0xff
			if _, ok := v.LookupKey(&other); !ok {
				t.Fatalf("%d shards: tail bytes matter", n)
			}
			// Neighbours: same id, other byte 10..15; and the next / previous prefix.
			for _, pos := range []int{10, 15, 9, 0} {
				for _, delta := range []int{1, -1} {
					near := h
					near[pos] = byte(int(near[pos]) + delta)
					if slices.Contains(present, near) {
						continue
					}
					if _, ok := v.LookupKey(&near); ok {
						t.Fatalf("%d shards: neighbour %x of %x found", n, near[:16], h[:16])
					}
					_, ok := v.LookupKeyID(near.ID())
					if want := pos >= 10; ok != want {
						t.Fatalf("%d shards: LookupKeyID(neighbour at byte %d) = %v", n, pos, ok)
					}
				}
			}
		}
	}
}

func TestRevocationsUntil(t *testing.T) {
	c := sampleContents()
	c.RevokedTokens = append(c.RevokedTokens, revOf("jti-2", t0+10), revOf("jti-4", t0+5), revOf("jti-4", 0))
	v := mustLoad(t, publish(t, c, BuildOptions{}, edSigner))
	for _, tc := range []struct {
		jti  string
		now  int64
		want bool
	}{
		{"jti-1", t0, true}, {"jti-1", 1 << 50, true}, // until 0: forever
		{"jti-2", t0 + 100, true}, {"jti-2", t0 + 101, false}, // merged: the later until wins
		{"jti-4", 1 << 50, true}, // merged with a forever revocation
		{"jti-9", t0, false},
	} {
		if got := v.TokenRevoked([]byte(tc.jti), tc.now); got != tc.want {
			t.Errorf("TokenRevoked(%s, %d) = %v", tc.jti, tc.now, got)
		}
	}
	if !v.SessionRevoked([]byte("sess-1"), t0+50) || v.SessionRevoked([]byte("sess-1"), t0+51) {
		t.Fatal("session revocation until wrong")
	}
	if v.SessionRevoked([]byte("jti-1"), t0) {
		t.Fatal("token revocation applied to sessions")
	}
}

func TestOrgStates(t *testing.T) {
	v := mustLoad(t, publish(t, sampleContents(), BuildOptions{}, edSigner))
	for _, tc := range []struct {
		id    string
		state uint8
		ok    bool
	}{{"org_alpha", OrgActive, true}, {"org_broke", OrgBudgetExhausted, true}, {"org_zeta", OrgSuspended, true},
		{"org_", 0, false}, {"org_zzz", 0, false}, {"", 0, false}} {
		if st, ok := v.OrgState([]byte(tc.id)); st != tc.state || ok != tc.ok {
			t.Errorf("OrgState(%q) = %d %v", tc.id, st, ok)
		}
	}
	// Indices no key carries fail closed.
	for _, i := range []uint32{3, 1 << 20, deltaBit, deltaBit | 1, ^uint32(0)} {
		if id, st := v.Org(i); id != nil || st != OrgSuspended {
			t.Errorf("Org(%#x) = %q %d", i, id, st)
		}
	}
	for _, i := range []uint32{0, 4, deltaBit | 1} {
		if v.AgentAllowed(i, []byte("agent-a")) {
			t.Errorf("AgentAllowed(%#x) true", i)
		}
	}
}

func TestSigningKeys(t *testing.T) {
	v := mustLoad(t, publish(t, sampleContents(), BuildOptions{}, edSigner))
	alg, pub, ok := v.SigningKey([]byte("k1"))
	if !ok || alg != AlgEd25519 || !bytes.Equal(pub, edPin.Public) {
		t.Fatalf("k1 = %d %x %v", alg, pub, ok)
	}
	alg, pub, ok = v.SigningKey([]byte("k2"))
	if !ok || alg != AlgES256 || !bytes.Equal(pub, esPin.Public) {
		t.Fatalf("k2 = %d %x %v", alg, pub, ok)
	}
	if _, _, ok := v.SigningKey([]byte("k3")); ok {
		t.Fatal("unknown kid found")
	}
	if _, _, ok := v.SigningKeyAt([]byte("k2"), expires-1); !ok {
		t.Fatal("k2 refused before NotAfter")
	}
	if _, _, ok := v.SigningKeyAt([]byte("k2"), expires); ok {
		t.Fatal("k2 accepted at NotAfter")
	}
	if _, _, ok := v.SigningKeyAt([]byte("k1"), 1<<60); !ok {
		t.Fatal("k1 (no NotAfter) refused")
	}
	if string(v.Policy()) != "LKPL\x01opaque policy bytes" || v.Realm() != "prod" || v.Version() != 7 || v.ExpiresAt() != expires {
		t.Fatal("accessors wrong")
	}
}

func TestStats(t *testing.T) {
	base := publish(t, sampleContents(), BuildOptions{Shards: 4}, edSigner)
	s := mustLoad(t, withDelta(t, base, sampleDelta(), edSigner)).Stats()
	if s.BaseKeys != 5 || s.Keys != 5 || len(s.ShardKeys) != 4 || s.KeyTableBytes != 5*32 || s.Orgs != 3 ||
		s.ScopeSets != 4 || s.AgentSets != 2 || s.AgentIDs != 3 || s.SigningKeys != 2 || s.RevokedTokens != 2 ||
		s.RevokedSessions != 1 || len(s.Objects) != 6 || s.Delta == nil || s.Delta.AddKeys != 2 || s.Delta.RemoveKeys != 2 {
		t.Fatalf("Stats = %+v, delta %+v", s, s.Delta)
	}
}

func TestBuildErrors(t *testing.T) {
	type mod func(c *Contents)
	manyScopes := func(c *Contents) {
		c.Keys = nil
		for i := 0; i <= maxScopeSets; i++ {
			var h apikey.Hash
			binary.BigEndian.PutUint64(h[:], uint64(i)<<20)
			c.Keys = append(c.Keys, KeyRecord{Hash: h, Org: "org_alpha", Scopes: uint64(i)})
		}
	}
	for _, tc := range []struct {
		name string
		mod  mod
		opt  BuildOptions
		want error
		msg  string
	}{
		{"duplicate key", func(c *Contents) { c.Keys = append(c.Keys, c.Keys[0]) }, BuildOptions{}, ErrInvalid, "share the hash prefix"},
		{"duplicate 16-byte prefix", func(c *Contents) {
			k := c.Keys[0]
			k.Hash[20] ^= 1
			c.Keys = append(c.Keys, k)
		}, BuildOptions{}, ErrInvalid, "share the hash prefix"},
		{"duplicate key id", func(c *Contents) {
			k := c.Keys[0]
			k.Hash[12] ^= 1
			c.Keys = append(c.Keys, k)
		}, BuildOptions{}, ErrInvalid, "key id"},
		{"expiry beyond u32", func(c *Contents) { c.Keys[0].Expiry = 1 << 32 }, BuildOptions{}, ErrInvalid, "keys[0].expiry"},
		{"negative expiry", func(c *Contents) { c.Keys[1].Expiry = -1 }, BuildOptions{}, ErrInvalid, "keys[1].expiry"},
		{"unknown org", func(c *Contents) { c.Keys[2].Org = "org_nope" }, BuildOptions{}, ErrInvalid, "org_nope"},
		{"duplicate org", func(c *Contents) { c.Orgs = append(c.Orgs, Org{ID: "org_alpha"}) }, BuildOptions{}, ErrInvalid, "duplicate org"},
		{"empty org id", func(c *Contents) { c.Orgs = append(c.Orgs, Org{}) }, BuildOptions{}, ErrInvalid, "orgs[3]"},
		{"unknown org state", func(c *Contents) { c.Orgs[0].State = 3 }, BuildOptions{}, ErrInvalid, "state"},
		{"too many scope sets", manyScopes, BuildOptions{}, ErrTooLarge, "65537 distinct scope sets"},
		{"too many agents", func(c *Contents) {
			for i := 0; i <= limits.MaxAgentsPerKey; i++ {
				c.Keys[0].Agents = append(c.Keys[0].Agents, "a"+string(rune('0'+i%10))+strings.Repeat("x", i/10))
			}
		}, BuildOptions{}, ErrTooLarge, "agents"},
		{"empty agent id", func(c *Contents) { c.Keys[0].Agents = []string{""} }, BuildOptions{}, ErrInvalid, "agent id"},
		{"long agent id", func(c *Contents) { c.Keys[0].Agents = []string{strings.Repeat("a", 256)} }, BuildOptions{}, ErrInvalid, "agent id"},
		{"duplicate kid", func(c *Contents) { c.SigningKeys = append(c.SigningKeys, c.SigningKeys[0]) }, BuildOptions{}, ErrInvalid, "duplicate kid"},
		{"short Ed25519 key", func(c *Contents) { c.SigningKeys[1].Public = c.SigningKeys[1].Public[:31] }, BuildOptions{}, ErrInvalid, "32 bytes"},
		{"compressed P-256 key", func(c *Contents) { c.SigningKeys[0].Public[0] = 2 }, BuildOptions{}, ErrInvalid, "uncompressed"},
		{"unknown alg", func(c *Contents) { c.SigningKeys[0].Alg = 3 }, BuildOptions{}, ErrInvalid, "algorithm"},
		{"too many signing keys", func(c *Contents) {
			for i := 0; i < limits.MaxSigningKeys; i++ {
				c.SigningKeys = append(c.SigningKeys, SigningKey{KID: "x" + strings.Repeat("y", i), Alg: AlgEd25519, Public: make([]byte, 32)})
			}
		}, BuildOptions{}, ErrTooLarge, "signing keys"},
		{"negative until", func(c *Contents) { c.RevokedTokens[0].Until = -5 }, BuildOptions{}, ErrInvalid, "until"},
		{"version 0", func(c *Contents) { c.Version = 0 }, BuildOptions{}, ErrInvalid, "version"},
		{"expires before issued", func(c *Contents) { c.ExpiresAt = c.IssuedAt }, BuildOptions{}, ErrInvalid, "expires"},
		{"empty realm", func(c *Contents) { c.Realm = "" }, BuildOptions{}, ErrInvalid, "realm"},
		{"policy too large", func(c *Contents) { c.Policy = make([]byte, limits.MaxPolicyBytes+1) }, BuildOptions{}, ErrTooLarge, "policy"},
		{"3 shards", nil, BuildOptions{Shards: 3}, ErrInvalid, "power of two"},
		{"512 shards", nil, BuildOptions{Shards: 512}, ErrInvalid, "power of two"},
	} {
		c := sampleContents()
		if tc.mod != nil {
			tc.mod(c)
		}
		objs, err := Build(c, tc.opt)
		if !errors.Is(err, tc.want) || objs != nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: %v, want %v naming %q", tc.name, err, tc.want, tc.msg)
		}
	}
}

func TestBuildDeltaErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(d *Delta)
		msg  string
	}{
		{"added and removed", func(d *Delta) { d.RemoveKeys = append(d.RemoveKeys, d.AddKeys[0].Hash) }, "both added and removed"},
		{"org not in delta", func(d *Delta) { d.AddKeys[1].Org = "org_zeta" }, "org_zeta"},
		{"base not below version", func(d *Delta) { d.BaseVersion = d.Version }, "base version"},
		{"no base", func(d *Delta) { d.BaseVersion = 0 }, "base version"},
		{"duplicate add", func(d *Delta) { d.AddKeys = append(d.AddKeys, d.AddKeys[0]) }, "share the hash prefix"},
	} {
		d := sampleDelta()
		tc.mod(d)
		_, err := BuildDelta(d)
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
}

func TestSignManifestRefusesBadManifests(t *testing.T) {
	good := publish(t, sampleContents(), BuildOptions{}, edSigner).m
	for _, tc := range []struct {
		name string
		mod  func(m *Manifest)
	}{
		{"path in name", func(m *Manifest) { m.Objects[1].Name = "../etc/passwd" }},
		{"slash in name", func(m *Manifest) { m.Objects[1].Name = "a/b" }},
		{"dot name", func(m *Manifest) { m.Objects[1].Name = ".hidden" }},
		{"duplicate name", func(m *Manifest) { m.Objects[1].Name = m.Objects[0].Name }},
		{"no shards", func(m *Manifest) { m.Objects = m.Objects[:1] }},
		{"3 shards", func(m *Manifest) { m.Objects = append(m.Objects, m.Objects[1], m.Objects[1]) }},
		{"object too large", func(m *Manifest) { m.Objects[0].Size = limits.MaxSnapshotObjectBytes + 1 }},
		{"base without delta", func(m *Manifest) { m.BaseVersion = 3 }},
		{"delta without base", func(m *Manifest) { m.Delta = &ObjectRef{Name: "d", Size: 1} }},
		{"expired before issued", func(m *Manifest) { m.ExpiresAt = m.IssuedAt }},
	} {
		m := good
		m.Objects = slices.Clone(good.Objects)
		tc.mod(&m)
		if _, err := SignManifest(&m, edSigner); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v", tc.name, err)
		}
		// A control plane that skipped the checks still cannot get such a manifest accepted.
		body := m.appendBody(nil)
		sig := edSignRaw(append([]byte(ManifestLabel), body...))
		data := append(append([]byte("LKSM\x01\x00\x40\x00"), sig...), body...)
		if _, err := VerifyManifest(data, []TrustedKey{edPin}, std); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: VerifyManifest: %v", tc.name, err)
		}
	}
	if _, err := SignManifest(&good, Ed25519Signer{}); !errors.Is(err, ErrInvalid) {
		t.Errorf("signer without key: %v", err)
	}
}

// Offsets in the sample objects (realm "prod": kind header at 32).
const (
	kindAt     = 32
	shardKeyAt = kindAt + shardHeaderSize + 8 // fanout of one u32, padded
)

func TestOpenRejectsCorruptObjects(t *testing.T) {
	f := publish(t, sampleContents(), BuildOptions{Shards: 1}, edSigner)
	le := binary.LittleEndian
	for _, tc := range []struct {
		name string
		obj  int
		mod  func(b []byte) []byte
		want error
	}{
		{"trailing bytes", 0, func(b []byte) []byte { return append(b, make([]byte, 8)...) }, ErrCorrupt},
		{"truncated", 0, func(b []byte) []byte { return b[:len(b)-8] }, ErrTruncated},
		{"tiny", 1, func(b []byte) []byte { return b[:10] }, ErrTruncated},
		{"magic", 0, func(b []byte) []byte { b[0] = 'X'; return b }, ErrMagic},
		{"format version", 1, func(b []byte) []byte { b[4] = 2; return b }, ErrVersion},
		{"kind", 0, func(b []byte) []byte { b[6] = kindShard; return b }, ErrCorrupt},
		{"empty realm", 0, func(b []byte) []byte { b[7] = 0; return b }, ErrCorrupt},
		{"realm padding", 0, func(b []byte) []byte { b[28] = 1; return b }, ErrCorrupt},
		{"reserved meta byte", 0, func(b []byte) []byte { b[kindAt+17] = 1; return b }, ErrCorrupt},
		{"shard bits", 0, func(b []byte) []byte { b[kindAt+16] = 1; return b }, ErrCorrupt},
		{"shard bits above limit", 0, func(b []byte) []byte { b[kindAt+16] = 9; return b }, ErrCorrupt},
		{"key count", 0, func(b []byte) []byte { le.PutUint32(b[kindAt+20:], 6); return b }, ErrCorrupt},
		{"policy length", 0, func(b []byte) []byte { le.PutUint32(b[kindAt+24:], 1<<19); return b }, ErrTruncated},
		{"policy too long", 0, func(b []byte) []byte { le.PutUint32(b[kindAt+24:], 1<<21); return b }, ErrTooLarge},
		{"org count", 0, func(b []byte) []byte { le.PutUint32(b[kindAt+28:], 1<<31); return b }, ErrTooLarge},
		{"signing key count", 0, func(b []byte) []byte { le.PutUint32(b[kindAt+52:], 65); return b }, ErrTooLarge},
		{"revocation count", 0, func(b []byte) []byte { le.PutUint32(b[kindAt+60:], 1<<30); return b }, ErrTruncated},
		{"unsorted revocations", 0, func(b []byte) []byte {
			n := len(b) - 3*revEntrySize // two tokens then one session
			tmp := slices.Clone(b[n : n+revEntrySize])
			copy(b[n:], b[n+revEntrySize:n+2*revEntrySize])
			copy(b[n+revEntrySize:], tmp)
			return b
		}, ErrCorrupt},
		{"negative until", 0, func(b []byte) []byte { b[len(b)-1] = 0x80; return b }, ErrCorrupt},
		{"shard kind", 1, func(b []byte) []byte { b[6] = kindMeta; return b }, ErrCorrupt},
		{"shard index", 1, func(b []byte) []byte { b[kindAt+4] = 1; return b }, ErrCorrupt},
		{"fanout bits", 1, func(b []byte) []byte { b[kindAt+1] = 1; return b }, ErrCorrupt},
		{"fanout count", 1, func(b []byte) []byte { b[kindAt+16] = 4; return b }, ErrCorrupt},
		{"shard key count", 1, func(b []byte) []byte { b[kindAt+8] = 4; return b }, ErrCorrupt},
		{"unsorted keys", 1, func(b []byte) []byte {
			k := b[shardKeyAt:]
			tmp := slices.Clone(k[:32])
			copy(k, k[32:64])
			copy(k[32:], tmp)
			return b
		}, ErrCorrupt},
		{"duplicate key", 1, func(b []byte) []byte { copy(b[shardKeyAt+32:], b[shardKeyAt:shardKeyAt+32]); return b }, ErrCorrupt},
		{"org index", 1, func(b []byte) []byte { b[shardKeyAt+20] = 3; return b }, ErrCorrupt},
		{"agent set index", 1, func(b []byte) []byte { b[shardKeyAt+24] = 3; return b }, ErrCorrupt},
		{"scope set index", 1, func(b []byte) []byte { b[shardKeyAt+28] = 4; return b }, ErrCorrupt},
	} {
		g := f.clone()
		g.objects[tc.obj] = tc.mod(g.objects[tc.obj])
		g.resign(t)
		v, err := g.load()
		if !errors.Is(err, tc.want) || v != nil {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
		t.Logf("%s: %v", tc.name, err)
	}
}

// TestLargeSnapshotEveryKeyFound checks big tables (fanout, several shards) key by key.
func TestLargeSnapshotEveryKeyFound(t *testing.T) {
	n := 100_000
	if testing.Short() {
		n = 20_000
	}
	c := randomContents(n, 1)
	for _, shards := range []int{0, 16} {
		f := publish(t, c, BuildOptions{Shards: shards}, edSigner)
		v := mustLoad(t, f)
		if v.KeyCount() != n {
			t.Fatalf("KeyCount = %d", v.KeyCount())
		}
		for i := range c.Keys {
			r := &c.Keys[i]
			k, ok := v.LookupKey(&r.Hash)
			if !ok || k.Scopes != r.Scopes || k.Expiry != r.Expiry || k.Type != r.Type {
				t.Fatalf("key %d: %+v %v", i, k, ok)
			}
			if org, _ := v.Org(k.OrgIndex); string(org) != r.Org {
				t.Fatalf("key %d: org %q", i, org)
			}
			if len(r.Agents) > 0 && !v.AgentAllowed(k.AgentSet, []byte(r.Agents[0])) {
				t.Fatalf("key %d: agent", i)
			}
			if k2, ok := v.LookupKeyID(r.Hash.ID()); !ok || k2 != k {
				t.Fatalf("key %d by id: %+v %v", i, k2, ok)
			}
			miss := r.Hash
			miss[15] ^= 0x5a // same id: a miss by hash
			if _, ok := v.LookupKey(&miss); ok {
				t.Fatalf("key %d: neighbour found", i)
			}
		}
		absent := randomContents(1000, 2)
		for i := range absent.Keys {
			if _, ok := v.LookupKey(&absent.Keys[i].Hash); ok {
				t.Fatalf("absent key %d found", i)
			}
		}
	}
}

func TestLookupsDoNotAllocate(t *testing.T) {
	base := publish(t, sampleContents(), BuildOptions{Shards: 4}, edSigner)
	v := mustLoad(t, withDelta(t, base, sampleDelta(), edSigner))
	hit, miss, added := hashOf("tb_alpha_3"), hashOf("nope"), hashOf("tb_new_1")
	k, _ := v.LookupKey(&hit)
	jti, agent, org, kid := []byte("jti-1"), []byte("agent-a"), []byte("org_zeta"), []byte("k1")
	for name, f := range map[string]func(){
		"LookupKey hit":   func() { v.LookupKey(&hit) },
		"LookupKey miss":  func() { v.LookupKey(&miss) },
		"LookupKey delta": func() { v.LookupKey(&added) },
		"LookupKeyID":     func() { v.LookupKeyID(hit.ID()) },
		"Org":             func() { v.Org(k.OrgIndex) },
		"OrgState":        func() { v.OrgState(org) },
		"AgentAllowed":    func() { v.AgentAllowed(k.AgentSet, agent) },
		"TokenRevoked":    func() { v.TokenRevoked(jti, t0) },
		"SessionRevoked":  func() { v.SessionRevoked(jti, t0) },
		"SigningKey":      func() { v.SigningKey(kid) },
	} {
		if a := testing.AllocsPerRun(100, f); a != 0 {
			t.Errorf("%s: %v allocs", name, a)
		}
	}
}

func TestOpenChecksArguments(t *testing.T) {
	f := publish(t, sampleContents(), BuildOptions{}, edSigner)
	m, _ := VerifyManifest(f.manifest, []TrustedKey{edPin}, std)
	if v, err := Open(nil, f.objects, nil, std); err == nil || v != nil {
		t.Fatal("nil manifest accepted")
	}
	if v, err := Open(m, f.objects, nil, nil); err == nil || v != nil {
		t.Fatal("nil provider accepted")
	}
	if v, err := Open(m, f.objects[:1], nil, std); !errors.Is(err, ErrCorrupt) || v != nil {
		t.Fatalf("missing object: %v", err)
	}
}

// TestFutureManifestRefused: staleness is measured from IssuedAt, so a manifest issued far in
// the future would never go stale; beyond the clock-skew bound it is refused.
func TestFutureManifestRefused(t *testing.T) {
	m := &Manifest{Version: 7, IssuedAt: t0 + limits.MaxClockSkewSeconds, ExpiresAt: expires}
	if err := m.CheckFresh(t0, 0); err != nil {
		t.Fatalf("manifest within the skew bound refused: %v", err)
	}
	m.IssuedAt++
	wantErr(t, m.CheckFresh(t0, 0), ErrInvalid)
}

// TestObjectTimesMustMatchManifest: a meta object stamped with other times than its manifest
// was not built for it (a publisher mixing versions), and is refused.
func TestObjectTimesMustMatchManifest(t *testing.T) {
	f := publish(t, sampleContents(), BuildOptions{}, edSigner)
	f.m.ExpiresAt++
	f.resign(t)
	_, err := f.load()
	wantErr(t, err, ErrMismatch)
}
