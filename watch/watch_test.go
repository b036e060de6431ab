package watch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"seafbak/internal/mariadbtest"
	"seafbak/internal/seafgen"
	"seafbak/internal/testenv"
	"seafbak/sync/primary"
)

var srv *mariadbtest.Server

func TestMain(m *testing.M) { mariadbtest.Main(m, &srv) }

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// flakyCatalog fails its first fail listings, as a primary database that is restarting.
type flakyCatalog struct {
	primary.Catalog
	fail atomic.Int32
}

func (c *flakyCatalog) Libraries(ctx context.Context) ([]primary.Library, error) {
	if c.fail.Add(-1) >= 0 {
		return nil, errors.New("dial tcp primary-db:3306: connection refused")
	}
	return c.Catalog.Libraries(ctx)
}

// waitFor polls cond every 10 ms for up to 20 s and returns how long it took.
func waitFor(t *testing.T, what string, cond func() bool) time.Duration {
	t.Helper()
	return testenv.WaitFor(t, what, 20*time.Second, cond)
}

// waitBackedUp waits until the backup database holds every library at its head.
func waitBackedUp(t *testing.T, env *testenv.Env, libs []*seafgen.Library) {
	t.Helper()
	waitFor(t, "first backup", func() bool {
		for _, l := range libs {
			if env.BackupHead(l.ID) != l.Head {
				return false
			}
		}
		return true
	})
}

