package primary

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// A block whose connection drops inside a chunk (chunked encoding: Read gives bytes and
// io.ErrUnexpectedEOF together) is asked for again from where it broke, as one cut
// between reads is. The error went to the caller with the bytes, failing the library.
func TestBlockCutInsideAChunkIsResumed(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789abcdef"), 4096) // 64 KiB
	calls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls++
		if calls == 1 {
			conn, bw, err := w.(http.Hijacker).Hijack()
			if err != nil {
				t.Error(err)
				return
			}
			fmt.Fprintf(bw, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n", len(data))
			bw.Write(data[:1000])
			bw.Flush()
			time.Sleep(50 * time.Millisecond)
			conn.Close()
			return
		}
		w.Write(data)
	}))
	defer srv.Close()
	h, err := NewHTTP(HTTPOptions{URL: srv.URL, SyncToken: "x", Backoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	lib := Library{ID: "7b89d49b-5c5c-4f42-8ded-940c84a3e206", StoreID: "7b89d49b-5c5c-4f42-8ded-940c84a3e206"}
	rc, err := h.Block(context.Background(), lib, strings.Repeat("d", 40))
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	got, err := io.ReadAll(rc)
	if err != nil || !bytes.Equal(got, data) || calls != 2 {
		t.Fatalf("read %d of %d bytes in %d requests: %v", len(got), len(data), calls, err)
	}
}
