package verifier

import (
	"encoding/binary"
	"errors"

	"github.com/latchkeyhq/latchkey/shared/apikey"
	"github.com/latchkeyhq/latchkey/shared/internal/bytestr"
	"github.com/latchkeyhq/latchkey/shared/jwt"
	"github.com/latchkeyhq/latchkey/shared/limits"
)

const maxTokenLen = limits.MaxTokenBytes

// tokenEntry is what a verified token leaves behind: the claims the decision needs again.
// Signature, issuer, audience and type were checked when it was stored; revocation, expiry,
// the minting key and the signing key are checked again on every hit.
type tokenEntry struct {
	// token is the whole token, compared byte for byte on every lookup; hash is its tokenHash.
	token []byte
	hash  uint64
	// profile is the token profile (issuer, audience, leeway) the token was validated under: a
	// snapshot that changes it makes the entry a miss; any other new snapshot keeps it.
	profile string
	// alg and pub are the signing key that verified the token: a hit counts only while the
	// snapshot still publishes that exact key under kid.
	alg                            jwt.Alg
	kid, pub, sub, jti, org, scope []byte
	keyID                          apikey.ID
	exp, nbf                       int64
	prev, next                     int32
	// buf holds token and the claims; an evicted entry's buffer is reused when large enough.
	buf []byte
}

// tokenCache is a bounded LRU of verified tokens, keyed by the whole token, never by its
// signature alone: a known signature on a changed header or payload is a different key, so it
// misses and is verified (and refused).
//
// The index is an open-addressing table (linear probing) of entry numbers, placed by a seeded
// 64-bit hash of the token bytes (tokenSeed: hash/maphash with the standard compiler,
// tokenHash under TinyGo); a lookup compares the whole stored token, so tokens whose hashes
// collide are simply two entries in the table. A map keyed by string(token) would do the
// same, but TinyGo copies the token into a new string on every lookup.
type tokenCache struct {
	// slots holds entry index + 1 (0: empty); its length is a power of two of at least twice
	// the capacity, so probe sequences stay short.
	slots      []int32
	mask       uint64
	seed       tokenSeed
	entries    []tokenEntry
	head, tail int32 // most and least recently used; -1 when empty
	capacity   int
	transient  tokenEntry
}

func newTokenCache(capacity int) *tokenCache {
	c := &tokenCache{capacity: capacity, head: -1, tail: -1}
	if capacity > 0 {
		n := 1
		for n < 2*capacity {
			n <<= 1
		}
		// The seed keeps slot placement unpredictable, as Go seeds its maps: a caller who
		// could predict it could line tokens up on one probe sequence.
		c.slots, c.mask, c.seed = make([]int32, n), uint64(n-1), newTokenSeed()
	}
	return c
}

// find returns the slot holding token (hash h) and its entry index, or the empty slot that
// ends its probe sequence and -1.
func (c *tokenCache) find(token []byte, h uint64) (slot uint64, entry int32) {
	for s := h & c.mask; ; s = (s + 1) & c.mask {
		v := c.slots[s]
		if v == 0 {
			return s, -1
		}
		if e := &c.entries[v-1]; e.hash == h && bytestr.EqualBytes(e.token, token) {
			return s, v - 1
		}
	}
}

// get returns the entry for token verified under the token profile, or nil.
func (c *tokenCache) get(token []byte, profile string) *tokenEntry {
	if c.capacity == 0 {
		return nil
	}
	return c.getHashed(token, c.seed.sum(token), profile)
}

// getHashed is get for a token whose tokenHash is h.
func (c *tokenCache) getHashed(token []byte, h uint64, profile string) *tokenEntry {
	_, i := c.find(token, h)
	if i < 0 {
		return nil
	}
	e := &c.entries[i]
	if e.profile != profile {
		return nil
	}
	c.touch(i)
	return e
}

// put stores the claims of a token that just verified and returns its entry. A cache of
// capacity 0 (disabled) returns a transient entry that lives until the next put.
func (c *tokenCache) put(token []byte, profile string, cl *jwt.Claims, id apikey.ID, key *jwt.Key) *tokenEntry {
	if c.capacity == 0 {
		// Nothing outlives this decision, so the entry may point into the scratch buffers.
		c.transient = tokenEntry{profile: profile, keyID: id, exp: cl.Expiry, alg: key.Alg, kid: key.KID, pub: key.Public, sub: cl.Subject, jti: cl.JTI, org: cl.Org, scope: cl.Scope}
		if cl.HasNotBefore {
			c.transient.nbf = cl.NotBefore
		}
		return &c.transient
	}
	return c.putHashed(token, c.seed.sum(token), profile, cl, id, key)
}

