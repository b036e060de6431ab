// Package fsutil holds seafbak's durable-write primitives: writing a small file
// atomically, fsyncing a directory, syncfs, and a group commit (Group) that lets many
// writers share one flush. Records, markers, manifests and the backup store's objects
// go through them, so what "durable" means (data fsynced before the rename, the
// directory fsynced after it) is written once.
package fsutil

import (
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"
)

// WriteFileAtomic writes data to path through a temp file in the same directory (same
// filesystem, so the rename is atomic): write, fsync, rename, fsync the directory.
// Readers see the old file or the new one, never a mix, and the new one survives a
// crash once this returns. On error the temp file is removed and the old file, if any,
// is untouched. The file gets exactly perm (no umask): the temp file's 0600 is changed
// before the rename, so the final name never has other bits.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	return writeAtomic(path, data, perm, func(fd int, tmp string) error {
		if err := IgnoringEINTR(func() error { return unix.Fsync(fd) }); err != nil {
			return &os.PathError{Op: "sync", Path: tmp, Err: err}
		}
		return nil
	}, SyncDir)
}

// WriteFileAtomicFlushed is WriteFileAtomic with its two flushes given: syncData makes
// the temp file's data durable (given its name) before the rename, syncDir the directory
// after it. The order stays; a caller that writes many files at once
// shares the flushes between them (state.Dir.Save, through a Group).
func WriteFileAtomicFlushed(path string, data []byte, perm os.FileMode, syncData, syncDir func(name string) error) error {
	return writeAtomic(path, data, perm, func(_ int, tmp string) error { return syncData(tmp) }, syncDir)
}

// writeAtomic writes through a temp file: written, syncData, renamed, syncDir. It works
// on the bare descriptor: an *os.File would add the netpoller's fcntl and epoll_ctl
// calls to each of the thousands of records a first scan writes (issue 10).
func writeAtomic(path string, data []byte, perm os.FileMode, syncData func(fd int, tmp string) error, syncDir func(string) error) (err error) {
	dir := filepath.Dir(path)
	// A dot name keeps the temp file out of listings that skip hidden files (the state's
	// All reads only *.json), and the target's name in it tells a stray one's origin.
	tmp, fd, err := createTemp(dir, "."+filepath.Base(path)+".")
	if err != nil {
		return err
	}
	closed := false
	defer func() {
		if !closed {
			unix.Close(fd)
		}
		if err != nil {
			unix.Unlink(tmp)
		}
	}()
	for b := data; len(b) > 0; {
		n, werr := unix.Write(fd, b)
		if werr == unix.EINTR {
			continue
		}
		if werr != nil {
			return &os.PathError{Op: "write", Path: tmp, Err: werr}
		}
		b = b[n:]
	}
	if err := IgnoringEINTR(func() error { return unix.Fchmod(fd, uint32(perm.Perm())) }); err != nil {
		return &os.PathError{Op: "chmod", Path: tmp, Err: err}
	}
	if err := syncData(fd, tmp); err != nil {
		return err
	}
	closed = true
	// close(2) must not be retried on EINTR: the descriptor is gone either way.
	if err := unix.Close(fd); err != nil {
		return &os.PathError{Op: "close", Path: tmp, Err: err}
	}
	if err := IgnoringEINTR(func() error { return unix.Rename(tmp, path) }); err != nil {
		return &os.LinkError{Op: "rename", Old: tmp, New: path, Err: err}
	}
	return syncDir(dir)
}

// createTemp creates a new file prefix+<random> in dir for writing, mode 0600, as
// os.CreateTemp does but returning the bare descriptor. O_EXCL guarantees the file is
// this caller's alone; a taken name is retried with another.
func createTemp(dir, prefix string) (name string, fd int, err error) {
	for try := 0; ; try++ {
		name = filepath.Join(dir, prefix+strconv.FormatUint(rand.Uint64(), 36))
		fd, err = unix.Open(name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o600)
		switch {
		case err == nil:
			return name, fd, nil
		case err == unix.EINTR || err == unix.EEXIST && try < 100:
			continue
		}
		return "", -1, &os.PathError{Op: "createtemp", Path: filepath.Join(dir, prefix+"*"), Err: err}
	}
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
	fd, err := Open(path, unix.O_RDONLY, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	if err := IgnoringEINTR(func() error { return unix.Fsync(fd) }); err != nil {
		return &os.PathError{Op: "sync", Path: path, Err: err}
	}
	return nil
}

// IgnoringEINTR runs f again while it fails with EINTR: the bare syscalls seafbak makes
// on files (here and in the backup store) are not retried by the runtime as os.File's are.
func IgnoringEINTR(f func() error) error {
	for {
		if err := f(); err != unix.EINTR {
			return err
		}
	}
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

// SetMtime sets f's access and modification times to sec seconds since 1970 (a Seafile
// dirent's mtime), whatever int64 it is: the filesystem keeps what it can hold.
// os.Chtimes goes through time.UnixNano, which wraps outside the years 1678–2262, so a
// Windows zero time (1601) came back as 2185.
func SetMtime(f *os.File, sec int64) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return &fs.PathError{Op: "utimensat", Path: f.Name(), Err: err}
	}
	times := [2]unix.Timespec{{Sec: sec}, {Sec: sec}}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = IgnoringEINTR(func() error {
			// utimensat(fd, NULL, times, 0) is futimens(2): x/sys/unix has no call for it.
			_, _, errno := unix.Syscall6(unix.SYS_UTIMENSAT, fd, 0, uintptr(unsafe.Pointer(&times)), 0, 0, 0)
			if errno != 0 {
				return errno
			}
			return nil
		})
	}); err != nil {
		return &fs.PathError{Op: "utimensat", Path: f.Name(), Err: err}
	}
	if serr != nil {
		return &fs.PathError{Op: "utimensat", Path: f.Name(), Err: serr}
	}
	return nil
}
