// Package sync is seafbak's engine: it brings one library of the backup up to the
// primary's head, with Seafile's own sync algorithm. It walks the commit DAG from the
// primary's head back to what the backup already has, fetches only the fs objects and
// blocks the backup lacks, verifies each, writes them bottom-up (blocks, files, dirs,
// commits oldest first) so that a present object always has its whole subtree, makes
// them durable, and only then moves the backup's metadata (database rows, state).
//
// The engine knows nothing of the command line: it is given a source, a store, the
// state directory and a logger.
package sync

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync/atomic"
	"time"

	"seafbak/internal/progress"
	"seafbak/state"
	"seafbak/sync/object"
	"seafbak/sync/primary"
	"seafbak/sync/store"
)

// Engine syncs libraries from one primary into one backup.
type Engine struct {
	Source primary.Source
	Store  store.Store
	// Rows keeps the backup database's Repo/Branch/RepoHead rows; nil when the backup
	// keeps no live database (the state then holds the heads).
	Rows  *store.Rows
	State *state.Dir
	Log   *slog.Logger
	// Parallel is how many blocks are copied at once (default 4).
	Parallel int
	// Force skips objects that are missing or corrupt on the primary, recording them as
	// holes, instead of failing the library.
	Force bool
	// LockWait is how long Sync waits for another invocation syncing the same library:
	// 0 as long as ctx allows, less than 0 not at all (state.ErrLocked at once).
	LockWait time.Duration
	// Recheck re-reads and verifies every object of each library's history (and of its
	// old heads) instead of trusting presence, fetching again what is missing or damaged
	// in the backup: the repair of bit rot or a lost disk sector.
	Recheck bool
	// Progress, if set, hears of the blocks planned and copied (a progress bar on a
	// terminal).
	Progress progress.Meter
	// Now is the clock (tests set it).
	Now func() time.Time
}

// Result says what a sync did.
type Result struct {
	RepoID      string
	Name        string
	OldHead     string // head in the backup before
	Head        string // head in the backup after
	UpToDate    bool   // nothing had to be copied
	Deleted     bool   // the library is gone from the primary
	Commits     int    // commit objects written
	FSObjects   int    // fs objects written
	Blocks      int    // blocks written
	Bytes       int64  // bytes of objects written
	Holes       []state.Hole
	Truncated   int  // commits whose trees the primary's GC removed
	Rechecked   bool // presence was not trusted (a previous attempt died)
	OldHeadKept bool // the old head left the primary's history and was recorded
	// Frontier is the most fs objects the walk held at once: it depends on the tree's
	// shape (fan-out, depth) and on how far the walk runs ahead of the copy, not on how
	// many files the library has.
	Frontier int
}

// ErrLibraryUnknown is returned for a library that neither the primary nor the backup
// knows.
var ErrLibraryUnknown = errors.New("library does not exist on the primary and was never backed up")

// ErrRecordedHeadMissing: the state records a head as backed up, and the store lacks
// its commit. Nothing deletes from the store, so it is most likely not the store the
// state was written with (another disk mounted at backup.data_dir, other buckets): a
// sync would copy the library's whole history into it, and record as truncated the
// history the primary no longer has, which the right store holds.
var ErrRecordedHeadMissing = errors.New("the backup store lacks the head commit the state records as backed up")

func (e *Engine) now() time.Time {
	if e.Now != nil {
		return e.Now().UTC()
	}
	return time.Now().UTC()
}

func (e *Engine) log() *slog.Logger {
	if e.Log != nil {
		return e.Log
	}
	return slog.New(slog.DiscardHandler)
}

// Sync backs up the library repoID, waiting for any other invocation syncing it.
func (e *Engine) Sync(ctx context.Context, repoID string) (Result, error) {
	if err := object.CheckRepoID(repoID); err != nil {
		return Result{RepoID: repoID}, fmt.Errorf("sync %s: %w", repoID, err)
	}
	lock, err := e.lock(ctx, repoID)
	if errors.Is(err, state.ErrLocked) {
		// The holder may be copying a head read before the change that brought this
		// sync: it is asked to look again before it lets go, and one last try covers
		// a holder that let go meanwhile.
		if aerr := e.State.AskAgain(repoID); aerr != nil {
			return Result{RepoID: repoID}, fmt.Errorf("sync %s: %w", repoID, errors.Join(err, aerr))
		}
		if l, terr := e.State.TryLock(repoID); terr == nil {
			lock, err = l, nil
			e.State.TakeAgain(repoID) // its own request: this sync reads the head now
		}
	}
	if err != nil {
		return Result{RepoID: repoID}, fmt.Errorf("sync %s: %w", repoID, err)
	}
	res, err := e.syncThenUnlock(ctx, lock, repoID, func() (Result, error) { return e.syncHead(ctx, lock, repoID) })
	return e.askedAsItLetGo(ctx, repoID, res, err)
}

