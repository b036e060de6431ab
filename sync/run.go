package sync

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path"
	"sort"
	gosync "sync"
	"time"

	"seafbak/state"
	"seafbak/sync/object"
	"seafbak/sync/primary"
	"seafbak/sync/store"
)

// fsBatch is how many fs objects are asked for at once (one pack-fs request over HTTP).
const fsBatch = 1000

// run is one sync of one library: what the walk found and what is left to write.
type run struct {
	e       *Engine
	lib     primary.Library
	keys    object.Keys // lib's ids by object kind: never pick lib.ID or lib.StoreID by hand
	rec     state.Library
	recheck bool // presence proves nothing: read and verify present objects too
	log     *slog.Logger

	knownHoles map[string]bool // object ids recorded as holes before this run
	// walkedOldHeads: the walk started from old heads too, so reached says nothing about
	// what the new head's history holds.
	walkedOldHeads bool

	commits map[string]*object.Commit // commits to write, fetched in this run
	toWalk  []*object.Commit          // commits whose trees are walked
	reached map[string]bool           // commits met by the walk, new or already present

	nodes     map[string]*node   // fs objects fetched (or re-read) in this run
	order     []string           // fs ids in discovery order
	seen      map[string]bool    // fs and block ids already handled in this run
	bad       map[string]bool    // ids the primary could not give
	blocks    map[string]*origin // blocks to fetch
	blockSize map[string]int64   // sizes of blocks written in this run

	holes     []state.Hole
	truncated map[string]bool
	complete  map[string]bool // fs ids of this run: whole subtree in the backup

	stats struct {
		commits, fs, blocks int
		bytes               int64
	}
}

// node is a fetched fs object waiting to be written. A first backup of a large library
// holds one per file until the end, so it keeps only what writing needs: the decoded
// object is dropped once its children are queued.
type node struct {
	raw       []byte
	fs        *object.FS // until children() has queued what lies below
	isDir     bool
	children  []string // dir: ids of its non-empty entries; file: its block ids
	size      int64    // file: the size it records
	path      string
	commit    *object.Commit
	fromStore bool // re-read from the backup during a re-check: valid, nothing to write
}

func newNode(raw []byte, fs *object.FS, path string, c *object.Commit, fromStore bool) *node {
	n := &node{raw: raw, fs: fs, isDir: fs.IsDir(), size: fs.Size, path: path, commit: c, fromStore: fromStore}
	if n.isDir {
		n.children = make([]string, 0, len(fs.Dirents))
		for _, d := range fs.Dirents {
			if d.ID != object.EmptyID {
				n.children = append(n.children, d.ID)
			}
		}
	} else {
		n.children = fs.BlockIDs
	}
	if fromStore {
		n.raw = nil // already in the backup
	}
	return n
}

// origin says where an object was met, for error messages and hole records.
type origin struct {
	path   string
	commit *object.Commit
}

func newRun(e *Engine, lib primary.Library, rec state.Library, recheck bool, log *slog.Logger) *run {
	r := &run{
		e: e, lib: lib, rec: rec, recheck: recheck, log: log,
		keys:       object.Keys{RepoID: lib.ID, StoreID: lib.StoreID},
		knownHoles: map[string]bool{},
		commits:    map[string]*object.Commit{},
		reached:    map[string]bool{},
		nodes:      map[string]*node{},
		seen:       map[string]bool{},
		bad:        map[string]bool{},
		blocks:     map[string]*origin{},
		blockSize:  map[string]int64{},
		truncated:  map[string]bool{},
	}
	for _, h := range rec.Holes {
		r.knownHoles[h.ID] = true
	}
	return r
}

func (r *run) transfer(ctx context.Context) error {
	if err := r.walkCommits(ctx); err != nil {
		return err
	}
	// Newest first, so an object is first met from the newest commit that has it: an
	// object missing on the primary is truncation only if no commit newer than the
	// history limit needs it.
	sort.SliceStable(r.toWalk, func(i, j int) bool { return r.toWalk[i].Ctime > r.toWalk[j].Ctime })
	if err := r.skipTrimmedTrees(ctx); err != nil {
		return err
	}
	for _, c := range r.toWalk {
		if err := r.walkTree(ctx, c); err != nil {
			return err
		}
	}
	if err := r.copyBlocks(ctx); err != nil {
		return err
	}
	if err := r.writeFS(ctx); err != nil {
		return err
	}
	r.recordIncompleteTrees()
	return r.writeCommits(ctx)
}

