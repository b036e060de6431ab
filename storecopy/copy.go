// Package storecopy copies a whole backup store into another one (`seafbak store copy`):
// a filesystem store to S3 and back, or any Store to any other. Every library the state
// records is copied with its full history (its head and the old heads the primary moved
// away from), verified object by object as it is read, and written bottom-up as the
// engine writes: blocks, then files, then dirs from the leaves up, then commits oldest
// first, so the destination keeps invariant 1 (present means complete) at every instant.
// A present dir or commit in the destination is trusted as complete and skipped, which
// is what makes a rerun after a kill resume where the last run stopped.
//
// Objects the state records as missing (holes the primary could not give, trees the
// primary's GC truncated) are missing from the copy too, the same way: what is above
// them is not written. A corrupt object in the source is never copied: its library
// fails, naming the object, and the other libraries go on; unless the state records
// that object as a hole (a repair sync found it damaged and the primary without it),
// and then it is left out as a missing one is. Nothing is ever deleted, in
// either store; the state is only read.
package storecopy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"slices"
	"sort"
	gosync "sync"
	"sync/atomic"
	"time"

	"seafbak/internal/progress"
	"seafbak/restore"
	"seafbak/state"
	"seafbak/sync/object"
	"seafbak/sync/store"
)

// Options says what Copy copies and how.
type Options struct {
	From, To store.Store
	// State holds the library records: which libraries, heads and old heads to copy,
	// and which objects are known to be missing (holes, truncated history).
	State *state.Dir
	// Libraries limits the copy to these library ids; empty means every library.
	Libraries []string
	Log       *slog.Logger // nil: silent
	// Parallel is how many objects are copied at once (default 8).
	Parallel int
	// Full does not trust a commit present in the destination to have its history below
	// it: every commit of every history is read from the source and its tree walked
	// (present dirs are still trusted as complete). For a destination that something
	// other than seafbak wrote to, or after holes were filled in the source.
	Full bool
	// Recheck trusts nothing in the destination: every object of every history is read
	// from the source, and one already in the destination is read back and compared
	// (blocks hashed); missing or damaged ones are written again. For a destination
	// that may have lost writes: a filesystem store after a power loss or an OS crash
	// during a copy (its objects are made durable together at the end), or bit rot.
	// Implies Full. Each object is checked once per library per run.
	Recheck  bool
	Progress progress.Meter // nil: none
}

// Counts are objects of each kind and their stored bytes.
type Counts struct {
	Commits   int64 `json:"commits"`
	FSObjects int64 `json:"fs_objects"`
	Blocks    int64 `json:"blocks"`
	Bytes     int64 `json:"bytes"`
}

// Objects is the number of objects of every kind.
func (c Counts) Objects() int64 { return c.Commits + c.FSObjects + c.Blocks }

func (c *Counts) add(o Counts) {
	c.Commits += o.Commits
	c.FSObjects += o.FSObjects
	c.Blocks += o.Blocks
	c.Bytes += o.Bytes
}

// LibraryResult is what Copy did for one library.
type LibraryResult struct {
	RepoID  string   `json:"repo_id"`
	StoreID string   `json:"store_id,omitempty"`
	Name    string   `json:"name,omitempty"`
	Heads   []string `json:"heads,omitempty"`
	// Copied are the objects written into the destination; Present those found there
	// already and skipped (a present dir or commit stands for everything below it,
	// which is not counted).
	Copied  Counts `json:"copied"`
	Present Counts `json:"present"`
	// Incomplete counts commits whose trees are not whole in the source, as the state
	// records (holes, truncated history): copied as they are, without what is missing.
	Incomplete int `json:"incomplete,omitempty"`
	// Skipped says why nothing was copied (no head backed up yet).
	Skipped string `json:"skipped,omitempty"`
	// Error says why the library failed; what was copied before stays (complete).
	Error string `json:"error,omitempty"`
}

// Result is what Copy did.
type Result struct {
	Libraries []LibraryResult `json:"libraries"`
	Copied    Counts          `json:"copied"`
	Present   Counts          `json:"present"`
	Failed    int             `json:"failed"`
	Seconds   float64         `json:"seconds"`
}

// MarshalJSON writes an empty list of libraries as [], never null.
func (r Result) MarshalJSON() ([]byte, error) {
	type plain Result
	if r.Libraries == nil {
		r.Libraries = []LibraryResult{}
	}
	return json.Marshal(plain(r))
}

