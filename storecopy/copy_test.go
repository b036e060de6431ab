package storecopy_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"seafbak/internal/s3test"
	"seafbak/internal/seafgen"
	"seafbak/internal/testenv"
	"seafbak/restore"
	"seafbak/state"
	"seafbak/storecopy"
	seafsync "seafbak/sync"
	"seafbak/sync/object"
	"seafbak/sync/primary"
	"seafbak/sync/store"
)

func TestMain(m *testing.M) { s3test.Main(m) }

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// catalog is the primary's database as the engine sees it, read from the generated
// libraries themselves (the engine needs no more of a primary than its heads).
type catalog map[string]*seafgen.Library

func (c catalog) entry(l *seafgen.Library) primary.Library {
	return primary.Library{ID: l.ID, StoreID: l.StoreID, Name: l.Name, Owner: l.Owner, Head: l.Head,
		ValidSince: l.ValidSince, Encrypted: l.Encrypted, Version: 1}
}

func (c catalog) Libraries(context.Context) ([]primary.Library, error) {
	var out []primary.Library
	for _, l := range c {
		out = append(out, c.entry(l))
	}
	return out, nil
}

func (c catalog) Library(_ context.Context, id string) (primary.Library, error) {
	l := c[id]
	if l == nil {
		return primary.Library{}, primary.ErrLibraryGone
	}
	return c.entry(l), nil
}

// backup is a real backup made by the engine from a generated primary: a filesystem
// store and its state.
type backup struct {
	primaryDir, dir string
	fs              *store.FS
	state           *state.Dir
	libs            map[string]*seafgen.Library
	holeBlock       string // the block the holey library lacks
	holeFix         func() // puts the block back on the primary
	oldHead         string
	engine          func(force bool) *seafsync.Engine
}

