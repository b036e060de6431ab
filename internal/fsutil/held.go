package fsutil

import (
	"cmp"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Held keeps directories open for whoever holds them (a sync copying one library), so
// that each call below a directory walks two path components from it rather than a
// whole path (issue 10: those walks were about a tenth of a first backup's CPU). A
// directory is opened only at its OpenAfter-th use, so a holder that reaches a few
// objects pays nothing for it, and closed once no holder and no call uses it: never
// while a call may, since a reused descriptor number would point that call at another
// directory. The zero value is ready to use.
type Held[K comparable] struct {
	// OpenAfter is how many uses a directory waits for before it is opened
	// (DefaultOpenAfter if 0).
	OpenAfter int
	// Open opens a directory when it is first used enough (OpenDir if nil); a failure
	// leaves it unopened for good, and its users go by path.
	Open func(path string) (fd int, err error)
	// Close closes a directory no one uses any more (unix.Close if nil). It is called
	// without Held's lock.
	Close func(d *HeldDir)

	mu   sync.Mutex
	dirs map[K]*HeldDir
}

// DefaultOpenAfter is Held's OpenAfter unless set: a library of a few files (a scan's
// thousands of new ones) would spend more on opening, checking and closing its
// directories than their walks cost (issue 10: the first scan of 10 000 libraries took
// 3-5% more CPU with every directory opened at once).
const DefaultOpenAfter = 64

// HeldDir is one held directory.
type HeldDir struct {
	Path string
	FD   int // -1 until opened
	// Subdirs has bit i set once a user knows its subdirectory number i exists (Seafile
	// layouts have 256, named by two hex digits).
	Subdirs [4]atomic.Uint64

	holds, busy, uses int
	openFailed        bool
}

// HasSubdir, SetSubdir and ClearSubdir read, set and clear bit i of Subdirs.
func (d *HeldDir) HasSubdir(i byte) bool { return d.Subdirs[i/64].Load()&(1<<(i%64)) != 0 }
func (d *HeldDir) SetSubdir(i byte)      { d.Subdirs[i/64].Or(1 << (i % 64)) }
func (d *HeldDir) ClearSubdir(i byte)    { d.Subdirs[i/64].And(^uint64(1 << (i % 64))) }

// Hold holds the directory at path under key k until Release.
func (h *Held[K]) Hold(k K, path string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if d := h.dirs[k]; d != nil {
		d.holds++
		return
	}
	if h.dirs == nil {
		h.dirs = map[K]*HeldDir{}
	}
	h.dirs[k] = &HeldDir{Path: path, FD: -1, holds: 1}
}

// Release ends a Hold of k; without one, it does nothing.
func (h *Held[K]) Release(k K) {
	h.mu.Lock()
	d := h.dirs[k]
	if d == nil {
		h.mu.Unlock()
		return
	}
	d.holds--
	closeNow := d.holds == 0 && d.busy == 0
	if d.holds == 0 {
		delete(h.dirs, k)
	}
	h.mu.Unlock()
	if closeNow {
		h.close(d)
	}
}

// Acquire returns k's directory if it is held and open (opening it if it is now used
// enough), for one call until Done; nil if the call must go by path.
func (h *Held[K]) Acquire(k K) *HeldDir {
	h.mu.Lock()
	defer h.mu.Unlock()
	d := h.dirs[k]
	if d == nil {
		return nil
	}
	if d.FD < 0 {
		if d.openFailed {
			return nil
		}
		if d.uses++; d.uses < cmp.Or(h.OpenAfter, DefaultOpenAfter) {
			return nil
		}
		open := h.Open
		if open == nil {
			open = OpenDir
		}
		fd, err := open(d.Path)
		if err != nil {
			d.openFailed = true
			return nil
		}
		d.FD = fd
	}
	d.busy++
	return d
}

// Done ends a call that Acquire let use d.
func (h *Held[K]) Done(d *HeldDir) {
	h.mu.Lock()
	d.busy--
	closeNow := d.busy == 0 && d.holds == 0
	h.mu.Unlock()
	if closeNow {
		h.close(d)
	}
}

// EachOpen calls fn for every held directory that is open, stopping at its first error.
func (h *Held[K]) EachOpen(fn func(d *HeldDir) error) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, d := range h.dirs {
		if d.FD >= 0 {
			if err := fn(d); err != nil {
				return err
			}
		}
	}
	return nil
}

// Len is how many directories are held, open or not.
func (h *Held[K]) Len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.dirs)
}

func (h *Held[K]) close(d *HeldDir) {
	if d.FD < 0 {
		return
	}
	if h.Close != nil {
		h.Close(d)
		return
	}
	unix.Close(d.FD)
}

// OpenDir opens a directory to reach what is below it (openat, fstatat, linkat).
func OpenDir(path string) (fd int, err error) {
	return Open(path, unix.O_RDONLY|unix.O_DIRECTORY, 0)
}

// SameDir reports whether descriptor fd is still the directory at path: false when path
// is gone, or names another directory (moved, replaced, another filesystem mounted
// there). A descriptor outlives its path, so whatever holds one (a library directory, a
// store's or a state's root) asks this before trusting that writes by path and flushes
// through the descriptor reach the same place.
func SameDir(fd int, path string) (bool, error) {
	var held, named unix.Stat_t
	if err := IgnoringEINTR(func() error { return unix.Fstat(fd, &held) }); err != nil {
		return false, err
	}
	err := IgnoringEINTR(func() error { return unix.Stat(path, &named) })
	if err == unix.ENOENT {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return named.Dev == held.Dev && named.Ino == held.Ino, nil
}
