package snapshot

import (
	"bytes"
	"encoding/binary"
	"reflect"
	"testing"
)

// manifestFor is a manifest vouching for exactly these bytes. It takes realm and versions from
// the meta object's header when there is one, so that mutations reach the deep checks.
func manifestFor(meta []byte, shards [][]byte) *Manifest {
	m := &Manifest{Realm: "prod", Version: 7, IssuedAt: t0, ExpiresAt: expires}
	if len(meta) >= commonHeaderSize && meta[7] != 0 && len(meta) >= commonHeaderSize+int(meta[7]) {
		m.Realm = string(meta[commonHeaderSize : commonHeaderSize+int(meta[7])])
		if v := binary.LittleEndian.Uint64(meta[8:]); v != 0 {
			m.Version = v
		}
	}
	m.Objects = append(m.Objects, Ref(Object{Name: "meta", Data: meta}, std))
	for i, s := range shards {
		m.Objects = append(m.Objects, Ref(Object{Name: "shard" + string(rune('0'+i)), Data: s}, std))
	}
	return m
}

func FuzzOpen(f *testing.F) {
	for _, c := range []*Contents{sampleContents(), randomContents(40, 9)} {
		for _, shards := range []int{1, 2} {
			objs, err := Build(c, BuildOptions{Shards: shards})
			if err != nil {
				f.Fatal(err)
			}
			var s1 []byte
			if shards == 2 {
				s1 = objs[2].Data
			}
			f.Add(objs[0].Data, objs[1].Data, s1)
		}
	}
	f.Add([]byte("LKSO"), []byte{}, []byte{})
	f.Fuzz(func(t *testing.T, meta, shard0, shard1 []byte) {
		shards := [][]byte{shard0}
		if len(shard1) > 0 {
			shards = append(shards, shard1)
		}
		m := manifestFor(meta, shards)
		if m.validate(ErrCorrupt) != nil {
			return
		}
		v, err := Open(m, append([][]byte{meta}, shards...), nil, std)
		if err != nil {
			if v != nil {
				t.Fatalf("View returned with error %v", err)
			}
			return
		}
		c, err := v.Contents()
		if err != nil {
			t.Fatalf("Contents of an opened View: %v", err)
		}
		for i := range c.Keys {
			k, ok := v.LookupKey(&c.Keys[i].Hash)
			if !ok {
				t.Fatalf("key %d of Contents not found", i)
			}
			if k2, ok := v.LookupKeyID(c.Keys[i].Hash.ID()); !ok || k2 != k {
				t.Fatalf("key %d not found by id", i)
			}
			v.Org(k.OrgIndex)
			v.AgentAllowed(k.AgentSet, []byte("a"))
		}
		for i := range c.SigningKeys {
			if _, _, ok := v.SigningKey([]byte(c.SigningKeys[i].KID)); !ok {
				t.Fatalf("signing key %d not found", i)
			}
		}
		v.TokenRevoked([]byte("x"), 0)
		v.SessionRevoked([]byte("x"), 0)
		_ = v.Stats()
		// Whatever Open accepts is canonical: re-encoding gives the same bytes.
		objs, err := Build(c, BuildOptions{Shards: 1 << v.ShardBits()})
		if err != nil {
			t.Fatalf("Build(Contents()) of an opened View: %v", err)
		}
		if !bytes.Equal(objs[0].Data, meta) {
			t.Fatalf("meta object is not canonical")
		}
		for i, s := range shards {
			if !bytes.Equal(objs[i+1].Data, s) {
				t.Fatalf("shard %d is not canonical", i)
			}
		}
	})
}

