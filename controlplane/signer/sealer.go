package signer

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
)

// MasterKeySize is the size of the master key, from which the sealing key is derived.
const MasterKeySize = 32

// Envelope layout: version (1 byte) || nonce (12 bytes) || AES-256-GCM ciphertext and tag.
// The version byte is authenticated (it is part of the GCM additional data), so a future
// format cannot be confused with this one.
const (
	sealVersion  = 1
	sealNonceLen = 12
	sealTagLen   = 16
	// sealLabel separates this use of AES-GCM from any other the master key might get.
	sealLabel = "latchkey/sealed/v1\x00"
	// sealKDFInfo derives the AES key from the master key: the master key itself is never a
	// cipher key, so other derived keys (sealed credentials, say) can come from it later.
	sealKDFInfo = "latchkey/sealer/aes-256-gcm/v1"
)

// Contexts (aad) for what the control plane seals. The aad binds a ciphertext to its
// purpose and owner: a signing key sealed for one realm and kid does not open as another.
const ManifestKeyAAD = "manifest_key"

// SigningKeyAAD is the context a client-token signing key's private half is sealed under.
func SigningKeyAAD(realm, kid, alg string) string {
	// NUL cannot occur in realm names, kids or algorithm names, so the encoding is injective.
	return "signing_key\x00" + realm + "\x00" + kid + "\x00" + alg
}

// Sealer encrypts secrets at rest (AES-256-GCM, a random nonce per message) under a key
// derived from the master key. It is safe for concurrent use.
type Sealer struct {
	aead cipher.AEAD
}

// NewSealer returns a Sealer for a 32-byte master key. The master key is not retained.
func NewSealer(master []byte) (*Sealer, error) {
	if len(master) != MasterKeySize {
		return nil, &Error{Kind: ErrMasterKey, Op: "new sealer", Reason: "master key must be 32 bytes"}
	}
	key, err := hkdf.Key(sha256.New, master, nil, sealKDFInfo, 32)
	if err != nil {
		return nil, &Error{Kind: ErrMasterKey, Op: "new sealer", Err: err}
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, &Error{Kind: ErrMasterKey, Op: "new sealer", Err: err}
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, &Error{Kind: ErrMasterKey, Op: "new sealer", Err: err}
	}
	return &Sealer{aead: aead}, nil
}

func additionalData(aad string) []byte {
	b := make([]byte, 0, len(sealLabel)+1+len(aad))
	b = append(b, sealLabel...)
	b = append(b, sealVersion)
	return append(b, aad...)
}

// Seal encrypts plaintext bound to aad: Open succeeds only with the same aad.
func (s *Sealer) Seal(plaintext []byte, aad string) ([]byte, error) {
	out := make([]byte, 1+sealNonceLen, 1+sealNonceLen+len(plaintext)+sealTagLen)
	out[0] = sealVersion
	// A random 96-bit nonce is safe here: a control plane seals a handful of keys, far
	// below the 2^32 messages per key where random GCM nonces start to risk collision.
	if _, err := rand.Read(out[1 : 1+sealNonceLen]); err != nil {
		return nil, &Error{Kind: ErrSealed, Op: "seal", Err: err}
	}
	return s.aead.Seal(out, out[1:1+sealNonceLen], plaintext, additionalData(aad)), nil
}

// Open decrypts what Seal produced with the same aad. Every failure is ErrSealed.
func (s *Sealer) Open(sealed []byte, aad string) ([]byte, error) {
	if len(sealed) < 1+sealNonceLen+sealTagLen || sealed[0] != sealVersion {
		return nil, ErrSealed
	}
	pt, err := s.aead.Open(nil, sealed[1:1+sealNonceLen], sealed[1+sealNonceLen:], additionalData(aad))
	if err != nil {
		return nil, ErrSealed
	}
	return pt, nil
}

// String never shows key material.
func (s *Sealer) String() string { return "signer.Sealer{AES-256-GCM, key redacted}" }

// GoString keeps %#v from printing the cipher's internals.
func (s *Sealer) GoString() string { return s.String() }
