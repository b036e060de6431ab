package sync_test

import (
	"context"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"seafbak/internal/seafgen"
	"seafbak/internal/testenv"
	"seafbak/state"
	"seafbak/sync/object"
	"seafbak/sync/store"
)

// A library with no state record but objects in the store (the record was lost or moved
// aside) is re-checked: a commit present in the store may sit above a hole that only the
// lost record knew of, so trusting it would record a head the backup does not hold.
func TestLostRecordIsRechecked(t *testing.T) { bothSources(t, testLostRecordIsRechecked) }

func testLostRecordIsRechecked(t *testing.T, env *testenv.Env, g *seafgen.Generator) {
	lib, err := g.NewLibrary(seafgen.LibraryOptions{Name: "Lost record"})
	must(t, err)
	testenv.Commit(t, lib, "files", seafgen.Put("big.bin", testenv.RandomBytes(12000, 51)), seafgen.Put("ok.txt", []byte("ok")))
	env.Publish(lib)
	_, blocks := env.PrimaryFile(lib, "big.bin")
	lost := testenv.ObjectPath(env.PrimaryDir, object.KindBlock, lib.StoreID, blocks[1])
	saved, err := os.ReadFile(lost)
	must(t, err)
	must(t, os.Remove(lost))
	res, err := env.Engine(true).Sync(context.Background(), lib.ID)
	must(t, err)
	if len(res.Holes) != 1 {
		t.Fatalf("--force: %+v", res)
	}
	// The record goes (moved aside by an admin after it was damaged).
	must(t, os.Rename(env.StateDir+"/libraries/"+lib.ID+".json", env.StateDir+"/"+lib.ID+".json.damaged"))

	_, err = env.Engine(false).Sync(context.Background(), lib.ID)
	if err == nil || !strings.Contains(err.Error(), blocks[1]) {
		t.Fatalf("sync without the record trusted a commit above a hole: %v", err)
	}
	must(t, os.WriteFile(lost, saved, 0o644))
	res = testenv.SyncOK(t, env.Engine(false), lib.ID)
	if !res.Rechecked || len(res.Holes) != 0 {
		t.Fatalf("%+v: want a re-check that fills the hole", res)
	}
	env.CompareWithPrimary(lib.ID, lib.StoreID, lib.Head)
}

// A failed backup-database update leaves the objects durable: the dirty marker goes, so
// the next sync does not re-hash the whole library.
func TestFailedRowsUpdateClearsMarker(t *testing.T) {
	env := testenv.New(t, srv)
	g := seafgen.New(env.PrimaryDir)
	lib, err := g.NewLibrary(seafgen.LibraryOptions{Name: "Rows"})
	must(t, err)
	testenv.Commit(t, lib, "files", seafgen.Put("a.txt", []byte("a")))
	env.Publish(lib)
	_, err = env.BackupDB.Exec("RENAME TABLE Branch TO Branch_away")
	must(t, err)
	if _, err := env.Engine(false).Sync(context.Background(), lib.ID); err == nil {
		t.Fatal("sync succeeded without a Branch table")
	}
	if dead, err := env.State.DeadDirty(lib.StoreID, lib.ID, time.Time{}); err != nil || dead {
		t.Fatalf("marker left after a failed database update (%v): the next sync would re-hash everything", err)
	}
	rec, _, _ := env.State.Load(lib.ID)
	if rec.Head != "" || rec.LastError == "" {
		t.Fatalf("state %+v: want no head and the error", rec)
	}
	_, err = env.BackupDB.Exec("RENAME TABLE Branch_away TO Branch")
	must(t, err)
	if res := testenv.SyncOK(t, env.Engine(false), lib.ID); res.Rechecked || env.BackupHead(lib.ID) != lib.Head {
		t.Fatalf("%+v", res)
	}
}

// Objects another process wrote, and this sync trusted as present, may not be durable
// yet: while another process has a marker on the store, the sync flushes the whole store
// before it moves metadata; alone, it flushes only what it wrote.
func TestOtherWriterMakesSyncFlushStore(t *testing.T) {
	env := testenv.New(t, srv)
	g := seafgen.New(env.PrimaryDir)
	origin, err := g.NewLibrary(seafgen.LibraryOptions{Name: "Origin", Owner: "o@example.com"})
	must(t, err)
	testenv.Commit(t, origin, "files", seafgen.Put("dir/a.txt", []byte("a")))
	virt, err := g.NewVirtualLibrary(origin, "dir", "Dir")
	must(t, err)
	env.Publish(origin, virt)

	counting := &countingStore{Store: env.Store}
	eng := env.Engine(false)
	eng.Store = counting
	testenv.SyncOK(t, eng, origin.ID)
	if n := counting.all.Load(); n != 0 {
		t.Fatalf("alone: %d whole-store flushes, want 0", n)
	}
	// Another process (its own state handle) is syncing the virtual library.
	other, err := state.Open(env.StateDir)
	must(t, err)
	lock, err := other.Lock(context.Background(), virt.ID)
	must(t, err)
	defer lock.Unlock()
	lock.Announce() // as its sync does before it writes
	must(t, other.MarkDirty(virt.StoreID, virt.ID))
	testenv.Commit(t, origin, "more", seafgen.Put("b.txt", []byte("b")))
	env.Publish(origin)
	if res := testenv.SyncOK(t, eng, origin.ID); res.Rechecked {
		t.Fatal("a live writer's marker made the sync re-check")
	}
	if n := counting.all.Load(); n != 1 {
		t.Fatalf("with another writer: %d whole-store flushes, want 1", n)
	}
}

type countingStore struct {
	store.Store
	all atomic.Int32
}

func (c *countingStore) SyncAll(ctx context.Context) error {
	c.all.Add(1)
	return c.Store.SyncAll(ctx)
}
