package signer_test

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/latchkeyhq/latchkey/controlplane/signer"
	"github.com/latchkeyhq/latchkey/shared/hostcrypto"
	"github.com/latchkeyhq/latchkey/shared/snapshot"
)

func testManifest() *snapshot.Manifest {
	obj := []byte("object bytes")
	return &snapshot.Manifest{
		Realm: "default", Version: 7, IssuedAt: t0.Unix(), ExpiresAt: t0.Unix() + 86400,
		Objects: []snapshot.ObjectRef{
			{Name: "meta-7", Size: uint64(len(obj)), SHA256: sha256.Sum256(obj)},
			{Name: "keys-7-0", Size: uint64(len(obj)), SHA256: sha256.Sum256(obj)},
		},
	}
}

func TestManifestKeyCreatedOnceThenReloaded(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	s := newSealer(t)
	if _, err := signer.LoadManifestKey(env(nil), dir, s, false); !errors.Is(err, signer.ErrManifestKey) || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("absent without create: %v", err)
	}
	mk, err := signer.LoadManifestKey(env(nil), dir, s, true)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, signer.ManifestKeyFile)
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("manifest.key: %v %v", fi, err)
	}
	again, err := signer.LoadManifestKey(env(nil), dir, s, false)
	if err != nil || again.PublicText() != mk.PublicText() || again.KeyID() != mk.KeyID() {
		t.Fatalf("reload: %v; %s vs %s", err, again, mk)
	}
	if !strings.HasPrefix(mk.KeyID(), "mk_") || mk.Alg() != snapshot.AlgEd25519 {
		t.Fatalf("id %q alg %d", mk.KeyID(), mk.Alg())
	}

	// The file is sealed: it holds no Ed25519 seed in the clear, and another master key
	// cannot open it — nor replaces it with a new key, which would break pinned edges.
	raw, _ := os.ReadFile(path)
	if _, err := signer.LoadManifestKey(env(nil), dir, newSealer(t), true); !errors.Is(err, signer.ErrSealed) || !strings.Contains(err.Error(), path) {
		t.Fatalf("wrong master: %v", err)
	}
	if after, _ := os.ReadFile(path); string(after) != string(raw) {
		t.Fatal("the manifest key file was replaced")
	}
	// Sealed under another context (a signing key's), it does not open as a manifest key.
	seed := make([]byte, 32)
	_, _ = rand.Read(seed)
	wrongCtx, _ := s.Seal(seed, signer.SigningKeyAAD("default", "sk_1", "EdDSA"))
	other := filepath.Join(t.TempDir(), "mk")
	if err := os.WriteFile(other, wrongCtx, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := signer.LoadManifestKey(env(map[string]string{signer.EnvManifestKeyFile: other}), dir, s, true); !errors.Is(err, signer.ErrSealed) {
		t.Fatalf("wrong context: %v", err)
	}
}

func TestManifestKeyFileFromEnv(t *testing.T) {
	s := newSealer(t)
	path := filepath.Join(t.TempDir(), "keys", "manifest.sealed")
	get := env(map[string]string{signer.EnvManifestKeyFile: path})
	mk, err := signer.LoadManifestKey(get, t.TempDir(), s, true)
	if err != nil {
		t.Fatal(err)
	}
	again, err := signer.LoadManifestKey(get, "", s, false)
	if err != nil || again.PublicText() != mk.PublicText() {
		t.Fatalf("reload from %s: %v", path, err)
	}
	if _, err := signer.LoadManifestKey(env(nil), "", s, true); !errors.Is(err, signer.ErrManifestKey) {
		t.Fatalf("nowhere to look: %v", err)
	}
}

func TestManifestKeyConcurrentCreation(t *testing.T) {
	dir := t.TempDir()
	s := newSealer(t)
	const n = 8
	texts := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			mk, err := signer.LoadManifestKey(env(nil), dir, s, true)
			if err != nil {
				texts[i] = err.Error()
				return
			}
			texts[i] = mk.PublicText()
		})
	}
	wg.Wait()
	for i := range n {
		if texts[i] != texts[0] {
			t.Fatalf("loader %d got %s, loader 0 got %s", i, texts[i], texts[0])
		}
	}
}

