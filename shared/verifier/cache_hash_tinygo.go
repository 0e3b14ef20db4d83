//go:build tinygo

package verifier

import "math/rand/v2"

// tokenSeed places tokens in the cache's index with tokenHash. TinyGo builds hash/maphash as
// purego, which links crypto/rand; rand/v2's top-level functions draw from the runtime's
// randomness instead (WASI random_get inside a guest).
type tokenSeed struct{ s uint64 }

func newTokenSeed() tokenSeed { return tokenSeed{rand.Uint64()} }

func (s tokenSeed) sum(b []byte) uint64 { return tokenHash(b, s.s) }
