package sync

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	gosync "sync"

	"seafbak/sync/object"
	"seafbak/sync/primary"
	"seafbak/sync/store"
)

// A commit's tree is copied as a stream, depth first: dirs are fetched and listed, each
// file's missing blocks go to the block workers, and every fs object is written as soon
// as all it references is in the backup (blocks, then the file, then its dir, up to the
// root), never before: present means complete (invariant 1). What is held meanwhile is
// the frontier (dirs listed but not yet whole, files waiting for blocks), not the whole
// tree, so memory does not grow with the library (issue 10: 162 MiB on 100 000 files
// when every fetched object waited for the end).

// dirBatch is how many named dirs are fetched at once. Only these are held decoded: a
// dir's subdirs wait on the stack as bare names until their turn, so a wide dir does not
// bring its whole next level into memory.
const dirBatch = 64

// window bounds the jobs (block copies, fs writes) queued or running at once: it is what
// keeps the walk ahead of the workers without holding the whole tree.
const window = 512

// tnode is an fs object of the tree being copied, from when an entry names it until it
// is whole in the backup (or known not to be).
type tnode struct {
	id string
	// name and up (the dir whose entry first named it; nil for the root) give its
	// path, built only for a message or a hole: a full path in every node made a deep
	// tree of long names cost memory in its depth squared.
	name string
	up   *tnode
	dir  bool // what the entry that first named it says it is

	raw []byte // as received, to be written once whole
	// ref is the dir at the same path in a reference tree present in the backup (and so
	// whole there), "" if none: entries that reference tree has are present without a
	// presence check each. See reference.
	ref       string
	fs        *object.FS // a dir until it is listed
	fromStore bool       // re-read from the backup during a re-check: nothing to write

	size   int64 // a file: the size it records
	blocks int   // a file: its block references
	stored int64 // a file: bytes of those blocks known to be in the backup

	pending int  // entries or block references not yet settled, +1 until listed
	ok      bool // false once one of them cannot be made whole
	// parents are the dirs waiting for this object; a nil one is the commit itself.
	parents []*tnode
}

// path is n's path in the commit's tree, "/" for the root.
func (n *tnode) path() string {
	if n.up == nil {
		return "/"
	}
	var names []string
	for x := n; x.up != nil; x = x.up {
		names = append(names, x.name)
	}
	slices.Reverse(names)
	return "/" + strings.Join(names, "/")
}

// job is one unit of work for the workers: copying a block, or writing a whole fs object.
type job struct {
	block string // the block to copy; "" to write fs object id
	limit int64  // the most bytes the block can have (see blockLimit)
	id    string
	raw   []byte
	quit  bool // the run is over: the worker returns
}

type result struct {
	job
	size   int64
	srcErr error // the primary's fault: maybe a hole
	fatal  error // ours: fails the sync
}

// workers copy blocks and write fs objects for every tree of a run. They start as jobs
// come, up to max, and their channels are reused by later runs: a scan of thousands of
// one-file libraries would otherwise start max goroutines (32 over HTTP) and allocate
// both channels (about 80 KB) for each library's one block and two fs objects.
type workers struct {
	*workerChans
	r       *run
	ctx     context.Context
	cancel  context.CancelFunc
	max     int
	started int // workers running; only the walk starts them
	// own workers are the copy's; more come from shared (a scan's wide copies), each
	// given back when the workers stop.
	own    int
	shared *slots
	exited chan struct{} // one send per worker that returns
}

// workerChans are a run's job and result queues, empty when a run gives them back.
// Buffered so the workers keep busy while the walk lists and fetches, and never wait
// to hand back a result: at most window jobs wait in jobs, max more are running.
type workerChans struct {
	jobs    chan job
	results chan result
}

var idleWorkerChans gosync.Pool // of *workerChans

