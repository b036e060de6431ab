package store_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	gosync "sync"
	"testing"

	"github.com/minio/minio-go/v7"

	"seafbak/internal/s3test"
	"seafbak/sync/object"
	"seafbak/sync/store"
	"seafbak/sync/store/storetest"
)

// Open and Get cost one request an object: minio-go's Object sent a HEAD for its Stat
// and then the GET, doubling every read of verify, restore and store copy.
func TestS3ReadIsOneRequest(t *testing.T) {
	srv := s3test.Shared(t)
	p := s3test.NewProxy(t, srv.Endpoint)
	s := openS3(t, newBuckets(t, srv, p.Endpoint))
	ctx := context.Background()
	data := []byte("hello block")
	id := storetest.ID(data)
	if err := store.Put(ctx, s, object.KindBlock, lib, id, data); err != nil {
		t.Fatal(err)
	}
	var mu gosync.Mutex
	var methods []string
	p.Inject(func(r *http.Request) s3test.Fault {
		mu.Lock()
		methods = append(methods, r.Method)
		mu.Unlock()
		return s3test.Pass
	})
	rc, err := s.Open(ctx, object.KindBlock, lib, id)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read %q, %v", got, err)
	}
	if _, err := s.Get(ctx, object.KindBlock, lib, id); err != nil {
		t.Fatal(err)
	}
	if strings.Join(methods, " ") != "GET GET" {
		t.Errorf("an Open and a Get sent %v, want one GET each", methods)
	}
}

// Keys that are not an object's (upper-case hex here) are not counted present by
// Preload: "ABCD..." decodes as hex too, and would have answered for "abcd...", so a
// sync would skip writing an object that a directory above it needs.
func TestS3PreloadIgnoresKeysNotAnObjects(t *testing.T) {
	srv := s3test.Shared(t)
	o := newBuckets(t, srv, srv.Endpoint)
	s := openS3(t, o)
	ctx := context.Background()
	id := storetest.ID([]byte("a block nobody stored under its own key"))
	if _, err := srv.Client(t).PutObject(ctx, o.Buckets.Blocks, lib+"/"+strings.ToUpper(id), bytes.NewReader([]byte("x")), 1, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := s.Preload(ctx, object.KindBlock, lib); err != nil {
		t.Fatal(err)
	}
	if has, err := s.Has(ctx, object.KindBlock, lib, id); has || err != nil {
		t.Errorf("Preload counts key %s/%s as block %s: %v %v", lib, strings.ToUpper(id), id, has, err)
	}
}
