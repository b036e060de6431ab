// Package scan compares the primary's libraries with what the backup has and brings the
// backup up to date: the cron job's work. It also answers status, which is the same
// comparison without the syncing.
package scan

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	gosync "sync"
	"time"

	"seafbak/state"
	seafsync "seafbak/sync"
	"seafbak/sync/primary"
	"seafbak/sync/store"
)

// Summary is what one scan did.
type Summary struct {
	Checked  int `json:"checked"`   // libraries on the primary
	Synced   int `json:"synced"`    // libraries brought up to date
	Failed   int `json:"failed"`    // libraries whose sync failed
	Busy     int `json:"busy"`      // libraries another seafbak was already syncing
	Deleted  int `json:"deleted"`   // libraries newly seen deleted on the primary
	NotTried int `json:"not_tried"` // libraries left for the next run: the backup store filled up
	// Retried are libraries with holes or a pending re-check tried again at an
	// unchanged head (see RetryOnly): not counted synced.
	Retried int `json:"retried"`
	// Unrecorded are failed libraries whose records do not say so (the state's disk
	// failing too): the scan may not count them current.
	Unrecorded int           `json:"unrecorded"`
	Bytes      int64         `json:"bytes"`    // bytes of objects copied
	Objects    int64         `json:"objects"`  // objects copied (commits, fs objects, blocks)
	Elapsed    time.Duration `json:"elapsed"`  //
	Failures   []Failure     `json:"failures"` //
	// StoreFull: a sync met the backup store's filesystem full (store.ErrNoSpace), so
	// the scan started no more: each would have failed the same way.
	StoreFull bool `json:"store_full"`
}

// Failure names a library that failed and why.
type Failure struct {
	RepoID string `json:"repo_id"`
	Name   string `json:"name"`
	Error  string `json:"error"`
	// Err is the error itself, for the command to tell its cause (nil for a damaged
	// record's).
	Err error `json:"-"`
}

// String is the one-line summary cron mails.
func (s Summary) String() string {
	line := fmt.Sprintf("seafbak scan: %d libraries checked, %d synced, %d failed, %d busy, %d deleted on the primary, %s copied in %.1fs",
		s.Checked, s.Synced, s.Failed, s.Busy, s.Deleted, HumanBytes(s.Bytes), s.Elapsed.Seconds())
	if s.Retried > 0 {
		line += fmt.Sprintf(", %d with holes or a re-check tried again (nothing changed)", s.Retried)
	}
	if s.StoreFull {
		line += fmt.Sprintf("; the backup store is full: %d libraries not tried", s.NotTried)
	}
	return line
}

// Engine is what a scan needs of the sync engine (*sync.Engine).
type Engine interface {
	// SyncListed backs up a library just listed, or returns state.ErrLocked at once.
	SyncListed(ctx context.Context, lib primary.Library) (seafsync.Result, error)
	// MarkDeleted records a library gone from the primary.
	MarkDeleted(ctx context.Context, repoID string) (seafsync.Result, error)
	// BackupHeads lists the backup database's master heads; nil without one.
	BackupHeads(ctx context.Context) (map[string]string, error)
	// CopySlots is how many libraries should copy at once for Parallel slots: more than
	// Parallel when the source waits on the network.
	CopySlots(parallel int) int
}

// Preparer is an Engine that can set up, at once, the libraries a scan is about to sync
// (*sync.Engine: the HTTP source's tokens). Optional: syncs prepare their own anyway.
type Preparer interface {
	PrepareListed(ctx context.Context, libs []primary.Library)
}

// Scanner runs scans.
type Scanner struct {
	Engine  Engine
	Catalog primary.Catalog
	State   *state.Dir
	Log     *slog.Logger
	// Parallel is how many libraries sync at once.
	Parallel int
}

