package logto_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/rolecall/rolecall/refresh/logto"
)

const webhookKey = "whsec-test-signing-key"

// post serves one webhook request in process.
func post(h http.Handler, body []byte, header map[string]string) (int, string) {
	req := httptest.NewRequest(http.MethodPost, "/v1/webhooks/logto", bytes.NewReader(body))
	for k, v := range header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code, rec.Body.String()
}

func sign(body []byte) string {
	mac := hmac.New(sha256.New, []byte(webhookKey))
	mac.Write(body)
	return hex.EncodeToString(mac.Sum(nil))
}

func TestLogtoWebhook(t *testing.T) {
	var triggers atomic.Int64
	h := logto.WebhookHandler([]byte(webhookKey), func() { triggers.Add(1) }, nil)
	roleEvent := []byte(`{"hookId": "h1", "event": "Role.Scopes.Updated", "createdAt": "2026-11-21T12:00:00.000Z", "data": {"id": "r1"}}`)
	signIn := []byte(`{"hookId": "h1", "event": "PostSignIn", "createdAt": "2026-11-21T12:00:00.000Z"}`)

	tests := []struct {
		name     string
		body     []byte
		sig      string
		code     int
		triggers int64
	}{
		{"a signed permission event triggers a refresh", roleEvent, sign(roleEvent), http.StatusAccepted, 1},
		{"a replay is at most one more refresh", roleEvent, sign(roleEvent), http.StatusAccepted, 2},
		{"an event that changes no permission is ignored", signIn, sign(signIn), http.StatusOK, 2},
		{"a wrong signature is refused", roleEvent, sign([]byte("other body")), http.StatusUnauthorized, 2},
		{"no signature is refused", roleEvent, "", http.StatusUnauthorized, 2},
		{"a signature that is not hex is refused", roleEvent, "zz" + sign(roleEvent)[2:], http.StatusUnauthorized, 2},
		{"a 10 MiB body is too large", bytes.Repeat([]byte("a"), 10<<20), "00", http.StatusRequestEntityTooLarge, 2},
		{"a signed body that is no event", []byte(`[1,2]`), sign([]byte(`[1,2]`)), http.StatusBadRequest, 2},
	}
	for _, tt := range tests {
		header := map[string]string{"Content-Type": "application/json"}
		if tt.sig != "" {
			header["logto-signature-sha-256"] = tt.sig
		}
		code, body := post(h, tt.body, header)
		if code != tt.code || triggers.Load() != tt.triggers {
			t.Errorf("%s: %d %s, %d triggers; want %d and %d triggers", tt.name, code, body, triggers.Load(), tt.code, tt.triggers)
		}
	}
	for _, event := range []string{"Scope.Created", "OrganizationRole.Scopes.Updated", "OrganizationScope.Deleted", "Organization.Membership.Updated", "Organization.Deleted", "User.Deleted"} {
		body := []byte(`{"event": "` + event + `"}`)
		if code, _ := post(h, body, map[string]string{"logto-signature-sha-256": sign(body)}); code != http.StatusAccepted {
			t.Errorf("%s: %d, want 202", event, code)
		}
	}
}

func TestWebhookWithoutKeyAnswers404(t *testing.T) {
	h := logto.WebhookHandler(nil, func() { t.Error("triggered without a key") }, nil)
	if code, _ := post(h, []byte(`{}`), nil); code != http.StatusNotFound {
		t.Errorf("webhook without a key: %d, want 404", code)
	}
}
