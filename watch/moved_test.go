package watch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"seafbak/state"
	seafsync "seafbak/sync"
	"seafbak/sync/primary"
)

// heldEngine's syncs wait until released; each then returns its library's entry in fail.
type heldEngine struct {
	noEngine
	release chan struct{}
	fail    map[string]error
}

func (e *heldEngine) SyncListed(ctx context.Context, lib primary.Library) (seafsync.Result, error) {
	<-e.release
	return seafsync.Result{Head: lib.Head}, e.fail[lib.ID]
}

// Between full comparisons, a poll does not read the records of libraries whose job for
// the listed head is running or waiting: in watch's first round of 10 000 new libraries
// every 2 s poll read each one still waiting. It still reads a library whose head moved,
// and one whose job failed.
func TestPollSkipsLibrariesWithAJobForTheirHead(t *testing.T) {
	st, err := state.Open(t.TempDir())
	must(t, err)
	var libs []primary.Library
	for i := range 5 {
		id := fmt.Sprintf("%08x-0000-4000-8000-000000000000", i)
		libs = append(libs, primary.Library{ID: id, StoreID: id, Name: "lib", Head: fmt.Sprintf("%040x", i+1)})
	}
	broken := libs[4].ID
	eng := &heldEngine{release: make(chan struct{}), fail: map[string]error{broken: errors.New("primary unreachable")}}
	cat := &listCatalog{libs: libs}
	w := &Watcher{Engine: eng, Catalog: cat, State: st, FullEvery: time.Hour}
	s := newScheduler(w.do, 1, time.Hour, time.Hour, slog.New(slog.DiscardHandler))
	ctx := context.Background()
	poll := func() int {
		t.Helper()
		before := w.recordsRead
		must(t, w.poll(ctx, s))
		return w.recordsRead - before
	}
	poll() // the first poll is a full comparison: one job running, four waiting
	if n := poll(); n != 0 {
		t.Fatalf("a poll read %d records of libraries waiting for their jobs, want 0", n)
	}
	cat.libs = append([]primary.Library(nil), libs...)
	cat.libs[2].Head = fmt.Sprintf("%040x", 99)
	if n := poll(); n != 1 {
		t.Fatalf("a poll read %d records after one library's head moved, want 1", n)
	}
	close(eng.release) // every job ends: the broken library's fails and backs off
	s.wait()
	if n := poll(); n != 1 {
		t.Fatalf("a poll read %d records after the jobs ended, one failed: want 1, the failed one", n)
	}
	if !w.isUnsettled(broken) || !s.holds(job{lib: libs[4]}) {
		t.Fatal("the failed library was not asked for again")
	}
}
