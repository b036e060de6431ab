package restore_test

import (
	"bytes"
	"compress/zlib"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"seafbak/internal/seafgen"
	"seafbak/internal/testenv"
	"seafbak/restore"
	"seafbak/state"
	"seafbak/sync/object"
	"seafbak/sync/store"
)

// Three points of a generated library's history (by id, by time, the head), a virtual
// library, and the refusal of an encrypted one: byte for byte and mtime for mtime.
func TestRestoreGeneratedHistory(t *testing.T) {
	env, g := primaryWithGenerator(t)
	lib, rc := richLibrary(t, g)
	enc, err := g.NewLibrary(seafgen.LibraryOptions{Name: "Secret", Owner: "bob@example.com", Encrypted: true, Password: "pw"})
	must(t, err)
	testenv.Commit(t, enc, "Added", seafgen.Put("plan.txt", testenv.RandomBytes(10000, 3)))
	virt, err := g.NewVirtualLibrary(lib, "folder", "Folder")
	must(t, err)
	testenv.Commit(t, virt, "Edited in the virtual library", seafgen.Put("sub/v.txt", testenv.RandomBytes(9000, 8)))
	env.Publish(lib, enc, virt)
	eng := env.Engine(false)
	for _, l := range []*seafgen.Library{lib, enc, virt} {
		testenv.SyncOK(t, eng, l.ID)
	}
	ctx := context.Background()
	rlib := restore.Library{RepoID: lib.ID, StoreID: lib.StoreID}

	points := []struct {
		name   string
		opts   restore.LibraryOptions
		commit string
	}{
		{"first commit by id", restore.LibraryOptions{Commit: rc.first}, rc.first},
		// The offline commit is older than the merge and newer than the rename, but the
		// primary never served it: until the file server merged it (as the second
		// parent), the library was at the rename. By time, that is what comes back; by
		// id, the offline commit.
		{"time of an offline commit", restore.LibraryOptions{At: ctimeOf(t, lib, rc.side).Add(500 * time.Millisecond)}, rc.renamed},
		{"offline commit by id", restore.LibraryOptions{Commit: rc.side}, rc.side},
		{"merge by time", restore.LibraryOptions{At: ctimeOf(t, lib, rc.merge)}, rc.merge},
		{"head", restore.LibraryOptions{}, lib.Head},
	}
	for _, p := range points {
		t.Run(p.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "out")
			o := p.opts
			o.Store, o.State, o.RepoID, o.Dir, o.Parallel = env.Store, env.State, lib.ID, dir, 3
			var prog countingProgress
			o.Progress = &prog
			res, err := restore.RestoreLibrary(ctx, o)
			must(t, err)
			if res.Commit != p.commit {
				t.Fatalf("restored %s, want %s", res.Commit, p.commit)
			}
			if got, want := diskTree(t, dir), wantTree(t, lib, p.commit); got != want {
				t.Fatalf("tree of %s:\ngot:\n%s\nwant:\n%s", p.commit, got, want)
			}
			checkMtimes(t, env, rlib, p.commit, dir)
			if prog.todoObj != prog.doneObj || prog.todoBytes != prog.doneBytes || prog.doneBytes != res.Bytes || res.Bytes == 0 {
				t.Errorf("progress %+v, result %+v", prog, res)
			}
		})
	}

	// The virtual library: its commits under its own id, its objects under the origin's.
	dir := filepath.Join(t.TempDir(), "virt")
	res, err := restore.RestoreLibrary(ctx, restore.LibraryOptions{Store: env.Store, State: env.State, RepoID: virt.ID, Dir: dir})
	must(t, err)
	if res.StoreID != lib.ID || res.Commit != virt.Head {
		t.Fatalf("virtual library: %+v", res)
	}
	if got, want := diskTree(t, dir), wantTree(t, virt, virt.Head); got != want {
		t.Fatalf("virtual library:\ngot:\n%s\nwant:\n%s", got, want)
	}
	checkMtimes(t, env, restore.Library{RepoID: virt.ID, StoreID: virt.StoreID}, virt.Head, dir)

	// Encrypted: refused with a clear error, nothing written.
	dir = filepath.Join(t.TempDir(), "enc")
	_, err = restore.RestoreLibrary(ctx, restore.LibraryOptions{Store: env.Store, State: env.State, RepoID: enc.ID, Dir: dir})
	if !errors.Is(err, restore.ErrEncrypted) || !strings.Contains(err.Error(), enc.ID) {
		t.Fatalf("encrypted library: %v", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("encrypted refusal created the target: %v", err)
	}

	// Before the first commit there is nothing to restore.
	_, err = restore.RestoreLibrary(ctx, restore.LibraryOptions{Store: env.Store, State: env.State, RepoID: lib.ID,
		Dir: t.TempDir(), At: ctimeOf(t, lib, rc.created).Add(-time.Hour)})
	if !errors.Is(err, restore.ErrNoCommit) {
		t.Fatalf("time before history: %v", err)
	}
}

