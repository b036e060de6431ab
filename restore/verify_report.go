package restore

import (
	"cmp"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"time"

	"seafbak/state"
	"seafbak/sync/object"
	"seafbak/sync/store"
)

// The second pass of Verify, run only for libraries whose store or history had a bad
// object: which paths, commits and heads each bad object touches, and whether a known
// hole or truncated history explains it.

// report builds a library's report: cheap when nothing in its store or history was
// bad, a second walk of its trees otherwise.
func (v *verifier) report(l *libCheck) (LibraryReport, error) {
	rec := l.rec
	lr := LibraryReport{
		RepoID: rec.ID, StoreID: l.lib.StoreID, Name: rec.Name, Deleted: rec.Deleted,
		Holes: rec.Holes, Truncated: rec.Truncated, Unrecorded: l.unrecorded,
	}
	type src struct{ id, from string }
	var heads []src
	if rec.Head != "" {
		heads = append(heads, src{rec.Head, FromState})
	}
	for _, o := range rec.OldHeads {
		heads = append(heads, src{o.Head, FromOldHead})
	}
	if l.dbHead != "" {
		heads = append(heads, src{l.dbHead, FromDB})
	}
	lr.Commits = l.commits
	if l.dag == nil && !l.st.dirty.Load() { // a whole history in a clean store
		for _, h := range heads {
			lr.Heads = append(lr.Heads, HeadCheck{Commit: h.id, From: h.from, Complete: true})
		}
		return lr, nil
	}
	if l.dag == nil { // a whole history in a store with something bad: read it again
		d, err := loadDAG(v.ctx, v.s, l.lib, l.heads(), 2, false, nil)
		if err != nil {
			return lr, err
		}
		l.dag = d
	}
	a := newAttribution(v, l, &lr)
	sums, err := a.run()
	if err != nil {
		return lr, err
	}
	for _, h := range heads {
		hc := HeadCheck{Commit: h.id, From: h.from}
		n := l.dag.nodes[h.id]
		switch {
		case n.c == nil:
			p := a.recorded[string(object.KindCommit)+h.id]
			hc.Error = fmt.Sprintf("head commit %s: %s", h.id, n.err)
			hc.Expected = p != nil && p.Reason != ""
		default:
			s := sums[h.id]
			switch {
			case s.fail != nil:
				hc.Error = "tree incomplete: " + s.fail.describe()
			case s.expected != nil:
				hc.Expected = true
				hc.Error = "tree incomplete: " + s.expected.describe() + " (" + s.expected.Reason + ")"
			default:
				hc.Complete = true
			}
		}
		lr.Heads = append(lr.Heads, hc)
	}
	for _, p := range a.problems {
		if p.Reason == "" {
			lr.Problems = append(lr.Problems, *p)
		} else {
			lr.Expected = append(lr.Expected, *p)
		}
	}
	return lr, nil
}

func (p *Problem) describe() string {
	what := "damaged"
	if p.Missing {
		what = "missing"
	}
	s := fmt.Sprintf("%s %s %s", strings.TrimSuffix(string(p.Kind), "s"), p.ID, what)
	if p.Path != "" {
		s += fmt.Sprintf(" at %q", p.Path)
	}
	return s
}

// attribution is Verify's second pass over one library: it walks every commit's tree
// again (fs objects only; block results come from the first pass) to say where each bad
// object is used, which heads it breaks, and whether the state explains it.
type attribution struct {
	v   *verifier
	l   *libCheck
	rep *LibraryReport

	// What is bad at or below each fs object walked. Nearly all are clean, and a library
	// of two million files has that many: the clean ones are kept as binary ids in a set
	// (about 40 bytes each, against some 150 with string keys in a map of summaries).
	// Both are keyed by the id and what the entry says it is: a forged tree's file
	// entry naming a directory object met before is a problem the directory is not.
	clean    map[walkKey]struct{}
	memo     map[walkKey]summary // what is bad at or below an fs object, when something is
	recorded map[string]*Problem // kind+id → its problem, the first time met
	problems []*Problem

	holes       map[string]state.Hole
	holeCommits map[string]bool // the commits the state records a hole against
	truncated   map[string]bool
}

// summary is the first failure and the first expected problem at or below an object.
type summary struct{ fail, expected *Problem }

func (s *summary) add(o summary) {
	if s.fail == nil {
		s.fail = o.fail
	}
	if s.expected == nil {
		s.expected = o.expected
	}
}

func newAttribution(v *verifier, l *libCheck, rep *LibraryReport) *attribution {
	a := &attribution{
		v: v, l: l, rep: rep,
		clean: map[walkKey]struct{}{}, memo: map[walkKey]summary{}, recorded: map[string]*Problem{},
		holes: map[string]state.Hole{}, holeCommits: map[string]bool{}, truncated: map[string]bool{},
	}
	for _, h := range l.rec.Holes {
		a.holes[h.ID] = h
		a.holeCommits[h.Commit] = true
	}
	// Truncation removes trees of commits older than the library's valid-since time; the
	// state lists every commit whose tree the engine found trimmed. Not every commit older
	// than one of them: Seafile's GC keeps the trees of some (a merge's parents, a
	// client's commit made offline long ago), the engine backed those up whole, and
	// damage to them is damage.
	for _, id := range l.rec.Truncated {
		a.truncated[id] = true
	}
	return a
}

func (a *attribution) isTruncated(c *object.Commit) bool {
	return a.truncated[c.ID]
}