func (r *run) startWorkers(ctx context.Context) *workers {
	own := r.e.Parallel
	if own <= 0 {
		own = 4
	}
	n := inFlight(r.e.Source, own)
	ctx, cancel := context.WithCancel(ctx)
	ch, _ := idleWorkerChans.Get().(*workerChans)
	if ch == nil || cap(ch.results) < window+n {
		ch = &workerChans{jobs: make(chan job, window), results: make(chan result, window+n)}
	}
	return &workers{workerChans: ch, r: r, ctx: ctx, cancel: cancel, max: n, exited: make(chan struct{}, n),
		own: own, shared: transferSlots(ctx)}
}

// grow starts workers until there is one per outstanding job, up to max.
func (w *workers) grow(outstanding int) {
	for w.started < min(outstanding, w.max) {
		if w.started >= w.own && w.shared != nil && !w.shared.takeExtraWorker() {
			return // the next grow tries again
		}
		w.started++
		go w.work()
	}
}

func (w *workers) work() {
	defer func() { w.exited <- struct{}{} }()
	r, ctx := w.r, w.ctx
	for j := range w.jobs {
		if j.quit {
			return
		}
		res := result{job: j}
		if err := ctx.Err(); err != nil {
			res.fatal = err // the sync failed: start nothing more
		} else if j.block != "" {
			res.size, res.srcErr, res.fatal = r.copyBlock(ctx, j.block, j.limit)
		} else {
			res.fatal = store.Put(ctx, r.e.Store, object.KindFS, r.keys.For(object.KindFS), j.id, j.raw)
		}
		w.results <- res
	}
}

// stop ends the workers; no job may be outstanding. The channels go back for another
// run only empty: a quit job per worker, each taken by a worker that then returns.
func (w *workers) stop() {
	w.cancel()
	for range w.started {
		w.jobs <- job{quit: true}
	}
	for range w.started {
		<-w.exited
	}
	if w.shared != nil && w.started > w.own {
		w.shared.extraWorkers.Add(int64(w.own - w.started))
	}
	if len(w.jobs) == 0 && len(w.results) == 0 {
		idleWorkerChans.Put(w.workerChans)
	}
	w.workerChans = nil
}

// tree is the copy of one commit's tree.
type tree struct {
	r *run
	c *object.Commit
	w *workers

	stack   []*tnode          // dirs not yet listed: fetched (fs set) or only named
	waiting map[string]*tnode // fs objects named but not yet settled, by id
	copying map[string][]*tnode
	queue   []job
	sent    int // jobs handed to workers and not yet answered

	rootDone, rootOK bool
	err              error // the first fatal error: nothing more is started
}

// walkTree copies what the backup lacks of c's tree and reports whether the tree is now
// whole in the backup (false: a hole or truncation below it).
func (r *run) walkTree(ctx context.Context, w *workers, c *object.Commit) (_ bool, err error) {
	root := c.RootID
	if root == object.EmptyID {
		return true, nil
	}
	t := &tree{r: r, c: c, w: w, waiting: map[string]*tnode{}, copying: map[string][]*tnode{}}
	rootNode := &tnode{id: root, dir: true, parents: []*tnode{nil}}
	if ok, settled, err := t.known(ctx, rootNode); err != nil || settled {
		return ok, err
	}
	if rootNode.ref, err = r.referenceRoot(ctx, c); err != nil {
		return false, err
	}
	if !rootNode.fromStore {
		t.waiting[root] = rootNode
		t.fetch(ctx, []*tnode{rootNode})
	}
	for t.err == nil && len(t.stack) > 0 {
		t.listSome(ctx)
		r.stats.frontier = max(r.stats.frontier, len(t.waiting))
		t.pump(window)
	}
	t.pump(0)
	if t.err != nil {
		return false, t.err
	}
	if !t.rootDone || len(t.waiting) > 0 || len(t.copying) > 0 {
		return false, fmt.Errorf("%w: tree of commit %s: the walk ended with %d fs objects and %d blocks unsettled",
			ErrInvariant, c.ID, len(t.waiting), len(t.copying))
	}
	return t.rootOK, nil
}

