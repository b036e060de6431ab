package sync_test

import (
	"database/sql"

	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "github.com/go-sql-driver/mysql"

	"seafbak/internal/mariadbtest"
	"seafbak/internal/testenv"
)

var srv *mariadbtest.Server

func TestMain(m *testing.M) { mariadbtest.Main(m, &srv) }

// The library written by real Seafile software comes out of the backup as Seafile wrote
// it: every object byte for byte, every commit's tree as its trees/*.txt says.
func TestRealLibraryRoundTrip(t *testing.T) {
	env := testenv.New(t, srv)
	env.LoadRealLibrary()
	eng := env.Engine(false)
	ctx := context.Background()

	res, err := eng.Sync(ctx, testenv.RealLibraryID)
	if err != nil {
		t.Fatal(err)
	}
	const head = "5715208e10e33de4ac89cd441c52d948df77125b"
	if res.Head != head || res.Commits != 7 || res.FSObjects != 19 || res.Blocks != 12 {
		t.Fatalf("result %+v, want head %s and 7 commits, 19 fs objects, 12 blocks", res, head)
	}
	env.CompareWithPrimary(testenv.RealLibraryID, testenv.RealLibraryID, head)
	if got := env.BackupHead(testenv.RealLibraryID); got != head {
		t.Fatalf("backup db head %q, want %s", got, head)
	}
	trees, err := filepath.Glob(filepath.Join(testenv.ModuleRoot(t), "testdata/real-library/trees/*.txt"))
	if err != nil || len(trees) != 7 {
		t.Fatalf("want 7 expected trees, got %d (%v)", len(trees), err)
	}
	for _, f := range trees {
		want, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		commit := strings.TrimSuffix(filepath.Base(f), ".txt")
		got := env.TreeText(testenv.RealLibraryID, testenv.RealLibraryID, commit)
		if got != string(want) {
			t.Errorf("tree of %s:\n got:\n%s\nwant:\n%s", commit, got, want)
		}
	}

	// A second sync has nothing to do.
	res, err = eng.Sync(ctx, testenv.RealLibraryID)
	if err != nil {
		t.Fatal(err)
	}
	if !res.UpToDate {
		t.Fatalf("second sync: %+v, want up to date", res)
	}
	rec, ok, err := env.State.Load(testenv.RealLibraryID)
	if err != nil || !ok || rec.Head != head || rec.Name != "Shared" || rec.Owner != "bob@example.com" {
		t.Fatalf("state %+v ok=%v err=%v", rec, ok, err)
	}
}

func openAs(user, password, db string) (*sql.DB, error) {
	return sql.Open("mysql", srv.UserDSN(user, password, db))
}
