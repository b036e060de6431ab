package sync_test

import (
	"testing"

	"seafbak/internal/seafgen"
	"seafbak/internal/testenv"
)

// A first backup holds only the walk's frontier, not every object of the tree: the most
// fs objects held at once stays under a bound set by the batch sizes, however many files
// the library has (issue 10: every fetched object used to wait in memory for the end).
func TestFirstBackupHoldsOnlyTheFrontier(t *testing.T) {
	const files = 8_000
	env := testenv.New(t, srv)
	lib, err := seafgen.New(env.PrimaryDir).NewLibrary(seafgen.LibraryOptions{Name: "wide"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lib.CommitBulk("bulk", files, files*64, 5); err != nil {
		t.Fatal(err)
	}
	env.Publish(lib)
	res := testenv.SyncOK(t, env.Engine(false), lib.ID)
	if res.Blocks != files || res.FSObjects < files {
		t.Fatalf("result %+v, want %d blocks and at least as many fs objects", res, files)
	}
	// One listing step fetches about 1000 objects; up to 512 jobs run behind it; the
	// dirs above them are a few hundred at this fan-out.
	if res.Frontier == 0 || res.Frontier > 2500 {
		t.Fatalf("the walk held up to %d fs objects at once for %d files, want at most 2500", res.Frontier, files)
	}
	t.Logf("frontier %d fs objects for %d files", res.Frontier, files)
	env.CompareWithPrimary(lib.ID, lib.ID, lib.Head)
}
