package sync_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"seafbak/internal/seafgen"
	"seafbak/internal/testenv"
	"seafbak/sync/primary"
	"seafbak/sync/store"
)

// replacingSource runs replace once, before the n-th block is read.
type replacingSource struct {
	primary.Source
	n       int64
	reads   atomic.Int64
	replace func()
}

func (r *replacingSource) Block(ctx context.Context, lib primary.Library, id string) (io.ReadCloser, error) {
	if r.reads.Add(1) == r.n {
		r.replace()
	}
	return r.Source.Block(ctx, lib, id)
}

// A first backup holds its library's block directory open in the store; an admin
// moving that directory aside mid-copy (and a new one appearing) must not let the sync
// record a head whose blocks went into the moved directory. The sync fails with the
// flush error, nothing is recorded, and the next run (a new process) backs the library
// up whole.
func TestFirstBackupIntoAReplacedLibraryDirectoryRecordsNothing(t *testing.T) {
	env := testenv.New(t, srv)
	g := seafgen.New(env.PrimaryDir)
	lib, err := g.NewLibrary(seafgen.LibraryOptions{Name: "L", Owner: "u@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	var files []seafgen.Change
	for i := 0; i < 150; i++ { // more blocks than a held directory waits for before it opens
		files = append(files, seafgen.Put(fmt.Sprintf("d%d/f%d.txt", i%7, i), []byte(fmt.Sprintf("file %d", i))))
	}
	testenv.Commit(t, lib, "many", files...)
	env.Publish(lib)
	blocks := filepath.Join(env.BackupDir, "storage", "blocks", lib.StoreID)
	eng := env.Engine(false)
	eng.Parallel = 1
	eng.Source = &replacingSource{Source: env.Source(), n: 120, replace: func() {
		if err := os.Rename(blocks, blocks+".moved"); err != nil {
			t.Error(err)
		}
		if err := os.Mkdir(blocks, 0o755); err != nil {
			t.Error(err)
		}
	}}
	if _, err := eng.Sync(context.Background(), lib.ID); !errors.Is(err, store.ErrFlushFailed) || !errors.Is(err, store.ErrLibraryDirMoved) {
		t.Fatalf("sync with its block directory replaced mid-copy: %v, want the flush error for a moved directory", err)
	}
	if head := env.BackupHead(lib.ID); head != "" {
		t.Fatalf("the backup database records head %s over blocks that are not there", head)
	}
	if rec, ok, err := env.State.Load(lib.ID); err != nil || ok && rec.Head != "" {
		t.Fatalf("the state records %+v (%v) over blocks that are not there", rec, err)
	}
	fresh, err := store.NewFS(env.BackupDir, store.Batch)
	if err != nil {
		t.Fatal(err)
	}
	next := env.Engine(false)
	next.Store = fresh
	res := testenv.SyncOK(t, next, lib.ID)
	if !res.Rechecked {
		t.Errorf("the next run did not re-check the library its predecessor died writing: %+v", res)
	}
	env.CompareWithPrimary(lib.ID, lib.StoreID, env.BackupHead(lib.ID))
}
