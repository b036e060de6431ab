package watch

import (
	"context"
	"fmt"
	"testing"
	"time"

	"seafbak/internal/seafgen"
	"seafbak/internal/testenv"
	seafsync "seafbak/sync"
	"seafbak/sync/primary"
)

// A round with many changes (here the first, of new libraries) runs its syncs as a
// scan does: many at once, so that they share their flushes, however few copy at once
// (Parallel 1). With Parallel syncs at once, 3 000 new libraries took 3x a scan's time.
func TestWatchRoundSyncsManyLibrariesAtOnce(t *testing.T) {
	env := testenv.New(t, srv)
	gen := seafgen.New(env.PrimaryDir)
	var libs []*seafgen.Library
	for i := range 6 {
		l, err := gen.NewLibrary(seafgen.LibraryOptions{Name: fmt.Sprintf("lib%d", i), Owner: "u@example.com"})
		must(t, err)
		testenv.Commit(t, l, "files", seafgen.Put("a.txt", []byte(fmt.Sprint("a", i))))
		env.Publish(l)
		libs = append(libs, l)
	}
	eng := &gaugedEngine{Engine: env.Engine(false)}
	w := &Watcher{Engine: eng, Catalog: env.Catalog, State: env.State, Log: eng.Engine.(*seafsync.Engine).Log,
		Poll: 100 * time.Millisecond, Parallel: 1, MaxBackoff: time.Second}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	waitBackedUp(t, env, libs)
	cancel()
	must(t, <-done)
	if n := eng.syncs.Most(); n < 2 {
		t.Fatalf("at most %d syncs at once with Parallel 1, want more", n)
	}
	for _, l := range libs {
		env.CompareWithPrimary(l.ID, l.StoreID, l.Head)
	}
}

// gaugedEngine counts the syncs under way at once; each waits briefly for a second,
// so that two are seen if they may run at once.
type gaugedEngine struct {
	Engine
	syncs testenv.Gauge
}

func (e *gaugedEngine) SyncListed(ctx context.Context, lib primary.Library) (seafsync.Result, error) {
	defer e.syncs.EnterWaiting(50 * time.Millisecond)()
	return e.Engine.SyncListed(ctx, lib)
}