// newBackup backs up five libraries with everything the copy must carry: history with a
// merge, nested and renamed dirs, empty files and dirs, multi-block files, non-ASCII
// names, an old head the primary moved away from, a virtual library sharing its
// origin's store, an encrypted library, history truncated by the primary's GC, and a
// hole recorded by sync --force.
func newBackup(t *testing.T) *backup {
	t.Helper()
	root := t.TempDir()
	b := &backup{primaryDir: filepath.Join(root, "primary"), dir: filepath.Join(root, "backup"), libs: map[string]*seafgen.Library{}}
	must(t, os.MkdirAll(filepath.Join(b.primaryDir, "storage"), 0o755))
	g := seafgen.New(b.primaryDir)
	g.BlockSize = 4096
	var err error
	b.fs, err = store.NewFS(b.dir, store.Batch)
	must(t, err)
	b.state, err = state.Open(filepath.Join(root, "state"))
	must(t, err)
	objs, err := primary.NewDir(b.primaryDir)
	must(t, err)
	cat := catalog(b.libs)
	eng := func(force bool) *seafsync.Engine {
		return &seafsync.Engine{Source: primary.Combine(cat, objs), Store: b.fs, State: b.state, Parallel: 4, Force: force}
	}
	syncOK := func(force bool, l *seafgen.Library) seafsync.Result {
		t.Helper()
		res, err := eng(force).Sync(context.Background(), l.ID)
		if err != nil {
			t.Fatalf("sync %s: %v", l.Name, err)
		}
		return res
	}

	docs, err := g.NewLibrary(seafgen.LibraryOptions{Name: "Docs", Owner: "alice@example.com"})
	must(t, err)
	b.libs[docs.ID] = docs
	first := testenv.Commit(t, docs, "Added files",
		seafgen.Put("a.txt", []byte("hello\n")),
		seafgen.Put("dir/sub/deep.txt", []byte("deep")),
		seafgen.Put("dir/sub/deeper/x/y.txt", []byte("y")),
		seafgen.Put("empty.txt", nil),
		seafgen.Mkdir("empty-dir"),
		seafgen.Put("big.bin", testenv.RandomBytes(20000, 1)),
		seafgen.Put("exact.bin", testenv.RandomBytes(8192, 9)),
		seafgen.Put("naïve café.txt", []byte("accents")),
		seafgen.Put("日本語/ファイル.txt", []byte("nihongo")),
	)
	testenv.Commit(t, docs, "Renamed dir", seafgen.Rename("dir", "folder"), seafgen.Delete("a.txt"))
	side, err := docs.CommitOn(first, "Offline edit", seafgen.Put("offline.txt", []byte("laptop")), seafgen.Put("big.bin", testenv.RandomBytes(13000, 4)))
	must(t, err)
	_, err = docs.Merge(side)
	must(t, err)
	b.oldHead = testenv.Commit(t, docs, "Changed big.bin", seafgen.Put("big.bin", testenv.RandomBytes(30000, 2)), seafgen.Mkdir("new-empty"))
	syncOK(false, docs)
	// A revert on the primary: the head moves to a branch off an older commit, and the
	// old head leaves the history; the state keeps it as an old head.
	reverted, err := docs.CommitOn(first, "Reverted", seafgen.Put("reverted.txt", testenv.RandomBytes(5000, 11)))
	must(t, err)
	docs.SetHead(reverted)
	if res := syncOK(false, docs); !res.OldHeadKept {
		t.Fatalf("old head not kept: %+v", res)
	}

	virt, err := g.NewVirtualLibrary(docs, "/dir", "")
	must(t, err)
	b.libs[virt.ID] = virt
	testenv.Commit(t, virt, "in the sub-library", seafgen.Put("v.bin", testenv.RandomBytes(9000, 12)))
	syncOK(false, virt)

	enc, err := g.NewLibrary(seafgen.LibraryOptions{Name: "Secret", Encrypted: true})
	must(t, err)
	b.libs[enc.ID] = enc
	testenv.Commit(t, enc, "ciphertext", seafgen.Put("s/secret.bin", testenv.RandomBytes(10000, 13)), seafgen.Put("s/empty", nil))
	syncOK(false, enc)

	trunc, err := g.NewLibrary(seafgen.LibraryOptions{Name: "Limited"})
	must(t, err)
	b.libs[trunc.ID] = trunc
	testenv.Commit(t, trunc, "old", seafgen.Put("old.bin", testenv.RandomBytes(9000, 5)), seafgen.Put("keep.txt", []byte("k")))
	testenv.Commit(t, trunc, "older edit", seafgen.Put("old.bin", testenv.RandomBytes(9000, 6)))
	keep := testenv.Commit(t, trunc, "new", seafgen.Delete("old.bin"), seafgen.Put("new.txt", []byte("n")))
	testenv.Commit(t, trunc, "newest", seafgen.Put("new.txt", []byte("nn")))
	must(t, trunc.TruncateBefore(keep))
	if res := syncOK(false, trunc); res.Truncated == 0 {
		t.Fatalf("no truncation recorded: %+v", res)
	}

	holey, err := g.NewLibrary(seafgen.LibraryOptions{Name: "Holey"})
	must(t, err)
	b.libs[holey.ID] = holey
	testenv.Commit(t, holey, "files", seafgen.Put("d/big.bin", testenv.RandomBytes(30000, 7)), seafgen.Put("ok.txt", []byte("fine")), seafgen.Put("e/e.txt", []byte("e")))
	blocks := fileBlocks(t, b.primaryDir, holey, "d/big.bin")
	b.holeBlock = blocks[1]
	bad := testenv.ObjectPath(b.primaryDir, object.KindBlock, holey.StoreID, b.holeBlock)
	good, err := os.ReadFile(bad)
	must(t, err)
	must(t, os.WriteFile(bad, append([]byte{good[0] ^ 0xff}, good[1:]...), 0o644))
	b.holeFix = func() { must(t, os.WriteFile(bad, good, 0o644)) }
	b.engine = eng
	if res := syncOK(true, holey); len(res.Holes) == 0 {
		t.Fatalf("no hole recorded: %+v", res)
	}
	return b
}

