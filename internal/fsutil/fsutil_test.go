package fsutil

import (
	"bytes"
	"errors"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"testing"
)

// entries lists dir's names, so a test can tell a stray temp file.
func entries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "rec.json")
	for _, data := range [][]byte{[]byte("first\n"), []byte("second, longer\n"), {}} {
		if err := WriteFileAtomic(p, data, 0o640); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("content %q, want %q", got, data)
		}
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o640 {
			t.Fatalf("mode %v, want 0640", fi.Mode().Perm())
		}
		if names := entries(t, dir); len(names) != 1 || names[0] != "rec.json" {
			t.Fatalf("dir holds %q, want only rec.json", names)
		}
	}
}

// A write that fails after the temp file exists (here: the file size limit, EFBIG)
// must leave the old content and no temp file.
func TestWriteFileAtomicFailedWriteKeepsOld(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "rec.json")
	if err := WriteFileAtomic(p, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}

	// RLIMIT_FSIZE is process-wide: nothing else in this package's tests writes files
	// while it is lowered, and it is restored before the test returns.
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
		t.Skip("getrlimit:", err)
	}
	signal.Ignore(syscall.SIGXFSZ) // else the kernel kills the process instead of EFBIG
	defer signal.Reset(syscall.SIGXFSZ)
	low := lim
	low.Cur = 16
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &low); err != nil {
		t.Skip("setrlimit:", err)
	}
	err := WriteFileAtomic(p, bytes.Repeat([]byte("x"), 1<<20), 0o600)
	if rerr := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &lim); rerr != nil {
		t.Fatal("restoring RLIMIT_FSIZE:", rerr)
	}
	if !errors.Is(err, syscall.EFBIG) {
		t.Fatalf("err = %v, want EFBIG", err)
	}

	got, rerr := os.ReadFile(p)
	if rerr != nil {
		t.Fatal(rerr)
	}
	if string(got) != "old" {
		t.Fatalf("content %q after a failed write, want the old %q", got, "old")
	}
	if names := entries(t, dir); len(names) != 1 || names[0] != "rec.json" {
		t.Fatalf("dir holds %q after a failed write, want only rec.json (no temp file)", names)
	}
}

// A rename that fails (a directory is in the way) leaves that directory as it was and
// no temp file.
func TestWriteFileAtomicFailedRename(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "rec.json")
	if err := os.Mkdir(p, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(p, "inside"), []byte("kept"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WriteFileAtomic(p, []byte("new"), 0o600); err == nil {
		t.Fatal("WriteFileAtomic over a directory succeeded")
	}
	if names := entries(t, dir); len(names) != 1 || names[0] != "rec.json" {
		t.Fatalf("dir holds %q, want only rec.json (no temp file)", names)
	}
	if got, err := os.ReadFile(filepath.Join(p, "inside")); err != nil || string(got) != "kept" {
		t.Fatalf("the directory in the way changed: %q, %v", got, err)
	}
}

func TestWriteFileAtomicMissingDir(t *testing.T) {
	p := filepath.Join(t.TempDir(), "no", "rec.json")
	if err := WriteFileAtomic(p, []byte("x"), 0o600); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("err = %v, want ErrNotExist", err)
	}
}

func TestSyncDir(t *testing.T) {
	dir := t.TempDir()
	if err := SyncDir(dir); err != nil {
		t.Fatal(err)
	}
	if err := SyncDir(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("err = %v, want ErrNotExist", err)
	}
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	if err := SyncDirIn(root, "sub"); err != nil {
		t.Fatal(err)
	}
	if err := SyncDirIn(root, "../outside"); err == nil {
		t.Fatal("SyncDirIn escaped its root")
	}
}

func TestSyncFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := SyncFile(p); err != nil {
		t.Fatal(err)
	}
	if err := SyncFile(p + ".missing"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("err = %v, want ErrNotExist", err)
	}
}
