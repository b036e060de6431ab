package store_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"seafbak/sync/object"
	"seafbak/sync/store"
	"seafbak/sync/store/storetest"
)

// Found by review: a PUT the server answered with anything but 200 is not acknowledged. A
// 202 Accepted with an HTML body (a WAF, a gateway that queues the request, a captive
// portal) stores nothing, yet minio-go's httpRespToErrorResponse returns nil for a
// 2xx whose body is not an <Error> document, so PutObject reports success and Commit
// takes the object as durable: the sync then moves the head over an object that is
// not in the bucket.
func TestS3PutNot200IsNotAcknowledged(t *testing.T) {
	for _, status := range []int{http.StatusAccepted, http.StatusPartialContent} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			var puts atomic.Int64
			f := &wireS3{put: func(w http.ResponseWriter, r *http.Request) {
				puts.Add(1)
				io.Copy(io.Discard, r.Body)
				w.Header().Set("Content-Type", "text/html")
				w.WriteHeader(status)
				io.WriteString(w, "<html><body>Your request has been queued.</body></html>")
			}}
			s, _ := wireStore(t, f, nil)
			data := []byte("an fs object's bytes")
			id := storetest.ID(data)
			err := store.Put(context.Background(), s, object.KindFS, lib, id, data)
			if puts.Load() == 0 {
				t.Fatal("no PUT sent")
			}
			if err == nil {
				t.Fatalf("a PUT answered %d (no object stored) was taken as acknowledged: Commit returned nil", status)
			}
		})
	}
}

// Found by review: a GET answered 202 with a non-<Error> body makes minio-go's Core.GetObject
// return a nil body and a nil error; open wraps the nil body, and the first Read
// panics (nil pointer): one odd answer from the wire crashes the whole seafbak (a scan
// of every library, a watch).
func TestS3GetNot200DoesNotPanic(t *testing.T) {
	f := &wireS3{get: func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusAccepted)
		io.WriteString(w, "<html><body>queued</body></html>")
	}}
	s, _ := wireStore(t, f, nil)
	id := storetest.ID([]byte("x"))
	var err error
	func() {
		defer func() {
			if p := recover(); p != nil {
				t.Fatalf("Get panicked on a 202 answer: %v", p)
			}
		}()
		_, err = s.Get(context.Background(), object.KindFS, lib, id)
	}()
	if err == nil {
		t.Fatal("Get of a 202 answer succeeded")
	}
}

// Found by review: a listing answered 202 with a non-<Error> body is taken as an empty, complete
// listing: HasLibrary says the library has no commits in the store (the engine's
// lost-record check then trusts presence instead of re-checking) and Preload says
// every object is absent.
func TestS3ListNot200IsNotEmpty(t *testing.T) {
	f := &wireS3{list: func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusAccepted)
		io.WriteString(w, "<html><body>queued</body></html>")
	}}
	s, _ := wireStore(t, f, nil)
	has, err := s.HasLibrary(context.Background(), object.KindCommit, lib)
	if err == nil {
		t.Fatalf("a listing answered 202 with an HTML page was taken as a listing: HasLibrary = %v, nil", has)
	}
}

// Found by review: a block's body that the connection loses mid-way (a reset, a stall) is an
// outage of the store, as the same failure before the headers is (Open/Get wrap it as
// ErrUnavailable). The body Open hands out returns the raw error, so verify's hashBlock
// (storeDown(err, stream=true) looks only for ErrUnavailable) lists the block as
// DAMAGED in the backup, exit 1 and a --repair, where verify could not run (exit 2).
func TestS3BodyCutIsUnavailable(t *testing.T) {
	for name, cut := range map[string]func(w http.ResponseWriter, r *http.Request){
		"connection closed": func(w http.ResponseWriter, r *http.Request) {
			objectHeaders(w, 100)
			w.Write([]byte("partial"))
			w.(http.Flusher).Flush()
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
		},
		"stalled": func(w http.ResponseWriter, r *http.Request) {
			objectHeaders(w, 100)
			w.Write([]byte("partial"))
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		},
	} {
		t.Run(name, func(t *testing.T) {
			s, _ := wireStore(t, &wireS3{get: cut}, func(o *store.S3Options) { o.StallTimeout = stall })
			id := storetest.ID([]byte("x"))
			rc, err := s.Open(context.Background(), object.KindBlock, lib, id)
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			_, err = io.Copy(io.Discard, rc)
			if err == nil {
				t.Fatal("a cut body read whole")
			}
			if !errors.Is(err, store.ErrUnavailable) {
				t.Fatalf("a block body cut by the connection is not ErrUnavailable (verify lists the block as damaged): %v", err)
			}
		})
	}
}

