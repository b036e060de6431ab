package s3test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"testing"

	"github.com/minio/minio-go/v7"
)

func TestMain(m *testing.M) { Main(m) }

// The server keeps its objects across a kill -9 and restart on the same port, and the
// proxy injects what it is told to and passes the rest through.
func TestServerRestartAndProxy(t *testing.T) {
	ctx := context.Background()
	s := Start(t)
	s.MakeBuckets(t, "bucket1")
	c := s.Client(t)
	data := []byte("hello")
	if _, err := c.PutObject(ctx, "bucket1", "lib/obj", bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	s.Restart(t)
	if got := s.Keys(t, "bucket1"); len(got) != 1 || got[0] != "lib/obj" {
		t.Fatalf("keys after restart: %q", got)
	}

	p := NewProxy(t, s.Endpoint)
	pc := ClientVia(t, p.Endpoint)
	// MaxRetries 1 in ClientVia: one SlowDown is seen by the caller.
	p.Inject(FirstN(1, SlowDown, func(r *http.Request) bool { return r.Method == http.MethodGet }))
	if _, err := pc.StatObject(ctx, "bucket1", "lib/obj", minio.StatObjectOptions{}); err != nil {
		t.Fatalf("a HEAD is not a GET and passes: %v", err)
	}
	o, err := pc.GetObject(ctx, "bucket1", "lib/obj", minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(o)
	if minio.ToErrorResponse(err).Code != "SlowDown" {
		t.Fatalf("GET through the proxy: %v, want SlowDown", err)
	}
	if p.Injected(SlowDown) != 1 {
		t.Fatalf("injected %d SlowDowns, want 1", p.Injected(SlowDown))
	}
	o, _ = pc.GetObject(ctx, "bucket1", "lib/obj", minio.GetObjectOptions{})
	if got, err := io.ReadAll(o); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("GET after the fault: %q %v", got, err)
	}

	s.Stop()
	if _, err := c.StatObject(ctx, "bucket1", "lib/obj", minio.StatObjectOptions{}); err == nil {
		t.Fatal("a stopped server answered")
	}
	s.Resume(t)
	if _, err := c.StatObject(ctx, "bucket1", "lib/obj", minio.StatObjectOptions{}); err != nil {
		t.Fatalf("after Resume: %v", err)
	}
}
