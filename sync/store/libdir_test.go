package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	gosync "sync"
	"testing"

	"seafbak/internal/fdtest"
	"seafbak/sync/object"
)

// testID is the n-th object id of a test, spread over the 256 subdirectories.
func testID(n int) string {
	return fmt.Sprintf("%02x%038x", n%256, n)
}

// A sync that holds its library's directories (Preload) writes and finds objects just as
// one that does not, in every way the store writes: unnamed temp files linked by
// descriptor or through /proc, and named temp files. Once forgotten, nothing stays open.
func TestFSStorePreloadedLibraryWritesInPlace(t *testing.T) {
	ways := map[string]func(*FS) *FS{
		"unnamed":          func(s *FS) *FS { return s },
		"unnamed via proc": LinkThroughProc,
		"named":            NamedTemps,
	}
	for name, way := range ways {
		for _, d := range []Durability{Batch, PerObject} {
			t.Run(fmt.Sprintf("%s/%d", name, d), func(t *testing.T) {
				ctx := context.Background()
				root := t.TempDir()
				s, err := NewFS(root, d)
				if err != nil {
					t.Fatal(err)
				}
				s = way(s)
				if d == PerObject {
					s = OpenHeldAtOnce(s) // and the default, after fsutil.DefaultOpenAfter calls, under Batch
				}
				for _, k := range []object.Kind{object.KindCommit, object.KindFS, object.KindBlock} {
					if err := s.Preload(ctx, k, repo); err != nil {
						t.Fatal(err)
					}
				}
				if HeldDirs(s) != 3 {
					t.Fatalf("%d library directories held, want 3", HeldDirs(s))
				}
				for n := 0; n < 300; n++ {
					oid := testID(n)
					if has, err := s.Has(ctx, object.KindBlock, repo, oid); has || err != nil {
						t.Fatalf("Has of an absent object: %v %v", has, err)
					}
					if err := Put(ctx, s, object.KindBlock, repo, oid, []byte(oid)); err != nil {
						t.Fatal(err)
					}
					if has, err := s.Has(ctx, object.KindBlock, repo, oid); !has || err != nil {
						t.Fatalf("Has of a written object: %v %v", has, err)
					}
				}
				// A second writer of a present object replaces it whole (a repair).
				if err := Put(ctx, s, object.KindBlock, repo, testID(7), []byte("mended")); err != nil {
					t.Fatal(err)
				}
				// An aborted write leaves nothing.
				w, err := s.Create(ctx, object.KindFS, repo, id)
				if err != nil {
					t.Fatal(err)
				}
				w.Write([]byte("partial"))
				w.Abort()
				if fdtest.OpenBelow(t, root) == 0 {
					t.Fatal("no library directory was opened for 300 objects")
				}
				for _, k := range []object.Kind{object.KindCommit, object.KindFS, object.KindBlock} {
					s.Forget(k, repo)
				}
				if err := s.Sync(ctx); err != nil {
					t.Fatal(err)
				}
				if HeldDirs(s) != 0 || fdtest.OpenBelow(t, root) != 0 {
					t.Fatalf("after Forget: %d directories held, %d descriptors open below the store, want none", HeldDirs(s), fdtest.OpenBelow(t, root))
				}
				for n := 0; n < 300; n++ {
					oid := testID(n)
					want := oid
					if n == 7 {
						want = "mended"
					}
					got, err := os.ReadFile(filepath.Join(root, "storage", "blocks", repo, oid[:2], oid[2:]))
					if err != nil || string(got) != want {
						t.Fatalf("object %d: %q %v, want %q", n, got, err, want)
					}
				}
				if _, err := os.Stat(filepath.Join(root, "storage", "fs", repo, id[:2], id[2:])); !os.IsNotExist(err) {
					t.Fatalf("aborted object: %v", err)
				}
				if ents, _ := os.ReadDir(filepath.Join(root, TempDirName)); len(ents) != 0 {
					t.Fatalf("temp files left: %v", ents)
				}
			})
		}
	}
}

