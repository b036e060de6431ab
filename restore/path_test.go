package restore_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"seafbak/internal/seafgen"
	"seafbak/internal/testenv"
	"seafbak/restore"
)

// wantSubtree is wantTree of the folder prefix (no slashes around) of a commit, with
// paths relative to it: what a restore of that folder puts into its target.
func wantSubtree(t *testing.T, lib *seafgen.Library, commitID, prefix string) string {
	t.Helper()
	all, err := lib.Tree(commitID)
	must(t, err)
	var es []seafgen.Entry
	for _, e := range all {
		if rel, ok := strings.CutPrefix(e.Path, prefix+"/"); ok && rel != "" {
			e.Path = rel
			es = append(es, e)
		}
	}
	if len(es) == 0 {
		t.Fatalf("%s has nothing under %s", commitID, prefix)
	}
	return seafgen.FormatTree(es)
}

// checkMtimesUnder is checkMtimes for what a restore of prefix (a folder, or a file
// whose target is dir/<name>) wrote into dir.
func checkMtimesUnder(t *testing.T, env *testenv.Env, lib restore.Library, commitID, prefix string, file bool, dir string) {
	t.Helper()
	ctx := context.Background()
	c, err := restore.Commit(ctx, env.Store, lib, commitID)
	must(t, err)
	n := 0
	must(t, restore.Walk(ctx, env.Store, lib, c.RootID, func(e restore.Entry) error {
		var rel string
		switch {
		case file && e.Path == prefix:
			rel = filepath.Base(prefix)
		case !file && strings.HasPrefix(e.Path, prefix+"/"):
			rel = strings.TrimPrefix(e.Path, prefix+"/")
		default:
			return nil
		}
		fi, err := os.Lstat(filepath.Join(dir, filepath.FromSlash(rel)))
		if err != nil {
			return err
		}
		if got := fi.ModTime().Unix(); got != e.Mtime {
			t.Errorf("%s: mtime %d, dirent says %d", e.Path, got, e.Mtime)
		}
		if fi.IsDir() != e.Dir || !e.Dir && fi.Size() != e.Size {
			t.Errorf("%s: dir %v size %d, want dir %v size %d", e.Path, fi.IsDir(), fi.Size(), e.Dir, e.Size)
		}
		n++
		return nil
	}))
	if n == 0 {
		t.Errorf("nothing under %s checked at %s", prefix, commitID)
	}
}

