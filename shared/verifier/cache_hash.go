//go:build !tinygo

package verifier

import "hash/maphash"

// tokenSeed places tokens in the cache's index: the runtime's seeded hash (AES-based where the
// CPU has it), as for Go's own maps.
type tokenSeed struct{ s maphash.Seed }

func newTokenSeed() tokenSeed { return tokenSeed{maphash.MakeSeed()} }

func (s tokenSeed) sum(b []byte) uint64 { return maphash.Bytes(s.s, b) }
