package restore

import (
	"cmp"
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"path"
	"runtime"
	"slices"
	"strings"
	gosync "sync"
	"sync/atomic"
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
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	v := &verifier{
		ctx: ctx, s: opts.Store, sample: sample, seed: seed,
		prog:   &progress{p: opts.Progress},
		stores: map[string]*storeCheck{},
		bufs:   gosync.Pool{New: func() any { b := make([]byte, 512<<10); return &b }},
		hiMark: 4 * parallel,
	}
	v.cond = gosync.NewCond(&v.mu)
	stop := context.AfterFunc(ctx, func() { v.mu.Lock(); v.cond.Broadcast(); v.mu.Unlock() })
	defer stop()
	for _, l := range libs {
		if v.stores[l.lib.StoreID] == nil {
			v.stores[l.lib.StoreID] = newStoreCheck(l.lib.StoreID)
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
					l.dag, l.err = loadDAG(ctx, v.s, l.lib, l.heads(), 2, false, func(c *object.Commit) { v.commit(l.st, c) })
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
	if err := ctx.Err(); err != nil {
		return nil, err
	}

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
	rec    state.Library
	lib    Library
	dbHead string
	st     *storeCheck
	dag    *dag
	err    error
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
	if len(opts.Libraries) == 0 {
		all, err := state.Whole(opts.State.All())
		if err != nil {
			return nil, nil, fmt.Errorf("verify: %w", err)
		}
		recs = all
		known := map[string]bool{}
		for _, r := range all {
			known[r.ID] = true
		}
		for id := range opts.DBHeads {
			if !known[id] {
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
			if err != nil && object.IsInvalid(err) {
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
		l := &libCheck{rec: rec, lib: LibraryOf(rec), dbHead: opts.DBHeads[rec.ID]}
		if err := checkLibrary(l.lib); err != nil {
			done = append(done, LibraryReport{RepoID: rec.ID, Error: err.Error()})
			continue
		}
		if len(l.heads()) == 0 {
			done = append(done, LibraryReport{RepoID: rec.ID, StoreID: l.lib.StoreID, Name: rec.Name, Deleted: rec.Deleted,
				Holes: rec.Holes, Truncated: rec.Truncated, Error: "no head backed up yet: " + cmp.Or(rec.LastError, "never synced")})
			continue
		}
		libs = append(libs, l)
	}
	return libs, done, nil
}

// key is an object id in binary, to keep the sets of a large store small.
type key [20]byte

func keyOf(id string) key {
	var k key
	hex.Decode(k[:], []byte(id)) // ids are checked before they get here
	return k
}

const shards = 64

// keySet is a set of object ids safe for concurrent use.
type keySet struct {
	sh [shards]struct {
		mu gosync.Mutex
		m  map[key]struct{}
	}
}

// add reports whether k was not in the set yet.
func (s *keySet) add(k key) bool {
	sh := &s.sh[k[0]%shards]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if _, ok := sh.m[k]; ok {
		return false
	}
	if sh.m == nil {
		sh.m = map[key]struct{}{}
	}
	sh.m[k] = struct{}{}
	return true
}

// Block sizes recorded in a sizeMap besides real sizes.
const (
	sizePending = -1 // someone is looking
	sizeAbsent  = -2 // missing or unreadable
)

// sizeMap records each block met and its size; safe for concurrent use.
type sizeMap struct {
	sh [shards]struct {
		mu gosync.Mutex
		m  map[key]int64
	}
}

// claim returns the recorded size, or claims the block (ok false) if it was never met.
func (s *sizeMap) claim(k key) (size int64, ok bool) {
	sh := &s.sh[k[0]%shards]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if size, ok = sh.m[k]; ok {
		return size, true
	}
	if sh.m == nil {
		sh.m = map[key]int64{}
	}
	sh.m[k] = sizePending
	return 0, false
}

func (s *sizeMap) set(k key, size int64) {
	sh := &s.sh[k[0]%shards]
	sh.mu.Lock()
	sh.m[k] = size
	sh.mu.Unlock()
}

// storeCheck is what is known of one store (a library, or an origin and its virtual
// libraries) while verifying.
type storeCheck struct {
	id     string
	fs     keySet  // fs objects met
	blocks sizeMap // blocks met, with their sizes

	mu    gosync.Mutex
	bad   map[key]*badObject // fs objects and blocks found missing or damaged
	dirty atomic.Bool        // something is wrong that only a re-walk can place
}

type badObject struct {
	missing bool
	err     string
}

func newStoreCheck(id string) *storeCheck {
	return &storeCheck{id: id, bad: map[key]*badObject{}}
}

func (st *storeCheck) markBad(id string, missing bool, err error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	k := keyOf(id)
	if _, ok := st.bad[k]; !ok {
		st.bad[k] = &badObject{missing: missing, err: err.Error()}
	}
	st.dirty.Store(true)
}

func (st *storeCheck) lookup(id string) *badObject {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.bad[keyOf(id)]
}

// job is an fs object to read and check, or a block to hash.
type job struct {
	st        *storeCheck
	id        string
	block     bool
	dir       bool  // fs: what the referring entry says the object is
	encrypted bool  // fs: blocks are ciphertext (sizes padded)
	size      int64 // block: stored size
}

// verifier runs the first, fast pass of Verify: every object of every store once, in
// parallel. It records which objects are bad; placing them (paths, commits, heads,
// expected or not) is the second pass, run only for libraries with something bad.
type verifier struct {
	ctx    context.Context
	s      store.Store
	sample float64
	seed   uint64
	prog   *progress
	stores map[string]*storeCheck
	bufs   gosync.Pool
	hiMark int // blocks queued beyond which workers hash before walking on

	mu        gosync.Mutex
	cond      *gosync.Cond
	fsQ       []job
	blockQ    []job
	pending   int // jobs queued or running
	producers int // history walks still running

	nCommits, nFS, nBlocks, nHashed, nBytes atomic.Int64
}

func (v *verifier) submit(j job) {
	v.mu.Lock()
	if j.block {
		v.blockQ = append(v.blockQ, j)
	} else {
		v.fsQ = append(v.fsQ, j)
	}
	v.pending++
	v.cond.Signal()
	v.mu.Unlock()
}

func (v *verifier) producerDone() {
	v.mu.Lock()
	v.producers--
	v.cond.Broadcast()
	v.mu.Unlock()
}

// next takes a job: blocks first once many are queued (so the queue stays short), else
// fs objects depth first (so the walk's frontier stays small).
func (v *verifier) next() (job, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for {
		if v.ctx.Err() != nil {
			return job{}, false
		}
		var q *[]job
		switch {
		case len(v.blockQ) > 0 && (len(v.blockQ) >= v.hiMark || len(v.fsQ) == 0):
			q = &v.blockQ
		case len(v.fsQ) > 0:
			q = &v.fsQ
		case v.pending == 0 && v.producers == 0:
			return job{}, false
		default:
			v.cond.Wait()
			continue
		}
		j := (*q)[len(*q)-1]
		*q = (*q)[:len(*q)-1]
		return j, true
	}
}

func (v *verifier) worker() {
	for {
		j, ok := v.next()
		if !ok {
			return
		}
		if j.block {
			v.hashBlock(j)
		} else {
			v.checkFS(j)
		}
		v.mu.Lock()
		v.pending--
		if v.pending == 0 && v.producers == 0 {
			v.cond.Broadcast()
		}
		v.mu.Unlock()
	}
}

// commit is called for every commit the history walks read.
func (v *verifier) commit(st *storeCheck, c *object.Commit) {
	v.nCommits.Add(1)
	if c.RootID != object.EmptyID && st.fs.add(keyOf(c.RootID)) {
		v.prog.todo(1, 0)
		v.submit(job{st: st, id: c.RootID, dir: true, encrypted: c.Encrypted})
	}
}

func (v *verifier) checkFS(j job) {
	defer v.prog.done(1, 0)
	st := j.st
	raw, err := v.s.Get(v.ctx, object.KindFS, st.id, j.id)
	if err != nil {
		if v.ctx.Err() == nil {
			st.markBad(j.id, errors.Is(err, store.ErrNotExist), err)
		}
		return
	}
	v.nFS.Add(1)
	f, err := object.ParseFS(j.id, raw)
	if err != nil {
		st.markBad(j.id, false, err)
		return
	}
	if f.IsDir() != j.dir {
		st.dirty.Store(true) // the second pass names the entry
		return
	}
	if f.IsDir() {
		for _, d := range f.Dirents {
			if d.ID != object.EmptyID && st.fs.add(keyOf(d.ID)) {
				v.prog.todo(1, 0)
				v.submit(job{st: st, id: d.ID, dir: d.IsDir(), encrypted: j.encrypted})
			}
		}
		return
	}
	var total int64
	known := true
	for _, b := range f.BlockIDs {
		size := v.blockSize(st, b)
		if size < 0 {
			known = false
			continue
		}
		total += size
	}
	if known {
		if err := object.CheckFileSize(f.ID, f.Size, len(f.BlockIDs), total, j.encrypted); err != nil {
			st.markBad(j.id, false, err)
		}
	}
}

// blockSize returns a block's stored size, or a negative number if it is missing. The
// first to meet a block checks it and, if it is in the sample, queues it for hashing.
func (v *verifier) blockSize(st *storeCheck, id string) int64 {
	k := keyOf(id)
	size, met := st.blocks.claim(k)
	if met && size != sizePending {
		return size
	}
	size, err := v.s.Size(v.ctx, object.KindBlock, st.id, id)
	if met { // another worker is on it: only the size is needed here
		if err != nil {
			return sizeAbsent
		}
		return size
	}
	if err != nil {
		if v.ctx.Err() == nil {
			st.markBad(id, errors.Is(err, store.ErrNotExist), err)
		}
		st.blocks.set(k, sizeAbsent)
		return sizeAbsent
	}
	st.blocks.set(k, size)
	v.nBlocks.Add(1)
	if v.sampled(k) {
		v.prog.todo(1, size)
		v.submit(job{st: st, id: id, block: true, size: size})
	} else {
		v.prog.todo(1, 0)
		v.prog.done(1, 0)
	}
	return size
}

// sampled decides, the same way for the same seed, whether a block is hashed.
func (v *verifier) sampled(k key) bool {
	if v.sample >= 1 {
		return true
	}
	x := binary.LittleEndian.Uint64(k[:8]) ^ v.seed
	x ^= x >> 30 // splitmix64's finaliser
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return float64(x>>11)/(1<<53) < v.sample
}

// readerOnly hides WriterTo, so copies go through the pooled buffer.
type readerOnly struct{ io.Reader }

func (v *verifier) hashBlock(j job) {
	defer v.prog.done(1, j.size)
	st := j.st
	rc, err := v.s.Open(v.ctx, object.KindBlock, st.id, j.id)
	if err != nil {
		if v.ctx.Err() == nil {
			st.markBad(j.id, errors.Is(err, store.ErrNotExist), err)
		}
		return
	}
	bp := v.bufs.Get().(*[]byte)
	h := object.NewBlockHasher(j.id)
	_, err = io.CopyBuffer(h, readerOnly{rc}, *bp)
	v.bufs.Put(bp)
	rc.Close()
	if err == nil {
		err = h.Check()
	}
	if err == nil && h.Size() != j.size {
		err = fmt.Errorf("block %s changed size while being read (%d, then %d bytes)", j.id, j.size, h.Size())
	}
	if err != nil {
		if v.ctx.Err() == nil {
			st.markBad(j.id, false, err)
		}
		return
	}
	v.nHashed.Add(1)
	v.nBytes.Add(h.Size())
}

// report builds a library's report: cheap when nothing in its store or history was
// bad, a second walk of its trees otherwise.
func (v *verifier) report(l *libCheck) (LibraryReport, error) {
	rec := l.rec
	lr := LibraryReport{
		RepoID: rec.ID, StoreID: l.lib.StoreID, Name: rec.Name, Deleted: rec.Deleted,
		Holes: rec.Holes, Truncated: rec.Truncated,
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
	clean := !l.st.dirty.Load()
	for _, n := range l.dag.nodes {
		if n.c != nil {
			lr.Commits++
		} else {
			clean = false
		}
	}
	if clean {
		for _, h := range heads {
			lr.Heads = append(lr.Heads, HeadCheck{Commit: h.id, From: h.from, Complete: true})
		}
		return lr, nil
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

	memo     map[string]summary  // fs id → what is bad at or below it
	recorded map[string]*Problem // kind+id → its problem, the first time met
	problems []*Problem

	holes       map[string]state.Hole
	truncated   map[string]bool
	truncBefore int64 // commits at or before this ctime may be truncated
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
		memo: map[string]summary{}, recorded: map[string]*Problem{},
		holes: map[string]state.Hole{}, truncated: map[string]bool{},
		truncBefore: math.MinInt64,
	}
	for _, h := range l.rec.Holes {
		a.holes[h.ID] = h
	}
	// Truncation removes trees of commits older than the library's valid-since time; the
	// state lists the commits where the engine met it. Any commit not newer than one of
	// those is older than valid-since too.
	for _, id := range l.rec.Truncated {
		a.truncated[id] = true
		if n := l.dag.nodes[id]; n != nil && n.c != nil && n.c.Ctime > a.truncBefore {
			a.truncBefore = n.c.Ctime
		}
	}
	return a
}

func (a *attribution) isTruncated(c *object.Commit) bool {
	return a.truncated[c.ID] || c.Ctime <= a.truncBefore
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
	if s, ok := a.memo[id]; ok {
		return s, nil
	}
	if err := a.v.ctx.Err(); err != nil {
		return summary{}, err
	}
	a.memo[id] = summary{} // a forged tree cannot loop
	st := a.l.st
	raw, err := a.v.s.Get(a.v.ctx, object.KindFS, st.id, id)
	if err != nil {
		if a.v.ctx.Err() != nil {
			return summary{}, a.v.ctx.Err()
		}
		s := a.problem(object.KindFS, id, errors.Is(err, store.ErrNotExist), p, c.ID, truncated, err)
		a.memo[id] = s
		return s, nil
	}
	f, err := object.ParseFS(id, raw)
	if err == nil && f.IsDir() != wantDir {
		err = fmt.Errorf("%w: fs object %s: its dir entry and the object disagree on being a directory", object.ErrInvalid, id)
	}
	if err != nil {
		s := a.problem(object.KindFS, id, false, p, c.ID, truncated, err)
		a.memo[id] = s
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
		if b := st.lookup(id); b != nil { // its blocks do not add up
			s.add(a.problem(object.KindFS, id, b.missing, p, c.ID, truncated, errors.New(b.err)))
		}
		for _, bid := range f.BlockIDs {
			if b := st.lookup(bid); b != nil {
				s.add(a.problem(object.KindBlock, bid, b.missing, p, c.ID, truncated, errors.New(b.err)))
			}
		}
	}
	a.memo[id] = s
	return s, nil
}

// problem records a bad object the first time it is met and returns it as a summary.
func (a *attribution) problem(kind object.Kind, id string, missing bool, p, commit string, truncated bool, err error) summary {
	k := string(kind) + id
	pr := a.recorded[k]
	if pr == nil {
		pr = &Problem{Kind: kind, ID: id, Missing: missing, Path: p, Commit: commit, Error: err.Error()}
		pr.Reason = a.explain(kind, id, missing, p, truncated)
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
func (a *attribution) explain(kind object.Kind, id string, missing bool, p string, truncated bool) string {
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
