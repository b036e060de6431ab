package seafgen

import (
	"errors"
	"fmt"
)

// MergeDesc is the description of merge commits made by the file server.
const MergeDesc = "Auto merge by system"

// Merge merges other into Head as the Go file server does when a client
// uploads a commit on a stale parent: a three-way merge of the trees of
// Head and other against their common ancestor, written as a commit with
// creator 40 zeros, description MergeDesc, parent_id = Head,
// second_parent_id = other, "new_merge":1 and "encrypted" set, whose id is
// hashed without NULs. Head moves to it.
//
// The tree merge follows fileserver/merge.go (names compared per directory,
// entries compared by id, directories changed on both sides merged
// recursively, a file modified on one side and deleted on the other kept)
// except for conflicts: where the server would keep both versions and
// rename one "name (SFConflict ...)", the generator keeps only other's
// version (for a file against a directory of the same name too), so the
// resulting tree is predictable. The common ancestor is the one with the
// longest history; with no common ancestor the empty tree is the base. A
// merge commit is written even when one side already contains the other.
func (l *Library) Merge(other string) (string, error) {
	l.st.mu.Lock()
	defer l.st.mu.Unlock()
	if err := l.g.check(); err != nil {
		return "", err
	}
	head := l.Head
	hm, err := l.metaOf(head)
	if err != nil {
		return "", err
	}
	om, err := l.metaOf(other)
	if err != nil {
		return "", err
	}
	baseRoot := EmptyID
	base, err := l.mergeBase(head, other)
	if err != nil {
		return "", err
	}
	if base != "" {
		bm, err := l.metaOf(base)
		if err != nil {
			return "", err
		}
		baseRoot = bm.root
	}
	root, err := l.mergeTrees(baseRoot, hm.root, om.root)
	if err != nil {
		return "", fmt.Errorf("seafgen: merge %s into %s: %w", other, head, err)
	}
	ctime := l.g.tick()
	v := 1
	c := &goCommit{
		RepoID:         l.ID,
		RootID:         root,
		CreatorName:    l.Owner,
		CreatorID:      EmptyID,
		Desc:           MergeDesc,
		Ctime:          ctime,
		ParentID:       &head,
		SecondParentID: &other,
		RepoName:       l.Name,
		Version:        &v,
		NewMerge:       1,
	}
	// repomgr.RepoToCommit: no repo_desc, "encrypted" always set.
	if l.Encrypted {
		c.Encrypted, c.EncVersion, c.Magic, c.RandomKey = "true", l.EncVersion, l.Magic, l.RandomKey
	} else {
		c.Encrypted = "false"
	}
	c.CommitID = CommitIDNoNUL(c.RootID, c.CreatorID, c.CreatorName, c.Desc, c.Ctime)
	if err := l.writeGoCommit(c); err != nil {
		return "", err
	}
	l.Head = c.CommitID
	return c.CommitID, nil
}

// ancestors returns id and all its ancestors that can be read.
func (l *Library) ancestors(id string) (map[string]*commitMeta, []string, error) {
	seen := map[string]*commitMeta{}
	var order []string
	queue := []string{id}
	for len(queue) > 0 {
		c := queue[0]
		queue = queue[1:]
		if c == "" || seen[c] != nil {
			continue
		}
		m, err := l.metaOf(c)
		if err != nil {
			return nil, nil, err
		}
		seen[c] = m
		order = append(order, c)
		queue = append(queue, m.parent, m.second)
	}
	return seen, order, nil
}

// mergeBase returns the common ancestor of a and b with the largest
// generation number (so none of the other common ancestors descends from
// it), or "" if they have none.
func (l *Library) mergeBase(a, b string) (string, error) {
	as, _, err := l.ancestors(a)
	if err != nil {
		return "", err
	}
	_, border, err := l.ancestors(b)
	if err != nil {
		return "", err
	}
	best, bestGen := "", -1
	for _, c := range border {
		if m := as[c]; m != nil && m.gen > bestGen {
			best, bestGen = c, m.gen
		}
	}
	return best, nil
}

// mergeTrees merges directory trees base, head and remote (ids, EmptyID for
// none) and returns the merged directory id, writing new dir objects.
func (l *Library) mergeTrees(base, head, remote string) (string, error) {
	switch {
	case head == remote:
		return head, nil
	case base == head:
		return remote, nil
	case base == remote:
		return head, nil
	}
	var sides [3]map[string]*Dirent
	names := map[string]struct{}{}
	for i, id := range []string{base, head, remote} {
		ds, err := l.g.readDir(l.StoreID, id)
		if err != nil {
			return "", err
		}
		sides[i] = make(map[string]*Dirent, len(ds))
		for j := range ds {
			sides[i][ds[j].Name] = &ds[j]
			names[ds[j].Name] = struct{}{}
		}
	}
	var out []Dirent
	for name := range names {
		d, ok, err := l.mergeName(sides[0][name], sides[1][name], sides[2][name])
		if err != nil {
			return "", err
		}
		if ok {
			out = append(out, d)
		}
	}
	if len(out) == 0 {
		return EmptyID, nil
	}
	js, err := EncodeDir(out)
	if err != nil {
		return "", err
	}
	return l.g.writeFS(l.StoreID, js)
}