func TestWatchFollowsThePrimary(t *testing.T) {
	env := testenv.New(t, srv)
	gen := seafgen.New(env.PrimaryDir)
	gen.BlockSize = 4096
	ctx := context.Background()
	var libs []*seafgen.Library
	for i := range 4 {
		l, err := gen.NewLibrary(seafgen.LibraryOptions{Name: fmt.Sprintf("lib%d", i), Owner: "u@example.com"})
		must(t, err)
		_, err = l.Commit("files", seafgen.Put("a.txt", []byte(fmt.Sprint("a", i))), seafgen.Put("d/b.bin", bytes.Repeat([]byte{byte(i)}, 9000)))
		must(t, err)
		must(t, l.InsertRows(ctx, env.PrimaryDB))
		libs = append(libs, l)
	}
	var logs testenv.LockedBuffer
	catalog := &flakyCatalog{Catalog: env.Catalog}
	catalog.fail.Store(6) // the first six polls fail: warned at the fifth, then it recovers
	w := &Watcher{
		Engine: env.Engine(false), Catalog: catalog, State: env.State,
		Log:  slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Poll: 100 * time.Millisecond, Parallel: 2, MaxBackoff: time.Second,
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- w.Run(wctx) }()

	// Every library is backed up once the listing works again.
	waitBackedUp(t, env, libs)
	for _, l := range libs {
		env.CompareWithPrimary(l.ID, l.StoreID, l.Head)
	}
	if text := logs.String(); !strings.Contains(text, "listing the primary's heads keeps failing") ||
		!strings.Contains(text, "listing the primary's heads works again") {
		t.Fatalf("failed polls not told:\n%s", text)
	}

	// Changes: from the Branch row moving to the backup's Branch row moving.
	var lat []time.Duration
	for i := range 6 {
		l := libs[i%2]
		_, err := l.Commit(fmt.Sprint("edit ", i), seafgen.Put(fmt.Sprintf("e%d.txt", i), []byte(fmt.Sprint("edit", i))),
			seafgen.Put("d/b.bin", bytes.Repeat([]byte{byte(i + 10)}, 9000)))
		must(t, err)
		must(t, l.InsertRows(ctx, env.PrimaryDB))
		lat = append(lat, waitFor(t, "change backed up", func() bool { return env.BackupHead(l.ID) == l.Head }))
		env.CompareWithPrimary(l.ID, l.StoreID, l.Head)
	}
	slices.Sort(lat)
	t.Logf("change-to-durable latency, poll 100ms, %d changes: min %s, median %s, max %s",
		len(lat), lat[0].Round(time.Millisecond), lat[len(lat)/2].Round(time.Millisecond), lat[len(lat)-1].Round(time.Millisecond))

	// A library deleted on the primary is recorded deleted; its backup stays.
	gone := libs[3]
	must(t, seafgen.DeleteRows(ctx, env.PrimaryDB, gone.ID))
	waitFor(t, "deleted library recorded", func() bool {
		rec, _, err := env.State.Load(gone.ID)
		must(t, err)
		return rec.Deleted != nil
	})
	if h := env.BackupHead(gone.ID); h != "" {
		t.Fatalf("deleted library keeps its backup database head %s", h)
	}
	env.CompareWithPrimary(gone.ID, gone.StoreID, gone.Head)

	// Another seafbak holds a library's lock (a hook's sync, a cron scan) while it
	// changes: watch waits for it without recording a failure, and backs the change up
	// at the next poll once the lock is free (no backoff).
	busy := libs[2]
	lock, err := env.State.Lock(ctx, busy.ID)
	must(t, err)
	old := busy.Head
	_, err = busy.Commit("while locked", seafgen.Put("locked.txt", []byte("x")))
	must(t, err)
	must(t, busy.InsertRows(ctx, env.PrimaryDB))
	time.Sleep(10 * w.Poll)
	if h := env.BackupHead(busy.ID); h != old {
		t.Fatalf("head moved to %s under another's lock", h)
	}
	lock.Unlock()
	after := waitFor(t, "locked library backed up once free", func() bool { return env.BackupHead(busy.ID) == busy.Head })
	t.Logf("backed up %s after the other seafbak let go", after.Round(time.Millisecond))
	env.CompareWithPrimary(busy.ID, busy.StoreID, busy.Head)
	rec, _, err := env.State.Load(busy.ID)
	must(t, err)
	if rec.LastError != "" {
		t.Fatalf("busy library recorded as failed: %s", rec.LastError)
	}
	if text := logs.String(); strings.Contains(text, "failed to sync") || !strings.Contains(text, "another seafbak is syncing") {
		t.Fatalf("log:\n%s", text)
	}
	if !strings.Contains(logs.String(), "latency_seconds=") {
		t.Fatalf("no latency logged:\n%s", logs.String())
	}

	// Stop: Run returns nil promptly.
	start := time.Now()
	cancel()
	select {
	case err := <-done:
		must(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	t.Logf("Run returned %s after cancel", time.Since(start).Round(time.Millisecond))
}

// Stopped in the middle of a first sync: Run returns, nothing is recorded for the
// library, and the next watcher backs it up whole.
func TestWatchStopMidSyncThenRestart(t *testing.T) {
	env := testenv.New(t, srv)
	gen := seafgen.New(env.PrimaryDir)
	gen.BlockSize = 4096
	ctx := context.Background()
	l, err := gen.NewLibrary(seafgen.LibraryOptions{Name: "big", Owner: "u@example.com"})
	must(t, err)
	_, err = l.CommitBulk("bulk", 200, 4<<20, 1)
	must(t, err)
	must(t, l.InsertRows(ctx, env.PrimaryDB))
	var logs testenv.LockedBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	eng := env.Engine(false)
	eng.Log = log
	w := &Watcher{Engine: eng, Catalog: env.Catalog, State: env.State, Log: log, Poll: 100 * time.Millisecond}
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(wctx) }()
	waitFor(t, "sync started", func() bool { return strings.Contains(logs.String(), "msg=syncing") })
	cancel()
	select {
	case err := <-done:
		must(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	t.Logf("stopped mid-sync: %v", !strings.Contains(logs.String(), "msg=synced"))
	rec, _, err := env.State.Load(l.ID)
	must(t, err)
	if rec.LastError != "" || strings.Contains(logs.String(), "failed to sync") {
		t.Fatalf("a stop recorded as a failure: %q\n%s", rec.LastError, logs.String())
	}
	if rec.Head == "" && env.BackupHead(l.ID) != "" {
		t.Fatal("backup database head without a state head")
	}
	wctx, cancel = context.WithCancel(ctx)
	defer cancel()
	done = make(chan error, 1)
	go func() { done <- w.Run(wctx) }()
	waitFor(t, "backed up after restart", func() bool { return env.BackupHead(l.ID) == l.Head })
	env.CompareWithPrimary(l.ID, l.StoreID, l.Head)
	cancel()
	must(t, <-done)
}
