package restore_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	gosync "sync"
	"syscall"
	"testing"

	"seafbak/internal/seafgen"
	"seafbak/internal/testenv"
	"seafbak/restore"
	"seafbak/sync/object"
	"seafbak/sync/store"
)

// Found by review: a commit Seafile's GC keeps (the second parent of a merge, written by a
// client offline for a while, so its ctime is older than a truncated commit on the main
// line) is whole in the backup. Losing its root dir from the backup is damage, yet verify
// takes every commit "not newer than" a truncated one as truncated and passes.
// eioStore models a lost sector: reads of the named objects fail with EIO (as the FS
// store reports it: a *fs.PathError), until the object is written again.
type eioStore struct {
	store.Store
	mu  gosync.Mutex
	bad map[string]bool
}

func (s *eioStore) isBad(kind object.Kind, id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bad[string(kind)+id]
}

func (s *eioStore) Get(ctx context.Context, kind object.Kind, storeID, id string) ([]byte, error) {
	if s.isBad(kind, id) {
		return nil, fmt.Errorf("backup store: %w", &fs.PathError{Op: "read", Path: id, Err: syscall.EIO})
	}
	return s.Store.Get(ctx, kind, storeID, id)
}

type eioReader struct{ id string }

func (r eioReader) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: r.id, Err: syscall.EIO}
}

func (s *eioStore) Open(ctx context.Context, kind object.Kind, storeID, id string) (io.ReadCloser, error) {
	if s.isBad(kind, id) {
		return io.NopCloser(eioReader{id}), nil
	}
	return s.Store.Open(ctx, kind, storeID, id)
}

type eioWriter struct {
	store.Writer
	s  *eioStore
	id string
}

func (w eioWriter) Commit() error {
	err := w.Writer.Commit()
	if err == nil {
		w.s.mu.Lock()
		delete(w.s.bad, w.id)
		w.s.mu.Unlock()
	}
	return err
}

func (s *eioStore) Create(ctx context.Context, kind object.Kind, storeID, id string) (store.Writer, error) {
	w, err := s.Store.Create(ctx, kind, storeID, id)
	if err != nil {
		return nil, err
	}
	return eioWriter{w, s, string(kind) + id}, nil
}

// Found by review: a lost sector under a backed-up object (README: "Damage in the backup (bit
// rot, a lost sector): verify finds it; verify --repair fetches every missing or damaged
// object again"). verify reports the unreadable object as damaged, but the repair's
// re-check treats the read error as fatal and the library is never repaired.
// Found by review: a library whose first backup never completed (here: a block missing on the
// primary) and that its owner then deleted. Nothing of it is in the backup and nothing
// can be fetched, yet every verify from then on fails (exit 1, "libraries with objects
// missing or damaged in the backup"), and --repair can do nothing about it.
func TestVerifyDeletedNeverBackedUp(t *testing.T) {
	env, g := primaryWithGenerator(t)
	good, err := g.NewLibrary(seafgen.LibraryOptions{Name: "Good"})
	must(t, err)
	testenv.Commit(t, good, "files", seafgen.Put("a.txt", []byte("a")))
	gone, err := g.NewLibrary(seafgen.LibraryOptions{Name: "Mistake"})
	must(t, err)
	testenv.Commit(t, gone, "files", seafgen.Put("big.bin", testenv.RandomBytes(9000, 3)))
	env.Publish(good, gone)
	testenv.SyncOK(t, env.Engine(false), good.ID)
	ctx := context.Background()
	_, blocks := env.PrimaryFile(gone, "big.bin")
	must(t, os.Remove(testenv.ObjectPath(env.PrimaryDir, object.KindBlock, gone.StoreID, blocks[0])))
	if _, err := env.Engine(false).Sync(ctx, gone.ID); err == nil {
		t.Fatal("first sync with a block missing on the primary succeeded")
	}
	// The owner deletes the library; the next scan marks it deleted.
	must(t, seafgen.DeleteRows(ctx, env.PrimaryDB, gone.ID))
	res, err := env.Engine(false).Sync(ctx, gone.ID)
	must(t, err)
	if !res.Deleted {
		t.Fatalf("not marked deleted: %+v", res)
	}
	rep, err := restore.Verify(ctx, restore.VerifyOptions{Store: env.Store, State: env.State})
	must(t, err)
	if !rep.OK() {
		js, _ := json.MarshalIndent(libReport(t, rep, gone.ID), "", " ")
		t.Fatalf("verify fails forever over a deleted library that was never backed up:\n%s", js)
	}
}

