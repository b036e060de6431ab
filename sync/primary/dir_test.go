package primary

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	gosync "sync"
	"testing"

	"seafbak/internal/fdtest"
)

const (
	testRepo    = "7b89d49b-5c5c-4f42-8ded-940c84a3e206"
	testVirtual = "0c1e3a3e-6c3b-4f0e-9a53-2a4c1f6f0e11"
)

func objID(n int) string { return fmt.Sprintf("%02x%038x", n%256, n) }

// putObject writes an object into a data dir's layout, as Seafile would.
func putObject(t *testing.T, root, kind, storeID, id, data string) {
	t.Helper()
	dir := filepath.Join(root, "storage", kind, storeID, id[:2])
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, id[2:]), []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readBlock(d *Dir, lib Library, id string) (string, error) {
	rc, err := d.Block(context.Background(), lib, id)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	return string(b), err
}

// A held library reads as one that is not: commits under the library's own id, fs
// objects and blocks under its store's (a virtual library's origin), missing objects
// reported missing. Released, nothing stays open.
func TestDirHeldLibraryReadsTheSame(t *testing.T) {
	root := t.TempDir()
	lib := Library{ID: testVirtual, StoreID: testRepo}
	putObject(t, root, "commits", testVirtual, objID(1), "commit")
	putObject(t, root, "fs", testRepo, objID(2), "fs object")
	putObject(t, root, "blocks", testRepo, objID(3), "block")
	d, err := NewDir(root)
	if err != nil {
		t.Fatal(err)
	}
	read := func() {
		t.Helper()
		ctx := context.Background()
		if c, err := d.Commit(ctx, lib, objID(1)); string(c) != "commit" || err != nil {
			t.Fatalf("commit: %q %v", c, err)
		}
		var got []string
		err := d.FSObjects(ctx, lib, []string{objID(2), objID(4)}, func(id string, data []byte, err error) error {
			got = append(got, fmt.Sprintf("%s=%q/%v", id[:2], data, errors.Is(err, ErrNotFound)))
			return nil
		})
		if err != nil || strings.Join(got, " ") != `02="fs object"/false 04=""/true` {
			t.Fatalf("fs objects: %v %v", got, err)
		}
		if b, err := readBlock(d, lib, objID(3)); b != "block" || err != nil {
			t.Fatalf("block: %q %v", b, err)
		}
		if _, err := readBlock(d, lib, objID(5)); !errors.Is(err, ErrNotFound) {
			t.Fatalf("missing block: %v", err)
		}
	}
	read()
	d.held.OpenAfter = 1
	d.Hold(lib)
	d.Hold(lib) // two syncs of the library (a virtual one and its origin share a store)
	read()
	if got := fdtest.OpenBelow(t, root); got != 3 {
		t.Fatalf("%d directories open while held, want 3", got)
	}
	d.Release(lib)
	read()
	d.Release(lib)
	if got := fdtest.OpenBelow(t, root); got != 0 {
		t.Fatalf("%d descriptors open below the data dir after Release, want 0", got)
	}
	read()
}

// A held directory replaced on the primary (its library re-created) or a data dir
// unmounted meanwhile: objects are still found by path, and a storage dir that is gone
// is still reported unreachable, not as every object missing.
func TestDirHeldDirectoryReplacedOrGone(t *testing.T) {
	root := t.TempDir()
	lib := Library{ID: testRepo, StoreID: testRepo}
	putObject(t, root, "blocks", testRepo, objID(1), "old")
	d, err := NewDir(root)
	if err != nil {
		t.Fatal(err)
	}
	d.held.OpenAfter = 1
	d.Hold(lib)
	defer d.Release(lib)
	if b, err := readBlock(d, lib, objID(1)); b != "old" || err != nil { // opens it
		t.Fatalf("block: %q %v", b, err)
	}
	blocks := filepath.Join(root, "storage", "blocks", testRepo)
	if err := os.Rename(blocks, blocks+".old"); err != nil {
		t.Fatal(err)
	}
	putObject(t, root, "blocks", testRepo, objID(2), "new")
	if b, err := readBlock(d, lib, objID(2)); b != "new" || err != nil {
		t.Fatalf("block only in the new directory: %q %v", b, err)
	}
	if err := os.Rename(filepath.Join(root, "storage"), filepath.Join(root, "unmounted")); err != nil {
		t.Fatal(err)
	}
	var unreachable *UnreachableError
	if _, err := readBlock(d, lib, objID(3)); !errors.As(err, &unreachable) {
		t.Fatalf("block with the storage dir gone: %v, want unreachable", err)
	}
}

// Holds, reads and releases of one library from many goroutines (-race): every read
// right, nothing left open.
func TestDirHoldConcurrent(t *testing.T) {
	root := t.TempDir()
	lib := Library{ID: testRepo, StoreID: testRepo}
	for n := 0; n < 64; n++ {
		putObject(t, root, "blocks", testRepo, objID(n), objID(n))
	}
	d, err := NewDir(root)
	if err != nil {
		t.Fatal(err)
	}
	d.held.OpenAfter = 5 // some objects by path, most through the held directory
	var wg gosync.WaitGroup
	errs := make(chan error, 8)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for round := 0; round < 50; round++ {
				hold := (g+round)%2 == 0
				if hold {
					d.Hold(lib)
				}
				for n := 0; n < 64; n += 7 {
					if b, err := readBlock(d, lib, objID(n)); b != objID(n) || err != nil {
						errs <- fmt.Errorf("block %d: %q %v", n, b, err)
						return
					}
				}
				if hold {
					d.Release(lib)
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got := fdtest.OpenBelow(t, root); got != 0 {
		t.Fatalf("%d descriptors open below the data dir afterwards, want 0", got)
	}
}
