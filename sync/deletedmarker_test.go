package sync_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"seafbak/internal/seafgen"
	"seafbak/internal/testenv"
)

// A virtual library's attempt died (its marker left on the origin's store), then it was
// deleted on the primary (the folder unshared): nothing syncs it again, so its own
// re-check, which alone cleared the marker, never came and the origin re-checked its
// whole history at every sync, for good (found by two reviews). Now its marker binds
// each library of the store until that one has re-checked once, and a scan removes it
// once all have.
func TestDeadMarkerOfADeletedLibraryBindsOnce(t *testing.T) {
	env := testenv.New(t, srv)
	g := seafgen.New(env.PrimaryDir)
	origin, err := g.NewLibrary(seafgen.LibraryOptions{Name: "Origin", Owner: "o@example.com"})
	must(t, err)
	testenv.Commit(t, origin, "files", seafgen.Put("dir/a.txt", []byte("a")))
	virt, err := g.NewVirtualLibrary(origin, "dir", "Dir")
	must(t, err)
	env.Publish(origin, virt)
	eng := env.Engine(false)
	testenv.SyncOK(t, eng, origin.ID)
	testenv.SyncOK(t, eng, virt.ID)
	// The virtual library's next attempt dies with the machine, leaving its marker.
	marker := filepath.Join(env.StateDir, "dirty", virt.StoreID+"."+virt.ID)
	must(t, os.WriteFile(marker, []byte("x\n"), 0o640))
	// Unshared: gone from the primary, and marked deleted.
	must(t, seafgen.DeleteRows(context.Background(), env.PrimaryDB, virt.ID))
	if res, err := eng.MarkDeleted(context.Background(), virt.ID); err != nil || !res.Deleted {
		t.Fatalf("mark deleted: %+v %v", res, err)
	}
	for i, want := range []bool{true, false, false} {
		testenv.Commit(t, origin, "change", seafgen.Put("b.txt", []byte{byte(i)}))
		env.Publish(origin)
		if res := testenv.SyncOK(t, eng, origin.ID); res.Rechecked != want {
			t.Fatalf("origin's sync %d after the deletion: rechecked %v, want %v", i, res.Rechecked, want)
		}
	}
	env.CompareWithPrimary(origin.ID, origin.StoreID, origin.Head)
	recs, _, err := env.State.All()
	must(t, err)
	must(t, env.State.SweepDeletedMarkers(recs))
	if ents, _ := os.ReadDir(filepath.Join(env.StateDir, "dirty")); len(ents) != 0 {
		t.Errorf("markers left once every library of the store re-checked: %v", ents)
	}
}
