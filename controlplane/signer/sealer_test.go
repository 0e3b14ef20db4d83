package signer_test

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/latchkeyhq/latchkey/controlplane/signer"
)

func TestSealRoundTrip(t *testing.T) {
	s := newSealer(t)
	for _, pt := range [][]byte{nil, {}, []byte("x"), bytes.Repeat([]byte{0xA5}, 4096)} {
		sealed, err := s.Seal(pt, "ctx")
		if err != nil {
			t.Fatal(err)
		}
		if len(sealed) != 1+12+len(pt)+16 || sealed[0] != 1 {
			t.Fatalf("envelope of %d bytes is %d bytes, version %d", len(pt), len(sealed), sealed[0])
		}
		got, err := s.Open(sealed, "ctx")
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("Open = %x, %v; want %x", got, err, pt)
		}
	}
}

func TestSealNoncesNeverRepeat(t *testing.T) {
	s := newSealer(t)
	seen := map[string]bool{}
	for range 1000 {
		sealed, err := s.Seal([]byte("same"), "ctx")
		if err != nil {
			t.Fatal(err)
		}
		nonce := string(sealed[1:13])
		if seen[nonce] {
			t.Fatal("a nonce repeated")
		}
		seen[nonce] = true
	}
}

func TestSealTamperRefused(t *testing.T) {
	s := newSealer(t)
	sealed, err := s.Seal([]byte("private key material"), "ctx")
	if err != nil {
		t.Fatal(err)
	}
	for i := range sealed {
		for _, bit := range []byte{0x01, 0x80} {
			bad := bytes.Clone(sealed)
			bad[i] ^= bit
			if _, err := s.Open(bad, "ctx"); !errors.Is(err, signer.ErrSealed) {
				t.Fatalf("byte %d bit %#x flipped: %v", i, bit, err)
			}
		}
	}
	for n := range len(sealed) {
		if _, err := s.Open(sealed[:n], "ctx"); !errors.Is(err, signer.ErrSealed) {
			t.Fatalf("truncated to %d: %v", n, err)
		}
	}
	if _, err := s.Open(append(bytes.Clone(sealed), 0), "ctx"); !errors.Is(err, signer.ErrSealed) {
		t.Fatalf("extended: %v", err)
	}
}

func TestSealWrongContextRefused(t *testing.T) {
	s := newSealer(t)
	aad := signer.SigningKeyAAD("default", "sk_1", "EdDSA")
	sealed, err := s.Seal([]byte("k"), aad)
	if err != nil {
		t.Fatal(err)
	}
	for _, other := range []string{
		"", signer.ManifestKeyAAD, signer.SigningKeyAAD("prod", "sk_1", "EdDSA"),
		signer.SigningKeyAAD("default", "sk_2", "EdDSA"), signer.SigningKeyAAD("default", "sk_1", "ES256"),
		// Moving a separator must not produce the same context.
		signer.SigningKeyAAD("default\x00sk_1", "", "EdDSA"),
	} {
		if _, err := s.Open(sealed, other); !errors.Is(err, signer.ErrSealed) {
			t.Fatalf("opened under context %q: %v", other, err)
		}
	}
}

func TestSealWrongMasterRefused(t *testing.T) {
	sealed, err := newSealer(t).Seal([]byte("k"), "ctx")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := newSealer(t).Open(sealed, "ctx"); !errors.Is(err, signer.ErrSealed) {
		t.Fatalf("opened with another master key: %v", err)
	}
}

func TestNewSealerRefusesWrongLength(t *testing.T) {
	for _, n := range []int{0, 16, 31, 33, 64} {
		if _, err := signer.NewSealer(make([]byte, n)); !errors.Is(err, signer.ErrMasterKey) {
			t.Fatalf("%d-byte master: %v", n, err)
		}
	}
}

func TestSealerStringRedacts(t *testing.T) {
	master := randomMaster(t)
	s, err := signer.NewSealer(master)
	if err != nil {
		t.Fatal(err)
	}
	mustNotLeak(t, "Sealer formatting", fmt.Sprintf("%v %+v %#v %s", s, s, s, s), master)
}

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestLoadMasterKeyFromEnv(t *testing.T) {
	master := randomMaster(t)
	for name, text := range map[string]string{
		"base64":       base64.StdEncoding.EncodeToString(master),
		"base64 raw":   base64.RawStdEncoding.EncodeToString(master),
		"hex":          hex.EncodeToString(master),
		"hex newline":  hex.EncodeToString(master) + "\n",
		"base64 space": " " + base64.StdEncoding.EncodeToString(master),
	} {
		// The environment wins over a file and a data directory.
		got, err := signer.LoadMasterKey(env(map[string]string{signer.EnvMasterKey: text, signer.EnvMasterKeyFile: "/nonexistent"}), t.TempDir(), true)
		if err != nil || !bytes.Equal(got, master) {
			t.Fatalf("%s: %x, %v", name, got, err)
		}
	}
}

