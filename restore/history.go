package restore

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	gosync "sync"
	"time"

	"seafbak/state"
	"seafbak/sync/object"
	"seafbak/sync/store"
)

// HistoryEntry is one commit of a library's backed-up history.
type HistoryEntry struct {
	ID          string    `json:"id"`
	Time        time.Time `json:"time,omitzero"` // the commit's ctime
	Author      string    `json:"author,omitempty"`
	Description string    `json:"description,omitempty"`
	Parents     []string  `json:"parents,omitempty"` // first parent first; two for a merge
	// Head says the commit is one of the heads History was asked about.
	Head bool `json:"head,omitempty"`
	// BackedUpHead and OldHead tell which head (see MarkHeads): the library's backed-up
	// head, or one the primary moved away from (a revert, a repair), and when.
	BackedUpHead bool       `json:"backed_up_head,omitempty"`
	OldHead      bool       `json:"old_head,omitempty"`
	Replaced     *time.Time `json:"replaced,omitempty"`
	// Complete says the commit's whole tree is in the backup, so it can be restored: its
	// root dir is present, and the engine writes a dir only once everything below it is
	// (present means complete). False for a commit whose tree the primary's GC truncated
	// or that sits above a hole.
	Complete bool `json:"complete"`
	// Error is set when the commit object itself is missing or damaged in the backup (a
	// hole): Time, Author and Parents are then unknown and the history beyond it is cut.
	Error string `json:"error,omitempty"`
}

// History lists the commits reachable in the backup from heads (both parents of every
// merge), newest first: by ctime, and among commits with the same ctime children before
// parents. It reads only the backup store, so it works for deleted libraries too; pass
// StateHeads(rec) for a library's head and old heads.
func History(ctx context.Context, s store.Store, lib Library, heads []string) ([]HistoryEntry, error) {
	if err := checkLibrary(lib); err != nil {
		return nil, err
	}
	if len(heads) == 0 {
		return nil, fmt.Errorf("history of %s: no head given", lib.RepoID)
	}
	d, err := loadDAG(ctx, s, lib, heads, 8, true, nil)
	if err != nil {
		return nil, err
	}
	out := make([]HistoryEntry, 0, len(d.order))
	for _, id := range d.sorted() {
		n := d.nodes[id]
		e := HistoryEntry{ID: id, Head: n.head}
		if n.c != nil {
			e.Time = time.Unix(n.c.Ctime, 0).UTC()
			e.Author = n.c.CreatorName
			e.Description = n.c.Description
			e.Parents = n.c.Parents()
			e.Complete = n.rootPresent
		} else {
			e.Error = n.err.Error()
		}
		out = append(out, e)
	}
	return out, nil
}

// MarkHeads tells, in hist, the library's backed-up head from its old heads, as rec
// records them.
func MarkHeads(hist []HistoryEntry, rec state.Library) {
	old := make(map[string]time.Time, len(rec.OldHeads))
	for _, o := range rec.OldHeads {
		old[o.Head] = o.Replaced
	}
	for i := range hist {
		h := &hist[i]
		switch replaced, ok := old[h.ID]; {
		case h.ID == rec.Head:
			h.BackedUpHead = true
		case ok:
			h.OldHead = true
			if !replaced.IsZero() {
				h.Replaced = &replaced
			}
		}
	}
}

func checkLibrary(lib Library) error {
	if err := object.CheckRepoID(lib.RepoID); err != nil {
		return err
	}
	if err := object.CheckRepoID(lib.StoreID); err != nil {
		return fmt.Errorf("store of %s: %w", lib.RepoID, err)
	}
	return nil
}

// dagNode is one commit met while walking a library's history.
type dagNode struct {
	id          string
	c           *object.Commit // nil when it could not be read
	err         error          // why c is nil
	missing     bool           // err says the object is absent (not damaged)
	head        bool
	children    []string // commits of the walk naming it as a parent
	gen         int      // 1 + the largest gen of its parents: children sort above parents
	rootPresent bool     // its root dir is in the store (only when asked for)
}

// dag is the part of a library's commit graph reachable from some heads.
type dag struct {
	nodes map[string]*dagNode
	order []string // discovery order (breadth first from the heads)
}

