package watch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	gosync "sync"
	"testing"
	"time"

	seafsync "seafbak/sync"
	"seafbak/sync/primary"
)

// gateEngine's sync of gateHead waits for release and succeeds, its sync of failHead
// fails, any other succeeds; it keeps the heads it was asked for.
type gateEngine struct {
	noEngine
	gateHead, failHead string
	release            chan struct{}
	mu                 gosync.Mutex
	asked              []string
}

func (e *gateEngine) SyncListed(ctx context.Context, lib primary.Library) (seafsync.Result, error) {
	e.mu.Lock()
	e.asked = append(e.asked, lib.Head)
	e.mu.Unlock()
	switch lib.Head {
	case e.gateHead:
		<-e.release
	case e.failHead:
		return seafsync.Result{}, errors.New("primary unreachable")
	}
	return seafsync.Result{Head: lib.Head}, nil
}

func (e *gateEngine) n() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.asked)
}

// A follow-up sync that fails is asked for again by the next poll, as any failed job:
// the success of the job before it cleared its library's unsettled flag, and the
// polls between full comparisons (an hour here) no longer looked at it.
func TestFailedFollowUpIsAskedForAgain(t *testing.T) {
	st := newTestState(t)
	id := "00000001-0000-4000-8000-000000000000"
	h1, h2 := fmt.Sprintf("%040x", 1), fmt.Sprintf("%040x", 2)
	eng := &gateEngine{gateHead: h1, failHead: h2, release: make(chan struct{})}
	cat := &listCatalog{libs: []primary.Library{{ID: id, StoreID: id, Name: "lib", Head: h1}}}
	w := &Watcher{Engine: eng, Catalog: cat, State: st, FullEvery: time.Hour}
	s := newScheduler(w.do, 4, time.Hour, time.Hour, slog.New(slog.DiscardHandler))
	ctx := context.Background()
	must(t, w.poll(ctx, s)) // full: the job for h1 runs, held
	cat.libs = []primary.Library{{ID: id, StoreID: id, Name: "lib", Head: h2}}
	must(t, w.poll(ctx, s)) // h2 waits as the follow-up
	close(eng.release)
	s.wait()
	if n := eng.n(); n != 2 {
		t.Fatalf("%d syncs, want h1 then h2: %v", n, eng.asked)
	}
	if !w.isUnsettled(id) {
		t.Error("the library whose follow-up failed is settled")
	}
	must(t, w.poll(ctx, s))
	if !s.holds(job{lib: primary.Library{ID: id, Head: h2}}) {
		t.Error("the poll after the failed follow-up did not ask for it again")
	}
}
