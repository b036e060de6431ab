package primary

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"seafbak/sync/object"
)

// packFSAnswer is what the fuzzed file server answers: pack-fs with status and body,
// check-fs with checkFS.
type packFSAnswer struct {
	status        int
	body, checkFS []byte
}

// packRecord frames one pack-fs record: the id, its length (big-endian uint32), the bytes.
func packRecord(id string, data []byte) []byte {
	rec := append([]byte(id), 0, 0, 0, 0)
	binary.BigEndian.PutUint32(rec[40:], uint32(len(data)))
	return append(rec, data...)
}

// Whatever a file server answers to pack-fs (status, framing, lengths, ids) and to the
// check-fs that follows a 500, FSObjects hands the caller only objects it asked for,
// each at most once and with exactly the bytes framed for it, and ends with an error
// rather than a panic or a loop. (Each object's hash is the caller's to check.)
//
//	go test -run '^$' -fuzz FuzzPackFS -fuzztime 2m ./sync/primary/
func FuzzPackFS(f *testing.F) {
	ids := []string{strings.Repeat("1", 40), strings.Repeat("2", 40), strings.Repeat("3", 40)}
	whole := bytes.Join([][]byte{packRecord(ids[0], []byte("one")), packRecord(ids[1], nil), packRecord(ids[2], []byte("three"))}, nil)
	f.Add(200, whole, []byte(`[]`))
	f.Add(200, whole[:50], []byte(`[]`))                                                                        // cut inside the second header
	f.Add(200, append(packRecord(ids[0], []byte("one")), packRecord(ids[0], []byte("again"))...), []byte(`[]`)) // twice
	f.Add(200, packRecord(strings.Repeat("9", 40), []byte("x")), []byte(`[]`))                                  // not asked for
	f.Add(200, packRecord("../../../../../../../../../../../etc/pass", []byte("x")), []byte(`[]`))              // not an id
	f.Add(200, append([]byte(ids[0]), 0xff, 0xff, 0xff, 0xff), []byte(`[]`))                                    // 4 GiB claimed
	f.Add(500, []byte("internal error"), []byte(`["`+ids[1]+`"]`))
	f.Add(500, []byte(""), []byte(`["`+strings.Repeat("9", 40)+`"]`))
	f.Add(500, []byte(""), []byte(`{"not": "a list"}`))
	f.Add(503, []byte("busy"), []byte(`[]`))
	f.Add(404, []byte("no such library"), []byte(`[]`))

	var answer atomic.Pointer[packFSAnswer]
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a := answer.Load()
		switch {
		case strings.HasSuffix(r.URL.Path, "/pack-fs/"):
			w.WriteHeader(a.status)
			w.Write(a.body)
		case strings.HasSuffix(r.URL.Path, "/check-fs/"):
			w.Write(a.checkFS)
		default:
			http.NotFound(w, r)
		}
	}))
	f.Cleanup(srv.Close)
	h, err := NewHTTP(HTTPOptions{URL: srv.URL + "/seafhttp", SyncToken: "fuzz", Attempts: 2, Backoff: time.Nanosecond, StallTimeout: 5 * time.Second})
	if err != nil {
		f.Fatal(err)
	}
	lib := Library{ID: "7b89d49b-5c5c-4f42-8ded-940c84a3e206"}

	f.Fuzz(func(t *testing.T, status int, body, checkFS []byte) {
		if status < 200 || status > 599 {
			status = 200 + (status%400+400)%400
		}
		answer.Store(&packFSAnswer{status: status, body: body, checkFS: checkFS})
		// What the body frames for each id, as far as it frames whole records.
		framed := map[string][]byte{}
		for rest := body; len(rest) >= 44; {
			id, n := string(rest[:40]), binary.BigEndian.Uint32(rest[40:44])
			if uint64(len(rest)-44) < uint64(n) {
				break
			}
			if _, dup := framed[id]; !dup {
				framed[id] = rest[44 : 44+n]
			}
			rest = rest[44+n:]
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		handed := map[string]bool{}
		err := h.FSObjects(ctx, lib, ids, func(id string, data []byte, err error) error {
			if !strings.Contains(strings.Join(ids, " "), id) || !object.ValidID(id) {
				t.Fatalf("handed object %q, which was not asked for", id)
			}
			if handed[id] {
				t.Fatalf("handed object %s twice", id)
			}
			handed[id] = true
			if err == nil && (status != 200 || !bytes.Equal(data, framed[id])) {
				t.Fatalf("handed %s as %q (status %d); the answer framed %q for it", id, data, status, framed[id])
			}
			if err != nil && !errors.Is(err, object.ErrInvalid) && !errors.As(err, new(*NotFoundError)) {
				t.Fatalf("handed %s with an error of no known class: %v", id, err)
			}
			return nil
		})
		if ctx.Err() != nil {
			t.Fatalf("FSObjects did not end within 30 s: %v", err)
		}
		if err == nil && len(handed) != len(ids) {
			t.Fatalf("succeeded having handed %d of %d objects", len(handed), len(ids))
		}
	})
}
