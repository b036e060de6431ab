// Package watch is seafbak's long-running change hook: it polls the primary's library
// heads and runs, for each library that changed, the same per-library sync as
// `seafbak sync`, in process. Each sync stays a stateless batch step of the engine:
// what is backed up is on disk (store and state), so a watcher can be killed at any
// instant and restarted, and runs beside cron scans and hook syncs (the per-library
// locks keep them apart).
package watch

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	gosync "sync"
	"sync/atomic"
	"time"

	"seafbak/scan"
	"seafbak/state"
	seafsync "seafbak/sync"
	"seafbak/sync/object"
	"seafbak/sync/primary"
	"seafbak/sync/store"
)

// Engine is what a watcher needs of the sync engine: the same as a scan.
type Engine = scan.Engine

// Defaults of the Watcher's zero fields.
const (
	DefaultPoll       = 2 * time.Second
	DefaultMaxBackoff = 5 * time.Minute
	// DefaultAfterRoundEvery is the least time between two AfterRound calls.
	DefaultAfterRoundEvery = time.Minute
	// DefaultStopWait is how long Run waits, once its context ended, for running syncs
	// to stop before it returns without them.
	DefaultStopWait = 30 * time.Second
	// DefaultFullEvery is how often a poll compares every library with the state and
	// the backup database.
	DefaultFullEvery = time.Minute
	// minBackoff is the wait after a library's first failure; it doubles after each
	// further failure in a row.
	minBackoff = 2 * time.Second
	// refreshEvery is how much newer the last full comparison must be than the one
	// given to the last AfterRound for a round without a finished sync to call it: an
	// idle watch rewrites the metrics every 5 minutes, as cron's scan would, so idle
	// libraries' current timestamps follow (the README's alert allows 15), at a fifth
	// of the cost of a rewrite a minute.
	refreshEvery = 5 * time.Minute
	// holesRetry is how often a library backed up at its head with holes (synced with
	// --force) or with a re-check still pending is synced again while its head stays
	// put: every full comparison finds it not up to date (state.Library.UpToDate), and
	// syncing it each minute re-read its history (every object, for a re-check), warned
	// about the same holes and rewrote the metrics on an idle server. An hour lets a
	// primary repaired meanwhile be noticed; a new head is synced at once, as any.
	holesRetry = scan.RetryEvery
	// warnAfter failed polls in a row, the failures are logged as warnings (then at
	// every doubling of the count), not at info.
	warnAfter = 5
)

