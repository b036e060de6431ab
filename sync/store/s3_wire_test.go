package store_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"seafbak/sync/object"
	"seafbak/sync/store"
	"seafbak/sync/store/storetest"
)

// wireS3 is an S3 server that answers what a test tells it to, for the misbehaviours a
// real server (VersityGW) never shows: a listing that ignores the prefix or repeats
// itself, a body that stops, a 404 that is not S3's. NewS3's probe (a one-key listing
// without prefix) is answered with an empty bucket; everything else goes to the test's
// handlers, and to a 404 without a body when there is none.
type wireS3 struct {
	list  http.HandlerFunc // ListObjectsV2 with a prefix
	get   http.HandlerFunc // GET of an object
	head  http.HandlerFunc // HEAD of an object
	put   http.HandlerFunc // PUT of an object (or of a part)
	lists atomic.Int64     // listing requests, the probe's included
}

func (f *wireS3) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var h http.HandlerFunc
	switch {
	case r.Method == http.MethodGet && q.Get("list-type") == "2":
		f.lists.Add(1)
		if q.Get("prefix") == "" {
			writeListing(w, nil, false, "")
			return
		}
		h = f.list
	case r.Method == http.MethodGet:
		h = f.get
	case r.Method == http.MethodHead:
		h = f.head
	case r.Method == http.MethodPut:
		h = f.put
	}
	if h == nil {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	h(w, r)
}

// wireStore opens a store on f with one attempt per request (MaxRetries 1), unless
// change says otherwise.
func wireStore(t *testing.T, f *wireS3, change func(*store.S3Options)) (*store.S3, store.S3Options) {
	t.Helper()
	ts := httptest.NewServer(f)
	t.Cleanup(ts.Close)
	o := store.S3Options{
		Endpoint:   strings.TrimPrefix(ts.URL, "http://"),
		Buckets:    store.S3Buckets{Commits: "wire-commits", FS: "wire-fs", Blocks: "wire-blocks"},
		PathStyle:  true,
		AccessKey:  "wire",
		SecretKey:  "wire-secret",
		SpillDir:   t.TempDir(),
		MaxRetries: 1,
	}
	if change != nil {
		change(&o)
	}
	return openS3(t, o), o
}

// writeListing answers a ListObjectsV2 page of keys (each 5 bytes long).
func writeListing(w http.ResponseWriter, keys []string, truncated bool, token string) {
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?><ListBucketResult><Name>b</Name>`)
	fmt.Fprintf(&b, "<IsTruncated>%v</IsTruncated>", truncated)
	if token != "" {
		fmt.Fprintf(&b, "<NextContinuationToken>%s</NextContinuationToken>", token)
	}
	for _, k := range keys {
		fmt.Fprintf(&b, "<Contents><Key>%s</Key><Size>5</Size></Contents>", k)
	}
	b.WriteString("</ListBucketResult>")
	w.Header().Set("Content-Type", "application/xml")
	io.WriteString(w, b.String())
}

// writeS3Error answers an S3 error document.
func writeS3Error(w http.ResponseWriter, status int, code string) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>%s from the test</Message></Error>`, code, code)
}

// preloadOf runs Preload with a bound, so that a listing that never ends fails the
// test instead of hanging it; a panic fails it too, named.
func preloadOf(t *testing.T, s *store.S3, kind object.Kind) (err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	defer func() {
		if p := recover(); p != nil {
			t.Fatalf("Preload panicked: %v", p)
		}
	}()
	err = s.Preload(ctx, kind, lib)
	if ctx.Err() != nil {
		t.Fatalf("Preload still listing after 20 s: %v", err)
	}
	return err
}

// A server that ignores the prefix (or answers another library's keys) must not make
// them count as this library's: "present" would then be wrong, and a sync would skip
// writing an object a directory above it needs. Preload fails, naming the bucket and
// the key; a key shorter than the prefix does not panic it.
func TestS3PreloadRefusesKeysOutsideThePrefix(t *testing.T) {
	const other = "00000000-0000-4000-8000-000000000000"
	id := storetest.ID([]byte("a directory of another library"))
	for name, key := range map[string]string{
		"another library": other + "/" + id,
		"short":           "x",
		"empty":           "",
	} {
		t.Run(name, func(t *testing.T) {
			f := &wireS3{list: func(w http.ResponseWriter, r *http.Request) {
				writeListing(w, []string{key}, false, "")
			}}
			s, o := wireStore(t, f, nil)
			err := preloadOf(t, s, object.KindFS)
			if err == nil || !strings.Contains(err.Error(), o.Buckets.FS) || !strings.Contains(err.Error(), fmt.Sprintf("%q", key)) {
				t.Fatalf("Preload of a listing with key %q: %v", key, err)
			}
			t.Log(err)
		})
	}
}

