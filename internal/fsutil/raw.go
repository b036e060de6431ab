package fsutil

import (
	"io"
	"io/fs"

	"golang.org/x/sys/unix"
)

// Open opens path as a bare descriptor, close-on-exec, retried on EINTR. The error is
// the bare errno, for callers that tell ENOENT apart. seafbak opens regular files and
// directories this way where it opens thousands of them: os.Open would add the
// netpoller's fcntl and epoll_ctl calls, which neither ever uses (issue 10).
func Open(path string, flag int, perm uint32) (fd int, err error) {
	err = IgnoringEINTR(func() error {
		fd, err = unix.Open(path, flag|unix.O_CLOEXEC, perm)
		return err
	})
	return fd, err
}

// RawFile reads a file through a bare descriptor (see Open).
type RawFile struct {
	FD   int
	Path string // for errors
}

func (f *RawFile) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		n, err := unix.Read(f.FD, p)
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return 0, &fs.PathError{Op: "read", Path: f.Path, Err: err}
		case n == 0:
			return 0, io.EOF
		}
		return n, nil
	}
}

// Close closes the descriptor once; later calls do nothing.
func (f *RawFile) Close() error {
	if f.FD < 0 {
		return nil
	}
	err := unix.Close(f.FD)
	f.FD = -1
	return err
}
