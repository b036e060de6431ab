package store

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"
)

// storage/blocks mounted apart (and storage/fs a symlink to another filesystem): a
// batch flush reaches them too. One syncfs of the root's filesystem flushed nothing of
// theirs, yet Sync returned and the heads moved (found by review: 0 sectors written to
// the blocks' device during Sync).
func TestFSStoreFlushesStorageOnOtherFilesystems(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounts tmpfs: needs root")
	}
	root := t.TempDir()
	blocks := filepath.Join(root, "storage", "blocks")
	elsewhere := filepath.Join(t.TempDir(), "fsdisk")
	for _, d := range []string{blocks, elsewhere} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := unix.Mount("tmpfs", d, "tmpfs", 0, "size=16m"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { unix.Unmount(d, unix.MNT_DETACH) })
	}
	if err := os.Symlink(elsewhere, filepath.Join(root, "storage", "fs")); err != nil {
		t.Fatal(err)
	}
	s, err := NewFS(root, Batch)
	if err != nil {
		t.Fatal(err)
	}
	got := FlushedFilesystems(s)
	want := []string{root, filepath.Join(root, "storage", "fs"), blocks}
	if !slices.Equal(got, want) {
		t.Fatalf("flushes through %q, want %q", got, want)
	}
	var calls atomic.Int32
	HookSyncfs(s, func() error { calls.Add(1); return nil })
	putBlocks(t, s, syncfsAbove+1, 10, "x") // enough for one syncfs rather than fsyncs
	if err := s.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := calls.Load(); n != 3 {
		t.Errorf("%d filesystems flushed by Sync, want 3", n)
	}

	// All on one filesystem: one syncfs, as before.
	one, err := NewFS(t.TempDir(), Batch)
	if err != nil {
		t.Fatal(err)
	}
	if got := FlushedFilesystems(one); len(got) != 1 {
		t.Errorf("one filesystem flushed through %q", got)
	}
}