// loadDAG reads every commit reachable from heads, up to parallel at once. With
// checkRoots it also checks that each commit's root dir is present. onCommit, if not nil,
// is called for every commit read (from several goroutines) as soon as it is parsed.
// Missing or damaged commits become nodes with err set; a store that fails (an I/O error,
// S3 not answering) or ctx ends the walk with an error.
func loadDAG(ctx context.Context, s store.Store, lib Library, heads []string, parallel int, checkRoots bool, onCommit func(*object.Commit)) (*dag, error) {
	d := &dag{nodes: map[string]*dagNode{}}
	var frontier []string
	for _, h := range heads {
		if n := d.nodes[h]; n != nil {
			n.head = true
			continue
		}
		d.nodes[h] = &dagNode{id: h, head: true}
		d.order = append(d.order, h)
		frontier = append(frontier, h)
	}
	parallel = max(parallel, 1)
	for len(frontier) > 0 {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		sem := make(chan struct{}, parallel)
		var wg gosync.WaitGroup
		var failMu gosync.Mutex
		var failed error
		fail := func(err error) {
			failMu.Lock()
			defer failMu.Unlock()
			if failed == nil {
				failed = fmt.Errorf("history of %s: %w", lib.RepoID, err)
			}
		}
		for _, id := range frontier {
			n := d.nodes[id]
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer func() { <-sem; wg.Done() }()
				n.c, n.err = readCommit(ctx, s, lib, n.id)
				if n.err != nil {
					n.missing = errors.Is(n.err, store.ErrNotExist)
					if storeFailed(n.err) {
						fail(n.err)
					}
					return
				}
				n.c.Raw = nil // only the parsed fields are needed; long histories add up
				if checkRoots {
					n.rootPresent = n.c.RootID == object.EmptyID
					if !n.rootPresent {
						has, err := s.Has(ctx, object.KindFS, lib.For(object.KindFS), n.c.RootID)
						if err != nil {
							fail(err) // not an answer about the root: the store failing
						}
						n.rootPresent = has
					}
				}
				if onCommit != nil {
					onCommit(n.c)
				}
			}()
		}
		wg.Wait()
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if failed != nil {
			// A store that cannot answer tells nothing of what it holds: an error,
			// not commits listed as missing or trees as not whole.
			return nil, failed
		}
		var next []string
		for _, id := range frontier {
			n := d.nodes[id]
			if n.c == nil {
				continue
			}
			for _, p := range n.c.Parents() {
				pn := d.nodes[p]
				if pn == nil {
					pn = &dagNode{id: p}
					d.nodes[p] = pn
					d.order = append(d.order, p)
					next = append(next, p)
				}
				pn.children = append(pn.children, id)
			}
		}
		frontier = next
	}
	d.computeGen()
	return d, nil
}

// storeFailed reports whether reading one object failed for a reason of the store as a
// whole (S3 not answering, a context), not of that object: absent, damaged, or a file of
// it the filesystem cannot read (a bad sector fails its commit, listed with its error).
func storeFailed(err error) bool {
	return !errors.Is(err, store.ErrNotExist) && !errors.Is(err, object.ErrInvalid) && !store.Unreadable(err)
}

func readCommit(ctx context.Context, s store.Store, lib Library, id string) (*object.Commit, error) {
	if err := object.CheckID(id); err != nil {
		return nil, err
	}
	raw, err := s.Get(ctx, object.KindCommit, lib.For(object.KindCommit), id)
	if err != nil {
		return nil, err
	}
	return object.ParseCommit(raw, id, lib.RepoID)
}

// computeGen numbers commits so that every commit's gen is above its parents'. A cycle
// (possible only in a forged store: commit ids are not recomputable) is cut where met.
func (d *dag) computeGen() {
	const (
		fresh = iota
		open
		done
	)
	st := make(map[string]uint8, len(d.nodes))
	for _, start := range d.order {
		if st[start] != fresh {
			continue
		}
		stack := []string{start}
		for len(stack) > 0 {
			id := stack[len(stack)-1]
			n := d.nodes[id]
			switch st[id] {
			case fresh:
				st[id] = open
				if n.c != nil {
					for _, p := range n.c.Parents() {
						if d.nodes[p] != nil && st[p] == fresh {
							stack = append(stack, p)
						}
					}
				}
				continue
			case open:
				st[id] = done
				n.gen = 1
				if n.c != nil {
					for _, p := range n.c.Parents() {
						if pn := d.nodes[p]; pn != nil && st[p] == done && pn.gen >= n.gen {
							n.gen = pn.gen + 1
						}
					}
				}
			}
			stack = stack[:len(stack)-1]
		}
	}
}

// sortTime is the ctime a node sorts by: its own, or for an unreadable commit just
// below its newest-sorting child (a missing head sorts first).
func (d *dag) sortKey(n *dagNode) (ctime int64, gen int) {
	if n.c != nil {
		return n.c.Ctime, n.gen
	}
	ctime, gen = math.MinInt64, 0
	for _, ch := range n.children {
		if cn := d.nodes[ch]; cn.c != nil && cn.c.Ctime > ctime {
			ctime, gen = cn.c.Ctime, cn.gen-1
		}
	}
	if len(n.children) == 0 {
		return math.MaxInt64, 0
	}
	return ctime, gen
}

// sorted lists the commit ids newest first: by ctime, then children before parents,
// then by id.
func (d *dag) sorted() []string {
	type key struct {
		id    string
		ctime int64
		gen   int
	}
	keys := make([]key, 0, len(d.order))
	for _, id := range d.order {
		c, g := d.sortKey(d.nodes[id])
		keys = append(keys, key{id, c, g})
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		if a.ctime != b.ctime {
			return a.ctime > b.ctime
		}
		if a.gen != b.gen {
			return a.gen > b.gen
		}
		return a.id < b.id
	})
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = k.id
	}
	return out
}