type countingProgress struct {
	todoObj, todoBytes, doneObj, doneBytes int64
}

func (p *countingProgress) Todo(o, b int64) { p.todoObj += o; p.todoBytes += b }
func (p *countingProgress) Done(o, b int64) { p.doneObj += o; p.doneBytes += b }

// Every commit of the library written by real Seafile software, restored from the
// backup, is what testdata's trees say.
func TestRestoreRealLibraryEveryCommit(t *testing.T) {
	env := testenv.New(t, srv)
	env.LoadRealLibrary()
	testenv.SyncOK(t, env.Engine(false), testenv.RealLibraryID)
	trees, err := filepath.Glob(filepath.Join(testenv.ModuleRoot(t), "testdata/real-library/trees/*.txt"))
	must(t, err)
	if len(trees) != 7 {
		t.Fatalf("%d trees", len(trees))
	}
	lib := restore.Library{RepoID: testenv.RealLibraryID, StoreID: testenv.RealLibraryID}
	for _, tf := range trees {
		id := strings.TrimSuffix(filepath.Base(tf), ".txt")
		want, err := os.ReadFile(tf)
		must(t, err)
		dir := filepath.Join(t.TempDir(), id)
		res, err := restore.RestoreLibrary(context.Background(), restore.LibraryOptions{
			Store: env.Store, State: env.State, RepoID: testenv.RealLibraryID, Commit: id, Dir: dir, Fsync: true})
		must(t, err)
		if got := diskTree(t, dir); got != string(want) {
			t.Errorf("commit %s:\ngot:\n%s\nwant:\n%s", id, got, want)
		}
		checkMtimes(t, env, lib, id, dir)
		if res.Commit != id {
			t.Errorf("restored %s", res.Commit)
		}
	}
}

// A non-empty target is refused unless forced; forced, symlinks planted in it (where a
// restored dir and a restored file go) are replaced, never followed out of the target.
func TestRestoreTargetNotEmptyAndSymlinks(t *testing.T) {
	env, lib, _ := backedUpRichLibrary(t)
	ctx := context.Background()

	base := t.TempDir()
	dir := filepath.Join(base, "out")
	outside := filepath.Join(base, "outside")
	must(t, os.MkdirAll(dir, 0o755))
	must(t, os.MkdirAll(outside, 0o755))
	victim := filepath.Join(outside, "victim.txt")
	must(t, os.WriteFile(victim, []byte("precious"), 0o644))
	must(t, os.Symlink(outside, filepath.Join(dir, "folder")))                        // a dir of the library
	must(t, os.Symlink(victim, filepath.Join(dir, "empty.txt")))                      // a file of the library
	must(t, os.Symlink("../outside", filepath.Join(dir, "new-empty")))                // relative, escaping
	must(t, os.WriteFile(filepath.Join(dir, "unrelated.txt"), []byte("keep"), 0o644)) // not in the library

	opts := restore.LibraryOptions{Store: env.Store, State: env.State, RepoID: lib.ID, Dir: dir}
	if _, err := restore.RestoreLibrary(ctx, opts); !errors.Is(err, restore.ErrNotEmpty) {
		t.Fatalf("non-empty target: %v", err)
	}
	opts.Force = true
	_, err := restore.RestoreLibrary(ctx, opts)
	must(t, err)

	if b, err := os.ReadFile(victim); err != nil || string(b) != "precious" {
		t.Fatalf("file outside the target changed: %q %v", b, err)
	}
	ents, err := os.ReadDir(outside)
	must(t, err)
	if len(ents) != 1 {
		t.Fatalf("outside dir got entries: %v", ents)
	}
	must(t, os.Remove(filepath.Join(dir, "unrelated.txt")))
	if got, want := diskTree(t, dir), wantTree(t, lib, lib.Head); got != want {
		t.Fatalf("forced restore:\ngot:\n%s\nwant:\n%s", got, want)
	}

	// A directory where a file goes is not deleted: the restore says so.
	dir2 := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(dir2, "big.bin", "mine"), 0o755))
	opts.Dir = dir2
	if _, err := restore.RestoreLibrary(ctx, opts); err == nil || !strings.Contains(err.Error(), "big.bin") {
		t.Fatalf("dir in the way of a file: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir2, "big.bin", "mine")); err != nil {
		t.Fatalf("user's directory touched: %v", err)
	}
	entries, _ := os.ReadDir(dir2)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), restore.TempPrefix) {
			t.Fatalf("temp file left after failure: %s", e.Name())
		}
	}
}

