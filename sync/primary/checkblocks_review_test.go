package primary

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"seafbak/sync/object"
)

// Review (wire): a block GET answered 500, and the check-blocks that should tell
// "missing" from "failing" answered something unusable (a proxy's 200 HTML page, or a
// list naming an id that was not asked). Nothing is known about the block, yet the
// error wraps object.ErrInvalid, which the engine classifies as Corrupt: Skippable, so
// sync --force records the block as a hole.
func TestBlockCheckBlocksGarbageIsNotCorrupt(t *testing.T) {
	for name, answer := range map[string]string{
		"html page":        "<html><body>Bad gateway</body></html>",
		"id not asked for": `["` + strings.Repeat("9", 40) + `"]`,
	} {
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if strings.HasSuffix(r.URL.Path, "/check-blocks/") {
					io.WriteString(w, answer)
					return
				}
				w.WriteHeader(http.StatusInternalServerError)
			}))
			defer srv.Close()
			h, err := NewHTTP(HTTPOptions{URL: srv.URL, SyncToken: "x", Backoff: time.Millisecond, Attempts: 2})
			if err != nil {
				t.Fatal(err)
			}
			rc, err := h.Block(context.Background(), answersLib, strings.Repeat("b", 40))
			if err == nil {
				rc.Close()
				t.Fatal("block read succeeded")
			}
			if errors.Is(err, object.ErrInvalid) || errors.Is(err, ErrNotFound) {
				t.Errorf("check-blocks gave no usable answer, yet the block's error is classed as the block's own fault (corrupt/absent => a hole under --force): %v", err)
			}
		})
	}
}