// Watcher keeps the backup following the primary until its context ends.
type Watcher struct {
	Engine  Engine
	Catalog primary.Catalog
	State   *state.Dir
	Log     *slog.Logger
	// Poll is how often the primary's heads are listed (default 2 s).
	Poll time.Duration
	// Parallel is how many libraries copy at once (default 1), as for a scan: more over
	// HTTP (Engine.CopySlots), and many more sync at once (see scan.Concurrency); one
	// more small copy keeps going beside them (scan.RealTimeConcurrency).
	Parallel int
	// MaxBackoff caps the wait before a failing library is tried again (default 5 min).
	MaxBackoff time.Duration
	// AfterRound, if set, is called by Run after a poll round when a sync has finished
	// since its last call (a change backed up, a deletion recorded, or a failure), or
	// when compared is refreshEvery (5 min) newer than at its last call, but not sooner
	// than AfterRoundEvery (default 1 min) after its last call: a round that comes too
	// soon leaves it to a later round. compared is the start of the last full
	// comparison every library of which held the primary's head as of then, or has had
	// a sync end since (zero: none yet): what a scan's start is to the metrics
	// (metrics.Run.ComparedAll). It runs between polls, so a slow hook delays the next
	// listing, never a running sync. seafbak watch rewrites the metrics file with it.
	AfterRound func(ctx context.Context, compared time.Time)
	// AfterRoundEvery is the least time between two AfterRound calls (default 1 min).
	AfterRoundEvery time.Duration
	// FullEvery is how often a poll compares every library with the state and the
	// backup database (default 1 min), as a scan does. Reading every state record is
	// the dear part of a poll (0.34 s for 10 000 libraries), so the polls in between
	// read only the records of libraries whose head moved on the primary since the last
	// poll, or that are not yet backed up; the full comparison catches the rest (a
	// backup database restored from an older dump, a record changed by hand).
	FullEvery time.Duration
	// StopWait bounds how long Run waits for the running syncs once its context ended
	// (default 30 s). A sync sees the context end and stops at its next step, keeping
	// the previous backed-up head; one stuck in the kernel (an fsync on a hung NFS
	// mount) is abandoned: the process exits under it, which is as safe as kill -9
	// (objects are written atomically, metadata moves only after them, the lock is
	// released by the kernel), so a restart of watch is never held up by it.
	StopWait time.Duration
	// Listed, if set, is told every library of each successful listing of the primary
	// (the notification client subscribes to the new ones). It must not block.
	Listed func(libs []primary.Library)

	// stop ends Run with a cause, for a failure no later round can get past.
	stop context.CancelCauseFunc
	// lastHeads is the primary's listing at the last poll, lastFull when the last full
	// comparison ran: a cache that a restart rebuilds with a full comparison.
	lastHeads map[string]string
	lastFull  time.Time
	// fullFailures counts the full comparisons failed in a row (the state or the backup
	// database unreadable), fullRetryAt is when the next may run: until then polls
	// compare only what moved, as between full comparisons, rather than reading every
	// record again at every poll of an outage.
	fullFailures int
	fullRetryAt  time.Time
	// compares are the full comparisons since the one last reported (see comparedAt),
	// oldest first, compared the start of the newest reported; lastHook and
	// hookCompared are when AfterRound was last called and the compared it was given.
	compares     []comparison
	compared     time.Time
	lastHook     time.Time
	hookCompared time.Time
	// holesTried is when each library backed up at its head but for its holes or a
	// pending re-check was last asked for (see putOffRetries).
	holesTried map[string]time.Time
	// lastLibs is the last listing and lastPrint the primary's Print at it: polls
	// between full comparisons list again only when the Print changed.
	lastLibs  []primary.Library
	lastPrint primary.Print
	// lastByID orders lastLibs by id, for the polls that reuse it with libraries
	// unsettled: made at the first such poll after each listing.
	lastByID []int32

	// finished is set by each sync that changed or failed something, and cleared when
	// AfterRound is called.
	finished atomic.Bool
	mu       gosync.Mutex
	copied   Copied
	// unsettled are libraries asked for whose last job did not leave them backed up
	// (running, pending, failed, busy elsewhere): every poll looks at them again.
	unsettled map[string]bool
	// kick asks Run for a poll round now (see Check); one pending request at most.
	kickOnce gosync.Once
	kick     chan struct{}
	// full asks the next round for a full comparison (see CheckAll).
	full atomic.Bool
	// asked are libraries reported changed (Check) since the last round; listAll says
	// a round must list every library anyway (too many asked, or one was invalid).
	asked   map[string]bool
	listAll bool
	// recordsRead counts the state records the polls between full comparisons read,
	// for tests.
	recordsRead int
}

// maxAsked is how many reported libraries a round looks up one by one; beyond that one
// listing of every head is cheaper.
const maxAsked = 64

// errNeedListing sends a targeted round to a full one: a reported library the primary
// no longer has is recorded deleted by the listing's comparison, the one path that does,
// and one that is new since the last listing is announced to Listed by a listing.
var errNeedListing = errors.New("watch: a reported library is gone; listing all")

// Copied is what a watcher's syncs have copied since it started.
type Copied struct {
	Bytes   int64
	Objects int64 // commits, fs objects and blocks
}

// Copied is what the watcher's syncs have copied so far.
func (w *Watcher) Copied() Copied {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.copied
}

