package primary

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// A block GET answered 500 and check-blocks then answered 444 (the library deleted
// meanwhile) or 403 (the token refused): libraryError's typed errors are formatted
// with %v into an ErrUnreachable, so the engine sees "primary unreachable" (the hint:
// check the file server is up) instead of ErrLibraryGone / ErrUnauthorized.
func TestCheckBlocksKeepsTheLibrarysError(t *testing.T) {
	for code, want := range map[int]error{444: ErrLibraryGone, http.StatusForbidden: ErrUnauthorized} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasSuffix(r.URL.Path, "/check-blocks/") {
				w.WriteHeader(code)
				return
			}
			w.WriteHeader(http.StatusInternalServerError)
		}))
		h, err := NewHTTP(HTTPOptions{URL: srv.URL, SyncToken: "x", Backoff: time.Millisecond, Attempts: 2})
		if err != nil {
			t.Fatal(err)
		}
		rc, err := h.Block(context.Background(), answersLib, strings.Repeat("b", 40))
		srv.Close()
		if err == nil {
			rc.Close()
			t.Fatal("block read succeeded")
		}
		if !errors.Is(err, want) || errors.Is(err, ErrUnreachable) {
			t.Errorf("check-blocks %d: errors.Is(%v)=%v, unreachable=%v: %v", code, want, errors.Is(err, want), errors.Is(err, ErrUnreachable), err)
		}
	}
}