// hostileStore is a backup store holding one library whose tree was forged: the fs
// objects hash to their ids, but names try to leave the target directory.
type hostileStore struct {
	s      *store.FS
	repo   string
	commit string
}

func deflate(t *testing.T, plain string) (data []byte, id string) {
	var buf bytes.Buffer
	w := zlib.NewWriter(&buf)
	w.Write([]byte(plain))
	must(t, w.Close())
	sum := sha1.Sum([]byte(plain))
	return buf.Bytes(), hex.EncodeToString(sum[:])
}

func newHostileStore(t *testing.T, root string, entries func(fileID string) string) *hostileStore {
	ctx := context.Background()
	s, err := store.NewFS(root, store.Batch)
	must(t, err)
	h := &hostileStore{s: s, repo: "0badc0de-0000-4000-8000-000000000001"}
	content := []byte("evil\n")
	bsum := sha1.Sum(content)
	blockID := hex.EncodeToString(bsum[:])
	must(t, store.Put(ctx, s, object.KindBlock, h.repo, blockID, content))
	fileData, fileID := deflate(t, fmt.Sprintf(`{"block_ids": ["%s"], "size": 5, "type": 1, "version": 1}`, blockID))
	must(t, store.Put(ctx, s, object.KindFS, h.repo, fileID, fileData))
	dirData, dirID := deflate(t, entries(fileID))
	must(t, store.Put(ctx, s, object.KindFS, h.repo, dirID, dirData))
	rootData, rootID := deflate(t, fmt.Sprintf(`{"dirents": [{"id": "%s", "mode": 16384, "mtime": 1, "name": "sub"}], "type": 3, "version": 1}`, dirID))
	must(t, store.Put(ctx, s, object.KindFS, h.repo, rootID, rootData))
	h.commit = strings.Repeat("c", 40)
	c := fmt.Sprintf(`{"commit_id":"%s","repo_id":"%s","root_id":"%s","creator_name":"mallory","description":"forged","ctime":1,"parent_id":null,"second_parent_id":null,"version":1}`, h.commit, h.repo, rootID)
	must(t, store.Put(ctx, s, object.KindCommit, h.repo, h.commit, []byte(c)))
	return h
}

