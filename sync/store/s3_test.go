package store_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	gosync "sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"seafbak/internal/s3test"
	"seafbak/sync/object"
	"seafbak/sync/store"
	"seafbak/sync/store/storetest"
)

func TestMain(m *testing.M) { s3test.Main(m) }

const lib = "7b89d49b-5c5c-4f42-8ded-940c84a3e206"

// newBuckets makes three fresh buckets on srv and returns options for a store on them
// through endpoint (the server's, or a proxy's in front of it).
var bucketSeq atomic.Int64

func newBuckets(t testing.TB, srv *s3test.Server, endpoint string) store.S3Options {
	n := bucketSeq.Add(1)
	b := store.S3Buckets{
		Commits: fmt.Sprintf("t%d-commits", n),
		FS:      fmt.Sprintf("t%d-fs", n),
		Blocks:  fmt.Sprintf("t%d-blocks", n),
	}
	srv.MakeBuckets(t, b.Commits, b.FS, b.Blocks)
	return store.S3Options{
		Endpoint:  endpoint,
		Region:    s3test.Region,
		Buckets:   b,
		PathStyle: true,
		AccessKey: s3test.AccessKey,
		SecretKey: s3test.SecretKey,
		SpillDir:  t.TempDir(),
	}
}

func openS3(t testing.TB, o store.S3Options) *store.S3 {
	t.Helper()
	s, err := store.NewS3(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func bucketOf(o store.S3Options, kind object.Kind) string {
	return map[object.Kind]string{object.KindCommit: o.Buckets.Commits, object.KindFS: o.Buckets.FS, object.KindBlock: o.Buckets.Blocks}[kind]
}

// raw reads an object as Seafile's S3 backend does: bucket of its kind, key <store>/<id>.
func raw(t testing.TB, srv *s3test.Server, o store.S3Options) func(kind object.Kind, storeID, id string) ([]byte, bool) {
	c := srv.Client(t)
	return func(kind object.Kind, storeID, id string) ([]byte, bool) {
		obj, err := c.GetObject(context.Background(), bucketOf(o, kind), storeID+"/"+id, minio.GetObjectOptions{})
		if err != nil {
			return nil, false
		}
		defer obj.Close()
		b, err := io.ReadAll(obj)
		return b, err == nil
	}
}

func count(t testing.TB, srv *s3test.Server, o store.S3Options) func() int {
	return func() int {
		n := 0
		for _, b := range []string{o.Buckets.Commits, o.Buckets.FS, o.Buckets.Blocks} {
			n += len(srv.Keys(t, b))
		}
		return n
	}
}

// The suite runs twice: with HEADs, and with every library's listing preloaded first,
// so presence answers come from the listing grown by Commit (an Abort must not grow it).
func TestS3Conformance(t *testing.T) {
	srv := s3test.Shared(t)
	for _, preload := range []bool{false, true} {
		t.Run(map[bool]string{false: "head", true: "preloaded"}[preload], func(t *testing.T) {
			storetest.Run(t, func(t *testing.T) storetest.Subject {
				o := newBuckets(t, srv, srv.Endpoint)
				s := openS3(t, o)
				if preload {
					for _, kind := range []object.Kind{object.KindCommit, object.KindFS, object.KindBlock} {
						for _, l := range []string{storetest.LibA, storetest.LibB} {
							if err := s.Preload(context.Background(), kind, l); err != nil {
								t.Fatal(err)
							}
						}
					}
				}
				return storetest.Subject{Store: s, Raw: raw(t, srv, o), Count: count(t, srv, o)}
			})
		})
	}
}

// Wrong credentials fail at open, naming the endpoint and the bucket, never the secret.
func TestS3WrongCredentials(t *testing.T) {
	srv := s3test.Shared(t)
	good := newBuckets(t, srv, srv.Endpoint)
	const secret = "wrong-secret-that-must-not-be-printed"
	for name, o := range map[string]store.S3Options{
		"secret":     func(o store.S3Options) store.S3Options { o.SecretKey = secret; return o }(good),
		"access key": func(o store.S3Options) store.S3Options { o.AccessKey = "nobody"; o.SecretKey = secret; return o }(good),
	} {
		o.MaxRetries = 1
		_, err := store.NewS3(context.Background(), o)
		if err == nil {
			t.Fatalf("wrong %s accepted", name)
		}
		msg := err.Error()
		t.Logf("wrong %s: %s", name, msg)
		if !strings.Contains(msg, "http://"+srv.Endpoint) || !strings.Contains(msg, good.Buckets.Commits) || strings.Contains(msg, secret) {
			t.Fatalf("wrong %s: %q should name the endpoint and bucket and not the secret", name, msg)
		}
		for _, s := range []string{o.String(), fmt.Sprintf("%v %+v %#v %s", o, o, o, o)} {
			if strings.Contains(s, secret) {
				t.Fatalf("options print the secret: %s", s)
			}
		}
	}
	missing := good
	missing.Buckets.Blocks = "no-such-bucket"
	if _, err := store.NewS3(context.Background(), missing); err == nil || !strings.Contains(err.Error(), "no-such-bucket") {
		t.Fatalf("missing bucket: %v", err)
	}
	// No key in the config and none in the environment.
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", t.TempDir()+"/none")
	anon := good
	anon.AccessKey, anon.SecretKey = "", ""
	if _, err := store.NewS3(context.Background(), anon); err == nil || !strings.Contains(err.Error(), "no credentials") {
		t.Fatalf("no credentials: %v", err)
	}
	// From the AWS environment, as the SDKs read it.
	t.Setenv("AWS_ACCESS_KEY_ID", s3test.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", s3test.SecretKey)
	openS3(t, anon)
}

// 503 SlowDown is retried with backoff until the server takes the request; if it never
// does, the error says so.
func TestS3SlowDownRetried(t *testing.T) {
	srv := s3test.Shared(t)
	p := s3test.NewProxy(t, srv.Endpoint)
	o := newBuckets(t, srv, p.Endpoint)
	s := openS3(t, o)
	ctx := context.Background()
	data := []byte("throttled")
	id := storetest.ID(data)
	p.Inject(s3test.FirstN(3, s3test.SlowDown, nil))
	if err := store.Put(ctx, s, object.KindBlock, lib, id, data); err != nil {
		t.Fatalf("Put through 3 SlowDowns: %v", err)
	}
	p.Inject(s3test.FirstN(2, s3test.SlowDown, nil))
	if got, err := s.Get(ctx, object.KindBlock, lib, id); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("Get through 2 SlowDowns: %v", err)
	}
	if n := p.Injected(s3test.SlowDown); n != 5 {
		t.Fatalf("%d SlowDowns injected, want 5", n)
	}

	o.MaxRetries = 2
	s2 := openS3(t, o)
	p.Inject(func(*http.Request) s3test.Fault { return s3test.SlowDown })
	_, err := s2.Has(ctx, object.KindBlock, lib, id)
	if err == nil || !strings.Contains(err.Error(), "503") || !strings.Contains(err.Error(), o.Buckets.Blocks+"/"+lib+"/"+id) {
		t.Fatalf("endless SlowDown: %v", err)
	}
}

// A PUT whose answer is lost after the server stored it fails, and leaves the object
// whole or absent, never partial; writing it again succeeds.
func TestS3PutFailsAfterUpload(t *testing.T) {
	srv := s3test.Shared(t)
	p := s3test.NewProxy(t, srv.Endpoint)
	o := newBuckets(t, srv, p.Endpoint)
	o.MaxRetries = 2
	s := openS3(t, o)
	ctx := context.Background()
	data := storetest.Random(t, 2<<20) // spilled to a temp file
	id := storetest.ID(data)
	p.Inject(func(r *http.Request) s3test.Fault {
		if s3test.IsPut(r) {
			return s3test.FailAfter
		}
		return s3test.Pass
	})
	err := store.Put(ctx, s, object.KindBlock, lib, id, data)
	if err == nil || !strings.Contains(err.Error(), "put "+o.Buckets.Blocks+"/"+lib+"/"+id) {
		t.Fatalf("Put with its answer lost: %v", err)
	}
	if got, found := raw(t, srv, o)(object.KindBlock, lib, id); !found || !bytes.Equal(got, data) {
		t.Fatalf("the server stored it (found %v), but not whole", found)
	}
	p.Inject(nil)
	if err := store.Put(ctx, s, object.KindBlock, lib, id, data); err != nil {
		t.Fatalf("rewrite: %v", err)
	}
	if n := count(t, srv, o)(); n != 1 {
		t.Fatalf("%d objects", n)
	}
}

// An upload broken mid-body (the writer killed, the connection lost) leaves nothing
// visible; with retries the next attempt stores it whole.
func TestS3UploadCut(t *testing.T) {
	srv := s3test.Shared(t)
	p := s3test.NewProxy(t, srv.Endpoint)
	p.CutAt = 1 << 20
	o := newBuckets(t, srv, p.Endpoint)
	ctx := context.Background()
	data := storetest.Random(t, 3<<20)
	id := storetest.ID(data)

	once := o
	once.MaxRetries = 1
	s := openS3(t, once)
	p.Inject(s3test.FirstN(1, s3test.CutBody, s3test.IsPut))
	if err := store.Put(ctx, s, object.KindBlock, lib, id, data); err == nil {
		t.Fatal("a cut upload succeeded")
	}
	if has, err := s.Has(ctx, object.KindBlock, lib, id); has || err != nil {
		t.Fatalf("visible after a cut upload: %v %v", has, err)
	}
	if n := count(t, srv, o)(); n != 0 {
		t.Fatalf("%d objects after a cut upload", n)
	}

	s = openS3(t, o)
	p.Inject(s3test.FirstN(1, s3test.CutBody, s3test.IsPut))
	if err := store.Put(ctx, s, object.KindBlock, lib, id, data); err != nil {
		t.Fatalf("retried after a cut: %v", err)
	}
	if got, found := raw(t, srv, o)(object.KindBlock, lib, id); !found || !bytes.Equal(got, data) {
		t.Fatal("not stored whole after the retry")
	}
}

// The S3 server killed (-9) in the middle of a PUT and started again: without retries
// left the write fails and nothing is visible after the restart; with them it goes
// through once the server is back. Objects committed before the crash are all there.
func TestS3ServerRestartMidWrite(t *testing.T) {
	srv := s3test.Start(t) // its own: this test kills it
	p := s3test.NewProxy(t, srv.Endpoint)
	p.CutAt = 512 << 10
	o := newBuckets(t, srv, p.Endpoint)
	ctx := context.Background()
	s := openS3(t, o)
	before := []byte("committed before the crash")
	if err := store.Put(ctx, s, object.KindCommit, lib, storetest.ID(before), before); err != nil {
		t.Fatal(err)
	}
	data := storetest.Random(t, 4<<20)
	id := storetest.ID(data)

	killed := make(chan struct{})
	p.OnCut = func() { srv.Stop(); close(killed) }
	once := o
	once.MaxRetries = 1
	s1 := openS3(t, once)
	p.Inject(s3test.FirstN(1, s3test.CutBody, s3test.IsPut))
	if err := store.Put(ctx, s1, object.KindBlock, lib, id, data); err == nil {
		t.Fatal("a PUT to a server killed mid-upload succeeded")
	}
	<-killed
	srv.Resume(t)
	if has, err := s.Has(ctx, object.KindBlock, lib, id); has || err != nil {
		t.Fatalf("after the restart: visible %v, %v", has, err)
	}
	if has, err := s.Has(ctx, object.KindCommit, lib, storetest.ID(before)); !has || err != nil {
		t.Fatalf("an object committed before the crash is gone: %v %v", has, err)
	}

	// Default retries (jittered backoff, about 6 s in all) span a quick restart.
	killed = make(chan struct{})
	p.OnCut = func() { srv.Stop(); close(killed) }
	p.Inject(s3test.FirstN(1, s3test.CutBody, s3test.IsPut))
	done := make(chan error, 1)
	go func() { done <- store.Put(ctx, s, object.KindBlock, lib, id, data) }()
	<-killed
	time.Sleep(300 * time.Millisecond)
	srv.Resume(t)
	if err := <-done; err != nil {
		t.Fatalf("PUT across a restart: %v", err)
	}
	if got, found := raw(t, srv, o)(object.KindBlock, lib, id); !found || !bytes.Equal(got, data) {
		t.Fatal("not stored whole across the restart")
	}
}

// Preload lists a library once; then Has and Size answer without a request, including for
// objects committed after the listing, and objects of other libraries still need a HEAD.
func TestS3Preload(t *testing.T) {
	srv := s3test.Shared(t)
	p := s3test.NewProxy(t, srv.Endpoint)
	o := newBuckets(t, srv, p.Endpoint)
	s := openS3(t, o)
	ctx := context.Background()
	ids := putMany(t, s, object.KindFS, 200)
	store.ListPageKeys(t, 64) // four pages, through the server's own continuation tokens
	before := p.Requests()
	if err := s.Preload(ctx, object.KindFS, lib); err != nil {
		t.Fatal(err)
	}
	reqs := p.Requests()
	if reqs-before != 4 {
		t.Fatalf("Preload of 200 keys, 64 a page, sent %d requests", reqs-before)
	}
	for i, id := range ids {
		if has, err := s.Has(ctx, object.KindFS, lib, id); !has || err != nil {
			t.Fatalf("listed object %s: %v %v", id, has, err)
		}
		if n, err := s.Size(ctx, object.KindFS, lib, id); n != int64(len(fmt.Sprint("object ", i))) || err != nil {
			t.Fatalf("listed object %s: size %d %v", id, n, err)
		}
	}
	absent := storetest.ID([]byte("absent"))
	if has, _ := s.Has(ctx, object.KindFS, lib, absent); has {
		t.Fatal("an absent object is present")
	}
	later := []byte("written after the listing")
	if err := store.Put(ctx, s, object.KindFS, lib, storetest.ID(later), later); err != nil {
		t.Fatal(err)
	}
	if has, _ := s.Has(ctx, object.KindFS, lib, storetest.ID(later)); !has {
		t.Fatal("an object committed after the listing is absent")
	}
	if n, _ := s.Size(ctx, object.KindFS, lib, storetest.ID(later)); n != int64(len(later)) {
		t.Fatalf("an object committed after the listing has size %d", n)
	}
	if _, err := s.Size(ctx, object.KindFS, lib, absent); !errors.Is(err, store.ErrNotExist) {
		t.Fatalf("Size of an absent object after Preload: %v", err)
	}
	if n := p.Requests() - reqs; n != 1 {
		t.Fatalf("%d requests after Preload, want only the PUT", n)
	}
	if has, _ := s.Has(ctx, object.KindBlock, lib, ids[0]); has {
		t.Fatal("fs listing answered for blocks")
	}
	if p.Requests()-reqs != 2 {
		t.Fatal("Has of an unlisted kind sent no HEAD")
	}
}

// putMany writes n small objects of kind into lib, 8 at a time, and returns their ids.
func putMany(t testing.TB, s store.Store, kind object.Kind, n int) []string {
	ids := make([]string, n)
	errs := make(chan error, n)
	sem := make(chan struct{}, 8)
	var wg gosync.WaitGroup
	for i := range n {
		data := []byte(fmt.Sprint("object ", i))
		ids[i] = storetest.ID(data)
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := store.Put(context.Background(), s, kind, lib, ids[i], data); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	return ids
}

// BenchmarkS3Presence compares the two ways a sync learns what a library of N objects
// already holds: one HEAD per object, or one listing (1000 keys a request) then memory.
// Both run against the local VersityGW over loopback, so the figures are a floor: a
// real endpoint adds its round trip to every HEAD but only to every 1000th key listed.
// Measured on the 2-core dev machine, shared (load 10 to 15), N = 2000: HEAD 783 to
// 1013 µs/object, listing 151 to 392 µs/object (VersityGW's posix backend stats each
// file and reads its xattrs to list it). So even locally, listing wins once a sync
// checks more than a fifth to two fifths of the library; HEADs win for a few-file change.
func BenchmarkS3Presence(b *testing.B) {
	srv := s3test.Shared(b)
	o := newBuckets(b, srv, srv.Endpoint)
	s := openS3(b, o)
	ctx := context.Background()
	const n = 2000
	ids := putMany(b, s, object.KindBlock, n)
	b.Run(fmt.Sprintf("HEAD-%d", n), func(b *testing.B) {
		s := openS3(b, o)
		for b.Loop() {
			for _, id := range ids {
				if has, err := s.Has(ctx, object.KindBlock, lib, id); !has || err != nil {
					b.Fatal(has, err)
				}
			}
		}
		b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*n), "µs/object")
	})
	// Break-even: a sync that checks k of the library's n objects should list when
	// k × (µs/object of HEAD) > n × (µs/object of list).
	b.Run(fmt.Sprintf("list-%d", n), func(b *testing.B) {
		for b.Loop() {
			s := openS3(b, o)
			if err := s.Preload(ctx, object.KindBlock, lib); err != nil {
				b.Fatal(err)
			}
			for _, id := range ids {
				if has, err := s.Has(ctx, object.KindBlock, lib, id); !has || err != nil {
					b.Fatal(has, err)
				}
			}
		}
		b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*n), "µs/object")
	})
}

