package watch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	gosync "sync"
	"testing"
	"time"

	"seafbak/internal/seafgen"
	"seafbak/internal/testenv"
	"seafbak/state"
	seafsync "seafbak/sync"
	"seafbak/sync/primary"
)

// unrecordedEngine backs libraries up as the engine does, except that for the ids in
// broken it fails before anything is written, as SyncListed does when the state's lock
// file cannot be opened (state dir read-only, EROFS after errors=remount-ro, ENOSPC on
// MarkDirty, a failed final State.Save): the record keeps its old head and no LastError.
type unrecordedEngine struct {
	noEngine
	st     *state.Dir
	broken map[string]bool
}

func (e *unrecordedEngine) SyncListed(_ context.Context, lib primary.Library) (seafsync.Result, error) {
	if e.broken[lib.ID] {
		return seafsync.Result{}, errors.New("state: lock " + lib.ID + ": open: read-only file system")
	}
	if err := e.st.Save(state.Library{ID: lib.ID, StoreID: lib.StoreID, Name: lib.Name, Head: lib.Head, LastSuccess: time.Now()}); err != nil {
		return seafsync.Result{}, err
	}
	return seafsync.Result{Head: lib.Head, Commits: 1}, nil
}

// A library whose sync fails without its record saying so (not Failed, still at its old
// head) holds back the comparison that found it behind: the metrics count every library
// not failed as current as of the compared time watch gives them, and counted this one
// current while the state's disk refused every write (found by review).
func TestUnrecordedFailureHoldsTheComparison(t *testing.T) {
	st := newTestState(t)
	var libs []primary.Library
	for i := range 2 {
		id := fmt.Sprintf("%08x-0000-4000-8000-000000000000", i)
		libs = append(libs, primary.Library{ID: id, StoreID: id, Name: "lib", Head: fmt.Sprintf("%040x", i+1)})
	}
	eng := &unrecordedEngine{st: st, broken: map[string]bool{}}
	cat := &listCatalog{libs: libs}
	var calls []time.Time
	w := &Watcher{Engine: eng, Catalog: cat, State: st,
		FullEvery: time.Nanosecond, AfterRoundEvery: time.Nanosecond,
		AfterRound: func(_ context.Context, compared time.Time) { calls = append(calls, compared) }}
	s := newScheduler(w.do, 4, time.Millisecond, time.Millisecond, slog.New(slog.DiscardHandler))
	ctx := context.Background()
	must(t, w.poll(ctx, s))
	s.wait()
	w.afterRound(ctx, time.Now())
	if len(calls) != 1 || calls[0].IsZero() {
		t.Fatalf("first backup: AfterRound got %v", calls)
	}
	// Library 0 moves on the primary; the state dir goes read-only.
	time.Sleep(2 * time.Millisecond)
	changedAt := time.Now()
	cat.libs = []primary.Library{libs[0], libs[1]}
	cat.libs[0].Head = fmt.Sprintf("%040x", 99)
	eng.broken[libs[0].ID] = true
	for range 3 {
		time.Sleep(2 * time.Millisecond)
		must(t, w.poll(ctx, s))
		s.wait()
		w.afterRound(ctx, time.Now())
	}
	rec, _, err := st.Load(libs[0].ID)
	must(t, err)
	if rec.Failed() || rec.Head == cat.libs[0].Head {
		t.Fatalf("setup: record %+v", rec)
	}
	last := calls[len(calls)-1]
	if last.After(changedAt) {
		t.Fatalf("library %s is behind (record at %s, primary at %s, not failed), yet AfterRound was given compared=%s, after the change at %s: metrics count it current",
			libs[0].ID, rec.Head[:8], cat.libs[0].Head[:8], last.Format(time.StampMicro), changedAt.Format(time.StampMicro))
	}
}

// The same with the real engine: the state's locks directory becomes unusable (here a
// file in its place, as a read-only remount makes every open for writing fail).
func TestUnrecordedFailureHoldsTheComparisonRealEngine(t *testing.T) {
	env := testenv.New(t, srv)
	gen := seafgen.New(env.PrimaryDir)
	l, err := gen.NewLibrary(seafgen.LibraryOptions{Name: "r", Owner: "u@example.com"})
	must(t, err)
	testenv.Commit(t, l, "files", seafgen.Put("a.txt", []byte("a")))
	env.Publish(l)
	var mu gosync.Mutex
	var last time.Time
	w := &Watcher{
		Engine: env.Engine(false), Catalog: env.Catalog, State: env.State,
		Poll: 20 * time.Millisecond, FullEvery: 50 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
		AfterRoundEvery: 10 * time.Millisecond,
		AfterRound:      func(_ context.Context, compared time.Time) { mu.Lock(); last = compared; mu.Unlock() },
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitFor(t, "first backup", func() bool { return env.BackupHead(l.ID) == l.Head })
	old := l.Head
	locks := filepath.Join(env.StateDir, "locks")
	must(t, os.Rename(locks, locks+".aside"))
	must(t, os.WriteFile(locks, nil, 0o644))
	testenv.Commit(t, l, "edit", seafgen.Put("a.txt", []byte("b")))
	env.Publish(l)
	changedAt := time.Now() // any comparison starting from here finds the library behind
	time.Sleep(time.Second)
	rec, _, err := env.State.Load(l.ID)
	must(t, err)
	mu.Lock()
	got := last
	mu.Unlock()
	if rec.Head != old || rec.Failed() {
		t.Fatalf("setup: record head %s failed %v", rec.Head, rec.Failed())
	}
	if got.After(changedAt) {
		t.Fatalf("the library's change is not backed up (record at its old head, not failed), yet AfterRound was given compared %s after the change (%s): the metrics show it current",
			got.Sub(changedAt), "changedAt")
	}
}