// A forged tree whose names would leave the target (or are not names at all) fails the
// restore before anything is written, inside the target or outside it.
func TestRestoreHostileNames(t *testing.T) {
	for name, ent := range map[string]string{
		"dotdot slash":  `../evil`,
		"deep escape":   `../../../../../../tmp/evil`,
		"dotdot":        `..`,
		"dot":           `.`,
		"absolute":      `/tmp/evil`,
		"nul":           `evil\u0000.txt`,
		"empty":         ``,
		"trailing dots": `x/..`,
	} {
		t.Run(name, func(t *testing.T) {
			base := t.TempDir()
			h := newHostileStore(t, filepath.Join(base, "backup"), func(fileID string) string {
				return fmt.Sprintf(`{"dirents": [{"id": "%s", "mode": 33188, "modifier": "m", "mtime": 1, "name": "%s", "size": 5}, {"id": "%s", "mode": 33188, "modifier": "m", "mtime": 1, "name": "ok.txt", "size": 5}], "type": 3, "version": 1}`, fileID, ent, fileID)
			})
			before := listAll(t, base)
			dir := filepath.Join(base, "out")
			_, err := restore.RestoreLibrary(context.Background(), restore.LibraryOptions{
				Store: h.s, RepoID: h.repo, Commit: h.commit, Dir: dir})
			if err == nil || !object.IsInvalid(err) {
				t.Fatalf("forged name %q restored: %v", ent, err)
			}
			if after := listAll(t, base); after != before {
				t.Fatalf("files appeared:\nbefore:\n%s\nafter:\n%s", before, after)
			}
			if _, err := os.Stat("/tmp/evil"); err == nil {
				t.Fatal("/tmp/evil exists")
			}
		})
	}

	// The same store with a good name restores: the forged one failed for its name.
	base := t.TempDir()
	h := newHostileStore(t, filepath.Join(base, "backup"), func(fileID string) string {
		return fmt.Sprintf(`{"dirents": [{"id": "%s", "mode": 33188, "modifier": "m", "mtime": 1, "name": "fine", "size": 5}], "type": 3, "version": 1}`, fileID)
	})
	dir := filepath.Join(base, "out")
	_, err := restore.RestoreLibrary(context.Background(), restore.LibraryOptions{Store: h.s, RepoID: h.repo, Commit: h.commit, Dir: dir})
	must(t, err)
	if b, err := os.ReadFile(filepath.Join(dir, "sub", "fine")); err != nil || string(b) != "evil\n" {
		t.Fatalf("control restore: %q %v", b, err)
	}

	// A dir entry pointing at a file object, and a file entry pointing at a dir: refused.
	base = t.TempDir()
	h = newHostileStore(t, filepath.Join(base, "backup"), func(fileID string) string {
		return fmt.Sprintf(`{"dirents": [{"id": "%s", "mode": 16384, "mtime": 1, "name": "notadir"}], "type": 3, "version": 1}`, fileID)
	})
	_, err = restore.RestoreLibrary(context.Background(), restore.LibraryOptions{Store: h.s, RepoID: h.repo, Commit: h.commit, Dir: filepath.Join(base, "out")})
	if !object.IsInvalid(err) {
		t.Fatalf("dir entry on a file object: %v", err)
	}
}

func listAll(t *testing.T, root string) string {
	var lines []string
	filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err == nil {
			lines = append(lines, p)
		}
		return nil
	})
	return strings.Join(lines, "\n")
}

// A damaged block stops the restore at that file, and the file never appears under its
// name: only whole, verified files are renamed into place.
func TestRestoreDamagedBlock(t *testing.T) {
	env, g := primaryWithGenerator(t)
	lib, err := g.NewLibrary(seafgen.LibraryOptions{Name: "Damaged"})
	must(t, err)
	testenv.Commit(t, lib, "files", seafgen.Put("big.bin", testenv.RandomBytes(30000, 7)), seafgen.Put("ok.txt", []byte("fine")))
	env.Publish(lib)
	testenv.SyncOK(t, env.Engine(false), lib.ID)
	var blocks []string
	c, err := restore.Commit(context.Background(), env.Store, restore.Library{RepoID: lib.ID, StoreID: lib.StoreID}, lib.Head)
	must(t, err)
	must(t, restore.Walk(context.Background(), env.Store, restore.Library{RepoID: lib.ID, StoreID: lib.StoreID}, c.RootID, func(e restore.Entry) error {
		if e.Path == "big.bin" {
			blocks = e.Blocks
		}
		return nil
	}))
	p := testenv.ObjectPath(env.BackupDir, object.KindBlock, lib.StoreID, blocks[len(blocks)-1])
	b, err := os.ReadFile(p)
	must(t, err)
	b[len(b)/2] ^= 1
	must(t, os.WriteFile(p, b, 0o644))

	dir := t.TempDir()
	_, err = restore.RestoreLibrary(context.Background(), restore.LibraryOptions{Store: env.Store, State: env.State, RepoID: lib.ID, Dir: dir, Parallel: 1})
	if !object.IsInvalid(err) || !strings.Contains(err.Error(), "big.bin") || !strings.Contains(err.Error(), blocks[len(blocks)-1]) {
		t.Fatalf("damaged block: %v", err)
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if e.Name() == "big.bin" || strings.HasPrefix(e.Name(), restore.TempPrefix) {
			t.Fatalf("%s left in the target", e.Name())
		}
	}
}