// askedAsItLetGo syncs again for a request made between the holder's last look and its
// unlock (its maker's last try at the lock failed just before), which would otherwise
// wait for the next scan. If another invocation holds the lock by now, that one read
// the head after the request, and takes it when done.
func (e *Engine) askedAsItLetGo(ctx context.Context, repoID string, res Result, err error) (Result, error) {
	for err == nil && ctx.Err() == nil && e.State.Asked(repoID) {
		l, terr := e.State.TryLock(repoID)
		if terr != nil {
			break
		}
		if _, terr := e.State.TakeAgain(repoID); terr != nil {
			// A request that cannot be taken would be seen again at every look.
			l.Unlock()
			e.log().Warn("cannot take a request for another sync", "repo", repoID, "err", terr)
			break
		}
		e.log().Info("another invocation asked for this library as this sync let go: reading its head again", "repo", repoID)
		again, aerr := e.syncThenUnlock(ctx, l, repoID, func() (Result, error) { return e.syncHead(ctx, l, repoID) })
		if aerr != nil || !again.UpToDate {
			res, err = again, aerr
		}
	}
	return res, err
}

// syncThenUnlock runs first, the sync the caller took the lock for, then those asked
// for meanwhile, then lets go of the lock.
func (e *Engine) syncThenUnlock(ctx context.Context, lock *state.Lock, repoID string, first func() (Result, error)) (Result, error) {
	defer lock.Unlock()
	res, err := first()
	return e.syncAgainIfAsked(ctx, lock, repoID, res, err)
}

// syncHead reads repoID's head from the primary and syncs it; the caller holds the lock.
func (e *Engine) syncHead(ctx context.Context, lock *state.Lock, repoID string) (Result, error) {
	lib, err := e.Source.Library(ctx, repoID)
	if errors.Is(err, primary.ErrLibraryGone) {
		return e.markDeletedLocked(ctx, repoID)
	}
	if err != nil {
		return Result{RepoID: repoID}, fmt.Errorf("sync %s: %w", repoID, err)
	}
	return e.syncLocked(ctx, lock, lib, false)
}

// syncAgainIfAsked runs, before the lock goes, the syncs that invocations which gave
// up waiting for it asked for (state.Dir.AskAgain): the primary's head is read again
// and synced, until no request is left. After a failure it only takes the requests:
// the failure is recorded, and the next scan retries the library.
func (e *Engine) syncAgainIfAsked(ctx context.Context, lock *state.Lock, repoID string, res Result, err error) (Result, error) {
	for {
		asked, terr := e.State.TakeAgain(repoID)
		if terr != nil {
			e.log().Warn("cannot take a request for another sync", "repo", repoID, "err", terr)
			return res, err
		}
		if !asked || err != nil || ctx.Err() != nil {
			return res, err
		}
		e.log().Info("another invocation asked for this library while it synced: reading its head again", "repo", repoID)
		again, aerr := e.syncHead(ctx, lock, repoID)
		if aerr != nil || !again.UpToDate {
			// What the caller learns is where the library now stands.
			res, err = again, aerr
		}
	}
}

// lock takes repoID's lock, waiting as LockWait says.
func (e *Engine) lock(ctx context.Context, repoID string) (*state.Lock, error) {
	switch {
	case e.LockWait < 0:
		return e.State.TryLock(repoID)
	case e.LockWait == 0:
		return e.State.Lock(ctx, repoID)
	}
	wctx, cancel := context.WithTimeout(ctx, e.LockWait)
	defer cancel()
	l, err := e.State.Lock(wctx, repoID)
	if err != nil && ctx.Err() == nil && wctx.Err() != nil {
		return nil, fmt.Errorf("library %s: %w (waited %s)", repoID, state.ErrLocked, e.LockWait)
	}
	return l, err
}

