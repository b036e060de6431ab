package watch

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

	"seafbak/sync/object"
)

// MaxWebhookBody bounds a webhook's body; Seafile's is {"repo_id": "…"}.
const MaxWebhookBody = 64 << 10

// SignatureHeader is the header Seafile 14's webhooks carry their signature in:
// "sha256=" and the hex HMAC-SHA256 of the body under the webhook's secret.
const SignatureHeader = "X-Seafile-Signature"

// Webhook receives Seafile 14's webhooks (seafevents POSTs {"repo_id": "…"}) and asks
// for that library to be checked. It is a trigger, not a record: it answers at once and
// never waits for a sync (seafevents waits at most 30 s, does not retry, and disables a
// hook after 5 failures), and a lost webhook is caught by the next poll.
//
// A request needs a valid signature: unsigned or wrongly signed ones get 401 and
// trigger nothing (Seafile's signature is optional; seafbak requires it, so only
// Seafile can make it poll).
type Webhook struct {
	// Secret is the secret set on the webhook in Seahub.
	Secret []byte
	// Trigger is called with the library's id for each good request: Watcher.Check.
	// It must not block.
	Trigger func(repoID string)
	Log     *slog.Logger
}

func (h *Webhook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	log := h.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("remote", r.RemoteAddr)
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "only POST", http.StatusMethodNotAllowed)
		return
	}
	if r.ContentLength > MaxWebhookBody {
		http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxWebhookBody))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "cannot read the body", http.StatusBadRequest)
		return
	}
	if !h.signed(r.Header.Get(SignatureHeader), body) {
		log.Warn("webhook refused: missing or wrong " + SignatureHeader + " (is the same secret set in Seahub and in watch.webhook_secret?)")
		http.Error(w, "missing or wrong "+SignatureHeader, http.StatusUnauthorized)
		return
	}
	var msg struct {
		RepoID string `json:"repo_id"`
	}
	if err := json.Unmarshal(body, &msg); err != nil {
		log.Warn("webhook refused: the body is not JSON", "err", err)
		http.Error(w, "the body must be JSON like {\"repo_id\": \"…\"}", http.StatusBadRequest)
		return
	}
	if err := object.CheckRepoID(msg.RepoID); err != nil {
		log.Warn("webhook refused", "err", err)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	h.Trigger(msg.RepoID)
	w.WriteHeader(http.StatusAccepted)
}

// signed reports whether header is "sha256=" and the hex HMAC-SHA256 of body under the
// secret, compared in constant time.
func (h *Webhook) signed(header string, body []byte) bool {
	hexSig, ok := strings.CutPrefix(header, "sha256=")
	if !ok || len(h.Secret) == 0 {
		return false
	}
	got, err := hex.DecodeString(hexSig)
	if err != nil {
		return false
	}
	mac := hmac.New(sha256.New, h.Secret)
	mac.Write(body)
	return hmac.Equal(got, mac.Sum(nil))
}
