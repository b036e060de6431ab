package sync_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"seafbak/internal/seafgen"
	"seafbak/internal/testenv"
	"seafbak/sync/object"
	"seafbak/sync/store"
)

// presenceCounter counts presence questions: on S3 each is a request.
type presenceCounter struct {
	store.Store
	has atomic.Int64
}

func (s *presenceCounter) Has(ctx context.Context, kind object.Kind, storeID, id string) (bool, error) {
	s.has.Add(1)
	return s.Store.Has(ctx, kind, storeID, id)
}

// A change deep in a wide library is walked as a diff against the backed-up head's
// tree: entries that tree holds are whole in the backup without a presence question
// each, so a one-file change asks about the changed path, not about every entry of
// every dir on it. Each further change (a new subdir, a rename, a commit chain) still
// ends byte for byte like the primary.
func TestChangeWalksAsDiffAgainstBackedUpTree(t *testing.T) {
	env := testenv.New(t, srv)
	g := seafgen.New(env.PrimaryDir)
	lib, err := g.NewLibrary(seafgen.LibraryOptions{Name: "Wide", Owner: "u@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	var changes []seafgen.Change
	for i := range 300 {
		changes = append(changes, seafgen.Put(fmt.Sprintf("docs/%03d.txt", i), []byte(fmt.Sprint("file ", i))))
		changes = append(changes, seafgen.Put(fmt.Sprintf("docs/deep/er/%03d.txt", i), []byte(fmt.Sprint("deep ", i))))
	}
	testenv.Commit(t, lib, "many", changes...)
	env.Publish(lib)
	counting := &presenceCounter{Store: env.Store}
	eng := env.Engine(false)
	eng.Store = counting
	testenv.SyncOK(t, eng, lib.ID)

	for _, step := range []struct {
		what    string
		changes []seafgen.Change
		commits int // extra commits of the same kind before the synced one
		maxHas  int64
	}{
		// Each bound counts one question more than the walk's: is the recorded head in
		// the store at all (ErrRecordedHeadMissing).
		{"one file deep down", []seafgen.Change{seafgen.Put("docs/deep/er/007.txt", []byte("changed"))}, 0, 11},
		{"a new subdir", []seafgen.Change{seafgen.Put("docs/deep/new/x.txt", []byte("x"))}, 0, 13},
		{"a rename", []seafgen.Change{seafgen.Delete("docs/001.txt"), seafgen.Put("docs/001-renamed.txt", []byte("file 1"))}, 0, 11},
		{"three commits", []seafgen.Change{seafgen.Put("docs/deep/er/100.txt", []byte("c"))}, 2, 31},
	} {
		for i := range step.commits {
			testenv.Commit(t, lib, fmt.Sprint(step.what, i), seafgen.Put(fmt.Sprintf("docs/deep/er/2%02d.txt", i), []byte(step.what)))
		}
		head := testenv.Commit(t, lib, step.what, step.changes...)
		env.Publish(lib)
		counting.has.Store(0)
		res := testenv.SyncOK(t, eng, lib.ID)
		if res.Head != head {
			t.Fatalf("%s: head %s, want %s", step.what, res.Head, head)
		}
		if n := counting.has.Load(); n > step.maxHas {
			t.Errorf("%s: %d presence questions, want at most %d (a dir of 300 entries is on the path)", step.what, n, step.maxHas)
		}
		t.Logf("%s: %d presence questions, %d fs objects, %d blocks written", step.what, counting.has.Load(), res.FSObjects, res.Blocks)
		env.CompareWithPrimary(lib.ID, lib.StoreID, head)
	}
}
