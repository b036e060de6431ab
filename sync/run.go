package sync

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
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

// smallCopy and smallCopyBytes are how much (commits and fs objects, and their bytes
// as received) a copy may fetch before it counts as large and waits for one of the
// parallel large-copy slots (see LimitTransfers). It asks before a fetch that would go
// past the count, and once the bytes are past, so a copy waiting there holds at most
// about this much: with 1 000 objects, and a fetch checked only after it, 32 copies of
// 5 000-file libraries waiting for their turn doubled a scan's peak RSS. The bytes
// count because one fs object is a whole dir: 256 dirs of 100 entries are 5 MiB decoded.
var (
	smallCopy      = 256
	smallCopyBytes = 128 << 10
)

// smallDirBatch is how many dirs a copy that may have to wait for a large-copy slot
// fetches at once, rather than dirBatch: the batch that takes it past smallCopyBytes
// is held while it waits.
const smallDirBatch = 8

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

	// unrepaired are the objects a repair could not fetch again (see badObject).
	unrepaired []*ObjectError

	commits  map[string]*object.Commit // commits to write, fetched in this run
	toWalk   []*object.Commit          // commits whose trees are walked
	headTime time.Time                 // the head commit's ctime, when it was walked
	reached  map[string]bool           // commits met by the walk, new or already present
	whole    map[string]bool           // walked commits whose tree is now whole in the backup

	// Per-object memory is kept to what presence in the store cannot answer, so it does
	// not grow with the library: ids the primary could not give, fs objects not whole
	// because of them, and during a re-check (where presence proves nothing) what was
	// already verified.
	bad      map[string]bool // ids the primary could not give, recorded
	notWhole map[string]bool // fs ids settled in this run as not whole (below a hole)
	verified *verifiedCache  // re-check: objects verified or written in this run (bounded)

	holes     []state.Hole
	truncated map[string]bool
	// gcKept are commits older than the history limit whose trees Seafile's GC keeps
	// all the same (see mayBeTrimmed); set once the commits are walked.
	gcKept map[string]bool

	// fetched and fetchedBytes count the commits and fs objects taken from the primary,
	// for smallCopy; releaseLarge gives back the large-copy slot, nil until one is taken.
	fetched      int
	fetchedBytes int
	releaseLarge func()

	stats struct {
		commits, fs, blocks int
		bytes               int64
		frontier            int // most fs objects held at once
	}
}