// known settles n without fetching it when it can: known bad, settled earlier in this
// run, or present in the backup (and trusted). During a re-check a present object is
// read, verified and taken like a fetched one (settled false, n.fromStore set); those
// waiting for n must already count it as pending.
func (t *tree) known(ctx context.Context, n *tnode) (ok, settled bool, err error) {
	r := t.r
	if r.bad[n.id] {
		return false, true, nil
	}
	if r.notWhole[n.id] {
		return false, true, nil
	}
	if r.recheck && r.verified.hasFS(n.id) {
		return true, true, nil
	}
	has, err := r.e.Store.Has(ctx, object.KindFS, r.keys.For(object.KindFS), n.id)
	if err != nil || !has {
		return false, false, err
	}
	if !r.recheck {
		return true, true, nil
	}
	raw, err := r.e.Store.Get(ctx, object.KindFS, r.keys.For(object.KindFS), n.id)
	if err != nil && !r.unreadable(err) {
		return false, false, err
	}
	var fs *object.FS
	perr := err
	if err == nil {
		fs, perr = object.ParseFS(n.id, raw)
	}
	if perr == nil && fs.IsDir() != n.dir {
		perr = fmt.Errorf("%w: dir entry and object disagree on being a directory", object.ErrInvalid)
	}
	if perr != nil {
		r.log.Warn("backup copy of an fs object is damaged; fetching it again", "id", n.id, "path", n.path(), "err", perr)
		return false, false, nil
	}
	n.fromStore = true
	t.waiting[n.id] = n
	t.accept(ctx, n, fs)
	return false, false, nil
}

// refDir is a dir of a reference tree: a tree present in the backup, hence whole there
// (invariant 1), at the same path as the dir being listed. An entry whose id it also
// holds is whole in the backup, so the walk settles it without asking the store: on S3
// each question is a request, and a one-file change asked one per entry of every dir on
// the changed path (204 HEADs for 4 new fs objects). A changed subdir is walked with
// the reference's subdir of the same name, so the walk stays a diff all the way down.
type refDir struct {
	ids    map[string]bool
	byName map[string]object.Dirent
}

func (d *refDir) has(id string) bool { return d != nil && d.ids[id] }

// subdir is the id of the reference's subdir called name, "" if it has none.
func (d *refDir) subdir(name string) string {
	if d == nil {
		return ""
	}
	if e, ok := d.byName[name]; ok && e.IsDir() {
		return e.ID
	}
	return ""
}

// reference reads the reference dir of d from the backup. Reading it is the proof of
// its presence; a reference that is absent, unreadable or damaged is no reference, and
// the walk asks the store entry by entry as before. Never during a re-check, where
// presence proves nothing.
func (t *tree) reference(ctx context.Context, d *tnode) *refDir {
	r := t.r
	if d.ref == "" || d.ref == d.id || r.recheck {
		return nil
	}
	raw, err := r.e.Store.Get(ctx, object.KindFS, r.keys.For(object.KindFS), d.ref)
	if err != nil {
		return nil
	}
	fs, err := object.ParseFS(d.ref, raw)
	if err != nil || !fs.IsDir() {
		return nil
	}
	ref := &refDir{ids: make(map[string]bool, len(fs.Dirents)), byName: make(map[string]object.Dirent, len(fs.Dirents))}
	for _, e := range fs.Dirents {
		ref.ids[e.ID] = true
		ref.byName[e.Name] = e
	}
	return ref
}

// referenceRoot picks the root of the reference tree for c's walk: its first parent's
// tree, or else the backed-up head's, whichever is present in the backup (a present dir
// is whole). For a one-file change the parent is the backed-up head.
func (r *run) referenceRoot(ctx context.Context, c *object.Commit) (string, error) {
	if r.recheck {
		return "", nil
	}
	for _, id := range []string{c.ParentID, r.rec.Head} {
		if id == "" {
			continue
		}
		root, err := r.rootOf(ctx, id)
		if err != nil || root == "" || root == object.EmptyID || root == c.RootID {
			continue // no reference from this one: the walk only asks more
		}
		has, err := r.e.Store.Has(ctx, object.KindFS, r.keys.For(object.KindFS), root)
		if err != nil {
			return "", err
		}
		if has {
			return root, nil
		}
	}
	return "", nil
}

