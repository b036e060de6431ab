package sync_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"seafbak/internal/seafgen"
	"seafbak/internal/testenv"
	seafsync "seafbak/sync"
	"seafbak/sync/object"
	"seafbak/sync/primary"
)

// What the primary's data dir can hold in an object's place, besides a missing or
// damaged file (found by review): a device that never ends (/dev/zero through a
// symlink), a FIFO that would block open(2) for good, and storage/blocks on a volume
// not mounted. The first two are refused as corrupt (a hole under --force) in bounded
// time and space; the last is the primary unreachable even under --force, not a hole
// for every block.
func TestDataDirOddObjects(t *testing.T) {
	setup := func(t *testing.T) (*testenv.Env, *seafgen.Library, string) {
		env := testenv.New(t, srv)
		lib, err := seafgen.New(env.PrimaryDir).NewLibrary(seafgen.LibraryOptions{Name: "odd", Owner: "odd@example.com"})
		must(t, err)
		testenv.Commit(t, lib, "files", seafgen.Put("small.txt", []byte("small")), seafgen.Put("other.txt", []byte("other")))
		env.Publish(lib)
		_, blocks := env.PrimaryFile(lib, "small.txt")
		return env, lib, testenv.ObjectPath(env.PrimaryDir, object.KindBlock, lib.StoreID, blocks[0])
	}
	syncWithin := func(t *testing.T, eng *seafsync.Engine, id string) (seafsync.Result, error) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		type out struct {
			res seafsync.Result
			err error
		}
		done := make(chan out, 1)
		go func() { res, err := eng.Sync(ctx, id); done <- out{res, err} }()
		select {
		case o := <-done:
			return o.res, o.err
		case <-time.After(60 * time.Second):
			t.Fatal("sync still running after 60 s")
			return seafsync.Result{}, nil
		}
	}
	for _, odd := range []string{"device", "fifo"} {
		t.Run(odd, func(t *testing.T) {
			env, lib, block := setup(t)
			must(t, os.Remove(block))
			if odd == "device" {
				must(t, os.Symlink("/dev/zero", block))
			} else {
				must(t, unix.Mkfifo(block, 0o600))
			}
			_, err := syncWithin(t, env.Engine(false), lib.ID)
			var oe *seafsync.ObjectError
			if !errors.As(err, &oe) || oe.Class != seafsync.Corrupt || oe.Path != "/small.txt" {
				t.Fatalf("sync: %v, want the block of /small.txt corrupt on the primary", err)
			}
			res, err := syncWithin(t, env.Engine(true), lib.ID)
			if err != nil || len(res.Holes) != 1 || res.Head != lib.Head {
				t.Fatalf("sync --force: %+v %v, want one hole", res, err)
			}
			if fi, err := os.Stat(filepath.Join(env.BackupDir, "seafbak-tmp")); err == nil && fi.Size() > 1<<20 {
				t.Errorf("seafbak-tmp grew to %d bytes", fi.Size())
			}
		})
	}
	t.Run("blocks volume not mounted", func(t *testing.T) {
		env, lib, _ := setup(t)
		blocks := filepath.Join(env.PrimaryDir, "storage", "blocks")
		must(t, os.Rename(blocks, blocks+".real"))
		must(t, os.Symlink(filepath.Join(t.TempDir(), "unmounted", "blocks"), blocks))
		res, err := syncWithin(t, env.Engine(true), lib.ID)
		if !errors.Is(err, primary.ErrUnreachable) || len(res.Holes) != 0 {
			t.Fatalf("sync --force with storage/blocks gone: %+v %v, want the primary unreachable and no hole", res, err)
		}
		if !strings.Contains(err.Error(), "storage/blocks is gone") {
			t.Errorf("the error does not name storage/blocks: %v", err)
		}
		if h := env.BackupHead(lib.ID); h != "" {
			t.Errorf("backup head recorded: %s", h)
		}
	})
}
