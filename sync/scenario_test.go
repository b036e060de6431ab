package sync_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"seafbak/internal/seafgen"
	"seafbak/internal/testenv"
	"seafbak/state"
	"seafbak/sync/object"
)

// scenario is an end-to-end test of the engine, run once per kind of source.
type scenario func(t *testing.T, env *testenv.Env, g *seafgen.Generator)

// bothSources runs a scenario against an empty primary and backup, with a generator
// writing into the primary's data dir with small blocks (so ordinary test files span
// several blocks): once reading the data dir, once over the HTTP sync protocol.
func bothSources(t *testing.T, s scenario) {
	for _, source := range []string{"dir", "http"} {
		t.Run(source, func(t *testing.T) {
			env := testenv.New(t, srv)
			if source == "http" {
				env.StartFileServer()
			}
			g := seafgen.New(env.PrimaryDir)
			g.BlockSize = 4096
			s(t, env, g)
		})
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// richLibrary has history with everything Seafile trees hold: nested and renamed
// folders, deletes, empty files and dirs, multi-block files, non-ASCII names, a merge.
func richLibrary(t *testing.T, g *seafgen.Generator) *seafgen.Library {
	lib, err := g.NewLibrary(seafgen.LibraryOptions{Name: "Docs", Owner: "alice@example.com"})
	must(t, err)
	first := testenv.Commit(t, lib, "Added files",
		seafgen.Put("a.txt", []byte("hello\n")),
		seafgen.Put("dir/sub/deep.txt", []byte("deep")),
		seafgen.Put("empty.txt", nil),
		seafgen.Mkdir("empty-dir"),
		seafgen.Put("big.bin", testenv.RandomBytes(20000, 1)),
		seafgen.Put("naïve café.txt", []byte("accents")),
		seafgen.Put("日本語/ファイル.txt", []byte("nihongo")),
	)
	testenv.Commit(t, lib, "Renamed dir, deleted a.txt", seafgen.Rename("dir", "folder"), seafgen.Delete("a.txt"))
	side, err := lib.CommitOn(first, "Offline edit", seafgen.Put("offline.txt", []byte("from the laptop")))
	must(t, err)
	_, err = lib.Merge(side)
	must(t, err)
	testenv.Commit(t, lib, "Changed big.bin", seafgen.Put("big.bin", append(testenv.RandomBytes(20000, 1)[:12000], testenv.RandomBytes(9000, 2)...)))
	return lib
}

func checkTrees(t *testing.T, env *testenv.Env, lib *seafgen.Library) {
	t.Helper()
	for _, c := range lib.Commits() {
		want, err := lib.Tree(c)
		must(t, err)
		if got := env.TreeText(lib.ID, lib.StoreID, c); got != seafgen.FormatTree(want) {
			t.Errorf("tree of %s:\ngot:\n%s\nwant:\n%s", c, got, seafgen.FormatTree(want))
		}
	}
}

func TestHistoryEncryptedAndVirtualLibraries(t *testing.T) {
	bothSources(t, testHistoryEncryptedAndVirtualLibraries)
}

func testHistoryEncryptedAndVirtualLibraries(t *testing.T, env *testenv.Env, g *seafgen.Generator) {
	lib := richLibrary(t, g)
	enc, err := g.NewLibrary(seafgen.LibraryOptions{Name: "Secret", Owner: "bob@example.com", Encrypted: true, Password: "pw"})
	must(t, err)
	testenv.Commit(t, enc, "Added", seafgen.Put("plan.txt", testenv.RandomBytes(10000, 3)))
	virt, err := g.NewVirtualLibrary(lib, "folder", "Folder")
	must(t, err)
	env.Publish(lib, enc, virt)
	eng := env.Engine(false)

	// The virtual library first: its fs objects and blocks go under the origin's store.
	for _, l := range []*seafgen.Library{virt, lib, enc} {
		res := testenv.SyncOK(t, eng, l.ID)
		if res.Head != l.Head {
			t.Fatalf("%s: head %s, want %s", l.Name, res.Head, l.Head)
		}
		env.CompareWithPrimary(l.ID, l.StoreID, l.Head)
		if got := env.BackupHead(l.ID); got != l.Head {
			t.Fatalf("%s: backup db head %q", l.Name, got)
		}
	}
	checkTrees(t, env, lib)
	checkTrees(t, env, virt)
	if _, err := os.Stat(filepath.Join(env.BackupDir, "storage", "commits", virt.ID)); err != nil {
		t.Fatalf("virtual library's commits not under its own id: %v", err)
	}
	if _, err := os.Stat(filepath.Join(env.BackupDir, "storage", "fs", virt.ID)); !os.IsNotExist(err) {
		t.Fatalf("virtual library has fs objects under its own id: %v", err)
	}
	rec, _, _ := env.State.Load(virt.ID)
	if rec.StoreID != lib.ID || rec.Owner != "alice@example.com" {
		t.Fatalf("virtual library's state: %+v", rec)
	}
}

// A one-file change copies one commit, the changed file and its dirs up to the root,
// and the one new block: nothing else is looked at.
func TestOneFileChange(t *testing.T) { bothSources(t, testOneFileChange) }

func testOneFileChange(t *testing.T, env *testenv.Env, g *seafgen.Generator) {
	lib := richLibrary(t, g)
	env.Publish(lib)
	eng := env.Engine(false)
	testenv.SyncOK(t, eng, lib.ID)

	testenv.Commit(t, lib, "Edited deep.txt", seafgen.Put("folder/sub/deep.txt", []byte("deeper")))
	env.Publish(lib)
	res := testenv.SyncOK(t, eng, lib.ID)
	if res.Commits != 1 || res.FSObjects != 4 || res.Blocks != 1 {
		t.Fatalf("one-file change copied %d commits, %d fs objects, %d blocks; want 1, 4 (root, folder, sub, file), 1", res.Commits, res.FSObjects, res.Blocks)
	}
	if env.FileServer != nil && (env.FileServer.Requests("pack-fs") == 0 || env.FileServer.Requests("block") == 0) {
		t.Fatal("the HTTP scenario did not go through the file server")
	}
	env.CompareWithPrimary(lib.ID, lib.StoreID, lib.Head)
	checkTrees(t, env, lib)
}

func TestLibraryDeletedOnPrimary(t *testing.T) { bothSources(t, testLibraryDeletedOnPrimary) }

func testLibraryDeletedOnPrimary(t *testing.T, env *testenv.Env, g *seafgen.Generator) {
	lib := richLibrary(t, g)
	env.Publish(lib)
	eng := env.Engine(false)
	testenv.SyncOK(t, eng, lib.ID)
	head := lib.Head

	must(t, seafgen.DeleteRows(context.Background(), env.PrimaryDB, lib.ID))
	res := testenv.SyncOK(t, eng, lib.ID)
	if !res.Deleted {
		t.Fatalf("%+v, want deleted", res)
	}
	if got := env.BackupHead(lib.ID); got != "" {
		t.Fatalf("backup db still has head %s; it should mirror the primary", got)
	}
	rec, _, _ := env.State.Load(lib.ID)
	if rec.Deleted == nil || rec.Head != head {
		t.Fatalf("state %+v", rec)
	}
	env.CompareWithPrimary(lib.ID, lib.StoreID, head) // every object kept
	checkTrees(t, env, lib)
	first := *rec.Deleted
	testenv.SyncOK(t, eng, lib.ID)
	if rec, _, _ := env.State.Load(lib.ID); !rec.Deleted.Equal(first) {
		t.Fatal("deletion time moved on a second sync")
	}

	// Restored from the trash on the primary: it is backed up again.
	env.Publish(lib)
	testenv.SyncOK(t, eng, lib.ID)
	if rec, _, _ := env.State.Load(lib.ID); rec.Deleted != nil || env.BackupHead(lib.ID) != head {
		t.Fatalf("restored library: %+v", rec)
	}
}

func TestHeadMovedBackwardsOrElsewhere(t *testing.T) {
	bothSources(t, testHeadMovedBackwardsOrElsewhere)
}

func testHeadMovedBackwardsOrElsewhere(t *testing.T, env *testenv.Env, g *seafgen.Generator) {
	lib, err := g.NewLibrary(seafgen.LibraryOptions{Name: "Moves"})
	must(t, err)
	created := lib.Head
	c1 := testenv.Commit(t, lib, "one", seafgen.Put("f.txt", []byte("1")))
	c2 := testenv.Commit(t, lib, "two", seafgen.Put("f.txt", []byte("2")))
	env.Publish(lib)
	eng := env.Engine(false)
	testenv.SyncOK(t, eng, lib.ID)

	// A revert: the primary's head goes back to c1.
	lib.SetHead(c1)
	env.Publish(lib)
	res := testenv.SyncOK(t, eng, lib.ID)
	if res.Head != c1 || !res.OldHeadKept {
		t.Fatalf("after revert: %+v", res)
	}
	rec, _, _ := env.State.Load(lib.ID)
	if len(rec.OldHeads) != 1 || rec.OldHeads[0].Head != c2 || env.BackupHead(lib.ID) != c1 {
		t.Fatalf("state after revert: %+v", rec)
	}
	env.CompareWithPrimary(lib.ID, lib.StoreID, c2) // the old head is still whole

	// A repair points the head at a commit unrelated to c1.
	other, err := lib.CommitOn(created, "repaired", seafgen.Put("g.txt", []byte("g")))
	must(t, err)
	lib.SetHead(other)
	env.Publish(lib)
	res = testenv.SyncOK(t, eng, lib.ID)
	rec, _, _ = env.State.Load(lib.ID)
	if res.Head != other || len(rec.OldHeads) != 2 || rec.OldHeads[1].Head != c1 {
		t.Fatalf("after repair: %+v %+v", res, rec)
	}
	env.CompareWithPrimary(lib.ID, lib.StoreID, other)

	// Forward again: an ordinary commit on top is no old head.
	testenv.Commit(t, lib, "three", seafgen.Put("h.txt", []byte("h")))
	env.Publish(lib)
	if res := testenv.SyncOK(t, eng, lib.ID); res.OldHeadKept {
		t.Fatalf("forward sync recorded an old head: %+v", res)
	}
}

func TestTruncatedHistoryIsNotAnError(t *testing.T) { bothSources(t, testTruncatedHistoryIsNotAnError) }

func testTruncatedHistoryIsNotAnError(t *testing.T, env *testenv.Env, g *seafgen.Generator) {
	lib, err := g.NewLibrary(seafgen.LibraryOptions{Name: "Limited"})
	must(t, err)
	testenv.Commit(t, lib, "old", seafgen.Put("old.bin", testenv.RandomBytes(9000, 5)), seafgen.Put("keep.txt", []byte("k")))
	// Older than the limit but the parent of the commit at it: the primary's GC keeps
	// its tree, so the backup must hold it whole.
	firstOlder := testenv.Commit(t, lib, "older edit", seafgen.Put("old.bin", testenv.RandomBytes(9000, 6)))
	keep := testenv.Commit(t, lib, "new", seafgen.Delete("old.bin"), seafgen.Put("new.txt", []byte("n")))
	testenv.Commit(t, lib, "newest", seafgen.Put("new.txt", []byte("nn")))
	must(t, lib.TruncateBefore(keep))
	env.Publish(lib)
	eng := env.Engine(false)
	res := testenv.SyncOK(t, eng, lib.ID)
	if res.Head != lib.Head || res.Truncated == 0 || len(res.Holes) != 0 {
		t.Fatalf("%+v, want synced with truncated history and no holes", res)
	}
	rec, _, _ := env.State.Load(lib.ID)
	if len(rec.Truncated) != res.Truncated || rec.LastError != "" {
		t.Fatalf("state %+v", rec)
	}
	for _, c := range []string{firstOlder, keep, lib.Head} {
		want, err := lib.Tree(c)
		must(t, err)
		if got := env.TreeText(lib.ID, lib.StoreID, c); got != seafgen.FormatTree(want) {
			t.Fatalf("tree of %s:\n%s\nwant\n%s", c, got, seafgen.FormatTree(want))
		}
	}
	// Nothing more to do next time, truncation or not.
	if res := testenv.SyncOK(t, eng, lib.ID); !res.UpToDate {
		t.Fatalf("second sync: %+v", res)
	}
}

// A corrupt block fails the library with an error naming it; --force backs up the rest
// and records the hole; once the primary is repaired, a plain sync fills the hole.
func TestCorruptBlockOnPrimary(t *testing.T) { bothSources(t, testCorruptBlockOnPrimary) }

func testCorruptBlockOnPrimary(t *testing.T, env *testenv.Env, g *seafgen.Generator) {
	lib, err := g.NewLibrary(seafgen.LibraryOptions{Name: "Damaged"})
	must(t, err)
	testenv.Commit(t, lib, "files", seafgen.Put("big.bin", testenv.RandomBytes(30000, 7)), seafgen.Put("ok.txt", []byte("fine")))
	env.Publish(lib)
	_, blocks := env.PrimaryFile(lib, "big.bin")
	bad := testenv.ObjectPath(env.PrimaryDir, object.KindBlock, lib.StoreID, blocks[1])
	good, err := os.ReadFile(bad)
	must(t, err)
	must(t, os.WriteFile(bad, append([]byte{good[0] ^ 0xff}, good[1:]...), 0o644))

	_, err = env.Engine(false).Sync(context.Background(), lib.ID)
	if err == nil {
		t.Fatal("sync of a corrupt library succeeded")
	}
	for _, want := range []string{lib.ID, "block " + blocks[1], `"/big.bin"`, "--force"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
	if !object.IsInvalid(err) {
		t.Errorf("error does not say the object was invalid: %v", err)
	}
	rec, _, _ := env.State.Load(lib.ID)
	if rec.LastError == "" || rec.Head != "" || env.BackupHead(lib.ID) != "" {
		t.Fatalf("failed sync moved metadata or recorded no error: %+v", rec)
	}
	if _, err := os.Stat(testenv.ObjectPath(env.BackupDir, object.KindBlock, lib.StoreID, blocks[1])); !os.IsNotExist(err) {
		t.Fatal("corrupt block written to the backup")
	}

	res, err := env.Engine(true).Sync(context.Background(), lib.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Holes) != 1 || res.Holes[0].ID != blocks[1] || res.Holes[0].Path != "/big.bin" || res.Head != lib.Head {
		t.Fatalf("--force: %+v", res)
	}
	if env.BackupHead(lib.ID) != lib.Head {
		t.Fatal("--force did not move the backup head")
	}
	// A plain sync meanwhile keeps the known hole without failing.
	if _, err := env.Engine(false).Sync(context.Background(), lib.ID); err != nil {
		t.Fatalf("plain sync with a known hole: %v", err)
	}

	must(t, os.WriteFile(bad, good, 0o644)) // the primary is repaired
	res = testenv.SyncOK(t, env.Engine(false), lib.ID)
	if len(res.Holes) != 0 {
		t.Fatalf("hole not filled: %+v", res.Holes)
	}
	env.CompareWithPrimary(lib.ID, lib.StoreID, lib.Head)
	checkTrees(t, env, lib)
}

func TestMissingFSObjectOnPrimary(t *testing.T) { bothSources(t, testMissingFSObjectOnPrimary) }

func testMissingFSObjectOnPrimary(t *testing.T, env *testenv.Env, g *seafgen.Generator) {
	lib, err := g.NewLibrary(seafgen.LibraryOptions{Name: "Missing"})
	must(t, err)
	testenv.Commit(t, lib, "files", seafgen.Put("a.txt", []byte("aaaa")), seafgen.Put("b.txt", []byte("bbbb")))
	env.Publish(lib)
	fileID, _ := env.PrimaryFile(lib, "a.txt")
	p := testenv.ObjectPath(env.PrimaryDir, object.KindFS, lib.StoreID, fileID)
	saved, err := os.ReadFile(p)
	must(t, err)
	must(t, os.Remove(p))

	_, err = env.Engine(false).Sync(context.Background(), lib.ID)
	if err == nil || !strings.Contains(err.Error(), "fs object "+fileID) || !strings.Contains(err.Error(), `"/a.txt"`) {
		t.Fatalf("got %v", err)
	}
	res, err := env.Engine(true).Sync(context.Background(), lib.ID)
	if err != nil || len(res.Holes) != 1 {
		t.Fatalf("--force: %+v %v", res, err)
	}
	root, _ := lib.RootID(lib.Head)
	if _, err := os.Stat(testenv.ObjectPath(env.BackupDir, object.KindFS, lib.StoreID, root)); !os.IsNotExist(err) {
		t.Fatal("a dir above a hole was written: present would no longer mean complete")
	}
	must(t, os.WriteFile(p, saved, 0o644))
	if res := testenv.SyncOK(t, env.Engine(false), lib.ID); len(res.Holes) != 0 {
		t.Fatalf("hole not filled: %+v", res)
	}
	env.CompareWithPrimary(lib.ID, lib.StoreID, lib.Head)
}

func TestVersion0Refused(t *testing.T) { bothSources(t, testVersion0Refused) }

func testVersion0Refused(t *testing.T, env *testenv.Env, g *seafgen.Generator) {
	lib, err := g.NewLibrary(seafgen.LibraryOptions{Name: "Ancient"})
	must(t, err)
	_, err = lib.CommitVersion0("old format")
	must(t, err)
	env.Publish(lib)
	_, err = env.Engine(true).Sync(context.Background(), lib.ID)
	if !errors.Is(err, object.ErrVersion0) || !strings.Contains(err.Error(), lib.ID) {
		t.Fatalf("got %v", err)
	}
}

// After an attempt died (its dirty marker left behind), presence is not trusted: a
// backup object left empty by the crash is found and fetched again.
func TestRecheckAfterDeadAttempt(t *testing.T) { bothSources(t, testRecheckAfterDeadAttempt) }

func testRecheckAfterDeadAttempt(t *testing.T, env *testenv.Env, g *seafgen.Generator) {
	lib := richLibrary(t, g)
	env.Publish(lib)
	eng := env.Engine(false)
	testenv.SyncOK(t, eng, lib.ID)

	_, blocks := env.PrimaryFile(lib, "big.bin")
	lost := testenv.ObjectPath(env.BackupDir, object.KindBlock, lib.StoreID, blocks[0])
	must(t, os.Truncate(lost, 0)) // what a power cut can leave of an unsynced write
	must(t, env.State.MarkDirty(lib.StoreID, lib.ID))

	testenv.Commit(t, lib, "more", seafgen.Put("more.txt", []byte("more")))
	env.Publish(lib)
	res := testenv.SyncOK(t, eng, lib.ID)
	if !res.Rechecked {
		t.Fatalf("%+v, want a re-check", res)
	}
	env.CompareWithPrimary(lib.ID, lib.StoreID, lib.Head)
	if dead, _ := env.State.DeadDirty(lib.StoreID, lib.ID, time.Time{}); dead {
		t.Fatal("marker left after a successful sync")
	}
	got, _ := os.ReadFile(lost)
	want, _ := os.ReadFile(testenv.ObjectPath(env.PrimaryDir, object.KindBlock, lib.StoreID, blocks[0]))
	if !bytes.Equal(got, want) {
		t.Fatal("damaged block not repaired")
	}
}

var _ = state.ErrLocked

func TestHoleSharedByCommits(t *testing.T) { bothSources(t, testHoleSharedByCommits) }

// A corrupt block that several commits share: --force leaves every one of their trees
// to retry, and a repaired primary fills them all.
func testHoleSharedByCommits(t *testing.T, env *testenv.Env, g *seafgen.Generator) {
	lib, err := g.NewLibrary(seafgen.LibraryOptions{Name: "Shared hole"})
	must(t, err)
	testenv.Commit(t, lib, "one", seafgen.Put("big.bin", testenv.RandomBytes(30000, 21)))
	testenv.Commit(t, lib, "two", seafgen.Put("other.txt", []byte("other")))
	testenv.Commit(t, lib, "three", seafgen.Put("dir/third.txt", []byte("third")))
	env.Publish(lib)
	_, blocks := env.PrimaryFile(lib, "big.bin")
	bad := testenv.ObjectPath(env.PrimaryDir, object.KindBlock, lib.StoreID, blocks[2])
	good, err := os.ReadFile(bad)
	must(t, err)
	must(t, os.WriteFile(bad, append([]byte{good[0] ^ 1}, good[1:]...), 0o644))

	res, err := env.Engine(true).Sync(context.Background(), lib.ID)
	must(t, err)
	commitsWithHoles := map[string]bool{}
	for _, h := range res.Holes {
		commitsWithHoles[h.Commit] = true
	}
	if len(commitsWithHoles) != 3 {
		t.Fatalf("holes %+v: want all three commits that hold big.bin to be retried", res.Holes)
	}
	must(t, os.WriteFile(bad, good, 0o644))
	if res := testenv.SyncOK(t, env.Engine(false), lib.ID); len(res.Holes) != 0 {
		t.Fatalf("holes left: %+v", res.Holes)
	}
	env.CompareWithPrimary(lib.ID, lib.StoreID, lib.Head)
	checkTrees(t, env, lib)
}