// rootOf is a commit's root dir, from this run's fetched commits or the backup.
func (r *run) rootOf(ctx context.Context, commitID string) (string, error) {
	if c := r.commits[commitID]; c != nil {
		return c.RootID, nil
	}
	raw, err := r.e.Store.Get(ctx, object.KindCommit, r.keys.For(object.KindCommit), commitID)
	if err != nil {
		return "", err
	}
	c, err := object.ParseCommit(raw, commitID, r.lib.ID)
	if err != nil {
		return "", err
	}
	return c.RootID, nil
}

// listSome fetches the named dirs on top of the stack, or lists the fetched dirs on top
// of it, up to about fsBatch entries: their files the backup lacks are fetched in as few
// requests as the batch allows, their subdirs go on the stack to be fetched in turn.
func (t *tree) listSome(ctx context.Context) {
	if top := t.stack[len(t.stack)-1]; top.fs == nil {
		var dirs []*tnode
		batch := dirBatch
		if t.r.mayWaitToGrow(ctx) {
			batch = smallDirBatch
		}
		for len(t.stack) > 0 && len(dirs) < batch && t.stack[len(t.stack)-1].fs == nil {
			dirs = append(dirs, t.stack[len(t.stack)-1])
			t.stack = t.stack[:len(t.stack)-1]
		}
		t.fetch(ctx, dirs)
		return
	}
	var fetch, listed []*tnode
	for len(t.stack) > 0 && t.stack[len(t.stack)-1].fs != nil && len(fetch) < fsBatch && t.err == nil {
		d := t.stack[len(t.stack)-1]
		t.stack = t.stack[:len(t.stack)-1]
		listed = append(listed, d)
		fs := d.fs
		d.fs = nil
		ref := t.reference(ctx, d)
		for _, e := range fs.Dirents {
			if e.ID == object.EmptyID {
				continue
			}
			if n := t.waiting[e.ID]; n != nil {
				n.parents = append(n.parents, d)
				d.pending++
				continue
			}
			if ref.has(e.ID) {
				continue // whole in the backup: the reference dir holds it
			}
			n := &tnode{id: e.ID, name: e.Name, up: d, dir: e.IsDir(), parents: []*tnode{d}}
			if e.IsDir() {
				n.ref = ref.subdir(e.Name)
			}
			d.pending++ // before known: a re-checked object may settle within it
			ok, settled, err := t.known(ctx, n)
			if err != nil {
				t.fail(err)
				break
			}
			if settled {
				d.pending--
				d.ok = d.ok && ok
				continue
			}
			if !n.fromStore {
				t.waiting[n.id] = n
				if n.dir {
					t.stack = append(t.stack, n)
				} else {
					fetch = append(fetch, n)
				}
			}
		}
	}
	for start := 0; start < len(fetch) && t.err == nil; start += fsBatch {
		t.fetch(ctx, fetch[start:min(start+fsBatch, len(fetch))])
	}
	for _, d := range listed {
		t.release(d)
	}
}