// Over HTTPS the certificate is always verified: a private CA works only through
// CAFile, and a server whose certificate it cannot verify is refused, named.
func TestS3TLSWithCAFile(t *testing.T) {
	srv := s3test.StartTLS(t)
	o := newBuckets(t, srv, srv.Endpoint)
	o.TLS = true
	o.MaxRetries = 1
	if _, err := store.NewS3(context.Background(), o); err == nil || !strings.Contains(err.Error(), "https://"+srv.Endpoint) || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("a private CA's certificate without CAFile: %v", err)
	}
	o.CAFile = srv.CAFile
	s := openS3(t, o)
	data := []byte("over TLS")
	if err := store.Put(context.Background(), s, object.KindCommit, lib, storetest.ID(data), data); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Get(context.Background(), object.KindCommit, lib, storetest.ID(data)); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("Get over TLS: %v", err)
	}
	o.CAFile = filepath.Join(t.TempDir(), "empty.pem")
	os.WriteFile(o.CAFile, []byte("not a certificate\n"), 0o644)
	if _, err := store.NewS3(context.Background(), o); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Fatalf("a CA file without a certificate: %v", err)
	}
}

// The sections a failover prints for seafile.conf name the buckets by kind as
// Seafile's backends expect, and never the secret.
func TestS3SeafileConf(t *testing.T) {
	o := store.S3Options{
		Endpoint:  "s3.example.com:9000",
		Region:    "eu-west-1",
		Buckets:   store.S3Buckets{Commits: "sf-commits", FS: "sf-fs", Blocks: "sf-blocks"},
		PathStyle: true,
		TLS:       true,
		AccessKey: "AKIAEXAMPLE",
		SecretKey: "the-secret",
	}
	got := o.SeafileConf()
	want := `[commit_object_backend]
name = s3
bucket = sf-commits
key_id = AKIAEXAMPLE
key = <secret key>
host = s3.example.com:9000
use_https = true
path_style_request = true
aws_region = eu-west-1
use_v4_signature = true

[fs_object_backend]
name = s3
bucket = sf-fs
`
	if !strings.HasPrefix(got, want) || !strings.Contains(got, "[block_backend]\nname = s3\nbucket = sf-blocks\n") || strings.Contains(got, "the-secret") {
		t.Fatalf("seafile.conf sections:\n%s", got)
	}
}
