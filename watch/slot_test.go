package watch

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"seafbak/state"
	"seafbak/sync/primary"
)

// A library that failed and was then backed up by another seafbak (or deleted) leaves
// the scheduler once a comparison finds it settled: its slot stayed for the life of the
// process, and its next failure, days later, waited the backoff the old failures had
// reached instead of the first one.
func TestSettledLibraryForgetsItsFailures(t *testing.T) {
	st := newTestState(t)
	id := "00000001-0000-4000-8000-000000000000"
	h1, h2 := fmt.Sprintf("%040x", 1), fmt.Sprintf("%040x", 2)
	eng := &recordingEngine{st: st, fail: map[string]bool{id: true}}
	cat := &listCatalog{libs: []primary.Library{{ID: id, StoreID: id, Name: "lib", Head: h1}}}
	w := &Watcher{Engine: eng, Catalog: cat, State: st, FullEvery: time.Hour}
	clk := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	s := newScheduler(w.do, 1, time.Second, time.Hour, slog.New(slog.DiscardHandler))
	s.now = clk.now
	ctx := context.Background()
	failures := func() (int, time.Duration) {
		s.mu.Lock()
		defer s.mu.Unlock()
		sl := s.libs[id]
		if sl == nil {
			return 0, 0
		}
		return sl.failures, sl.retryAt.Sub(clk.now())
	}
	for range 5 { // the first poll is full, the others look at the unsettled library
		must(t, w.poll(ctx, s))
		s.wait()
		_, wait := failures()
		clk.add(wait)
	}
	if n, _ := failures(); n != 5 {
		t.Fatalf("%d failures in a row, want 5", n)
	}
	// Another seafbak (the primary's hook) backs it up.
	must(t, st.Save(state.Library{ID: id, StoreID: id, Name: "lib", Head: h1, LastSuccess: clk.now()}))
	must(t, w.poll(ctx, s))
	s.wait()
	if w.isUnsettled(id) {
		t.Fatal("the library backed up elsewhere is still unsettled")
	}
	s.mu.Lock()
	kept := s.libs[id] != nil
	s.mu.Unlock()
	if kept {
		t.Error("the scheduler keeps the slot of a library backed up elsewhere")
	}
	// Later it changes and fails once: the first backoff, not the sixth.
	cat.libs = []primary.Library{{ID: id, StoreID: id, Name: "lib", Head: h2}}
	must(t, w.poll(ctx, s))
	s.wait()
	if n, wait := failures(); n != 1 || wait != time.Second {
		t.Errorf("a new failure counts %d in a row and waits %s, want 1 and 1s", n, wait)
	}
}