// Run lists the primary's libraries in one query, diffs them against the state, and
// syncs the new and changed ones. A failed library does not stop the others.
func (s *Scanner) Run(ctx context.Context) (Summary, error) {
	start := time.Now()
	var sum Summary
	libs, err := s.Catalog.Libraries(ctx)
	if err != nil {
		return sum, fmt.Errorf("scan: %w", err)
	}
	recs, damaged, err := s.State.All()
	if err != nil {
		return sum, fmt.Errorf("scan: %w", err)
	}
	sum.Checked = len(libs)
	// The backup database may lag the state (added to the config later, restored from
	// an older dump): such libraries need their rows moved even with nothing to copy.
	dbHeads, err := s.Engine.BackupHeads(ctx)
	if err != nil {
		return sum, fmt.Errorf("scan: %w", err)
	}
	// A damaged record fails its library until the admin moves it aside: syncing would
	// have to guess what the record held.
	names := make(map[string]string, len(libs))
	for _, lib := range libs {
		names[lib.ID] = lib.Name
	}
	isDamaged := make(map[string]bool, len(damaged))
	for _, de := range damaged {
		isDamaged[de.RepoID] = true
		sum.Failed++
		sum.Failures = append(sum.Failures, Failure{RepoID: de.RepoID, Name: names[de.RepoID], Error: de.Error()})
		s.log().Error("library failed to sync", "repo", de.RepoID, "name", names[de.RepoID], "err", de)
	}
	var todo []primary.Library
	changed, gone := Compare(libs, recs, dbHeads)
	known := make(map[string]*state.Library, len(recs))
	for i := range recs {
		known[recs[i].ID] = &recs[i]
	}
	retries := map[string]bool{}
	now := time.Now()
	for _, lib := range changed {
		rec := known[lib.ID]
		switch {
		case isDamaged[lib.ID]:
		case rec != nil && RetryOnly(rec, lib, dbHeads):
			// Holes or a pending re-check at an unchanged head: a retry re-reads the
			// library's history (every object, for a re-check), so cron's scan every
			// few minutes tries it once an hour, as watch does.
			if now.Sub(rec.LastAttempt) >= RetryEvery {
				retries[lib.ID] = true
				todo = append(todo, lib)
			}
		default:
			todo = append(todo, lib)
		}
	}
	if p, ok := s.Engine.(Preparer); ok {
		p.PrepareListed(ctx, todo)
	}
	var mu gosync.Mutex
	record := func(res seafsync.Result, err error) {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case err != nil && ctx.Err() != nil:
			// Stopped (a signal): the engine recorded nothing half done, and the
			// library is no failure; the command says it was interrupted.
		case errors.Is(err, state.ErrLocked):
			sum.Busy++
		case errors.Is(err, store.ErrNoSpace):
			sum.StoreFull = true
			fallthrough
		case err != nil:
			sum.Failed++
			sum.Failures = append(sum.Failures, Failure{RepoID: res.RepoID, Name: res.Name, Error: err.Error(), Err: err})
			s.log().Error("library failed to sync", "repo", res.RepoID, "name", res.Name, "err", err)
			if !s.State.FailureRecorded(res.RepoID) {
				sum.Unrecorded++
			}
		case res.Deleted:
			sum.Deleted++
		case retries[res.RepoID] && res.Head == res.OldHead && res.Bytes == 0:
			sum.Retried++ // holes or a re-check tried again: nothing was there to copy
		case !res.UpToDate:
			sum.Synced++
		}
		sum.Bytes += res.Bytes
		sum.Objects += int64(res.Commits + res.FSObjects + res.Blocks)
	}
	for _, rec := range gone {
		record(s.Engine.MarkDeleted(ctx, rec.ID))
	}
	ctx, syncs := Concurrency(ctx, s.Engine, s.Parallel)
	sem := make(chan struct{}, syncs)
	var wg gosync.WaitGroup
	storeFull := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return sum.StoreFull
	}
	for i, lib := range todo {
		if ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		if storeFull() {
			<-sem
			mu.Lock()
			sum.NotTried = len(todo) - i
			mu.Unlock()
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			record(s.Engine.SyncListed(ctx, lib))
		}()
	}
	wg.Wait()
	if ctx.Err() == nil {
		Compared(s.State, recs, s.log())
	}
	sum.Elapsed = time.Since(start)
	if err := ctx.Err(); err != nil {
		return sum, fmt.Errorf("scan: %w", err)
	}
	return sum, nil
}