// fetch asks the primary for a batch of fs objects (already in waiting) and verifies
// each answer; an object it cannot give is settled as not whole once recorded.
func (t *tree) fetch(ctx context.Context, batch []*tnode) {
	if t.err != nil {
		return
	}
	r := t.r
	if err := r.mayGrow(ctx, len(batch)); err != nil {
		t.fail(err)
		return
	}
	asked := make(map[string]*tnode, len(batch))
	ids := make([]string, len(batch))
	for i, n := range batch {
		ids[i] = n.id
		asked[n.id] = n
	}
	err := r.e.Source.FSObjects(ctx, r.lib, ids, func(id string, data []byte, err error) error {
		n, ok := asked[id]
		if !ok {
			return fmt.Errorf("primary answered fs object %q, which was not asked for (or twice)", id)
		}
		delete(asked, id)
		r.fetched++
		r.fetchedBytes += len(data)
		var fs *object.FS
		if err == nil {
			fs, err = object.ParseFS(id, data)
		}
		if err == nil && fs.IsDir() != n.dir {
			err = fmt.Errorf("%w: fs object %s: its dir entry and the object disagree on being a directory", object.ErrInvalid, id)
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if herr := r.badObject("fs object", id, n.path(), t.c, err); herr != nil {
				return herr
			}
			t.settle(n, false)
			return nil
		}
		n.raw = data
		t.accept(ctx, n, fs)
		return t.err
	})
	var oe *ObjectError
	if err != nil && !errors.As(err, &oe) && ctx.Err() == nil && t.err == nil {
		// The batch as a whole got no answer: name its first object and where it was met.
		first := batch[0]
		err = &ObjectError{Kind: "fs object", ID: first.id, Path: first.path(), Commit: t.c.ID, Class: classify(err),
			Err: fmt.Errorf("fetching it with %d other objects: %w", len(batch)-1, err)}
	}
	if err != nil {
		t.fail(err)
		return
	}
	for id, n := range asked {
		err := &primary.NotFoundError{Kind: "fs object", ID: id}
		if herr := r.badObject("fs object", id, n.path(), t.c, fmt.Errorf("primary did not answer it: %w", err)); herr != nil {
			t.fail(herr)
			return
		}
		t.settle(n, false)
	}
}

// accept takes a verified fs object: a dir goes on the stack to be listed, a file has
// its blocks looked for and the missing ones queued for copying.
func (t *tree) accept(ctx context.Context, n *tnode, fs *object.FS) {
	n.ok, n.pending = true, 1
	if fs.IsDir() {
		n.fs = fs
		t.stack = append(t.stack, n)
		return
	}
	r := t.r
	n.size, n.blocks = fs.Size, len(fs.BlockIDs)
	for _, b := range fs.BlockIDs {
		if r.bad[b] {
			n.ok = false
			continue
		}
		if files, ok := t.copying[b]; ok {
			t.copying[b] = append(files, n)
			n.pending++
			continue
		}
		size, present, err := r.blockPresent(ctx, b, n.path)
		if err != nil {
			t.fail(err)
			return
		}
		if present {
			n.stored += size
			continue
		}
		t.copying[b] = []*tnode{n}
		n.pending++
		t.queue = append(t.queue, job{block: b, limit: blockLimit(fs.Size)})
		if r.e.Progress != nil {
			r.e.Progress.Todo(1, 0)
		}
	}
	t.release(n)
}

// release drops one pending count of n, settling it when nothing is left.
func (t *tree) release(n *tnode) {
	n.pending--
	if n.pending > 0 {
		return
	}
	if !n.dir && n.ok {
		if err := object.CheckFileSize(n.id, n.size, n.blocks, n.stored, t.r.lib.Encrypted || t.c.Encrypted); err != nil {
			if herr := t.r.badObject("fs object", n.id, n.path(), t.c, err); herr != nil {
				t.fail(herr)
				return
			}
			n.ok = false
		}
	}
	if n.ok && !n.fromStore {
		if t.err == nil {
			t.queue = append(t.queue, job{id: n.id, raw: n.raw})
		}
		return // settled when written
	}
	t.settle(n, n.ok)
}

// settle records that n is whole in the backup (or cannot be) and tells those waiting.
func (t *tree) settle(n *tnode, ok bool) {
	delete(t.waiting, n.id)
	switch {
	case !ok:
		t.r.notWhole[n.id] = true // few: those above holes
	case t.r.recheck:
		t.r.verified.addFS(n.id) // presence answers for the rest
	}
	n.raw = nil
	for _, p := range n.parents {
		if p == nil {
			t.rootDone, t.rootOK = true, ok
			continue
		}
		p.ok = p.ok && ok
		t.release(p)
	}
	n.parents = nil
}