// fileBlocks reads a file's block ids from a library's head in a seafile-data dir.
func fileBlocks(t *testing.T, dataDir string, l *seafgen.Library, name string) []string {
	t.Helper()
	s, err := store.OpenFS(dataDir)
	must(t, err)
	lib := object.Keys{RepoID: l.ID, StoreID: l.StoreID}
	c, err := restore.Commit(context.Background(), s, lib, l.Head)
	must(t, err)
	var blocks []string
	must(t, restore.Walk(context.Background(), s, lib, c.RootID, func(e restore.Entry) error {
		if e.Path == name {
			blocks = e.Blocks
		}
		return nil
	}))
	if len(blocks) < 2 {
		t.Fatalf("%s: %d blocks", name, len(blocks))
	}
	return blocks
}

var bucketSeq atomic.Int64

// newS3 makes three fresh buckets on the shared server and opens an S3 store on them.
func newS3(t testing.TB) (*store.S3, store.S3Options) {
	t.Helper()
	srv := s3test.Shared(t)
	n := bucketSeq.Add(1)
	bk := store.S3Buckets{Commits: fmt.Sprintf("c%d-commits", n), FS: fmt.Sprintf("c%d-fs", n), Blocks: fmt.Sprintf("c%d-blocks", n)}
	srv.MakeBuckets(t, bk.Commits, bk.FS, bk.Blocks)
	o := store.S3Options{Endpoint: srv.Endpoint, Region: s3test.Region, Buckets: bk, PathStyle: true,
		AccessKey: s3test.AccessKey, SecretKey: s3test.SecretKey, SpillDir: t.TempDir()}
	s, err := store.NewS3(context.Background(), o)
	must(t, err)
	return s, o
}

// fsObjects reads every object of a seafile-data dir, keyed kind/store/id.
func fsObjects(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	root := filepath.Join(dir, "storage")
	must(t, filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		parts := strings.Split(filepath.ToSlash(rel), "/")
		if len(parts) != 4 || len(parts[2]) != 2 {
			return nil // temp files and the like
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		out[parts[0]+"/"+parts[1]+"/"+parts[2]+parts[3]] = data
		return nil
	}))
	return out
}

// s3Objects reads every object of an S3 store's buckets, keyed kind/store/id.
func s3Objects(t *testing.T, o store.S3Options) map[string][]byte {
	t.Helper()
	srv := s3test.Shared(t)
	c := srv.Client(t)
	out := map[string][]byte{}
	for kind, b := range map[object.Kind]string{object.KindCommit: o.Buckets.Commits, object.KindFS: o.Buckets.FS, object.KindBlock: o.Buckets.Blocks} {
		for _, k := range srv.Keys(t, b) {
			obj, err := c.GetObject(context.Background(), b, k, minio.GetObjectOptions{})
			must(t, err)
			data, err := io.ReadAll(obj)
			obj.Close()
			must(t, err)
			out[string(kind)+"/"+k] = data
		}
	}
	return out
}

// sameObjects compares two stores' objects byte for byte.
func sameObjects(t *testing.T, what string, want, got map[string][]byte) {
	t.Helper()
	var diffs []string
	for k, w := range want {
		g, ok := got[k]
		switch {
		case !ok:
			diffs = append(diffs, "missing "+k)
		case !bytes.Equal(g, w):
			diffs = append(diffs, "differs "+k)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			diffs = append(diffs, "extra "+k)
		}
	}
	sort.Strings(diffs)
	if len(diffs) > 0 {
		t.Fatalf("%s: %d of %d objects differ:\n%s", what, len(diffs), len(want), strings.Join(diffs[:min(len(diffs), 20)], "\n"))
	}
}

