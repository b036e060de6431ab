package sync_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"testing"

	"seafbak/internal/seafgen"
	"seafbak/internal/testenv"
	"seafbak/sync/object"
	"seafbak/sync/primary"
)

// Review (wire): a proxy in front of the file server answers 500 for one block and a
// 200 HTML page for check-blocks. Nothing is known about the block (the file server has
// it and was never asked), yet sync --force records it as a hole "corrupt on the
// primary" and moves the head; it should fail the library (unreachable/failed) and keep
// the previous head.
func TestForceDoesNotMakeAHoleFromAnUnusableCheckBlocks(t *testing.T) {
	env, fs, lib := httpFixture(t)
	_, blocks := env.PrimaryFile(lib, "small.txt")
	target, _ := url.Parse(fs.URL())
	rp := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) { pr.SetURL(&url.URL{Scheme: target.Scheme, Host: target.Host}) }}
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasSuffix(r.URL.Path, "/block/"+blocks[0]):
			w.WriteHeader(http.StatusInternalServerError)
		case strings.HasSuffix(r.URL.Path, "/check-blocks/"):
			io.WriteString(w, "<html><body>maintenance</body></html>")
		default:
			rp.ServeHTTP(w, r)
		}
	}))
	defer proxy.Close()
	// fs.URL() has its own path prefix; keep it behind the proxy.
	h, err := primary.NewHTTP(primary.HTTPOptions{URL: proxy.URL + target.Path, SyncToken: testenv.SyncToken, Attempts: 2})
	must(t, err)
	eng := env.Engine(true)
	eng.Source = primary.NewRemote(env.PrimaryDB, h, testenv.SyncToken)
	res, err := eng.Sync(context.Background(), lib.ID)
	t.Logf("sync: %v; holes %+v", err, res.Holes)
	if err == nil {
		t.Errorf("sync --force succeeded with holes %+v: a block the primary has, and was never said to lack or to be corrupt, was recorded as a hole", res.Holes)
	}
}

// Review (wire): one library's Branch row holding something that is not a commit id
// fails that library alone when read from the database (listing_test "bad head"), but
// over HTTP the file server reads the same row and head-commits-multi answers the same
// string for it: Heads refuses the whole answer, and the listing of every library
// fails, so no library of the server is backed up.
func TestOneBadBranchRowDoesNotStopTheHTTPListing(t *testing.T) {
	env, fs, lib := httpFixture(t)
	ctx := context.Background()
	g := seafgen.New(env.PrimaryDir)
	other, err := g.NewLibrary(seafgen.LibraryOptions{Name: "Other", Owner: "net@example.com"})
	must(t, err)
	testenv.Commit(t, other, "files", seafgen.Put("x.txt", []byte("x")))
	env.Publish(other)
	if _, err := env.PrimaryDB.Exec("UPDATE Branch SET commit_id = 'not-a-commit' WHERE repo_id = ? AND name = 'master'", other.ID); err != nil {
		t.Fatal(err)
	}
	h, err := primary.NewHTTP(primary.HTTPOptions{URL: fs.URL(), SyncToken: testenv.SyncToken})
	must(t, err)
	remote := primary.NewRemote(env.PrimaryDB, h, testenv.SyncToken)
	libs, err := remote.Libraries(ctx)
	if err != nil {
		t.Fatalf("one bad Branch row failed the listing of every library: %v", err)
	}
	for _, l := range libs {
		if l.ID == lib.ID && (l.HeadError != nil || l.Head != lib.Head) {
			t.Errorf("the sound library was listed as %+v", l)
		}
		if l.ID == other.ID && l.HeadError == nil {
			t.Errorf("the bad library was listed without an error: %+v", l)
		}
	}
}

// Review (wire): an fs object's bytes after the end of its zlib stream are not checked.
// ParseFS inflates one zlib stream and hashes that; whatever follows (up to the 72 MiB a
// pack-fs record may claim) passes, is held in memory until the object is written (a
// pack-fs batch is up to 1000 objects: up to 72 GB held), and is stored in the backup
// as the object. Seafile never writes such bytes.
func TestFSObjectWithTrailingBytesIsRefused(t *testing.T) {
	env, fs, lib := httpFixture(t)
	id, _ := env.PrimaryFile(lib, "small.txt")
	stored, err := os.ReadFile(testenv.ObjectPath(env.PrimaryDir, object.KindFS, lib.StoreID, id))
	must(t, err)
	padded := append(append([]byte{}, stored...), make([]byte, 1<<20)...)
	fs.CorruptObject(id, padded)
	_, err = env.Engine(false).Sync(context.Background(), lib.ID)
	got, rerr := os.ReadFile(testenv.ObjectPath(env.BackupDir, object.KindFS, lib.StoreID, id))
	if err == nil || rerr == nil {
		t.Errorf("an fs object with 1 MiB after its zlib stream: sync err %v; backup holds %d bytes for it (the primary stores %d)", err, len(got), len(stored))
	}
}
