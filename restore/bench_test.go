package restore_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"seafbak/internal/seafgen"
	"seafbak/internal/testenv"
	"seafbak/restore"
)

// TestVerifyThroughput measures Verify against cat and sha1sum reading the same block
// files, with the page cache warm and with the files evicted from it. It is slow and
// prints figures, so it runs only with SEAFBAK_BENCH=1 (and without -race):
//
//	SEAFBAK_BENCH=1 go test -run TestVerifyThroughput -v ./restore/
func TestVerifyThroughput(t *testing.T) {
	if os.Getenv("SEAFBAK_BENCH") == "" {
		t.Skip("set SEAFBAK_BENCH=1 to measure verify throughput")
	}
	env, g := primaryWithGenerator(t)
	g.BlockSize = seafgen.DefaultBlockSize
	lib, err := g.NewLibrary(seafgen.LibraryOptions{Name: "Bulk"})
	must(t, err)
	_, err = lib.CommitBulk("bulk", 2000, 200<<20, 1)
	must(t, err)
	env.Publish(lib)
	testenv.SyncOK(t, env.Engine(false), lib.ID)

	blocksDir := filepath.Join(env.BackupDir, "storage", "blocks")
	var files []string
	var total int64
	filepath.Walk(blocksDir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			files = append(files, p)
			total += fi.Size()
		}
		return nil
	})
	evict := func() {
		for _, p := range []string{filepath.Join(env.BackupDir, "storage")} {
			filepath.Walk(p, func(p string, fi os.FileInfo, err error) error {
				if err == nil && fi.Mode().IsRegular() {
					if f, err := os.Open(p); err == nil {
						unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
						f.Close()
					}
				}
				return nil
			})
		}
	}
	shell := func(cmd string) time.Duration {
		c := exec.Command("sh", "-c", cmd)
		c.Dir = blocksDir
		t0 := time.Now()
		if out, err := c.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", cmd, err, out)
		}
		return time.Since(t0)
	}
	verify := func(parallel int) time.Duration {
		t0 := time.Now()
		rep, err := restore.Verify(context.Background(), restore.VerifyOptions{Store: env.Store, State: env.State, Parallel: parallel})
		must(t, err)
		if !rep.OK() || rep.Bytes != total {
			t.Fatalf("verify: %+v", rep)
		}
		return time.Since(t0)
	}
	type run struct {
		name string
		f    func() time.Duration
	}
	runs := []run{
		// GNU cat maps a fresh buffer per file, which costs more than the read here;
		// tail -c +1 is the plain read loop.
		{"cat", func() time.Duration { return shell("find . -type f -print0 | xargs -0 cat > /dev/null") }},
		{"tail -c +1", func() time.Duration { return shell("find . -type f -print0 | xargs -0 tail -q -c +1 > /dev/null") }},
		{"sha1sum", func() time.Duration { return shell("find . -type f -print0 | xargs -0 sha1sum > /dev/null") }},
		{"sha1sum -P2", func() time.Duration {
			return shell("find . -type f -print0 | xargs -0 -n 100 -P 2 sha1sum > /dev/null")
		}},
		{"verify -parallel 1", func() time.Duration { return verify(1) }},
		{"verify (default)", func() time.Duration { return verify(0) }},
		{"verify -parallel 16", func() time.Duration { return verify(16) }},
	}
	mibs := func(d time.Duration) string {
		return fmt.Sprintf("%7.0f MiB/s (%v)", float64(total)/(1<<20)/d.Seconds(), d.Round(time.Millisecond))
	}
	t.Logf("%d block files, %d MiB; %d files in the library", len(files), total>>20, 2000)
	// Round robin, best of 5: the machine may be shared, and each figure should see the
	// same conditions.
	for _, cache := range []string{"warm", "cold"} {
		best := make([]time.Duration, len(runs))
		for i := range best {
			best[i] = 1 << 62
		}
		for range 5 {
			for i, r := range runs {
				if cache == "cold" {
					evict()
				} else {
					r.f() // warm up
				}
				best[i] = min(best[i], r.f())
			}
		}
		for i, r := range runs {
			t.Logf("%s cache  %-20s %s", cache, r.name, mibs(best[i]))
		}
	}
}
