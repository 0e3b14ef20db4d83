package signer_test

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"testing"

	"github.com/latchkeyhq/latchkey/controlplane/signer"
	"github.com/latchkeyhq/latchkey/controlplane/store"
)

// BenchmarkMint mints a typical client token per algorithm, beside the bare signature over
// a message of the same size (the baseline): the ratio Mint/sign is what golang-jwt and the
// claim encoding cost on top of the cryptography. The DESIGN target (≥ 10,000 mints/s over
// HTTP on 2 cores) needs Mint well under 100 µs per core.
func BenchmarkMint(b *testing.B) {
	s := newSealer(b)
	for _, alg := range bothAlgs {
		k, ts := newSigningKey(b, s, alg)
		claims := stdClaims()
		token, _, _, err := ts.Mint(claims)
		if err != nil {
			b.Fatal(err)
		}
		msg := []byte(token[:len(token)-87]) // about the signing input's size
		raw, err := s.Open(k.PrivateSealed, signer.SigningKeyAAD(k.Realm, k.KID, k.Alg))
		if err != nil {
			b.Fatal(err)
		}

		b.Run(alg+"/sign-baseline", func(b *testing.B) {
			b.ReportAllocs()
			if alg == store.AlgEdDSA {
				priv := ed25519.NewKeyFromSeed(raw)
				for b.Loop() {
					_ = ed25519.Sign(priv, msg)
				}
				return
			}
			priv, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), raw)
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				h := sha256.Sum256(msg)
				if _, _, err := ecdsa.Sign(rand.Reader, priv, h[:]); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(alg+"/Mint", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, _, _, err := ts.Mint(claims); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