// One folder or one file of a library, at an older commit or the head: a folder's
// contents go into the target, a file goes to target/<name>; bytes and mtimes are the
// backup's. The folder of the old commit was renamed since: it is found at that commit
// under its old name, and not at the head.
func TestRestorePath(t *testing.T) {
	env, lib, rc := backedUpRichLibrary(t)
	ctx := context.Background()
	rlib := restore.Library{RepoID: lib.ID, StoreID: lib.StoreID}
	opts := func(path, dir string) restore.LibraryOptions {
		return restore.LibraryOptions{Store: env.Store, State: env.State, RepoID: lib.ID, Path: path, Dir: dir, Parallel: 2}
	}

	folders := []struct {
		name, path, prefix string
		o                  restore.LibraryOptions
		commit             string
	}{
		{"nested folder at an older commit by time", "/dir", "dir", restore.LibraryOptions{At: ctimeOf(t, lib, rc.first)}, rc.first},
		{"its subfolder, trailing slash", "/dir/sub/", "dir/sub", restore.LibraryOptions{Commit: rc.first}, rc.first},
		{"renamed folder at the head", "/folder/sub", "folder/sub", restore.LibraryOptions{}, lib.Head},
		{"non-ASCII folder", "/日本語", "日本語", restore.LibraryOptions{}, lib.Head},
	}
	for _, f := range folders {
		t.Run(f.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "out")
			o := opts(f.path, dir)
			o.Commit, o.At = f.o.Commit, f.o.At
			var prog countingProgress
			o.Progress = &prog
			res, err := restore.RestoreLibrary(ctx, o)
			must(t, err)
			if res.Commit != f.commit || res.Path != "/"+f.prefix || res.Files == 0 {
				t.Fatalf("result %+v, want commit %s", res, f.commit)
			}
			if got, want := diskTree(t, dir), wantSubtree(t, lib, f.commit, f.prefix); got != want {
				t.Fatalf("%s at %s:\ngot:\n%s\nwant:\n%s", f.path, f.commit, got, want)
			}
			checkMtimesUnder(t, env, rlib, f.commit, f.prefix, false, dir)
			if prog.todoObj != prog.doneObj || prog.todoBytes != prog.doneBytes || prog.doneBytes != res.Bytes {
				t.Errorf("progress %+v, result %+v", prog, res)
			}
		})
	}

	files := []struct {
		name, path string
		commit     string
		content    []byte
	}{
		{"multi-block file at an older commit", "/big.bin", rc.first, testenv.RandomBytes(20000, 1)},
		{"file in a renamed folder", "/dir/sub/deeper/x/y.txt", rc.first, []byte("y")},
		{"non-ASCII name with spaces", "/naïve café.txt", lib.Head, []byte("accents")},
		{"non-ASCII folder and file", "/日本語/ファイル.txt", lib.Head, []byte("nihongo")},
		{"empty file", "/empty.txt", lib.Head, nil},
	}
	for _, f := range files {
		t.Run(f.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "out")
			o := opts(f.path, dir)
			o.Commit = f.commit
			res, err := restore.RestoreLibrary(ctx, o)
			must(t, err)
			if res.Files != 1 || res.Dirs != 0 || res.Bytes != int64(len(f.content)) || res.Path != f.path {
				t.Fatalf("result %+v", res)
			}
			ents, err := os.ReadDir(dir)
			must(t, err)
			name := f.path[strings.LastIndex(f.path, "/")+1:]
			if len(ents) != 1 || ents[0].Name() != name {
				t.Fatalf("target holds %v, want only %s", ents, name)
			}
			b, err := os.ReadFile(filepath.Join(dir, name))
			must(t, err)
			if string(b) != string(f.content) {
				t.Fatalf("%s: %d bytes, want %d", f.path, len(b), len(f.content))
			}
			checkMtimesUnder(t, env, rlib, f.commit, strings.TrimPrefix(f.path, "/"), true, dir)
		})
	}

	// An empty folder restores to an empty target.
	dir := filepath.Join(t.TempDir(), "empty")
	o := opts("/empty-dir", dir)
	o.Commit = rc.first
	res, err := restore.RestoreLibrary(ctx, o)
	must(t, err)
	if ents, err := os.ReadDir(dir); err != nil || len(ents) != 0 || res.Files != 0 || res.Dirs != 0 {
		t.Fatalf("empty folder: %v %v %+v", ents, err, res)
	}

	// "/" and "" are the whole library.
	for _, p := range []string{"", "/"} {
		dir := filepath.Join(t.TempDir(), "all")
		res, err := restore.RestoreLibrary(ctx, opts(p, dir))
		must(t, err)
		if res.Path != "" {
			t.Errorf("path %q restored as %q", p, res.Path)
		}
		if got, want := diskTree(t, dir), wantTree(t, lib, lib.Head); got != want {
			t.Fatalf("path %q:\ngot:\n%s\nwant:\n%s", p, got, want)
		}
	}
}