// candidate is an entry the merge may keep for a name.
type candidate struct {
	d      Dirent
	remote bool // taken from (or merged into) the remote side's entry
}

// mergeName merges the entries of one name (any of them may be nil). It
// follows mergeEntries and mergeDirectories of fileserver/merge.go; where
// the server keeps two entries (a conflict), the remote-side one wins.
func (l *Library) mergeName(b, h, r *Dirent) (Dirent, bool, error) {
	fileOf := func(d *Dirent) *Dirent {
		if d != nil && !d.IsDir() {
			return d
		}
		return nil
	}
	dirOf := func(d *Dirent) *Dirent {
		if d != nil && d.IsDir() {
			return d
		}
		return nil
	}
	var cands []candidate

	// Files.
	fb, fh, fr := fileOf(b), fileOf(h), fileOf(r)
	switch {
	case fh != nil && fr != nil:
		switch {
		case fh.ID == fr.ID:
			cands = append(cands, candidate{*fh, false})
		case fb != nil && fb.ID == fh.ID:
			cands = append(cands, candidate{*fr, true})
		case fb != nil && fb.ID == fr.ID:
			cands = append(cands, candidate{*fh, false})
		default: // both changed: the server keeps both; remote wins here
			cands = append(cands, candidate{*fr, true})
		}
	case fb != nil && fh == nil && fr != nil:
		if fb.ID != fr.ID { // deleted on head, modified on remote: kept
			cands = append(cands, candidate{*fr, true})
		}
	case fb != nil && fh != nil && fr == nil:
		if fb.ID != fh.ID { // modified on head, deleted on remote: kept
			cands = append(cands, candidate{*fh, false})
		}
	case fb == nil && fh == nil && fr != nil:
		cands = append(cands, candidate{*fr, true})
	case fb == nil && fh != nil && fr == nil:
		cands = append(cands, candidate{*fh, false})
	}

	// Directories.
	db, dh, dr := dirOf(b), dirOf(h), dirOf(r)
	mask := 0
	for i, d := range []*Dirent{db, dh, dr} {
		if d != nil {
			mask |= 1 << i
		}
	}
	merged := func(keep Dirent, remote bool, bid, hid, rid string) error {
		id, err := l.mergeTrees(bid, hid, rid)
		if err != nil {
			return err
		}
		keep.ID = id
		cands = append(cands, candidate{keep, remote})
		return nil
	}
	idOr := func(d *Dirent) string {
		if d == nil {
			return EmptyID
		}
		return d.ID
	}
	switch mask {
	case 0, 1:
	case 2:
		cands = append(cands, candidate{*dh, false})
	case 4:
		cands = append(cands, candidate{*dr, true})
	case 3:
		if db.ID != dh.ID {
			if err := merged(*dh, false, db.ID, dh.ID, EmptyID); err != nil {
				return Dirent{}, false, err
			}
		}
	case 5:
		if db.ID != dr.ID {
			if err := merged(*dr, true, db.ID, EmptyID, dr.ID); err != nil {
				return Dirent{}, false, err
			}
		}
	case 6, 7:
		switch {
		case dh.ID == dr.ID:
			cands = append(cands, candidate{*dh, false})
		case db != nil && db.ID == dh.ID:
			cands = append(cands, candidate{*dr, true})
		case db != nil && db.ID == dr.ID:
			cands = append(cands, candidate{*dh, false})
		default:
			if err := merged(*dh, false, idOr(db), dh.ID, dr.ID); err != nil {
				return Dirent{}, false, err
			}
		}
	}

	switch len(cands) {
	case 0:
		return Dirent{}, false, nil
	case 1:
		return cands[0].d, true, nil
	case 2: // a file and a directory of the same name
		for _, c := range cands {
			if c.remote {
				return c.d, true, nil
			}
		}
	}
	return Dirent{}, false, errors.New("seafgen: internal error: unresolvable merge of " + nameOf(b, h, r))
}

func nameOf(ds ...*Dirent) string {
	for _, d := range ds {
		if d != nil {
			return d.Name
		}
	}
	return ""
}
