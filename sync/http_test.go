package sync_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"seafbak/internal/mariadbtest"
	"seafbak/internal/seafgen"
	"seafbak/internal/seafhttptest"
	"seafbak/internal/testenv"
	seafsync "seafbak/sync"
	"seafbak/sync/object"
	"seafbak/sync/primary"
)

// httpFixture is a primary served over HTTP with one library of a few multi-block files
// and a few dirs, not yet backed up.
func httpFixture(t *testing.T) (*testenv.Env, *seafhttptest.Server, *seafgen.Library) {
	env := testenv.New(t, srv)
	fs := env.StartFileServer()
	g := seafgen.New(env.PrimaryDir)
	g.BlockSize = 4096
	lib, err := g.NewLibrary(seafgen.LibraryOptions{Name: "Net", Owner: "net@example.com"})
	must(t, err)
	testenv.Commit(t, lib, "files",
		seafgen.Put("a/big.bin", testenv.RandomBytes(40000, 11)),
		seafgen.Put("b/c/other.bin", testenv.RandomBytes(20000, 12)),
		seafgen.Put("small.txt", []byte("small")))
	env.Publish(lib)
	return env, fs, lib
}

// noMetadataMoved checks that a failed sync left no head behind.
func noMetadataMoved(t *testing.T, env *testenv.Env, lib *seafgen.Library) {
	t.Helper()
	rec, _, _ := env.State.Load(lib.ID)
	if rec.Head != "" || env.BackupHead(lib.ID) != "" {
		t.Fatalf("a failed sync moved the head: state %q, db %q", rec.Head, env.BackupHead(lib.ID))
	}
}

// Misbehaviour the client rides out: each ends in a correct backup.
func TestHTTPRetries(t *testing.T) {
	cases := map[string]func(*seafhttptest.Server){
		"slow":              func(s *seafhttptest.Server) { s.SetDelay(20 * time.Millisecond) },
		"reset mid-block":   func(s *seafhttptest.Server) { s.ResetBlocks(3, 1000) },
		"close mid-pack":    func(s *seafhttptest.Server) { s.CloseAfter(seafhttptest.RoutePackFS, 2, 50) },
		"truncated pack":    func(s *seafhttptest.Server) { s.TruncatePacks(3) },
		"500 storm":         func(s *seafhttptest.Server) { s.FailNext(seafhttptest.RouteAny, 3) },
		"stalled block":     func(s *seafhttptest.Server) { s.StallBlocks(1, 100, 8*time.Second) },
		"head-commits 502s": func(s *seafhttptest.Server) { s.FailNextStatus(seafhttptest.RouteHeadCommit, 2, 502) },
	}
	for name, misbehave := range cases {
		t.Run(name, func(t *testing.T) {
			env, fs, lib := httpFixture(t)
			misbehave(fs)
			eng := env.Engine(false)
			if name == "stalled block" {
				h, err := primary.NewHTTP(primary.HTTPOptions{URL: fs.URL(), SyncToken: testenv.SyncToken, StallTimeout: 300 * time.Millisecond, Backoff: time.Millisecond})
				must(t, err)
				eng.Source = primary.NewRemote(env.PrimaryDB, h, testenv.SyncToken)
			}
			testenv.SyncOK(t, eng, lib.ID)
			env.CompareWithPrimary(lib.ID, lib.StoreID, lib.Head)
			checkTrees(t, env, lib)
		})
	}
}

// Wrong bytes from the primary are never stored and never move the head.
func TestHTTPWrongBytes(t *testing.T) {
	for _, kind := range []string{"block", "fs object"} {
		t.Run(kind, func(t *testing.T) {
			env, fs, lib := httpFixture(t)
			var id string
			if kind == "block" {
				_, blocks := env.PrimaryFile(lib, "small.txt")
				id = blocks[0]
			} else {
				id, _ = env.PrimaryFile(lib, "small.txt")
			}
			fs.CorruptObject(id, nil)
			_, err := env.Engine(false).Sync(context.Background(), lib.ID)
			if err == nil || !strings.Contains(err.Error(), kind+" "+id) || !strings.Contains(err.Error(), `"/small.txt"`) {
				t.Fatalf("got %v", err)
			}
			noMetadataMoved(t, env, lib)
			k := object.KindBlock
			if kind == "fs object" {
				k = object.KindFS
			}
			if _, err := os.Stat(testenv.ObjectPath(env.BackupDir, k, lib.StoreID, id)); !os.IsNotExist(err) {
				t.Fatal("wrong bytes written to the backup")
			}
			fs.RestoreObject(id)
			testenv.SyncOK(t, env.Engine(false), lib.ID)
			env.CompareWithPrimary(lib.ID, lib.StoreID, lib.Head)
		})
	}
}

