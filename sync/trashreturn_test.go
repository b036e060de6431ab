package sync_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"seafbak/internal/seafgen"
	"seafbak/internal/testenv"
	"seafbak/scan"
	"seafbak/sync/object"
)

// Found by review: a library's sync dies with the machine (its marker left, a block it wrote
// named but not its bytes), then the library is deleted on the primary (moved to the
// trash). A scan marks it deleted (its marker becomes <store>.<lib>.deleted); the next
// scan, the store having no other live library, sweeps that marker. The user restores
// the library from the trash: the next scan syncs it trusting presence. With the block
// left empty (ext4) the library fails at every sync, blamed on the primary ("corrupt on
// the primary": seaf-fsck advised, --force would record a hole); with the block left
// zeros of its size (XFS) the head is recorded over a block that is not its bytes.
func TestLibraryBackFromTheTrashIsRechecked(t *testing.T) {
	for _, c := range []struct {
		name  string
		crash func(want []byte) []byte
	}{
		{"empty", func([]byte) []byte { return nil }},
		{"zeros", func(want []byte) []byte { return make([]byte, len(want)) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			env := testenv.New(t, srv)
			g := seafgen.New(env.PrimaryDir)
			lib, err := g.NewLibrary(seafgen.LibraryOptions{Name: "Trash", Owner: "t@example.com"})
			must(t, err)
			testenv.Commit(t, lib, "first", seafgen.Put("a.txt", []byte("a")))
			env.Publish(lib)
			eng := env.Engine(false)
			testenv.SyncOK(t, eng, lib.ID)

			// A change; the sync of it dies with the machine after naming its block.
			testenv.Commit(t, lib, "second", seafgen.Put("big.bin", testenv.RandomBytes(20000, 7)))
			env.Publish(lib)
			_, blocks := env.PrimaryFile(lib, "big.bin")
			want, _ := os.ReadFile(testenv.ObjectPath(env.PrimaryDir, object.KindBlock, lib.StoreID, blocks[0]))
			lost := testenv.ObjectPath(env.BackupDir, object.KindBlock, lib.StoreID, blocks[0])
			must(t, os.MkdirAll(filepath.Dir(lost), 0o755))
			must(t, os.WriteFile(lost, c.crash(want), 0o644))
			must(t, os.WriteFile(filepath.Join(env.StateDir, "dirty", lib.StoreID+"."+lib.ID), []byte("x\n"), 0o640))

			// Moved to the trash: a scan marks it deleted, the next (cron, minutes later)
			// finds it still there.
			must(t, seafgen.DeleteRows(context.Background(), env.PrimaryDB, lib.ID))
			sc := &scan.Scanner{Engine: eng, Catalog: eng.Source, State: env.State, Parallel: 2}
			if sum, err := sc.Run(context.Background()); err != nil || sum.Deleted != 1 {
				t.Fatalf("scan after the deletion: %+v %v", sum, err)
			}
			if _, err := sc.Run(context.Background()); err != nil {
				t.Fatal(err)
			}
			ents, _ := os.ReadDir(filepath.Join(env.StateDir, "dirty"))
			t.Logf("markers after the scans while it was in the trash: %d", len(ents))

			// Restored from the trash; the next scan backs it up again.
			env.Publish(lib)
			sum, err := sc.Run(context.Background())
			if err != nil || sum.Failed != 0 {
				t.Fatalf("scan after the restore from the trash: %+v %v", sum.Failures, err)
			}
			rec, _, err := env.State.Load(lib.ID)
			must(t, err)
			got, _ := os.ReadFile(lost)
			if rec.Head == lib.Head && !bytes.Equal(got, want) {
				t.Errorf("the library came back from the trash and its head %s is recorded with block %s not its bytes (zeros: %v; %d bytes, want %d): the dead attempt's marker was swept while it was deleted, so nothing re-checked it",
					rec.Head, blocks[0], bytes.Count(got, []byte{0}) == len(got), len(got), len(want))
			}
		})
	}
}