// skipTrimmedTrees asks the primary at once which roots of commits past the library's
// history limit it no longer has, and records those commits as truncated without asking
// for each tree. Roots that a commit within the limit also uses are left to the walk: the
// primary must still have them, and their absence is a fault, not truncation.
func (r *run) skipTrimmedTrees(ctx context.Context) error {
	checker, ok := r.e.Source.(primary.AbsenceChecker)
	if !ok || r.lib.ValidSince == 0 || r.recheck {
		return nil
	}
	inLimit := map[string]bool{}
	for _, c := range r.toWalk {
		if c.Ctime >= r.lib.ValidSince {
			inLimit[c.RootID] = true
		}
	}
	oldByRoot := map[string][]*object.Commit{}
	var roots []string
	for _, c := range r.toWalk {
		if c.Ctime >= r.lib.ValidSince || c.RootID == object.EmptyID || inLimit[c.RootID] {
			continue
		}
		if oldByRoot[c.RootID] == nil {
			has, err := r.e.Store.Has(ctx, object.KindFS, r.keys.For(object.KindFS), c.RootID)
			if err != nil {
				return err
			}
			if has {
				continue
			}
			roots = append(roots, c.RootID)
		}
		oldByRoot[c.RootID] = append(oldByRoot[c.RootID], c)
	}
	if len(roots) == 0 {
		return nil
	}
	missing, err := checker.MissingFS(ctx, r.lib, roots)
	if err != nil {
		// Only a shortcut: the walk asks for each tree and classifies what it meets.
		r.log.Debug("could not ask the primary which old trees it trimmed; walking them one by one", "err", err)
		return nil
	}
	for _, root := range missing {
		if _, asked := oldByRoot[root]; !asked {
			continue
		}
		r.seen[root] = true
		r.bad[root] = true
		for _, c := range oldByRoot[root] {
			r.truncated[c.ID] = true
		}
	}
	return nil
}

// recordIncompleteTrees makes sure every walked commit whose tree could not be completed
// is retried (or recorded as truncated). An object missing on the primary is met, and
// recorded, only under the first commit that needs it; other commits above it are just
// as incomplete and must be walked again once the primary is repaired.
func (r *run) recordIncompleteTrees() {
	recorded := map[string]bool{}
	for _, h := range r.holes {
		recorded[h.Commit] = true
	}
	for _, c := range r.toWalk {
		ok, fetched := r.complete[c.RootID]
		if c.RootID == object.EmptyID || !fetched && !r.bad[c.RootID] || ok || recorded[c.ID] || r.truncated[c.ID] {
			continue
		}
		if r.lib.ValidSince > 0 && c.Ctime < r.lib.ValidSince {
			r.truncated[c.ID] = true
			continue
		}
		r.holes = append(r.holes, state.Hole{Kind: "tree", ID: c.RootID, Path: "/", Commit: c.ID,
			Error: "the commit's tree lacks objects the primary could not give (see the other holes)"})
		recorded[c.ID] = true
	}
}

// walkCommits collects the commits the backup lacks, from the primary's head back to
// commits the backup has. Commits with known holes are walked again to retry them.
func (r *run) walkCommits(ctx context.Context) error {
	queue := []string{r.lib.Head}
	if r.e.Recheck {
		// A repair covers every head the backup can restore, not only the current one.
		for _, h := range r.rec.OldHeads {
			queue = append(queue, h.Head)
		}
		if r.rec.Head != "" {
			queue = append(queue, r.rec.Head)
		}
		r.walkedOldHeads = true
	}
	retry := map[string]bool{}
	for _, h := range r.rec.Holes {
		if !retry[h.Commit] {
			retry[h.Commit] = true
			queue = append(queue, h.Commit)
		}
	}
	for len(queue) > 0 {
		id := queue[0]
		queue = queue[1:]
		if r.reached[id] {
			continue
		}
		r.reached[id] = true
		c, descend, err := r.loadCommit(ctx, id, retry[id])
		if err != nil {
			return err
		}
		if c == nil {
			continue // present and trusted (its history is complete), or recorded as a hole
		}
		r.toWalk = append(r.toWalk, c)
		if !descend {
			continue
		}
		for _, p := range c.Parents() {
			if !r.reached[p] {
				queue = append(queue, p)
			}
		}
	}
	return nil
}

