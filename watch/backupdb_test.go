package watch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"seafbak/internal/testenv"
	"seafbak/state"
	seafsync "seafbak/sync"
	"seafbak/sync/primary"
)

// downBackupDB records each sync in the state; its backup database can be down, failing
// BackupHeads.
type downBackupDB struct {
	noEngine
	st    *state.Dir
	down  atomic.Bool
	heads atomic.Int32 // BackupHeads calls: full comparisons
	syncs atomic.Int32
}

func (e *downBackupDB) BackupHeads(context.Context) (map[string]string, error) {
	e.heads.Add(1)
	if e.down.Load() {
		return nil, errors.New("dial tcp backup-db:3306: connection refused")
	}
	return nil, nil
}

func (e *downBackupDB) SyncListed(_ context.Context, lib primary.Library) (seafsync.Result, error) {
	e.syncs.Add(1)
	return seafsync.Result{Head: lib.Head}, e.st.Save(state.Library{ID: lib.ID, StoreID: lib.StoreID, Head: lib.Head, LastSuccess: time.Now()})
}

// A full comparison that fails because the backup database is down names that step, not
// the primary's listing, and is retried on a backoff: every poll was a full comparison
// (a listing and every record read) for as long as the outage lasted. The polls in
// between still compare what moved on the primary.
func TestFailedFullComparisonBacksOff(t *testing.T) {
	st := newTestState(t)
	var libs []primary.Library
	for i := range 3 {
		id := fmt.Sprintf("%08x-0000-4000-8000-000000000000", i)
		libs = append(libs, primary.Library{ID: id, StoreID: id, Name: "lib", Head: fmt.Sprintf("%040x", i+1)})
	}
	cat := &listCatalog{libs: libs}
	eng := &downBackupDB{st: st}
	w := &Watcher{Engine: eng, Catalog: cat, State: st, FullEvery: time.Hour}
	s := newScheduler(w.do, 1, time.Hour, time.Hour, slog.New(slog.DiscardHandler))
	ctx := context.Background()
	must(t, w.poll(ctx, s))
	s.wait()
	eng.down.Store(true)
	w.CheckAll() // a notification server reconnected
	err := w.poll(ctx, s)
	var se *stepError
	if !errors.As(err, &se) || se.step != "reading the backup database's heads" || strings.Contains(err.Error(), "primary") {
		t.Fatalf("a poll with the backup database down failed with %v, want it named", err)
	}
	if wait := time.Until(w.fullRetryAt); wait <= 0 || wait > minBackoff {
		t.Fatalf("the next full comparison may run in %s, want within %s", wait, minBackoff)
	}
	// A change on the primary meanwhile: the next polls compare only what moved.
	cat.libs = append([]primary.Library(nil), libs...)
	cat.libs[1].Head = fmt.Sprintf("%040x", 99)
	before, read := eng.heads.Load(), w.recordsRead
	for range 5 {
		must(t, w.poll(ctx, s))
		s.wait()
	}
	if n := eng.heads.Load() - before; n != 0 {
		t.Errorf("%d full comparisons in 5 polls before the retry was due, want 0", n)
	}
	if n := w.recordsRead - read; n != 1 {
		t.Errorf("5 polls read %d records, want the moved library's only", n)
	}
	if n := eng.syncs.Load(); n != 4 {
		t.Errorf("%d syncs, want the 3 first and the moved library's", n)
	}
	// Due again: still down, the wait doubles; then up, the comparison runs.
	w.fullRetryAt = time.Now()
	if err := w.poll(ctx, s); err == nil {
		t.Fatal("the retried comparison succeeded with the backup database down")
	}
	if wait := time.Until(w.fullRetryAt); wait <= minBackoff || wait > 2*minBackoff {
		t.Errorf("after 2 failed comparisons the next waits %s, want up to %s", wait, 2*minBackoff)
	}
	eng.down.Store(false)
	w.fullRetryAt = time.Now()
	before = eng.heads.Load()
	must(t, w.poll(ctx, s))
	if n := eng.heads.Load() - before; n != 1 || w.fullFailures != 0 || time.Since(w.lastFull) > time.Minute {
		t.Errorf("the comparison after the outage: %d BackupHeads calls, %d failures counted", n, w.fullFailures)
	}
}

// Run's log names the step that failed: with the backup database down it said
// "listing the primary's heads failed", sending the admin to the wrong server.
func TestFailedPollLogNamesTheStep(t *testing.T) {
	st := newTestState(t)
	id := "00000001-0000-4000-8000-000000000000"
	eng := &downBackupDB{st: st}
	eng.down.Store(true)
	var logs testenv.LockedBuffer
	w := &Watcher{Engine: eng, Catalog: &listCatalog{libs: []primary.Library{{ID: id, StoreID: id, Name: "lib", Head: fmt.Sprintf("%040x", 1)}}},
		State: st, Poll: 10 * time.Millisecond, Log: slog.New(slog.NewTextHandler(&logs, nil))}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	waitFor(t, "the failed comparison logged", func() bool { return strings.Contains(logs.String(), "reading the backup database's heads failed") })
	cancel()
	must(t, <-done)
	if text := logs.String(); strings.Contains(text, "listing the primary") {
		t.Errorf("the log blames the primary's listing:\n%s", text)
	}
}
