package primary

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// A primary (or a proxy in front of it) that sends the headers of a non-200 answer and
// then nothing: the read of its body is bounded by StallTimeout like a 200's. It hung
// until the caller's context ended, and a scan has none (found by review).
func TestErrorBodyThatStallsIsCutOff(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100")
		w.WriteHeader(http.StatusInternalServerError)
		w.(http.Flusher).Flush()
		<-release
	}))
	defer srv.Close()
	defer close(release)
	h, err := NewHTTP(HTTPOptions{URL: srv.URL, SyncToken: "x", Backoff: time.Millisecond, Attempts: 1, StallTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	_, err = h.Commit(ctx, answersLib, strings.Repeat("c", 40))
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("Commit with StallTimeout 200ms took %v (only the test's 5 s context ended it): %v", took, err)
	}
}
