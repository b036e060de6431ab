package storecopy_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"seafbak/internal/s3test"

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
//	SEAFBAK_COPY_RCLONE=1 go test -run '^$' -bench CopyFSToS3 -benchtime 3x ./storecopy/
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
	var toS3, toFS, rc float64
	// SEAFBAK_COPY_RCLONE=1 also times rclone copy of the same storage dir (Debian's
	// rclone) to the same server, as a baseline.
	rclone := ""
	if os.Getenv("SEAFBAK_COPY_RCLONE") != "" {
		rclone, err = exec.LookPath("rclone")
		must(b, err)
	}
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
		if rclone != "" {
			// The same objects, by rclone copy of the storage dir, into fresh buckets.
			_, o := newS3(b)
			t0 := time.Now()
			remote := fmt.Sprintf(":s3,provider=Other,access_key_id=%s,secret_access_key=%s,endpoint='http://%s',force_path_style=true,region=%s:%s/storage",
				s3test.AccessKey, s3test.SecretKey, o.Endpoint, s3test.Region, o.Buckets.Blocks)
			cmd := exec.Command(rclone, "copy", "--transfers", strconv.Itoa(benchPar), "--checkers", strconv.Itoa(benchPar), filepath.Join(dir, "storage"), remote)
			cmd.Env = append(os.Environ(), "AWS_CA_BUNDLE=") // plain http; a set bundle makes rclone refuse
			out, err := cmd.CombinedOutput()
			if err != nil {
				b.Fatalf("rclone: %v\n%s", err, out)
			}
			rc += float64(res.Copied.Objects()) / time.Since(t0).Seconds()
		}
		b.StartTimer()
	}
	b.ReportMetric(toS3/float64(b.N), "objects/s-to-s3")
	b.ReportMetric(toFS/float64(b.N), "objects/s-to-fs")
	if rclone != "" {
		b.ReportMetric(rc/float64(b.N), "objects/s-rclone-to-s3")
	}
}

// benchPar is Options.Parallel in the benchmark (SEAFBAK_COPY_PARALLEL, default 8).
var benchPar = func() int {
	if v, err := strconv.Atoi(os.Getenv("SEAFBAK_COPY_PARALLEL")); err == nil && v > 0 {
		return v
	}
	return 8
}()
