package restore_test

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"seafbak/internal/seafgen"
	"seafbak/internal/testenv"
	"seafbak/restore"
)

// deepLibrary backs up a library whose tree is levels directories deep: at every level
// a directory "d" (the next level) and a file "f.txt"; the deepest level also holds a
// multi-block file. Its paths are far longer than PATH_MAX.
func deepLibrary(t testing.TB, levels int) (*testenv.Env, *seafgen.Library) {
	t.Helper()
	env := testenv.New(t, srv)
	g := seafgen.New(env.PrimaryDir)
	g.BlockSize = 4096
	lib, err := g.NewLibrary(seafgen.LibraryOptions{Name: "Deep", Owner: "alice@example.com"})
	must(t, err)
	changes := make([]seafgen.Change, 0, levels+1)
	dir := ""
	for i := range levels {
		changes = append(changes, seafgen.Put(dir+"f.txt", []byte(deepContent(i))))
		dir += "d/"
	}
	changes = append(changes, seafgen.Put(dir+"big.bin", testenv.RandomBytes(20000, 5)))
	testenv.Commit(t, lib, "deep", changes...)
	env.Publish(lib)
	testenv.SyncOK(t, env.Engine(false), lib.ID)
	return env, lib
}

func deepContent(level int) string { return "level " + strconv.Itoa(level) + "\n" }

// checkDeep walks a restored deep tree one level at a time (its paths are too long for
// path-based calls): every file's content and every entry's mtime.
func checkDeep(t *testing.T, dir string, levels int, mtime int64) {
	t.Helper()
	r, err := os.OpenRoot(dir)
	must(t, err)
	defer func() { r.Close() }()
	for i := range levels {
		b, err := r.ReadFile("f.txt")
		if err != nil || string(b) != deepContent(i) {
			t.Fatalf("level %d: f.txt = %q, %v", i, b, err)
		}
		for _, name := range []string{"f.txt", "d"} {
			fi, err := r.Lstat(name)
			must(t, err)
			if fi.ModTime().Unix() != mtime {
				t.Fatalf("level %d: %s mtime %d, want %d", i, name, fi.ModTime().Unix(), mtime)
			}
		}
		ents, err := fs.ReadDir(r.FS(), ".")
		must(t, err)
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		if strings.Join(names, " ") != "d f.txt" {
			t.Fatalf("level %d holds %v", i, names)
		}
		sub, err := r.OpenRoot("d")
		must(t, err)
		r.Close()
		r = sub
	}
	if fi, err := r.Stat("big.bin"); err != nil || fi.Size() != 20000 {
		t.Fatalf("deepest level: big.bin %v, %v", fi, err)
	}
}

// A tree 2,000 levels deep (paths of 4 KB and more) restores whole, with its mtimes.
func TestRestoreDeepTree(t *testing.T) {
	const levels = 2000
	env, lib := deepLibrary(t, levels)
	dir := filepath.Join(t.TempDir(), "out")
	res, err := restore.RestoreLibrary(context.Background(), restore.LibraryOptions{
		Store: env.Store, State: env.State, RepoID: lib.ID, Dir: dir, Fsync: true})
	must(t, err)
	if res.Dirs != levels || res.Files != levels+1 {
		t.Fatalf("restored %d dirs, %d files", res.Dirs, res.Files)
	}
	ctime, err := lib.Ctime(lib.Head)
	must(t, err)
	checkDeep(t, dir, levels, ctime)
}

// BenchmarkRestoreDeepTree restores a tree SEAFBAK_DEEP_LEVELS (default 5,000) levels
// deep: the restore must grow with the number of entries, not with entries times depth.
//
//	go test -run '^$' -bench RestoreDeepTree -benchtime 1x ./restore/
func BenchmarkRestoreDeepTree(b *testing.B) {
	levels := 5000
	if s := os.Getenv("SEAFBAK_DEEP_LEVELS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			b.Fatalf("SEAFBAK_DEEP_LEVELS=%q: want a positive number", s)
		}
		levels = n
	}
	env, lib := deepLibrary(b, levels)
	for i := 0; b.Loop(); i++ {
		dir := filepath.Join(b.TempDir(), fmt.Sprint("out", i))
		if _, err := restore.RestoreLibrary(context.Background(), restore.LibraryOptions{
			Store: env.Store, State: env.State, RepoID: lib.ID, Dir: dir}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(levels), "levels")
}