// A server that hands back the continuation token it was given lists the same page
// forever; S3 lists keys in lexicographic order, so a page whose keys do not move past
// the previous page's is such a loop, and Preload fails with it instead of listing until
// the process is killed. A listing that does move on, over pages, still loads whole.
func TestS3PreloadFailsOnAListingThatDoesNotMoveOn(t *testing.T) {
	ids := make([]string, 4)
	for i := range ids {
		ids[i] = storetest.ID([]byte(fmt.Sprint("object ", i)))
	}
	sort.Strings(ids)
	keys := func(ids ...string) []string {
		var k []string
		for _, id := range ids {
			k = append(k, lib+"/"+id)
		}
		return k
	}
	for name, c := range map[string]struct {
		page    func(token string) (keys []string, truncated bool, next string)
		wantErr string
	}{
		"empty pages, same token": {func(string) ([]string, bool, string) { return nil, true, "same" }, "no key"},
		"same page, same token":   {func(string) ([]string, bool, string) { return keys(ids[0], ids[1]), true, "same" }, "not after"},
		"out of order": {func(token string) ([]string, bool, string) {
			if token == "" {
				return keys(ids[1], ids[2]), true, "next"
			}
			return keys(ids[0]), false, ""
		}, "not after"},
		"two pages": {func(token string) ([]string, bool, string) {
			if token == "" {
				return keys(ids[0], ids[1]), true, "next"
			}
			return keys(ids[2], ids[3]), false, ""
		}, ""},
	} {
		t.Run(name, func(t *testing.T) {
			f := &wireS3{}
			f.list = func(w http.ResponseWriter, r *http.Request) {
				k, truncated, next := c.page(r.URL.Query().Get("continuation-token"))
				writeListing(w, k, truncated, next)
			}
			s, o := wireStore(t, f, nil)
			err := preloadOf(t, s, object.KindBlock)
			if c.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				for _, id := range ids {
					if has, err := s.Has(context.Background(), object.KindBlock, lib, id); !has || err != nil {
						t.Fatalf("block %s listed on a page: %v %v", id, has, err)
					}
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.wantErr) || !strings.Contains(err.Error(), o.Buckets.Blocks) {
				t.Fatalf("Preload of a listing that does not move on (%d requests): %v", f.lists.Load(), err)
			}
			t.Log(err)
		})
	}
}

// A PUT is retried on every answer that says "later": throttling by status (429, 503)
// or by code (Ceph RGW, Wasabi, Backblaze and AWS each name theirs), a timeout in front
// (408, nginx's 499), an InternalError whatever its status; the answers minio-go
// retries its own reads on. An answer that says the request is wrong is not retried.
func TestS3PutRetriesWhatMayGoAway(t *testing.T) {
	for _, c := range []struct {
		status int
		code   string
		retry  bool
	}{
		{429, "TooManyRequests", true},
		{429, "", true},
		{503, "SlowDown", true},
		{503, "SlowDownWrite", true},
		{400, "RequestLimitExceeded", true},
		{400, "ThrottlingException", true},
		{400, "Throttling", true},
		{400, "RequestThrottled", true},
		{408, "RequestTimeout", true},
		{499, "", true},
		{400, "InternalError", true},
		{500, "InternalError", true},
		{502, "", true},
		{403, "AccessDenied", false},
		{400, "BadDigest", false},
		{501, "NotImplemented", false},
	} {
		t.Run(fmt.Sprint(c.status, c.code), func(t *testing.T) {
			var puts atomic.Int64
			f := &wireS3{put: func(w http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body)
				if puts.Add(1) == 1 {
					if c.code == "" {
						w.WriteHeader(c.status)
						return
					}
					writeS3Error(w, c.status, c.code)
					return
				}
				w.Header().Set("ETag", `"0123456789abcdef0123456789abcdef"`)
			}}
			s, o := wireStore(t, f, func(o *store.S3Options) { o.MaxRetries = 3 })
			data := []byte("throttled")
			id := storetest.ID(data)
			err := store.Put(context.Background(), s, object.KindBlock, lib, id, data)
			switch {
			case c.retry && (err != nil || puts.Load() != 2):
				t.Fatalf("%d %s: %d PUTs, %v; want a retry that succeeds", c.status, c.code, puts.Load(), err)
			case !c.retry && (err == nil || puts.Load() != 1 || !strings.Contains(err.Error(), o.Buckets.Blocks+"/"+lib+"/"+id)):
				t.Fatalf("%d %s: %d PUTs, %v; want one, failed and named", c.status, c.code, puts.Load(), err)
			}
		})
	}
}

