package fsutil

import (
	"errors"

	"golang.org/x/sys/unix"
)

// TryFlock takes an exclusive flock(2) on fd without waiting: unix.EWOULDBLOCK when
// another open file holds it. The kernel drops the lock when the process dies, so a
// kill -9 never leaves anything locked.
func TryFlock(fd int) error {
	return IgnoringEINTR(func() error { return unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB) })
}

// TryFlockShared takes a shared flock on fd without waiting: unix.EWOULDBLOCK while
// another open file holds it exclusively.
func TryFlockShared(fd int) error {
	return IgnoringEINTR(func() error { return unix.Flock(fd, unix.LOCK_SH|unix.LOCK_NB) })
}

// FlockUnsupported reports whether a flock failed because the filesystem has no such
// locks (some network filesystems): the caller then goes on unlocked, as before locks.
func FlockUnsupported(err error) bool {
	return errors.Is(err, unix.ENOLCK) || errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EINVAL)
}

// Unflock releases fd's flock; the caller then closes fd. Releasing is not left to the
// close: a child that another goroutine has forked and not yet exec'd holds a copy of
// every descriptor of the process, and a lock left to the close stays held through that
// copy until the child's exec, so a TryFlock right after it could fail.
func Unflock(fd int) {
	IgnoringEINTR(func() error { return unix.Flock(fd, unix.LOCK_UN) })
}