// A path that is not in the commit, or goes through a file, or is not a path: a clear
// error naming the path and the commit, and nothing written, not even the target.
func TestRestorePathErrors(t *testing.T) {
	env, lib, rc := backedUpRichLibrary(t)
	ctx := context.Background()

	for _, c := range []struct {
		name, path, commit string
		is                 error
		says               []string
	}{
		{"renamed away at the head", "/dir/sub", lib.Head, restore.ErrPathNotFound, []string{"/dir/sub", lib.Head, `/ has no entry "dir"`}},
		{"missing deeper", "/folder/sub/nope", lib.Head, restore.ErrPathNotFound, []string{"/folder/sub/nope", lib.Head, `/folder/sub has no entry "nope"`}},
		{"deleted file", "/a.txt", lib.Head, restore.ErrPathNotFound, []string{"/a.txt", lib.Head}},
		{"not yet created", "/offline.txt", rc.first, restore.ErrPathNotFound, []string{"/offline.txt", rc.first}},
		{"wrong case", "/DIR/sub", rc.first, restore.ErrPathNotFound, []string{`there is "dir"`}},
		{"through a file", "/a.txt/x", rc.first, restore.ErrPathNotFound, []string{"/a.txt/x", rc.first, "/a.txt is a file, not a folder"}},
		{"through a deeper file", "/dir/sub/deep.txt/x/y", rc.first, restore.ErrPathNotFound, []string{"/dir/sub/deep.txt is a file"}},
		{"a file asked as a folder", "/a.txt/", rc.first, restore.ErrPathNotFound, []string{"/a.txt is a file, not a folder"}},
		{"relative", "dir/sub", rc.first, restore.ErrBadPath, []string{`"dir/sub"`, "starting with /"}},
		{"dotdot", "/dir/../a.txt", rc.first, restore.ErrBadPath, []string{".."}},
		{"dot", "/./dir", rc.first, restore.ErrBadPath, []string{`"."`}},
		{"empty component", "/dir//sub", rc.first, restore.ErrBadPath, []string{"empty component"}},
		{"only slashes", "//", rc.first, restore.ErrBadPath, []string{"empty component"}},
		{"nul", "/a.txt\x00", rc.first, restore.ErrBadPath, []string{"NUL"}},
		{"not UTF-8", "/caf\xe9", rc.first, restore.ErrBadPath, []string{"UTF-8"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "out")
			_, err := restore.RestoreLibrary(ctx, restore.LibraryOptions{Store: env.Store, State: env.State, RepoID: lib.ID, Commit: c.commit, Path: c.path, Dir: dir})
			if !errors.Is(err, c.is) {
				t.Fatalf("%q: %v, want %v", c.path, err, c.is)
			}
			for _, s := range c.says {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("%q: error %q does not say %q", c.path, err, s)
				}
			}
			if _, err := os.Lstat(dir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%q: target created: %v", c.path, err)
			}
		})
	}
}

// The marker records the path: a killed restore of one folder is finished by a rerun of
// that folder, and a restore of another path (or the whole library) into the same
// directory is another restore, refused with how to finish the first.
func TestRestorePathRerun(t *testing.T) {
	env, lib, rc := backedUpRichLibrary(t)
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "out")

	stopping := &failAfter{Store: env.Store}
	opts := restore.LibraryOptions{Store: stopping, State: env.State, RepoID: lib.ID, Commit: rc.first, Path: "/dir", Dir: dir, Parallel: 1}
	if _, err := restore.RestoreLibrary(ctx, opts); !errors.Is(err, errStopped) {
		t.Fatalf("interrupted restore: %v", err)
	}
	m, err := os.ReadFile(filepath.Join(dir, restore.MarkerName))
	if err != nil || !strings.Contains(string(m), `"path":"/dir"`) {
		t.Fatalf("marker: %q %v", m, err)
	}

	opts.Store = env.Store
	for _, other := range []string{"", "/dir/sub", "/folder"} {
		o := opts
		o.Path = other
		if other == "/folder" {
			o.Commit = lib.Head
		}
		_, err := restore.RestoreLibrary(ctx, o)
		if !errors.Is(err, restore.ErrNotEmpty) || !strings.Contains(err.Error(), `--path "/dir"`) || !strings.Contains(err.Error(), "--commit "+rc.first) {
			t.Fatalf("rerun with path %q: %v", other, err)
		}
	}
	opts.Path = "/dir/" // the same folder
	res, err := restore.RestoreLibrary(ctx, opts)
	must(t, err)
	if !res.Resumed || res.Path != "/dir" {
		t.Fatalf("rerun: %+v", res)
	}
	if got, want := diskTree(t, dir), wantSubtree(t, lib, rc.first, "dir"); got != want {
		t.Fatalf("after the rerun:\ngot:\n%s\nwant:\n%s", got, want)
	}

	// A killed whole-library restore is not finished by a restore of one path.
	whole := filepath.Join(t.TempDir(), "whole")
	stopping.n.Store(0)
	if _, err := restore.RestoreLibrary(ctx, restore.LibraryOptions{Store: stopping, State: env.State, RepoID: lib.ID, Dir: whole}); !errors.Is(err, errStopped) {
		t.Fatalf("interrupted restore: %v", err)
	}
	_, err = restore.RestoreLibrary(ctx, restore.LibraryOptions{Store: env.Store, State: env.State, RepoID: lib.ID, Path: "/folder", Dir: whole})
	if !errors.Is(err, restore.ErrNotEmpty) || strings.Contains(err.Error(), "--path") || !strings.Contains(err.Error(), "(the whole library)") {
		t.Fatalf("path restore into a killed whole-library restore: %v", err)
	}
}
