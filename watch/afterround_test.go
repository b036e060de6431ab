package watch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"seafbak/internal/seafgen"
	"seafbak/internal/testenv"
	"seafbak/state"
	seafsync "seafbak/sync"
	"seafbak/sync/primary"
)

// AfterRound is called after a round in which a sync finished, not while nothing
// changes, and never twice within AfterRoundEvery.
func TestWatchAfterRound(t *testing.T) {
	env := testenv.New(t, srv)
	gen := seafgen.New(env.PrimaryDir)
	l, err := gen.NewLibrary(seafgen.LibraryOptions{Name: "r", Owner: "u@example.com"})
	must(t, err)
	testenv.Commit(t, l, "files", seafgen.Put("a.txt", []byte("a")))
	env.Publish(l)

	var mu gosync.Mutex
	var calls []time.Time
	var heads []string // the backup's head of l at each call
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(calls) }
	lastHead := func() string {
		mu.Lock()
		defer mu.Unlock()
		if len(heads) == 0 {
			return ""
		}
		return heads[len(heads)-1]
	}
	const every = 700 * time.Millisecond
	w := &Watcher{
		Engine: env.Engine(false), Catalog: env.Catalog, State: env.State,
		Poll: 50 * time.Millisecond, AfterRoundEvery: every,
		AfterRound: func(context.Context, time.Time) {
			mu.Lock()
			calls = append(calls, time.Now())
			mu.Unlock()
			h := env.BackupHead(l.ID)
			mu.Lock()
			heads = append(heads, h)
			mu.Unlock()
		},
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	defer func() { cancel(); <-done }()

	// A first backup holds no comparison back (the metrics count a library current
	// only once backed up), so the hook may run during it as well as after it.
	waitFor(t, "first backup and its hook", func() bool { return env.BackupHead(l.ID) == l.Head && lastHead() == l.Head })
	if c := w.Copied(); c.Bytes == 0 || c.Objects == 0 {
		t.Fatalf("copied %+v after a first backup", c)
	}
	// Nothing changes: no call, for many polls.
	before := count()
	time.Sleep(every + 300*time.Millisecond)
	if n := count(); n != before {
		t.Fatalf("%d calls while nothing changed", n-before)
	}
	// Two changes in quick succession: each is backed up, and the hook runs after the
	// last one, but never within every of its previous call.
	for _, text := range []string{"b", "c"} {
		testenv.Commit(t, l, "edit", seafgen.Put("a.txt", []byte(text)))
		env.Publish(l)
		waitFor(t, "change backed up", func() bool { return env.BackupHead(l.ID) == l.Head })
	}
	waitFor(t, "hook after the last change", func() bool { return lastHead() == l.Head })
	time.Sleep(every + 300*time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	for i := 1; i < len(calls); i++ {
		if d := calls[i].Sub(calls[i-1]); d < every {
			t.Fatalf("calls %s apart, want at least %s", d, every)
		}
	}
	if len(calls)-before > 2 {
		t.Fatalf("%d calls for two changes", len(calls)-before)
	}
}

// comparedEngine records each sync in the state as the engine does: a success, or a
// failure (LastError) for the libraries in fail; the library held waits for release.
type comparedEngine struct {
	noEngine
	st      *state.Dir
	held    string
	release chan struct{}
	fail    map[string]bool
}

func (e *comparedEngine) SyncListed(_ context.Context, lib primary.Library) (seafsync.Result, error) {
	if lib.ID == e.held {
		<-e.release
	}
	rec := state.Library{ID: lib.ID, StoreID: lib.StoreID, Name: lib.Name, Head: lib.Head, LastSuccess: time.Now()}
	if e.fail[lib.ID] {
		rec = state.Library{ID: lib.ID, StoreID: lib.StoreID, Name: lib.Name, LastAttempt: time.Now(), LastError: "primary unreachable"}
	}
	if err := e.st.Save(rec); err != nil {
		return seafsync.Result{}, err
	}
	if e.fail[lib.ID] {
		return seafsync.Result{}, errors.New(rec.LastError)
	}
	return seafsync.Result{Head: lib.Head, Commits: 1}, nil
}

// AfterRound is given the start of the last full comparison after which every library
// it found behind has had its sync end (a failed one does not hold it back), and is
// called when that moves on by refreshEvery even if no sync finished: watch gave the
// metrics nothing of its comparisons, so a library that did not change looked behind
// unless a cron scan ran.
func TestAfterRoundGetsTheLastFullComparison(t *testing.T) {
	st := newTestState(t)
	var libs []primary.Library
	for i := range 3 {
		id := fmt.Sprintf("%08x-0000-4000-8000-000000000000", i)
		libs = append(libs, primary.Library{ID: id, StoreID: id, Name: "lib", Head: fmt.Sprintf("%040x", i+1)})
	}
	for _, lib := range libs { // backed up before, at older heads: each is behind
		must(t, st.Save(state.Library{ID: lib.ID, StoreID: lib.StoreID, Name: lib.Name, Head: strings.Repeat("e", 40), LastSuccess: time.Now().Add(-time.Hour)}))
	}
	eng := &comparedEngine{st: st, held: libs[1].ID, release: make(chan struct{}), fail: map[string]bool{libs[2].ID: true}}
	var calls []time.Time
	w := &Watcher{Engine: eng, Catalog: &listCatalog{libs: libs}, State: st,
		FullEvery: time.Nanosecond, AfterRoundEvery: time.Nanosecond, // every poll compares all, every round may call
		AfterRound: func(_ context.Context, compared time.Time) { calls = append(calls, compared) }}
	s := newScheduler(w.do, 4, time.Hour, time.Hour, slog.New(slog.DiscardHandler))
	ctx := context.Background()
	must(t, w.poll(ctx, s))
	first := w.lastFull
	waitFor(t, "the syncs not held", func() bool { return s.runningNow() == 1 })
	w.afterRound(ctx, time.Now())
	if len(calls) != 1 || !calls[0].IsZero() {
		t.Fatalf("with a library of the first comparison still syncing, AfterRound was given %v, want a zero time once", calls)
	}
	close(eng.release)
	s.wait()
	w.afterRound(ctx, time.Now())
	if len(calls) != 2 || !calls[1].Equal(first) {
		t.Fatalf("once every library of the first comparison synced, AfterRound was given %v, want %v", calls, first)
	}
	// Nothing changes; one library keeps failing, its retry an hour away.
	must(t, w.poll(ctx, s))
	second := w.lastFull
	w.afterRound(ctx, time.Now())
	if len(calls) != 2 {
		t.Fatalf("AfterRound called again %s after the last comparison it was given: %v", second.Sub(first), calls)
	}
	w.hookCompared = w.hookCompared.Add(-refreshEvery) // as if that were 5 minutes ago
	w.afterRound(ctx, time.Now())
	if len(calls) != 3 || !calls[2].Equal(second) {
		t.Fatalf("an idle round refreshEvery after the last call gave AfterRound %v, want %v", calls, second)
	}
}
