package watch

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"seafbak/internal/seafgen"
	"seafbak/internal/testenv"
	seafsync "seafbak/sync"
	"seafbak/sync/object"
	"seafbak/sync/primary"
)

// countingEngine counts the syncs it runs.
type countingEngine struct {
	*seafsync.Engine
	syncs atomic.Int32
}

func (e *countingEngine) SyncListed(ctx context.Context, lib primary.Library) (seafsync.Result, error) {
	e.syncs.Add(1)
	return e.Engine.SyncListed(ctx, lib)
}

// A library backed up at its head with holes (synced with --force), or with a re-check
// still pending, is synced again only every holesRetry, or when its head moves: every
// full comparison (each minute) synced it again on an idle server, warning about the
// same holes, logging a "change backed up" that was none and rewriting the metrics.
func TestHolesAreRetriedHourlyNotAtEveryComparison(t *testing.T) {
	for _, recheck := range []bool{false, true} {
		name := "holes"
		if recheck {
			name = "holes and a pending re-check"
		}
		t.Run(name, func(t *testing.T) {
			env := testenv.New(t, srv)
			g := seafgen.New(env.PrimaryDir)
			lib, err := g.NewLibrary(seafgen.LibraryOptions{Name: "Missing", Owner: "u@example.com"})
			must(t, err)
			testenv.Commit(t, lib, "files", seafgen.Put("a.txt", []byte("aaaa")), seafgen.Put("b.txt", []byte("bbbb")))
			env.Publish(lib)
			fileID, _ := env.PrimaryFile(lib, "a.txt")
			must(t, os.Remove(testenv.ObjectPath(env.PrimaryDir, object.KindFS, lib.StoreID, fileID)))
			if _, err := env.Engine(true).Sync(context.Background(), lib.ID); err != nil {
				t.Fatal(err)
			}
			if recheck {
				rec, _, err := env.State.Load(lib.ID)
				must(t, err)
				rec.Recheck = true
				must(t, env.State.Save(rec))
			}
			var logs testenv.LockedBuffer
			log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
			eng := &countingEngine{Engine: env.Engine(false)}
			eng.Log = log
			// Every poll is a full comparison.
			w := &Watcher{Engine: eng, Catalog: env.Catalog, State: env.State, Log: log, FullEvery: time.Nanosecond}
			s := newScheduler(w.do, 1, time.Hour, time.Hour, slog.New(slog.DiscardHandler))
			ctx := context.Background()
			for range 4 {
				must(t, w.poll(ctx, s))
				s.wait()
			}
			if n := eng.syncs.Load(); n != 1 {
				t.Errorf("4 full comparisons with nothing changed ran %d syncs, want the first only", n)
			}
			if text := logs.String(); strings.Contains(text, "change backed up") {
				t.Errorf("trying the holes again logged a change:\n%s", text)
			}
			if w.finished.Load() {
				t.Error("trying the holes again asked for the metrics to be rewritten")
			}
			rec, _, err := env.State.Load(lib.ID)
			must(t, err)
			if len(rec.Holes) == 0 || rec.Recheck != recheck {
				t.Fatalf("record after the retries: %d holes, re-check %v", len(rec.Holes), rec.Recheck)
			}
			// An hour on, they are tried again.
			w.holesTried[lib.ID] = time.Now().Add(-holesRetry)
			must(t, w.poll(ctx, s))
			s.wait()
			if n := eng.syncs.Load(); n != 2 {
				t.Errorf("%d syncs after holesRetry, want 2", n)
			}
			// A new head is synced at once, and told.
			testenv.Commit(t, lib, "more", seafgen.Put("c.txt", []byte("cccc")))
			env.Publish(lib)
			must(t, w.poll(ctx, s))
			s.wait()
			if n := eng.syncs.Load(); n != 3 || env.BackupHead(lib.ID) != lib.Head {
				t.Errorf("%d syncs after the head moved, want 3 and the new head backed up", n)
			}
			if !strings.Contains(logs.String(), "change backed up") || !w.finished.Load() {
				t.Error("the new head's sync was not told")
			}
		})
	}
}
