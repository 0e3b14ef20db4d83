//go:build accel

package main

//lint:file-ignore U1000 the host reaches this code through //go:wasmexport and //go:wasmimport, which staticcheck does not follow

import (
	"unsafe"

	"github.com/latchkeyhq/latchkey/shared/hostcrypto"
)

// provider forwards to the host's crypto: inside Wasm, hashing and signature checks are what
// a decision costs (ABI.md, "Host imports").
var provider hostcrypto.Provider = hostProvider{}

// sha256 writes the SHA-256 of data_len bytes at data to the 32 bytes at out.
//
//go:wasmimport latchkey sha256
func hostSHA256(data unsafe.Pointer, dataLen uint32, out unsafe.Pointer)

// ed25519_verify returns 1 when sig is a valid Ed25519 signature of msg under pub, else 0.
//
//go:wasmimport latchkey ed25519_verify
func hostEd25519Verify(pub unsafe.Pointer, pubLen uint32, msg unsafe.Pointer, msgLen uint32, sig unsafe.Pointer, sigLen uint32) uint32

// p256_verify returns 1 when sig (R||S) is a valid ECDSA P-256 signature of SHA-256(msg)
// under pub (an uncompressed point), else 0.
//
//go:wasmimport latchkey p256_verify
func hostP256Verify(pub unsafe.Pointer, pubLen uint32, msg unsafe.Pointer, msgLen uint32, sig unsafe.Pointer, sigLen uint32) uint32

type hostProvider struct{}

// digest receives the host's SHA-256: a package-level buffer, so that passing its address to
// the import does not move a local to the heap. An instance runs one call at a time.
var digest [32]byte

func ptr(b []byte) unsafe.Pointer { return unsafe.Pointer(unsafe.SliceData(b)) }

func (hostProvider) SHA256(data []byte) [32]byte {
	hostSHA256(ptr(data), uint32(len(data)), unsafe.Pointer(&digest))
	return digest
}

func (hostProvider) VerifyEd25519(pub, msg, sig []byte) bool {
	if len(pub) != hostcrypto.Ed25519PublicKeySize || len(sig) != hostcrypto.Ed25519SignatureSize {
		return false
	}
	return hostEd25519Verify(ptr(pub), uint32(len(pub)), ptr(msg), uint32(len(msg)), ptr(sig), uint32(len(sig))) == 1
}

func (hostProvider) VerifyES256(pub, msg, sig []byte) bool {
	if len(pub) != hostcrypto.P256PublicKeySize || len(sig) != hostcrypto.ES256SignatureSize {
		return false
	}
	return hostP256Verify(ptr(pub), uint32(len(pub)), ptr(msg), uint32(len(msg)), ptr(sig), uint32(len(sig))) == 1
}