// A dirent's mtime is restored whatever int64 it is, as far as the filesystem can hold
// it: os.Chtimes wraps outside 1678–2262 (a Windows zero time, 1601, came back as 2185).
func TestRestoreMtimesOutsideNanosecondRange(t *testing.T) {
	const (
		y2300 = 10413792000  // 2300-01-01, within ext4's range and tmpfs's
		y1601 = -11644473600 // before ext4's 1901: it keeps its earliest time
	)
	base := t.TempDir()
	h := newHostileStore(t, filepath.Join(base, "backup"), func(fileID string) string {
		return fmt.Sprintf(`{"dirents": [{"id": "%s", "mode": 33188, "modifier": "m", "mtime": %d, "name": "zfuture", "size": 5}, {"id": "%s", "mode": 33188, "modifier": "m", "mtime": %d, "name": "old", "size": 5}, {"id": "%s", "mode": 16384, "mtime": %d, "name": "emptydir"}], "type": 3, "version": 1}`,
			fileID, int64(y2300), fileID, int64(y1601), object.EmptyID, int64(y2300))
	})
	dir := filepath.Join(base, "out")
	_, err := restore.RestoreLibrary(context.Background(), restore.LibraryOptions{Store: h.s, RepoID: h.repo, Commit: h.commit, Dir: dir})
	must(t, err)
	mtime := func(name string) time.Time {
		fi, err := os.Stat(filepath.Join(dir, "sub", name))
		must(t, err)
		return fi.ModTime()
	}
	if got := mtime("zfuture"); got.Unix() != y2300 {
		t.Errorf("file of 2300 restored with mtime %v", got)
	}
	if got := mtime("emptydir"); got.Unix() != y2300 {
		t.Errorf("folder of 2300 restored with mtime %v", got)
	}
	if got := mtime("old"); got.Year() > 1901 {
		t.Errorf("file of 1601 restored with mtime %v", got)
	}
}

