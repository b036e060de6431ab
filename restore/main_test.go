package restore_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"seafbak/internal/mariadbtest"
	"seafbak/internal/seafgen"
	"seafbak/internal/testenv"
	"seafbak/restore"
	"seafbak/sync/object"
)

var srv *mariadbtest.Server

func TestMain(m *testing.M) { mariadbtest.Main(m, &srv) }

// primaryWithGenerator is an empty primary and backup plus a generator writing into the
// primary's data dir with small blocks, so ordinary test files span several blocks.
func primaryWithGenerator(t *testing.T) (*testenv.Env, *seafgen.Generator) {
	env := testenv.New(t, srv)
	g := seafgen.New(env.PrimaryDir)
	g.BlockSize = 4096
	return env, g
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// history of richLibrary, by name.
type richCommits struct {
	created, first, renamed, side, merge, changed string
}

// backedUpRichLibrary is richLibrary on a fresh primary, published and backed up.
func backedUpRichLibrary(t *testing.T) (*testenv.Env, *seafgen.Library, richCommits) {
	t.Helper()
	env, g := primaryWithGenerator(t)
	lib, rc := richLibrary(t, g)
	env.Publish(lib)
	testenv.SyncOK(t, env.Engine(false), lib.ID)
	return env, lib, rc
}

// richLibrary has history with everything Seafile trees hold: nested and renamed
// folders, deletes, empty files and dirs, multi-block files, non-ASCII names, a merge.
func richLibrary(t *testing.T, g *seafgen.Generator) (*seafgen.Library, richCommits) {
	lib, err := g.NewLibrary(seafgen.LibraryOptions{Name: "Docs", Owner: "alice@example.com"})
	must(t, err)
	var rc richCommits
	rc.created = lib.Head
	rc.first = testenv.Commit(t, lib, "Added files",
		seafgen.Put("a.txt", []byte("hello\n")),
		seafgen.Put("dir/sub/deep.txt", []byte("deep")),
		seafgen.Put("dir/sub/deeper/x/y.txt", []byte("y")),
		seafgen.Put("empty.txt", nil),
		seafgen.Mkdir("empty-dir"),
		seafgen.Mkdir("dir/empty-sub"),
		seafgen.Put("big.bin", testenv.RandomBytes(20000, 1)),
		seafgen.Put("exact.bin", testenv.RandomBytes(8192, 9)), // exactly two blocks
		seafgen.Put("naïve café.txt", []byte("accents")),
		seafgen.Put("日本語/ファイル.txt", []byte("nihongo")),
		seafgen.Put("spaces and 'quotes' (1).txt", []byte("q")),
	)
	rc.renamed = testenv.Commit(t, lib, "Renamed dir, deleted a.txt", seafgen.Rename("dir", "folder"), seafgen.Delete("a.txt"))
	rc.side, err = lib.CommitOn(rc.first, "Offline edit", seafgen.Put("offline.txt", []byte("from the laptop")), seafgen.Put("big.bin", testenv.RandomBytes(13000, 4)))
	must(t, err)
	rc.merge, err = lib.Merge(rc.side)
	must(t, err)
	rc.changed = testenv.Commit(t, lib, "Changed big.bin", seafgen.Put("big.bin", append(testenv.RandomBytes(20000, 1)[:12000], testenv.RandomBytes(9000, 2)...)),
		seafgen.Delete("empty-dir"), seafgen.Mkdir("new-empty"))
	return lib, rc
}

// diskTree renders a restored directory in the format of seafgen.FormatTree, failing on
// anything that is neither a regular file nor a directory (a symlink, a temp file).
func diskTree(t *testing.T, dir string) string {
	t.Helper()
	var es []seafgen.Entry
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == dir {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		if strings.HasPrefix(d.Name(), restore.TempPrefix) {
			t.Errorf("temp file left: %s", rel)
		}
		switch {
		case d.IsDir():
			es = append(es, seafgen.Entry{Path: rel + "/", Dir: true})
		case d.Type().IsRegular():
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			h := sha256.New()
			n, err := io.Copy(h, f)
			f.Close()
			if err != nil {
				return err
			}
			es = append(es, seafgen.Entry{Path: rel, Size: n, SHA256: hex.EncodeToString(h.Sum(nil))})
		default:
			t.Errorf("%s: not a file or dir: %v", rel, d.Type())
		}
		return nil
	})
	must(t, err)
	return seafgen.FormatTree(es)
}

// checkMtimes compares every restored entry's mtime with its dirent in the backup.
func checkMtimes(t *testing.T, env *testenv.Env, lib restore.Library, commitID, dir string) {
	t.Helper()
	ctx := context.Background()
	c, err := restore.Commit(ctx, env.Store, lib, commitID)
	must(t, err)
	n := 0
	err = restore.Walk(ctx, env.Store, lib, c.RootID, func(e restore.Entry) error {
		fi, err := os.Lstat(filepath.Join(dir, filepath.FromSlash(e.Path)))
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
	})
	must(t, err)
	if n == 0 && c.RootID != object.EmptyID {
		t.Errorf("no entries checked at %s", commitID)
	}
}

func wantTree(t *testing.T, lib *seafgen.Library, commitID string) string {
	t.Helper()
	want, err := lib.Tree(commitID)
	must(t, err)
	return seafgen.FormatTree(want)
}

func ctimeOf(t *testing.T, lib *seafgen.Library, id string) time.Time {
	t.Helper()
	c, err := lib.Ctime(id)
	must(t, err)
	return time.Unix(c, 0)
}