// ObjectError is an object of the source that cannot be copied: missing without the
// state saying why, or corrupt (its bytes do not match its id).
type ObjectError struct {
	RepoID  string
	Kind    object.Kind
	ID      string
	Path    string // where in the tree, "" for a commit
	Commit  string // the commit whose tree it is in
	Missing bool
	Err     error
}

func (e *ObjectError) Error() string {
	what := "corrupt in the source store"
	if e.Missing {
		what = "missing from the source store"
	}
	s := fmt.Sprintf("library %s: %s %s", e.RepoID, kindName(e.Kind), e.ID)
	if e.Path != "" {
		s += fmt.Sprintf(" at %q", e.Path)
	}
	if e.Commit != "" && e.Commit != e.ID {
		s += " in commit " + e.Commit
	}
	return fmt.Sprintf("%s: %s, not copied: %v (run seafbak verify --repair on the source first)", s, what, e.Err)
}

func (e *ObjectError) Unwrap() error { return e.Err }

// kindName is an object kind in the singular, for messages.
func kindName(k object.Kind) string {
	switch k {
	case object.KindCommit:
		return "commit"
	case object.KindFS:
		return "fs object"
	}
	return "block"
}

// ErrFailed is wrapped by Copy's error when some libraries failed.
var ErrFailed = errors.New("libraries failed to copy")