func TestManifestSignedByKeyVerifies(t *testing.T) {
	mk, err := signer.LoadManifestKey(env(nil), t.TempDir(), newSealer(t), true)
	if err != nil {
		t.Fatal(err)
	}
	data, err := snapshot.SignManifest(testManifest(), mk)
	if err != nil {
		t.Fatal(err)
	}
	pinned, err := signer.ParseTrustedKey(mk.PublicText())
	if err != nil {
		t.Fatal(err)
	}
	for name, trusted := range map[string]snapshot.TrustedKey{"Trusted": mk.Trusted(), "PublicText": pinned} {
		m, err := snapshot.VerifyManifest(data, []snapshot.TrustedKey{trusted}, hostcrypto.Std)
		if err != nil || m.Version != 7 || m.Realm != "default" {
			t.Fatalf("%s: %v %+v", name, err, m)
		}
	}
	// A flipped body byte, or another pinned key, is refused.
	bad := append([]byte(nil), data...)
	bad[len(bad)-1] ^= 1
	if _, err := snapshot.VerifyManifest(bad, []snapshot.TrustedKey{pinned}, hostcrypto.Std); !errors.Is(err, snapshot.ErrSignature) {
		t.Fatalf("tampered manifest: %v", err)
	}
	stranger, _ := signer.LoadManifestKey(env(nil), t.TempDir(), newSealer(t), true)
	if _, err := snapshot.VerifyManifest(data, []snapshot.TrustedKey{stranger.Trusted()}, hostcrypto.Std); !errors.Is(err, snapshot.ErrSignature) {
		t.Fatalf("another key: %v", err)
	}
}

func TestManifestKeyNeverPrinted(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	mk, err := signer.NewManifestKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	text := fmt.Sprintf("%v|%+v|%#v|%s", mk, mk, mk, mk)
	mustNotLeak(t, "ManifestKey formatting (seed)", text, priv.Seed())
	mustNotLeak(t, "ManifestKey formatting (private)", text, priv)
	if !strings.Contains(text, mk.PublicText()) {
		t.Fatalf("String() omits the public key: %s", text)
	}
}

func TestParseTrustedKeyRoundTrip(t *testing.T) {
	edPub, _, _ := ed25519.GenerateKey(rand.Reader)
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecPub, _ := ec.PublicKey.Bytes()
	for _, k := range []snapshot.TrustedKey{
		{Alg: snapshot.AlgEd25519, Public: edPub}, {Alg: snapshot.AlgES256, Public: ecPub},
	} {
		text := signer.TrustedText(k)
		got, err := signer.ParseTrustedKey(text)
		if err != nil || got.Alg != k.Alg || string(got.Public) != string(k.Public) {
			t.Fatalf("%s: %v %+v", text, err, got)
		}
	}
}

func TestParseTrustedKeyRefusesMalformed(t *testing.T) {
	b64 := base64.RawURLEncoding.EncodeToString
	offCurve := append([]byte{4}, make([]byte, 64)...)
	offCurve[64] = 1
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecPub, _ := ec.PublicKey.Bytes()
	compressed := append([]byte{2 | ecPub[64]&1}, ecPub[1:33]...)
	for name, text := range map[string]string{
		"empty":             "",
		"no prefix":         b64(make([]byte, 32)),
		"upper-case prefix": "ED25519:" + b64(make([]byte, 32)),
		"short ed25519":     "ed25519:" + b64(make([]byte, 31)),
		"long ed25519":      "ed25519:" + b64(make([]byte, 33)),
		"padded":            "ed25519:" + base64.URLEncoding.EncodeToString(make([]byte, 32)),
		"std alphabet":      "ed25519:" + strings.Repeat("+", 43),
		"whitespace":        " ed25519:" + b64(make([]byte, 32)),
		"es256 off curve":   "es256:" + b64(offCurve),
		"es256 compressed":  "es256:" + b64(compressed),
		"es256 as ed25519":  "ed25519:" + b64(ecPub),
	} {
		if _, err := signer.ParseTrustedKey(text); !errors.Is(err, signer.ErrInvalid) {
			t.Fatalf("%s: %v", name, err)
		}
	}
}

func FuzzParseTrustedKey(f *testing.F) {
	f.Add("ed25519:" + base64.RawURLEncoding.EncodeToString(make([]byte, 32)))
	f.Add("es256:BGsX0fLhLEJH-Lzm5WOkQPJ3A32BLeszoPShOUXYmMKWT-NC4v4af5uO5-tKfA-eFivOM1drMV7Oy7ZAaDe_UfU")
	f.Add("es256:")
	f.Fuzz(func(t *testing.T, s string) {
		k, err := signer.ParseTrustedKey(s)
		if err != nil {
			if k.Public != nil || k.Alg != 0 {
				t.Fatalf("failed parse returned %+v", k)
			}
			return
		}
		// One text per key: re-encoding gives back the input.
		if signer.TrustedText(k) != s {
			t.Fatalf("%q re-encodes as %q", s, signer.TrustedText(k))
		}
	})
}