// Run lists the primary's heads every Poll and syncs each library whose head differs
// from the state, and records libraries gone from the primary as deleted. A failed
// listing is retried at the next tick; a failed full comparison (the state or the
// backup database unreadable) after 2 s, doubling up to FullEvery, the polls in between
// comparing what moved. When ctx ends it starts nothing new, waits for the running
// syncs (which see ctx ended and stop without recording anything half-done) and
// returns nil.
func (w *Watcher) Run(ctx context.Context) error {
	if w.Engine == nil || w.Catalog == nil || w.State == nil {
		return errors.New("watch: engine, catalog and state are required")
	}
	if w.Poll < 0 || w.MaxBackoff < 0 || w.AfterRoundEvery < 0 || w.FullEvery < 0 {
		return errors.New("watch: negative interval")
	}
	poll := cmp.Or(w.Poll, DefaultPoll)
	ctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	w.stop = stop
	// A round with many changes (the first after a start, a burst on the primary) runs
	// its syncs as a scan does, sharing their flushes; a lone change is as before.
	ctx, syncs := scan.RealTimeConcurrency(ctx, w.Engine, w.Parallel)
	s := newScheduler(w.do, syncs, min(minBackoff, cmp.Or(w.MaxBackoff, DefaultMaxBackoff)), cmp.Or(w.MaxBackoff, DefaultMaxBackoff), w.log())
	defer func() {
		limit := cmp.Or(w.StopWait, DefaultStopWait)
		if !s.waitAtMost(limit) {
			w.log().Error("stopping without the syncs still running; they keep their previous backed-up head and the next sync of their libraries re-checks them",
				"running", s.runningNow(), "waited", limit.String())
		}
	}()
	w.log().Info("watching the primary", "poll", poll.String(), "parallel", max(w.Parallel, 1), "syncs_at_once", s.parallel)
	tick := time.NewTicker(poll)
	defer tick.Stop()
	failures := 0
	failedStep := ""
	targeted := false
	for {
		var err error
		if ids := w.takeAsked(); targeted && ids != nil && !w.full.Load() {
			if err = w.pollSome(ctx, s, ids); err != nil && ctx.Err() == nil {
				w.log().Debug("looking up reported libraries failed; listing all", "err", err)
				err = w.poll(ctx, s)
			}
		} else {
			err = w.poll(ctx, s)
		}
		targeted = false
		switch {
		case ctx.Err() != nil:
		case err != nil:
			failures++
			// Name the step: a backup database that is down must not read as the
			// primary's.
			failedStep = "polling"
			var se *stepError
			if errors.As(err, &se) {
				failedStep = se.step
			}
			if warnable(failures) {
				w.log().Warn(failedStep+" keeps failing; retrying", "failures_in_a_row", failures, "err", err)
			} else {
				w.log().Info(failedStep+" failed; retrying", "failures_in_a_row", failures, "err", err)
			}
		case failures > 0 && w.fullFailures == 0:
			// A failed full comparison is retried on its backoff, and the polls in
			// between succeed: they neither end nor reset the count.
			if failures >= warnAfter {
				w.log().Warn(failedStep+" works again", "after_failures", failures)
			}
			failures = 0
		}
		w.afterRound(ctx, time.Now())
		select {
		case <-ctx.Done():
			if cause := context.Cause(ctx); errors.Is(cause, store.ErrFlushFailed) {
				w.log().Error("stopping: writing the backup store to disk failed, and no later sync of this process can succeed; "+
					"a new process re-checks what this one wrote (systemd restarts seafbak-watch)", "err", cause)
				return fmt.Errorf("watch: %w", cause)
			} else if errors.Is(cause, state.ErrFailedOver) {
				w.log().Error("stopping: this host serves Seafile since a failover; disable seafbak-watch here", "err", cause)
				return fmt.Errorf("watch: %w", cause)
			}
			w.log().Info("stopping: waiting for the running syncs", "cause", context.Cause(ctx))
			return nil
		case <-tick.C:
		case <-w.kicks():
			targeted = true
		}
	}
}

// Check asks Run for a round now rather than at the next tick, because something (a
// notification-server event, a Seafile webhook) says library repoID changed. It never
// blocks: reports made while one is pending fold into it, so a burst costs one round.
// That round looks up only the reported libraries (one query each) and compares them
// with the state, handing changes to the scheduler (coalescing, backoff, parallel) as
// any round does: with 10 000 libraries that is one row instead of a listing of all.
// A reported library the primary no longer has or that is new, a failed lookup, or
// more than maxAsked reports make it a full listing round instead.
func (w *Watcher) Check(repoID string) {
	w.mu.Lock()
	if w.asked == nil {
		w.asked = map[string]bool{}
	}
	if !object.ValidRepoID(repoID) || len(w.asked) >= maxAsked {
		w.listAll = true
	} else {
		w.asked[repoID] = true
	}
	w.mu.Unlock()
	select {
	case w.kicks() <- struct{}{}:
		w.log().Debug("change reported; polling now", "repo", repoID)
	default:
		w.log().Debug("change reported; a poll is already due", "repo", repoID)
	}
}