// loadCommit returns the commit to walk, or nil when the backup has it and it can be
// trusted. descend says whether its parents must be walked too.
func (r *run) loadCommit(ctx context.Context, id string, retry bool) (c *object.Commit, descend bool, err error) {
	has, err := r.e.Store.Has(ctx, object.KindCommit, r.keys.For(object.KindCommit), id)
	if err != nil {
		return nil, false, err
	}
	if has && !r.recheck && !retry {
		return nil, false, nil
	}
	if has {
		raw, err := r.e.Store.Get(ctx, object.KindCommit, r.keys.For(object.KindCommit), id)
		if err != nil {
			return nil, false, err
		}
		c, perr := object.ParseCommit(raw, id, r.lib.ID)
		if perr == nil {
			// A retried commit's history was complete before; a re-check reads it all.
			return c, r.recheck, nil
		}
		r.log.Warn("backup copy of a commit is damaged; fetching it again", "commit", id, "err", perr)
	}
	raw, err := r.e.Source.Commit(ctx, r.lib, id)
	if err == nil {
		c, err = object.ParseCommit(raw, id, r.lib.ID)
	}
	if err != nil {
		if errors.Is(err, object.ErrVersion0) {
			return nil, false, err
		}
		if ctx.Err() != nil {
			return nil, false, ctx.Err()
		}
		if herr := r.badObject("commit", id, "", nil, err); herr != nil {
			return nil, false, herr
		}
		return nil, false, nil // recorded as a hole; its parents cannot be known
	}
	r.commits[id] = c
	return c, true, nil
}

// pending is an fs object met in a tree, not yet handled.
type pending struct {
	id   string
	path string
	dir  bool
}

// walkTree finds the fs objects and blocks of c's tree that the backup lacks, level by
// level so fetches are batched. A present dir is skipped whole: present means complete
// (invariant 1).
func (r *run) walkTree(ctx context.Context, c *object.Commit) error {
	if c.RootID == object.EmptyID {
		return nil
	}
	level := []pending{{id: c.RootID, path: "/", dir: true}}
	for len(level) > 0 {
		var fetch, descend []pending
		for _, p := range level {
			if r.seen[p.id] {
				continue
			}
			r.seen[p.id] = true
			n, present, err := r.fromStore(ctx, p, c)
			if err != nil {
				return err
			}
			switch {
			case n != nil:
				descend = append(descend, p)
			case !present:
				fetch = append(fetch, p)
			}
		}
		for start := 0; start < len(fetch); start += fsBatch {
			got, err := r.fetchFS(ctx, fetch[start:min(start+fsBatch, len(fetch))], c)
			if err != nil {
				return err
			}
			descend = append(descend, got...)
		}
		var next []pending
		for _, p := range descend {
			var err error
			if next, err = r.children(ctx, r.nodes[p.id], next); err != nil {
				return err
			}
		}
		level = next
	}
	return nil
}

// fromStore looks for an fs object in the backup. Present and trusted: present is true
// and nothing below it is needed. During a re-check a present object is read and
// verified, and returned as a node to descend into.
func (r *run) fromStore(ctx context.Context, p pending, c *object.Commit) (n *node, present bool, err error) {
	has, err := r.e.Store.Has(ctx, object.KindFS, r.keys.For(object.KindFS), p.id)
	if err != nil || !has {
		return nil, false, err
	}
	if !r.recheck {
		return nil, true, nil
	}
	raw, err := r.e.Store.Get(ctx, object.KindFS, r.keys.For(object.KindFS), p.id)
	if err != nil {
		return nil, false, err
	}
	fs, perr := object.ParseFS(p.id, raw)
	if perr == nil && fs.IsDir() != p.dir {
		perr = fmt.Errorf("%w: dir entry and object disagree on being a directory", object.ErrInvalid)
	}
	if perr != nil {
		r.log.Warn("backup copy of an fs object is damaged; fetching it again", "id", p.id, "path", p.path, "err", perr)
		return nil, false, nil
	}
	n = newNode(raw, fs, p.path, c, true)
	r.nodes[p.id] = n
	r.order = append(r.order, p.id)
	return n, true, nil
}