// A 500 that never ends fails the library with the block named; no head moves.
func TestHTTPPersistentFailure(t *testing.T) {
	env, fs, lib := httpFixture(t)
	fs.FailNext(seafhttptest.RouteBlock, 1000)
	_, err := env.Engine(false).Sync(context.Background(), lib.ID)
	if err == nil || !strings.Contains(err.Error(), "block ") || !strings.Contains(err.Error(), "HTTP 500") {
		t.Fatalf("got %v", err)
	}
	noMetadataMoved(t, env, lib)
}

func TestHTTPWrongToken(t *testing.T) {
	env, fs, lib := httpFixture(t)
	// The requests carry a token derived from another secret than the rows created.
	h, err := primary.NewHTTP(primary.HTTPOptions{URL: fs.URL(), SyncToken: "another-secret-0123456789", Backoff: time.Millisecond})
	must(t, err)
	eng := env.Engine(false)
	eng.Source = primary.NewRemote(env.PrimaryDB, h, testenv.SyncToken)
	_, err = eng.Sync(context.Background(), lib.ID)
	if !errors.Is(err, primary.ErrUnauthorized) || !strings.Contains(err.Error(), "sync_token") {
		t.Fatalf("got %v", err)
	}
	if strings.Contains(err.Error(), primary.Token("another-secret-0123456789", lib.ID)) || strings.Contains(err.Error(), "another-secret") {
		t.Fatal("the error shows a token or the secret")
	}
	noMetadataMoved(t, env, lib)
}

// Without INSERT on RepoUserToken the error says which grant is missing.
func TestHTTPMissingGrant(t *testing.T) {
	env, fs, lib := httpFixture(t)
	user := fmt.Sprintf("ro%d", time.Now().UnixNano()%1e9)
	must(t, srv.CreateUser(user, "pw", "SELECT ON `"+env.PrimaryDBName+"`.*"))
	db, err := openAs(user, "pw", env.PrimaryDBName)
	must(t, err)
	defer db.Close()
	h, err := primary.NewHTTP(primary.HTTPOptions{URL: fs.URL(), SyncToken: testenv.SyncToken})
	must(t, err)
	eng := env.Engine(false)
	eng.Source = primary.NewRemote(db, h, testenv.SyncToken)
	_, err = eng.Sync(context.Background(), lib.ID)
	if err == nil || !strings.Contains(err.Error(), "INSERT on RepoUserToken") {
		t.Fatalf("got %v", err)
	}
	// The same from a scan, which has listed the library already: nothing was
	// written, so the next sync has no reason to re-check the library.
	listed, err := env.Catalog.Library(context.Background(), lib.ID)
	must(t, err)
	if _, err := eng.SyncListed(context.Background(), listed); err == nil || !strings.Contains(err.Error(), "INSERT on RepoUserToken") {
		t.Fatalf("scan's sync: %v", err)
	}
	if dead, _ := env.State.DeadDirty(lib.StoreID, lib.ID, time.Time{}); dead {
		t.Fatal("a failed token step left a dirty marker")
	}
}

