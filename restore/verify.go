package restore

import (
	"cmp"
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"runtime"
	"slices"
	"strings"
	gosync "sync"
	"time"

	"seafbak/state"
	"seafbak/sync/object"
	"seafbak/sync/store"
)

// VerifyOptions says what Verify checks and how.
type VerifyOptions struct {
	Store store.Store
	State *state.Dir
	Log   *slog.Logger // nil: silent
	// Libraries to verify; empty means every library in the state.
	Libraries []string
	// DBHeads optionally gives the backup database's master head of libraries (the
	// caller reads it); each is checked as a head too. With Libraries empty, a library
	// present here but unknown to the state is reported as a failure.
	DBHeads map[string]string
	// DBStoreIDs, with DBHeads, gives the store id of libraries the backup database
	// names (the origin's for a virtual library). A library in DBHeads that the state
	// does not know is then verified from its database head alone and reported with
	// Unrecorded set, rather than failed: a failover whose state lost a record.
	DBStoreIDs map[string]string
	// Parallel is how many objects are read at once; 0 means max(8, 2×GOMAXPROCS):
	// hashing needs the CPUs, a cold disk wants several reads in flight.
	Parallel int
	// Sample is the share of blocks whose content is read and hashed, 0 < Sample ≤ 1;
	// 0 means 1 (all). The presence and size of every block are checked whatever the
	// share; commits and fs objects are always read and hashed whole.
	Sample float64
	// Seed chooses the sampled blocks (the same seed picks the same blocks); 0 means a
	// random seed.
	Seed     uint64
	Progress Progress
}

// VerifyReport is what Verify found. Its JSON form is meant for `verify --json`.
type VerifyReport struct {
	Libraries []LibraryReport `json:"libraries"`
	Sample    float64         `json:"sample"`
	// Distinct objects read: objects shared between commits and libraries (a virtual
	// library shares its origin's store) are read once.
	Commits      int64   `json:"commits"`
	FSObjects    int64   `json:"fs_objects"`
	Blocks       int64   `json:"blocks"`        // blocks found present
	BlocksHashed int64   `json:"blocks_hashed"` // blocks read and hashed (all unless sampling)
	Bytes        int64   `json:"bytes"`         // block bytes read and hashed
	Seconds      float64 `json:"seconds"`
}

// MarshalJSON writes an empty list of heads as [], never null.
func (l LibraryReport) MarshalJSON() ([]byte, error) {
	type plain LibraryReport
	if l.Heads == nil {
		l.Heads = []HeadCheck{}
	}
	return json.Marshal(plain(l))
}

// OK reports whether every library checked out: no missing or damaged object other
// than known holes and truncated history, and every head's tree complete.
func (r *VerifyReport) OK() bool {
	for i := range r.Libraries {
		if !r.Libraries[i].OK() {
			return false
		}
	}
	return true
}

// LibraryReport is what Verify found for one library.
type LibraryReport struct {
	RepoID  string     `json:"repo_id"`
	StoreID string     `json:"store_id,omitempty"`
	Name    string     `json:"name,omitempty"`
	Deleted *time.Time `json:"deleted,omitempty"`
	// Commits is how many commits of its history were read.
	Commits int         `json:"commits"`
	Heads   []HeadCheck `json:"heads"`
	// Problems are failures: objects missing or damaged in the backup.
	Problems []Problem `json:"problems,omitempty"`
	// NeverBackedUp says the state knows the library but no sync of it completed: it
	// has no head to check (Error says so).
	NeverBackedUp bool `json:"never_backed_up,omitempty"`
	// Unrecorded says the state has no record of the library: it was checked from the
	// backup database's head alone (see VerifyOptions.DBStoreIDs).
	Unrecorded bool `json:"unrecorded,omitempty"`
	// Expected are objects missing for a reason the state knows (a hole the primary
	// could not fill, history the primary's GC truncated): reported, not failures.
	Expected []Problem `json:"expected,omitempty"`
	// Holes and Truncated are the state's records, for reference.
	Holes     []state.Hole `json:"holes,omitempty"`
	Truncated []string     `json:"truncated,omitempty"`
	// Error says why the library could not be verified at all.
	Error string `json:"error,omitempty"`
}

// OK reports whether the library checked out.
func (l *LibraryReport) OK() bool {
	if l.Error != "" || len(l.Problems) > 0 {
		return false
	}
	for _, h := range l.Heads {
		if !h.Complete && !h.Expected {
			return false
		}
	}
	return true
}

// Head sources in HeadCheck.From.
const (
	FromState   = "state"    // the backed-up head in the state
	FromOldHead = "old-head" // a head the primary moved away from, kept in the state
	FromDB      = "db"       // the backup database's master head
)