// fetchFS asks the primary for a batch of fs objects and verifies each answer. It
// returns the ones that arrived intact.
func (r *run) fetchFS(ctx context.Context, batch []pending, c *object.Commit) ([]pending, error) {
	asked := make(map[string]pending, len(batch))
	ids := make([]string, len(batch))
	for i, p := range batch {
		ids[i] = p.id
		asked[p.id] = p
	}
	var got []pending
	err := r.e.Source.FSObjects(ctx, r.lib, ids, func(id string, data []byte, err error) error {
		p, ok := asked[id]
		if !ok {
			return fmt.Errorf("primary answered fs object %q, which was not asked for (or twice)", id)
		}
		delete(asked, id)
		var fs *object.FS
		if err == nil {
			fs, err = object.ParseFS(id, data)
		}
		if err == nil && fs.IsDir() != p.dir {
			err = fmt.Errorf("%w: fs object %s: its dir entry and the object disagree on being a directory", object.ErrInvalid, id)
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return r.badObject("fs object", id, p.path, c, err)
		}
		r.nodes[id] = newNode(data, fs, p.path, c, false)
		r.order = append(r.order, id)
		got = append(got, p)
		return nil
	})
	var oe *ObjectError
	if err != nil && !errors.As(err, &oe) && ctx.Err() == nil {
		// The batch as a whole got no answer: name its first object and where it was met.
		first := batch[0]
		return nil, &ObjectError{Kind: "fs object", ID: first.id, Path: first.path, Commit: c.ID, Class: classify(err),
			Err: fmt.Errorf("fetching it with %d other objects: %w", len(batch)-1, err)}
	}
	if err != nil {
		return nil, err
	}
	for id, p := range asked {
		err := &primary.NotFoundError{Kind: "fs object", ID: id}
		if herr := r.badObject("fs object", id, p.path, c, fmt.Errorf("primary did not answer it: %w", err)); herr != nil {
			return nil, herr
		}
	}
	return got, nil
}

// children queues what lies under a node: the entries of a dir, the blocks of a file.
func (r *run) children(ctx context.Context, n *node, next []pending) ([]pending, error) {
	fs := n.fs
	n.fs = nil
	if fs.IsDir() {
		for _, d := range fs.Dirents {
			if d.ID == object.EmptyID {
				continue
			}
			next = append(next, pending{id: d.ID, path: path.Join(n.path, d.Name), dir: d.IsDir()})
		}
		return next, nil
	}
	for _, b := range fs.BlockIDs {
		if r.seen[b] {
			continue
		}
		r.seen[b] = true
		has, err := r.blockPresent(ctx, b, n.path)
		if err != nil {
			return nil, err
		}
		if !has {
			r.blocks[b] = &origin{path: n.path, commit: n.commit}
		}
	}
	return next, nil
}

// blockPresent says whether the backup has a good copy of block id. During a re-check
// the copy is read and hashed: after a crash it may be present but empty.
func (r *run) blockPresent(ctx context.Context, id, where string) (bool, error) {
	has, err := r.e.Store.Has(ctx, object.KindBlock, r.keys.For(object.KindBlock), id)
	if err != nil || !has || !r.recheck {
		return has, err
	}
	rc, err := r.e.Store.Open(ctx, object.KindBlock, r.keys.For(object.KindBlock), id)
	if err != nil {
		return false, err
	}
	defer rc.Close()
	h := object.NewBlockHasher(id)
	if _, err := io.Copy(h, rc); err != nil {
		return false, err
	}
	if err := h.Check(); err != nil {
		r.log.Warn("backup copy of a block is damaged; fetching it again", "id", id, "path", where, "err", err)
		return false, nil
	}
	r.blockSize[id] = h.Size()
	return true, nil
}

// badObject decides what an object the primary did not give means: truncated history
// (missing, and only needed by commits older than the library's valid-since time), a
// hole (the primary answered it lacks it or sent wrong bytes, and --force is on or the
// hole is already known), or the library's failure. It returns nil only when the object
// was recorded (as truncation or a hole); only then is it marked bad, so a failure can
// never be mistaken for a recorded hole further on.
func (r *run) badObject(kind, id, where string, c *object.Commit, cause error) error {
	class := classify(cause)
	oe := &ObjectError{Kind: kind, ID: id, Path: where, Class: class, Err: cause, Head: kind == "commit" && id == r.lib.Head}
	if c != nil {
		oe.Commit = c.ID
	}
	if class == Absent && c != nil && r.lib.ValidSince > 0 && c.Ctime < r.lib.ValidSince {
		r.bad[id] = true
		r.truncated[c.ID] = true
		return nil
	}
	if !class.Skippable() || oe.Head || !r.e.Force && !r.knownHoles[id] {
		return oe
	}
	commit := oe.Commit
	if c == nil {
		commit = id // a missing commit is its own hole
	}
	r.bad[id] = true
	r.holes = append(r.holes, state.Hole{Kind: kind, ID: id, Path: where, Commit: commit, Error: cause.Error()})
	return nil
}

