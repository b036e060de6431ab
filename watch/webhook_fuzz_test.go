package watch

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"seafbak/sync/object"
)

// Whatever a request to the webhook carries, the trigger is pulled only by a body signed
// with the secret, and only with a valid library id; everything else gets a 4xx.
//
//	go test -run '^$' -fuzz FuzzWebhook -fuzztime 2m ./watch/
func FuzzWebhook(f *testing.F) {
	good := `{"repo_id": "` + hookRepo + `"}`
	f.Add(good, true)
	f.Add(good, false)
	f.Add(`{"repo_id": "../../../etc"}`, true)
	f.Add(`{"repo_id": "`+strings.ToUpper(hookRepo)+`"}`, true)
	f.Add(`{"repo_id": 7}`, true)
	f.Add(`[]`, true)
	f.Fuzz(func(t *testing.T, body string, signed bool) {
		var triggered []string
		h := &Webhook{Secret: []byte(hookSecret), Trigger: func(id string) { triggered = append(triggered, id) }}
		req := httptest.NewRequest(http.MethodPost, "/seafbak/webhook", strings.NewReader(body))
		sig := sign(hookSecret, body)
		if !signed {
			sig = sign("another secret", body)
		}
		req.Header.Set(SignatureHeader, sig)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		switch {
		case len(triggered) > 1:
			t.Fatalf("one request triggered %q", triggered)
		case len(triggered) == 1 && (!signed || !object.ValidRepoID(triggered[0]) || rec.Code != http.StatusAccepted):
			t.Fatalf("triggered %q (signed %v), answered %d", triggered[0], signed, rec.Code)
		case len(triggered) == 0 && (rec.Code < 400 || rec.Code > 499):
			t.Fatalf("triggered nothing, answered %d", rec.Code)
		}
	})
}
