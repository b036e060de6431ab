// Package fsutil holds seafbak's durable-write primitives: writing a small file
// atomically, fsyncing a directory, syncfs, and a group commit (Group) that lets many
// writers share one flush. Records, markers, manifests and the backup store's objects
// go through them, so what "durable" means (data fsynced before the rename, the
// directory fsynced after it) is written once.
package fsutil

import (
	"os"
	"path/filepath"
)

// WriteFileAtomic writes data to path through a temp file in the same directory (same
// filesystem, so the rename is atomic): write, fsync, rename, fsync the directory.
// Readers see the old file or the new one, never a mix, and the new one survives a
// crash once this returns. On error the temp file is removed and the old file, if any,
// is untouched. The file gets exactly perm (no umask): CreateTemp's 0600 is changed
// before the rename, so the final name never has other bits.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	return writeAtomic(path, data, perm, (*os.File).Sync, SyncDir)
}

// WriteFileAtomicFlushed is WriteFileAtomic with its two flushes given: syncData makes
// the temp file's data durable (given its name) before the rename, syncDir the directory
// after it. The order stays; a caller that writes many files at once
// shares the flushes between them (state.Dir.Save, through a Group).
func WriteFileAtomicFlushed(path string, data []byte, perm os.FileMode, syncData, syncDir func(name string) error) error {
	return writeAtomic(path, data, perm, func(f *os.File) error { return syncData(f.Name()) }, syncDir)
}

// writeAtomic writes through a temp file: written, syncData, renamed, syncDir.
func writeAtomic(path string, data []byte, perm os.FileMode, syncData func(*os.File) error, syncDir func(string) error) error {
	dir := filepath.Dir(path)
	// A dot name keeps the temp file out of listings that skip hidden files (the state's
	// All reads only *.json), and the target's name in it tells a stray one's origin.
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after a successful rename
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if err := syncData(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(dir)
}

// SyncDir fsyncs a directory, making the entries created, renamed or removed in it
// survive a crash.
func SyncDir(dir string) error { return syncName(dir) }

// SyncFile fsyncs a file by name, for files written and closed earlier without fsync
// (the store's batch durability flushes its objects this way).
func SyncFile(path string) error { return syncName(path) }

// syncName fsyncs whatever path names: on Linux a read-only descriptor is enough to
// fsync a file or a directory.
func syncName(path string) error {
	d, err := os.Open(path)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// SyncDirIn is SyncDir for a directory named inside root (os.Root: the name cannot
// escape it, even through a symlink an attacker planted).
func SyncDirIn(root *os.Root, name string) error {
	d, err := root.Open(name)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