func verifyOK(t *testing.T, s store.Store, st *state.Dir) *restore.VerifyReport {
	t.Helper()
	rep, err := restore.Verify(context.Background(), restore.VerifyOptions{Store: s, State: st})
	must(t, err)
	if !rep.OK() {
		js, _ := json.MarshalIndent(rep, "", " ")
		t.Fatalf("verify of the copy failed:\n%s", js)
	}
	return rep
}

// The whole round trip: the engine's filesystem backup copied to S3, verified and
// compared byte for byte, then copied back from S3 into a fresh filesystem store and
// compared with the original.
func TestCopyFSToS3AndBack(t *testing.T) {
	b := newBackup(t)
	ctx := context.Background()
	src := fsObjects(t, b.dir)
	// The source as verify sees it, for the counts every copy must match.
	srcRep := verifyOK(t, b.fs, b.state)

	s3, o := newS3(t)
	res, err := storecopy.Copy(ctx, storecopy.Options{From: b.fs, To: s3, State: b.state, Parallel: 4})
	must(t, err)
	t.Logf("fs → s3: %d objects (%d bytes) copied in %.2fs", res.Copied.Objects(), res.Copied.Bytes, res.Seconds)
	if len(res.Libraries) != 5 || res.Failed != 0 {
		t.Fatalf("result %+v", res)
	}
	if got := int64(len(reachable(t, b, src))); res.Copied.Objects() != got {
		t.Errorf("copied %d objects, the source has %d reachable", res.Copied.Objects(), got)
	}
	inc := 0
	for _, l := range res.Libraries {
		inc += l.Incomplete
	}
	if inc == 0 {
		t.Errorf("no commit reported incomplete (truncation, hole): %+v", res.Libraries)
	}
	sameObjects(t, "fs → s3", reachable(t, b, src), s3Objects(t, o))
	rep := verifyOK(t, s3, b.state)
	if rep.Commits != srcRep.Commits || rep.FSObjects != srcRep.FSObjects || rep.Blocks != srcRep.Blocks {
		t.Errorf("verify of the copy read %d/%d/%d commits/fs/blocks, of the source %d/%d/%d", rep.Commits, rep.FSObjects, rep.Blocks, srcRep.Commits, srcRep.FSObjects, srcRep.Blocks)
	}
	// The old head is restorable from the copy.
	docs := findLib(t, b, "Docs")
	if _, err := restore.History(ctx, s3, object.Keys{RepoID: docs.ID, StoreID: docs.StoreID}, []string{b.oldHead}); err != nil {
		t.Fatal(err)
	}

	// A second run finds everything present and writes nothing.
	again, err := storecopy.Copy(ctx, storecopy.Options{From: b.fs, To: s3, State: b.state})
	must(t, err)
	if again.Copied.Objects() != 0 {
		t.Errorf("rerun copied %+v", again.Copied)
	}

	back := t.TempDir()
	dst, err := store.NewFS(back, store.Batch)
	must(t, err)
	res2, err := storecopy.Copy(ctx, storecopy.Options{From: s3, To: dst, State: b.state, Parallel: 4})
	must(t, err)
	t.Logf("s3 → fs: %d objects (%d bytes) copied in %.2fs", res2.Copied.Objects(), res2.Copied.Bytes, res2.Seconds)
	sameObjects(t, "s3 → fs", reachable(t, b, src), fsObjects(t, back))
	verifyOK(t, dst, b.state)
}

// reachable is the source's objects less those the copy cannot reach: the holey
// library's objects below its missing root (the engine wrote the complete subtrees under
// a dir it could not write; nothing names them until the hole is filled, when the next
// sync fetches them again). It checks that only those are left out.
func reachable(t *testing.T, b *backup, src map[string][]byte) map[string][]byte {
	t.Helper()
	holey := findLib(t, b, "Holey")
	out := map[string][]byte{}
	left := 0
	for k, v := range src {
		parts := strings.SplitN(k, "/", 3)
		if parts[1] == holey.StoreID && parts[0] != string(object.KindCommit) {
			left++
			continue
		}
		out[k] = v
	}
	if left == 0 {
		t.Fatal("the holey library left nothing out")
	}
	return out
}