// stallWire blocks a handler until the client gives up, or end is closed (a server
// that reads no body does not see its client go: the test closes end before its
// server's Close, which waits for handlers), or 30 s, so that a client without a stall
// timeout fails the test rather than hangs it.
func stallWire(r *http.Request, end <-chan struct{}) {
	select {
	case <-r.Context().Done():
	case <-end:
	case <-time.After(30 * time.Second):
	}
}

// within runs f and fails the test if it takes longer than d.
func within[T any](t *testing.T, d time.Duration, f func() T) T {
	t.Helper()
	done := make(chan T, 1)
	go func() { done <- f() }()
	select {
	case v := <-done:
		return v
	case <-time.After(d):
		t.Fatalf("still blocked after %s", d)
		panic("unreachable")
	}
}

const stall = 300 * time.Millisecond

// objectHeaders are a GET's answer headers, as minio-go expects them.
func objectHeaders(w http.ResponseWriter, size int) {
	w.Header().Set("Content-Length", fmt.Sprint(size))
	w.Header().Set("Last-Modified", time.Now().UTC().Format(http.TimeFormat))
	w.Header().Set("ETag", `"0123456789abcdef0123456789abcdef"`)
}

// A GET whose server stalls, before its headers or in the middle of the body, fails
// after the stall time, saying so and naming the object, instead of hanging the sync,
// verify or copy reading it. A body that moves slowly but steadily, or a reader slow to
// take what arrived, is not a stall.
func TestS3StalledGet(t *testing.T) {
	id := storetest.ID([]byte("x"))
	for name, c := range map[string]struct {
		get     func(end <-chan struct{}) http.HandlerFunc
		wantErr bool
	}{
		"before the headers": {func(end <-chan struct{}) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) { stallWire(r, end) }
		}, true},
		"in the body": {func(end <-chan struct{}) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) {
				objectHeaders(w, 100)
				w.Write([]byte("partial"))
				w.(http.Flusher).Flush()
				stallWire(r, end)
			}
		}, true},
		"slow but moving": {func(<-chan struct{}) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) {
				objectHeaders(w, 12)
				for range 12 {
					w.Write([]byte("s"))
					w.(http.Flusher).Flush()
					time.Sleep(stall / 3)
				}
			}
		}, false},
	} {
		t.Run(name, func(t *testing.T) {
			end := make(chan struct{})
			s, o := wireStore(t, &wireS3{get: c.get(end)}, func(o *store.S3Options) { o.StallTimeout = stall })
			t.Cleanup(func() { close(end) })
			err := within(t, 15*time.Second, func() error {
				_, err := s.Get(context.Background(), object.KindFS, lib, id)
				return err
			})
			switch {
			case !c.wantErr && err != nil:
				t.Fatal(err)
			case c.wantErr && (err == nil || !strings.Contains(err.Error(), "stopped moving bytes") || !strings.Contains(err.Error(), o.Buckets.FS+"/"+lib+"/"+id)):
				t.Fatalf("a stalled GET: %v", err)
			}
			t.Log(err)
		})
	}
	t.Run("slow reader", func(t *testing.T) {
		s, _ := wireStore(t, &wireS3{get: func(w http.ResponseWriter, r *http.Request) {
			objectHeaders(w, 100)
			w.Write(make([]byte, 100))
		}}, func(o *store.S3Options) { o.StallTimeout = stall })
		rc, err := s.Open(context.Background(), object.KindBlock, lib, id)
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		if _, err := io.ReadFull(rc, make([]byte, 10)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(3 * stall)
		if n, err := io.Copy(io.Discard, rc); n != 90 || err != nil {
			t.Fatalf("the rest after a pause of the reader's: %d bytes, %v", n, err)
		}
	})
}

// A PUT whose server stops taking the upload, or takes it all and never answers, fails
// after the stall time instead of hanging the sync; it is retried as a reset is, and the
// error says what happened and names the object.
func TestS3StalledPut(t *testing.T) {
	for name, c := range map[string]struct {
		read bool // the upload, before stalling
		size int
	}{
		// 16 MiB (one PUT still) is more than the socket buffers hold, so the upload
		// itself stops.
		"upload not taken":   {false, 16 << 20},
		"answer never given": {true, 1000},
	} {
		t.Run(name, func(t *testing.T) {
			var puts atomic.Int64
			end := make(chan struct{})
			f := &wireS3{put: func(w http.ResponseWriter, r *http.Request) {
				puts.Add(1)
				if c.read {
					io.Copy(io.Discard, r.Body)
				}
				stallWire(r, end)
			}}
			s, o := wireStore(t, f, func(o *store.S3Options) { o.StallTimeout = stall; o.MaxRetries = 2 })
			t.Cleanup(func() { close(end) })
			data := make([]byte, c.size)
			for i := range data {
				data[i] = byte(i * 7)
			}
			id := storetest.ID(data)
			err := within(t, 20*time.Second, func() error {
				return store.Put(context.Background(), s, object.KindBlock, lib, id, data)
			})
			if err == nil || !strings.Contains(err.Error(), "stopped moving bytes") || !strings.Contains(err.Error(), o.Buckets.Blocks+"/"+lib+"/"+id) {
				t.Fatalf("a stalled PUT: %v", err)
			}
			if n := puts.Load(); n != 2 {
				t.Fatalf("a stalled PUT was sent %d times, want 2 (retried once)", n)
			}
			t.Log(err)
		})
	}
}

