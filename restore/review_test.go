package restore_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"seafbak/internal/seafgen"
	"seafbak/internal/testenv"
	"seafbak/restore"
	"seafbak/sync/object"
	"seafbak/sync/store"
)

// Found by review: a client whose clock ran ahead made c1; the next commit c2 (a child of c1,
// so made after it) has a smaller ctime. --at a time after both ctimes must give c2
// (or later), never c1: c2 replaced c1 before that time by c2's own clock, and c1's
// state was gone by then. pickAt takes the commit with the largest ctime not after
// --at among the served line instead of walking the line from the head.
func TestRestoreAtWithASkewedClockPicksAnAncestor(t *testing.T) {
	env, g := primaryWithGenerator(t)
	times := []int64{1_000_000, 1_003_000, 1_002_000, 1_004_000} // created, c1 (clock ahead), c2, c3
	i := 0
	g.Now = func() int64 { v := times[i]; i++; return v }
	lib, err := g.NewLibrary(seafgen.LibraryOptions{Name: "Skew"})
	must(t, err)
	c1 := testenv.Commit(t, lib, "laptop with clock ahead", seafgen.Put("f.txt", []byte("1")))
	c2 := testenv.Commit(t, lib, "from the office", seafgen.Put("f.txt", []byte("2")))
	c3 := testenv.Commit(t, lib, "later", seafgen.Put("f.txt", []byte("3")))
	_ = c3
	env.Publish(lib)
	testenv.SyncOK(t, env.Engine(false), lib.ID)
	at := time.Unix(1_003_500, 0) // after c1 and c2, before c3
	res, err := restore.RestoreLibrary(context.Background(), restore.LibraryOptions{Store: env.Store, State: env.State, RepoID: lib.ID, Dir: filepath.Join(t.TempDir(), "out"), At: at})
	must(t, err)
	if res.Commit != c2 {
		t.Fatalf("--at %s restored %s (%q), want %s (c2, the child of c1 with ctime before --at); c1 is %s", at.UTC(), res.Commit, res.Description, c2, c1)
	}
}

// Found by review: a dir object below the root lost from the backup (bit rot, a lost sector; not
// a GC truncation, not a recorded hole). The restore fails saying the tree "is not
// whole ... --list shows which commits are whole", but --list (History) still says the
// commit is complete (it checks the root alone), so the admin is sent in a circle, and
// the fix (seafbak verify --repair) is not named.
func TestRestoreMissingSubdirObjectNamesTheRepair(t *testing.T) {
	env, lib, _ := backedUpRichLibrary(t)
	ctx := context.Background()
	rlib := restore.Library{RepoID: lib.ID, StoreID: lib.StoreID}
	c, err := restore.Commit(ctx, env.Store, rlib, lib.Head)
	must(t, err)
	var sub string
	must(t, restore.Walk(ctx, env.Store, rlib, c.RootID, func(e restore.Entry) error { return nil }))
	// Find the fs id of folder/sub through the root's dirents.
	root, err := env.Store.Get(ctx, object.KindFS, lib.StoreID, c.RootID)
	must(t, err)
	rfs, err := object.ParseFS(c.RootID, root)
	must(t, err)
	for _, d := range rfs.Dirents {
		if d.Name == "folder" {
			sub = d.ID
		}
	}
	if sub == "" {
		t.Fatal("no folder")
	}
	must(t, os.Remove(testenv.ObjectPath(env.BackupDir, object.KindFS, lib.StoreID, sub)))

	_, err = restore.RestoreLibrary(ctx, restore.LibraryOptions{Store: env.Store, State: env.State, RepoID: lib.ID, Dir: filepath.Join(t.TempDir(), "out")})
	if err == nil {
		t.Fatal("restore with a dir object missing succeeded")
	}
	t.Logf("restore: %v", err)
	rec, _, err2 := env.State.Load(lib.ID)
	must(t, err2)
	hist, err2 := restore.History(ctx, env.Store, rlib, restore.StateHeads(rec))
	must(t, err2)
	for _, h := range hist {
		if h.ID == lib.Head && h.Complete && strings.Contains(err.Error(), "--list shows which commits are whole") {
			t.Errorf("the restore sends the admin to --list, which says the head %s is whole", h.ID)
		}
	}
	if !strings.Contains(err.Error(), "verify --repair") {
		t.Errorf("the error names no fix (seafbak verify --repair): %v", err)
	}
}

// hasFails is a store whose Has fails (an S3 endpoint timing out, EIO on a disk).
type hasFails struct{ store.Store }