// CheckAll asks Run for a full comparison of every library now: a notification
// server (re)connected, and changes made while it was away were never announced.
func (w *Watcher) CheckAll() {
	w.full.Store(true)
	select {
	case w.kicks() <- struct{}{}:
	default:
	}
	w.log().Debug("full head check asked")
}

// takeAsked returns and clears the reported libraries; nil when a round must list all
// (or nothing was reported).
func (w *Watcher) takeAsked() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	ids := make([]string, 0, len(w.asked))
	for id := range w.asked {
		ids = append(ids, id)
	}
	all := w.listAll
	clear(w.asked)
	w.listAll = false
	if all || len(ids) == 0 {
		return nil
	}
	return ids
}

// pollSome is a round over the reported libraries only: each is looked up on the
// primary and compared with its record, as poll compares every library.
func (w *Watcher) pollSome(ctx context.Context, s *scheduler, ids []string) error {
	now := time.Now()
	var libs []primary.Library
	var recs []state.Library
	for _, id := range ids {
		lib, err := w.Catalog.Library(ctx, id)
		if errors.Is(err, primary.ErrLibraryGone) {
			return errNeedListing
		}
		if err != nil {
			return fmt.Errorf("watch: %w", err)
		}
		if _, known := w.lastHeads[id]; !known {
			return errNeedListing // new since the last listing: a listing also subscribes it (Listed)
		}
		libs = append(libs, lib)
		rec, found, err := w.State.Load(id)
		if errors.Is(err, state.ErrDamaged) {
			continue // asked for like a new library: the engine fails it, naming the file
		}
		if err != nil {
			return fmt.Errorf("watch: %w", err)
		}
		if found {
			recs = append(recs, rec)
		}
	}
	changed, _ := scan.Compare(libs, recs, nil) // every record is of a looked-up library: none gone
	changed, retries := w.putOffRetries(changed, recs, nil, now, false)
	for _, lib := range changed {
		w.setUnsettled(lib.ID, true)
		n, retry := retries[lib.ID]
		s.want(ctx, job{lib: lib, seen: now, retry: retry, holes: n})
	}
	// The next partial poll need not look at these again for the same head. The last
	// listing is then behind lastHeads, and must not be reused as their twin: the next
	// poll lists afresh (a moved head changed the Print anyway, unless it came back).
	for _, lib := range libs {
		if head, known := w.lastHeads[lib.ID]; known && head != lib.Head {
			w.lastHeads[lib.ID] = lib.Head
			w.lastPrint = primary.Print{}
		}
	}
	s.dispatch(ctx)
	return nil
}

func (w *Watcher) kicks() chan struct{} {
	w.kickOnce.Do(func() { w.kick = make(chan struct{}, 1) })
	return w.kick
}

