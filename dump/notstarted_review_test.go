package dump

import (
	"context"
	"errors"
	"os"
	"syscall"
	"testing"

	"github.com/go-sql-driver/mysql"
)

// Found by review: a dump directory that exists but cannot be written (a read-only mount; under
// the systemd unit's ProtectSystem=strict, any dump.dir not in ReadWritePaths=) fails
// at os.MkdirTemp, before anything is dumped. ErrNotStarted's doc lists "the dump
// directory" among its causes, but this error is not tagged, so `seafbak dump` exits 1
// (failed) instead of 2 (could not run, nothing was done). The test mounts a read-only
// tmpfs (root ignores mode bits), so it needs root.
func TestUnwritableDumpDirIsNotStarted(t *testing.T) {
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", syscall.MS_RDONLY, "size=64k"); err != nil {
		t.Skipf("cannot mount a read-only tmpfs (needs root): %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, 0) })
	_, err := Run(context.Background(), Options{Dir: dir, Databases: map[Role]*mysql.Config{Seafile: rootConfig("review3_unused")}})
	if err == nil {
		t.Fatal("Run into a read-only directory succeeded")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("something was written: %v", entries)
	}
	if !errors.Is(err, ErrNotStarted) {
		t.Errorf("Run into a read-only dump directory: %v\nnot ErrNotStarted, so the CLI exits 1, not 2, though nothing was done", err)
	}
}