// Only the server saying NoSuchKey makes an object absent. A 404 may also be
// NoSuchBucket (a bucket deleted or misnamed since the store opened), or come from
// something in front that is no S3 server; taken for "absent", they had verify report
// every object missing and a sync upload into nowhere. A HEAD cannot carry a code in a
// body, so its bare 404 still means absent, unless the server names another code in a
// header (MinIO's x-minio-error-code).
func TestS3OnlyNoSuchKeyIsAbsent(t *testing.T) {
	id := storetest.ID([]byte("x"))
	for name, c := range map[string]struct {
		answer http.HandlerFunc
		absent bool
	}{
		"NoSuchKey":    {func(w http.ResponseWriter, r *http.Request) { writeS3Error(w, 404, "NoSuchKey") }, true},
		"NoSuchBucket": {func(w http.ResponseWriter, r *http.Request) { writeS3Error(w, 404, "NoSuchBucket") }, false},
		"a web page": {func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(404)
			io.WriteString(w, "<html><body><h1>404 Not Found</h1>nginx</body></html>")
		}, false},
		"no body": {func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(404) }, false},
	} {
		t.Run("GET "+name, func(t *testing.T) {
			s, o := wireStore(t, &wireS3{get: c.answer}, nil)
			_, err := s.Get(context.Background(), object.KindCommit, lib, id)
			if got := errors.Is(err, store.ErrNotExist); got != c.absent || !c.absent && !strings.Contains(err.Error(), o.Buckets.Commits+"/"+lib+"/"+id) {
				t.Fatalf("GET answered %s: %v, want absent %v", name, err, c.absent)
			}
			t.Log(err)
		})
	}
	for name, c := range map[string]struct {
		answer http.HandlerFunc
		absent bool
	}{
		"404": {func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(404) }, true},
		"404 NoSuchBucket": {func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Minio-Error-Code", "NoSuchBucket")
			w.WriteHeader(404)
		}, false},
	} {
		t.Run("HEAD "+name, func(t *testing.T) {
			s, o := wireStore(t, &wireS3{head: c.answer}, nil)
			has, err := s.Has(context.Background(), object.KindCommit, lib, id)
			switch {
			case c.absent && (has || err != nil):
				t.Fatalf("HEAD answered %s: %v %v, want absent", name, has, err)
			case !c.absent && (err == nil || !strings.Contains(err.Error(), o.Buckets.Commits+"/"+lib+"/"+id)):
				t.Fatalf("HEAD answered %s: %v %v, want an error", name, has, err)
			}
			t.Log(err)
		})
	}
}

// HasLibrary trusts a listing no more than Preload does: a key outside the library's
// prefix (a server ignoring it) is an error, not "the store has this library"; and a
// listing it could not finish is an error, never "no".
func TestS3HasLibraryChecksTheListing(t *testing.T) {
	const other = "00000000-0000-4000-8000-000000000000"
	for name, c := range map[string]struct {
		keys    []string
		cancel  bool
		has     bool
		wantErr string
	}{
		"own key":         {keys: []string{lib + "/" + storetest.ID([]byte("c"))}, has: true},
		"none":            {},
		"another library": {keys: []string{other + "/" + storetest.ID([]byte("c"))}, wantErr: "not under the prefix"},
		"cancelled":       {keys: []string{lib + "/" + storetest.ID([]byte("c"))}, cancel: true, wantErr: "context canceled"},
	} {
		t.Run(name, func(t *testing.T) {
			f := &wireS3{}
			f.list = func(w http.ResponseWriter, r *http.Request) { writeListing(w, c.keys, false, "") }
			s, o := wireStore(t, f, nil)
			ctx, cancel := context.WithCancel(context.Background())
			if c.cancel {
				cancel()
			}
			defer cancel()
			has, err := s.HasLibrary(ctx, object.KindCommit, lib)
			switch {
			case c.wantErr == "" && (has != c.has || err != nil):
				t.Fatalf("HasLibrary: %v %v, want %v", has, err, c.has)
			case c.wantErr != "" && (has || err == nil || !strings.Contains(err.Error(), c.wantErr) || !strings.Contains(err.Error(), o.Buckets.Commits)):
				t.Fatalf("HasLibrary: %v %v, want an error saying %q", has, err, c.wantErr)
			}
		})
	}
}