// poll lists the primary's libraries and heads in one query and asks for a job for each
// library the state says is not backed up at that head, and for each recorded library
// the primary no longer lists: scan's comparison (scan.Compare), without the syncing.
// Between full comparisons only what moved since the last poll is read from the state.
func (w *Watcher) poll(ctx context.Context, s *scheduler) error {
	now := time.Now()
	full := (w.full.Load() || w.lastHeads == nil || now.Sub(w.lastFull) >= w.fullEvery()) && !now.Before(w.fullRetryAt)
	if full {
		w.full.Store(false) // a CheckAll from now on asks for the next one
	}
	libs, listed, err := w.list(ctx, full)
	if err != nil {
		if full {
			w.full.Store(true)
		}
		return &stepError{step: "listing the primary's heads", err: err}
	}
	var changed []primary.Library
	var gone []state.Library
	var retries map[string]int
	if w.Listed != nil && listed {
		w.Listed(libs)
	}
	if full {
		// A damaged record is left out here, so its library is asked for like a new
		// one and the engine fails it, naming the file; the backoff keeps that from
		// repeating every poll.
		recs, _, err := w.State.All()
		if err != nil {
			return w.fullFailed(now, &stepError{step: "reading the state", err: err})
		}
		dbHeads, err := w.Engine.BackupHeads(ctx)
		if err != nil {
			return w.fullFailed(now, &stepError{step: "reading the backup database's heads", err: err})
		}
		w.fullFailures, w.fullRetryAt = 0, time.Time{}
		changed, gone = scan.Compare(libs, recs, dbHeads)
		changed, retries = w.putOffRetries(changed, recs, dbHeads, now, true)
		w.lastFull = now
		w.addComparison(now, changed, gone, recs) // before the jobs are asked for
		scan.Compared(w.State, recs, w.log())
		w.settle(w.unsettledIDs(), changed, gone, s)
	} else if !listed && !w.anyUnsettled() {
		// The same listing as last time, every library in it settled: nothing to do.
	} else if changed, gone, retries, err = w.moved(libs, listed, s, now); err != nil {
		// lastHeads stays the previous listing's: the next poll must list again and
		// compare, not reuse this listing as one already compared.
		w.lastPrint = primary.Print{}
		return &stepError{step: "reading the state", err: err}
	}
	if listed {
		heads := make(map[string]string, len(libs))
		for _, lib := range libs {
			heads[lib.ID] = lib.Head
		}
		w.lastHeads = heads
	}
	// A first poll (or a burst) over HTTP: the new libraries' tokens in a few
	// statements, not one commit each; those already prepared cost nothing.
	if p, ok := w.Engine.(scan.Preparer); ok && len(changed) > 0 {
		p.PrepareListed(ctx, changed)
	}
	for _, lib := range changed {
		w.setUnsettled(lib.ID, true)
		n, retry := retries[lib.ID]
		s.want(ctx, job{lib: lib, seen: now, retry: retry, holes: n})
	}
	for _, rec := range gone {
		w.setUnsettled(rec.ID, true)
		s.want(ctx, job{lib: primary.Library{ID: rec.ID, Name: rec.Name, Head: rec.Head}, gone: true, seen: now})
	}
	s.dispatch(ctx) // libraries whose backoff has passed
	return nil
}

// fullFailed puts the next full comparison off after one that failed at now: 2 s,
// doubling up to FullEvery, as a failing library's backoff. It stays due (a CheckAll,
// the first comparison, FullEvery passed), and the polls until then compare what moved
// against the last listing that was compared: with the backup database down, every
// 2 s poll used to list every library and read every record again.
func (w *Watcher) fullFailed(now time.Time, err error) error {
	w.full.Store(true)
	w.fullFailures++
	wait := min(minBackoff, w.fullEvery())
	for i := 1; i < w.fullFailures && wait < w.fullEvery(); i++ {
		wait *= 2
	}
	w.fullRetryAt = now.Add(min(wait, w.fullEvery()))
	// lastHeads stays the last compared listing's: the next poll lists again and
	// compares what moved since, not this listing as one already compared.
	w.lastPrint = primary.Print{}
	return err
}

func (w *Watcher) fullEvery() time.Duration { return cmp.Or(w.FullEvery, DefaultFullEvery) }

// stepError is a failed poll, with the step that failed, for the log.
type stepError struct {
	step string
	err  error
}

func (e *stepError) Error() string { return "watch: " + e.step + ": " + e.err.Error() }
func (e *stepError) Unwrap() error { return e.err }

// list lists the primary's libraries, or, between full comparisons, gives the last
// listing again when the primary's Print says nothing it depends on changed since
// (listed false). On a quiet server of 100 000 libraries that is one scan of the Branch
// table every poll instead of a listing of everything.
func (w *Watcher) list(ctx context.Context, full bool) (libs []primary.Library, listed bool, err error) {
	since := w.lastPrint
	if full || w.lastLibs == nil {
		since = primary.Print{}
	}
	libs, p, changed, err := primary.LibrariesSince(ctx, w.Catalog, since)
	if err != nil {
		w.lastPrint = primary.Print{}
		return nil, false, err
	}
	w.lastPrint = p
	if !changed {
		return w.lastLibs, false, nil
	}
	w.lastLibs, w.lastByID = libs, nil
	return libs, true, nil
}

// lastListed finds library id in the last listing.
func (w *Watcher) lastListed(id string) (primary.Library, bool) {
	if w.lastByID == nil {
		w.lastByID = make([]int32, len(w.lastLibs))
		for i := range w.lastByID {
			w.lastByID[i] = int32(i)
		}
		slices.SortFunc(w.lastByID, func(a, b int32) int { return strings.Compare(w.lastLibs[a].ID, w.lastLibs[b].ID) })
	}
	i, found := slices.BinarySearchFunc(w.lastByID, id, func(i int32, id string) int { return strings.Compare(w.lastLibs[i].ID, id) })
	if !found {
		return primary.Library{}, false
	}
	return w.lastLibs[w.lastByID[i]], true
}

