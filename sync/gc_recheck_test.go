package sync_test

import (
	"bytes"
	"compress/zlib"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"seafbak/internal/seafgen"
	"seafbak/internal/testenv"
	seafsync "seafbak/sync"
	"seafbak/sync/object"
)

// A library unchanged for longer than its history limit has a head older than
// RepoValidSince, but Seafile's GC keeps the head's tree whatever its age (and that of
// the first commit past the limit below it): a block of it missing on the primary is a
// fault, not truncation. It was recorded as truncation, without --force, and the head
// moved over a tree the store did not hold.
func TestHeadOlderThanTheHistoryLimitIsNotTruncated(t *testing.T) {
	env := testenv.New(t, srv)
	g := seafgen.New(env.PrimaryDir)
	g.BlockSize = 4096
	lib, err := g.NewLibrary(seafgen.LibraryOptions{Name: "Quiet"})
	must(t, err)
	testenv.Commit(t, lib, "files", seafgen.Put("a.bin", testenv.RandomBytes(9000, 5)))
	ct, err := lib.Ctime(lib.Head)
	must(t, err)
	lib.ValidSince = ct + 86400 // GC ran a day after the last change: now - limit
	_, blocks := env.PrimaryFile(lib, "a.bin")
	must(t, os.Remove(testenv.ObjectPath(env.PrimaryDir, object.KindBlock, lib.StoreID, blocks[0])))
	env.Publish(lib)
	_, err = env.Engine(false).Sync(context.Background(), lib.ID)
	var oe *seafsync.ObjectError
	if !errors.As(err, &oe) || oe.ID != blocks[0] {
		rec, _, _ := env.State.Load(lib.ID)
		t.Fatalf("a block of the head's tree missing on the primary: %v; recorded head %s, truncated %v", err, rec.Head, rec.Truncated)
	}
	if rec, _, _ := env.State.Load(lib.ID); rec.Head != "" {
		t.Errorf("head %s recorded over a tree the store does not hold", rec.Head)
	}
}

// A re-check that finds a block damaged in the backup and missing on the primary records
// a hole under directories already in the store. A plain sync after it found those
// directories present, took the tree as whole and dropped the hole, the block still
// damaged and status healthy. Re-checking now goes on while such holes remain.
func TestHoleFoundByARecheckIsKept(t *testing.T) {
	env := testenv.New(t, srv)
	g := seafgen.New(env.PrimaryDir)
	g.BlockSize = 4096
	lib, err := g.NewLibrary(seafgen.LibraryOptions{Name: "Rot"})
	must(t, err)
	testenv.Commit(t, lib, "files", seafgen.Put("a.bin", testenv.RandomBytes(9000, 5)))
	env.Publish(lib)
	testenv.SyncOK(t, env.Engine(false), lib.ID)
	_, blocks := env.PrimaryFile(lib, "a.bin")
	b := blocks[0]
	must(t, os.Truncate(testenv.ObjectPath(env.BackupDir, object.KindBlock, lib.StoreID, b), 0)) // damaged in the backup
	must(t, os.Remove(testenv.ObjectPath(env.PrimaryDir, object.KindBlock, lib.StoreID, b)))     // and lost on the primary
	eng := env.Engine(true)
	eng.Recheck = true
	if res, err := eng.Sync(context.Background(), lib.ID); err != nil || len(res.Holes) != 1 {
		t.Fatalf("re-check --force: %d holes, %v", len(res.Holes), err)
	}
	testenv.SyncOK(t, env.Engine(false), lib.ID)
	rec, _, err := env.State.Load(lib.ID)
	must(t, err)
	if len(rec.Holes) != 1 || rec.Holes[0].ID != b || !rec.Recheck {
		t.Fatalf("after a plain sync: holes %+v, recheck %v; want block %s's hole kept, re-checking", rec.Holes, rec.Recheck, b)
	}
}

// An fs object of version 0 in a version-1 library, over HTTP, fails the library naming
// it: the callback's error was dropped by pack-fs, the object never settled, and the
// library failed as "a seafbak bug" with fs objects unsettled.
func TestVersion0FSObjectOverHTTPIsNamed(t *testing.T) {
	env := testenv.New(t, srv)
	env.StartFileServer()
	g := seafgen.New(env.PrimaryDir)
	lib, err := g.NewLibrary(seafgen.LibraryOptions{Name: "V0", Owner: "v0@example.com"})
	must(t, err)
	testenv.Commit(t, lib, "files", seafgen.Put("a.txt", []byte("a")))
	put := func(kind object.Kind, store, plain string, deflate bool) string {
		sum := sha1.Sum([]byte(plain))
		id := hex.EncodeToString(sum[:])
		data := []byte(plain)
		if deflate {
			var b bytes.Buffer
			zw := zlib.NewWriter(&b)
			zw.Write(data)
			zw.Close()
			data = b.Bytes()
		}
		p := testenv.ObjectPath(env.PrimaryDir, kind, store, id)
		must(t, os.MkdirAll(filepath.Dir(p), 0o755))
		must(t, os.WriteFile(p, data, 0o644))
		return id
	}
	file := put(object.KindFS, lib.StoreID, `{"block_ids": [], "size": 0, "type": 1, "version": 0}`, true)
	root := put(object.KindFS, lib.StoreID, `{"dirents": [{"id": "`+file+`", "mode": 33188, "modifier": "x@example.com", "mtime": 1, "name": "v0", "size": 0}], "type": 3, "version": 1}`, true)
	c := `{"commit_id":"%s","root_id":"` + root + `","repo_id":"` + lib.ID + `","creator_name":"x@example.com","creator":"0000000000000000000000000000000000000000","description":"v0 file","ctime":1700000000,"parent_id":"` + lib.Head + `","second_parent_id":null,"repo_name":"V0","repo_desc":"","repo_category":null,"no_local_history":1,"version":1}`
	cid := strings.Repeat("7", 40)
	p := testenv.ObjectPath(env.PrimaryDir, object.KindCommit, lib.ID, cid)
	must(t, os.MkdirAll(filepath.Dir(p), 0o755))
	must(t, os.WriteFile(p, []byte(fmt.Sprintf(c, cid)), 0o644))
	lib.SetHead(cid)
	env.Publish(lib)
	_, err = env.Engine(false).Sync(context.Background(), lib.ID)
	var oe *seafsync.ObjectError
	if !errors.As(err, &oe) || oe.ID != file || strings.Contains(err.Error(), "seafbak bug") {
		t.Fatalf("a version-0 fs object over HTTP: %v", err)
	}
}