// copyBlocks fetches the missing blocks, Parallel at a time, streaming each through a
// SHA-1 check into the store. Blocks are leaves, so each is written as soon as it is
// verified.
func (r *run) copyBlocks(ctx context.Context) error {
	if len(r.blocks) == 0 {
		return nil
	}
	ids := make([]string, 0, len(r.blocks))
	for id := range r.blocks {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	if r.e.Progress != nil {
		r.e.Progress.Todo(int64(len(ids)), 0)
	}
	workers := r.e.Parallel
	if workers <= 0 {
		workers = 4
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	jobs := make(chan string)
	type outcome struct {
		id     string
		size   int64
		srcErr error // the primary's fault: maybe a hole
		fatal  error // ours: fails the sync
	}
	results := make(chan outcome)
	var wg gosync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range jobs {
				size, srcErr, fatal := r.copyBlock(ctx, id)
				results <- outcome{id, size, srcErr, fatal}
			}
		}()
	}
	go func() {
		defer close(jobs)
		for _, id := range ids {
			select {
			case jobs <- id:
			case <-ctx.Done():
				return
			}
		}
	}()
	go func() { wg.Wait(); close(results) }()
	var firstErr error
	for o := range results {
		switch {
		case firstErr != nil:
		case o.fatal != nil:
			firstErr = o.fatal
		case o.srcErr != nil:
			from := r.blocks[o.id]
			if err := r.badObject("block", o.id, from.path, from.commit, o.srcErr); err != nil {
				firstErr = err
			}
		default:
			r.blockSize[o.id] = o.size
			r.stats.blocks++
			r.stats.bytes += o.size
			if r.e.Progress != nil {
				r.e.Progress.Done(1, o.size)
			}
		}
		if firstErr != nil {
			cancel()
		}
	}
	return firstErr
}