// SyncListed backs up a library the caller has just listed from the primary. If another
// invocation is syncing it, it returns state.ErrLocked at once: that one will finish it.
// The listing is a snapshot taken before the lock: a head it gives that the backup
// already holds is asked of the primary again (see syncLocked).
func (e *Engine) SyncListed(ctx context.Context, lib primary.Library) (Result, error) {
	lock, err := e.State.TryLock(lib.ID)
	if err != nil {
		return Result{RepoID: lib.ID, Name: lib.Name}, err
	}
	res, err := e.syncThenUnlock(ctx, lock, lib.ID, func() (Result, error) { return e.syncLocked(ctx, lock, lib, true) })
	return e.askedAsItLetGo(ctx, lib.ID, res, err)
}

// relisted is the primary's library now, asked again under the lock, when lib came from
// a listing taken before it and names a head other than the recorded one that the
// backup already holds. That is what a stale listing looks like: another invocation (the
// primary's hook) synced a newer head between the listing and this lock, and syncing the
// listed one would move the backup back to an older head (and keep the newer one as an
// "old head", with a warning about a revert that never happened). A real revert to an
// old commit (seaf-fsck resetting a branch) looks the same, so the primary decides. A
// forward sync's head is new to the backup and costs one presence check.
func (e *Engine) relisted(ctx context.Context, rec state.Library, lib primary.Library) (primary.Library, bool, error) {
	if rec.Head == "" || rec.Head == lib.Head || !object.ValidID(lib.Head) {
		return lib, false, nil
	}
	keys := object.Keys{RepoID: lib.ID, StoreID: lib.StoreID}
	held, err := e.Store.Has(ctx, object.KindCommit, keys.For(object.KindCommit), lib.Head)
	if err != nil || !held {
		return lib, false, err
	}
	now, err := e.Source.Library(ctx, lib.ID)
	if err != nil {
		return lib, false, err
	}
	return now, true, nil
}

// PrepareListed gives the source a head start on libraries about to sync: the HTTP
// source creates their tokens in a few statements instead of one commit per library.
// Failing is harmless (each sync prepares its own library and reports its error), so
// it is only logged.
func (e *Engine) PrepareListed(ctx context.Context, libs []primary.Library) {
	p, ok := e.Source.(primary.BatchPreparer)
	if !ok || len(libs) == 0 {
		return
	}
	if err := p.PrepareMany(ctx, libs); err != nil {
		if ctx.Err() != nil {
			return // stopping: nothing to tell
		}
		e.log().Info("preparing the libraries in batches failed; each sync prepares its own", "libraries", len(libs), "err", err)
		return
	}
	e.log().Debug("prepared the libraries in batches", "libraries", len(libs))
}

// BackupHeads lists the master heads in the backup database, which may lag the state
// (added to the config later, restored from an older dump); nil when there is none.
func (e *Engine) BackupHeads(ctx context.Context) (map[string]string, error) {
	if e.Rows == nil {
		return nil, nil
	}
	return e.Rows.Heads(ctx)
}

// MarkDeleted records that the primary no longer has repoID. Its objects and history
// stay in the backup; its backup database rows go, so a failover server shows what the
// primary showed.
//
// The caller saw it missing from a listing taken before the lock, so the primary is
// asked again under it: restored from the trash meanwhile (and synced by its hook),
// it is synced rather than marked deleted, which would remove the rows of a live
// library until its next sync.
func (e *Engine) MarkDeleted(ctx context.Context, repoID string) (Result, error) {
	lock, err := e.State.TryLock(repoID)
	if err != nil {
		return Result{RepoID: repoID}, err
	}
	defer lock.Unlock()
	res, err := e.syncHead(ctx, lock, repoID)
	return e.syncAgainIfAsked(ctx, lock, repoID, res, err)
}

func (e *Engine) markDeletedLocked(ctx context.Context, repoID string) (Result, error) {
	res := Result{RepoID: repoID, Deleted: true}
	rec, found, err := e.State.Load(repoID)
	if err != nil {
		return res, fmt.Errorf("sync %s: %w", repoID, err)
	}
	if !found {
		return res, fmt.Errorf("sync %s: %w", repoID, ErrLibraryUnknown)
	}
	res.Name, res.OldHead, res.Head = rec.Name, rec.Head, rec.Head
	if had, err := e.State.MarkWriterDeleted(cmp.Or(rec.StoreID, repoID), repoID); err != nil {
		return res, fmt.Errorf("sync %s: %w", repoID, err)
	} else if had {
		e.log().Warn("the library's last attempt died, and it is now deleted on the primary: the other libraries of its store re-check once; its own history is not re-checked (run seafbak verify on it)",
			"repo", repoID, "name", rec.Name)
	}
	if rec.Deleted != nil {
		return res, nil
	}
	if e.Rows != nil {
		if err := e.State.RefuseIfFailedOver(); err != nil {
			return res, fmt.Errorf("sync %s: %w", repoID, err)
		}
		if err := e.Rows.Delete(ctx, repoID); err != nil {
			return res, fmt.Errorf("sync %s: %w", repoID, err)
		}
	}
	now := e.now()
	rec.Deleted = &now
	rec.LastAttempt = now
	if err := e.State.Save(rec); err != nil {
		return res, fmt.Errorf("sync %s: %w", repoID, err)
	}
	e.log().Info("library deleted on the primary; its backup is kept", "repo", repoID, "name", rec.Name, "head", rec.Head)
	return res, nil
}