func FuzzDelta(f *testing.F) {
	base, err := Build(sampleContents(), BuildOptions{Shards: 2})
	if err != nil {
		f.Fatal(err)
	}
	objects := [][]byte{base[0].Data, base[1].Data, base[2].Data}
	refs := Refs(base, std)
	d, err := BuildDelta(sampleDelta())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(d.Data)
	small := &Delta{Realm: "prod", BaseVersion: 7, Version: 8, IssuedAt: 1, ExpiresAt: 2,
		RemoveKeys: sampleDelta().RemoveKeys, RevokedTokens: sampleDelta().RevokedTokens}
	if d, err = BuildDelta(small); err != nil {
		f.Fatal(err)
	}
	f.Add(d.Data)
	f.Fuzz(func(t *testing.T, delta []byte) {
		m := &Manifest{Realm: "prod", Version: 9, BaseVersion: 7, IssuedAt: t0, ExpiresAt: expires, Objects: refs}
		if len(delta) >= commonHeaderSize {
			if v := binary.LittleEndian.Uint64(delta[8:]); v > 7 {
				m.Version = v
			}
		}
		ref := Ref(Object{Name: "delta", Data: delta}, std)
		m.Delta = &ref
		v, err := Open(m, objects, delta, std)
		if err != nil {
			if v != nil {
				t.Fatalf("View returned with error %v", err)
			}
			return
		}
		dc, err := v.DeltaContents()
		if err != nil || dc == nil {
			t.Fatalf("DeltaContents: %v", err)
		}
		for i := range dc.AddKeys {
			k, ok := v.LookupKey(&dc.AddKeys[i].Hash)
			if !ok {
				t.Fatalf("added key %d not found", i)
			}
			if id, _ := v.Org(k.OrgIndex); string(id) != dc.AddKeys[i].Org {
				t.Fatalf("added key %d: org %q", i, id)
			}
			for _, a := range dc.AddKeys[i].Agents {
				if !v.AgentAllowed(k.AgentSet, []byte(a)) {
					t.Fatalf("added key %d: agent %q", i, a)
				}
			}
		}
		for i := range dc.RemoveKeys {
			if _, ok := v.LookupKey(&dc.RemoveKeys[i]); ok {
				t.Fatalf("removed key %d found", i)
			}
		}
		for i := range dc.Orgs {
			if st, ok := v.OrgState([]byte(dc.Orgs[i].ID)); !ok || st != dc.Orgs[i].State {
				t.Fatalf("org %d: %d %v", i, st, ok)
			}
		}
		o, err := BuildDelta(dc)
		if err != nil {
			t.Fatalf("BuildDelta(DeltaContents()): %v", err)
		}
		if !bytes.Equal(o.Data, delta) {
			t.Fatalf("delta is not canonical")
		}
	})
}

func FuzzManifest(f *testing.F) {
	pins := []TrustedKey{edPin, esPin}
	for _, s := range []Signer{edSigner, esSigner} {
		p := publish(f, sampleContents(), BuildOptions{Shards: 4}, s)
		f.Add(p.manifest)
		f.Add(p.manifest[envelopeHeaderSize+signatureSize:])
		g := withDelta(f, p, sampleDelta(), s)
		f.Add(g.manifest)
		f.Add(g.manifest[envelopeHeaderSize+signatureSize:])
	}
	f.Add([]byte("LKSM\x01\x00\x40\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if m, err := VerifyManifest(data, pins, std); (err == nil) != (m != nil) {
			t.Fatalf("VerifyManifest: manifest %v with error %v", m, err)
		}
		// The body decoder, reached directly since the fuzzer cannot forge signatures.
		m, err := decodeBody(data)
		if err != nil {
			if m != nil {
				t.Fatalf("manifest returned with error %v", err)
			}
			return
		}
		if !bytes.Equal(m.appendBody(nil), data) {
			t.Fatalf("decode/encode of the body is not the identity")
		}
		signed, err := SignManifest(m, edSigner)
		if err != nil {
			t.Fatalf("SignManifest of a decoded manifest: %v", err)
		}
		m2, err := VerifyManifest(signed, pins, std)
		if err != nil || !reflect.DeepEqual(m, m2) {
			t.Fatalf("sign/verify round trip: %v", err)
		}
		_ = m.CheckFresh(t0, 7)
	})
}