func findLib(t *testing.T, b *backup, name string) *seafgen.Library {
	for _, l := range b.libs {
		if l.Name == name {
			return l
		}
	}
	t.Fatalf("no library %s", name)
	return nil
}

// cancelAfter is a progress meter that cancels the copy once n objects are written.
type cancelAfter struct {
	n      atomic.Int64
	cancel context.CancelFunc
}

func (c *cancelAfter) Todo(int64, int64) {}
func (c *cancelAfter) Done(objects, _ int64) {
	if c.n.Add(-objects) <= 0 {
		c.cancel()
	}
}

// A copy cancelled midway leaves a destination that verify may find incomplete but
// never wrong, and the rerun copies exactly what the first run had not.
func TestCopyResumes(t *testing.T) {
	b := newBackup(t)
	src := reachable(t, b, fsObjects(t, b.dir))
	for _, stop := range []int64{1, 7, 40, int64(len(src)) - 3} {
		t.Run(fmt.Sprint(stop), func(t *testing.T) {
			s3, o := newS3(t)
			ctx, cancel := context.WithCancel(context.Background())
			m := &cancelAfter{cancel: cancel}
			m.n.Store(stop)
			first, err := storecopy.Copy(ctx, storecopy.Options{From: b.fs, To: s3, State: b.state, Parallel: 4, Progress: m})
			cancel()
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("cancelled copy: %v (%+v)", err, first)
			}
			// Whatever is there is a byte-exact copy of the source. A PUT whose request
			// was cancelled may still land just after: wait until the buckets settle.
			mid := s3Objects(t, o)
			for range 20 {
				time.Sleep(100 * time.Millisecond)
				again := s3Objects(t, o)
				if len(again) == len(mid) {
					break
				}
				mid = again
			}
			for k, v := range mid {
				if !bytes.Equal(src[k], v) {
					t.Fatalf("interrupted copy wrote %s wrong", k)
				}
			}
			// A PUT can land while its request is being cancelled: then it is there but
			// not counted.
			if n := int64(len(mid)); n < first.Copied.Objects() || n > first.Copied.Objects()+4 {
				t.Errorf("first run says %d copied, the buckets hold %d", first.Copied.Objects(), n)
			}
			second, err := storecopy.Copy(context.Background(), storecopy.Options{From: b.fs, To: s3, State: b.state, Parallel: 4})
			must(t, err)
			t.Logf("stopped after %d: first run copied %d, rerun %d (found %d present)", stop, first.Copied.Objects(), second.Copied.Objects(), second.Present.Objects())
			if int64(len(mid))+second.Copied.Objects() != int64(len(src)) {
				t.Errorf("%d objects there after the first run + %d copied by the rerun, the source has %d", len(mid), second.Copied.Objects(), len(src))
			}
			sameObjects(t, "resumed", src, s3Objects(t, o))
			verifyOK(t, s3, b.state)
		})
	}
}

