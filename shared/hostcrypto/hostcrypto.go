// Package hostcrypto is the small set of primitives the verification core needs:
// SHA-256, Ed25519 verification and ES256 (ECDSA P-256, SHA-256) verification.
//
// The core never calls crypto packages directly; it calls a Provider. Native hosts use
// Std (the Go standard library). Wasm hosts pass a Provider that forwards to host
// imports, because signatures and hashing dominate the cost of a decision inside Wasm.
package hostcrypto

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/sha256"
	"sync"

	"github.com/latchkeyhq/latchkey/shared/internal/bytestr"
)

// Sizes of the encodings the Provider works with.
const (
	Ed25519PublicKeySize = ed25519.PublicKeySize // 32
	Ed25519SignatureSize = ed25519.SignatureSize // 64
	// P256PublicKeySize is an uncompressed SEC 1 point: 0x04 || X || Y.
	P256PublicKeySize = 65
	// ES256SignatureSize is the JWS (IEEE P1363) form: R || S, 32 bytes each.
	ES256SignatureSize = 64
)

// Provider supplies the primitives. Implementations must be safe for the calling
// pattern of their host (Std is safe for concurrent use) and must not retain the
// slices they are given.
type Provider interface {
	// SHA256 returns the SHA-256 digest of data.
	SHA256(data []byte) [32]byte
	// VerifyEd25519 reports whether sig is a valid Ed25519 signature of message under
	// publicKey (32 bytes). Any malformed input yields false.
	VerifyEd25519(publicKey, message, sig []byte) bool
	// VerifyES256 reports whether sig (64 bytes, R||S) is a valid ECDSA P-256
	// signature of SHA-256(message) under publicKey (65-byte uncompressed point).
	// Any malformed input, including a point not on the curve, yields false.
	VerifyES256(publicKey, message, sig []byte) bool
}

// Std is the Provider backed by the Go standard library.
var Std Provider = std{}

type std struct{}

func (std) SHA256(data []byte) [32]byte { return sha256.Sum256(data) }

func (std) VerifyEd25519(publicKey, message, sig []byte) bool {
	if len(publicKey) != Ed25519PublicKeySize || len(sig) != Ed25519SignatureSize {
		return false
	}
	return ed25519.Verify(publicKey, message, sig)
}

func (std) VerifyES256(publicKey, message, sig []byte) bool {
	if len(publicKey) != P256PublicKeySize || publicKey[0] != 4 || len(sig) != ES256SignatureSize {
		return false
	}
	pub := p256Keys.get(publicKey)
	if pub == nil {
		return false
	}
	// crypto/ecdsa verifies ASN.1 DER; building it in a stack buffer avoids the big.Int
	// allocations of ecdsa.Verify.
	var der [72]byte
	digest := sha256.Sum256(message)
	return ecdsa.VerifyASN1(pub, digest[:], appendDERSignature(der[:0], sig[:32], sig[32:]))
}

// appendDERSignature encodes R and S (32-byte big-endian each) as an ASN.1 SEQUENCE of two
// INTEGERs.
func appendDERSignature(dst, r, s []byte) []byte {
	r, s = derInteger(r), derInteger(s)
	dst = append(dst, 0x30, byte(2+len(r)+2+len(s)))
	dst = append(dst, 0x02, byte(len(r)))
	dst = append(dst, r...)
	dst = append(dst, 0x02, byte(len(s)))
	return append(dst, s...)
}

// derInteger returns the minimal two's-complement form of an unsigned big-endian integer. It
// may return a slice of a fresh 33-byte array when a leading zero is needed; for a 32-byte
// input that stays on the caller's stack after inlining, and costs one small allocation if not.
func derInteger(b []byte) []byte {
	for len(b) > 1 && b[0] == 0 && b[1] < 0x80 {
		b = b[1:]
	}
	if len(b) == 0 {
		return []byte{0}
	}
	if b[0] >= 0x80 {
		out := make([]byte, len(b)+1)
		copy(out[1:], b)
		return out
	}
	return b
}

// keyCache keeps the last few parsed P-256 public keys: a realm publishes a handful of
// signing keys, and parsing (point validation) costs allocations on every verify otherwise.
type keyCache struct {
	mu   sync.Mutex
	keys [8]cachedKey
	next int
}

type cachedKey struct {
	raw [P256PublicKeySize]byte
	pub *ecdsa.PublicKey
}

var p256Keys keyCache

func (c *keyCache) get(raw []byte) *ecdsa.PublicKey {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range c.keys {
		if c.keys[i].pub != nil && bytestr.EqualBytes(c.keys[i].raw[:], raw) {
			return c.keys[i].pub
		}
	}
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), raw)
	if err != nil {
		return nil
	}
	k := &c.keys[c.next]
	copy(k.raw[:], raw)
	k.pub = pub
	c.next = (c.next + 1) % len(c.keys)
	return pub
}