// moved is scan.Compare over only the libraries that may need work since the last poll:
// those whose head moved or that are new on the primary, those it no longer lists, and
// the unsettled ones that s holds no job for at their head. A job running or waiting
// for the listed head settles its library or fails, which drops it from s: reading its
// record again meanwhile would only ask for that job again (in a first round of 10 000
// libraries, every 2 s for each library still waiting).
//
// When libs is the last listing again (not listed: the primary's Print is unchanged), no
// head moved and no library came or went since, and lastHeads holds that listing's heads
// (a targeted round that moves one forgets the Print), so only the unsettled libraries
// are looked at, each found by id: a library that keeps failing must not cost a pass
// over 100 000 every poll.
func (w *Watcher) moved(libs []primary.Library, listed bool, s *scheduler, now time.Time) (changed []primary.Library, gone []state.Library, retries map[string]int, err error) {
	unsettled := w.unsettledIDs()
	// candidates are listed libraries to compare; unlisted are ids the primary no
	// longer lists (known at the last listing, or a deletion not yet recorded).
	var candidates []primary.Library
	var unlisted []string
	if listed {
		candidates = libs
		inListing := make(map[string]bool, len(libs))
		for _, lib := range libs {
			inListing[lib.ID] = true
		}
		for id := range w.lastHeads {
			if !inListing[id] {
				unlisted = append(unlisted, id)
			}
		}
		for _, id := range unsettled {
			if _, known := w.lastHeads[id]; !known && !inListing[id] {
				unlisted = append(unlisted, id)
			}
		}
	} else {
		for _, id := range unsettled {
			if lib, ok := w.lastListed(id); ok {
				candidates = append(candidates, lib)
			} else {
				unlisted = append(unlisted, id)
			}
		}
	}
	var look []primary.Library
	var recs []state.Library
	load := func(id string) error {
		w.recordsRead++
		rec, found, err := w.State.Load(id)
		if errors.Is(err, state.ErrDamaged) {
			return nil // asked for like a new library: the engine fails it, naming the file
		}
		if err != nil {
			return err // the caller names the step
		}
		if found {
			recs = append(recs, rec)
		}
		return nil
	}
	for _, lib := range candidates {
		if head, ok := w.lastHeads[lib.ID]; ok && head == lib.Head && (!w.isUnsettled(lib.ID) || s.holds(job{lib: lib})) {
			continue
		}
		look = append(look, lib)
		if err := load(lib.ID); err != nil {
			return nil, nil, nil, err
		}
	}
	for _, id := range unlisted {
		if err := load(id); err != nil {
			return nil, nil, nil, err
		}
	}
	// Compare takes every record not in look as gone: only the unlisted ids' records
	// are such.
	changed, gone = scan.Compare(look, recs, nil)
	changed, retries = w.putOffRetries(changed, recs, nil, now, false)
	ids := unlisted
	for _, lib := range look {
		ids = append(ids, lib.ID)
	}
	w.settle(ids, changed, gone, s)
	return changed, gone, retries, nil
}

// putOffRetries takes out of changed the libraries that are backed up at their listed
// head (and in the backup database, when dbHeads is given) and need a sync only for
// their holes or a pending re-check, unless they were last asked for holesRetry ago or
// more; retries are those it keeps, with their recorded holes. recs holds at least the
// records of changed. full says recs is every record: the libraries it no longer finds
// such are forgotten.
func (w *Watcher) putOffRetries(changed []primary.Library, recs []state.Library, dbHeads map[string]string, now time.Time, full bool) (_ []primary.Library, retries map[string]int) {
	at := make(map[string]int, len(changed))
	for i, lib := range changed {
		at[lib.ID] = i
	}
	for i := range recs {
		rec := &recs[i]
		k, ok := at[rec.ID]
		if !ok {
			continue
		}
		if !scan.RetryOnly(rec, changed[k], dbHeads) {
			continue // a change, a failure or a deletion to record: not a retry
		}
		if retries == nil {
			retries = map[string]int{}
		}
		retries[rec.ID] = len(rec.Holes)
	}
	if full {
		for id := range w.holesTried {
			if _, ok := retries[id]; !ok {
				delete(w.holesTried, id)
			}
		}
	}
	if len(retries) == 0 {
		return changed, nil
	}
	if w.holesTried == nil {
		w.holesTried = map[string]time.Time{}
	}
	kept := make([]primary.Library, 0, len(changed))
	for _, lib := range changed {
		if _, retry := retries[lib.ID]; retry {
			if tried, ok := w.holesTried[lib.ID]; ok && now.Sub(tried) < holesRetry {
				delete(retries, lib.ID)
				continue
			}
			w.holesTried[lib.ID] = now
		}
		kept = append(kept, lib)
	}
	return kept, retries
}

