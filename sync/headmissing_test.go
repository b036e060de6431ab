package sync_test

import (
	"context"
	"errors"
	"os"
	"testing"

	"seafbak/internal/seafgen"
	"seafbak/internal/testenv"
	seafsync "seafbak/sync"
	"seafbak/sync/object"
)

// The state records a head the store lacks: nothing deletes from the store, so it is
// another store than the state was written with (a disk not mounted, other buckets).
// The sync fails the library, naming it, before it copies the whole history there; a
// repair (verify --repair) re-checks and fetches what is missing.
func TestARecordedHeadTheStoreLacksFailsTheLibrary(t *testing.T) {
	env := testenv.New(t, srv)
	g := seafgen.New(env.PrimaryDir)
	lib, err := g.NewLibrary(seafgen.LibraryOptions{Name: "Elsewhere"})
	must(t, err)
	testenv.Commit(t, lib, "one", seafgen.Put("a.txt", []byte("a")))
	env.Publish(lib)
	testenv.SyncOK(t, env.Engine(false), lib.ID)
	recorded := lib.Head
	must(t, os.Remove(testenv.ObjectPath(env.BackupDir, object.KindCommit, lib.ID, recorded)))

	testenv.Commit(t, lib, "two", seafgen.Put("b.txt", []byte("b")))
	env.Publish(lib)
	_, err = env.Engine(false).Sync(context.Background(), lib.ID)
	if !errors.Is(err, seafsync.ErrRecordedHeadMissing) {
		t.Fatalf("sync into a store without the recorded head: %v", err)
	}
	if rec, _, _ := env.State.Load(lib.ID); rec.Head != recorded || rec.LastError == "" {
		t.Fatalf("record after the refusal: %+v", rec)
	}
	repair := env.Engine(false)
	repair.Recheck = true
	if res := testenv.SyncOK(t, repair, lib.ID); res.Head != lib.Head {
		t.Fatalf("repair: %+v", res)
	}
	if _, err := os.Stat(testenv.ObjectPath(env.BackupDir, object.KindCommit, lib.ID, recorded)); err != nil {
		t.Fatalf("the lost commit was not fetched again: %v", err)
	}
}
