package storecopy_test

import (
	"context"
	"os"
	"testing"

	"seafbak/internal/seafgen"
	"seafbak/internal/testenv"
	"seafbak/restore"
	"seafbak/storecopy"
	"seafbak/sync/object"
	"seafbak/sync/store"
)

// A library with a hole recorded (by path) in an old commit, whose later head is whole:
// the source store then loses the head's root dir (disk damage, an object deleted). The
// state does not record that loss, so the copy fails the library, and verify names the
// root. Both took it as expected, "above" the old hole, and the copy exited 0 with the
// head copied without its tree (found by review).
func TestCopyFailsAHeadWhoseRootIsLostBesideAnOldHole(t *testing.T) {
	b := newBackup(t)
	ctx := context.Background()
	holey := findLib(t, b, "Holey")
	head := testenv.Commit(t, holey, "drop the broken file", seafgen.Delete("d/big.bin"), seafgen.Put("new.txt", []byte("new")))
	if _, err := b.engine(false).Sync(ctx, holey.ID); err != nil {
		t.Fatal(err)
	}
	rec, _, err := b.state.Load(holey.ID)
	must(t, err)
	if rec.Head != head || len(rec.Holes) == 0 {
		t.Fatalf("setup: head %s (want %s), holes %+v", rec.Head, head, rec.Holes)
	}
	for _, h := range rec.Holes {
		t.Logf("hole recorded: kind %s id %s path %q commit %s", h.Kind, h.ID, h.Path, h.Commit)
		if h.Commit == head {
			t.Fatalf("setup: the head has a hole recorded against it")
		}
	}
	keys := object.Keys{RepoID: holey.ID, StoreID: holey.StoreID}
	c, err := restore.Commit(ctx, b.fs, keys, head)
	must(t, err)
	// The source loses the head's root dir: nothing in the state says so.
	must(t, os.Remove(testenv.ObjectPath(b.dir, object.KindFS, holey.StoreID, c.RootID)))

	dst, err := store.NewFS(t.TempDir(), store.Batch)
	must(t, err)
	res, err := storecopy.Copy(ctx, storecopy.Options{From: b.fs, To: dst, State: b.state, Libraries: []string{holey.ID}})
	t.Logf("copy: err %v, result %+v", err, res.Libraries)
	if has, _ := dst.Has(ctx, object.KindCommit, holey.ID, head); has {
		if rhas, _ := dst.Has(ctx, object.KindFS, holey.StoreID, c.RootID); !rhas {
			t.Errorf("the head commit %s was copied without its root %s", head, c.RootID)
		}
	}
	if err == nil {
		t.Errorf("copy reported success although the head's root is missing from the source and the state does not explain it")
	}
	srep, err := restore.Verify(ctx, restore.VerifyOptions{Store: b.fs, State: b.state, Libraries: []string{holey.ID}})
	must(t, err)
	named := false
	for _, l := range srep.Libraries {
		for _, p := range l.Problems {
			named = named || p.ID == c.RootID && p.Reason == ""
		}
	}
	if srep.OK() || !named {
		t.Errorf("verify of the source: OK=%v, the lost root not named as unexpected: %+v", srep.OK(), srep.Libraries)
	}
}
