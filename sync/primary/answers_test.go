package primary

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"seafbak/sync/object"
)

var answersLib = Library{ID: "7b89d49b-5c5c-4f42-8ded-940c84a3e206", StoreID: "7b89d49b-5c5c-4f42-8ded-940c84a3e206"}

// Answers a file server never gives, from what stands in front of it (found by
// review), and one it gives that was misread.
func TestHTTPAnswersFromInFrontOfTheFileServer(t *testing.T) {
	t.Run("a redirect is not followed, and the token stays home", func(t *testing.T) {
		var leaked atomic.Bool
		other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Seafile-Repo-Token") != "" {
				leaked.Store(true)
			}
			http.NotFound(w, r)
		}))
		defer other.Close()
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, other.URL+r.URL.Path, http.StatusMovedPermanently)
		}))
		defer srv.Close()
		h, err := NewHTTP(HTTPOptions{URL: srv.URL, SyncToken: "x", Backoff: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		_, err = h.Commit(context.Background(), answersLib, strings.Repeat("c", 40))
		if err == nil || !strings.Contains(err.Error(), "redirect to \""+other.URL) || !strings.Contains(err.Error(), "set primary.url") {
			t.Errorf("commit through a redirect: %v", err)
		}
		if errors.Is(err, ErrNotFound) {
			t.Errorf("the other host's 404 taken as the commit missing: %v", err)
		}
		if leaked.Load() {
			t.Error("the library's token reached the host the redirect named")
		}
	})
	t.Run(`{"is_corrupted": 1} is the server's database failing, not the library`, func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, `{"is_corrupted": 1}`)
		}))
		defer srv.Close()
		h, err := NewHTTP(HTTPOptions{URL: srv.URL, SyncToken: "x", Backoff: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		_, err = h.Head(context.Background(), answersLib)
		if !errors.Is(err, ErrUnreachable) || errors.Is(err, object.ErrInvalid) {
			t.Errorf("head answered is_corrupted 1: %v", err)
		}
	})
	t.Run("429 is retried", func(t *testing.T) {
		var calls atomic.Int32
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if calls.Add(1) == 1 {
				http.Error(w, "slow down", http.StatusTooManyRequests)
				return
			}
			io.WriteString(w, `{"is_corrupted": 0, "head_commit_id": "`+strings.Repeat("a", 40)+`"}`)
		}))
		defer srv.Close()
		h, err := NewHTTP(HTTPOptions{URL: srv.URL, SyncToken: "x", Backoff: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		if head, err := h.Head(context.Background(), answersLib); err != nil || head != strings.Repeat("a", 40) || calls.Load() != 2 {
			t.Errorf("after one 429: %q %v in %d calls", head, err, calls.Load())
		}
	})
	t.Run("a 404 for a block asks check-blocks", func(t *testing.T) {
		var checked atomic.Bool
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasSuffix(r.URL.Path, "/check-blocks/") {
				checked.Store(true)
				io.WriteString(w, "[]") // it has the block
				return
			}
			http.NotFound(w, r)
		}))
		defer srv.Close()
		h, err := NewHTTP(HTTPOptions{URL: srv.URL, SyncToken: "x", Backoff: time.Millisecond, Attempts: 2})
		if err != nil {
			t.Fatal(err)
		}
		rc, err := h.Block(context.Background(), answersLib, strings.Repeat("b", 40))
		if err == nil {
			_, err = io.ReadAll(rc)
			rc.Close()
		}
		if !checked.Load() || errors.Is(err, ErrNotFound) {
			t.Errorf("block answered 404, check-blocks asked %v: %v", checked.Load(), err)
		}
	})
	t.Run("a block the server has and keeps failing to read is corrupt", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasSuffix(r.URL.Path, "/check-blocks/") {
				io.WriteString(w, "[]")
				return
			}
			w.WriteHeader(http.StatusInternalServerError) // getBlockInfo: size 0
		}))
		defer srv.Close()
		h, err := NewHTTP(HTTPOptions{URL: srv.URL, SyncToken: "x", Backoff: time.Millisecond, Attempts: 3})
		if err != nil {
			t.Fatal(err)
		}
		rc, err := h.Block(context.Background(), answersLib, strings.Repeat("b", 40))
		if err == nil {
			_, err = io.ReadAll(rc)
			rc.Close()
		}
		if !errors.Is(err, object.ErrInvalid) || errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), "damaged or empty") {
			t.Errorf("block always 500, present by check-blocks: %v", err)
		}
	})
}

// A caller slow to read what has arrived is not the primary stalling: the answer is
// not cut off, and the requests in flight are not halved (found by review: a pack-fs
// callback hashing blocks for a re-check took longer than the stall limit).
func TestSlowReaderIsNotAStalledPrimary(t *testing.T) {
	body := strings.Repeat("x", 8<<20) // more than the socket buffers hold
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, body)
	}))
	defer srv.Close()
	h, err := NewHTTP(HTTPOptions{URL: srv.URL, SyncToken: "x", Backoff: time.Millisecond, StallTimeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	before := h.inflight.current()
	rc, err := h.Block(context.Background(), answersLib, strings.Repeat("b", 40))
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	first := make([]byte, 10)
	if _, err := io.ReadFull(rc, first); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // the caller busy elsewhere
	rest, err := io.ReadAll(rc)
	if err != nil || len(first)+len(rest) != len(body) {
		t.Fatalf("after a slow caller: %d bytes, %v", len(first)+len(rest), err)
	}
	if after := h.inflight.current(); after < before {
		t.Errorf("requests in flight halved from %d to %d", before, after)
	}
}