// A restore whose final flush fails is unfinished: it fails, the marker stays, and
// running it again finishes it. (Its removal is what says every file is on disk.)
func TestRestoreFailedFlushLeavesItUnfinished(t *testing.T) {
	base := t.TempDir()
	h := newHostileStore(t, filepath.Join(base, "backup"), func(fileID string) string {
		return fmt.Sprintf(`{"dirents": [{"id": "%s", "mode": 33188, "modifier": "m", "mtime": 1, "name": "f", "size": 5}], "type": 3, "version": 1}`, fileID)
	})
	dir := filepath.Join(base, "out")
	opts := restore.LibraryOptions{Store: h.s, RepoID: h.repo, Commit: h.commit, Dir: dir}
	undo := restore.FailSyncfs(syscall.EIO)
	_, err := restore.RestoreLibrary(context.Background(), opts)
	undo()
	if !errors.Is(err, syscall.EIO) {
		t.Fatalf("restore whose flush failed: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, restore.MarkerName)); err != nil {
		t.Fatalf("the marker of an unflushed restore: %v", err)
	}
	res, err := restore.RestoreLibrary(context.Background(), opts)
	must(t, err)
	if !res.Resumed {
		t.Error("the second restore did not finish the first")
	}
	if _, err := os.Stat(filepath.Join(dir, restore.MarkerName)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the marker after a finished restore: %v", err)
	}
}

// A forged tree whose file entry names a directory object, met first through a proper
// directory entry, fails verify as it fails restore: the objects met were keyed by id
// alone, so the second meeting was skipped and verify said OK.
func TestVerifyFindsAFileEntryNamingADirectoryMetBefore(t *testing.T) {
	ctx := context.Background()
	var dirData []byte
	var dirID string
	h := newHostileStore(t, filepath.Join(t.TempDir(), "backup"), func(fileID string) string {
		dirData, dirID = deflate(t, fmt.Sprintf(`{"dirents": [{"id": "%s", "mode": 33188, "modifier": "m", "mtime": 1, "name": "g", "size": 5}], "type": 3, "version": 1}`, fileID))
		return fmt.Sprintf(`{"dirents": [{"id": "%s", "mode": 16384, "mtime": 1, "name": "d"}, {"id": "%s", "mode": 33188, "modifier": "m", "mtime": 1, "name": "f", "size": 5}], "type": 3, "version": 1}`, dirID, dirID)
	})
	must(t, store.Put(ctx, h.s, object.KindFS, h.repo, dirID, dirData))
	must(t, h.s.Sync(ctx))
	st, err := state.Open(t.TempDir())
	must(t, err)
	must(t, st.Save(state.Library{ID: h.repo, StoreID: h.repo, Head: h.commit}))
	rep, err := restore.Verify(ctx, restore.VerifyOptions{Store: h.s, State: st})
	must(t, err)
	if rep.OK() {
		t.Fatal("verify passed a file entry that names a directory")
	}
	var found bool
	for _, l := range rep.Libraries {
		for _, p := range l.Problems {
			found = found || p.ID == dirID && p.Path == "/sub/f" && strings.Contains(p.Error, "disagree on being a directory")
		}
	}
	if !found {
		t.Errorf("the problem is not named at /sub/f: %+v", rep.Libraries)
	}
}

// Two names the target takes as one and found only as they are written (Unicode forms
// on a normalising filesystem, which no filesystem here is) stop a restore with its
// marker left, saying so. A rerun, which writes over what is there, refuses rather than
// letting one name replace the other and reporting success (found by review); --force
// accepts it.
func TestRerunOfARestoreStoppedAtACollisionRefuses(t *testing.T) {
	base := t.TempDir()
	h := newHostileStore(t, filepath.Join(base, "backup"), func(fileID string) string {
		return fmt.Sprintf(`{"dirents": [{"id": "%s", "mode": 33188, "modifier": "m", "mtime": 1, "name": "é.txt", "size": 5}], "type": 3, "version": 1}`, fileID)
	})
	opts := restore.LibraryOptions{Store: h.s, RepoID: h.repo, Commit: h.commit, Dir: filepath.Join(base, "out")}
	must(t, restore.MarkUnfinished(opts.Dir, h.repo, h.commit, "sub/é.txt and sub/é.txt: "+restore.ErrNameCollision.Error()))
	_, err := restore.RestoreLibrary(context.Background(), opts)
	if err == nil || !strings.Contains(err.Error(), "stopped at: sub/é.txt") || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("rerun: %v", err)
	}
	if _, err := os.Stat(filepath.Join(opts.Dir, "sub")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the rerun wrote: %v", err)
	}
	opts.Force = true
	if _, err := restore.RestoreLibrary(context.Background(), opts); err != nil {
		t.Fatalf("rerun with --force: %v", err)
	}
}

// A library may hold "Report.txt" beside "report.txt" (Seafile compares names exactly).
// Restored to a filesystem that ignores case, one replaced the other and the restore
// said it was done: it is refused before anything is written, naming both.
func TestRestoreRefusesNamesOneToACaseInsensitiveTarget(t *testing.T) {
	base := t.TempDir()
	h := newHostileStore(t, filepath.Join(base, "backup"), func(fileID string) string {
		return fmt.Sprintf(`{"dirents": [{"id": "%s", "mode": 33188, "modifier": "m", "mtime": 1, "name": "report.txt", "size": 5}, {"id": "%s", "mode": 33188, "modifier": "m", "mtime": 1, "name": "Report.txt", "size": 5}], "type": 3, "version": 1}`, fileID, fileID)
	})
	opts := restore.LibraryOptions{Store: h.s, RepoID: h.repo, Commit: h.commit, Dir: filepath.Join(base, "out")}
	// This machine's filesystems tell the two apart: the restore writes both.
	root, err := os.OpenRoot(base)
	must(t, err)
	defer root.Close()
	if insensitive, err := restore.IgnoresCase(root); insensitive || err != nil {
		t.Fatalf("the test directory's filesystem ignores case: %v %v", insensitive, err)
	}
	_, err = restore.RestoreLibrary(context.Background(), opts)
	must(t, err)
	opts.Dir = filepath.Join(base, "out2")
	undo := restore.AssumeCaseInsensitive()
	defer undo()
	_, err = restore.RestoreLibrary(context.Background(), opts)
	if !errors.Is(err, restore.ErrNameCollision) || !strings.Contains(err.Error(), "sub/report.txt and sub/Report.txt") {
		t.Fatalf("restore of two names one to the target: %v", err)
	}
	if _, err := os.Stat(filepath.Join(opts.Dir, "sub")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("something was written before the refusal: %v", err)
	}
	for _, same := range [][2]string{{"Report.txt", "REPORT.TXT"}, {"ΣΑΣ", "σας"}, {"Straße", "STRAßE"}} {
		if restore.FoldCase(same[0]) != restore.FoldCase(same[1]) {
			t.Errorf("%q and %q fold apart", same[0], same[1])
		}
	}
	if restore.FoldCase("a.txt") == restore.FoldCase("b.txt") {
		t.Error("different names fold together")
	}
}