// A corrupt object in the source is not copied: its library fails naming it, the other
// libraries are copied, and the destination holds nothing corrupt (nothing above the
// bad object either, so present still means complete).
func TestCopyRefusesCorruptSource(t *testing.T) {
	b := newBackup(t)
	docs := findLib(t, b, "Docs")
	limited := findLib(t, b, "Limited")
	ctx := context.Background()
	bad := fileBlocks(t, b.dir, docs, "big.bin")[1]
	p := testenv.ObjectPath(b.dir, object.KindBlock, docs.StoreID, bad)
	data, err := os.ReadFile(p)
	must(t, err)
	must(t, os.WriteFile(p, append(data[:len(data)-1:len(data)-1], data[len(data)-1]^1), 0o644))
	// And a corrupt dir in another library.
	lc, err := restore.Commit(ctx, b.fs, object.Keys{RepoID: limited.ID, StoreID: limited.StoreID}, limited.Head)
	must(t, err)
	rp := testenv.ObjectPath(b.dir, object.KindFS, limited.StoreID, lc.RootID)
	must(t, os.WriteFile(rp, []byte("x\x9c not zlib"), 0o644))

	s3, o := newS3(t)
	res, err := storecopy.Copy(ctx, storecopy.Options{From: b.fs, To: s3, State: b.state, Parallel: 4})
	if !errors.Is(err, storecopy.ErrFailed) {
		t.Fatalf("copy of a corrupt source: %v", err)
	}
	t.Logf("error: %v", err)
	failed := map[string]string{}
	for _, l := range res.Libraries {
		if l.Error != "" {
			failed[l.RepoID] = l.Error
		}
	}
	if len(failed) != 2 {
		t.Fatalf("failed libraries: %v", failed)
	}
	for id, want := range map[string]string{docs.ID: bad, limited.ID: lc.RootID} {
		if msg := failed[id]; !strings.Contains(msg, id) || !strings.Contains(msg, want) || !strings.Contains(msg, "corrupt") {
			t.Errorf("library %s failed with %q, should name the library and %s as corrupt", id, msg, want)
		}
	}
	got := s3Objects(t, o)
	for k, v := range got {
		parts := strings.SplitN(k, "/", 3)
		switch object.Kind(parts[0]) {
		case object.KindBlock:
			h := object.NewBlockHasher(parts[2])
			h.Write(v)
			if h.Check() != nil {
				t.Errorf("corrupt block copied: %s", k)
			}
		case object.KindFS:
			if _, err := object.ParseFS(parts[2], v); err != nil {
				t.Errorf("corrupt fs object copied: %s: %v", k, err)
			}
		}
	}
	// Verify of the copy finds objects missing (the failed libraries'), none damaged.
	rep, err := restore.Verify(ctx, restore.VerifyOptions{Store: s3, State: b.state})
	must(t, err)
	for _, l := range rep.Libraries {
		for _, pr := range l.Problems {
			if !pr.Missing {
				t.Errorf("damaged object in the copy: %+v", pr)
			}
		}
		if failed[l.RepoID] == "" && !l.OK() {
			t.Errorf("library %s copied but not verified: %+v", l.RepoID, l)
		}
	}
}

// Recheck repairs a destination that lost writes below objects it kept (what a power
// loss can do to a filesystem store whose objects are made durable together at the
// end): the plain rerun trusts present dirs and commits and sees nothing to do; the
// rerun with Recheck reads everything back and writes exactly what is missing or
// damaged.
func TestCopyRecheckRepairsDestination(t *testing.T) {
	b := newBackup(t)
	ctx := context.Background()
	src := reachable(t, b, fsObjects(t, b.dir))
	dir := t.TempDir()
	dst, err := store.NewFS(dir, store.Batch)
	must(t, err)
	_, err = storecopy.Copy(ctx, storecopy.Options{From: b.fs, To: dst, State: b.state})
	must(t, err)
	sameObjects(t, "fs → fs", src, fsObjects(t, dir))

	docs := findLib(t, b, "Docs")
	lost := fileBlocks(t, dir, docs, "big.bin")[0]
	must(t, os.Remove(testenv.ObjectPath(dir, object.KindBlock, docs.StoreID, lost)))
	limited := findLib(t, b, "Limited")
	lc, err := restore.Commit(ctx, dst, object.Keys{RepoID: limited.ID, StoreID: limited.StoreID}, limited.Head)
	must(t, err)
	must(t, os.WriteFile(testenv.ObjectPath(dir, object.KindFS, limited.StoreID, lc.RootID), nil, 0o644))
	must(t, os.WriteFile(testenv.ObjectPath(dir, object.KindCommit, docs.ID, b.oldHead), []byte("{}"), 0o644))

	plain, err := storecopy.Copy(ctx, storecopy.Options{From: b.fs, To: dst, State: b.state})
	must(t, err)
	if plain.Copied.Objects() != 0 {
		t.Fatalf("plain rerun copied %+v", plain.Copied)
	}
	res, err := storecopy.Copy(ctx, storecopy.Options{From: b.fs, To: dst, State: b.state, Recheck: true})
	must(t, err)
	if c := res.Copied; c.Blocks != 1 || c.FSObjects != 1 || c.Commits != 1 {
		t.Fatalf("recheck copied %+v, want the lost block, the emptied dir and the damaged commit", c)
	}
	sameObjects(t, "rechecked", src, fsObjects(t, dir))
	verifyOK(t, dst, b.state)
}

