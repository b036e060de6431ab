package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"seafbak/sync/object"
)

const repo = "7b89d49b-5c5c-4f42-8ded-940c84a3e206"

var id = strings.Repeat("ab", 20)

func TestFSStore(t *testing.T) {
	for _, d := range []Durability{Batch, PerObject} {
		ctx := context.Background()
		root := t.TempDir()
		s, err := NewFS(root, d)
		if err != nil {
			t.Fatal(err)
		}
		if has, err := s.Has(ctx, object.KindBlock, repo, id); has || err != nil {
			t.Fatalf("empty store has it: %v %v", has, err)
		}
		if _, err := s.Get(ctx, object.KindBlock, repo, id); !errors.Is(err, ErrNotExist) {
			t.Fatalf("Get of a missing object: %v", err)
		}
		// An aborted write leaves nothing behind, not even a temp file.
		w, err := s.Create(ctx, object.KindBlock, repo, id)
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte("partial"))
		w.Abort()
		if has, _ := s.Has(ctx, object.KindBlock, repo, id); has {
			t.Fatal("aborted object is visible")
		}
		if ents, _ := os.ReadDir(filepath.Join(root, TempDirName)); len(ents) != 0 {
			t.Fatalf("temp files left: %v", ents)
		}
		if err := Put(ctx, s, object.KindBlock, repo, id, []byte("data")); err != nil {
			t.Fatal(err)
		}
		if err := s.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		// Seafile's own layout, so a Seafile server can serve it.
		data, err := os.ReadFile(filepath.Join(root, "storage", "blocks", repo, id[:2], id[2:]))
		if err != nil || string(data) != "data" {
			t.Fatalf("layout: %q %v", data, err)
		}
		if n, err := s.Size(ctx, object.KindBlock, repo, id); n != 4 || err != nil {
			t.Fatalf("Size %d %v", n, err)
		}
		r, err := s.Open(ctx, object.KindBlock, repo, id)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(r)
		r.Close()
		if string(got) != "data" {
			t.Fatalf("Open read %q", got)
		}
	}
}

// No path is ever built from an unchecked id or kind.
func TestFSStoreRefusesBadNames(t *testing.T) {
	s, _ := NewFS(t.TempDir(), Batch)
	ctx := context.Background()
	for _, c := range []struct {
		kind      object.Kind
		store, id string
	}{
		{object.KindBlock, "../../../etc", id},
		{object.KindBlock, repo, "../../../../../../../../../../../etc/passwd"},
		{object.Kind("../x"), repo, id},
		{object.KindFS, repo, strings.ToUpper(id)},
	} {
		if _, err := s.Create(ctx, c.kind, c.store, c.id); err == nil {
			t.Errorf("Create(%q, %q, %q) accepted", c.kind, c.store, c.id)
		}
		if _, err := s.Has(ctx, c.kind, c.store, c.id); err == nil {
			t.Errorf("Has(%q, %q, %q) accepted", c.kind, c.store, c.id)
		}
	}
}

// Two stores on one root (two processes, say two containers whose seafbak is pid 1 in
// each) writing the same object at once each write a temp file of their own: the object
// ends up whole, the last committer's bytes (a link never replaces, so an unnamed temp
// file finding the name taken must still replace it: that is how a repair mends a
// damaged object), and no temp file is left.
func TestFSStoreWritersNeverShareATempFile(t *testing.T) {
	for _, named := range []bool{false, true} {
		t.Run(map[bool]string{false: "unnamed", true: "named"}[named], func(t *testing.T) {
			root := t.TempDir()
			ctx := context.Background()
			open := func() *FS {
				s, err := NewFS(root, Batch)
				if err != nil {
					t.Fatal(err)
				}
				if named {
					return NamedTemps(s)
				}
				if !UnnamedTemps(s) {
					t.Skip("this filesystem cannot link O_TMPFILE files; the named subtest covers it")
				}
				return s
			}
			a, b := open(), open()
			wa, err := a.Create(ctx, object.KindBlock, repo, id)
			if err != nil {
				t.Fatal(err)
			}
			wb, err := b.Create(ctx, object.KindBlock, repo, id)
			if err != nil {
				t.Fatal(err)
			}
			want := 0 // unnamed temp files have no name anywhere
			if named {
				want = 2
			}
			if ents, _ := os.ReadDir(filepath.Join(root, TempDirName)); len(ents) != want {
				t.Fatalf("temp files of two writers: %v, want %d", ents, want)
			}
			wa.Write([]byte(strings.Repeat("a", 1000)))
			wb.Write([]byte(strings.Repeat("b", 1000)))
			wa.Write([]byte(strings.Repeat("a", 1000)))
			if err := wa.Commit(); err != nil {
				t.Fatal(err)
			}
			wb.Write([]byte(strings.Repeat("b", 1000)))
			if err := wb.Commit(); err != nil {
				t.Fatal(err)
			}
			got, err := a.Get(ctx, object.KindBlock, repo, id)
			if err != nil || string(got) != strings.Repeat("b", 2000) {
				t.Fatalf("object after both writers: %.20q... (%d bytes) %v", got, len(got), err)
			}
			if ents, _ := os.ReadDir(filepath.Join(root, TempDirName)); len(ents) != 0 {
				t.Fatalf("temp files left: %v", ents)
			}
			// Nothing but the object in its directory either.
			if ents, _ := os.ReadDir(filepath.Join(root, "storage", "blocks", repo, id[:2])); len(ents) != 1 {
				t.Fatalf("object directory after both writers: %v, want the object alone", ents)
			}
		})
	}
}

