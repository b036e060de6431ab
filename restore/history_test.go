package restore_test

import (
	"context"
	"os"
	"slices"
	"testing"

	"seafbak/internal/seafgen"
	"seafbak/internal/testenv"
	"seafbak/restore"
	"seafbak/sync/object"
)

func historyIDs(h []restore.HistoryEntry) []string {
	var ids []string
	for _, e := range h {
		ids = append(ids, e.ID)
	}
	return ids
}

// History of a library with a merge and an old head (the primary's head moved to a
// repaired commit): every commit of both, newest first, from the backup alone, also once
// the library is deleted on the primary; a commit missing from the backup shows as such.
func TestHistoryMergeAndOldHead(t *testing.T) {
	env, g := primaryWithGenerator(t)
	lib, err := g.NewLibrary(seafgen.LibraryOptions{Name: "History", Owner: "carol@example.com"})
	must(t, err)
	created := lib.Head
	c1 := testenv.Commit(t, lib, "one", seafgen.Put("f.txt", []byte("1")))
	c2 := testenv.Commit(t, lib, "two", seafgen.Put("f.txt", []byte("2")))
	side, err := lib.CommitOn(c1, "side", seafgen.Put("s.txt", []byte("s")))
	must(t, err)
	merge, err := lib.Merge(side)
	must(t, err)
	env.Publish(lib)
	testenv.SyncOK(t, env.Engine(false), lib.ID)

	repaired, err := lib.CommitOn(c1, "repaired", seafgen.Put("r.txt", []byte("r")))
	must(t, err)
	lib.SetHead(repaired)
	env.Publish(lib)
	if res := testenv.SyncOK(t, env.Engine(false), lib.ID); !res.OldHeadKept {
		t.Fatalf("old head not kept: %+v", res)
	}
	ctx := context.Background()
	rl := restore.Library{RepoID: lib.ID, StoreID: lib.StoreID}

	check := func() {
		t.Helper()
		rec, _, err := env.State.Load(lib.ID)
		must(t, err)
		heads := restore.StateHeads(rec)
		if !slices.Equal(heads, []string{repaired, merge}) {
			t.Fatalf("state heads %v", heads)
		}
		h, err := restore.History(ctx, env.Store, rl, heads)
		must(t, err)
		want := []string{repaired, merge, side, c2, c1, created}
		if got := historyIDs(h); !slices.Equal(got, want) {
			t.Fatalf("history %v, want %v", got, want)
		}
		for _, e := range h {
			ct, err := lib.Ctime(e.ID)
			must(t, err)
			if !e.Complete || e.Error != "" || e.Time.Unix() != ct || e.Author != "carol@example.com" {
				t.Errorf("entry %+v", e)
			}
			if e.Head != (e.ID == repaired || e.ID == merge) {
				t.Errorf("head flag of %s: %v", e.ID, e.Head)
			}
		}
		if m := h[1]; !slices.Equal(m.Parents, []string{c2, side}) || m.Description != seafgen.MergeDesc {
			t.Errorf("merge entry %+v", m)
		}
		if h[0].Description != "repaired" || !slices.Equal(h[0].Parents, []string{c1}) || len(h[5].Parents) != 0 {
			t.Errorf("entries %+v %+v", h[0], h[5])
		}
	}
	check()

	// Deleted on the primary: the history is still there, read from the backup alone.
	must(t, seafgen.DeleteRows(ctx, env.PrimaryDB, lib.ID))
	if res := testenv.SyncOK(t, env.Engine(false), lib.ID); !res.Deleted {
		t.Fatalf("not deleted: %+v", res)
	}
	check()

	// A commit missing from the backup: listed with its error under its child, and the
	// history beyond it still reached through the other parent.
	must(t, os.Remove(testenv.ObjectPath(env.BackupDir, object.KindCommit, lib.ID, side)))
	h, err := restore.History(ctx, env.Store, rl, []string{merge})
	must(t, err)
	if got := historyIDs(h); !slices.Equal(got, []string{merge, side, c2, c1, created}) {
		t.Fatalf("history with a missing commit: %v", got)
	}
	if h[1].Error == "" || h[1].Complete || !h[1].Time.IsZero() {
		t.Fatalf("missing commit entry %+v", h[1])
	}
}

// Commits with the same ctime come in DAG order: the real library's merge and its second
// parent were made in the same second, and the merge is the newer.
func TestHistoryRealLibrary(t *testing.T) {
	env := testenv.New(t, srv)
	env.LoadRealLibrary()
	testenv.SyncOK(t, env.Engine(false), testenv.RealLibraryID)
	rec, _, err := env.State.Load(testenv.RealLibraryID)
	must(t, err)
	h, err := restore.History(context.Background(), env.Store, restore.LibraryOf(rec), restore.StateHeads(rec))
	must(t, err)
	want := []string{
		"5715208e10e33de4ac89cd441c52d948df77125b",
		"d32f7ff1c30b4724f3ccaa86a30dab6d66bbb1c7",
		"7106461e7c46e455de8c3f27bcd98dc21a824fc1",
		"7407786e9f8c103e1cfd253ea4a9f238d4aa524f",
		"360f0b8612f157102c60289830093e35b43cd16e",
		"cb3887bc7bcfa00494a578f087ab90c1c3491bca",
		"5b0cb6d31cee94c689520373762f2a71c00fb837",
	}
	if got := historyIDs(h); !slices.Equal(got, want) {
		t.Fatalf("history %v\nwant %v", got, want)
	}
	if h[1].Author != "bob@example.com" || h[1].Description != "Auto merge by system" || len(h[1].Parents) != 2 || h[6].Description != "Created library" {
		t.Fatalf("entries %+v %+v", h[1], h[6])
	}
}