// A hole filled in the source after a copy (the primary repaired, the library synced
// again: the state no longer records it) is filled in the destination by the next copy:
// the commit copied without its tree is walked again because its root is missing there.
func TestCopyAfterHoleFilled(t *testing.T) {
	b := newBackup(t)
	ctx := context.Background()
	s3, o := newS3(t)
	_, err := storecopy.Copy(ctx, storecopy.Options{From: b.fs, To: s3, State: b.state})
	must(t, err)
	holey := findLib(t, b, "Holey")
	b.holeFix()
	res, err := b.engine(false).Sync(ctx, holey.ID)
	must(t, err)
	if rec, _, _ := b.state.Load(holey.ID); len(rec.Holes) != 0 || res.Blocks == 0 {
		t.Fatalf("hole not filled: %+v %+v", res, rec.Holes)
	}
	again, err := storecopy.Copy(ctx, storecopy.Options{From: b.fs, To: s3, State: b.state})
	must(t, err)
	t.Logf("after the hole was filled the copy wrote %+v", again.Copied)
	sameObjects(t, "filled", fsObjects(t, b.dir), s3Objects(t, o))
	verifyOK(t, s3, b.state)
}

// A block damaged in the backup that the primary no longer has: the repair sync records
// it as a hole, so the state already says the backup lacks it, and no repair can bring
// it back. The copy leaves it out as it leaves out a missing one (with the dirs above
// it, so a present dir stays complete) instead of failing the library at every copy;
// the rest is copied and the destination verifies against the state.
func TestCopyLeavesOutADamagedObjectRecordedAsAHole(t *testing.T) {
	b := newBackup(t)
	ctx := context.Background()
	secret := findLib(t, b, "Secret")
	id := fileBlocks(t, b.primaryDir, secret, "s/secret.bin")[0]
	damaged := testenv.ObjectPath(b.dir, object.KindBlock, secret.StoreID, id)
	data, err := os.ReadFile(damaged)
	must(t, err)
	os.Chmod(damaged, 0o644)
	must(t, os.WriteFile(damaged, append([]byte{data[0] ^ 0xff}, data[1:]...), 0o644))
	must(t, os.Remove(testenv.ObjectPath(b.primaryDir, object.KindBlock, secret.StoreID, id)))
	e := b.engine(true)
	e.Recheck = true
	_, err = e.Sync(ctx, secret.ID)
	must(t, err)
	if rec, _, _ := b.state.Load(secret.ID); len(rec.Holes) != 1 || rec.Holes[0].ID != id {
		t.Fatalf("the repair sync recorded holes %+v, want block %s", rec.Holes, id)
	}

	s3, _ := newS3(t)
	res, err := storecopy.Copy(ctx, storecopy.Options{From: b.fs, To: s3, State: b.state, Parallel: 4})
	if err != nil {
		t.Fatalf("copy with a damaged block recorded as a hole: %v", err)
	}
	for _, l := range res.Libraries {
		if l.RepoID == secret.ID && (l.Error != "" || l.Incomplete == 0) {
			t.Fatalf("copy of %s: %+v, want it copied with an incomplete commit", l.Name, l)
		}
	}
	if has, err := s3.Has(ctx, object.KindBlock, secret.StoreID, id); has || err != nil {
		t.Fatalf("the damaged block reached the destination: %v %v", has, err)
	}
	verifyOK(t, s3, b.state)
}
