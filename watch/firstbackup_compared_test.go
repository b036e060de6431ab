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

// A first backup that takes hours (a new large library) held every full comparison
// back, so the metrics' last scan, and with it every idle library's current timestamp,
// froze for as long: the behind alert fired for all of them after 15 min (found by
// review). The library being copied has no last success, so the metrics give it no
// current time whatever compared is: it does not hold the comparisons back.
func TestFirstBackupDoesNotHoldTheComparison(t *testing.T) {
	st := newTestState(t)
	idle := primary.Library{ID: fmt.Sprintf("%08x-0000-4000-8000-000000000000", 1), Name: "idle", Head: fmt.Sprintf("%040x", 1)}
	idle.StoreID = idle.ID
	must(t, st.Save(state.Library{ID: idle.ID, StoreID: idle.ID, Name: "idle", Head: idle.Head, LastSuccess: time.Now().Add(-time.Hour)}))
	big := primary.Library{ID: fmt.Sprintf("%08x-0000-4000-8000-000000000000", 2), Name: "big", Head: fmt.Sprintf("%040x", 2)}
	big.StoreID = big.ID
	eng := &comparedEngine{st: st, held: big.ID, release: make(chan struct{})}
	var calls []time.Time
	w := &Watcher{Engine: eng, Catalog: &listCatalog{libs: []primary.Library{idle, big}}, State: st,
		FullEvery: time.Nanosecond, AfterRoundEvery: time.Nanosecond,
		AfterRound: func(_ context.Context, compared time.Time) { calls = append(calls, compared) }}
	s := newScheduler(w.do, 4, time.Hour, time.Hour, slog.New(slog.DiscardHandler))
	defer func() { close(eng.release); s.wait() }()
	ctx := context.Background()
	for range 3 {
		must(t, w.poll(ctx, s))
		time.Sleep(time.Millisecond)
	}
	w.hookCompared = w.hookCompared.Add(-refreshEvery)
	w.afterRound(ctx, time.Now())
	if len(calls) == 0 || calls[len(calls)-1].IsZero() {
		t.Fatalf("while a never-backed-up library copies, AfterRound got %v: the idle library's current timestamp stays frozen", calls)
	}
}