// settle drops from the unsettled libraries those among ids that a comparison found
// backed up (neither changed nor gone) and that s holds no job for: another seafbak (a
// scan, the primary's hook) finished them after this one's job found them busy
// (state.ErrLocked), or that failed and were since backed up elsewhere or deleted
// before they had a record. Left unsettled, each was read again at every poll, and the
// quiet poll that reads nothing was never taken again; the scheduler forgets their
// failures too (see scheduler.forget).
func (w *Watcher) settle(ids []string, changed []primary.Library, gone []state.Library, s *scheduler) {
	if !w.anyUnsettled() {
		return
	}
	work := make(map[string]bool, len(changed)+len(gone))
	for _, lib := range changed {
		work[lib.ID] = true
	}
	for _, rec := range gone {
		work[rec.ID] = true
	}
	for _, id := range ids {
		if !work[id] && w.isUnsettled(id) && !s.busy(id) {
			w.setUnsettled(id, false)
			s.forget(id)
			w.caughtUp(id)
		}
	}
}

// comparison is a full comparison that started at at, with the libraries it found
// behind (neither up to date nor failed) that have had no job end since.
type comparison struct {
	at     time.Time
	behind map[string]bool
}

// maxComparisons bounds the comparisons waiting for their libraries: a sync stuck for
// hours must not keep one a minute, each with the libraries it found behind.
const maxComparisons = 8

// addComparison notes a full comparison that started at at and found changed and gone
// behind the primary, of every record recs.
func (w *Watcher) addComparison(at time.Time, changed []primary.Library, gone []state.Library, recs []state.Library) {
	behind := make(map[string]bool, len(changed)+len(gone))
	for _, lib := range changed {
		behind[lib.ID] = true
	}
	for _, rec := range gone {
		behind[rec.ID] = true
	}
	// A failed library is no current library: the metrics leave it out whatever the
	// comparison's time, so it need not hold the comparison back until its retry. Nor
	// does one never backed up (its first backup may take hours): the metrics count it
	// current at no time, and its alert is its own.
	known := make(map[string]bool, len(recs))
	for i := range recs {
		known[recs[i].ID] = true
		if recs[i].Failed() || recs[i].LastSuccess.IsZero() {
			delete(behind, recs[i].ID)
		}
	}
	for id := range behind {
		if !known[id] {
			delete(behind, id)
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.compares) == maxComparisons {
		w.compares = slices.Delete(w.compares, 0, 1)
	}
	w.compares = append(w.compares, comparison{at: at, behind: behind})
}

// caughtUp notes that a job of library id ended after the comparisons noted so far:
// its record says when it was backed up (or that it failed), newer than any of them.
func (w *Watcher) caughtUp(id string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, c := range w.compares {
		delete(c.behind, id)
	}
}

// comparedAt is the start of the newest full comparison every library of which held
// the primary's head then or has had a job end since: the metrics may count every
// library not failed as current as of it. Zero: none yet.
func (w *Watcher) comparedAt() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	for i := len(w.compares) - 1; i >= 0; i-- {
		if len(w.compares[i].behind) == 0 {
			w.compared = w.compares[i].at
			w.compares = slices.Delete(w.compares, 0, i+1)
			break
		}
	}
	return w.compared
}

// afterRound calls AfterRound at now if it is due (see AfterRound).
func (w *Watcher) afterRound(ctx context.Context, now time.Time) {
	if w.AfterRound == nil || ctx.Err() != nil || now.Sub(w.lastHook) < cmp.Or(w.AfterRoundEvery, DefaultAfterRoundEvery) {
		return
	}
	compared := w.comparedAt()
	if !w.finished.CompareAndSwap(true, false) && compared.Sub(w.hookCompared) < refreshEvery {
		return
	}
	w.lastHook, w.hookCompared = now, compared
	w.AfterRound(ctx, compared)
}

