package token

import (
	"hash/maphash"
	gosync "sync"
)

// verifiedCache remembers tokens whose signature and shape were verified, so
// that a token sent on every request is verified once. Entries are keyed by a
// seeded hash of the token and hold the token itself, compared on every hit,
// so a hash collision can never validate another token. Time and request
// checks still run on every hit, so an entry is never used past its exp.
type verifiedCache struct {
	mu   gosync.Mutex
	seed maphash.Seed
	max  int
	m    map[uint64]*verifiedEntry
}

type verifiedEntry struct {
	token  string
	issuer *issuer
	claims *Claims
}

func newVerifiedCache(size int) *verifiedCache {
	if size < 0 {
		size = 0
	}
	return &verifiedCache{seed: maphash.MakeSeed(), max: size, m: make(map[uint64]*verifiedEntry, min(size, 1024))}
}

func (c *verifiedCache) enabled() bool { return c.max > 0 }

func (c *verifiedCache) get(tok string) *verifiedEntry {
	h := maphash.String(c.seed, tok)
	c.mu.Lock()
	e := c.m[h]
	c.mu.Unlock()
	if e == nil || e.token != tok {
		return nil
	}
	return e
}

func (c *verifiedCache) put(tok string, is *issuer, claims *Claims) {
	if c.max == 0 {
		return
	}
	h := maphash.String(c.seed, tok)
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.max {
		// Evict one entry; map order is random enough that a flood of new
		// tokens cannot pin the entries of a busy client.
		for k := range c.m {
			delete(c.m, k)
			break
		}
	}
	c.m[h] = &verifiedEntry{token: tok, issuer: is, claims: claims}
}

func (c *verifiedCache) clear() {
	c.mu.Lock()
	clear(c.m)
	c.mu.Unlock()
}
