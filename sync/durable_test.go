package sync_test

import (
	"context"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"seafbak/internal/seafgen"
	"seafbak/internal/testenv"
	"seafbak/sync/object"
	"seafbak/sync/store"
)

// markerWatch is a store that reports how many dirty markers the state holds when the
// first object is written, and says whether its commits are durable.
type markerWatch struct {
	store.Store
	durable  bool
	dirtyDir string
	seen     atomic.Int64 // markers at the first Create, +1 (0: no Create yet)
}

func (m *markerWatch) DurableOnCommit() bool { return m.durable }

func (m *markerWatch) Create(ctx context.Context, kind object.Kind, storeID, id string) (store.Writer, error) {
	if m.seen.Load() == 0 {
		ents, _ := os.ReadDir(m.dirtyDir)
		m.seen.CompareAndSwap(0, int64(len(ents))+1)
	}
	return m.Store.Create(ctx, kind, storeID, id)
}

// A sync into a store whose commits are durable (S3) leaves no dirty marker while it
// writes, so a sync killed there costs the next one no re-check; into a batch store it
// does. A stale marker (a filesystem store's, before the backup moved to S3) is still
// honoured once, and cleared by that re-check.
func TestDurableStoreNeedsNoMarker(t *testing.T) {
	for _, durable := range []bool{false, true} {
		env := testenv.New(t, srv)
		g := seafgen.New(env.PrimaryDir)
		lib, err := g.NewLibrary(seafgen.LibraryOptions{Name: "L", Owner: "u@example.com"})
		if err != nil {
			t.Fatal(err)
		}
		testenv.Commit(t, lib, "one", seafgen.Put("a/b.txt", []byte("b")))
		env.Publish(lib)
		w := &markerWatch{Store: env.Store, durable: durable, dirtyDir: filepath.Join(env.StateDir, "dirty")}
		eng := env.Engine(false)
		eng.Store = w
		testenv.SyncOK(t, eng, lib.ID)
		want := int64(1) // a marker
		if durable {
			want = 0
		}
		if got := w.seen.Load() - 1; got != want {
			t.Fatalf("durable=%v: %d markers while writing, want %d", durable, got, want)
		}
		if !durable {
			continue
		}
		// A stale marker of this library: the next sync re-checks once and clears it.
		if err := env.State.MarkDirty(lib.StoreID, lib.ID); err != nil {
			t.Fatal(err)
		}
		testenv.Commit(t, lib, "two", seafgen.Put("c.txt", []byte("c")))
		env.Publish(lib)
		fresh := env.Engine(false) // another process: the marker is not its own
		fresh.Store = w
		if res := testenv.SyncOK(t, fresh, lib.ID); !res.Rechecked {
			t.Fatalf("a stale marker was not honoured: %+v", res)
		}
		if ents, _ := os.ReadDir(w.dirtyDir); len(ents) != 0 {
			t.Fatalf("markers left after the re-check: %d", len(ents))
		}
		testenv.Commit(t, lib, "three", seafgen.Put("d.txt", []byte("d")))
		env.Publish(lib)
		if res := testenv.SyncOK(t, fresh, lib.ID); res.Rechecked {
			t.Fatalf("re-checked again: %+v", res)
		}
		env.CompareWithPrimary(lib.ID, lib.StoreID, env.BackupHead(lib.ID))
	}
}
