package logto

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
)

// maxWebhookBytes bounds a webhook body; Logto's events are a few KiB.
const maxWebhookBytes = 1 << 20

// WebhookHandler verifies a Logto webhook (logto-signature-sha-256: the hex
// HMAC-SHA256 of the raw body under the signing key) and triggers a refresh
// for events that can change permissions. Logto sends no event when a role
// is assigned, so the periodic refresh stays the source of truth; webhooks
// only make changes arrive sooner. A replayed body can at most cause one
// more refresh.
//
// Without a key it answers 404. trigger asks for a refresh; log defaults to
// discarding.
func WebhookHandler(key []byte, trigger func(), log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		serveWebhook(w, r, key, trigger, log)
	})
}

func serveWebhook(w http.ResponseWriter, r *http.Request, key []byte, trigger func(), log *slog.Logger) {
	if len(key) == 0 {
		http.NotFound(w, r)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxWebhookBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeJSON(w, http.StatusRequestEntityTooLarge, map[string]string{"error": "body over 1 MiB"})
			return
		}
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "unreadable body"})
		return
	}
	if !validSignature(key, body, r.Header.Get("logto-signature-sha-256")) {
		log.Warn("Logto webhook refused: missing or wrong signature", "remote", r.RemoteAddr)
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "missing or wrong logto-signature-sha-256"})
		return
	}
	var ev struct {
		Event string `json:"event"`
	}
	if err := json.Unmarshal(body, &ev); err != nil || ev.Event == "" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "not a Logto webhook event"})
		return
	}
	if !permissionEvent(ev.Event) {
		writeJSON(w, http.StatusOK, map[string]any{"event": ev.Event, "refresh": false})
		return
	}
	log.Info("Logto webhook: refreshing the policy", "event", ev.Event)
	trigger()
	writeJSON(w, http.StatusAccepted, map[string]any{"event": ev.Event, "refresh": true})
}

// validSignature reports whether header is the hex HMAC-SHA256 of body
// under key. With no key nothing is valid.
func validSignature(key, body []byte, header string) bool {
	if len(key) == 0 {
		return false
	}
	got, err := hex.DecodeString(strings.TrimSpace(header))
	if err != nil || len(got) != sha256.Size {
		return false
	}
	mac := hmac.New(sha256.New, key)
	mac.Write(body)
	return hmac.Equal(got, mac.Sum(nil))
}

// permissionEvent reports whether a Logto event can change what the policy
// grants.
func permissionEvent(event string) bool {
	for _, prefix := range []string{"Role.", "Scope.", "OrganizationRole.", "OrganizationScope."} {
		if strings.HasPrefix(event, prefix) {
			return true
		}
	}
	switch event {
	case "Organization.Membership.Updated", "Organization.Deleted", "User.Deleted":
		return true
	}
	return false
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
