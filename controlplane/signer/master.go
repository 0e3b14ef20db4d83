package signer

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Environment variables and file names the secrets are found under.
const (
	EnvMasterKey       = "LATCHKEY_MASTER_KEY"
	EnvMasterKeyFile   = "LATCHKEY_MASTER_KEY_FILE"
	EnvManifestKeyFile = "LATCHKEY_MANIFEST_KEY_FILE"
	MasterKeyFile      = "master.key"
	ManifestKeyFile    = "manifest.key"
)

// LoadMasterKey finds the 32-byte master key: the value of LATCHKEY_MASTER_KEY (base64 or
// hex), else the file LATCHKEY_MASTER_KEY_FILE names, else <dataDir>/master.key, created
// (mode 0600, 32 random bytes) when absent and create is set. A file holds the 32 raw bytes
// or their base64 or hex text. Errors name where the key was looked for, never its value.
// getenv nil means os.Getenv.
func LoadMasterKey(getenv func(string) string, dataDir string, create bool) ([]byte, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	const op = "load master key"
	if v := getenv(EnvMasterKey); v != "" {
		key, reason := decodeKeyText([]byte(v))
		if reason != "" {
			return nil, &Error{Kind: ErrMasterKey, Op: op, Source: EnvMasterKey, Reason: reason}
		}
		return key, nil
	}
	if path := getenv(EnvMasterKeyFile); path != "" {
		return readMasterKeyFile(path, EnvMasterKeyFile+"="+path)
	}
	if dataDir == "" {
		return nil, &Error{Kind: ErrMasterKey, Op: op,
			Reason: "none configured: set " + EnvMasterKey + " or " + EnvMasterKeyFile + ", or give a data directory"}
	}
	path := filepath.Join(dataDir, MasterKeyFile)
	key, err := readMasterKeyFile(path, path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return key, err
	}
	if !create {
		return nil, &Error{Kind: ErrMasterKey, Op: op, Source: path,
			Reason: "absent (set " + EnvMasterKey + " or " + EnvMasterKeyFile + ")"}
	}
	fresh := make([]byte, MasterKeySize)
	if _, err := rand.Read(fresh); err != nil {
		return nil, &Error{Kind: ErrMasterKey, Op: op, Source: path, Err: err}
	}
	created, err := writeNewFile(path, fresh)
	if err != nil {
		return nil, &Error{Kind: ErrMasterKey, Op: "create master key", Source: path, Err: err}
	}
	if !created { // another process created it first: use theirs
		return readMasterKeyFile(path, path)
	}
	return fresh, nil
}

func readMasterKeyFile(path, source string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &Error{Kind: ErrMasterKey, Op: "load master key", Source: source, Err: err}
	}
	if len(data) == MasterKeySize {
		return data, nil
	}
	key, reason := decodeKeyText(data)
	if reason != "" {
		return nil, &Error{Kind: ErrMasterKey, Op: "load master key", Source: source,
			Reason: "file is " + strconv.Itoa(len(data)) + " bytes: " + reason}
	}
	return key, nil
}

// decodeKeyText decodes 32 bytes given as hex or base64 (standard alphabet, padded or not);
// the reason is empty on success. The reason never quotes the input: it may be a secret.
func decodeKeyText(text []byte) ([]byte, string) {
	s := strings.TrimSpace(string(text))
	if len(s) == 2*MasterKeySize {
		if b, err := hex.DecodeString(s); err == nil {
			return b, ""
		}
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		b, err = base64.RawStdEncoding.DecodeString(s)
	}
	if err != nil {
		return nil, "not 32 bytes of base64 or hex (" + strconv.Itoa(len(s)) + " characters)"
	}
	if len(b) != MasterKeySize {
		return nil, "decodes to " + strconv.Itoa(len(b)) + " bytes, want 32"
	}
	return b, ""
}

// writeNewFile writes data to path (mode 0600) only if path does not exist, atomically:
// the file appears complete or not at all, so a concurrent reader never sees half a key.
// It reports false when path already existed.
func writeNewFile(path string, data []byte) (bool, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return false, err
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+"-*")
	if err != nil {
		return false, err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return false, err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return false, err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return false, err
	}
	if err := tmp.Close(); err != nil {
		return false, err
	}
	// link, unlike rename, refuses to replace an existing file.
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return false, nil
		}
		return false, err
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync() // make the new name durable; best effort where directories cannot sync
		d.Close()
	}
	return true, nil
}
