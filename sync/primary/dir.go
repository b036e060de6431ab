package primary

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"seafbak/internal/fsutil"
	"seafbak/sync/object"
)

// Dir reads objects from a primary's seafile-data directory (a local path or a read-only
// mount). It never writes there.
type Dir struct {
	root string

	// held are the directories of the libraries being copied (storage/<kind>/<store
	// id>, from Hold to Release), open so that each object's open walks two path
	// components rather than the data dir's whole path (issue 10: a first backup of
	// small files opens two objects per file). A held directory that was removed or
	// replaced since is harmless for reading: every object read is verified by its
	// hash, and an object not found through it is looked up again by path before it is
	// called missing.
	held fsutil.Held[dirKey]
}

var _ Holder = (*Dir)(nil)

type dirKey struct {
	kind    object.Kind
	storeID string
}

var _ Objects = (*Dir)(nil)

// NewDir reads objects under root, the primary's seafile-data directory.
func NewDir(root string) (*Dir, error) {
	fi, err := os.Stat(filepath.Join(root, "storage"))
	if err != nil {
		return nil, fmt.Errorf("primary data dir %s: %w (expected a seafile-data directory with storage/ inside)", root, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("primary data dir %s: storage is not a directory", root)
	}
	return &Dir{root: root}, nil
}

func (d *Dir) path(kind object.Kind, storeID, id string) (string, error) {
	if err := object.CheckRepoID(storeID); err != nil {
		return "", err
	}
	if err := object.CheckID(id); err != nil {
		return "", err
	}
	return filepath.Join(d.libPath(kind, storeID), id[:2], id[2:]), nil
}

func (d *Dir) libPath(kind object.Kind, storeID string) string {
	return filepath.Join(d.root, "storage", string(kind), storeID)
}

// Hold holds the library's directories for the reads that follow, until Release. Each
// is opened only once fsutil.DefaultOpenAfter of its objects were opened by path, so a
// library of a few files costs nothing more; one that cannot be opened (a library
// without blocks has no such directory) is not held, and its objects are opened by
// path, which reports why they are missing.
func (d *Dir) Hold(lib Library) {
	for _, k := range libDirs(lib) {
		if object.ValidRepoID(k.storeID) {
			d.held.Hold(k, d.libPath(k.kind, k.storeID))
		}
	}
}

// Release ends a Hold.
func (d *Dir) Release(lib Library) {
	for _, k := range libDirs(lib) {
		d.held.Release(k)
	}
}

// libDirs are where a library's objects are: commits under its own id, the rest
// under its store's (a virtual library's is its origin's).
func libDirs(lib Library) []dirKey {
	return []dirKey{{object.KindCommit, lib.ID}, {object.KindFS, lib.StoreID}, {object.KindBlock, lib.StoreID}}
}

// openFlags open an object for reading without waiting: a FIFO planted in the data dir
// would block open(2) for good, beyond any context. Regular files ignore O_NONBLOCK; a
// FIFO then reads as empty, which its id does not hash to.
const openFlags = unix.O_RDONLY | unix.O_NONBLOCK

// open opens an object read-only through a bare descriptor: os.Open would add five
// fcntl/epoll_ctl calls per file to try the netpoller, which regular files never use
// (issue 10: a first backup opens two source files per small file).
func (d *Dir) open(kind object.Kind, storeID, id string) (*fsutil.RawFile, error) {
	p, err := d.path(kind, storeID, id)
	if err != nil {
		return nil, err
	}
	var fd int
	if h := d.held.Acquire(dirKey{kind, storeID}); h != nil {
		rel := p[len(p)-41:] // <id[:2]>/<id[2:]>
		err = fsutil.IgnoringEINTR(func() (err error) {
			fd, err = unix.Openat(h.FD, rel, openFlags|unix.O_CLOEXEC, 0)
			return err
		})
		d.held.Done(h)
		if err == nil {
			return &fsutil.RawFile{FD: fd, Path: p}, nil
		}
	}
	fd, err = fsutil.Open(p, openFlags, 0)
	if err == unix.ENOENT {
		// An unmounted or moved data dir looks like every object missing: only a
		// storage dir that is still there can say an object is not in it. So can only
		// storage/<kind>, often a mount of its own or a symlink to one.
		for _, dir := range []string{filepath.Join(d.root, "storage"), filepath.Join(d.root, "storage", string(kind))} {
			if _, serr := os.Stat(dir); serr != nil {
				return nil, &UnreachableError{What: "primary data dir", Err: fmt.Errorf("%s is gone (unmounted?): %w", dir, serr)}
			}
		}
		return nil, &NotFoundError{Kind: kindName(kind), ID: id}
	}
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: p, Err: err}
	}
	return &fsutil.RawFile{FD: fd, Path: p}, nil
}

// readLimited reads a small object, refusing more than limit bytes.
func (d *Dir) readLimited(kind object.Kind, storeID, id string, limit int64) ([]byte, error) {
	f, err := d.open(kind, storeID, id)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s %s: %w: larger than %d bytes", kindName(kind), id, object.ErrInvalid, limit)
	}
	return data, nil
}

func (d *Dir) Commit(_ context.Context, lib Library, id string) ([]byte, error) {
	return d.readLimited(object.KindCommit, lib.ID, id, object.MaxStoredSize(object.KindCommit))
}

func (d *Dir) FSObjects(ctx context.Context, lib Library, ids []string, fn func(string, []byte, error) error) error {
	for _, id := range ids {
		if err := ctx.Err(); err != nil {
			return err
		}
		data, err := d.readLimited(object.KindFS, lib.StoreID, id, object.MaxStoredSize(object.KindFS))
		if err := fn(id, data, err); err != nil {
			return err
		}
	}
	return nil
}

func (d *Dir) Block(_ context.Context, lib Library, id string) (io.ReadCloser, error) {
	return d.open(object.KindBlock, lib.StoreID, id)
}

func kindName(k object.Kind) string {
	switch k {
	case object.KindCommit:
		return "commit"
	case object.KindFS:
		return "fs object"
	case object.KindBlock:
		return "block"
	}
	return string(k)
}