// preload readies the source and the store for a first backup, which reads and asks
// about nearly every object of the library: the data dir source holds the library's
// directories open, a directory store too, and S3 lists the library's objects in one go
// (after a killed first backup most of them are there). Later syncs ask about few
// objects (the walk stops at present dirs), so one request each is cheaper than listing
// a library of millions. A failed preload costs only speed: presence is then asked
// object by object. The returned func releases it all.
func (e *Engine) preload(ctx context.Context, lib primary.Library, log *slog.Logger) func() {
	release := func() {}
	if h, ok := e.Source.(primary.Holder); ok {
		h.Hold(lib)
		release = func() { h.Release(lib) }
	}
	p, ok := e.Store.(store.Preloader)
	if !ok {
		return release
	}
	keys := object.Keys{RepoID: lib.ID, StoreID: lib.StoreID}
	kinds := []object.Kind{object.KindCommit, object.KindFS, object.KindBlock}
	for _, k := range kinds {
		if err := p.Preload(ctx, k, keys.For(k)); err != nil {
			log.Warn("preparing the backup store for this library failed; going object by object", "kind", k, "err", err)
		}
	}
	return func() {
		for _, k := range kinds {
			p.Forget(k, keys.For(k))
		}
		release()
	}
}

type transferSlotsKey struct{}

// slots are LimitTransfers' semaphores.
type slots struct {
	copy    chan struct{} // copying objects
	large   chan struct{} // copies past their first smallCopy objects; nil if copy is no wider than parallel
	prepare chan struct{} // Source.Prepare: the primary's database (tokens)
	// extraWorkers counts the block workers started beyond each copy's first parallel,
	// up to cap(copy) in all (with large only): the requests in flight are bounded at
	// that anyway, and a worker per request per copy would be a thousand goroutines
	// waiting, each scanned by every garbage collection.
	extraWorkers atomic.Int64
}

// takeExtraWorker reserves one worker beyond a copy's first parallel, if any is left.
func (s *slots) takeExtraWorker() bool {
	if s.extraWorkers.Add(1) > int64(cap(s.copy)) {
		s.extraWorkers.Add(-1)
		return false
	}
	return true
}

// LimitTransfers returns a context under which at most copies of the syncs it is given
// to copy objects at once, and at most parallel prepare at once (over HTTP, a query of
// the primary's database each: hundreds at once would exceed its max_connections). A
// scan runs many more syncs than that at once, so that the durability work around each
// copy (the dirty marker, the flush of the store, the backup database rows, the state
// record) is shared by the syncs that reach it together rather than paid by each, while
// the copying itself stays bounded (see CopySlots). When copies is more than parallel,
// only parallel of them may go on past their first smallCopy objects: a walk's memory
// grows with its library (commits, a batch of fs objects, the frontier), so however
// many small libraries copy at once, a scan holds at most parallel large walks.
func LimitTransfers(ctx context.Context, copies, parallel int) context.Context {
	copies, parallel = max(copies, 1), max(parallel, 1)
	s := &slots{copy: make(chan struct{}, copies), prepare: make(chan struct{}, parallel)}
	if copies > parallel {
		s.large = make(chan struct{}, parallel)
	}
	return context.WithValue(ctx, transferSlotsKey{}, s)
}

// CopySlots is how many libraries should copy at once, for parallel configured slots.
// From the data dir a copy is disk and CPU work, bounded by parallel. A source whose
// reads wait on the network (primary.Concurrent) bounds the requests it sends itself,
// adapting to the server; a small library's copy there is a chain of round trips (head
// commit, parent, root dir, its entries, blocks), so with only parallel copies at once a
// first scan of many small libraries waits on the round trips and leaves the server and
// this host idle. It keeps as many copies going as requests in flight instead (issue 10:
// 3 000 new libraries at 5 ms RTT took 31.4 s with 4 copies at once, 10.3 s with 32).
func (e *Engine) CopySlots(parallel int) int { return inFlight(e.Source, parallel) }

