package main

import (
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"seafbak/internal/s3test"
	"seafbak/internal/seafgen"
	"seafbak/internal/testenv"
)

// Found by review: status read every library's backed-up head commit from the store, one
// after another, for head_time and behind_seconds, even for the text and for
// --if-changed, which show the time of one library at most (the one longest behind).
// On S3 that is one sequential GET per library at every cron status: with 10 000
// libraries at 20 ms a request, over 3 minutes for a status that has the answer from
// the database and the state. The record keeps the head's time now.
func TestStatusOnS3ReadsNoHeadPerLibrary(t *testing.T) {
	env := testenv.New(t, srv)
	g := seafgen.New(env.PrimaryDir)
	const n = 40
	var libs []*seafgen.Library
	for i := range n {
		l, err := g.NewLibrary(seafgen.LibraryOptions{Name: fmt.Sprintf("l%d", i), Owner: "u@example.com"})
		must(t, err)
		testenv.Commit(t, l, "files", seafgen.Put("a.txt", []byte{byte(i)}))
		libs = append(libs, l)
	}
	env.Publish(libs...)
	s3 := s3test.Start(t)
	proxy := s3test.NewProxy(t, s3.Endpoint)
	cfg, b := writeS3Config(t, env, s3, proxy.Endpoint, env.StateDir)
	if code, out, errs := seafbak("--config", cfg, "scan"); code != 0 {
		t.Fatalf("scan: %d\n%s%s", code, out, errs)
	}
	var gets atomic.Int64
	proxy.Inject(func(r *http.Request) s3test.Fault {
		if r.Method == http.MethodGet && strings.Contains(r.URL.Path, b.commits) && !strings.HasSuffix(r.URL.Path, "/") { // a commit, not the bucket
			gets.Add(1)
			time.Sleep(20 * time.Millisecond) // a WAN's round trip
		}
		return s3test.Pass
	})
	start := time.Now()
	code, out, errs := seafbak("--config", cfg, "status", "--if-changed")
	took := time.Since(start)
	if code != 0 || out != "" {
		t.Fatalf("status --if-changed: %d\n%s%s", code, out, errs)
	}
	t.Logf("status --if-changed of %d libraries: %d GETs of commits, %s", n, gets.Load(), took)
	if gets.Load() > 0 {
		t.Errorf("status --if-changed (all healthy, nothing printed) read %d commits from S3 for %d libraries, in %s", gets.Load(), n, took)
	}
}