func (r *run) copyBlock(ctx context.Context, id string) (size int64, srcErr, fatal error) {
	if err := ctx.Err(); err != nil {
		return 0, nil, err
	}
	rc, err := r.e.Source.Block(ctx, r.lib, id)
	if err != nil {
		if ctx.Err() != nil {
			return 0, nil, ctx.Err()
		}
		return 0, err, nil
	}
	defer rc.Close()
	w, err := r.e.Store.Create(ctx, object.KindBlock, r.keys.For(object.KindBlock), id)
	if err != nil {
		return 0, nil, err
	}
	h := object.NewBlockHasher(id)
	var writeErr error
	_, err = io.Copy(io.MultiWriter(h, writerFunc(func(p []byte) (int, error) {
		n, err := w.Write(p)
		if err != nil {
			writeErr = err
		}
		return n, err
	})), rc)
	if err == nil {
		err = h.Check()
	}
	if err != nil {
		w.Abort()
		if writeErr != nil || ctx.Err() != nil {
			return 0, nil, errors.Join(writeErr, ctx.Err())
		}
		return 0, err, nil
	}
	if err := w.Commit(); err != nil {
		return 0, nil, err
	}
	return h.Size(), nil, nil
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// writeFS writes the fetched files and dirs whose whole subtree is now in the backup,
// children before parents. A file or dir above a hole is not written, so the next walk
// reaches the hole again.
func (r *run) writeFS(ctx context.Context) error {
	complete := make(map[string]bool, len(r.nodes))
	r.complete = complete
	var visit func(id string) (bool, error)
	visit = func(id string) (bool, error) {
		if ok, done := complete[id]; done {
			return ok, nil
		}
		if r.bad[id] {
			return false, nil
		}
		n := r.nodes[id]
		if n == nil {
			return true, nil // present in the backup before this run
		}
		complete[id] = false // guards against a cycle in a hostile tree
		ok := true
		if n.isDir {
			for _, child := range n.children {
				c, err := visit(child)
				if err != nil {
					return false, err
				}
				ok = ok && c
			}
		} else {
			var err error
			if ok, err = r.fileComplete(ctx, id, n); err != nil {
				return false, err
			}
		}
		if ok && !n.fromStore {
			if err := store.Put(ctx, r.e.Store, object.KindFS, r.keys.For(object.KindFS), id, n.raw); err != nil {
				return false, err
			}
			r.stats.fs++
			r.stats.bytes += int64(len(n.raw))
		}
		complete[id] = ok
		return ok, nil
	}
	for _, id := range r.order {
		if _, err := visit(id); err != nil {
			return err
		}
	}
	return nil
}

// fileComplete checks a file's blocks are all in the backup and add up to its size.
func (r *run) fileComplete(ctx context.Context, id string, n *node) (bool, error) {
	var total int64
	for _, b := range n.children {
		if r.bad[b] {
			return false, nil
		}
		size, ok := r.blockSize[b]
		if !ok {
			var err error
			if size, err = r.e.Store.Size(ctx, object.KindBlock, r.keys.For(object.KindBlock), b); err != nil {
				return false, err
			}
		}
		total += size
	}
	if err := object.CheckFileSize(id, n.size, len(n.children), total, r.lib.Encrypted || n.commit.Encrypted); err != nil {
		if herr := r.badObject("fs object", id, n.path, n.commit, err); herr != nil {
			return false, herr
		}
		return false, nil
	}
	return true, nil
}

// writeCommits writes the new commits, parents before children, so a present commit
// always has its history below it.
func (r *run) writeCommits(ctx context.Context) error {
	written := map[string]bool{}
	var visit func(c *object.Commit) error
	visit = func(c *object.Commit) error {
		if written[c.ID] {
			return nil
		}
		written[c.ID] = true
		for _, p := range c.Parents() {
			if pc := r.commits[p]; pc != nil {
				if err := visit(pc); err != nil {
					return err
				}
			}
		}
		if err := store.Put(ctx, r.e.Store, object.KindCommit, r.keys.For(object.KindCommit), c.ID, c.Raw); err != nil {
			return err
		}
		r.stats.commits++
		r.stats.bytes += int64(len(c.Raw))
		return nil
	}
	ids := make([]string, 0, len(r.commits))
	for id := range r.commits {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		if err := visit(r.commits[id]); err != nil {
			return err
		}
	}
	return nil
}

// keepOldHead reports whether oldHead is no longer in the history of the new head, so
// the state must remember it to keep it restorable.
func (r *run) keepOldHead(ctx context.Context, oldHead string) (bool, error) {
	if r.reached[oldHead] && !r.walkedOldHeads {
		return false, nil
	}
	// The walk stopped short of the old head: look for it in the backup's history.
	seen := map[string]bool{}
	queue := []string{r.lib.Head}
	for len(queue) > 0 {
		id := queue[0]
		queue = queue[1:]
		if seen[id] {
			continue
		}
		seen[id] = true
		if id == oldHead {
			return false, nil
		}
		raw, err := r.e.Store.Get(ctx, object.KindCommit, r.keys.For(object.KindCommit), id)
		if errors.Is(err, store.ErrNotExist) {
			continue // a hole in history
		}
		if err != nil {
			return false, err
		}
		c, err := object.ParseCommit(raw, id, r.lib.ID)
		if err != nil {
			return false, fmt.Errorf("backup commit %s: %w", id, err)
		}
		queue = append(queue, c.Parents()...)
	}
	return true, nil
}

// holesFor returns this run's holes, keeping the first-seen time of known ones.
func (r *run) holesFor(old []state.Hole, now time.Time) []state.Hole {
	first := map[string]time.Time{}
	for _, h := range old {
		first[h.ID] = h.FirstSeen
	}
	out := make([]state.Hole, 0, len(r.holes))
	for _, h := range r.holes {
		h.FirstSeen = now
		if t, ok := first[h.ID]; ok {
			h.FirstSeen = t
		}
		out = append(out, h)
	}
	return out
}

func (r *run) truncatedList() []string {
	out := make([]string, 0, len(r.truncated))
	for id := range r.truncated {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

func mergeSorted(a, b []string) []string {
	set := map[string]bool{}
	for _, s := range a {
		set[s] = true
	}
	for _, s := range b {
		set[s] = true
	}
	out := make([]string, 0, len(set))
	for s := range set {
		out = append(out, s)
	}
	sort.Strings(out)
	if len(out) == 0 {
		return nil
	}
	return out
}
