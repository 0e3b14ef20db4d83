// Package signer holds the control plane's secrets: the master key, the Sealer that encrypts
// private keys at rest with it, the client-token signing keys (EdDSA or ES256, minted with
// golang-jwt), the Ed25519 key that signs snapshot manifests, and the JWKS that publishes
// client-token public keys. No private key, master key or token ever appears in an error or
// in a String result.
package signer

import (
	"errors"
	"strings"
)

var (
	// ErrSealed: sealed data does not open — a wrong master key, a wrong context (aad), an
	// unknown envelope version, or tampering. The causes are deliberately indistinguishable.
	ErrSealed = errors.New("signer: sealed data does not open (wrong master key, wrong context, or tampered)")
	// ErrMasterKey: no usable master key (absent, wrong length, not decodable, unreadable).
	ErrMasterKey = errors.New("signer: master key unusable")
	// ErrManifestKey: the manifest signing key file is absent, unreadable or malformed.
	ErrManifestKey = errors.New("signer: manifest key unusable")
	// ErrInvalid: an argument is malformed (unknown algorithm, bad claims, bad public key text).
	ErrInvalid = errors.New("signer: invalid argument")
)

// Error details the sentinel errors above: what was being done, where the material came
// from (an environment variable's name or a file's path, never a value), and why.
type Error struct {
	Kind   error  // ErrSealed, ErrMasterKey, ErrManifestKey or ErrInvalid
	Op     string // "load master key", "mint", "parse trusted key", …
	Source string // env var name or file path; "" when not applicable
	Reason string
	Err    error // the underlying cause (an I/O error), or nil
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("signer: ")
	b.WriteString(e.Op)
	if e.Source != "" {
		b.WriteString(" (")
		b.WriteString(e.Source)
		b.WriteString(")")
	}
	if e.Reason != "" {
		b.WriteString(": ")
		b.WriteString(e.Reason)
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap lets errors.Is match both the kind and the cause.
func (e *Error) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.Err}
}

func invalid(op, reason string) error {
	return &Error{Kind: ErrInvalid, Op: op, Reason: reason}
}