func (s hasFails) Has(ctx context.Context, kind object.Kind, storeID, id string) (bool, error) {
	return false, errors.New("s3 store: HEAD: connection reset by peer")
}

// Found by review: History (what --list and --list --json print) swallows the error of the
// store's Has: when the store cannot answer, every commit is listed as
// "complete": false ("tree not in the backup (truncated or hole)") and --list exits 0,
// so the admin reads that nothing in the backup can be restored, where the store merely
// did not answer.
func TestHistoryReportsStoreErrors(t *testing.T) {
	env, lib, _ := backedUpRichLibrary(t)
	rec, _, err := env.State.Load(lib.ID)
	must(t, err)
	hist, err := restore.History(context.Background(), hasFails{env.Store}, restore.LibraryOf(rec), restore.StateHeads(rec))
	if err != nil {
		return // the failure is reported: fine
	}
	incomplete := 0
	for _, h := range hist {
		if !h.Complete && h.Error == "" {
			incomplete++
		}
	}
	if incomplete > 0 {
		t.Errorf("History returned no error, and lists %d of %d commits as not whole in the backup because the store could not answer", incomplete, len(hist))
	}
}

// getFails fails every read of a commit object with an error that is not "missing" (the
// S3 endpoint or the disk not answering).
type getFails struct{ store.Store }

var errUnreachable = errors.New("s3 store: GET: connection reset by peer")

func (s getFails) Get(ctx context.Context, kind object.Kind, storeID, id string) ([]byte, error) {
	if kind == object.KindCommit {
		return nil, errUnreachable
	}
	return s.Store.Get(ctx, kind, storeID, id)
}

// Found by review: --at while the store cannot be read (not: an object is missing). Every commit
// read fails, History turns each failure into an entry with Error set and no error of
// its own, and pickAt skips those: the restore says "no commit of the library at or
// before that time", sending the admin to look for older or newer times, and hides the
// store's error.
func TestRestoreAtReportsAStoreError(t *testing.T) {
	env, lib, rc := backedUpRichLibrary(t)
	_, err := restore.RestoreLibrary(context.Background(), restore.LibraryOptions{Store: getFails{env.Store}, State: env.State, RepoID: lib.ID,
		Dir: filepath.Join(t.TempDir(), "out"), At: ctimeOf(t, lib, rc.changed)})
	if errors.Is(err, restore.ErrNoCommit) || !errors.Is(err, errUnreachable) {
		t.Fatalf("--at with the store not answering: %v; want the store's error", err)
	}
}

// Found by review: the primary's head is reset from c2 back to c1 (kept as an old head,
// replaced at T1), then the reset is undone: the head is c2 again. For a time between
// the reset and the undo, the primary served c1; --at restores c2, because the current
// head's line counted as served at every time, and the old head's record (c2, replaced
// T1) was read as "c2's line was served until T1" without knowing it came back. The
// record keeps the head's moves now.
func TestRestoreAtBetweenAResetAndItsUndo(t *testing.T) {
	env, g := primaryWithGenerator(t)
	lib, err := g.NewLibrary(seafgen.LibraryOptions{Name: "Reset"})
	must(t, err)
	c1 := testenv.Commit(t, lib, "one", seafgen.Put("f.txt", []byte("1")))
	c2 := testenv.Commit(t, lib, "two", seafgen.Put("bad.txt", []byte("2")))
	env.Publish(lib)
	testenv.SyncOK(t, env.Engine(false), lib.ID)
	lib.SetHead(c1)
	env.Publish(lib)
	if res := testenv.SyncOK(t, env.Engine(false), lib.ID); !res.OldHeadKept {
		t.Fatalf("old head not kept: %+v", res)
	}
	time.Sleep(1100 * time.Millisecond)
	between := time.Now()
	time.Sleep(1100 * time.Millisecond)
	lib.SetHead(c2)
	env.Publish(lib)
	testenv.SyncOK(t, env.Engine(false), lib.ID)
	rec, _, err := env.State.Load(lib.ID)
	must(t, err)
	t.Logf("head %s, old heads %+v", rec.Head, rec.OldHeads)
	res, err := restore.RestoreLibrary(context.Background(), restore.LibraryOptions{Store: env.Store, State: env.State, RepoID: lib.ID, Dir: filepath.Join(t.TempDir(), "out"), At: between})
	must(t, err)
	if res.Commit != c1 {
		t.Errorf("--at %s (after the reset to c1, before its undo): restored %s (%q), want c1 %s", between.UTC().Format(time.RFC3339), res.Commit, res.Description, c1)
	}
}
