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

// A library unchanged for longer than its history limit has a head older than
// RepoValidSince, but Seafile's GC keeps the head's tree whatever its age (and that of
// the first commit past the limit below it): a block of it missing on the primary is a
// fault, not truncation. It was recorded as truncation, without --force, and the head
// moved over a tree the store did not hold.
func TestHeadOlderThanTheHistoryLimitIsNotTruncated(t *testing.T) {
	env := testenv.New(t, srv)
	g := seafgen.New(env.PrimaryDir)
	g.BlockSize = 4096
	lib, err := g.NewLibrary(seafgen.LibraryOptions{Name: "Quiet"})
	must(t, err)
	testenv.Commit(t, lib, "files", seafgen.Put("a.bin", testenv.RandomBytes(9000, 5)))
	ct, err := lib.Ctime(lib.Head)
	must(t, err)
	lib.ValidSince = ct + 86400 // GC ran a day after the last change: now - limit
	_, blocks := env.PrimaryFile(lib, "a.bin")
	must(t, os.Remove(testenv.ObjectPath(env.PrimaryDir, object.KindBlock, lib.StoreID, blocks[0])))
	env.Publish(lib)
	_, err = env.Engine(false).Sync(context.Background(), lib.ID)
	var oe *seafsync.ObjectError
	if !errors.As(err, &oe) || oe.ID != blocks[0] {
		rec, _, _ := env.State.Load(lib.ID)
		t.Fatalf("a block of the head's tree missing on the primary: %v; recorded head %s, truncated %v", err, rec.Head, rec.Truncated)
	}
	if rec, _, _ := env.State.Load(lib.ID); rec.Head != "" {
		t.Errorf("head %s recorded over a tree the store does not hold", rec.Head)
	}
}

// A re-check that finds a block damaged in the backup and missing on the primary records
// a hole under directories already in the store. A plain sync after it found those
// directories present, took the tree as whole and dropped the hole, the block still
// damaged and status healthy. Re-checking now goes on while such holes remain.
func TestHoleFoundByARecheckIsKept(t *testing.T) {
	env := testenv.New(t, srv)
	g := seafgen.New(env.PrimaryDir)
	g.BlockSize = 4096
	lib, err := g.NewLibrary(seafgen.LibraryOptions{Name: "Rot"})
	must(t, err)
	testenv.Commit(t, lib, "files", seafgen.Put("a.bin", testenv.RandomBytes(9000, 5)))
	env.Publish(lib)
	testenv.SyncOK(t, env.Engine(false), lib.ID)
	_, blocks := env.PrimaryFile(lib, "a.bin")
	b := blocks[0]
	must(t, os.Truncate(testenv.ObjectPath(env.BackupDir, object.KindBlock, lib.StoreID, b), 0)) // damaged in the backup
	must(t, os.Remove(testenv.ObjectPath(env.PrimaryDir, object.KindBlock, lib.StoreID, b)))     // and lost on the primary
	eng := env.Engine(true)
	eng.Recheck = true
	if res, err := eng.Sync(context.Background(), lib.ID); err != nil || len(res.Holes) != 1 {
		t.Fatalf("re-check --force: %d holes, %v", len(res.Holes), err)
	}
	testenv.SyncOK(t, env.Engine(false), lib.ID)
	rec, _, err := env.State.Load(lib.ID)
	must(t, err)
	if len(rec.Holes) != 1 || rec.Holes[0].ID != b || !rec.Recheck {
		t.Fatalf("after a plain sync: holes %+v, recheck %v; want block %s's hole kept, re-checking", rec.Holes, rec.Recheck, b)
	}
}
