package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"seafbak/internal/fsutil"
	"seafbak/sync/object"
)

// A libDir is one library's directory of one kind of object (storage/<kind>/<store id>),
// held open while a sync copies into it (Preload to Forget). Each object's stat, temp
// file and link then walk two path components from it (<id[:2]>/<id[2:]>) rather than
// the store's whole path: on a first backup those walks were about a tenth of seafbak's
// CPU (issue 10, perf of the 1 GiB library over HTTP).
//
// A descriptor outlives its path: were the directory removed or replaced meanwhile (an
// admin moving the store under a running watch), objects written through it would be
// lost while the sync believed them in place. So each held directory is checked against
// its path at every Sync, before the engine moves any metadata, and when it is closed;
// a mismatch fails that Sync and every later one, as a failed flush does.
type libDir struct {
	path string
	fd   int
	// held counts Preloads not yet forgotten, busy the calls using fd right now (all
	// under FS.dirsMu). fd is closed when both are zero, never while a call may use it:
	// a reused descriptor number would put objects in another directory. It is -1
	// until opened, after byPath calls (see Preload); if the open fails, for good.
	held, busy int
	byPath     int
	openFailed bool
	// made has bit i set once subdirectory <hex of i> is known to exist.
	made [4]atomic.Uint64
}

type libKey struct {
	kind    object.Kind
	storeID string
}

// ErrLibraryDirMoved is a library directory of the store that was removed or replaced
// while a sync held it. It comes wrapped in ErrFlushFailed, and like it fails every
// later Sync of the same FS: objects this process wrote through it are not in the store.
var ErrLibraryDirMoved = errors.New("removed or replaced while seafbak wrote into it")

// Preload holds the library's directory of kind for the object calls of the sync that
// follows, until Forget. It changes no answer, only how objects are reached. The
// directory is opened (made if needed) only once the sync has reached openHeldAfter of
// its objects by path: a library of a few files (a scan's thousands of new ones) would
// spend more on opening, checking and closing than its walks cost.
func (s *FS) Preload(_ context.Context, kind object.Kind, storeID string) error {
	if !kind.Valid() {
		return fmt.Errorf("backup store: unknown object kind %q", kind)
	}
	if err := object.CheckRepoID(storeID); err != nil {
		return fmt.Errorf("backup store: %w", err)
	}
	k := libKey{kind, storeID}
	s.dirsMu.Lock()
	defer s.dirsMu.Unlock()
	if d := s.dirs[k]; d != nil {
		d.held++
		return nil
	}
	if s.dirs == nil {
		s.dirs = map[libKey]*libDir{}
	}
	s.dirs[k] = &libDir{path: filepath.Join(s.root, "storage", string(kind), storeID), fd: -1, held: 1}
	return nil
}

// openHeldAfter is how many object calls by path a held directory waits for before it
// is opened (FS.openHeldAfter, which tests lower).
const openHeldAfter = 64

// Forget ends a Preload. The directory is closed, once no call uses it, after a last
// check that it is still at its path.
func (s *FS) Forget(kind object.Kind, storeID string) {
	k := libKey{kind, storeID}
	s.dirsMu.Lock()
	d := s.dirs[k]
	if d == nil {
		s.dirsMu.Unlock()
		return
	}
	d.held--
	if d.held > 0 {
		s.dirsMu.Unlock()
		return
	}
	delete(s.dirs, k)
	closeNow := d.busy == 0
	s.dirsMu.Unlock()
	if closeNow {
		s.closeDir(d)
	}
}

var _ Preloader = (*FS)(nil)

// heldDir is the held directory of kind and storeID, if a sync holds it and it is
// open, marked busy until releaseDir.
func (s *FS) heldDir(kind object.Kind, storeID string) *libDir {
	s.dirsMu.Lock()
	defer s.dirsMu.Unlock()
	d := s.dirs[libKey{kind, storeID}]
	if d == nil || d.fd < 0 && !s.openHeld(d) {
		return nil
	}
	d.busy++
	return d
}

// openHeld opens d once enough calls went by path (under dirsMu).
func (s *FS) openHeld(d *libDir) bool {
	if d.openFailed {
		return false
	}
	if d.byPath++; d.byPath < s.openHeldAfter {
		return false
	}
	err := s.ensureDir(d.path)
	if err == nil {
		err = fsutil.IgnoringEINTR(func() (err error) {
			d.fd, err = unix.Open(d.path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
			return err
		})
	}
	if err != nil {
		// By path, then, as without Preload; the calls report what is wrong.
		d.fd, d.openFailed = -1, true
		return false
	}
	return true
}

func (s *FS) releaseDir(d *libDir) {
	s.dirsMu.Lock()
	d.busy--
	closeNow := d.busy == 0 && d.held == 0
	s.dirsMu.Unlock()
	if closeNow {
		s.closeDir(d)
	}
}

// closeDir checks d one last time and closes it; a failed check is kept for Sync.
func (s *FS) closeDir(d *libDir) {
	if d.fd < 0 {
		return
	}
	if err := d.check(); err != nil {
		s.failed(err)
	}
	unix.Close(d.fd)
}

// checkHeldDirs checks every held directory against its path, after any failed flush
// or check before: Sync calls it before reporting objects durable.
func (s *FS) checkHeldDirs() error {
	if err := s.flushErr.Load(); err != nil {
		return *err
	}
	s.dirsMu.Lock()
	defer s.dirsMu.Unlock()
	for _, d := range s.dirs {
		if d.fd < 0 {
			continue
		}
		if err := d.check(); err != nil {
			return s.failed(err)
		}
	}
	return nil
}

// check reports whether d's descriptor is still the directory at d.path.
func (d *libDir) check() error {
	var held, named unix.Stat_t
	if err := fsutil.IgnoringEINTR(func() error { return unix.Fstat(d.fd, &held) }); err != nil {
		return fmt.Errorf("backup store: %s: %w", d.path, err)
	}
	err := fsutil.IgnoringEINTR(func() error { return unix.Stat(d.path, &named) })
	if err == unix.ENOENT || err == nil && (named.Dev != held.Dev || named.Ino != held.Ino) {
		return fmt.Errorf("backup store: %s: %w", d.path, ErrLibraryDirMoved)
	}
	if err != nil {
		return fmt.Errorf("backup store: %s: %w", d.path, err)
	}
	return nil
}

// ensureSubdir makes d's subdirectory sub (two hex digits) if it is not known to exist.
func (s *FS) ensureSubdir(d *libDir, sub string) error {
	i := hexByte(sub)
	word, bit := &d.made[i/64], uint64(1)<<(i%64)
	if word.Load()&bit != 0 {
		return nil
	}
	err := fsutil.IgnoringEINTR(func() error { return unix.Mkdirat(d.fd, sub, 0o755) })
	switch {
	case err == nil:
		// Its entry in the library's directory must survive a crash too.
		if s.durability == PerObject {
			if err := fsutil.SyncDir(d.path); err != nil {
				return err
			}
		} else {
			s.mu.Lock()
			s.pendingDirs[d.path] = struct{}{}
			s.mu.Unlock()
		}
	case err != unix.EEXIST:
		return fmt.Errorf("mkdir %s: %w", filepath.Join(d.path, sub), err)
	}
	word.Or(bit)
	return nil
}

// hexByte is the value of two checked lower-case hex digits.
func hexByte(s string) byte {
	v := func(c byte) byte {
		if c >= 'a' {
			return c - 'a' + 10
		}
		return c - '0'
	}
	return v(s[0])<<4 | v(s[1])
}