// inFlight is how many reads of src to keep going at once: parallel, or as many
// requests as src keeps in flight when its reads wait on the network.
func inFlight(src primary.Source, parallel int) int {
	n := max(parallel, 1)
	if c, ok := src.(primary.Concurrent); ok {
		n = max(n, c.BlockConcurrency())
	}
	return n
}

// slot waits for one of LimitTransfers' slots (copy, large or prepare), if ctx has them.
func slot(ctx context.Context, which func(*slots) chan struct{}) (release func(), err error) {
	s, _ := ctx.Value(transferSlotsKey{}).(*slots)
	if s == nil {
		return func() {}, nil
	}
	c := which(s)
	if c == nil {
		return func() {}, nil
	}
	select {
	case c <- struct{}{}:
		return func() { <-c }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// transferSlots are ctx's LimitTransfers slots when copies there are wider than
// parallel, else nil.
func transferSlots(ctx context.Context) *slots {
	if s, _ := ctx.Value(transferSlotsKey{}).(*slots); s != nil && s.large != nil {
		return s
	}
	return nil
}

func copySlot(s *slots) chan struct{}    { return s.copy }
func largeSlot(s *slots) chan struct{}   { return s.large }
func prepareSlot(s *slots) chan struct{} { return s.prepare }

// prepare runs the source's Prepare, if it has one, in a prepare slot.
func (e *Engine) prepare(ctx context.Context, lib primary.Library) error {
	p, ok := e.Source.(primary.Preparer)
	if !ok {
		return nil
	}
	release, err := slot(ctx, prepareSlot)
	if err != nil {
		return err
	}
	defer release()
	return p.Prepare(ctx, lib)
}

// syncLocked runs one sync of lib; the caller holds lib's lock. listed: lib comes from a
// listing taken before the lock (see relisted).
func (e *Engine) syncLocked(ctx context.Context, lock *state.Lock, lib primary.Library, listed bool) (Result, error) {
	res := Result{RepoID: lib.ID, Name: lib.Name}
	rec, found, err := e.State.Load(lib.ID)
	if err != nil {
		return res, fmt.Errorf("sync %s: %w", lib.ID, err)
	}
	// First, so that a dead attempt's marker of this library is renamed dead as soon
	// as this attempt holds the lock (see state.Dir.DeadDirty).
	dead, err := e.State.DeadDirty(lib.StoreID, lib.ID, rec.RecheckedAt)
	if err != nil {
		err = fmt.Errorf("sync %s: %w", lib.ID, err)
		if !found {
			return res, err // see lostRecord: nothing may be recorded before it is known
		}
		return res, e.fail(ctx, rec, lib, err)
	}
	// Only now are this library's markers live to the others of its store: a dead
	// attempt's are renamed dead, and the ones this attempt makes are its own.
	lock.Announce()
	// No record, but the store has this library's commits: the record was lost or moved
	// aside, and with it the holes that say which present commits lack part of their
	// tree. Presence proves nothing until every object is re-read. Known before any
	// failure is recorded: the record a failure writes carries the re-check, or the next
	// sync, finding a record, would trust presence.
	lostRecord := false
	if !found {
		has, err := e.Store.HasLibrary(ctx, object.KindCommit, object.Keys{RepoID: lib.ID, StoreID: lib.StoreID}.For(object.KindCommit))
		if err != nil {
			return res, fmt.Errorf("sync %s: %w", lib.ID, err) // recorded nothing: the next sync asks again
		}
		lostRecord, rec.Recheck = has, has
	}
	if listed && lib.HeadError != nil {
		// The listing's word (the primary's database and file server disagreeing for a
		// moment) may be over by now: a watcher retries with the listing it cached, and
		// would fail on the same error until its next full comparison. The primary
		// answers again; failing to, the listing's error stands.
		if now, err := e.Source.Library(ctx, lib.ID); err == nil {
			lib = now
			res.Name = lib.Name
		}
	}
	if listed && found {
		now, asked, err := e.relisted(ctx, rec, lib)
		switch {
		case errors.Is(err, primary.ErrLibraryGone):
			return e.markDeletedLocked(ctx, lib.ID)
		case err != nil:
			// Recorded, as every failure from here on: status, --if-changed and the
			// metrics read the record, and an error only returned looked healthy there.
			return res, e.fail(ctx, rec, lib, fmt.Errorf("sync %s: %w", lib.ID, err))
		case asked && now.Head != lib.Head:
			e.log().Info("the listed head is already backed up and the primary has moved on: syncing its head now",
				"repo", lib.ID, "name", lib.Name, "listed_head", lib.Head, "head", now.Head, "recorded_head", rec.Head)
			lib = now
			res.Name = lib.Name
		}
	}
	res.OldHead, res.Head = rec.Head, rec.Head
	if lib.Version == 0 {
		return res, e.fail(ctx, rec, lib, fmt.Errorf("sync %s (%s): %w", lib.ID, lib.Name, object.ErrVersion0))
	}
	if lib.HeadError != nil {
		return res, e.fail(ctx, rec, lib, fmt.Errorf("sync %s (%s): %w", lib.ID, lib.Name, lib.HeadError))
	}
	why := ""
	switch {
	case dead:
		why = "a previous sync into this store died"
	case lostRecord:
		why = "the store has objects of this library but the state has no record of it"
	case rec.Recheck:
		why = "the last sync that re-checked this library did not finish"
	case e.Recheck:
		why = "repair requested"
	case found && rec.Deleted != nil:
		// While it was deleted, the marker a dead sync into its store left may have
		// been swept (SweepDeletedMarkers waits only for the store's live libraries):
		// nothing else would say that presence is not to be trusted.
		why = "it is back from the primary's trash"
	}
	recheck := why != ""
	// Until a re-check completes, a failure must leave the next sync re-checking too:
	// the marker goes with any failure after the objects are durable. Not a re-check
	// only asked for (verify --repair): presence was trusted before it and nothing it
	// does makes it less so, and one that cannot finish (damage the primary lost too)
	// re-checked, and failed, at every later sync, so the library's new commits were
	// never backed up.
	repairOnly := why == "repair requested"
	rec.Recheck = recheck && !repairOnly
	if !recheck && rec.UpToDate(lib.Head) {
		// The backup database may lag the state: added to the config later, or restored
		// from an older dump. Then only its rows need to move.
		rowsBehind := false
		if e.Rows != nil {
			dbHead, err := e.Rows.Head(ctx, lib.ID)
			if err != nil {
				return res, e.fail(ctx, rec, lib, fmt.Errorf("sync %s: %w", lib.ID, err))
			}
			rowsBehind = dbHead != lib.Head
		}
		if !rowsBehind {
			res.UpToDate = true
			e.log().Debug("up to date", "repo", lib.ID, "name", lib.Name, "head", lib.Head)
			return res, nil
		}
	}
	log := e.log().With("repo", lib.ID)
	if recheck {
		log.Warn("re-checking every object before trusting it", "why", why, "store", lib.StoreID)
	} else if rec.Head != "" && rec.Head != lib.Head {
		// One stat (or HEAD) per sync that copies: the store must be the one the state
		// describes before anything is written into it on that word.
		has, err := e.Store.Has(ctx, object.KindCommit, object.Keys{RepoID: lib.ID, StoreID: lib.StoreID}.For(object.KindCommit), rec.Head)
		if err != nil {
			return res, e.fail(ctx, rec, lib, fmt.Errorf("sync %s (%s): %w", lib.ID, lib.Name, err))
		}
		if !has {
			return res, e.fail(ctx, rec, lib, fmt.Errorf("sync %s (%s): commit %s: %w", lib.ID, lib.Name, rec.Head, ErrRecordedHeadMissing))
		}
	}
	// Prepare before the marker: a failure here writes nothing, and must not leave a
	// marker that would make the next sync re-check the whole library.
	if err := e.prepare(ctx, lib); err != nil {
		return res, e.fail(ctx, rec, lib, fmt.Errorf("sync %s (%s): %w", lib.ID, lib.Name, err))
	}
	// A store whose every Commit is durable (S3) leaves nothing undurable behind a
	// sync that dies: no marker, so a killed sync costs the next one no re-check. Stale
	// markers (from a filesystem store this state served before) are still honoured
	// above, and cleared by the re-check they cause.
	if !store.DurableOnCommit(e.Store) {
		if err := e.State.MarkDirty(lib.StoreID, lib.ID); err != nil {
			return res, e.fail(ctx, rec, lib, fmt.Errorf("sync %s: %w", lib.ID, err))
		}
	}
	log.Info("syncing", "name", lib.Name, "from", rec.Head, "to", lib.Head)
	started := time.Now()
	r := newRun(e, lib, rec, recheck, log)
	release, runErr := slot(ctx, copySlot)
	if runErr == nil {
		forget := func() {}
		if rec.Head == "" && !recheck {
			forget = e.preload(ctx, lib, log)
		}
		runErr = r.transfer(ctx)
		// The listing and the copy slots are for the copy only: the flush and the
		// metadata below are shared with other syncs, and the post-condition asks the
		// store itself.
		forget()
		if r.releaseLarge != nil {
			r.releaseLarge()
		}
		release()
	}
	// Whatever happened, make what was written durable so the marker can go: the objects
	// written are complete (each was named only when whole).
	flush := e.Store.Sync
	if recheck {
		// What a dead attempt wrote can still be only in the page cache (killed, the
		// machine up): the re-check read it back from there, found it whole and wrote
		// nothing, so flushing only its own writes would let the marker go, and the
		// head be recorded, over objects a power loss still empties.
		flush = e.Store.SyncAll
	}
	if err := flush(ctx); err != nil {
		return res, e.fail(ctx, rec, lib, fmt.Errorf("sync %s: %w", lib.ID, errors.Join(runErr, err)))
	}
	res.Commits, res.FSObjects, res.Blocks, res.Bytes = r.stats.commits, r.stats.fs, r.stats.blocks, r.stats.bytes
	res.Frontier = r.stats.frontier
	res.Rechecked = recheck
	now := e.now()
	holes := r.holesFor(rec.Holes, now)
	truncated := mergeSorted(rec.Truncated, r.truncatedList())
	if runErr != nil {
		// Holes found are kept even though the head does not move: commits above them
		// may be in the store already, and only the record says they lack something.
		rec.Holes = unionHoles(rec.Holes, holes)
		err := e.fail(ctx, rec, lib, fmt.Errorf("sync %s (%s): %w", lib.ID, lib.Name, runErr))
		if cerr := e.State.ClearDirty(lib.StoreID, lib.ID); cerr != nil {
			err = errors.Join(err, cerr)
		}
		return res, err
	}
	// The objects written are durable and every one of them was verified (a re-check
	// too has finished), so whatever happens to the metadata below, the marker's job is
	// done: a failed database update must not make the next sync re-hash the whole
	// library. It goes now, before the record: a record showing the new head never sits
	// beside a stale marker (a kill between the two would leave the library up to date
	// yet re-checked at its next change, and its virtual libraries at every sync).
	if err := e.State.ClearDirty(lib.StoreID, lib.ID); err != nil {
		return res, e.fail(ctx, rec, lib, fmt.Errorf("sync %s: %w", lib.ID, err))
	}
	// A re-check that recorded holes has found objects damaged in the store that the
	// primary no longer has, under directories already there: a plain sync would find
	// those directories present, take their trees as whole and drop the holes while the
	// damage stays. So re-checking goes on (and the dead marker stays, for the other
	// libraries of the store) until a re-check finds no hole: the primary repaired, or
	// the admin told.
	stillRecheck := recheck && len(r.holes) > 0
	if recheck {
		rec.RecheckedAt = started // what it read back was there when it started
	}
	if recheck && !stillRecheck {
		// The re-check covered everything a dead attempt of this library wrote.
		if err := e.State.ClearDead(lib.StoreID, lib.ID); err != nil {
			return res, e.fail(ctx, rec, lib, fmt.Errorf("sync %s: %w", lib.ID, err))
		}
	}
	failMeta := func(err error) error {
		rec.Holes = unionHoles(rec.Holes, holes)
		return e.fail(ctx, rec, lib, fmt.Errorf("sync %s (%s): %w", lib.ID, lib.Name, err))
	}
	// Objects another process wrote and this sync trusted may not be durable yet; a
	// re-check flushed the whole store above, after everything it trusted was there.
	if !recheck {
		if others, err := e.State.OtherWriters(lib.StoreID, lib.ID); err != nil || others {
			if err == nil {
				err = e.Store.SyncAll(ctx)
			}
			if err != nil {
				return res, failMeta(err)
			}
		}
	}
	if err := r.proveRecordable(ctx, holes, truncated); err != nil {
		log.Error("post-condition failed; nothing recorded", "err", err)
		return res, failMeta(err)
	}
	// Every object of the new head is durable: now the metadata may move (invariant 2).
	if e.Rows != nil {
		// Once a failover made the rows Seafile's, none moves: a watch started before
		// it would put the libraries its users now edit back to the old primary's heads.
		if err := e.State.RefuseIfFailedOver(); err != nil {
			return res, failMeta(err)
		}
		if err := e.Rows.SetHead(ctx, lib.ID, lib.Head); err != nil {
			return res, failMeta(err)
		}
	}
	if rec.Head != "" && rec.Head != lib.Head {
		kept, err := r.keepOldHead(ctx, rec.Head)
		if err != nil {
			return res, failMeta(err)
		}
		returning := slices.ContainsFunc(rec.OldHeads, func(o state.OldHead) bool { return o.Head == lib.Head })
		if kept {
			rec.OldHeads = append(rec.OldHeads, state.OldHead{Head: rec.Head, Replaced: now})
			res.OldHeadKept = true
			log.Warn("the primary's head left the backed-up history (revert or repair); the old head stays restorable",
				"old_head", rec.Head, "new_head", lib.Head)
		}
		if kept || returning {
			rec.HeadMoves = append(rec.HeadMoves, state.HeadMove{From: rec.Head, To: lib.Head, At: now})
		}
	}
	if rec.Deleted != nil {
		log.Info("library is back on the primary", "deleted_since", rec.Deleted)
		rec.Deleted = nil
	}
	rec.StoreID, rec.Name, rec.Owner, rec.OrgID = lib.StoreID, lib.Name, lib.Owner, lib.OrgID
	if rec.Head != lib.Head || !r.headTime.IsZero() {
		rec.HeadTime = r.headTime // zero when the head's commit was not walked: unknown
	}
	rec.Head = lib.Head
	rec.LastAttempt, rec.LastSuccess, rec.LastError, rec.FailedBecause = now, now, "", ""
	rec.Recheck = stillRecheck
	rec.Holes = holes
	rec.Truncated = truncated
	if err := e.State.Save(rec); err != nil {
		return res, fmt.Errorf("sync %s: %w", lib.ID, err)
	}
	res.Head = lib.Head
	res.Holes = rec.Holes
	res.Truncated = len(r.truncated)
	log.Info("synced", "name", lib.Name, "head", lib.Head, "commits", res.Commits, "fs_objects", res.FSObjects,
		"blocks", res.Blocks, "bytes", res.Bytes, "truncated", res.Truncated, "seconds", time.Since(started).Seconds())
	if len(rec.Holes) > 0 {
		log.Warn("library synced with holes: objects missing or corrupt on the primary were skipped", "holes", len(rec.Holes))
	}
	return res, nil
}

// fail records a failed attempt in the library's state and returns err. An attempt cut
// short by ctx (Ctrl-C, SIGTERM, a caller's deadline) is not the library's failure: only
// what the next sync must know (a pending re-check, holes found) is recorded.
func (e *Engine) fail(ctx context.Context, rec state.Library, lib primary.Library, err error) error {
	var full *store.NoSpaceError
	if errors.As(err, &full) && !errors.Is(err, store.ErrFlushFailed) {
		// One text for every attempt that meets the full store (see NoSpaceError); the
		// object it was writing goes to the log.
		e.log().Debug("backup store full", "repo", lib.ID, "err", err)
		err = fmt.Errorf("sync %s (%s): %w", lib.ID, lib.Name, full)
	}
	if ctx.Err() == nil {
		rec.LastAttempt = e.now()
		rec.LastError = err.Error()
		rec.FailedBecause = failureClass(err)
	}
	if rec.StoreID == "" {
		rec.StoreID, rec.Name, rec.Owner, rec.OrgID = lib.StoreID, lib.Name, lib.Owner, lib.OrgID
	}
	if serr := e.State.Save(rec); serr != nil {
		return errors.Join(err, serr)
	}
	return err
}

// failureClass is err's state.Failure* class.
func failureClass(err error) string {
	switch {
	case errors.Is(err, store.ErrNoSpace):
		return state.FailureStoreFull
	case errors.Is(err, primary.ErrUnreachable):
		return state.FailurePrimaryUnreachable
	case errors.Is(err, store.ErrUnavailable):
		return state.FailureStoreUnavailable
	}
	return state.FailureOther
}

// unionHoles adds the holes a failed sync found to those already recorded, by object id.
func unionHoles(old, found []state.Hole) []state.Hole {
	out := append([]state.Hole(nil), old...)
	have := map[string]bool{}
	for _, h := range old {
		have[h.ID] = true
	}
	for _, h := range found {
		if !have[h.ID] {
			out = append(out, h)
			have[h.ID] = true
		}
	}
	return out
}
