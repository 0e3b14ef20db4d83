package verifier

import (
	"bytes"
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/latchkeyhq/latchkey/shared/apikey"
	"github.com/latchkeyhq/latchkey/shared/jwt"
)

// TestTokenCacheModel runs random lookups and stores against a plain LRU keyed by the token
// string, with real hashes and with hashes forced to collide (all equal, or equal in the slot
// bits only): the cache must answer exactly as the model, whatever the hashes do.
func TestTokenCacheModel(t *testing.T) {
	for _, hc := range []struct {
		name string
		hash func(c *tokenCache, tok []byte) uint64
	}{
		{"seeded", func(c *tokenCache, tok []byte) uint64 { return c.seed.sum(tok) }},
		{"tokenHash", func(_ *tokenCache, tok []byte) uint64 { return tokenHash(tok, 99) }},
		{"one hash", func(*tokenCache, []byte) uint64 { return 42 }},
		{"three hashes", func(_ *tokenCache, tok []byte) uint64 { return uint64(len(tok) % 3) }},
		{"one slot", func(c *tokenCache, tok []byte) uint64 { return c.seed.sum(tok)<<20 | 7 }},
		{"last slot", func(c *tokenCache, tok []byte) uint64 { return c.mask - uint64(len(tok)%2) }},
	} {
		t.Run(hc.name, func(t *testing.T) {
			for _, capacity := range []int{1, 2, 3, 7, 16} {
				rng := rand.New(rand.NewPCG(uint64(capacity), 1))
				c := newTokenCache(capacity)
				var model []string // most recently used first
				tokens := make([]string, 3*capacity+2)
				for i := range tokens {
					// Lengths vary so that "three hashes" spreads; a shared prefix makes the full
					// comparison do work.
					tokens[i] = "eyJhbGciOiJFZERTQSJ9." + strconv.Itoa(i) + ".sig" + string(bytes.Repeat([]byte{'x'}, i%5))
				}
				for step := 0; step < 3000; step++ {
					tok := tokens[rng.IntN(len(tokens))]
					h := hc.hash(c, []byte(tok))
					at := index(model, tok)
					if rng.IntN(2) == 0 {
						e := c.getHashed([]byte(tok), h, "p")
						if (e != nil) != (at >= 0) {
							t.Fatalf("cap %d step %d: get %q hit=%v, model %v", capacity, step, tok, e != nil, at >= 0)
						}
						if e != nil {
							checkEntry(t, e, tok)
							model = append(append([]string{tok}, model[:at]...), model[at+1:]...)
						}
					} else {
						cl, key := claimsFor(tok)
						checkEntry(t, c.putHashed([]byte(tok), h, "p", cl, apikey.ID{1}, key), tok)
						if at >= 0 {
							model = append(model[:at], model[at+1:]...)
						}
						model = append([]string{tok}, model...)
						if len(model) > capacity {
							model = model[:capacity]
						}
					}
					checkCache(t, c, model, hc.hash)
				}
			}
		})
	}
}

func index(list []string, s string) int {
	for i, x := range list {
		if x == s {
			return i
		}
	}
	return -1
}

func claimsFor(tok string) (*jwt.Claims, *jwt.Key) {
	return &jwt.Claims{Subject: []byte("sub-" + tok), JTI: []byte("jti"), Expiry: int64(len(tok))},
		&jwt.Key{KID: []byte("kid"), Alg: jwt.AlgEdDSA, Public: []byte("pub")}
}

func checkEntry(t *testing.T, e *tokenEntry, tok string) {
	t.Helper()
	if string(e.token) != tok || string(e.sub) != "sub-"+tok || e.exp != int64(len(tok)) || string(e.kid) != "kid" || string(e.pub) != "pub" {
		t.Fatalf("entry for %q holds token %q, sub %q, exp %d", tok, e.token, e.sub, e.exp)
	}
}

// checkCache compares the LRU order with the model and checks that the index holds exactly the
// listed entries, each reachable from its hash.
func checkCache(t *testing.T, c *tokenCache, model []string, hash func(*tokenCache, []byte) uint64) {
	t.Helper()
	var order []string
	for i := c.head; i >= 0; i = c.entries[i].next {
		order = append(order, string(c.entries[i].token))
	}
	if len(order) != len(model) {
		t.Fatalf("LRU %q, model %q", order, model)
	}
	for i := range order {
		if order[i] != model[i] {
			t.Fatalf("LRU %q, model %q", order, model)
		}
	}
	used := 0
	for _, v := range c.slots {
		if v != 0 {
			used++
		}
	}
	if used != len(model) {
		t.Fatalf("%d slots used for %d entries", used, len(model))
	}
	for _, tok := range model {
		if _, i := c.find([]byte(tok), hash(c, []byte(tok))); i < 0 || string(c.entries[i].token) != tok {
			t.Fatalf("%q not reachable from its hash", tok)
		}
	}
}

// TestTokenHash: the hash covers every byte and the length, and depends on the seed.
func TestTokenHash(t *testing.T) {
	tok := []byte("eyJhbGciOiJFZERTQSIsImtpZCI6ImsxIn0.eyJzdWIiOiJzZXNzXzEifQ.c2lnbmF0dXJl")
	h := tokenHash(tok, 1)
	seen := map[uint64]bool{h: true}
	for i := range tok {
		c := bytes.Clone(tok)
		c[i] ^= 1
		if seen[tokenHash(c, 1)] {
			t.Fatalf("flipping byte %d left the hash colliding", i)
		}
		seen[tokenHash(c, 1)] = true
	}
	for n := 0; n < len(tok); n++ {
		if x := tokenHash(tok[:n], 1); seen[x] {
			t.Fatalf("prefix of %d bytes collides", n)
		} else {
			seen[x] = true
		}
	}
	if tokenHash(tok, 2) == h {
		t.Fatal("the seed does not change the hash")
	}
	if tokenHash(append(bytes.Clone(tok[:8]), 0), 1) == tokenHash(tok[:8], 1) {
		t.Fatal("a trailing zero byte does not change the hash")
	}
}
