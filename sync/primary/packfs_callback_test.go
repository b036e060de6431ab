package primary

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// An error fn returns ends FSObjects with that error, as its contract says. One that
// matched none of the server's kinds was dropped: the rest was asked for again, and
// FSObjects returned nil.
func TestPackFSReturnsTheCallbacksError(t *testing.T) {
	ids := []string{strings.Repeat("a", 40), strings.Repeat("b", 40), strings.Repeat("c", 40)}
	requests := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests++
		var asked bytes.Buffer
		asked.ReadFrom(r.Body)
		for _, id := range ids { // one record an answer: the first id asked for
			if strings.Contains(asked.String(), id) {
				var rec bytes.Buffer
				rec.WriteString(id)
				binary.Write(&rec, binary.BigEndian, uint32(3))
				rec.WriteString("xyz")
				w.Write(rec.Bytes())
				return
			}
		}
	}))
	defer srv.Close()
	h, err := NewHTTP(HTTPOptions{URL: srv.URL, SyncToken: "x", Backoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	lib := Library{ID: "7b89d49b-5c5c-4f42-8ded-940c84a3e206", StoreID: "7b89d49b-5c5c-4f42-8ded-940c84a3e206"}
	stop := errors.New("the callback says stop")
	calls := 0
	err = h.FSObjects(context.Background(), lib, ids, func(string, []byte, error) error {
		calls++
		return stop
	})
	if err != stop || calls != 1 || requests != 1 {
		t.Fatalf("FSObjects returned %v after %d callbacks and %d requests; want the callback's error after one of each", err, calls, requests)
	}
}