// HeadCheck says whether a head's commit and whole tree are in the backup and sound.
type HeadCheck struct {
	Commit   string `json:"commit"`
	From     string `json:"from"`
	Complete bool   `json:"complete"`
	// Expected says an incomplete head lacks only objects explained by known holes.
	Expected bool   `json:"expected,omitempty"`
	Error    string `json:"error,omitempty"`
}

// Problem is one object missing from the backup or damaged in it.
type Problem struct {
	Kind    object.Kind `json:"kind"` // commits, fs or blocks
	ID      string      `json:"id"`
	Missing bool        `json:"missing"`        // absent (false: present but damaged)
	Path    string      `json:"path,omitempty"` // a path where it is used ("/" is the root)
	Commit  string      `json:"commit,omitempty"`
	Error   string      `json:"error"`
	// Reason explains an expected problem (empty for a failure).
	Reason string `json:"reason,omitempty"`
}

// Verify reads the backup store and checks, for each library, everything reachable from
// its heads (the state's head and old heads, and the database's head if given) through
// its full history: every commit parses and is the commit it is stored as, every fs
// object is present and hashes to its id, every block is present and (all or a sample)
// hashes to its id, and every file's blocks add up to its size (for encrypted libraries,
// within AES padding). Objects are read once per store however many commits and
// libraries share them, Parallel at a time; blocks are streamed through a small buffer.
//
// Problems are reported, not returned: the error is for what stops Verify as a whole
// (the state cannot be read, ctx ended).
func Verify(ctx context.Context, opts VerifyOptions) (*VerifyReport, error) {
	if opts.Store == nil || opts.State == nil {
		return nil, errors.New("verify: no store or no state")
	}
	sample := opts.Sample
	if sample == 0 {
		sample = 1
	}
	if math.IsNaN(sample) || sample <= 0 || sample > 1 {
		return nil, fmt.Errorf("verify: sample %v is not in (0, 1]", opts.Sample)
	}
	parallel := opts.Parallel
	if parallel <= 0 {
		parallel = max(8, 2*runtime.GOMAXPROCS(0))
	}
	seed := opts.Seed
	if seed == 0 {
		var b [8]byte
		crand.Read(b[:])
		seed = binary.LittleEndian.Uint64(b[:]) | 1
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	start := time.Now()

	libs, reports, err := selectLibraries(opts)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	v := &verifier{
		ctx: ctx, cancel: cancel, s: opts.Store, sample: sample, seed: seed,
		prog:   &progress{p: opts.Progress},
		stores: map[string]*storeCheck{},
		met:    &met{},
		bufs:   gosync.Pool{New: func() any { b := make([]byte, 512<<10); return &b }},
		hiMark: 4 * parallel,
	}
	v.cond = gosync.NewCond(&v.mu)
	stop := context.AfterFunc(ctx, func() { v.mu.Lock(); v.cond.Broadcast(); v.mu.Unlock() })
	defer stop()
	for _, l := range libs {
		if v.stores[l.lib.StoreID] == nil {
			v.stores[l.lib.StoreID] = newStoreCheck(l.lib.StoreID, uint32(len(v.stores)))
		}
		l.st = v.stores[l.lib.StoreID]
	}

	// Walk the libraries' histories, several libraries at once, feeding every commit's
	// root to the workers as soon as it is read.
	v.producers = 1
	var workers gosync.WaitGroup
	for range parallel {
		workers.Go(v.worker)
	}
	workers.Go(func() {
		defer v.producerDone()
		next := make(chan *libCheck)
		var wg gosync.WaitGroup
		for range min(parallel, max(len(libs), 1)) {
			wg.Go(func() {
				for l := range next {
					d, err := loadDAG(ctx, v.s, l.lib, l.heads(), 2, false, func(c *object.Commit) { v.commit(l.st, c) })
					l.keep(d, err)
				}
			})
		}
		for _, l := range libs {
			select {
			case next <- l:
			case <-ctx.Done():
			}
		}
		close(next)
		wg.Wait()
	})
	workers.Wait()
	if ctx.Err() != nil {
		return nil, context.Cause(ctx) // interrupted, or the store failed (storeDown)
	}
	// The sets of objects met served the first pass only; the second (placing what is
	// bad) needs only the bad ones. On a library of two million files they are some
	// 165 MiB, which the second pass would otherwise hold beside its own.
	v.met = nil

	rep := &VerifyReport{
		Sample:       sample,
		Commits:      v.nCommits.Load(),
		FSObjects:    v.nFS.Load(),
		Blocks:       v.nBlocks.Load(),
		BlocksHashed: v.nHashed.Load(),
		Bytes:        v.nBytes.Load(),
	}
	for _, l := range libs {
		if l.err != nil {
			return nil, l.err
		}
		lr, err := v.report(l)
		l.dag = nil
		if err != nil {
			return nil, err
		}
		if lr.OK() {
			log.Info("library verified", "repo", lr.RepoID, "commits", lr.Commits)
		} else {
			log.Warn("library has missing or damaged objects in the backup", "repo", lr.RepoID, "problems", len(lr.Problems))
		}
		reports = append(reports, lr)
	}
	slices.SortFunc(reports, func(a, b LibraryReport) int { return strings.Compare(a.RepoID, b.RepoID) })
	rep.Libraries = reports
	rep.Seconds = time.Since(start).Seconds()
	return rep, nil
}

// libCheck is one library being verified.
type libCheck struct {
	rec        state.Library
	lib        Library
	dbHead     string
	unrecorded bool // no state record: rec is made up from the database
	st         *storeCheck
	err        error

	// What the first pass learnt of the library's history: how many commits were read,
	// and, only when one was missing or damaged, the history itself (dag), for the
	// second pass; nil means the history was whole, and it is read again there only if
	// the library's store turns out to hold something bad. Keeping every library's
	// history until the report was some 1.2 KB a library: 120 MB of a restore server of
	// 100 000.
	commits int
	dag     *dag
}

// keep records what loadDAG found.
func (l *libCheck) keep(d *dag, err error) {
	if err != nil {
		l.err = err
		return
	}
	whole := true
	for _, n := range d.nodes {
		if n.c != nil {
			l.commits++
		} else {
			whole = false
		}
	}
	if !whole {
		l.dag = d
	}
}

func (l *libCheck) heads() []string {
	hs := StateHeads(l.rec)
	if l.dbHead != "" && !slices.Contains(hs, l.dbHead) {
		hs = append(hs, l.dbHead)
	}
	return hs
}

// selectLibraries loads the libraries to verify; libraries that cannot be verified at
// all come back as finished reports.
func selectLibraries(opts VerifyOptions) ([]*libCheck, []LibraryReport, error) {
	var recs []state.Library
	var done []LibraryReport
	unrecorded := map[string]bool{}
	if len(opts.Libraries) == 0 {
		all, damaged, err := opts.State.All()
		if err != nil {
			return nil, nil, fmt.Errorf("verify: %w", err)
		}
		// A record that cannot be read fails its library alone, as in sync and scan.
		for _, de := range damaged {
			done = append(done, LibraryReport{RepoID: de.RepoID, Error: de.Error()})
		}
		recs = all
		known := map[string]bool{}
		for _, r := range all {
			known[r.ID] = true
		}
		for _, de := range damaged {
			known[de.RepoID] = true
		}
		for id := range opts.DBHeads {
			switch {
			case known[id]:
			case opts.DBStoreIDs != nil:
				recs = append(recs, state.Library{ID: id, StoreID: cmp.Or(opts.DBStoreIDs[id], id)})
				unrecorded[id] = true
			default:
				done = append(done, LibraryReport{RepoID: id, Error: "in the backup database but unknown to seafbak's state"})
			}
		}
	} else {
		seen := map[string]bool{}
		for _, id := range opts.Libraries {
			if seen[id] {
				continue
			}
			seen[id] = true
			rec, found, err := opts.State.Load(id)
			if err != nil && (object.IsInvalid(err) || errors.Is(err, state.ErrDamaged)) {
				done = append(done, LibraryReport{RepoID: id, Error: err.Error()})
				continue
			}
			if err != nil {
				return nil, nil, fmt.Errorf("verify: %w", err)
			}
			if !found {
				done = append(done, LibraryReport{RepoID: id, Error: "never backed up (not in seafbak's state)"})
				continue
			}
			recs = append(recs, rec)
		}
	}
	var libs []*libCheck
	for _, rec := range recs {
		l := &libCheck{rec: rec, lib: LibraryOf(rec), dbHead: opts.DBHeads[rec.ID], unrecorded: unrecorded[rec.ID]}
		if err := checkLibrary(l.lib); err != nil {
			done = append(done, LibraryReport{RepoID: rec.ID, Error: err.Error()})
			continue
		}
		if len(l.heads()) == 0 {
			r := LibraryReport{RepoID: rec.ID, StoreID: l.lib.StoreID, Name: rec.Name, Deleted: rec.Deleted,
				Holes: rec.Holes, Truncated: rec.Truncated, NeverBackedUp: true}
			if rec.Deleted == nil {
				// Deleted on the primary before any sync of it completed: nothing of it
				// is in the backup, and nothing ever will be; not a problem of the store.
				r.Error = "no head backed up yet: " + cmp.Or(rec.LastError, "never synced")
			}
			done = append(done, r)
			continue
		}
		libs = append(libs, l)
	}
	return libs, done, nil
}