// Compared is the upkeep of the state after a full comparison of the primary's
// listing with recs (a scan's, a watcher's): the markers of deleted libraries that
// every live library of their store has re-checked past go (left, each costs every sync
// of its store a flush of the whole store), and an earlier scan's "could not run" is
// over (or status would keep telling it). Failing is only logged: neither is the
// backup's.
func Compared(st *state.Dir, recs []state.Library, log *slog.Logger) {
	if err := st.SweepDeletedMarkers(recs); err != nil {
		log.Warn("cannot sweep the markers of deleted libraries", "err", err)
	}
	if err := st.SaveScanFailure(nil); err != nil {
		log.Warn("cannot clear the record of an earlier scan that could not run", "err", err)
	}
}

// Concurrency is how a scan, and a watcher, run the syncs they start: syncs of them at
// once, each copying only in one of the copy slots of the returned context (see
// seafsync.LimitTransfers and Engine.CopySlots, for parallel configured slots). Those
// that finish copying together share one flush of the store, of the markers and of the
// records: a first backup of thousands of small libraries is mostly such flushes. Each
// sync holds its library's lock meanwhile, so a hook for one of them waits its turn.
func Concurrency(ctx context.Context, eng Engine, parallel int) (_ context.Context, syncs int) {
	parallel = max(parallel, 1)
	copies := eng.CopySlots(parallel)
	return seafsync.LimitTransfers(ctx, copies, parallel), max(parallel*inFlightPerSlot, 2*copies)
}

// RealTimeConcurrency is Concurrency for a watcher: at least one copy slot more than
// parallel, which only a small copy can keep (LimitTransfers lets at most parallel
// copies go on past their first smallCopy objects). A long copy (a big upload, a first
// backup) then does not hold every other library's change behind it: with the data dir
// and parallel 1, a one-file change waited for the whole copy.
func RealTimeConcurrency(ctx context.Context, eng Engine, parallel int) (_ context.Context, syncs int) {
	parallel = max(parallel, 1)
	copies := max(eng.CopySlots(parallel), parallel+1)
	return seafsync.LimitTransfers(ctx, copies, parallel), max(parallel*inFlightPerSlot, 2*copies)
}

// inFlightPerSlot is how many syncs run at once per copy slot.
const inFlightPerSlot = 64

// RetryEvery is how often a library that needs a sync only for its holes or a pending
// re-check (RetryOnly) is tried again while its head stays put.
const RetryEvery = time.Hour

// RetryOnly reports whether lib, found changed by Compare, is backed up at its listed
// head (and in the backup database, when dbHeads is given) and needs a sync only for its
// holes (synced with --force) or a pending re-check: no change, failure or deletion to
// record.
func RetryOnly(rec *state.Library, lib primary.Library, dbHeads map[string]string) bool {
	return rec.Head == lib.Head && !rec.Failed() && rec.Deleted == nil && (len(rec.Holes) > 0 || rec.Recheck) &&
		(dbHeads == nil || dbHeads[lib.ID] == lib.Head)
}

// Compare is the one comparison of the primary's listing with the backup: changed are
// the listed libraries not backed up at their head (new, moved, failed, with holes, or
// whose backup database row lags), gone the recorded libraries the primary no longer
// lists and not yet marked deleted. Scan and watch both decide their work with it.
func Compare(libs []primary.Library, recs []state.Library, dbHeads map[string]string) (changed []primary.Library, gone []state.Library) {
	known := make(map[string]*state.Library, len(recs))
	for i := range recs {
		known[recs[i].ID] = &recs[i]
	}
	listed := make(map[string]bool, len(libs))
	for _, lib := range libs {
		listed[lib.ID] = true
		if rec := known[lib.ID]; rec == nil || !rec.UpToDate(lib.Head) || dbHeads != nil && dbHeads[lib.ID] != lib.Head {
			changed = append(changed, lib)
		}
	}
	for _, rec := range recs {
		if !listed[rec.ID] && rec.Deleted == nil {
			gone = append(gone, rec)
		}
	}
	return changed, gone
}

func (s *Scanner) log() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return slog.New(slog.DiscardHandler)
}

// HumanBytes formats a byte count for people.
func HumanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
