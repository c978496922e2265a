package cache

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// KeySetRecord is one issuer's JSON Web Key Set as fetched.
type KeySetRecord struct {
	Issuer    string
	JWKS      []byte    // the key set exactly as fetched
	FetchedAt time.Time // stored in UTC with nanosecond precision
}

// keySetEnvelope is the stored form of a KeySetRecord, under the issuer as
// key. JWKS is a []byte, so it is stored base64-encoded and comes back byte
// for byte; json.RawMessage would be re-compacted on the way in.
type keySetEnvelope struct {
	JWKS      []byte    `json:"jwks"`
	FetchedAt time.Time `json:"fetched_at"`
}

// SaveKeySet replaces the stored key set for r.Issuer in one transaction. A
// record with an empty issuer or key set is refused with [ErrEmptyKeySet].
func (c *Cache) SaveKeySet(r KeySetRecord) error {
	if r.Issuer == "" || len(r.JWKS) == 0 {
		return fmt.Errorf("cache: save key set to %s: %w", c.path, ErrEmptyKeySet)
	}
	// time.Time marshals as RFC 3339 with nanoseconds.
	v, err := json.Marshal(keySetEnvelope{JWKS: r.JWKS, FetchedAt: r.FetchedAt.UTC()})
	if err != nil {
		return fmt.Errorf("cache: save key set for %q to %s: %w", r.Issuer, c.path, err)
	}
	err = c.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketJWKS).Put([]byte(r.Issuer), v)
	})
	if err != nil {
		return fmt.Errorf("cache: save key set for %q to %s: %w", r.Issuer, c.path, err)
	}
	return nil
}

// LoadKeySet returns the stored key set for issuer, or ok == false and a nil
// error if there is none. A stored value that cannot be decoded is reported
// as [ErrCorrupt].
func (c *Cache) LoadKeySet(issuer string) (r KeySetRecord, ok bool, err error) {
	var v []byte
	err = c.db.View(func(tx *bolt.Tx) error {
		// Copied because bbolt's memory is only valid inside the transaction.
		v = bytes.Clone(tx.Bucket(bucketJWKS).Get([]byte(issuer)))
		return nil
	})
	if err != nil {
		return KeySetRecord{}, false, fmt.Errorf("cache: load key set for %q from %s: %w", issuer, c.path, err)
	}
	if v == nil {
		return KeySetRecord{}, false, nil
	}
	var env keySetEnvelope
	if err := json.Unmarshal(v, &env); err != nil {
		return KeySetRecord{}, false, fmt.Errorf("cache: load key set for %q from %s: %w: %w", issuer, c.path, ErrCorrupt, err)
	}
	return KeySetRecord{Issuer: issuer, JWKS: env.JWKS, FetchedAt: env.FetchedAt.UTC()}, true, nil
}