// run places the bad objects and returns, per commit, what is bad in its tree. Commits
// are walked heads first, then newest first, truncated ones last, so an object is
// placed (and judged expected or not) where it matters most.
func (a *attribution) run() (map[string]summary, error) {
	d := a.l.dag
	var commits []*object.Commit
	for _, id := range d.order {
		n := d.nodes[id]
		if n.c != nil {
			commits = append(commits, n.c)
			continue
		}
		child := ""
		if len(n.children) > 0 {
			child = n.children[0]
		}
		a.problem(object.KindCommit, id, n.missing, "", child, false, n.err)
	}
	slices.SortStableFunc(commits, func(x, y *object.Commit) int {
		if tx, ty := a.isTruncated(x), a.isTruncated(y); tx != ty {
			if tx {
				return 1
			}
			return -1
		}
		if hx, hy := d.nodes[x.ID].head, d.nodes[y.ID].head; hx != hy {
			if hx {
				return -1
			}
			return 1
		}
		return cmp.Compare(y.Ctime, x.Ctime)
	})
	sums := make(map[string]summary, len(commits))
	for _, c := range commits {
		s, err := a.walk(c.RootID, "/", true, c, a.isTruncated(c))
		if err != nil {
			return nil, err
		}
		sums[c.ID] = s
	}
	return sums, nil
}

func (a *attribution) walk(id, p string, wantDir bool, c *object.Commit, truncated bool) (summary, error) {
	if id == object.EmptyID {
		return summary{}, nil
	}
	k := walkKey{keyOf(id), wantDir}
	if _, ok := a.clean[k]; ok {
		return summary{}, nil
	}
	if s, ok := a.memo[k]; ok {
		return s, nil
	}
	if err := a.v.ctx.Err(); err != nil {
		return summary{}, err
	}
	a.clean[k] = struct{}{} // a forged tree cannot loop
	st := a.l.st
	raw, err := a.v.s.Get(a.v.ctx, object.KindFS, st.id, id)
	if err != nil {
		if a.v.ctx.Err() != nil {
			return summary{}, a.v.ctx.Err()
		}
		s := a.problem(object.KindFS, id, errors.Is(err, store.ErrNotExist), p, c.ID, truncated, err)
		a.remember(k, s)
		return s, nil
	}
	f, err := object.ParseFS(id, raw)
	if err == nil && f.IsDir() != wantDir {
		err = fmt.Errorf("%w: fs object %s: its dir entry and the object disagree on being a directory", object.ErrInvalid, id)
	}
	if err != nil {
		s := a.problem(object.KindFS, id, false, p, c.ID, truncated, err)
		a.remember(k, s)
		return s, nil
	}
	var s summary
	if f.IsDir() {
		for _, d := range f.Dirents {
			cs, err := a.walk(d.ID, path.Join(p, d.Name), d.IsDir(), c, truncated)
			if err != nil {
				return summary{}, err
			}
			s.add(cs)
		}
	} else {
		if b := st.lookup(id, false); b != nil { // its blocks do not add up
			s.add(a.problem(object.KindFS, id, b.missing, p, c.ID, truncated, errors.New(b.err)))
		}
		for _, bid := range f.BlockIDs {
			if b := st.lookup(bid, true); b != nil {
				s.add(a.problem(object.KindBlock, bid, b.missing, p, c.ID, truncated, errors.New(b.err)))
			}
		}
	}
	a.remember(k, s)
	return s, nil
}

// walkKey is an fs object walked as a directory or as a file.
type walkKey struct {
	id  key
	dir bool
}

// remember keeps what walk found at or below k.
func (a *attribution) remember(k walkKey, s summary) {
	if s == (summary{}) {
		return // in clean since the walk began
	}
	delete(a.clean, k)
	a.memo[k] = s
}

// problem records a bad object the first time it is met and returns it as a summary.
func (a *attribution) problem(kind object.Kind, id string, missing bool, p, commit string, truncated bool, err error) summary {
	k := string(kind) + id
	pr := a.recorded[k]
	if pr == nil {
		pr = &Problem{Kind: kind, ID: id, Missing: missing, Path: p, Commit: commit, Error: err.Error()}
		pr.Reason = a.explain(kind, id, missing, p, commit, truncated)
		a.recorded[k] = pr
		a.problems = append(a.problems, pr)
	}
	if pr.Reason == "" {
		return summary{fail: pr}
	}
	return summary{expected: pr}
}

// explain says why the state expects an object to be missing, or "" if it does not.
// Damaged objects are never expected: the engine writes only verified objects.
func (a *attribution) explain(kind object.Kind, id string, missing bool, p, commit string, truncated bool) string {
	if !missing {
		return ""
	}
	if h, ok := a.holes[id]; ok {
		return fmt.Sprintf("known hole since %s: the primary could not give it (%s)", h.FirstSeen.Format(time.RFC3339), h.Error)
	}
	if kind == object.KindCommit {
		return ""
	}
	if truncated {
		return "history truncated by the primary's GC: the commit is older than the library's valid-since time"
	}
	if !a.holeCommits[commit] {
		// A commit with no hole recorded against it was synced whole: a hole under
		// another commit explains nothing in its tree, not even at a path above it.
		return ""
	}
	for _, h := range a.l.rec.Holes {
		if h.Path == "" {
			continue
		}
		if p == "/" || h.Path == p || strings.HasPrefix(h.Path, p+"/") {
			return fmt.Sprintf("above the known hole %s %s at %q: a dir or file is written only once everything below it is", h.Kind, h.ID, h.Path)
		}
	}
	return ""
}