func TestLoadMasterKeyWrongLengthNamesSource(t *testing.T) {
	short := base64.StdEncoding.EncodeToString([]byte("sixteen byte key"))
	for name, text := range map[string]string{
		"short base64": short,
		"long hex":     hex.EncodeToString(make([]byte, 33)),
		"garbage":      "not a key at all!",
	} {
		_, err := signer.LoadMasterKey(env(map[string]string{signer.EnvMasterKey: text}), "", false)
		if !errors.Is(err, signer.ErrMasterKey) || !strings.Contains(err.Error(), signer.EnvMasterKey) {
			t.Fatalf("%s: %v", name, err)
		}
		if strings.Contains(err.Error(), strings.TrimSpace(text)) {
			t.Fatalf("%s: error quotes the value: %v", name, err)
		}
	}

	dir := t.TempDir()
	path := filepath.Join(dir, "key")
	if err := os.WriteFile(path, make([]byte, 31), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := signer.LoadMasterKey(env(map[string]string{signer.EnvMasterKeyFile: path}), "", false)
	if !errors.Is(err, signer.ErrMasterKey) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), signer.EnvMasterKeyFile) {
		t.Fatalf("31-byte file: %v", err)
	}
	// A data-dir file of the wrong length is refused too, never replaced.
	if err := os.WriteFile(filepath.Join(dir, signer.MasterKeyFile), []byte("short"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = signer.LoadMasterKey(env(nil), dir, true)
	if !errors.Is(err, signer.ErrMasterKey) || !strings.Contains(err.Error(), filepath.Join(dir, signer.MasterKeyFile)) {
		t.Fatalf("short data-dir file: %v", err)
	}
}

func TestLoadMasterKeyFromFile(t *testing.T) {
	master := randomMaster(t)
	dir := t.TempDir()
	for name, data := range map[string][]byte{
		"raw":    master,
		"hex":    []byte(hex.EncodeToString(master) + "\n"),
		"base64": []byte(base64.StdEncoding.EncodeToString(master) + "\n"),
	} {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := signer.LoadMasterKey(env(map[string]string{signer.EnvMasterKeyFile: path}), t.TempDir(), true)
		if err != nil || !bytes.Equal(got, master) {
			t.Fatalf("%s: %x, %v", name, got, err)
		}
	}
	// A named file that is missing is an error, not a reason to make a key.
	missing := filepath.Join(dir, "missing")
	_, err := signer.LoadMasterKey(env(map[string]string{signer.EnvMasterKeyFile: missing}), t.TempDir(), true)
	if !errors.Is(err, signer.ErrMasterKey) || !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), missing) {
		t.Fatalf("missing file: %v", err)
	}
	if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("a key file was created where the environment named one")
	}
}

func TestLoadMasterKeyCreatedInDataDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	if _, err := signer.LoadMasterKey(env(nil), dir, false); !errors.Is(err, signer.ErrMasterKey) || !strings.Contains(err.Error(), dir) {
		t.Fatalf("absent without create: %v", err)
	}
	first, err := signer.LoadMasterKey(env(nil), dir, true)
	if err != nil || len(first) != signer.MasterKeySize {
		t.Fatalf("create: %x, %v", first, err)
	}
	fi, err := os.Stat(filepath.Join(dir, signer.MasterKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("master.key mode %v, want 0600", fi.Mode().Perm())
	}
	again, err := signer.LoadMasterKey(env(nil), dir, false)
	if err != nil || !bytes.Equal(again, first) {
		t.Fatalf("reload: %v (same key: %v)", err, bytes.Equal(again, first))
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("data dir holds %d entries, want only master.key (no temporary files left)", len(entries))
	}
}

func TestLoadMasterKeyNoSource(t *testing.T) {
	_, err := signer.LoadMasterKey(env(nil), "", true)
	if !errors.Is(err, signer.ErrMasterKey) || !strings.Contains(err.Error(), signer.EnvMasterKey) {
		t.Fatalf("no source: %v", err)
	}
}

// Two control planes starting at once on one data directory must end up with one key.
func TestLoadMasterKeyConcurrentCreation(t *testing.T) {
	dir := t.TempDir()
	const n = 16
	keys := make([][]byte, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { keys[i], errs[i] = signer.LoadMasterKey(env(nil), dir, true) })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil || !bytes.Equal(keys[i], keys[0]) {
			t.Fatalf("loader %d: %v (same key: %v)", i, errs[i], bytes.Equal(keys[i], keys[0]))
		}
	}
}

func FuzzOpen(f *testing.F) {
	s, err := signer.NewSealer(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		f.Fatal(err)
	}
	valid, err := s.Seal([]byte("secret"), "ctx")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid, "ctx")
	f.Add([]byte{1}, "")
	f.Add(append([]byte{2}, valid[1:]...), "ctx")
	f.Fuzz(func(t *testing.T, data []byte, aad string) {
		pt, err := s.Open(data, aad)
		if err != nil {
			if pt != nil || !errors.Is(err, signer.ErrSealed) {
				t.Fatalf("failed Open returned %x, %v", pt, err)
			}
			return
		}
		// Anything that opens must be the one message sealed, in its one context. (The
		// envelope itself may differ from valid: each fuzz worker seals afresh, so nonces vary.)
		if aad != "ctx" || string(pt) != "secret" {
			t.Fatalf("forged envelope opened: %x under %q", data, aad)
		}
	})
}
