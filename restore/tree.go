// Package restore gives backed-up data back, reading the backup store alone:
//
//   - Verify checks that what the state says is backed up is in the store and sound: every
//     commit of every library's full history, every fs object, every block (or a sample),
//     each object read once however many commits and libraries share it;
//   - RestoreLibrary writes a library's files as they were at a commit (by id, by time,
//     or the backed-up head) into a directory, verifying every block;
//   - History lists the commits of a library's backed-up history, newest first;
//   - Walk and CopyFile read one tree, for tests and tools.
//
// Nothing here writes to the store or the state. Whatever is read is verified (fs objects
// and blocks against their ids, commits against the id and library asked for, names
// against path escapes), so a damaged or forged store yields errors, never wrong files or
// files outside the target directory.
package restore

import (
	"context"
	"fmt"
	"io"
	"path"
	"sort"

	"seafbak/sync/object"
	"seafbak/sync/store"
)

// Entry is one file or directory of a library's tree.
type Entry struct {
	Path   string // slash-separated, relative, no leading slash
	Dir    bool
	Size   int64
	Mtime  int64
	FileID string // fs id of a file (EmptyID for an empty file)
	Blocks []string
}

// Library names where a library's objects are in the store: commits under RepoID, fs
// objects and blocks under StoreID (the origin's id for a virtual library). It is
// object.Keys, so every read asks lib.For(kind) rather than picking an id by hand.
type Library = object.Keys

// Commit reads and checks one commit of a library from the store.
func Commit(ctx context.Context, s store.Store, lib Library, id string) (*object.Commit, error) {
	raw, err := s.Get(ctx, object.KindCommit, lib.For(object.KindCommit), id)
	if err != nil {
		return nil, fmt.Errorf("commit %s: %w", id, err)
	}
	return object.ParseCommit(raw, id, lib.RepoID)
}

// Walk calls fn for every entry of the tree rooted at rootID, parents before children,
// entries of a dir in name order. Every fs object read is verified and every name is
// checked, so a damaged store can never make a path escape the tree.
func Walk(ctx context.Context, s store.Store, lib Library, rootID string, fn func(Entry) error) error {
	return walkDir(ctx, s, lib, rootID, "", fn)
}

func walkDir(ctx context.Context, s store.Store, lib Library, id, dir string, fn func(Entry) error) error {
	if id == object.EmptyID {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	fs, err := readFS(ctx, s, lib, id, dir)
	if err != nil {
		return err
	}
	if !fs.IsDir() {
		return fmt.Errorf("%s/: fs object %s is a file, not a dir", dir, id)
	}
	ents := append([]object.Dirent(nil), fs.Dirents...)
	sortByName(ents)
	for _, d := range ents {
		p := path.Join(dir, d.Name)
		if d.IsDir() {
			if err := fn(Entry{Path: p, Dir: true, Mtime: d.Mtime}); err != nil {
				return err
			}
			if err := walkDir(ctx, s, lib, d.ID, p, fn); err != nil {
				return err
			}
			continue
		}
		e := Entry{Path: p, Mtime: d.Mtime, FileID: d.ID}
		if d.ID != object.EmptyID {
			f, err := readFS(ctx, s, lib, d.ID, p)
			if err != nil {
				return err
			}
			if f.IsDir() {
				return fmt.Errorf("%s: fs object %s is a dir, not a file", p, d.ID)
			}
			e.Size, e.Blocks = f.Size, f.BlockIDs
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	return nil
}

func readFS(ctx context.Context, s store.Store, lib Library, id, where string) (*object.FS, error) {
	raw, err := s.Get(ctx, object.KindFS, lib.For(object.KindFS), id)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", displayPath(where), err)
	}
	fs, err := object.ParseFS(id, raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", displayPath(where), err)
	}
	return fs, nil
}

// CopyFile streams a file's blocks to w, verifying each.
func CopyFile(ctx context.Context, s store.Store, lib Library, e Entry, w io.Writer) error {
	var n int64
	for _, b := range e.Blocks {
		rc, err := s.Open(ctx, object.KindBlock, lib.For(object.KindBlock), b)
		if err != nil {
			return fmt.Errorf("%s: %w", e.Path, err)
		}
		h := object.NewBlockHasher(b)
		_, err = io.Copy(io.MultiWriter(w, h), rc)
		rc.Close()
		if err == nil {
			err = h.Check()
		}
		if err != nil {
			return fmt.Errorf("%s: %w", e.Path, err)
		}
		n += h.Size()
	}
	if n != e.Size {
		return fmt.Errorf("%s: %w: blocks hold %d bytes, file says %d", e.Path, object.ErrInvalid, n, e.Size)
	}
	return nil
}

func displayPath(p string) string {
	if p == "" {
		return "/"
	}
	return p
}

func sortByName(ds []object.Dirent) {
	sort.Slice(ds, func(i, j int) bool { return ds[i].Name < ds[j].Name })
}
