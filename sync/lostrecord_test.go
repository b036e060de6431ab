package sync_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync/atomic"
	"testing"

	"seafbak/internal/seafgen"
	"seafbak/internal/testenv"
	"seafbak/sync/object"
	"seafbak/sync/store"
)

// failingHasLibrary fails HasLibrary while fail is set, as an S3 store that does not
// answer for a while.
type failingHasLibrary struct {
	store.Store
	fail atomic.Bool
}

func (f *failingHasLibrary) HasLibrary(ctx context.Context, kind object.Kind, storeID string) (bool, error) {
	if f.fail.Load() {
		return false, errors.New("the store does not answer")
	}
	return f.Store.HasLibrary(ctx, kind, storeID)
}

// Found by review: a library's record was lost (moved aside); the first sync's HasLibrary fails
// for a moment. Since every failure is now recorded, that failure saves a new record
// (no head, Recheck false), and the next sync finds a record: "the store has objects of
// this library but the state has no record of it" is never asked again, so presence is
// trusted over a hole only the lost record knew of.
func TestLostRecordStillRecheckedAfterAStoreFailure(t *testing.T) {
	env := testenv.New(t, srv)
	g := seafgen.New(env.PrimaryDir)
	g.BlockSize = 4096
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
	must(t, os.Rename(env.StateDir+"/libraries/"+lib.ID+".json", env.StateDir+"/"+lib.ID+".json.damaged"))

	eng := env.Engine(false)
	fs := &failingHasLibrary{Store: eng.Store}
	eng.Store = fs
	fs.fail.Store(true)
	if _, err := eng.Sync(context.Background(), lib.ID); err == nil {
		t.Fatal("sync succeeded with HasLibrary failing")
	}
	fs.fail.Store(false)
	res, err = eng.Sync(context.Background(), lib.ID)
	if err == nil || !strings.Contains(err.Error(), blocks[1]) {
		rec, _, _ := env.State.Load(lib.ID)
		must(t, os.WriteFile(lost, saved, 0o644))
		_, err2 := eng.Sync(context.Background(), lib.ID)
		t.Fatalf("after one failed HasLibrary, the sync without the lost record trusted a commit above a hole: res %+v err %v; record head %s holes %d; after the primary is repaired too: %v", res, err, rec.Head, len(rec.Holes), err2)
	}
}
