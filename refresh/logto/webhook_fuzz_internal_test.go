package logto

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
)

// FuzzWebhookSignature checks the Logto webhook signature against a
// reference: a signature header is accepted exactly when, trimmed of
// surrounding space, it is the hex HMAC-SHA256 of the body under the key.
// An empty key accepts nothing, and a correct signature never carries over
// to a changed body.
func FuzzWebhookSignature(f *testing.F) {
	sign := func(key, body []byte) string {
		m := hmac.New(sha256.New, key)
		m.Write(body)
		return hex.EncodeToString(m.Sum(nil))
	}
	key, body := []byte("whsec-test"), []byte(`{"event":"Role.Created"}`)
	good := sign(key, body)
	for _, h := range []string{good, strings.ToUpper(good), " " + good + "\n", "", "sha256=" + good, good[:63], good + "00", "zz" + good[2:]} {
		f.Add(key, body, h)
	}
	f.Add([]byte{}, body, sign(nil, body))
	f.Add(key, []byte{}, sign(key, nil))

	f.Fuzz(func(t *testing.T, key, body []byte, header string) {
		want := len(key) > 0 && strings.EqualFold(strings.TrimSpace(header), sign(key, body))
		if got := validSignature(key, body, header); got != want {
			t.Fatalf("validSignature(%q, %q, %q) = %v, want %v", key, body, header, got, want)
		}
		if len(key) == 0 {
			return
		}
		if !validSignature(key, body, sign(key, body)) {
			t.Fatalf("the body's own signature is refused")
		}
		if validSignature(key, append(body, 'x'), sign(key, body)) {
			t.Fatalf("a signature verified a changed body")
		}
	})
}