// Under batch durability, the directories a held library gains are pending for the
// next flush, like those made by path.
func TestFSStorePreloadedLibraryDirectoriesArePending(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	s, err := NewFS(root, Batch)
	if err != nil {
		t.Fatal(err)
	}
	s = OpenHeldAtOnce(s)
	if err := s.Preload(ctx, object.KindBlock, repo); err != nil {
		t.Fatal(err)
	}
	defer s.Forget(object.KindBlock, repo)
	if has, err := s.Has(ctx, object.KindBlock, repo, id); has || err != nil {
		t.Fatalf("Has in an empty store: %v %v", has, err)
	}
	// Opening the held directory made it and storage/blocks: their parents changed.
	blocks := filepath.Join(root, "storage", "blocks")
	for _, d := range []string{filepath.Join(root, "storage"), blocks} {
		if _, pending := s.pendingDirs[d]; !pending {
			t.Errorf("%s changed but is not pending a flush (pending: %v)", d, s.pendingDirs)
		}
	}
	if err := s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if err := Put(ctx, s, object.KindBlock, repo, id, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, pending := s.pendingDirs[filepath.Join(blocks, repo)]; !pending {
		t.Errorf("the library's directory gained %s but is not pending a flush (pending: %v)", id[:2], s.pendingDirs)
	}
	if len(s.pendingFiles) != 1 || s.pendingFiles[0] != filepath.Join(blocks, repo, id[:2], id[2:]) {
		t.Errorf("pending files: %v, want the object", s.pendingFiles)
	}
}

// A library directory removed or replaced while a sync holds it: the objects written
// through it are not where Seafile looks, so the Sync before any metadata moves fails,
// and so does every later one, whether the directory is still held at the Sync, was
// forgotten before it, or was only asked about (an object "present" in the old one).
func TestFSStoreReplacedLibraryDirectoryFailsSync(t *testing.T) {
	for _, when := range []string{"held at Sync", "forgotten before Sync", "only asked"} {
		t.Run(when, func(t *testing.T) {
			ctx := context.Background()
			root := t.TempDir()
			s, err := NewFS(root, Batch)
			if err != nil {
				t.Fatal(err)
			}
			s = OpenHeldAtOnce(s)
			lib := filepath.Join(root, "storage", "blocks", repo)
			if when == "only asked" {
				if err := Put(ctx, s, object.KindBlock, repo, id, []byte("x")); err != nil {
					t.Fatal(err)
				}
				if err := s.Sync(ctx); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.Preload(ctx, object.KindBlock, repo); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Has(ctx, object.KindBlock, repo, testID(1)); err != nil { // opens it
				t.Fatal(err)
			}
			if err := os.Rename(lib, lib+".moved"); err != nil {
				t.Fatal(err)
			}
			if err := os.Mkdir(lib, 0o755); err != nil {
				t.Fatal(err)
			}
			if when == "only asked" {
				if has, err := s.Has(ctx, object.KindBlock, repo, id); !has || err != nil {
					t.Fatalf("Has through the held directory: %v %v", has, err)
				}
			} else if err := Put(ctx, s, object.KindBlock, repo, testID(1), []byte("lost")); err != nil {
				t.Fatal(err)
			}
			if when != "held at Sync" {
				s.Forget(object.KindBlock, repo)
			}
			for i := 0; i < 2; i++ {
				err := s.Sync(ctx)
				if !errors.Is(err, ErrFlushFailed) || !errors.Is(err, ErrLibraryDirMoved) || !strings.Contains(err.Error(), lib) {
					t.Fatalf("Sync %d after the library's directory was replaced: %v", i+1, err)
				}
			}
			if when == "held at Sync" {
				s.Forget(object.KindBlock, repo)
			}
		})
	}
}

// A subdirectory of a held library directory removed during a first backup (by hand)
// is made again at the next object written into it, as one reached by path is
// (TestFSStoreRemovedDirectoryIsMadeAgain): the held directory's record of the
// subdirectories it made does not fail every later object of it.
func TestFSStoreRemovedSubdirectoryOfAHeldLibraryIsMadeAgain(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	s, err := NewFS(root, Batch)
	if err != nil {
		t.Fatal(err)
	}
	s = OpenHeldAtOnce(s)
	if !s.unnamed {
		t.Skip("objects are linked through a held directory only with O_TMPFILE")
	}
	if err := s.Preload(ctx, object.KindBlock, repo); err != nil {
		t.Fatal(err)
	}
	defer s.Forget(object.KindBlock, repo)
	first, second := "ab"+testID(1)[2:], "ab"+testID(2)[2:] // the same subdirectory
	if err := Put(ctx, s, object.KindBlock, repo, first, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(ctx); err != nil { // an object removed before its flush fails Sync
		t.Fatal(err)
	}
	sub := filepath.Join(root, "storage", "blocks", repo, "ab")
	if err := os.RemoveAll(sub); err != nil {
		t.Fatal(err)
	}
	if err := Put(ctx, s, object.KindBlock, repo, second, []byte("y")); err != nil {
		t.Fatalf("an object written after its subdirectory was removed: %v", err)
	}
	if err := s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(sub, second[2:])); err != nil {
		t.Fatalf("the object is not in the store: %v", err)
	}
}

// Many syncs of the same library (virtual libraries share their origin's) hold,
// use and forget its directories at once: every object lands, and nothing stays open.
func TestFSStorePreloadConcurrent(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	s, err := NewFS(root, Batch)
	if err != nil {
		t.Fatal(err)
	}
	s.held.OpenAfter = 5 // some calls by path, most through the held directory
	var wg gosync.WaitGroup
	errs := make(chan error, 8)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for round := 0; round < 20; round++ {
				preload := (g+round)%3 != 0 // some writers hold nothing, as a re-check does
				if preload {
					if err := s.Preload(ctx, object.KindBlock, repo); err != nil {
						errs <- err
						return
					}
				}
				for n := 0; n < 10; n++ {
					oid := testID(g*1000 + round*10 + n)
					if err := Put(ctx, s, object.KindBlock, repo, oid, []byte(oid)); err != nil {
						errs <- err
						return
					}
					if has, err := s.Has(ctx, object.KindBlock, repo, oid); !has || err != nil {
						errs <- fmt.Errorf("Has %s: %v %v", oid, has, err)
						return
					}
				}
				if preload {
					s.Forget(object.KindBlock, repo)
				}
				if err := s.Sync(ctx); err != nil {
					errs <- err
					return
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if HeldDirs(s) != 0 || fdtest.OpenBelow(t, root) != 0 {
		t.Fatalf("afterwards: %d directories held, %d descriptors open below the store, want none", HeldDirs(s), fdtest.OpenBelow(t, root))
	}
	for g := 0; g < 8; g++ {
		for k := 0; k < 200; k++ {
			oid := testID(g*1000 + k)
			got, err := os.ReadFile(filepath.Join(root, "storage", "blocks", repo, oid[:2], oid[2:]))
			if err != nil || string(got) != oid {
				t.Fatalf("object %s: %q %v", oid, got, err)
			}
		}
	}
}

// Preload refuses what could not be a path of the store.
func TestFSStorePreloadRefusesBadNames(t *testing.T) {
	s, err := NewFS(t.TempDir(), Batch)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		kind    object.Kind
		storeID string
	}{{"../x", repo}, {object.KindBlock, "../" + repo[3:]}, {object.KindBlock, ""}} {
		if err := s.Preload(context.Background(), c.kind, c.storeID); err == nil {
			t.Errorf("Preload(%q, %q) accepted", c.kind, c.storeID)
		}
	}
}

// The store's own directory replaced under a running process (moved to a new disk under
// a watch) fails every later Sync, as a replaced library directory does: its syncfs goes
// through the directory it opened, whose filesystem the objects no longer go to.
func TestFSStoreReplacedRootFailsSync(t *testing.T) {
	ctx := context.Background()
	root := filepath.Join(t.TempDir(), "seafile-data")
	s, err := NewFS(root, Batch)
	if err != nil {
		t.Fatal(err)
	}
	if err := Put(ctx, s, object.KindBlock, repo, testID(1), []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(root, root+".old"); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{filepath.Join(root, "storage", "blocks"), filepath.Join(root, TempDirName)} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := Put(ctx, s, object.KindBlock, repo, testID(2), []byte("y")); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		err := s.Sync(ctx)
		if !errors.Is(err, ErrFlushFailed) || !errors.Is(err, ErrLibraryDirMoved) || !strings.Contains(err.Error(), root) {
			t.Fatalf("Sync %d after the store's directory was replaced: %v", i+1, err)
		}
	}
}
