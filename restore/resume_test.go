package restore_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"seafbak/restore"
	"seafbak/sync/object"
	"seafbak/sync/store"
)

// failAfter lets the first n blocks through, then fails every Open: a restore that stops
// halfway.
type failAfter struct {
	store.Store
	n atomic.Int64
}

var errStopped = errors.New("stopped for the test")

func (s *failAfter) Open(ctx context.Context, kind object.Kind, storeID, id string) (io.ReadCloser, error) {
	if kind == object.KindBlock && s.n.Add(-1) < 0 {
		return nil, errStopped
	}
	return s.Store.Open(ctx, kind, storeID, id)
}

const (
	killedTemp = restore.TempPrefix + "0123456789abcdef.tmp" // what a killed restore leaves
	upperTemp  = restore.TempPrefix + "0123456789ABCDEF.tmp" // not a name seafbak makes
)

// A restore that stopped halfway and then was "killed" (temp files of files it was
// writing left in several directories, one of them half written) is finished by a rerun
// into the same directory without --force: the temp files are swept, every file is
// whole, mtimes are right, the marker is gone. Names that only look like seafbak's stay.
func TestRestoreRerunAfterKill(t *testing.T) {
	env, lib, _ := backedUpRichLibrary(t)
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "out")

	stopping := &failAfter{Store: env.Store}
	stopping.n.Store(3)
	opts := restore.LibraryOptions{Store: stopping, State: env.State, RepoID: lib.ID, Dir: dir, Parallel: 1}
	if _, err := restore.RestoreLibrary(ctx, opts); !errors.Is(err, errStopped) {
		t.Fatalf("interrupted restore: %v", err)
	}
	m, err := os.ReadFile(filepath.Join(dir, restore.MarkerName))
	if err != nil || !strings.Contains(string(m), lib.Head) || !strings.Contains(string(m), lib.ID) {
		t.Fatalf("marker of the interrupted restore: %q, %v", m, err)
	}
	// What kill -9 leaves besides: temp files, at the top and deeper, one half written.
	for _, d := range []string{".", "folder", "folder/sub/deeper/x"} {
		must(t, os.MkdirAll(filepath.Join(dir, d), 0o755)) // the walk may not have got this far
		must(t, os.WriteFile(filepath.Join(dir, d, killedTemp), []byte("half a fi"), 0o644))
	}
	// Look-alikes that are not seafbak's temp files: never swept.
	must(t, os.WriteFile(filepath.Join(dir, "folder", upperTemp), []byte("mine"), 0o644))
	must(t, os.MkdirAll(filepath.Join(dir, "folder", "sub", killedTemp), 0o755))

	opts.Store = env.Store
	res, err := restore.RestoreLibrary(ctx, opts)
	must(t, err)
	if !res.Resumed || res.Commit != lib.Head {
		t.Fatalf("rerun: %+v", res)
	}
	if _, err := os.Lstat(filepath.Join(dir, restore.MarkerName)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("marker left after the rerun: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "folder", upperTemp)); err != nil || string(b) != "mine" {
		t.Fatalf("a look-alike file was touched: %q, %v", b, err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "folder", "sub", killedTemp)); err != nil || !fi.IsDir() {
		t.Fatalf("a directory with a temp file's name was touched: %v", err)
	}
	rlib := restore.Library{RepoID: lib.ID, StoreID: lib.StoreID}
	checkMtimes(t, env, rlib, lib.Head, dir)
	must(t, os.Remove(filepath.Join(dir, "folder", upperTemp)))
	must(t, os.Remove(filepath.Join(dir, "folder", "sub", killedTemp)))
	if got, want := diskTree(t, dir), wantTree(t, lib, lib.Head); got != want {
		t.Fatalf("after the rerun:\ngot:\n%s\nwant:\n%s", got, want)
	}
}