// Seafile's client checks a file out executable when its dirent's mode has the owner's
// execute bit (0100755), and not otherwise; a restore does the same.
func TestRestoreKeepsTheExecuteBit(t *testing.T) {
	base := t.TempDir()
	h := newHostileStore(t, filepath.Join(base, "backup"), func(fileID string) string {
		return fmt.Sprintf(`{"dirents": [{"id": "%s", "mode": 33261, "modifier": "m", "mtime": 1, "name": "run.sh", "size": 5}, {"id": "%s", "mode": 33188, "modifier": "m", "mtime": 1, "name": "plain.txt", "size": 5}], "type": 3, "version": 1}`, fileID, fileID)
	})
	dir := filepath.Join(base, "out")
	_, err := restore.RestoreLibrary(context.Background(), restore.LibraryOptions{Store: h.s, RepoID: h.repo, Commit: h.commit, Dir: dir})
	must(t, err)
	for name, exec := range map[string]bool{"run.sh": true, "plain.txt": false} {
		fi, err := os.Stat(filepath.Join(dir, "sub", name))
		must(t, err)
		if got := fi.Mode().Perm()&0o100 != 0; got != exec {
			t.Errorf("%s restored as %v, executable %v, want %v", name, fi.Mode().Perm(), got, exec)
		}
	}
}

// The primary's head moved back (an admin's reset, a repair): the abandoned head is kept
// as an old head. By a time after the move, the library is at its new head; by a time
// before it, at the abandoned one.
func TestRestoreAtFollowsTheHeadsThePrimaryServed(t *testing.T) {
	env, g := primaryWithGenerator(t)
	lib, err := g.NewLibrary(seafgen.LibraryOptions{Name: "Reset"})
	must(t, err)
	c1 := testenv.Commit(t, lib, "one", seafgen.Put("f.txt", []byte("1")))
	c2 := testenv.Commit(t, lib, "two, undone later", seafgen.Put("bad.txt", []byte("2")))
	env.Publish(lib)
	testenv.SyncOK(t, env.Engine(false), lib.ID)
	lib.SetHead(c1)
	env.Publish(lib)
	if res := testenv.SyncOK(t, env.Engine(false), lib.ID); !res.OldHeadKept {
		t.Fatalf("old head not kept: %+v", res)
	}
	rec, _, err := env.State.Load(lib.ID)
	must(t, err)
	if len(rec.OldHeads) != 1 || rec.OldHeads[0].Head != c2 {
		t.Fatalf("old heads %+v", rec.OldHeads)
	}
	ctx := context.Background()
	for _, c := range []struct {
		name string
		at   time.Time
		want string
	}{
		{"now", time.Now(), c1},
		{"before the move back", rec.OldHeads[0].Replaced.Add(-time.Nanosecond), c2},
	} {
		res, err := restore.RestoreLibrary(ctx, restore.LibraryOptions{Store: env.Store, State: env.State, RepoID: lib.ID, Dir: t.TempDir(), At: c.at})
		must(t, err)
		if res.Commit != c.want {
			t.Errorf("--at %s: restored %s (%q), want %s", c.name, res.Commit, res.Description, c.want)
		}
	}
}