// unavailableStore answers some reads as S3 does while it is down (after its retries):
// an error wrapping store.ErrUnavailable, which says nothing about the object.
type unavailableStore struct {
	store.Store
	kind object.Kind
}

func (s unavailableStore) down(kind object.Kind) error {
	if kind == s.kind {
		return fmt.Errorf("backup store: GET: 503 Slow Down: %w", store.ErrUnavailable)
	}
	return nil
}

func (s unavailableStore) Get(ctx context.Context, kind object.Kind, storeID, id string) ([]byte, error) {
	if err := s.down(kind); err != nil {
		return nil, err
	}
	return s.Store.Get(ctx, kind, storeID, id)
}

func (s unavailableStore) Size(ctx context.Context, kind object.Kind, storeID, id string) (int64, error) {
	if err := s.down(kind); err != nil {
		return 0, err
	}
	return s.Store.Size(ctx, kind, storeID, id)
}

// Found by review: the history walk treats a store that cannot answer as an error ("a store that
// cannot answer tells nothing of what it holds"), but the object pass does not: an S3
// outage while reading fs objects or blocks is reported as objects DAMAGED in the
// backup (exit 1, and --repair re-checks every such library), not as verify could not
// run (exit 2).
func TestVerifyStoreOutageIsNotDamage(t *testing.T) {
	env, _, _ := backedUpRichLibrary(t)
	for _, kind := range []object.Kind{object.KindFS, object.KindBlock} {
		rep, err := restore.Verify(context.Background(), restore.VerifyOptions{Store: unavailableStore{env.Store, kind}, State: env.State})
		if err == nil {
			var ps []restore.Problem
			for _, l := range rep.Libraries {
				ps = append(ps, l.Problems...)
			}
			t.Errorf("%s unavailable: verify returned a report, OK=%v, with %d problems, e.g. %+v", kind, rep.OK(), len(ps), ps[:min(1, len(ps))])
		}
	}
}

// Found by review: a lost sector under a backed-up object (README: "Damage in the backup (bit
// rot, a lost sector): verify finds it; verify --repair fetches every missing or damaged
// object again"). verify reports the unreadable object as damaged, but the repair's
// re-check treats the read error as fatal and the library is never repaired.
func TestRepairLostSector(t *testing.T) {
	for _, kind := range []object.Kind{object.KindBlock, object.KindFS, object.KindCommit} {
		t.Run(string(kind), func(t *testing.T) {
			env, g := primaryWithGenerator(t)
			lib, rc := richLibrary(t, g)
			env.Publish(lib)
			testenv.SyncOK(t, env.Engine(false), lib.ID)
			var id string
			switch kind {
			case object.KindBlock:
				_, blocks := fileAt(t, env, lib, lib.Head, "big.bin")
				id = blocks[0]
			case object.KindFS:
				id, _ = fileAt(t, env, lib, lib.Head, "big.bin")
			case object.KindCommit:
				id = rc.renamed
			}
			s := &eioStore{Store: env.Store, bad: map[string]bool{string(kind) + id: true}}
			ctx := context.Background()
			verify := func() *restore.LibraryReport {
				rep, err := restore.Verify(ctx, restore.VerifyOptions{Store: s, State: env.State, Libraries: []string{lib.ID}})
				must(t, err)
				return libReport(t, rep, lib.ID)
			}
			if lr := verify(); lr.OK() || findProblem(lr.Problems, kind, id) == nil {
				t.Fatalf("verify missed the lost sector: %+v", lr)
			}
			eng := env.Engine(false)
			eng.Store = s
			eng.Recheck = true // what verify --repair runs
			if _, err := eng.Sync(ctx, lib.ID); err != nil {
				t.Errorf("repair of an unreadable %s that the primary still has failed: %v", kind, err)
			}
			if lr := verify(); !lr.OK() {
				t.Errorf("after repair the library still fails: %+v", lr.Problems)
			}
		})
	}
}

