package storecopy_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"seafbak/internal/seafgen"
	"seafbak/state"
	"seafbak/storecopy"
	"seafbak/sync/store"
)

// BenchmarkCopyFSToS3 copies a generated library (SEAFBAK_COPY_FILES files, default
// 2 000, 4 KiB each in one block) from a filesystem store to fresh buckets on the local
// S3 server, and the copy back to a fresh filesystem store; it reports objects/s.
//
//	go test -run '^$' -bench CopyFSToS3 -benchtime 1x ./storecopy/
func BenchmarkCopyFSToS3(b *testing.B) {
	files := 2000
	if v, err := strconv.Atoi(os.Getenv("SEAFBAK_COPY_FILES")); err == nil && v > 0 {
		files = v
	}
	dir := b.TempDir()
	must(b, os.MkdirAll(filepath.Join(dir, "storage"), 0o755))
	g := seafgen.New(dir)
	lib, err := g.NewLibrary(seafgen.LibraryOptions{Name: "Bench"})
	must(b, err)
	_, err = lib.CommitBulk("bulk", files, int64(files)*4096, 1)
	must(b, err)
	st, err := state.Open(b.TempDir())
	must(b, err)
	must(b, st.Save(state.Library{ID: lib.ID, StoreID: lib.StoreID, Name: lib.Name, Head: lib.Head}))
	src, err := store.OpenFS(dir)
	must(b, err)
	b.ResetTimer()
	var toS3, toFS float64
	for range b.N {
		b.StopTimer()
		s3, _ := newS3(b)
		b.StartTimer()
		res, err := storecopy.Copy(context.Background(), storecopy.Options{From: src, To: s3, State: st, Parallel: benchPar})
		must(b, err)
		toS3 += float64(res.Copied.Objects()) / res.Seconds
		b.StopTimer()
		back, err := store.NewFS(b.TempDir(), store.Batch)
		must(b, err)
		res, err = storecopy.Copy(context.Background(), storecopy.Options{From: s3, To: back, State: st, Parallel: benchPar})
		must(b, err)
		toFS += float64(res.Copied.Objects()) / res.Seconds
		b.Logf("%d objects, %d bytes", res.Copied.Objects(), res.Copied.Bytes)
		b.StartTimer()
	}
	b.ReportMetric(toS3/float64(b.N), "objects/s-to-s3")
	b.ReportMetric(toFS/float64(b.N), "objects/s-to-fs")
}

// benchPar is Options.Parallel in the benchmark (SEAFBAK_COPY_PARALLEL, default 8).
var benchPar = func() int {
	if v, err := strconv.Atoi(os.Getenv("SEAFBAK_COPY_PARALLEL")); err == nil && v > 0 {
		return v
	}
	return 8
}()