func TestHTTPWrongURL(t *testing.T) {
	env, fs, _ := httpFixture(t)
	_ = env
	h, err := primary.NewHTTP(primary.HTTPOptions{URL: strings.TrimSuffix(fs.URL(), "/seafhttp") + "/wrong", SyncToken: testenv.SyncToken, Backoff: time.Millisecond})
	must(t, err)
	if err := h.CheckProtocol(context.Background()); err == nil || !strings.Contains(err.Error(), "does not serve Seafile's sync protocol") {
		t.Fatalf("wrong path: %v", err)
	}
	h, err = primary.NewHTTP(primary.HTTPOptions{URL: "http://127.0.0.1:1/seafhttp", SyncToken: testenv.SyncToken, Backoff: time.Millisecond, Attempts: 2})
	must(t, err)
	if err := h.CheckProtocol(context.Background()); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("closed port: %v", err)
	}
	if err := h.CheckProtocol(context.Background()); err != nil && strings.Contains(err.Error(), testenv.SyncToken) {
		t.Fatal("the secret shows in an error")
	}
}

func TestHTTPSWithPrivateCA(t *testing.T) {
	env := testenv.New(t, srv)
	env.LoadRealLibrary()
	fs := seafhttptest.New(env.PrimaryDir, env.PrimaryDB, seafhttptest.Options{Prefix: "/seafhttp"})
	base, err := fs.StartTLS()
	must(t, err)
	defer fs.Close()
	if !strings.HasPrefix(base, "https://") {
		t.Fatalf("base %s", base)
	}
	// Verified by default: the private CA is not trusted without ca_file.
	h, err := primary.NewHTTP(primary.HTTPOptions{URL: base, SyncToken: testenv.SyncToken, Attempts: 1})
	must(t, err)
	if err := h.CheckProtocol(context.Background()); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("untrusted CA accepted: %v", err)
	}
	h, err = primary.NewHTTP(primary.HTTPOptions{URL: base, SyncToken: testenv.SyncToken, CAFile: fs.CAFile()})
	must(t, err)
	must(t, h.CheckProtocol(context.Background()))
	eng := env.Engine(false)
	eng.Source = primary.NewRemote(env.PrimaryDB, h, testenv.SyncToken)
	testenv.SyncOK(t, eng, testenv.RealLibraryID)
	env.CompareWithPrimary(testenv.RealLibraryID, testenv.RealLibraryID, "5715208e10e33de4ac89cd441c52d948df77125b")
	trees, _ := filepath.Glob(filepath.Join(testenv.ModuleRoot(t), "testdata/real-library/trees/*.txt"))
	for _, f := range trees {
		want, _ := os.ReadFile(f)
		c := strings.TrimSuffix(filepath.Base(f), ".txt")
		if got := env.TreeText(testenv.RealLibraryID, testenv.RealLibraryID, c); got != string(want) {
			t.Errorf("tree of %s over https differs", c)
		}
	}
}

var _ = seafsync.Result{}