func newRun(e *Engine, lib primary.Library, rec state.Library, recheck bool, log *slog.Logger) *run {
	r := &run{
		e: e, lib: lib, rec: rec, recheck: recheck, log: log,
		keys:       object.Keys{RepoID: lib.ID, StoreID: lib.StoreID},
		knownHoles: map[string]bool{},
		commits:    map[string]*object.Commit{},
		reached:    map[string]bool{},
		whole:      map[string]bool{},
		bad:        map[string]bool{},
		notWhole:   map[string]bool{},
		verified:   newVerifiedCache(recheckCacheLimit),
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
	for _, c := range r.toWalk {
		if c.ID == r.lib.Head && c.Ctime > 0 {
			r.headTime = time.Unix(c.Ctime, 0).UTC()
		}
	}
	r.markGCKept()
	if err := r.skipTrimmedTrees(ctx); err != nil {
		return err
	}
	w := r.startWorkers(ctx)
	for _, c := range r.toWalk {
		ok, err := r.walkTree(ctx, w, c)
		if err != nil {
			w.stop()
			return err
		}
		r.whole[c.ID] = ok
	}
	w.stop()
	if len(r.unrepaired) > 0 {
		// Before recordIncompleteTrees: the trees above these are not holes to record.
		errs := make([]error, len(r.unrepaired))
		for i, oe := range r.unrepaired {
			errs[i] = oe
		}
		return fmt.Errorf("%d objects the primary cannot give again (the others found damaged were repaired): %w", len(errs), errors.Join(errs...))
	}
	r.recordIncompleteTrees()
	return r.writeCommits(ctx)
}

// markGCKept finds, among the commits walked, those Seafile's GC keeps whatever their
// age. Its walk of a library (gc-core.c, traverse_commit) always traverses the head,
// goes on through every commit not older than the limit, and still traverses "the first
// commit older than truncate_time" on each path before it stops: so the head's tree
// and those of the parents of the head and of every commit not older than the limit are
// whole on a sound primary. A library unchanged for longer than its history limit has
// a head older than RepoValidSince, and an object missing from its tree is a fault.
func (r *run) markGCKept() {
	r.gcKept = map[string]bool{r.lib.Head: true}
	for _, c := range r.toWalk {
		if c.ID == r.lib.Head || c.Ctime >= r.lib.ValidSince {
			for _, p := range c.Parents() {
				r.gcKept[p] = true
			}
		}
	}
}

// mayBeTrimmed reports whether c's tree may lack objects because of the library's
// history limit (see markGCKept): it is older than RepoValidSince, and not a commit
// whose tree Seafile's GC keeps.
func (r *run) mayBeTrimmed(c *object.Commit) bool {
	return r.lib.ValidSince > 0 && c.Ctime < r.lib.ValidSince && !r.gcKept[c.ID]
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
		if !r.mayBeTrimmed(c) {
			inLimit[c.RootID] = true
		}
	}
	oldByRoot := map[string][]*object.Commit{}
	var roots []string
	for _, c := range r.toWalk {
		if !r.mayBeTrimmed(c) || c.RootID == object.EmptyID || inLimit[c.RootID] {
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
		if c.RootID == object.EmptyID || r.whole[c.ID] || recorded[c.ID] || r.truncated[c.ID] {
			continue
		}
		if r.mayBeTrimmed(c) {
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
		if err := r.mayGrow(ctx, 1); err != nil {
			return err
		}
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

// unreadable reports whether a re-check takes err as one object the filesystem cannot
// read (store.Unreadable), to fetch again and write over as it does a damaged one.
// Anything else (the store as a whole failing) stops the sync.
func (r *run) unreadable(err error) bool { return r.recheck && store.Unreadable(err) }

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
		if err != nil && !r.unreadable(err) {
			return nil, false, err
		}
		var c *object.Commit
		perr := err
		if err == nil {
			c, perr = object.ParseCommit(raw, id, r.lib.ID)
		}
		if perr == nil {
			// A retried commit's history was complete before; a re-check reads it all.
			return c, r.recheck, nil
		}
		r.log.Warn("backup copy of a commit is damaged; fetching it again", "commit", id, "err", perr)
	}
	raw, err := r.e.Source.Commit(ctx, r.lib, id)
	r.fetched++
	r.fetchedBytes += len(raw)
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

// mayWaitToGrow: ctx has large-copy slots (a scan's wide copies) and the copy holds
// none, so a fetch may make it wait for one, holding what it fetched meanwhile.
func (r *run) mayWaitToGrow(ctx context.Context) bool {
	return r.releaseLarge == nil && transferSlots(ctx) != nil
}

// mayGrow takes a large-copy slot (see LimitTransfers) before the copy fetches more
// objects that would take it past smallCopy, or any once past smallCopyBytes. Called
// only between fetches: a copy waiting
// here holds no request in flight, and its block workers finish theirs without it (their
// results never fill the channel), so the large copies it waits for always get the
// requests they need.
func (r *run) mayGrow(ctx context.Context, more int) error {
	if r.releaseLarge != nil || r.fetched+more <= smallCopy && r.fetchedBytes <= smallCopyBytes {
		return nil
	}
	release, err := slot(ctx, largeSlot)
	if err != nil {
		return err
	}
	r.releaseLarge = release
	return nil
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
	if class == Absent && c != nil && r.mayBeTrimmed(c) {
		r.bad[id] = true
		r.truncated[c.ID] = true
		return nil
	}
	if class.Skippable() && !oe.Head && !r.e.Force && !r.knownHoles[id] && r.recheck && r.e.Recheck {
		// A repair (verify --repair) goes on past what it cannot fix, so that every
		// other damaged object is fetched again, and fails at the end naming them all
		// (transfer): nothing is recorded, no hole made.
		r.bad[id] = true
		r.unrepaired = append(r.unrepaired, oe)
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

// blockLimit is the most bytes a block of a file of fileSize bytes can hold: the whole
// file, and for an encrypted library one AES block of padding more.
func blockLimit(fileSize int64) int64 { return fileSize + 16 }

// copier is one block worker's reusable state: a fresh 32 KiB buffer per block (what
// io.Copy allocates) was most of a first backup's garbage (issue 10).
type copier struct {
	buf []byte
	h   *object.BlockHasher
}

// copyBufSize is large enough that a block of Seafile's usual sizes moves in a few
// read and write calls.
const copyBufSize = 256 << 10

func newCopier() *copier {
	return &copier{buf: make([]byte, copyBufSize), h: object.NewBlockHasher(object.EmptyID)}
}

// copiers are shared by the runs of a process: a scan of thousands of small libraries
// would otherwise zero a fresh 256 KiB buffer per worker per library (most of its CPU).
var copiers = gosync.Pool{New: func() any { return newCopier() }}

// copyBlock copies block id from the primary, hashing it on the way. Its copier is
// taken only once the block is answered and given back at once: over HTTP a scan has
// many more workers waiting for a request slot than blocks arriving, and a 256 KiB
// buffer held by each waiting worker made most of a scan's garbage (issue 10).
//
// It reads at most limit bytes: a primary that keeps sending (a broken or hostile file
// server, a data dir entry that is a device) is refused as corrupt, rather than filling
// the backup disk before the hash could be checked at the end.
func (r *run) copyBlock(ctx context.Context, id string, limit int64) (size int64, srcErr, fatal error) {
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
	cp := copiers.Get().(*copier)
	defer copiers.Put(cp)
	cp.h.Reset(id)
	// A plain loop rather than io.CopyBuffer, which would hand a source with WriteTo
	// (an *os.File) its own buffer again.
	var readErr, writeErr error
	for {
		n, err := rc.Read(cp.buf)
		if cp.h.Size()+int64(n) > limit {
			readErr = fmt.Errorf("%w: block %s: more than %d bytes, the size of the file that holds it", object.ErrInvalid, id, limit)
			break
		}
		if n > 0 {
			cp.h.Write(cp.buf[:n])
			if _, writeErr = w.Write(cp.buf[:n]); writeErr != nil {
				break
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			readErr = err
			break
		}
	}
	if readErr == nil && writeErr == nil {
		readErr = cp.h.Check()
	}
	if readErr != nil || writeErr != nil {
		w.Abort()
		if writeErr != nil || ctx.Err() != nil {
			return 0, nil, errors.Join(writeErr, ctx.Err())
		}
		return 0, readErr, nil
	}
	if err := w.Commit(); err != nil {
		return 0, nil, err
	}
	return cp.h.Size(), nil, nil
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
