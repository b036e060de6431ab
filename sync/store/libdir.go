package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"golang.org/x/sys/unix"

	"seafbak/internal/fsutil"
	"seafbak/sync/object"
)

// A first backup's sync holds its library's directories (storage/<kind>/<store id>)
// from Preload to Forget: each object's stat, temp file and link then walk two path
// components from the directory (<id[:2]>/<id[2:]>) rather than the store's whole path
// (fsutil.Held).
//
// A descriptor outlives its path: were the directory removed or replaced meanwhile (an
// admin moving the store under a running watch), objects written through it would be
// lost while the sync believed them in place. So each held directory is checked against
// its path at every Sync, before the engine moves any metadata, and when it is closed;
// a mismatch fails that Sync and every later one, as a failed flush does.

type libKey struct {
	kind    object.Kind
	storeID string
}

// ErrLibraryDirMoved is a library directory of the store that was removed or replaced
// while a sync held it, or the store's own directory, moved while the process that
// opened the store ran. It comes wrapped in ErrFlushFailed, and like it fails every
// later Sync of the same FS: objects this process wrote through it are not in the store.
var ErrLibraryDirMoved = errors.New("removed or replaced while seafbak wrote into it")

func (s *FS) initHeld() {
	s.held = fsutil.Held[libKey]{
		// Made if needed: by then the library has objects to write, or all of them are
		// there already.
		Open: func(path string) (int, error) {
			if err := s.ensureDir(path); err != nil {
				return -1, err
			}
			return fsutil.OpenDir(path)
		},
		// A failed last check is kept for Sync.
		Close: func(d *fsutil.HeldDir) {
			if err := checkHeld(d); err != nil {
				s.failed(err)
			}
			unix.Close(d.FD)
		},
	}
}

// Preload holds the library's directory of kind for the object calls of the sync that
// follows, until Forget. It changes no answer, only how objects are reached.
func (s *FS) Preload(_ context.Context, kind object.Kind, storeID string) error {
	if !kind.Valid() {
		return fmt.Errorf("backup store: unknown object kind %q", kind)
	}
	if err := object.CheckRepoID(storeID); err != nil {
		return fmt.Errorf("backup store: %w", err)
	}
	s.held.Hold(libKey{kind, storeID}, filepath.Join(s.storage, string(kind), storeID))
	return nil
}

// Forget ends a Preload. The directory is closed, once no call uses it, after a last
// check that it is still at its path.
func (s *FS) Forget(kind object.Kind, storeID string) {
	s.held.Release(libKey{kind, storeID})
}

var _ Preloader = (*FS)(nil)

// heldDir is the held directory of kind and storeID if a sync holds it and it is open,
// for one call until s.held.Done.
func (s *FS) heldDir(kind object.Kind, storeID string) *fsutil.HeldDir {
	return s.held.Acquire(libKey{kind, storeID})
}

// checkHeldDirs checks the store's root and every open held directory against their
// paths, after any failed flush or check before: Sync calls it before reporting objects
// durable. The root is held for syncfs: moved (to a new disk, under a running watch),
// it would flush a filesystem the objects no longer go to.
func (s *FS) checkHeldDirs() error {
	if err := s.flushErr.Load(); err != nil {
		return *err
	}
	if err := sameDir(int(s.rootDir.Fd()), s.root); err != nil {
		return s.failed(err)
	}
	return s.held.EachOpen(func(d *fsutil.HeldDir) error {
		if err := checkHeld(d); err != nil {
			return s.failed(err)
		}
		return nil
	})
}

// checkHeld reports whether d's descriptor is still the directory at d.Path.
func checkHeld(d *fsutil.HeldDir) error { return sameDir(d.FD, d.Path) }

// sameDir fails unless descriptor fd is still the directory at path.
func sameDir(fd int, path string) error {
	same, err := fsutil.SameDir(fd, path)
	if err != nil {
		return fmt.Errorf("backup store: %s: %w", path, err)
	}
	if !same {
		return fmt.Errorf("backup store: %s: %w", path, ErrLibraryDirMoved)
	}
	return nil
}

// ensureSubdir makes d's subdirectory sub (two hex digits) if it is not known to exist.
func (s *FS) ensureSubdir(d *fsutil.HeldDir, sub string) error {
	i := hexByte(sub)
	if d.HasSubdir(i) {
		return nil
	}
	err := fsutil.IgnoringEINTR(func() error { return unix.Mkdirat(d.FD, sub, 0o755) })
	switch {
	case err == nil:
		// Its entry in the library's directory must survive a crash too.
		if err := s.entryAdded(d.Path); err != nil {
			return err
		}
	case err != unix.EEXIST:
		return fmt.Errorf("mkdir %s: %w", filepath.Join(d.Path, sub), err)
	}
	d.SetSubdir(i)
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
