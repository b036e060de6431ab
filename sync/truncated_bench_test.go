package sync_test

import (
	"fmt"
	"testing"
	"time"

	"seafbak/internal/seafgen"
	"seafbak/internal/testenv"
	"seafbak/sync/primary"
)

// BenchmarkTruncatedFirstBackup is a first backup of a library whose primary trimmed the
// trees of its 39 oldest commits (a history limit), from the data dir and over HTTP. Over
// HTTP each trimmed root makes pack-fs answer 500; check-fs then says it is absent, so it
// is not retried as if the network had failed (issue 7: 55.7 s before, against 0.16 s
// from the data dir).
//
//	go test -run '^$' -bench TruncatedFirstBackup -benchtime 3x ./sync/
func BenchmarkTruncatedFirstBackup(b *testing.B) {
	for _, source := range []string{"dir", "http"} {
		b.Run(source, func(b *testing.B) {
			var total time.Duration
			for i := range b.N {
				b.StopTimer()
				env := testenv.New(b, srv)
				if source == "http" {
					// The client as seafbak runs it: default retries and backoff.
					fs := env.StartFileServer()
					h, err := primary.NewHTTP(primary.HTTPOptions{URL: fs.URL(), SyncToken: testenv.SyncToken})
					if err != nil {
						b.Fatal(err)
					}
					env.HTTP = h
				}
				g := seafgen.New(env.PrimaryDir)
				g.BlockSize = 4096
				lib, err := g.NewLibrary(seafgen.LibraryOptions{Name: fmt.Sprint("Limited ", i)})
				if err != nil {
					b.Fatal(err)
				}
				var keep string
				for c := range 41 {
					keep = testenv.Commit(b, lib, fmt.Sprint("edit ", c), seafgen.Put(fmt.Sprintf("dir%d/f.txt", c%5), []byte(fmt.Sprint("version ", c))))
				}
				testenv.Commit(b, lib, "newest", seafgen.Put("new.txt", []byte("n")))
				if err := lib.TruncateBefore(keep); err != nil {
					b.Fatal(err)
				}
				env.Publish(lib)
				eng := env.Engine(false)
				b.StartTimer()
				start := time.Now()
				res := testenv.SyncOK(b, eng, lib.ID)
				total += time.Since(start)
				b.StopTimer()
				if res.Truncated < 39 {
					b.Fatalf("%d commits recorded as truncated, want at least 39", res.Truncated)
				}
			}
			b.ReportMetric(total.Seconds()/float64(b.N), "s/backup")
		})
	}
}
