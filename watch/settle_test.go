package watch

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"seafbak/internal/testenv"
	"seafbak/state"
	seafsync "seafbak/sync"
	"seafbak/sync/primary"
)

// lockedEngine finds every library locked by another seafbak, which then backs it up
// (records it in the state): a cron scan or the primary's hook beside the watch.
type lockedEngine struct{ recordingEngine }

func (e *lockedEngine) SyncListed(_ context.Context, lib primary.Library) (seafsync.Result, error) {
	e.st.Save(state.Library{ID: lib.ID, StoreID: lib.StoreID, Head: lib.Head, LastSuccess: time.Now()})
	return seafsync.Result{}, state.ErrLocked
}

// Libraries another seafbak backed up after this watch's job found them busy are
// settled at the next comparison: they stayed unsettled for good, their records read at
// every poll, and the quiet poll that reads nothing never came back.
func TestLibrariesBackedUpElsewhereAreSettled(t *testing.T) {
	env := testenv.New(t, srv)
	ctx := context.Background()
	p := primaryRows{t, env.PrimaryDB, "eeeeeeeeeeee"}
	for n := 1; n <= 3; n++ {
		p.add(n)
	}
	st := newTestState(t)
	w := &Watcher{Engine: &lockedEngine{recordingEngine{st: st}}, Catalog: primary.Combine(env.Catalog, env.Objects), State: st, FullEvery: time.Hour}
	s := newScheduler(w.do, 1, time.Hour, time.Hour, slog.New(slog.DiscardHandler))
	must(t, w.poll(ctx, s)) // the first, full comparison asks for all three
	s.wait()
	if n := len(w.unsettledIDs()); n != 3 {
		t.Fatalf("%d libraries unsettled after jobs that found them busy, want 3", n)
	}
	must(t, w.poll(ctx, s)) // looks at them again, and finds them backed up
	s.wait()
	if n := len(w.unsettledIDs()); n != 0 {
		t.Fatalf("%d libraries backed up elsewhere still unsettled", n)
	}
	before := w.recordsRead
	must(t, w.poll(ctx, s))
	s.wait()
	if n := w.recordsRead - before; n != 0 {
		t.Errorf("a quiet poll read %d records, want none", n)
	}
}
