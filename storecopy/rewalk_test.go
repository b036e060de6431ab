package storecopy_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"seafbak/internal/seafgen"
	"seafbak/internal/testenv"
	"seafbak/restore"
	"seafbak/state"
	"seafbak/storecopy"
	seafsync "seafbak/sync"
	"seafbak/sync/object"
	"seafbak/sync/primary"
	"seafbak/sync/store"
)

// A block whose id equals an fs object's id (any user can upload a file whose bytes are
// a file object's JSON) is its own object to --recheck: settling one did not count the
// other as settled, and the destination lacked the block while the copy succeeded.
func TestRecheckTellsABlockFromAnFSObjectOfTheSameID(t *testing.T) {
	root, pdir, lib, src, st, eng := oneLibrary(t, 0)
	testenv.Commit(t, lib, "one", seafgen.Put("x.txt", []byte("hello\n")))
	keys := object.Keys{RepoID: lib.ID, StoreID: lib.StoreID}
	pfs, err := store.OpenFS(pdir)
	must(t, err)
	c, err := restore.Commit(context.Background(), pfs, keys, lib.Head)
	must(t, err)
	var fid string
	must(t, restore.Walk(context.Background(), pfs, keys, c.RootID, func(e restore.Entry) error {
		if e.Path == "x.txt" {
			fid = e.FileID
		}
		return nil
	}))
	raw, err := pfs.Get(context.Background(), object.KindFS, lib.StoreID, fid)
	must(t, err)
	plain, err := object.Inflate(raw, 1<<20)
	must(t, err)
	testenv.Commit(t, lib, "two", seafgen.Put("copy.json", plain)) // its block id == fid
	if _, err := eng.Sync(context.Background(), lib.ID); err != nil {
		t.Fatal(err)
	}
	if has, _ := src.Has(context.Background(), object.KindBlock, lib.StoreID, fid); !has {
		t.Fatal("setup: source lacks the colliding block")
	}
	dst, err := store.NewFS(filepath.Join(root, "dst"), store.Batch)
	must(t, err)
	_, err = storecopy.Copy(context.Background(), storecopy.Options{From: src, To: dst, State: st, Parallel: 4, Recheck: true})
	must(t, err)
	if has, err := dst.Has(context.Background(), object.KindBlock, lib.StoreID, fid); !has || err != nil {
		t.Errorf("the --recheck copy lacks block %s (copy.json's only block): %v", fid, err)
	}
	if has, err := dst.Has(context.Background(), object.KindFS, lib.StoreID, fid); !has || err != nil {
		t.Errorf("the --recheck copy lacks fs object %s (x.txt's): %v", fid, err)
	}
	rep, err := restore.Verify(context.Background(), restore.VerifyOptions{Store: dst, State: st})
	must(t, err)
	if !rep.OK() {
		t.Errorf("verify of the copy: %+v", rep.Libraries)
	}
}

// A commit copied with a hole is walked again by the next copy, and so are its parents:
// one whose hole the source has filled since (the primary repaired, the library synced
// again) reaches the destination. The walk stopped at the first such commit, so its
// parent's tree never came, and verify of the destination could not tell.
func TestCopyWalksTheParentsOfAHoleCommit(t *testing.T) {
	ctx := context.Background()
	root, pdir, lib, src, st, eng := oneLibrary(t, 4096)
	eng.Force = true
	damage := func(name string) func() {
		bl := fileBlocks(t, pdir, lib, name)
		p := testenv.ObjectPath(pdir, object.KindBlock, lib.StoreID, bl[1])
		good, err := os.ReadFile(p)
		must(t, err)
		must(t, os.WriteFile(p, append([]byte{good[0] ^ 0xff}, good[1:]...), 0o644))
		return func() { must(t, os.WriteFile(p, good, 0o644)) }
	}
	c1 := testenv.Commit(t, lib, "one", seafgen.Put("a.bin", testenv.RandomBytes(9000, 1)))
	fix1 := damage("a.bin")
	testenv.Commit(t, lib, "two", seafgen.Delete("a.bin"), seafgen.Put("b.bin", testenv.RandomBytes(9000, 2)))
	damage("b.bin")
	_, err := eng.Sync(ctx, lib.ID)
	must(t, err)
	if rec, _, _ := st.Load(lib.ID); len(rec.Holes) != 2 {
		t.Fatalf("setup: holes after the forced sync: %+v", rec.Holes)
	}

	dst, err := store.NewFS(filepath.Join(root, "dst"), store.Batch)
	must(t, err)
	_, err = storecopy.Copy(ctx, storecopy.Options{From: src, To: dst, State: st})
	must(t, err)

	fix1() // the primary is repaired for a.bin only
	_, err = eng.Sync(ctx, lib.ID)
	must(t, err)
	if rec, _, _ := st.Load(lib.ID); len(rec.Holes) != 1 {
		t.Fatalf("setup: holes after the repair of one: %+v", rec.Holes)
	}

	_, err = storecopy.Copy(ctx, storecopy.Options{From: src, To: dst, State: st})
	must(t, err)
	c, err := restore.Commit(ctx, src, object.Keys{RepoID: lib.ID, StoreID: lib.StoreID}, c1)
	must(t, err)
	if has, err := src.Has(ctx, object.KindFS, lib.StoreID, c.RootID); !has || err != nil {
		t.Fatalf("setup: the repaired commit's root is not in the source: %v %v", has, err)
	}
	if has, err := dst.Has(ctx, object.KindFS, lib.StoreID, c.RootID); !has || err != nil {
		t.Errorf("the repaired commit's tree did not reach the destination: %v %v", has, err)
	}
}

// oneLibrary is a primary data dir holding one new library (blocks of blockSize bytes,
// or seafgen's default for 0), a backup store and state, and an engine between them.
func oneLibrary(t *testing.T, blockSize int) (root, pdir string, lib *seafgen.Library, src *store.FS, st *state.Dir, eng *seafsync.Engine) {
	root = t.TempDir()
	pdir = filepath.Join(root, "primary")
	must(t, os.MkdirAll(filepath.Join(pdir, "storage"), 0o755))
	g := seafgen.New(pdir)
	if blockSize > 0 {
		g.BlockSize = blockSize
	}
	src, err := store.NewFS(filepath.Join(root, "backup"), store.Batch)
	must(t, err)
	st, err = state.Open(filepath.Join(root, "state"))
	must(t, err)
	objs, err := primary.NewDir(pdir)
	must(t, err)
	lib, err = g.NewLibrary(seafgen.LibraryOptions{Name: "L", Owner: "a@example.com"})
	must(t, err)
	eng = &seafsync.Engine{Source: primary.Combine(catalog{lib.ID: lib}, objs), Store: src, State: st, Parallel: 4}
	return root, pdir, lib, src, st, eng
}