// An unfinished restore of another commit (or library) is not resumed: the refusal says
// which restore it is and how to finish it; --force writes over it. A directory holding
// only a killed restore's temp files counts as empty; anything else is refused and left.
func TestRestoreRerunRefusals(t *testing.T) {
	env, lib, rc := backedUpRichLibrary(t)
	ctx := context.Background()

	dir := filepath.Join(t.TempDir(), "out")
	stopping := &failAfter{Store: env.Store}
	opts := restore.LibraryOptions{Store: stopping, State: env.State, RepoID: lib.ID, Dir: dir, Commit: rc.first}
	if _, err := restore.RestoreLibrary(ctx, opts); !errors.Is(err, errStopped) {
		t.Fatalf("interrupted restore: %v", err)
	}
	opts.Store, opts.Commit = env.Store, "" // the head, not the unfinished commit
	_, err := restore.RestoreLibrary(ctx, opts)
	if !errors.Is(err, restore.ErrNotEmpty) || !strings.Contains(err.Error(), "--commit "+rc.first) || !strings.Contains(err.Error(), "unfinished restore") {
		t.Fatalf("rerun at another commit: %v", err)
	}
	opts.Force = true
	res, err := restore.RestoreLibrary(ctx, opts)
	must(t, err)
	if res.Resumed || res.Commit != lib.Head {
		t.Fatalf("forced: %+v", res)
	}
	if _, err := os.Lstat(filepath.Join(dir, restore.MarkerName)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("marker left after the forced restore: %v", err)
	}

	// A marker seafbak cannot read is refused, not guessed at.
	bad := t.TempDir()
	must(t, os.WriteFile(filepath.Join(bad, restore.MarkerName), []byte("{not json"), 0o644))
	_, err = restore.RestoreLibrary(ctx, restore.LibraryOptions{Store: env.Store, State: env.State, RepoID: lib.ID, Dir: bad})
	if !errors.Is(err, restore.ErrNotEmpty) || !strings.Contains(err.Error(), restore.MarkerName) {
		t.Fatalf("unreadable marker: %v", err)
	}
	// The marker of another library is someone else's restore.
	other := t.TempDir()
	mk, _ := json.Marshal(map[string]string{"repo_id": "0badc0de-0000-4000-8000-000000000001", "commit": lib.Head})
	must(t, os.WriteFile(filepath.Join(other, restore.MarkerName), mk, 0o644))
	_, err = restore.RestoreLibrary(ctx, restore.LibraryOptions{Store: env.Store, State: env.State, RepoID: lib.ID, Dir: other})
	if !errors.Is(err, restore.ErrNotEmpty) || !strings.Contains(err.Error(), "0badc0de-0000-4000-8000-000000000001") {
		t.Fatalf("another library's marker: %v", err)
	}

	// Only temp files of a killed restore: swept, and the restore goes ahead.
	temps := t.TempDir()
	must(t, os.WriteFile(filepath.Join(temps, killedTemp), []byte("x"), 0o644))
	res, err = restore.RestoreLibrary(ctx, restore.LibraryOptions{Store: env.Store, State: env.State, RepoID: lib.ID, Dir: temps})
	must(t, err)
	if res.Resumed {
		t.Errorf("a dir of temp files counted as an unfinished restore")
	}
	if got, want := diskTree(t, temps), wantTree(t, lib, lib.Head); got != want {
		t.Fatalf("after temp files:\ngot:\n%s\nwant:\n%s", got, want)
	}

	// A temp file next to anything else: refused, and nothing removed.
	mixed := t.TempDir()
	must(t, os.WriteFile(filepath.Join(mixed, killedTemp), []byte("x"), 0o644))
	must(t, os.WriteFile(filepath.Join(mixed, upperTemp), []byte("x"), 0o644))
	_, err = restore.RestoreLibrary(ctx, restore.LibraryOptions{Store: env.Store, State: env.State, RepoID: lib.ID, Dir: mixed})
	if !errors.Is(err, restore.ErrNotEmpty) {
		t.Fatalf("temp file and another file: %v", err)
	}
	for _, n := range []string{killedTemp, upperTemp} {
		if _, err := os.Stat(filepath.Join(mixed, n)); err != nil {
			t.Errorf("%s removed from a refused dir: %v", n, err)
		}
	}
}

// pausing holds the first block Open until release is closed: a restore under way.
type pausing struct {
	store.Store
	entered, release chan struct{}
	once             atomic.Bool
}

func (s *pausing) Open(ctx context.Context, kind object.Kind, storeID, id string) (io.ReadCloser, error) {
	if kind == object.KindBlock && s.once.CompareAndSwap(false, true) {
		close(s.entered)
		<-s.release
	}
	return s.Store.Open(ctx, kind, storeID, id)
}

// Two restores into one directory at once (a rerun after an ssh drop, the first still
// going under nohup): the second is refused, naming why, and touches nothing; the first
// finishes whole. Before, the second took the live restore's marker for a killed one's,
// swept its temp files, removed the marker mid-write, and the first failed (found by
// review).
func TestRestoreRefusesADirectoryAnotherRestoreIsWriting(t *testing.T) {
	env, lib, _ := backedUpRichLibrary(t)
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "out")
	first := &pausing{Store: env.Store, entered: make(chan struct{}), release: make(chan struct{})}
	opts := restore.LibraryOptions{Store: first, State: env.State, RepoID: lib.ID, Dir: dir, Parallel: 1}
	done := make(chan error, 1)
	go func() { _, err := restore.RestoreLibrary(ctx, opts); done <- err }()
	<-first.entered
	second := opts
	second.Store = env.Store
	if _, err := restore.RestoreLibrary(ctx, second); !errors.Is(err, restore.ErrTargetBusy) {
		t.Errorf("a second restore into the directory the first is writing: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(dir, restore.MarkerName)); err != nil {
		t.Errorf("the first restore's marker: %v", err)
	}
	close(first.release)
	if err := <-done; err != nil {
		t.Fatalf("the first restore: %v", err)
	}
	if got, want := diskTree(t, dir), wantTree(t, lib, lib.Head); got != want {
		t.Fatalf("after the first restore:\ngot:\n%s\nwant:\n%s", got, want)
	}
	// Done, the directory is free again: a rerun with --force may write into it.
	second.Force = true
	if _, err := restore.RestoreLibrary(ctx, second); err != nil {
		t.Errorf("a restore once the first finished: %v", err)
	}
}