// putHashed is put, into a cache that is not disabled, for a token whose tokenHash is h.
func (c *tokenCache) putHashed(token []byte, h uint64, profile string, cl *jwt.Claims, id apikey.ID, key *jwt.Key) *tokenEntry {
	slot, i := c.find(token, h)
	if i >= 0 {
		c.touch(i)
		return fill(&c.entries[i], token, h, profile, cl, id, key)
	}
	if len(c.entries) < c.capacity {
		c.entries = append(c.entries, tokenEntry{prev: -1, next: -1})
		i = int32(len(c.entries) - 1)
	} else {
		i = c.tail
		c.unlink(i)
		c.remove(i)
		// Removing shifts later slots of the probe sequence back: find the empty slot again.
		slot, _ = c.find(token, h)
	}
	e := fill(&c.entries[i], token, h, profile, cl, id, key)
	c.slots[slot] = i + 1
	c.pushFront(i)
	return e
}

// remove takes entry i out of the index. Linear probing cannot leave a hole in a probe
// sequence, so the entries after it move back (backward-shift deletion).
func (c *tokenCache) remove(i int32) {
	s := c.entries[i].hash & c.mask
	for c.slots[s] != i+1 {
		s = (s + 1) & c.mask
	}
	for {
		c.slots[s] = 0
		j := s
		for {
			j = (j + 1) & c.mask
			v := c.slots[j]
			if v == 0 {
				return
			}
			// An entry may move back to s unless its home slot lies cyclically in (s, j].
			home := c.entries[v-1].hash & c.mask
			if (j-home)&c.mask >= (j-s)&c.mask {
				c.slots[s] = v
				s = j
				break
			}
		}
	}
}

// fill copies the token and the claims into the entry's buffer, reusing it when it is large
// enough: a full cache turns over without allocating.
func fill(e *tokenEntry, token []byte, h uint64, profile string, cl *jwt.Claims, id apikey.ID, key *jwt.Key) *tokenEntry {
	n := len(token) + len(key.KID) + len(key.Public) + len(cl.Subject) + len(cl.JTI) + len(cl.Org) + len(cl.Scope)
	buf := e.buf[:0]
	if cap(buf) < n {
		buf = make([]byte, 0, n)
	}
	prev, next := e.prev, e.next
	*e = tokenEntry{hash: h, profile: profile, keyID: id, exp: cl.Expiry, prev: prev, next: next, alg: key.Alg}
	buf, e.token = appendPart(buf, token)
	buf, e.kid = appendPart(buf, key.KID)
	buf, e.pub = appendPart(buf, key.Public)
	buf, e.sub = appendPart(buf, cl.Subject)
	buf, e.jti = appendPart(buf, cl.JTI)
	buf, e.org = appendPart(buf, cl.Org)
	e.buf, e.scope = appendPart(buf, cl.Scope)
	if cl.HasNotBefore {
		e.nbf = cl.NotBefore
	}
	return e
}

// appendPart appends b to buf, which has room for it, and returns buf and b's copy.
func appendPart(buf, b []byte) ([]byte, []byte) {
	start := len(buf)
	buf = append(buf, b...)
	return buf, buf[start:len(buf):len(buf)]
}

// tokenHash is a seeded 64-bit hash of b, eight bytes a step, for TinyGo builds, where
// hash/maphash would link crypto/rand: each step xors a word into the state and mixes it with
// a bijection (multiply by an odd constant, xor-shift), and the result goes through
// MurmurHash3's finalizer, since the low bits pick the slot.
func tokenHash(b []byte, seed uint64) uint64 {
	const k = 0x9e3779b97f4a7c15
	h := seed ^ uint64(len(b))*k
	for len(b) >= 8 {
		h ^= binary.LittleEndian.Uint64(b)
		h *= k
		h ^= h >> 32
		b = b[8:]
	}
	var w uint64
	for i := len(b) - 1; i >= 0; i-- {
		w = w<<8 | uint64(b[i])
	}
	h ^= w
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}

func (c *tokenCache) touch(i int32) {
	if c.head == i {
		return
	}
	c.unlink(i)
	c.pushFront(i)
}

func (c *tokenCache) unlink(i int32) {
	e := &c.entries[i]
	if e.prev >= 0 {
		c.entries[e.prev].next = e.next
	} else {
		c.head = e.next
	}
	if e.next >= 0 {
		c.entries[e.next].prev = e.prev
	} else {
		c.tail = e.prev
	}
	e.prev, e.next = -1, -1
}

func (c *tokenCache) pushFront(i int32) {
	e := &c.entries[i]
	e.prev, e.next = -1, c.head
	if c.head >= 0 {
		c.entries[c.head].prev = i
	}
	c.head = i
	if c.tail < 0 {
		c.tail = i
	}
}

func isExpired(err error) bool { return errors.Is(err, jwt.ErrExpired) }