// unsettledIDs lists the unsettled libraries.
func (w *Watcher) unsettledIDs() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	ids := make([]string, 0, len(w.unsettled))
	for id := range w.unsettled {
		ids = append(ids, id)
	}
	return ids
}

func (w *Watcher) setUnsettled(id string, on bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.unsettled == nil {
		w.unsettled = map[string]bool{}
	}
	if on {
		w.unsettled[id] = true
	} else {
		delete(w.unsettled, id)
	}
}

func (w *Watcher) anyUnsettled() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.unsettled) > 0
}

func (w *Watcher) isUnsettled(id string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.unsettled[id]
}

// do runs one job and logs what it made durable, with the latency from when the change
// was first seen. Failures are the scheduler's to log, with their backoff.
func (w *Watcher) do(ctx context.Context, j job) error {
	start := time.Now()
	var res seafsync.Result
	var err error
	if j.gone {
		res, err = w.Engine.MarkDeleted(ctx, j.lib.ID)
	} else {
		res, err = w.Engine.SyncListed(ctx, j.lib)
	}
	if res.Bytes > 0 || res.Commits+res.FSObjects+res.Blocks > 0 {
		w.mu.Lock()
		w.copied.Bytes += res.Bytes
		w.copied.Objects += int64(res.Commits + res.FSObjects + res.Blocks)
		w.mu.Unlock()
	}
	// The flag follows the library's last job: a follow-up that fails after the job
	// before it succeeded (and cleared it) must be looked at again by the next poll,
	// not left to the next full comparison.
	switch {
	case err == nil:
		w.setUnsettled(j.lib.ID, false)
	case ctx.Err() == nil:
		w.setUnsettled(j.lib.ID, true)
	}
	if ctx.Err() == nil && !errors.Is(err, state.ErrLocked) && (err == nil || w.State.FailureRecorded(j.lib.ID)) {
		w.caughtUp(j.lib.ID) // its record now says when it was backed up, or that it failed
	}
	log := w.log().With("repo", j.lib.ID, "name", j.lib.Name)
	switch {
	case err != nil && ctx.Err() != nil:
		log.Info("sync stopped; the library keeps its previous backed-up head")
	case errors.Is(err, state.ErrLocked):
		log.Debug("another seafbak is syncing this library; looking again at the next poll")
	case errors.Is(err, store.ErrFlushFailed), errors.Is(err, state.ErrFailedOver):
		// Every later flush of this process fails too (see store.ErrFlushFailed); or
		// this host serves Seafile now, and no sync may move its rows again.
		if w.stop != nil {
			w.stop(err)
		}
	case err != nil:
		w.finished.Store(true) // the state records the failure
	case res.Deleted:
		w.finished.Store(true)
		log.Info("library deleted on the primary recorded", "latency_seconds", time.Since(j.seen).Seconds())
	case res.UpToDate:
		log.Debug("already up to date", "head", res.Head)
	case j.retry && res.Head == res.OldHead && res.Bytes == 0 && res.Commits+res.FSObjects+res.Blocks == 0 && len(res.Holes) == j.holes:
		// The holes or the re-check were tried again and nothing came of it: no change
		// to tell, no metrics to rewrite.
		log.Debug("holes or re-check tried again; nothing changed", "head", res.Head, "holes", len(res.Holes))
	default:
		w.finished.Store(true)
		log.Info("change backed up", "head", res.Head, "commits", res.Commits, "fs_objects", res.FSObjects,
			"blocks", res.Blocks, "bytes", res.Bytes, "sync_seconds", time.Since(start).Seconds(),
			"latency_seconds", time.Since(j.seen).Seconds())
	}
	return err
}

func (w *Watcher) log() *slog.Logger {
	if w.Log != nil {
		return w.Log
	}
	return slog.New(slog.DiscardHandler)
}

// warnable says whether the n-th failed poll in a row is logged as a warning: the
// warnAfter-th, then at every doubling, so an outage of the primary's database is told
// without a line every tick.
func warnable(n int) bool {
	if n < warnAfter || n%warnAfter != 0 {
		return false
	}
	k := n / warnAfter
	return k&(k-1) == 0
}
