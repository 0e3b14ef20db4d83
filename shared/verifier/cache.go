package verifier

import (
	"errors"

	"github.com/latchkeyhq/latchkey/shared/apikey"
	"github.com/latchkeyhq/latchkey/shared/jwt"
	"github.com/latchkeyhq/latchkey/shared/limits"
)

const maxTokenLen = limits.MaxTokenBytes

// tokenEntry is what a verified token leaves behind: the claims the decision needs again.
// Signature, issuer, audience and type were checked when it was stored; revocation, expiry,
// the minting key and the signing key are checked again on every hit.
type tokenEntry struct {
	token string
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
}

// tokenCache is a bounded LRU of verified tokens, keyed by the whole token string, never by its
// signature alone: a known signature on a changed header or payload is a different key, so it
// misses and is verified (and refused).
type tokenCache struct {
	index      map[string]int32
	entries    []tokenEntry
	head, tail int32 // most and least recently used; -1 when empty
	capacity   int
	transient  tokenEntry
}

func newTokenCache(capacity int) *tokenCache {
	return &tokenCache{index: make(map[string]int32, capacity), capacity: capacity, head: -1, tail: -1}
}

// get returns the entry for token verified under the token profile, or nil.
func (c *tokenCache) get(token []byte, profile string) *tokenEntry {
	if c.capacity == 0 {
		return nil
	}
	i, ok := c.index[string(token)]
	if !ok {
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
	if i, ok := c.index[string(token)]; ok {
		c.touch(i)
		return fill(&c.entries[i], token, profile, cl, id, key)
	}
	var i int32
	if len(c.entries) < c.capacity {
		c.entries = append(c.entries, tokenEntry{prev: -1, next: -1})
		i = int32(len(c.entries) - 1)
	} else {
		i = c.tail
		c.unlink(i)
		delete(c.index, c.entries[i].token)
	}
	e := fill(&c.entries[i], token, profile, cl, id, key)
	c.index[e.token] = i
	c.pushFront(i)
	return e
}

// fill copies the claims into one buffer, so an entry costs two allocations (token and claims).
func fill(e *tokenEntry, token []byte, profile string, cl *jwt.Claims, id apikey.ID, key *jwt.Key) *tokenEntry {
	n := len(key.KID) + len(key.Public) + len(cl.Subject) + len(cl.JTI) + len(cl.Org) + len(cl.Scope)
	buf := make([]byte, 0, n)
	take := func(b []byte) []byte {
		start := len(buf)
		buf = append(buf, b...)
		return buf[start:len(buf):len(buf)]
	}
	prev, next := e.prev, e.next
	*e = tokenEntry{
		token: string(token), profile: profile, keyID: id, exp: cl.Expiry, prev: prev, next: next,
		alg: key.Alg, kid: take(key.KID), pub: take(key.Public), sub: take(cl.Subject), jti: take(cl.JTI), org: take(cl.Org), scope: take(cl.Scope),
	}
	if cl.HasNotBefore {
		e.nbf = cl.NotBefore
	}
	return e
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
