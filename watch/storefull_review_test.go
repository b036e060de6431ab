package watch

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	gosync "sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"seafbak/internal/testenv"
	"seafbak/state"
	seafsync "seafbak/sync"
	"seafbak/sync/primary"
	"seafbak/sync/store"
)

// fullStoreEngine meets a full backup store at every sync, as the engine does (the
// failure recorded, classed store_full), after a short walk of the primary.
type fullStoreEngine struct {
	noEngine
	st *state.Dir
	mu gosync.Mutex
	n  int
	by map[string]int
}

func (e *fullStoreEngine) SyncListed(_ context.Context, lib primary.Library) (seafsync.Result, error) {
	time.Sleep(2 * time.Millisecond) // reading the primary before the first write fails
	e.mu.Lock()
	e.n++
	e.by[lib.ID]++
	e.mu.Unlock()
	err := fmt.Errorf("sync %s: %w", lib.ID, &store.NoSpaceError{Root: "/srv/backup", Errno: syscall.ENOSPC, Err: syscall.ENOSPC})
	e.st.Save(state.Library{ID: lib.ID, StoreID: lib.StoreID, LastAttempt: time.Now(), LastError: err.Error(), FailedBecause: state.FailureStoreFull})
	return seafsync.Result{RepoID: lib.ID}, err
}

// Found by review: a scan that meets the backup disk full starts no more syncs: each would fail the same
// way, after reading the primary (README, "The backup disk full"). A watcher goes on
// starting every library it has queued, and then retries each one on its own backoff
// for as long as the disk stays full: one attempt (and one ERROR line) per changed
// library every backoff, up to 5 min, a first backup of 10 000 libraries left to watch
// making 10 000 attempts at the primary every 5 min.
func TestWatchHoldsWhileTheStoreIsFull(t *testing.T) {
	st := newTestState(t)
	var libs []primary.Library
	for i := range 200 {
		id := fmt.Sprintf("%08x-0000-4000-8000-000000000000", i)
		libs = append(libs, primary.Library{ID: id, StoreID: id, Name: "lib", Head: fmt.Sprintf("%040x", i+1)})
	}
	eng := &fullStoreEngine{st: st, by: map[string]int{}}
	var logs testenv.LockedBuffer
	w := &Watcher{Engine: eng, Catalog: &listCatalog{libs: libs}, State: st, Poll: 20 * time.Millisecond,
		MaxBackoff: 200 * time.Millisecond, Parallel: 1, Log: slog.New(slog.NewTextHandler(&logs, nil))}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	time.Sleep(2 * time.Second)
	cancel()
	must(t, <-done)
	eng.mu.Lock()
	defer eng.mu.Unlock()
	const syncsAtOnce = 64 // scan.RealTimeConcurrency for Parallel 1
	// Those already running when the first met the full disk, then one probe per hold
	// (at most MaxBackoff apart): about 10 in 2 s.
	if probes := eng.n - syncsAtOnce; probes > 15 {
		t.Fatalf("with the backup store full, watch started %d syncs in 2 s (%d libraries): %d past the %d already running, want about one per %s hold",
			eng.n, len(eng.by), probes, syncsAtOnce, w.MaxBackoff)
	}
}

// roomAgainEngine meets the full store until room is made, then backs up.
type roomAgainEngine struct {
	fullStoreEngine
	room   atomic.Bool
	synced gosync.Map
}

func (e *roomAgainEngine) SyncListed(ctx context.Context, lib primary.Library) (seafsync.Result, error) {
	if !e.room.Load() {
		return e.fullStoreEngine.SyncListed(ctx, lib)
	}
	e.synced.Store(lib.ID, true)
	e.st.Save(state.Library{ID: lib.ID, StoreID: lib.StoreID, Head: lib.Head, LastAttempt: time.Now(), LastSuccess: time.Now()})
	return seafsync.Result{RepoID: lib.ID, Head: lib.Head}, nil
}

// Once the disk has room again, the hold ends at the next probe and every library is
// backed up, at full speed again.
func TestWatchBacksUpEverythingOnceTheStoreHasRoom(t *testing.T) {
	st := newTestState(t)
	var libs []primary.Library
	for i := range 200 {
		id := fmt.Sprintf("%08x-0000-4000-8000-000000000000", i)
		libs = append(libs, primary.Library{ID: id, StoreID: id, Name: "lib", Head: fmt.Sprintf("%040x", i+1)})
	}
	eng := &roomAgainEngine{fullStoreEngine: fullStoreEngine{st: st, by: map[string]int{}}}
	w := &Watcher{Engine: eng, Catalog: &listCatalog{libs: libs}, State: st, Poll: 20 * time.Millisecond,
		MaxBackoff: 200 * time.Millisecond, Parallel: 1, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	defer func() { cancel(); <-done }()
	time.Sleep(500 * time.Millisecond)
	eng.room.Store(true)
	deadline := time.Now().Add(10 * time.Second)
	for {
		n := 0
		eng.synced.Range(func(any, any) bool { n++; return true })
		if n == len(libs) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d libraries backed up 10 s after the store had room again", n, len(libs))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The syncs already running when the store filled all fail within the first hold: one
// finding, so the hold is the first backoff, not the longest one at once.
func TestFullStoreHoldGrowsPerHoldNotPerSync(t *testing.T) {
	release := make(chan struct{})
	full := func(ctx context.Context, j job) error {
		<-release
		return fmt.Errorf("sync %s: %w", j.lib.ID, &store.NoSpaceError{Root: "/srv/backup", Errno: syscall.ENOSPC, Err: syscall.ENOSPC})
	}
	s := newScheduler(full, 8, time.Minute, time.Hour, slog.New(slog.DiscardHandler))
	ctx := context.Background()
	for i := range 8 {
		id := fmt.Sprintf("%08x-0000-4000-8000-000000000000", i)
		s.want(ctx, job{lib: primary.Library{ID: id, StoreID: id, Head: fmt.Sprintf("%040x", i+1)}})
	}
	close(release)
	s.wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.storeFull != 1 || time.Until(s.heldUntil) > time.Minute {
		t.Fatalf("8 syncs running when the store filled: %d holds, the next start in %s; want 1 hold of the first backoff (1m)",
			s.storeFull, time.Until(s.heldUntil).Round(time.Second))
	}
}
