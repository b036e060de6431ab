package seafgen

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
)

// TruncateBefore models the primary's GC with a history limit: it deletes
// from disk the fs objects and blocks reachable only from commits of this
// library that are older than commitID (ctime strictly lower) and that the
// GC does not keep, keeps every commit object, and sets ValidSince to
// commitID's ctime.
//
// Kept are the objects reachable from: every commit of this library whose
// ctime is at least commitID's, Head (even if older), the parents of Head
// and of every such commit (Seafile's GC, gc-core.c, walks on through
// commits not older than the limit and still traverses the first older
// commit on each path), and every commit of the other libraries sharing
// the store (an origin and its virtual libraries), which Seafile's GC
// protects as well. Objects already missing (an earlier truncation) are
// skipped. It returns an error, deleting nothing, if an object reachable
// from a kept commit is missing.
func (l *Library) TruncateBefore(commitID string) error {
	l.st.mu.Lock()
	defer l.st.mu.Unlock()
	if !slices.Contains(l.commits, commitID) {
		return fmt.Errorf("seafgen: TruncateBefore: %s is not a commit of library %s", commitID, l.ID)
	}
	limit := l.meta[commitID].ctime

	kept := map[string]bool{}
	keepWithParents := func(c string) {
		kept[c] = true
		m := l.meta[c]
		for _, p := range []string{m.parent, m.second} {
			if l.meta[p] != nil {
				kept[p] = true
			}
		}
	}
	for _, c := range l.commits {
		if l.meta[c].ctime >= limit {
			keepWithParents(c)
		}
	}
	var keepRoots, oldRoots []string
	if l.meta[l.Head] != nil {
		keepWithParents(l.Head)
	} else if hm, err := l.metaOf(l.Head); err == nil {
		keepRoots = append(keepRoots, hm.root)
	}
	for _, c := range l.commits {
		if kept[c] {
			keepRoots = append(keepRoots, l.meta[c].root)
		} else {
			oldRoots = append(oldRoots, l.meta[c].root)
		}
	}
	for _, o := range l.st.libs {
		if o == l {
			continue
		}
		for _, c := range o.commits {
			keepRoots = append(keepRoots, o.meta[c].root)
		}
	}

	keep := newReach()
	for _, r := range keepRoots {
		if err := l.reach(r, keep, false); err != nil {
			return fmt.Errorf("seafgen: TruncateBefore: kept tree: %w", err)
		}
	}
	old := newReach()
	for _, r := range oldRoots {
		if err := l.reach(r, old, true); err != nil {
			return fmt.Errorf("seafgen: TruncateBefore: %w", err)
		}
	}
	for id := range old.fs {
		if !keep.fs[id] {
			if err := removeObject(l.g.objPath(kindFS, l.StoreID, id)); err != nil {
				return err
			}
		}
	}
	for id := range old.blocks {
		if !keep.blocks[id] {
			if err := removeObject(l.g.objPath(kindBlocks, l.StoreID, id)); err != nil {
				return err
			}
		}
	}
	l.ValidSince = limit
	return nil
}

// reachSet collects fs object ids and block ids.
type reachSet struct{ fs, blocks map[string]bool }

func newReach() *reachSet {
	return &reachSet{fs: map[string]bool{}, blocks: map[string]bool{}}
}

// reach adds the objects of the tree rooted at dir id to s. With
// skipMissing, missing objects are ignored.
func (l *Library) reach(dirID string, s *reachSet, skipMissing bool) error {
	if dirID == EmptyID || s.fs[dirID] {
		return nil
	}
	ds, err := l.g.readDir(l.StoreID, dirID)
	if err != nil {
		if skipMissing && errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	s.fs[dirID] = true
	for _, d := range ds {
		if d.IsDir() {
			if err := l.reach(d.ID, s, skipMissing); err != nil {
				return err
			}
			continue
		}
		if d.ID == EmptyID || s.fs[d.ID] {
			continue
		}
		o, err := l.g.readFS(l.StoreID, d.ID)
		if err != nil {
			if skipMissing && errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return err
		}
		s.fs[d.ID] = true
		for _, b := range o.BlockIDs {
			s.blocks[b] = true
		}
	}
	return nil
}

func removeObject(p string) error {
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}
