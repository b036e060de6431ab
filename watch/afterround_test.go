package watch

import (
	"context"
	gosync "sync"
	"testing"
	"time"

	"seafbak/internal/seafgen"
	"seafbak/internal/testenv"
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
		AfterRound: func(context.Context) {
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

	waitFor(t, "first backup and its hook", func() bool { return env.BackupHead(l.ID) == l.Head && count() == 1 })
	if c := w.Copied(); c.Bytes == 0 || c.Objects == 0 {
		t.Fatalf("copied %+v after a first backup", c)
	}
	// Nothing changes: no call, for many polls.
	time.Sleep(every + 300*time.Millisecond)
	if n := count(); n != 1 {
		t.Fatalf("%d calls while nothing changed", n)
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
	if len(calls) > 3 {
		t.Fatalf("%d calls for three changes", len(calls))
	}
}
