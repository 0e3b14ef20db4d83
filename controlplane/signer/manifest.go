package signer

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/latchkeyhq/latchkey/shared/snapshot"
)

// Text prefixes of a pinned manifest public key (PublicText, ParseTrustedKey).
const (
	TrustedPrefixEd25519 = "ed25519:"
	TrustedPrefixES256   = "es256:"
)

// ManifestKey is the Ed25519 key that signs every realm's snapshot manifests; edges pin its
// public half. It implements snapshot.Signer and is safe for concurrent use.
type ManifestKey struct {
	priv ed25519.PrivateKey
	pub  ed25519.PublicKey
	id   string
}

var _ snapshot.Signer = (*ManifestKey)(nil)

// LoadManifestKey unseals the manifest key from the file LATCHKEY_MANIFEST_KEY_FILE names,
// else <dataDir>/manifest.key; when the file is absent and create is set, a new key is
// generated and written (mode 0600), sealed under ManifestKeyAAD. A file that does not open
// with s (another master key) gives an error matching ErrSealed: generating a new key then
// would silently break every edge pinned to the old one. getenv nil means os.Getenv.
func LoadManifestKey(getenv func(string) string, dataDir string, s *Sealer, create bool) (*ManifestKey, error) {
	const op = "load manifest key"
	if getenv == nil {
		getenv = os.Getenv
	}
	if s == nil {
		return nil, invalid(op, "nil sealer")
	}
	path, source := getenv(EnvManifestKeyFile), ""
	if path != "" {
		source = EnvManifestKeyFile + "=" + path
	} else if dataDir != "" {
		path = filepath.Join(dataDir, ManifestKeyFile)
		source = path
	} else {
		return nil, &Error{Kind: ErrManifestKey, Op: op,
			Reason: "none configured: set " + EnvManifestKeyFile + " or give a data directory"}
	}
	sealed, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) && create {
		seed := make([]byte, ed25519.SeedSize)
		if _, err := rand.Read(seed); err != nil {
			return nil, &Error{Kind: ErrManifestKey, Op: op, Source: source, Err: err}
		}
		defer clear(seed)
		fresh, err := s.Seal(seed, ManifestKeyAAD)
		if err != nil {
			return nil, err
		}
		created, err := writeNewFile(path, fresh)
		if err != nil {
			return nil, &Error{Kind: ErrManifestKey, Op: "create manifest key", Source: source, Err: err}
		}
		if created {
			return newManifestKey(seed), nil
		}
		sealed, err = os.ReadFile(path) // another process created it first: use theirs
		if err != nil {
			return nil, &Error{Kind: ErrManifestKey, Op: op, Source: source, Err: err}
		}
	} else if err != nil {
		return nil, &Error{Kind: ErrManifestKey, Op: op, Source: source, Err: err}
	}
	seed, err := s.Open(sealed, ManifestKeyAAD)
	if err != nil {
		return nil, &Error{Kind: ErrSealed, Op: op, Source: source,
			Reason: "does not open with this master key (was it sealed under another one?)"}
	}
	defer clear(seed)
	if len(seed) != ed25519.SeedSize {
		return nil, &Error{Kind: ErrManifestKey, Op: op, Source: source, Reason: "not an Ed25519 seed"}
	}
	return newManifestKey(seed), nil
}

// NewManifestKey wraps an Ed25519 private key (for tests and for keys held elsewhere).
func NewManifestKey(priv ed25519.PrivateKey) (*ManifestKey, error) {
	if len(priv) != ed25519.PrivateKeySize {
		return nil, invalid("new manifest key", "not an Ed25519 private key")
	}
	return newManifestKey(priv.Seed()), nil
}

func newManifestKey(seed []byte) *ManifestKey {
	priv := ed25519.NewKeyFromSeed(seed)
	pub := priv.Public().(ed25519.PublicKey)
	sum := sha256.Sum256(pub)
	// The id is a fingerprint of the public key, so logs can tell keys apart without either
	// half being printed.
	return &ManifestKey{priv: priv, pub: pub, id: "mk_" + hex.EncodeToString(sum[:8])}
}

// Alg returns snapshot.AlgEd25519.
func (m *ManifestKey) Alg() uint8 { return snapshot.AlgEd25519 }

// KeyID returns "mk_" + 16 hex digits of the public key's SHA-256.
func (m *ManifestKey) KeyID() string { return m.id }

// Sign signs message (the manifest label and body) with Ed25519.
func (m *ManifestKey) Sign(message []byte) ([]byte, error) { return ed25519.Sign(m.priv, message), nil }

// Trusted returns the public half as an edge pins it.
func (m *ManifestKey) Trusted() snapshot.TrustedKey {
	return snapshot.TrustedKey{Alg: snapshot.AlgEd25519, Public: append([]byte(nil), m.pub...)}
}

// PublicText returns "ed25519:<base64url public key>", what an edge is configured with.
func (m *ManifestKey) PublicText() string {
	return TrustedPrefixEd25519 + base64.RawURLEncoding.EncodeToString(m.pub)
}

// String shows the key id and public key, never the private key.
func (m *ManifestKey) String() string {
	return "signer.ManifestKey{" + m.id + " " + m.PublicText() + ", private key redacted}"
}

// GoString keeps %#v from printing the private key.
func (m *ManifestKey) GoString() string { return m.String() }

// ParseTrustedKey parses a pinned manifest key: "ed25519:" and 32 bytes, or "es256:" and a
// 65-byte uncompressed P-256 point on the curve, in unpadded, canonical base64url: the text
// of a key is unique, so TrustedText(ParseTrustedKey(s)) == s.
func ParseTrustedKey(s string) (snapshot.TrustedKey, error) {
	const op = "parse trusted key"
	var alg uint8
	var rest string
	switch {
	case strings.HasPrefix(s, TrustedPrefixEd25519):
		alg, rest = snapshot.AlgEd25519, s[len(TrustedPrefixEd25519):]
	case strings.HasPrefix(s, TrustedPrefixES256):
		alg, rest = snapshot.AlgES256, s[len(TrustedPrefixES256):]
	default:
		return snapshot.TrustedKey{}, invalid(op, `want "ed25519:<base64url>" or "es256:<base64url>"`)
	}
	pub, err := base64.RawURLEncoding.Strict().DecodeString(rest)
	if err != nil {
		return snapshot.TrustedKey{}, invalid(op, "public key is not base64url")
	}
	switch alg {
	case snapshot.AlgEd25519:
		if len(pub) != ed25519.PublicKeySize {
			return snapshot.TrustedKey{}, invalid(op, "an Ed25519 public key is 32 bytes")
		}
	case snapshot.AlgES256:
		if len(pub) != 65 || pub[0] != 4 {
			return snapshot.TrustedKey{}, invalid(op, "a P-256 public key is a 65-byte uncompressed point")
		}
		if _, err := ecdh.P256().NewPublicKey(pub); err != nil {
			return snapshot.TrustedKey{}, invalid(op, "not a point on P-256")
		}
	}
	return snapshot.TrustedKey{Alg: alg, Public: pub}, nil
}

// TrustedText formats a trusted key the way ParseTrustedKey reads it.
func TrustedText(k snapshot.TrustedKey) string {
	prefix := TrustedPrefixEd25519
	if k.Alg == snapshot.AlgES256 {
		prefix = TrustedPrefixES256
	}
	return prefix + base64.RawURLEncoding.EncodeToString(k.Public)
}