// Copy copies every library of the state (or opts.Libraries) from opts.From into
// opts.To, then makes the destination durable (To.Sync). Libraries that fail are
// reported in the result and Copy's error wraps ErrFailed; an error without a result's
// worth of libraries (the state unreadable, ctx ended) stops Copy as a whole.
func Copy(ctx context.Context, opts Options) (Result, error) {
	start := time.Now()
	var res Result
	if opts.From == nil || opts.To == nil || opts.State == nil {
		return res, errors.New("store copy: no source, destination or state")
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	par := opts.Parallel
	if par <= 0 {
		par = 8
	}
	if opts.Recheck {
		opts.Full = true
	}
	recs, damaged, err := records(opts)
	if err != nil {
		return res, err
	}
	if len(recs) == 0 && len(damaged) == 0 {
		return res, fmt.Errorf("store copy: the state %s records no library: nothing to copy (is it your backup's state directory, and is its disk mounted?)", opts.State.Root())
	}
	res.Libraries = append(res.Libraries, damaged...)
	c := &copier{opts: opts, log: log, tokens: make(chan struct{}, par), prog: opts.Progress}
	c.bufs.New = func() any { b := make([]byte, 256<<10); return &b }

	// Libraries sharing a store (an origin and its virtual libraries) are copied one
	// after the other by the same worker: they share fs objects and blocks, and one
	// listing of the destination's store serves them all.
	groups := map[string][]state.Library{}
	var order []string
	for _, r := range recs {
		sid := restore.LibraryOf(r).StoreID
		if groups[sid] == nil {
			order = append(order, sid)
		}
		groups[sid] = append(groups[sid], r)
	}
	results := make(map[string][]LibraryResult, len(order))
	var mu gosync.Mutex
	next := make(chan string)
	var wg gosync.WaitGroup
	for range min(max(par/2, 1), max(len(order), 1)) {
		wg.Go(func() {
			for sid := range next {
				rs := c.group(ctx, sid, groups[sid])
				mu.Lock()
				results[sid] = rs
				mu.Unlock()
			}
		})
	}
feed:
	for _, sid := range order {
		select {
		case next <- sid:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	for _, sid := range order {
		res.Libraries = append(res.Libraries, results[sid]...)
	}
	sort.Slice(res.Libraries, func(i, j int) bool { return res.Libraries[i].RepoID < res.Libraries[j].RepoID })
	var firstErr string
	for _, l := range res.Libraries {
		res.Copied.add(l.Copied)
		res.Present.add(l.Present)
		if l.Error != "" {
			res.Failed++
			if firstErr == "" {
				firstErr = l.Error
			}
		}
	}
	// S3: a no-op (a PUT is durable when it returns); filesystem: fsync what was written,
	// also after an interruption, so that what the rerun trusts survives a power loss.
	serr := opts.To.Sync(context.WithoutCancel(ctx))
	res.Seconds = time.Since(start).Seconds()
	if err := ctx.Err(); err != nil {
		return res, fmt.Errorf("store copy: %w", err)
	}
	if serr != nil {
		return res, fmt.Errorf("store copy: making the destination durable: %w", serr)
	}
	res.Seconds = time.Since(start).Seconds()
	if res.Failed > 0 {
		return res, fmt.Errorf("store copy: %d of %d %w; first: %s", res.Failed, len(res.Libraries), ErrFailed, firstErr)
	}
	return res, nil
}

// records loads the libraries to copy. A record that cannot be read fails its library
// alone (damaged), as in sync and scan: the others are copied.
func records(opts Options) (_ []state.Library, damaged []LibraryResult, _ error) {
	if len(opts.Libraries) == 0 {
		recs, bad, err := opts.State.All()
		if err != nil {
			return nil, nil, fmt.Errorf("store copy: %w", err)
		}
		for _, de := range bad {
			damaged = append(damaged, LibraryResult{RepoID: de.RepoID, Error: de.Error()})
		}
		return recs, damaged, nil
	}
	var recs []state.Library
	seen := map[string]bool{}
	for _, id := range opts.Libraries {
		if seen[id] {
			continue
		}
		seen[id] = true
		rec, found, err := opts.State.Load(id)
		if errors.Is(err, state.ErrDamaged) {
			damaged = append(damaged, LibraryResult{RepoID: id, Error: err.Error()})
			continue
		}
		if err != nil {
			return nil, nil, fmt.Errorf("store copy: %w", err)
		}
		if !found {
			return nil, nil, fmt.Errorf("store copy: library %s was never backed up (not in seafbak's state)", id)
		}
		recs = append(recs, rec)
	}
	return recs, damaged, nil
}

// copier is one Copy.
type copier struct {
	opts   Options
	log    *slog.Logger
	tokens chan struct{} // one per object copy running in a goroutine of its own
	prog   progress.Meter
	bufs   gosync.Pool
}

// group copies the libraries sharing store id sid.
func (c *copier) group(ctx context.Context, sid string, recs []state.Library) []LibraryResult {
	out := make([]LibraryResult, 0, len(recs))
	if p, ok := c.opts.To.(store.Preloader); ok && object.ValidRepoID(sid) {
		for _, kind := range []object.Kind{object.KindFS, object.KindBlock} {
			if err := p.Preload(ctx, kind, sid); err != nil {
				c.log.Debug("could not list the destination's objects; asking object by object", "store", sid, "kind", kind, "err", err)
			}
			defer p.Forget(kind, sid)
		}
	}
	for _, rec := range recs {
		if ctx.Err() != nil {
			break
		}
		out = append(out, c.library(ctx, rec))
	}
	return out
}

// library copies one library's whole history.
func (c *copier) library(ctx context.Context, rec state.Library) LibraryResult {
	keys := restore.LibraryOf(rec)
	lr := LibraryResult{RepoID: rec.ID, StoreID: keys.StoreID, Name: rec.Name, Heads: restore.StateHeads(rec)}
	fail := func(err error) LibraryResult {
		lr.Error = err.Error()
		c.log.Error("library not copied", "repo", rec.ID, "err", err)
		return lr
	}
	if err := object.CheckRepoID(keys.RepoID); err != nil {
		return fail(err)
	}
	if err := object.CheckRepoID(keys.StoreID); err != nil {
		return fail(fmt.Errorf("library %s: store %w", rec.ID, err))
	}
	if len(lr.Heads) == 0 {
		lr.Skipped = "no head backed up yet"
		return lr
	}
	if p, ok := c.opts.To.(store.Preloader); ok {
		if err := p.Preload(ctx, object.KindCommit, keys.For(object.KindCommit)); err != nil {
			c.log.Debug("could not list the destination's commits; asking one by one", "repo", rec.ID, "err", err)
		}
		defer p.Forget(object.KindCommit, keys.For(object.KindCommit))
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	l := &libCopy{c: c, ctx: ctx, cancel: cancel, rec: rec, keys: keys, inflight: map[settledKey]chan struct{}{},
		holes: map[string]state.Hole{}, holeCommits: map[string]bool{}, rewalk: map[string]bool{}, settled: map[settledKey]bool{}, truncated: map[string]bool{}, truncBefore: math.MinInt64}
	for _, h := range rec.Holes {
		l.holes[h.ID] = h
		l.holeCommits[h.Commit] = true
	}
	for _, id := range rec.Truncated {
		l.truncated[id] = true
	}
	err := l.run()
	lr.Copied, lr.Present, lr.Incomplete = l.copied.counts(), l.present.counts(), l.incomplete
	if err != nil {
		if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
			err = cause
		}
		if ctx.Err() != nil && errors.Is(err, context.Canceled) {
			lr.Error = fmt.Sprintf("library %s: interrupted", rec.ID)
			return lr
		}
		return fail(err)
	}
	c.log.Info("library copied", "repo", rec.ID, "name", rec.Name, "objects_copied", lr.Copied.Objects(), "objects_present", lr.Present.Objects(), "bytes", lr.Copied.Bytes)
	return lr
}

// atomicCounts counts objects from several goroutines.
type atomicCounts struct{ commits, fs, blocks, bytes atomic.Int64 }

func (a *atomicCounts) counts() Counts {
	return Counts{Commits: a.commits.Load(), FSObjects: a.fs.Load(), Blocks: a.blocks.Load(), Bytes: a.bytes.Load()}
}

func (a *atomicCounts) add(kind object.Kind, n int64) {
	switch kind {
	case object.KindCommit:
		a.commits.Add(1)
	case object.KindFS:
		a.fs.Add(1)
	default:
		a.blocks.Add(1)
	}
	a.bytes.Add(n)
}

// libCopy is the copy of one library.
type libCopy struct {
	c      *copier
	ctx    context.Context
	cancel context.CancelCauseFunc
	rec    state.Library
	keys   object.Keys

	holes       map[string]state.Hole
	holeCommits map[string]bool // commits with a recorded hole: their trees may lack objects
	rewalk      map[string]bool // commits present in the destination whose trees are walked again
	truncated   map[string]bool
	truncOnce   gosync.Once
	truncBefore int64                     // see truncLimit
	got         map[string]*object.Commit // the commits the history walk read

	mu       gosync.Mutex
	inflight map[settledKey]chan struct{} // fs objects and blocks being copied, closed when done
	settled  map[settledKey]bool          // Recheck: objects checked or written in this run

	copied, present atomicCounts
	incomplete      int
}

// run reads the history from the heads back to what the destination has, then copies
// the commits oldest first, each one's tree before it.
func (l *libCopy) run() error {
	commits, err := l.history()
	if err != nil {
		return err
	}
	for _, c := range commits {
		if err := l.ctx.Err(); err != nil {
			return err
		}
		tr := &treeRun{l: l, c: c, truncated: l.truncated[c.ID]}
		whole, err := tr.dir(c.RootID, "/")
		if err != nil {
			return err
		}
		if !whole {
			l.incomplete++
			l.c.log.Debug("commit's tree is incomplete in the source, as the state records", "repo", l.rec.ID, "commit", c.ID)
		}
		if l.rewalk[c.ID] {
			continue
		}
		if err := l.put(object.KindCommit, l.keys.For(object.KindCommit), c.ID, c.Raw); err != nil {
			return fmt.Errorf("library %s: commit %s: %w", l.rec.ID, c.ID, err)
		}
	}
	return nil
}

// history returns the commits to copy, parents before children: every commit reachable
// from the heads that the destination lacks. A commit present in the destination has
// its history below it (commits are written oldest first) and stops the walk there,
// unless Full is set or the state records a hole in its tree (the source may have been
// filled since).
func (l *libCopy) history() ([]*object.Commit, error) {
	s := l.c.opts
	got := map[string]*object.Commit{}
	seen := map[string]bool{}
	queue := slices.Clone(restore.StateHeads(l.rec))
	for len(queue) > 0 {
		id := queue[0]
		queue = queue[1:]
		if seen[id] {
			continue
		}
		seen[id] = true
		if err := l.ctx.Err(); err != nil {
			return nil, err
		}
		if err := object.CheckID(id); err != nil {
			return nil, fmt.Errorf("library %s: %w", l.rec.ID, err)
		}
		has, err := s.To.Has(l.ctx, object.KindCommit, l.keys.For(object.KindCommit), id)
		if err != nil {
			return nil, fmt.Errorf("library %s: destination: commit %s: %w", l.rec.ID, id, err)
		}
		if has {
			l.present.add(object.KindCommit, 0)
		}
		c, err := l.readCommit(id)
		if err != nil {
			return nil, err
		}
		if c == nil {
			continue // a recorded hole: its parents cannot be known
		}
		if has && !s.Full && !l.holeCommits[id] {
			// Trusted with its history if its tree is there too (or was truncated). A
			// commit copied when its tree had a hole has no root in the destination:
			// once the source has been filled, its tree and its parents' are walked
			// again.
			whole := c.RootID == object.EmptyID || l.truncated[id]
			if !whole {
				if whole, err = s.To.Has(l.ctx, object.KindFS, l.keys.For(object.KindFS), c.RootID); err != nil {
					return nil, fmt.Errorf("library %s: destination: fs object %s (root of commit %s): %w", l.rec.ID, c.RootID, id, err)
				}
			}
			if whole {
				continue
			}
			l.rewalk[id] = true
		}
		got[id] = c
		if has && s.Recheck && !l.sameInDest(object.KindCommit, l.keys.For(object.KindCommit), id, c.Raw) {
			has = false // damaged in the destination: written again
		}
		if has && (s.Full || l.holeCommits[id]) {
			// Its tree is walked again (what was a hole may be in the source now), the
			// commit itself is not written again. Its parents are looked at too: one
			// whose hole the source has filled since has no tree in the destination
			// (the branch just above walks it again), and a whole one costs a presence
			// check.
			l.rewalk[id] = true
		}
		queue = append(queue, c.Parents()...)
	}
	l.got = got
	return topoOrder(got), nil
}

// truncLimit is the newest ctime among the commits the state records as truncated:
// the engine records truncation where it met it, and any commit not newer is past the
// history limit too (as verify judges). Read once, when a missing object needs it.
func (l *libCopy) truncLimit() int64 {
	l.truncOnce.Do(func() {
		for id := range l.truncated {
			c := l.got[id]
			if c == nil && object.ValidID(id) {
				c, _ = l.readCommit(id) // only for its time: the walk did not need it
			}
			if c != nil && c.Ctime > l.truncBefore {
				l.truncBefore = c.Ctime
			}
		}
	})
	return l.truncBefore
}

// readCommit reads and checks a commit of the source; nil when the state records it as
// a hole.
func (l *libCopy) readCommit(id string) (*object.Commit, error) {
	raw, err := l.c.opts.From.Get(l.ctx, object.KindCommit, l.keys.For(object.KindCommit), id)
	if err != nil {
		if l.ctx.Err() != nil {
			return nil, l.ctx.Err()
		}
		missing := errors.Is(err, store.ErrNotExist)
		if _, hole := l.holes[id]; hole && missing || l.damagedHole(object.KindCommit, id, err) {
			return nil, nil
		}
		if !missing && !object.IsInvalid(err) {
			return nil, fmt.Errorf("library %s: source: commit %s: %w", l.rec.ID, id, err)
		}
		return nil, &ObjectError{RepoID: l.rec.ID, Kind: object.KindCommit, ID: id, Commit: id, Missing: missing, Err: err}
	}
	c, err := object.ParseCommit(raw, id, l.keys.RepoID)
	if err != nil {
		return nil, &ObjectError{RepoID: l.rec.ID, Kind: object.KindCommit, ID: id, Commit: id, Err: err}
	}
	return c, nil
}

// topoOrder lists commits parents first (among those given), oldest first where the
// graph leaves a choice.
func topoOrder(got map[string]*object.Commit) []*object.Commit {
	ids := make([]string, 0, len(got))
	for id := range got {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool {
		a, b := got[ids[i]], got[ids[j]]
		if a.Ctime != b.Ctime {
			return a.Ctime < b.Ctime
		}
		return a.ID < b.ID
	})
	out := make([]*object.Commit, 0, len(got))
	state := map[string]uint8{} // 1 open, 2 done
	for _, start := range ids {
		if state[start] != 0 {
			continue
		}
		stack := []string{start}
		for len(stack) > 0 {
			id := stack[len(stack)-1]
			c := got[id]
			switch state[id] {
			case 0:
				state[id] = 1
				ps := c.Parents()
				for i := len(ps) - 1; i >= 0; i-- {
					if got[ps[i]] != nil && state[ps[i]] == 0 {
						stack = append(stack, ps[i])
					}
				}
				continue
			case 1:
				state[id] = 2
				out = append(out, c)
			}
			stack = stack[:len(stack)-1]
		}
	}
	return out
}

// put writes a small object into the destination and counts it.
func (l *libCopy) put(kind object.Kind, sid, id string, raw []byte) error {
	if err := store.Put(l.ctx, l.c.opts.To, kind, sid, id, raw); err != nil {
		return fmt.Errorf("destination: %w", err)
	}
	l.copied.add(kind, int64(len(raw)))
	if l.c.prog != nil {
		l.c.prog.Todo(1, 0)
		l.c.prog.Done(1, 0)
	}
	return nil
}

// claim makes this goroutine the one copying the object of kind and id, or waits for
// the one that is and returns false: the caller then looks at the destination again.
func (l *libCopy) claim(kind object.Kind, id string) (release func(), mine bool) {
	k := keyOf(kind, id)
	l.mu.Lock()
	if ch, busy := l.inflight[k]; busy {
		l.mu.Unlock()
		select {
		case <-ch:
		case <-l.ctx.Done():
		}
		return nil, false
	}
	ch := make(chan struct{})
	l.inflight[k] = ch
	l.mu.Unlock()
	return func() {
		l.mu.Lock()
		delete(l.inflight, k)
		l.mu.Unlock()
		close(ch)
	}, true
}

// treeRun copies the tree of one commit.
type treeRun struct {
	l         *libCopy
	c         *object.Commit
	truncated bool
}

// missing judges an object the source lacks or cannot read: nil when the state
// explains it (a hole, truncated history, a dir above a hole), else the error.
func (t *treeRun) missing(kind object.Kind, id, p string, err error) error {
	l := t.l
	if l.ctx.Err() != nil {
		return l.ctx.Err()
	}
	missing := errors.Is(err, store.ErrNotExist)
	if !missing && !object.IsInvalid(err) {
		return fmt.Errorf("library %s: source: %s %s at %q: %w", l.rec.ID, kindName(kind), id, p, err)
	}
	if missing && t.explained(id, p) || l.damagedHole(kind, id, err) {
		return nil
	}
	return &ObjectError{RepoID: l.rec.ID, Kind: kind, ID: id, Path: p, Commit: t.c.ID, Missing: missing, Err: err}
}

// damagedHole says whether err is the source's copy of the object being damaged while
// the state records that very object (same kind, same id) as a hole: a repair sync found
// it damaged here and the primary without it, so the state already says the backup
// lacks it. It is left out as a missing one is (and the dirs above it with it, so a
// present dir stays complete); refusing it failed the library at every copy, since no
// repair can bring it back.
func (l *libCopy) damagedHole(kind object.Kind, id string, err error) bool {
	h, ok := l.holes[id]
	return ok && h.Kind == kindName(kind) && object.IsInvalid(err)
}

// explained says whether the state expects the object at path p of this commit's tree
// to be missing: verify's rules, and any object of a commit the state records a hole
// against.
func (t *treeRun) explained(id, p string) bool {
	if _, ok := t.l.holes[id]; ok {
		return true
	}
	// The engine records a hole against every commit whose tree it could not complete
	// (kind "tree" for those above a hole met under another commit).
	// A commit with none recorded has a whole tree in the backup: a hole under another
	// commit explains nothing here, not even at a path above it (found by review: a
	// head's lost root passed as "above" an old, unrelated hole).
	return t.truncated || t.l.holeCommits[t.c.ID] || t.c.Ctime <= t.l.truncLimit()
}

// group runs a dir's entries, each in a goroutine of its own while tokens last and in
// the caller's otherwise, so that a dir waiting for its entries never starves them.
type group struct {
	wg    gosync.WaitGroup
	mu    gosync.Mutex
	whole bool
	err   error
}

func (t *treeRun) spawn(g *group, fn func() (bool, error)) {
	record := func(ok bool, err error) {
		g.mu.Lock()
		if err != nil && g.err == nil {
			g.err = err
			t.l.cancel(err)
		}
		if !ok {
			g.whole = false
		}
		g.mu.Unlock()
	}
	select {
	case t.l.c.tokens <- struct{}{}:
		g.wg.Go(func() {
			defer func() { <-t.l.c.tokens }()
			record(fn())
		})
	default:
		record(fn())
	}
}

// dir copies the dir id (at path p) and everything below it, writing it last. whole is
// false when something below is missing as the state expects: the dir is then not
// written, so a present dir stays a complete one.
func (t *treeRun) dir(id, p string) (whole bool, err error) {
	return t.fsObject(id, p, true)
}

func (t *treeRun) fsObject(id, p string, wantDir bool) (bool, error) {
	l := t.l
	if id == object.EmptyID {
		return true, nil
	}
	if err := l.ctx.Err(); err != nil {
		return false, err
	}
	recheck := l.c.opts.Recheck
	var has bool
	for {
		if recheck && l.isSettled(object.KindFS, id) {
			return true, nil
		}
		var err error
		has, err = l.c.opts.To.Has(l.ctx, object.KindFS, l.keys.For(object.KindFS), id)
		if err != nil {
			return false, fmt.Errorf("library %s: destination: fs object %s at %q: %w", l.rec.ID, id, p, err)
		}
		if has && !recheck {
			l.present.add(object.KindFS, 0)
			return true, nil
		}
		release, mine := l.claim(object.KindFS, id)
		if !mine {
			if err := l.ctx.Err(); err != nil {
				return false, err
			}
			continue
		}
		defer release()
		if recheck && l.isSettled(object.KindFS, id) {
			return true, nil
		}
		break
	}
	raw, err := l.c.opts.From.Get(l.ctx, object.KindFS, l.keys.For(object.KindFS), id)
	if err != nil {
		return false, t.missing(object.KindFS, id, p, err)
	}
	f, err := object.ParseFS(id, raw)
	if err == nil && f.IsDir() != wantDir {
		err = fmt.Errorf("%w: fs object %s: its dir entry and the object disagree on being a directory", object.ErrInvalid, id)
	}
	if err != nil {
		return false, t.missing(object.KindFS, id, p, err)
	}
	g := &group{whole: true}
	if f.IsDir() {
		for _, d := range f.Dirents {
			if err := l.ctx.Err(); err != nil {
				break
			}
			cp := joinPath(p, d.Name)
			t.spawn(g, func() (bool, error) { return t.fsObject(d.ID, cp, d.IsDir()) })
		}
	} else {
		for _, b := range f.BlockIDs {
			if err := l.ctx.Err(); err != nil {
				break
			}
			t.spawn(g, func() (bool, error) { return t.block(b, p) })
		}
	}
	g.wg.Wait()
	if g.err != nil {
		return false, g.err
	}
	if err := l.ctx.Err(); err != nil {
		return false, err
	}
	if !g.whole {
		return false, nil
	}
	if has && l.sameInDest(object.KindFS, l.keys.For(object.KindFS), id, raw) {
		l.present.add(object.KindFS, 0)
		l.settle(object.KindFS, id)
		return true, nil
	}
	if err := l.put(object.KindFS, l.keys.For(object.KindFS), id, raw); err != nil {
		return false, fmt.Errorf("library %s: fs object %s at %q: %w", l.rec.ID, id, p, err)
	}
	l.settle(object.KindFS, id)
	return true, nil
}

// isSettled says whether Recheck already checked or wrote the object of kind and id in
// this run.
func (l *libCopy) isSettled(kind object.Kind, id string) bool {
	k := keyOf(kind, id)
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.settled[k]
}

func (l *libCopy) settle(kind object.Kind, id string) {
	if !l.c.opts.Recheck {
		return
	}
	k := keyOf(kind, id)
	l.mu.Lock()
	l.settled[k] = true
	l.mu.Unlock()
}

// settledKey names an fs object or a block. The kind is part of it: a block whose bytes
// are an fs object's JSON has that object's id (both are SHA-1s of the same bytes), and
// any library user can upload one; one settled, the other must not count as settled.
type settledKey struct {
	block bool
	id    [20]byte
}

// keyOf is the key of a checked id.
func keyOf(kind object.Kind, id string) settledKey {
	bin, _ := object.BinaryID(id) // ids are checked before they get here
	return settledKey{block: kind == object.KindBlock, id: bin}
}

// sameInDest says whether the destination holds exactly raw as this object; when it
// does not (damaged, unreadable), the object is written again.
func (l *libCopy) sameInDest(kind object.Kind, sid, id string, raw []byte) bool {
	got, err := l.c.opts.To.Get(l.ctx, kind, sid, id)
	if err == nil && bytes.Equal(got, raw) {
		return true
	}
	if l.ctx.Err() == nil {
		l.c.log.Warn("destination's copy of an object is damaged or unreadable; writing it again", "repo", l.rec.ID, "kind", kind, "id", id, "err", err)
	}
	return false
}

// blockInDest says whether the destination's copy of a block hashes to its id.
func (l *libCopy) blockInDest(id string) bool {
	rc, err := l.c.opts.To.Open(l.ctx, object.KindBlock, l.keys.For(object.KindBlock), id)
	if err == nil {
		h := object.NewBlockHasher(id)
		bp := l.c.bufs.Get().(*[]byte)
		_, err = io.CopyBuffer(h, readerOnly{rc}, *bp)
		l.c.bufs.Put(bp)
		rc.Close()
		if err == nil {
			if err = h.Check(); err == nil {
				return true
			}
		}
	}
	if l.ctx.Err() == nil {
		l.c.log.Warn("destination's copy of a block is damaged or unreadable; writing it again", "repo", l.rec.ID, "id", id, "err", err)
	}
	return false
}

func joinPath(dir, name string) string {
	if dir == "/" {
		return "/" + name
	}
	return dir + "/" + name
}

// readerOnly hides WriterTo so copies go through the pooled buffer.
type readerOnly struct{ io.Reader }

// block copies one block of the file at p, verifying its content on the way: a block
// whose bytes do not hash to its id is aborted, never committed.
func (t *treeRun) block(id, p string) (bool, error) {
	l := t.l
	s := l.c.opts
	for {
		if s.Recheck && l.isSettled(object.KindBlock, id) {
			return true, nil
		}
		has, err := s.To.Has(l.ctx, object.KindBlock, l.keys.For(object.KindBlock), id)
		if err != nil {
			return false, fmt.Errorf("library %s: destination: block %s of %q: %w", l.rec.ID, id, p, err)
		}
		if has && !s.Recheck {
			l.present.add(object.KindBlock, 0)
			return true, nil
		}
		release, mine := l.claim(object.KindBlock, id)
		if !mine {
			if err := l.ctx.Err(); err != nil {
				return false, err
			}
			continue
		}
		defer release()
		if s.Recheck && l.isSettled(object.KindBlock, id) {
			return true, nil
		}
		if has && l.blockInDest(id) {
			l.present.add(object.KindBlock, 0)
			l.settle(object.KindBlock, id)
			return true, nil
		}
		break
	}
	rc, err := s.From.Open(l.ctx, object.KindBlock, l.keys.For(object.KindBlock), id)
	if err != nil {
		return false, t.missing(object.KindBlock, id, p, err)
	}
	defer rc.Close()
	w, err := s.To.Create(l.ctx, object.KindBlock, l.keys.For(object.KindBlock), id)
	if err != nil {
		return false, fmt.Errorf("library %s: destination: block %s of %q: %w", l.rec.ID, id, p, err)
	}
	h := object.NewBlockHasher(id)
	bp := l.c.bufs.Get().(*[]byte)
	_, err = io.CopyBuffer(io.MultiWriter(h, w), readerOnly{rc}, *bp)
	l.c.bufs.Put(bp)
	if err == nil {
		if herr := h.Check(); herr != nil {
			w.Abort()
			return false, t.missing(object.KindBlock, id, p, herr)
		}
	}
	if err != nil {
		w.Abort()
		if l.ctx.Err() != nil {
			return false, l.ctx.Err()
		}
		return false, fmt.Errorf("library %s: block %s of %q: %w", l.rec.ID, id, p, err)
	}
	if l.c.prog != nil {
		l.c.prog.Todo(1, h.Size())
	}
	if err := w.Commit(); err != nil {
		return false, fmt.Errorf("library %s: destination: block %s of %q: %w", l.rec.ID, id, p, err)
	}
	l.copied.add(object.KindBlock, h.Size())
	l.settle(object.KindBlock, id)
	if l.c.prog != nil {
		l.c.prog.Done(1, h.Size())
	}
	return true, nil
}