// A new object's directories are created by climbing only as far as needed, and every
// directory whose entries changed (the parents of the directories created) is left
// pending for the next flush; an existing directory changes nothing.
func TestFSStoreNewDirectoriesArePendingForTheFlush(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	s, err := NewFS(root, Batch)
	if err != nil {
		t.Fatal(err)
	}
	put := func(objID string) {
		t.Helper()
		w, err := s.Create(ctx, object.KindBlock, repo, objID)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
		if err := w.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	put(id)
	blocks := filepath.Join(root, "storage", "blocks")
	for _, d := range []string{blocks, filepath.Join(blocks, repo), filepath.Join(blocks, repo, id[:2])} {
		if _, pending := s.pendingDirs[d]; !pending {
			t.Errorf("%s changed but is not pending a flush (pending: %v)", d, s.pendingDirs)
		}
	}
	if err := s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	// Another object in the same directory: only that directory changed.
	put(id[:39] + "c")
	if len(s.pendingDirs) != 1 {
		t.Errorf("pending after an object in an existing directory: %v, want only its own", s.pendingDirs)
	}
	// A directory made by someone else (another process) is found, not an error.
	other := strings.Repeat("cd", 20)
	if err := os.MkdirAll(filepath.Join(blocks, repo, other[:2]), 0o755); err != nil {
		t.Fatal(err)
	}
	put(other)
	// A file where a directory must go fails the write with the path named.
	if err := os.WriteFile(filepath.Join(blocks, "0"+repo[1:]), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	w, err := s.Create(ctx, object.KindBlock, "0"+repo[1:], id)
	if err == nil {
		_, _ = w.Write([]byte("x"))
		err = w.Commit()
	}
	if err == nil || !strings.Contains(err.Error(), "0"+repo[1:]) {
		t.Fatalf("writing below a file: %v, want an error naming the path", err)
	}
}

// An unnamed temp file is made in the object's directory or, before that exists, the
// nearest one that does below storage/<kind>, never in seafbak-tmp/ when storage/blocks
// exists: storage/blocks is often a filesystem of its own, and a link cannot cross
// filesystems.
func TestFSStoreUnnamedTempFilesStayBelowTheKindsDirectory(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	s, err := NewFS(root, Batch)
	if err != nil {
		t.Fatal(err)
	}
	if !UnnamedTemps(s) {
		t.Skip("this filesystem cannot link O_TMPFILE files")
	}
	blocks := filepath.Join(root, "storage", "blocks")
	if err := os.MkdirAll(blocks, 0o755); err != nil { // as a mount point would be
		t.Fatal(err)
	}
	madeIn := func(w Writer) string {
		t.Helper()
		target, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", w.(*fsWriter).fd))
		if err != nil {
			t.Fatal(err)
		}
		return filepath.Dir(target) // "<dir>/#<inode> (deleted)"
	}
	w, err := s.Create(ctx, object.KindBlock, repo, id)
	if err != nil {
		t.Fatal(err)
	}
	if got := madeIn(w); got != blocks {
		t.Errorf("first object of a new library: temp file made in %s, want %s", got, blocks)
	}
	if _, err := w.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	w, err = s.Create(ctx, object.KindBlock, repo, id[:39]+"c")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	if got, want := madeIn(w), filepath.Join(blocks, repo, id[:2]); got != want {
		t.Errorf("object in an existing directory: temp file made in %s, want %s", got, want)
	}
	// A new subdirectory of a library that has one already is made at Create, so the
	// temp file is made where its link goes.
	other := "ff" + id[2:]
	if other == id {
		other = "00" + id[2:]
	}
	w2, err := s.Create(ctx, object.KindBlock, repo, other)
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Abort()
	if got, want := madeIn(w2), filepath.Join(blocks, repo, other[:2]); got != want {
		t.Errorf("object in a new directory of an existing library: temp file made in %s, want %s", got, want)
	}
}

// storage/blocks on a filesystem of its own (here tmpfs, through a symlink; in
// production a mount): objects are written there, new and replacing (a repair), with no
// link or rename across filesystems and no temp file left on either.
func TestFSStoreBlocksOnAnotherFilesystem(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	elsewhere, err := os.MkdirTemp("/dev/shm", "seafbak-blocks")
	if err != nil {
		t.Skip("no /dev/shm to put blocks on:", err)
	}
	t.Cleanup(func() { os.RemoveAll(elsewhere) })
	var a, b unix.Stat_t
	if unix.Stat(root, &a) != nil || unix.Stat(elsewhere, &b) != nil || a.Dev == b.Dev {
		t.Skip("/dev/shm is not another filesystem here")
	}
	if err := os.MkdirAll(filepath.Join(root, "storage"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(elsewhere, filepath.Join(root, "storage", "blocks")); err != nil {
		t.Fatal(err)
	}
	s, err := NewFS(root, Batch)
	if err != nil {
		t.Fatal(err)
	}
	if !UnnamedTemps(s) {
		t.Skip("this filesystem cannot link O_TMPFILE files")
	}
	for _, content := range []string{"first", "replaced"} {
		if err := Put(ctx, s, object.KindBlock, repo, id, []byte(content)); err != nil {
			t.Fatalf("writing %q: %v", content, err)
		}
		got, err := os.ReadFile(filepath.Join(elsewhere, repo, id[:2], id[2:]))
		if err != nil || string(got) != content {
			t.Fatalf("object after writing %q: %q %v", content, got, err)
		}
	}
	if err := s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(filepath.Join(elsewhere, repo, id[:2])); len(ents) != 1 {
		t.Errorf("object directory: %v, want the object alone", ents)
	}
	if ents, _ := os.ReadDir(filepath.Join(root, TempDirName)); len(ents) != 0 {
		t.Errorf("temp files left: %v", ents)
	}
}

// Get reads an object whole, and refuses one larger than any object of its kind
// without reading more than one byte past the limit.
func TestFSStoreGetBoundsTheRead(t *testing.T) {
	root := t.TempDir()
	s, err := NewFS(root, Batch)
	if err != nil {
		t.Fatal(err)
	}

	limit := object.MaxStoredSize(object.KindCommit)
	put := func(id string, size int64) {
		dir := filepath.Join(root, "storage", "commits", repo, id[:2])
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, id[2:]), bytes.Repeat([]byte{'c'}, int(size)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	for _, size := range []int64{0, 1, 4095, 4096, 4097, limit} {
		id := fmt.Sprintf("%040x", size+1)
		put(id, size)
		data, err := s.Get(ctx, object.KindCommit, repo, id)
		if err != nil || int64(len(data)) != size || size > 0 && data[size-1] != 'c' {
			t.Fatalf("size %d: got %d bytes, %v", size, len(data), err)
		}
	}
	big := fmt.Sprintf("%040x", 0xb16)
	put(big, limit+1)
	if _, err := s.Get(ctx, object.KindCommit, repo, big); !errors.Is(err, object.ErrInvalid) {
		t.Fatalf("an object over the limit: %v", err)
	}
	if _, err := s.Get(ctx, object.KindCommit, repo, fmt.Sprintf("%040x", 0xab5e)); !errors.Is(err, ErrNotExist) {
		t.Fatalf("an absent object: %v", err)
	}
}

// A directory of the store removed by hand under a running process (a watch) is made
// again at the next object written into it: the cache of directories known to exist
// does not make every later object of that library fail until a restart.
func TestFSStoreRemovedDirectoryIsMadeAgain(t *testing.T) {
	for _, durability := range []Durability{Batch, PerObject} {
		ctx := context.Background()
		root := t.TempDir()
		s, err := NewFS(root, durability)
		if err != nil {
			t.Fatal(err)
		}
		lib := filepath.Join(root, "storage", "blocks", repo)
		first, second := "ab"+testID(1)[2:], "ab"+testID(2)[2:] // the same directory
		if err := Put(ctx, s, object.KindBlock, repo, first, []byte("x")); err != nil {
			t.Fatal(err)
		}
		if err := s.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		if err := os.RemoveAll(lib); err != nil {
			t.Fatal(err)
		}
		if err := Put(ctx, s, object.KindBlock, repo, second, []byte("y")); err != nil {
			t.Fatalf("%v: an object written after its directory was removed: %v", durability, err)
		}
		if err := s.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		if has, err := s.Has(ctx, object.KindBlock, repo, second); !has || err != nil {
			t.Fatalf("%v: the object is not in the store: %v %v", durability, has, err)
		}
	}
}