// A remote's listing asks the file server about a head once: while the database keeps a
// library at the head both agreed on, later listings (a watch lists every 2 s) do not ask
// about it again. A head that moved is asked about, and so is one they disagree on, at
// every listing until they agree.
func TestRemoteListingAsksTheFileServerOnlyAboutHeadsNotYetAgreed(t *testing.T) {
	env, fs, lib := httpFixture(t)
	ctx := context.Background()
	g := seafgen.New(env.PrimaryDir)
	other, err := g.NewLibrary(seafgen.LibraryOptions{Name: "Other", Owner: "net@example.com"})
	must(t, err)
	testenv.Commit(t, other, "files", seafgen.Put("x.txt", []byte("x")))
	env.Publish(other)
	// A second copy of the primary's database, which the file server does not read: a
	// head moved there alone is one the two disagree on.
	copyName := env.PrimaryDBName + "_copy"
	must(t, srv.CreateDatabase(copyName, mariadbtest.SchemaFile("seafile.sql")))
	copyDB, err := srv.Open(copyName)
	must(t, err)
	defer copyDB.Close()
	must(t, lib.InsertRows(ctx, copyDB))
	must(t, other.InsertRows(ctx, copyDB))
	h, err := primary.NewHTTP(primary.HTTPOptions{URL: fs.URL(), SyncToken: testenv.SyncToken})
	must(t, err)
	remote := primary.NewRemote(copyDB, h, testenv.SyncToken)
	list := func(wantAsks int) map[string]primary.Library {
		t.Helper()
		before := fs.Requests(seafhttptest.RouteHeadCommitsMulti)
		libs, err := remote.Libraries(ctx)
		must(t, err)
		if asks := fs.Requests(seafhttptest.RouteHeadCommitsMulti) - before; asks != wantAsks {
			t.Fatalf("a listing asked the file server %d times (head-commits-multi), want %d", asks, wantAsks)
		}
		byID := map[string]primary.Library{}
		for _, l := range libs {
			byID[l.ID] = l
		}
		return byID
	}
	for _, l := range list(1) {
		if l.HeadError != nil {
			t.Fatalf("%s: %v", l.Name, l.HeadError)
		}
	}
	list(0)
	// Moved in the copy only: asked about, found to disagree, and asked about again
	// (with the library's recheck, two requests a listing).
	testenv.Commit(t, other, "more", seafgen.Put("y.txt", []byte("y")))
	must(t, other.InsertRows(ctx, copyDB))
	for range 2 {
		if got := list(2)[other.ID]; got.HeadError == nil || !strings.Contains(got.HeadError.Error(), "different servers") {
			t.Fatalf("a head the file server does not know: %+v", got)
		}
	}
	// Moved in the file server's database too: they agree, once asked.
	env.Publish(other)
	if got := list(1)[other.ID]; got.HeadError != nil || got.Head != other.Head {
		t.Fatalf("after both moved: %+v, want head %s", got, other.Head)
	}
	list(0)

	// A watch's listing between full comparisons: nothing when the database's Print is
	// unchanged, neither read nor asked; a moved head is listed and asked about.
	since := func(p primary.Print, wantChanged bool, wantAsks int) ([]primary.Library, primary.Print) {
		t.Helper()
		before := fs.Requests(seafhttptest.RouteHeadCommitsMulti)
		libs, p, changed, err := remote.LibrariesSince(ctx, p)
		must(t, err)
		if asks := fs.Requests(seafhttptest.RouteHeadCommitsMulti) - before; changed != wantChanged || asks != wantAsks || (!changed && libs != nil) {
			t.Fatalf("LibrariesSince: changed %v, %d libraries, %d asks; want changed %v, %d asks", changed, len(libs), asks, wantChanged, wantAsks)
		}
		return libs, p
	}
	_, p := since(primary.Print{}, true, 0)
	_, p = since(p, false, 0)
	testenv.Commit(t, other, "again", seafgen.Put("z.txt", []byte("z")))
	env.Publish(other)
	must(t, other.InsertRows(ctx, copyDB))
	libs, p := since(p, true, 1)
	for _, l := range libs {
		if l.ID == other.ID && (l.Head != other.Head || l.HeadError != nil) {
			t.Fatalf("moved head listed as %+v, want %s", l, other.Head)
		}
	}
	since(p, false, 0)
}

// A library token row deleted on the primary after this process made it (an admin
// removing its owner's tokens, say) is made again once the file server refuses the
// token: one failed attempt, not a library that fails in a long-running watch until it
// is restarted.
func TestHTTPDeletedTokenRowIsMadeAgain(t *testing.T) {
	env, _, lib := httpFixture(t)
	ctx := context.Background()
	eng := env.Engine(false) // one engine, one Remote: as in a watch
	_, err := eng.Sync(ctx, lib.ID)
	must(t, err)
	testenv.Commit(t, lib, "more", seafgen.Put("later.txt", []byte("later")))
	env.Publish(lib)
	_, err = env.PrimaryDB.Exec("DELETE FROM RepoUserToken WHERE repo_id = ?", lib.ID)
	must(t, err)
	if _, err := eng.Sync(ctx, lib.ID); !errors.Is(err, primary.ErrUnauthorized) {
		t.Fatalf("the sync after the row was deleted: %v, want the file server's refusal", err)
	}
	if _, err := eng.Sync(ctx, lib.ID); err != nil {
		t.Fatalf("the next sync did not make the row again: %v", err)
	}
	rec, _, err := env.State.Load(lib.ID)
	must(t, err)
	if rec.Head != lib.Head {
		t.Fatalf("state head %s, want %s", rec.Head, lib.Head)
	}
}
