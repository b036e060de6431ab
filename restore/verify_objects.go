package restore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	gosync "sync"
	"sync/atomic"

	"seafbak/sync/object"
	"seafbak/sync/store"
)

// The first pass of Verify: every object of every store read and checked once, in
// parallel, recording which are bad. verify_report.go places what was found.

// key is an object id in binary, to keep the sets of a large store small.
type key [20]byte

func keyOf(id string) key {
	k, _ := object.BinaryID(id) // ids are checked before they get here
	return k
}

const shards = 64

// metKey is an object of one store, in the sets of objects met: the store's index
// (storeCheck.n) and the object's id. One pair of sharded sets serves every store, so
// that a store costs nothing there beyond its objects (a server of 100 000 small
// libraries had 2 KiB of empty shards per store: 581 MiB for a restore server).
type metKey struct {
	store uint32 // its top bit (fsDir) marks an fs object met as a directory
	id    key
}

// fsDir marks, in metKey.store, an fs object met through a directory's entry, so that
// one met both ways (a forged tree: a file entry naming a directory object) is checked
// both ways. Kept in the store's index rather than a field of its own: a field would
// make every key of a two-million-file verify 4 bytes larger.
const fsDir = 1 << 31

// keySet is a set of objects safe for concurrent use.
type keySet struct {
	sh [shards]struct {
		mu gosync.Mutex
		m  map[metKey]struct{}
	}
}

// add reports whether k was not in the set yet.
func (s *keySet) add(k metKey) bool {
	sh := &s.sh[k.id[0]%shards]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if _, ok := sh.m[k]; ok {
		return false
	}
	if sh.m == nil {
		sh.m = map[metKey]struct{}{}
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
		m  map[metKey]int64
	}
}

// claim returns the recorded size, or claims the block (ok false) if it was never met.
func (s *sizeMap) claim(k metKey) (size int64, ok bool) {
	sh := &s.sh[k.id[0]%shards]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if size, ok = sh.m[k]; ok {
		return size, true
	}
	if sh.m == nil {
		sh.m = map[metKey]int64{}
	}
	sh.m[k] = sizePending
	return 0, false
}

func (s *sizeMap) set(k metKey, size int64) {
	sh := &s.sh[k.id[0]%shards]
	sh.mu.Lock()
	sh.m[k] = size
	sh.mu.Unlock()
}

// met is what the first pass has met, of every store: fs objects, and blocks with
// their sizes.
type met struct {
	fs     keySet
	blocks sizeMap
}

// storeCheck is what is known of one store (a library, or an origin and its virtual
// libraries) while verifying.
type storeCheck struct {
	id string
	n  uint32 // this store in the verifier's sets of objects met

	mu    gosync.Mutex
	bad   map[badKey]*badObject // fs objects and blocks found missing or damaged
	dirty atomic.Bool           // something is wrong that only a re-walk can place
}

// badKey is a bad fs object or block. The kind is part of it: a block whose bytes are a
// file object's JSON has that object's id, and one's problem is not the other's.
type badKey struct {
	id    key
	block bool
}

type badObject struct {
	missing bool
	err     string
}

func newStoreCheck(id string, n uint32) *storeCheck {
	return &storeCheck{id: id, n: n}
}

// key is block id in this store, for the sets of objects met.
func (st *storeCheck) key(id string) metKey { return metKey{store: st.n, id: keyOf(id)} }

// fsKey is fs object id in this store, met as a directory or as a file.
func (st *storeCheck) fsKey(id string, dir bool) metKey {
	k := st.key(id)
	if dir {
		k.store |= fsDir
	}
	return k
}

func (st *storeCheck) markBad(id string, block, missing bool, err error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	k := badKey{keyOf(id), block}
	if st.bad == nil {
		st.bad = map[badKey]*badObject{}
	}
	if _, ok := st.bad[k]; !ok {
		st.bad[k] = &badObject{missing: missing, err: err.Error()}
	}
	st.dirty.Store(true)
}

func (st *storeCheck) lookup(id string, block bool) *badObject {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.bad[badKey{keyOf(id), block}]
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
	met    *met // of every store; nil once the first pass is over
	bufs   gosync.Pool
	hiMark int // blocks queued beyond which workers hash before walking on

	cancel context.CancelCauseFunc // ends the verify, with why (see storeDown)

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
	if c.RootID != object.EmptyID && v.met.fs.add(st.fsKey(c.RootID, true)) {
		v.prog.todo(1, 0)
		v.submit(job{st: st, id: c.RootID, dir: true, encrypted: c.Encrypted})
	}
}

// storeDown ends the verify when err says the store itself failed (S3 down after its
// retries), which tells nothing of the object: reported as damaged, every library the
// outage met was listed as needing a repair, where verify could not run. It reports
// whether it did.
func (v *verifier) storeDown(err error, stream bool) bool {
	down := errors.Is(err, store.ErrUnavailable) || !stream && storeFailed(err)
	if down {
		v.cancel(fmt.Errorf("verify: the backup store failed, so nothing can be said of what it holds: %w", err))
	}
	return down
}

func (v *verifier) checkFS(j job) {
	defer v.prog.done(1, 0)
	st := j.st
	raw, err := v.s.Get(v.ctx, object.KindFS, st.id, j.id)
	if err != nil {
		if v.ctx.Err() == nil && !v.storeDown(err, false) {
			st.markBad(j.id, false, errors.Is(err, store.ErrNotExist), err)
		}
		return
	}
	v.nFS.Add(1)
	f, err := object.ParseFS(j.id, raw)
	if err != nil {
		st.markBad(j.id, false, false, err)
		return
	}
	if f.IsDir() != j.dir {
		st.dirty.Store(true) // the second pass names the entry
		return
	}
	if f.IsDir() {
		for _, d := range f.Dirents {
			if d.ID != object.EmptyID && v.met.fs.add(st.fsKey(d.ID, d.IsDir())) {
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
			st.markBad(j.id, false, false, err)
		}
	}
}

// blockSize returns a block's stored size, or a negative number if it is missing. The
// first to meet a block checks it and, if it is in the sample, queues it for hashing.
func (v *verifier) blockSize(st *storeCheck, id string) int64 {
	k := st.key(id)
	size, met := v.met.blocks.claim(k)
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
		if v.ctx.Err() == nil && !v.storeDown(err, false) {
			st.markBad(id, true, errors.Is(err, store.ErrNotExist), err)
		}
		v.met.blocks.set(k, sizeAbsent)
		return sizeAbsent
	}
	v.met.blocks.set(k, size)
	v.nBlocks.Add(1)
	if v.sampled(k.id) {
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
		if v.ctx.Err() == nil && !v.storeDown(err, false) {
			st.markBad(j.id, true, errors.Is(err, store.ErrNotExist), err)
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
		if v.ctx.Err() == nil && !v.storeDown(err, true) {
			st.markBad(j.id, true, false, err)
		}
		return
	}
	v.nHashed.Add(1)
	v.nBytes.Add(h.Size())
}
