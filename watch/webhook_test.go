package watch

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"seafbak/state"
	seafsync "seafbak/sync"
	"seafbak/sync/primary"
)

const (
	hookSecret = "0123456789abcdef-webhook"
	hookRepo   = "7b89d49b-5c5c-4f42-8ded-940c84a3e206"
)

func sign(secret, body string) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(body))
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// post sends one request to a Webhook whose trigger records the ids it is given.
func post(t *testing.T, method, body, sig string, setSig bool) (int, []string) {
	t.Helper()
	var got []string
	h := &Webhook{Secret: []byte(hookSecret), Trigger: func(id string) { got = append(got, id) }}
	srv := httptest.NewServer(h)
	defer srv.Close()
	req, err := http.NewRequest(method, srv.URL+"/seafbak/webhook", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if setSig {
		req.Header.Set(SignatureHeader, sig)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode, got
}

func TestWebhookGood(t *testing.T) {
	for _, body := range []string{
		`{"repo_id": "` + hookRepo + `"}`,
		// Other fields a later Seafile may add are no reason to fail the hook.
		`{"event": "repo.update", "repo_id": "` + hookRepo + `", "data": {"x": 1}}`,
	} {
		code, got := post(t, http.MethodPost, body, sign(hookSecret, body), true)
		if code != http.StatusAccepted || len(got) != 1 || got[0] != hookRepo {
			t.Errorf("%s: got %d, triggered %v; want 202 and %s", body, code, got, hookRepo)
		}
	}
	// Upper-case hex is the same signature.
	body := `{"repo_id":"` + hookRepo + `"}`
	sig := "sha256=" + strings.ToUpper(strings.TrimPrefix(sign(hookSecret, body), "sha256="))
	if code, got := post(t, http.MethodPost, body, sig, true); code != http.StatusAccepted || len(got) != 1 {
		t.Errorf("upper-case hex: got %d, %v", code, got)
	}
}

func TestWebhookRefused(t *testing.T) {
	body := `{"repo_id": "` + hookRepo + `"}`
	good := sign(hookSecret, body)
	bigBody := `{"repo_id": "` + hookRepo + `", "pad": "` + strings.Repeat("x", MaxWebhookBody) + `"}`
	for name, c := range map[string]struct {
		method, body, sig string
		setSig            bool
		want              int
	}{
		"missing header":           {http.MethodPost, body, "", false, 401},
		"empty header":             {http.MethodPost, body, "", true, 401},
		"wrong secret":             {http.MethodPost, body, sign("another-secret-0123456789", body), true, 401},
		"other body":               {http.MethodPost, body, sign(hookSecret, body+" "), true, 401},
		"no sha256= prefix":        {http.MethodPost, body, strings.TrimPrefix(good, "sha256="), true, 401},
		"sha1= prefix":             {http.MethodPost, body, "sha1=" + strings.TrimPrefix(good, "sha256="), true, 401},
		"not hex":                  {http.MethodPost, body, "sha256=" + strings.Repeat("zz", 32), true, 401},
		"truncated":                {http.MethodPost, body, good[:len(good)-2], true, 401},
		"prefix only":              {http.MethodPost, body, "sha256=", true, 401},
		"GET":                      {http.MethodGet, "", sign(hookSecret, ""), true, 405},
		"PUT":                      {http.MethodPut, body, good, true, 405},
		"bad JSON":                 {http.MethodPost, `{"repo_id": `, sign(hookSecret, `{"repo_id": `), true, 400},
		"empty body":               {http.MethodPost, ``, sign(hookSecret, ``), true, 400},
		"no repo_id":               {http.MethodPost, `{"id": "` + hookRepo + `"}`, sign(hookSecret, `{"id": "`+hookRepo+`"}`), true, 400},
		"bad repo_id":              {http.MethodPost, `{"repo_id": "../etc"}`, sign(hookSecret, `{"repo_id": "../etc"}`), true, 400},
		"upper-case repo_id":       {http.MethodPost, `{"repo_id": "` + strings.ToUpper(hookRepo) + `"}`, sign(hookSecret, `{"repo_id": "`+strings.ToUpper(hookRepo)+`"}`), true, 400},
		"repo_id not a string":     {http.MethodPost, `{"repo_id": 7}`, sign(hookSecret, `{"repo_id": 7}`), true, 400},
		"oversized, signed":        {http.MethodPost, bigBody, sign(hookSecret, bigBody), true, 413},
		"oversized, unsigned":      {http.MethodPost, bigBody, "", false, 413},
		"JSON array not an object": {http.MethodPost, `["` + hookRepo + `"]`, sign(hookSecret, `["`+hookRepo+`"]`), true, 400},
	} {
		code, got := post(t, c.method, c.body, c.sig, c.setSig)
		if code != c.want || len(got) != 0 {
			t.Errorf("%s: got %d, triggered %v; want %d and nothing triggered", name, code, got, c.want)
		}
	}
}

// An oversized body sent without a Content-Length (chunked) is cut at the bound too.
func TestWebhookOversizedChunked(t *testing.T) {
	triggered := false
	h := &Webhook{Secret: []byte(hookSecret), Trigger: func(string) { triggered = true }}
	body := strings.Repeat(" ", MaxWebhookBody) + `{"repo_id": "` + hookRepo + `"}`
	req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
	req.ContentLength = -1
	req.Header.Set(SignatureHeader, sign(hookSecret, body))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusRequestEntityTooLarge || triggered {
		t.Fatalf("got %d, triggered %v", rec.Code, triggered)
	}
}

// A secret that is empty (a misconfigured caller) accepts nothing, not everything.
func TestWebhookEmptySecret(t *testing.T) {
	h := &Webhook{Trigger: func(string) { t.Error("triggered") }}
	body := `{"repo_id": "` + hookRepo + `"}`
	req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
	req.Header.Set(SignatureHeader, sign("", body))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusUnauthorized {
		t.Fatalf("got %d", rec.Code)
	}
}

// countingCatalog counts rounds: listings, and lookups of a reported library (whose
// record says it is backed up at the head it reports), so no sync is asked for.
type countingCatalog struct {
	primary.Catalog
	n atomic.Int32
	// hold, if set, keeps the third listing waiting until it is closed, so calls made
	// meanwhile meet a round in progress however fast rounds are.
	hold chan struct{}
}

func (c *countingCatalog) Libraries(context.Context) ([]primary.Library, error) {
	c.round()
	return []primary.Library{{ID: hookRepo, StoreID: hookRepo, Head: hookHead}}, nil
}

func (c *countingCatalog) Library(_ context.Context, id string) (primary.Library, error) {
	c.round()
	return primary.Library{ID: id, StoreID: id, Head: hookHead}, nil
}

func (c *countingCatalog) round() {
	if c.n.Add(1) == 3 && c.hold != nil {
		<-c.hold
	}
}

const hookHead = "0123456789012345678901234567890123456789"

// Check makes Run poll now rather than at the next tick, never blocks, and a burst of
// calls folds into at most one extra round.
func TestCheckPollsNow(t *testing.T) {
	cat := &countingCatalog{hold: make(chan struct{})}
	st := newTestState(t)
	must(t, st.Save(state.Library{ID: hookRepo, StoreID: hookRepo, Head: hookHead}))
	w := &Watcher{Engine: noEngine{}, Catalog: cat, State: st, Poll: time.Hour}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	waitFor(t, "rounds", func() bool { return cat.n.Load() == 1 }) // the first round, at start
	w.Check(hookRepo)
	waitFor(t, "rounds", func() bool { return cat.n.Load() == 2 })
	w.Check(hookRepo)
	waitFor(t, "rounds", func() bool { return cat.n.Load() == 3 }) // held in its listing
	for range 100 {
		w.Check(hookRepo) // never blocks
	}
	close(cat.hold)
	waitFor(t, "rounds", func() bool { return cat.n.Load() >= 4 })
	time.Sleep(50 * time.Millisecond)
	if n := cat.n.Load(); n > 4 {
		t.Errorf("100 checks made %d rounds; want them folded", n-2)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// noEngine is never asked for a sync: the catalog above lists one library, backed up.
type noEngine struct{}

func (noEngine) SyncListed(context.Context, primary.Library) (seafsync.Result, error) {
	return seafsync.Result{}, errors.New("unexpected sync")
}
func (noEngine) MarkDeleted(context.Context, string) (seafsync.Result, error) {
	return seafsync.Result{}, errors.New("unexpected deletion")
}
func (noEngine) BackupHeads(context.Context) (map[string]string, error) { return nil, nil }
func (noEngine) CopySlots(parallel int) int                             { return parallel }

func newTestState(t *testing.T) *state.Dir {
	d, err := state.Open(t.TempDir())
	must(t, err)
	return d
}