// pump hands jobs to the workers and takes their results until at most limit are queued
// or running, then hands out what fits without waiting; after a fatal error it only waits
// for those running.
func (t *tree) pump(limit int) {
	t.w.grow(len(t.queue) + t.sent)
	for {
		if t.err != nil {
			t.queue = nil
		}
		if len(t.queue)+t.sent <= limit {
			break
		}
		var send chan<- job
		var next job
		if len(t.queue) > 0 {
			send, next = t.w.jobs, t.queue[0]
		}
		select {
		case send <- next:
			t.popQueue()
		case res := <-t.w.results:
			t.sent--
			t.done(res)
		}
	}
	for len(t.queue) > 0 && t.err == nil {
		select {
		case t.w.jobs <- t.queue[0]:
			t.popQueue()
		default:
			return
		}
	}
}

func (t *tree) popQueue() {
	t.queue[0] = job{}
	t.queue = t.queue[1:]
	t.sent++
}

// done takes one worker's result.
func (t *tree) done(res result) {
	r := t.r
	if res.fatal != nil {
		t.fail(res.fatal)
		return
	}
	if res.block == "" {
		n := t.waiting[res.id]
		r.stats.fs++
		r.stats.bytes += int64(len(res.raw))
		t.settle(n, true)
		return
	}
	files := t.copying[res.block]
	delete(t.copying, res.block)
	ok := res.srcErr == nil
	if !ok {
		from := files[0]
		if err := r.badObject("block", res.block, from.path(), t.c, res.srcErr); err != nil {
			t.fail(err)
			return
		}
	} else {
		r.stats.blocks++
		r.stats.bytes += res.size
		if r.recheck {
			r.verified.addBlock(res.block, res.size)
		}
		if r.e.Progress != nil {
			r.e.Progress.Done(1, res.size)
		}
	}
	for _, f := range files {
		if ok {
			f.stored += res.size
		} else {
			f.ok = false
		}
		t.release(f)
	}
}

func (t *tree) fail(err error) {
	if t.err == nil {
		t.err = err
		t.w.cancel()
	}
}

// blockPresent says whether the backup has block id, and its size. During a re-check
// the copy is read and hashed (once per run): after a crash it may be present but empty.
func (r *run) blockPresent(ctx context.Context, id string, where func() string) (int64, bool, error) {
	if r.recheck {
		if size, ok := r.verified.blockSize(id); ok {
			return size, true, nil
		}
	}
	size, err := r.e.Store.Size(ctx, object.KindBlock, r.keys.For(object.KindBlock), id)
	if errors.Is(err, store.ErrNotExist) {
		return 0, false, nil
	}
	if err == nil && size < 0 {
		// The store's answer, not the primary's: left in, it would fail the file's
		// size check and blame the primary's fs object.
		err = fmt.Errorf("backup store: block %s: answered a size of %d bytes: %w", id, size, store.ErrUnavailable)
	}
	if err != nil || !r.recheck {
		return size, err == nil, err
	}
	rc, err := r.e.Store.Open(ctx, object.KindBlock, r.keys.For(object.KindBlock), id)
	if err != nil {
		if r.unreadable(err) {
			r.log.Warn("backup copy of a block cannot be read; fetching it again", "id", id, "path", where(), "err", err)
			return 0, false, nil
		}
		return 0, false, err
	}
	defer rc.Close()
	// A pooled buffer and hasher: a re-check reads every block of the library, and
	// io.Copy would allocate 32 KiB for each.
	cp := copiers.Get().(*copier)
	defer copiers.Put(cp)
	h := cp.h
	h.Reset(id)
	for {
		n, err := rc.Read(cp.buf)
		h.Write(cp.buf[:n])
		if err == io.EOF {
			break
		}
		if err != nil {
			if r.unreadable(err) {
				r.log.Warn("backup copy of a block cannot be read; fetching it again", "id", id, "path", where(), "err", err)
				return 0, false, nil
			}
			return 0, false, err
		}
	}
	if err := h.Check(); err != nil {
		r.log.Warn("backup copy of a block is damaged; fetching it again", "id", id, "path", where(), "err", err)
		return 0, false, nil
	}
	r.verified.addBlock(id, h.Size())
	return h.Size(), true, nil
}