// Found by review: a library whose first backup never completed (here: a block missing on the
// primary) and that its owner then deleted. Nothing of it is in the backup and nothing
// can be fetched, yet every verify from then on fails (exit 1, "libraries with objects
// missing or damaged in the backup"), and --repair can do nothing about it.
// unavailableStore answers some reads as S3 does while it is down (after its retries):
// an error wrapping store.ErrUnavailable, which says nothing about the object.
// Found by review: the history walk treats a store that cannot answer as an error ("a store that
// cannot answer tells nothing of what it holds"), but the object pass does not: an S3
// outage while reading fs objects or blocks is reported as objects DAMAGED in the
// backup (exit 1, and --repair re-checks every such library), not as verify could not
// run (exit 2).

// Found by review: a commit Seafile's GC keeps (the second parent of a merge, written by a
// client offline for a while, so its ctime is older than a truncated commit on the main
// line) is whole in the backup. Losing its root dir from the backup is damage, yet verify
// takes every commit "not newer than" a truncated one as truncated and passes.
func TestVerifyTruncationDoesNotMaskAKeptCommit(t *testing.T) {
	env, g := primaryWithGenerator(t)
	var now int64
	g.Now = func() int64 { return now }
	now = 1000
	lib, err := g.NewLibrary(seafgen.LibraryOptions{Name: "Limited"})
	must(t, err)
	base := lib.Head
	now = 1010
	testenv.Commit(t, lib, "old", seafgen.Put("old.bin", testenv.RandomBytes(9000, 5)))
	now = 1020
	testenv.Commit(t, lib, "older edit", seafgen.Put("old.bin", testenv.RandomBytes(9000, 6)))
	// The laptop, offline since base, commits at 1005 (its own clock, correct).
	now = 1005
	side, err := lib.CommitOn(base, "offline edit", seafgen.Put("side.txt", []byte("from the laptop")))
	must(t, err)
	now = 2000
	limit := testenv.Commit(t, lib, "new", seafgen.Delete("old.bin"), seafgen.Put("new.txt", []byte("n")))
	now = 2001
	testenv.Commit(t, lib, "newest", seafgen.Put("new.txt", []byte("nn")))
	now = 2002
	_, err = lib.Merge(side) // the laptop comes back: the server merges its upload
	must(t, err)
	must(t, lib.TruncateBefore(limit))
	env.Publish(lib)
	testenv.SyncOK(t, env.Engine(false), lib.ID)

	ctx := context.Background()
	rep, err := restore.Verify(ctx, restore.VerifyOptions{Store: env.Store, State: env.State})
	must(t, err)
	if !rep.OK() {
		t.Fatalf("clean backup: %+v", rep)
	}
	lr := libReport(t, rep, lib.ID)
	if len(lr.Truncated) == 0 {
		t.Fatalf("no truncation recorded: %+v", lr)
	}
	// The side commit is kept whole by the primary's GC (a parent of the merge), and the
	// engine backed it up whole.
	sideRoot, err := lib.RootID(side)
	must(t, err)
	if _, err := os.Stat(testenv.ObjectPath(env.PrimaryDir, object.KindFS, lib.StoreID, sideRoot)); err != nil {
		t.Fatalf("primary's GC kept the side commit's tree: %v", err)
	}
	// Bit rot in the backup: the side commit's root dir is lost.
	must(t, os.Remove(testenv.ObjectPath(env.BackupDir, object.KindFS, lib.StoreID, sideRoot)))
	rep, err = restore.Verify(ctx, restore.VerifyOptions{Store: env.Store, State: env.State})
	must(t, err)
	lr = libReport(t, rep, lib.ID)
	if rep.OK() {
		js, _ := json.MarshalIndent(lr, "", " ")
		t.Fatalf("the root of commit %s (kept by the primary's GC, backed up whole) was lost from the backup, yet verify passes:\n%s", side, js)
	}
}