// Found by review: a listing page is read whole however large the server makes it: minio-go
// decodes a ListObjectsV2 answer with no bound (api-list.go: xmlDecoder(resp.Body, ...)),
// and list asks through it. A page of at most 1000 keys (each at most 1 KiB) is under
// 2 MiB; a server (or something in front) that sends an endless page grows seafbak's
// memory until the OOM killer ends the scan. Here a 12 MiB page is read to its end.
func TestS3ListingIsBounded(t *testing.T) {
	const total = 12 << 20
	var written atomic.Int64
	f := &wireS3{list: func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/xml")
		io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><ListBucketResult><Name>b</Name><IsTruncated>false</IsTruncated>`)
		pad := make([]byte, 1<<20)
		for i := range pad {
			pad[i] = ' '
		}
		for range total / len(pad) {
			n, err := w.Write(pad)
			written.Add(int64(n))
			if err != nil {
				return
			}
		}
		io.WriteString(w, "</ListBucketResult>")
	}}
	s, _ := wireStore(t, f, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	err := s.Preload(ctx, object.KindBlock, lib)
	if written.Load() >= total {
		t.Fatalf("a listing page of %d MiB was read whole (Preload: %v): nothing bounds a listing answer", written.Load()>>20, err)
	}
}

// Found by review: the size S3 answers for an object is trusted as it comes: a HEAD without a
// Content-Length (a proxy or gateway that drops it) makes Size (-1, nil), and a listing
// entry's <Size> is taken whatever it says. The engine adds these sizes up
// (sync/tree.go: n.stored += size) and object.CheckFileSize then blames the PRIMARY's
// fs object as invalid ("file says N bytes but its blocks hold M"): the library fails
// naming a good file as corrupt on the primary, and with --force that file is recorded
// as a hole and left out of the backup.
func TestS3SizeIsChecked(t *testing.T) {
	id := storetest.ID([]byte("x"))
	t.Run("HEAD without Content-Length", func(t *testing.T) {
		f := &wireS3{head: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Last-Modified", time.Now().UTC().Format(http.TimeFormat))
			w.Header().Set("ETag", `"0123456789abcdef0123456789abcdef"`)
			w.Header().Del("Content-Length")
			w.WriteHeader(http.StatusOK)
		}}
		s, _ := wireStore(t, f, nil)
		size, err := s.Size(context.Background(), object.KindBlock, lib, id)
		if err == nil && size < 0 {
			t.Fatalf("Size = %d, nil: a HEAD answer without a length is taken as the object's size", size)
		}
	})
	t.Run("listing with a negative size", func(t *testing.T) {
		f := &wireS3{list: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/xml")
			io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><ListBucketResult><Name>b</Name><IsTruncated>false</IsTruncated><Contents><Key>`+lib+"/"+id+`</Key><Size>-7</Size></Contents></ListBucketResult>`)
		}}
		s, _ := wireStore(t, f, nil)
		perr := preloadOf(t, s, object.KindBlock)
		size, err := s.Size(context.Background(), object.KindBlock, lib, id)
		if perr == nil && err == nil && size < 0 {
			t.Fatalf("Preload took a listed size of %d; Size = %d, nil", size, size)
		}
	})
}
