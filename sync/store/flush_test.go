package store

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"io/fs"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"seafbak/sync/object"
)

// putBlocks writes n distinct blocks of size bytes each.
func putBlocks(t *testing.T, s *FS, n, size int, seed string) {
	t.Helper()
	data := make([]byte, size)
	for i := range n {
		copy(data, seed+strconv.Itoa(i))
		sum := sha1.Sum(data)
		if err := Put(context.Background(), s, object.KindBlock, repo, hex.EncodeToString(sum[:]), data); err != nil {
			t.Fatal(err)
		}
	}
}

func waitFlushAhead(t *testing.T, s *FS) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); FlushingAhead(s); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("background flush still running after 10 s")
		}
	}
}

// A first backup's bytes start towards the disk while it copies: a syncfs starts in
// the background once FlushAheadBytes are pending, and Sync still flushes at the end.
func TestFSStoreFlushesAheadOfSync(t *testing.T) {
	s, err := NewFS(t.TempDir(), Batch)
	if err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	HookSyncfs(s, func() error { calls.Add(1); return nil })
	const size = 1 << 20
	putBlocks(t, s, FlushAheadBytes/size-1, size, "a")
	waitFlushAhead(t, s)
	if n := calls.Load(); n != 0 {
		t.Fatalf("%d background flushes before %d bytes were pending", n, FlushAheadBytes)
	}
	putBlocks(t, s, 2, size, "b")
	waitFlushAhead(t, s)
	if n := calls.Load(); n != 1 {
		t.Fatalf("%d background flushes once %d bytes were pending, want 1", n, FlushAheadBytes)
	}
	if err := s.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := calls.Load(); n != 2 {
		t.Fatalf("Sync did not flush after the background flush: %d syncfs calls", n)
	}
}

// Linux reports a writeback error once to each open file and marks the failed pages
// clean, so a flush after a failed one succeeds without those bytes on disk. Every Sync
// after a failed flush, the background one included, must fail.
func TestFSStoreFailedFlushFailsEveryLaterSync(t *testing.T) {
	for _, ahead := range []bool{false, true} {
		t.Run("ahead="+strconv.FormatBool(ahead), func(t *testing.T) {
			ctx := context.Background()
			root := t.TempDir()
			s, err := NewFS(root, Batch)
			if err != nil {
				t.Fatal(err)
			}
			eio := errors.New("injected EIO")
			var calls atomic.Int32
			HookSyncfs(s, func() error {
				if calls.Add(1) == 1 {
					return eio
				}
				return nil
			})
			if ahead {
				putBlocks(t, s, FlushAheadBytes>>20+1, 1<<20, "a")
				waitFlushAhead(t, s)
				if calls.Load() != 1 {
					t.Fatal("no background flush ran")
				}
			} else {
				putBlocks(t, s, syncfsAbove+1, 10, "a")
			}
			if err := s.Sync(ctx); !errors.Is(err, eio) || !errors.Is(err, ErrFlushFailed) {
				t.Fatalf("Sync after a failed flush: %v, want the flush's error as ErrFlushFailed", err)
			}
			putBlocks(t, s, syncfsAbove+1, 10, "b")
			if err := s.Sync(ctx); !errors.Is(err, eio) {
				t.Fatalf("a later Sync: %v, want the first failure again", err)
			}
			// A few objects take the fsync path, which must fail too.
			putBlocks(t, s, 1, 10, "c")
			if err := s.Sync(ctx); !errors.Is(err, eio) {
				t.Fatalf("a later Sync of one object: %v, want the first failure again", err)
			}
			if err := s.SyncAll(ctx); !errors.Is(err, eio) {
				t.Fatalf("SyncAll: %v, want the first failure again", err)
			}
			// The next process starts afresh; its engine re-checks what this one wrote.
			s2, err := NewFS(root, Batch)
			if err != nil {
				t.Fatal(err)
			}
			putBlocks(t, s2, syncfsAbove+1, 10, "d")
			if err := s2.Sync(ctx); err != nil {
				t.Fatalf("a new store after the failure: %v", err)
			}
		})
	}
}

// A flush whose open failed (out of descriptors) flushed nothing and saw no writeback
// error: it fails that Sync only.
func TestFSStoreFailedOpenFailsOnlyItsSync(t *testing.T) {
	ctx := context.Background()
	s, err := NewFS(t.TempDir(), Batch)
	if err != nil {
		t.Fatal(err)
	}
	emfile := &fs.PathError{Op: "open", Path: "x", Err: errors.New("too many open files")}
	var calls atomic.Int32
	HookSyncfs(s, func() error {
		if calls.Add(1) == 1 {
			return emfile
		}
		return nil
	})
	putBlocks(t, s, syncfsAbove+1, 10, "a")
	if err := s.Sync(ctx); !errors.Is(err, emfile) || errors.Is(err, ErrFlushFailed) {
		t.Fatalf("Sync: %v, want the open's error, not ErrFlushFailed", err)
	}
	// The objects stay pending, so the next Sync flushes them.
	if err := s.Sync(ctx); err != nil || calls.Load() != 2 {
		t.Fatalf("the next Sync: %v after %d syncfs calls, want success after 2", err, calls.Load())
	}
}

// Every syncfs goes through one open file, and Linux reports a writeback error to only
// one of two syncfs calls running on it at once. So the final flush must not succeed
// while a flush-ahead that met an error has not yet recorded it: that Sync would let
// the metadata move over objects that are not on disk.
func TestFSStoreFinalFlushWaitsForTheFlushAhead(t *testing.T) {
	ctx := context.Background()
	s, err := NewFS(t.TempDir(), Batch)
	if err != nil {
		t.Fatal(err)
	}
	eio := errors.New("injected EIO")
	aheadStarted, releaseAhead := make(chan struct{}), make(chan struct{})
	var calls atomic.Int32
	HookSyncfs(s, func() error {
		if calls.Add(1) == 1 { // the flush-ahead: it meets the error, and records it late
			close(aheadStarted)
			<-releaseAhead
			return eio
		}
		return nil // the final flush: the error went to the other call
	})
	putBlocks(t, s, FlushAheadBytes>>20+1, 1<<20, "a")
	<-aheadStarted
	synced := make(chan error, 1)
	go func() { synced <- s.Sync(ctx) }()
	select {
	case err := <-synced:
		t.Fatalf("Sync returned %v while the flush-ahead was still running", err)
	case <-time.After(200 * time.Millisecond):
	}
	close(releaseAhead)
	if err := <-synced; !errors.Is(err, eio) {
		t.Fatalf("Sync: %v, want the flush-ahead's error", err)
	}
}

// An object is visible from its name on: another sync of this process may find it
// present and trust it, then Sync before its writer has queued it. That Sync must
// wait for the writer and flush the object, or the other sync would record a head over
// it unflushed.
func TestSyncFlushesObjectsNamedBeforeItWasCalled(t *testing.T) {
	s, err := NewFS(t.TempDir(), Batch)
	if err != nil {
		t.Fatal(err)
	}
	named, release := make(chan string, 1), make(chan struct{})
	HookPlaced(s, func(path string) { named <- path; <-release })
	data := []byte("named but not yet pending")
	sum := sha1.Sum(data)
	id := hex.EncodeToString(sum[:])
	put := make(chan error, 1)
	go func() { put <- Put(context.Background(), s, object.KindBlock, repo, id, data) }()
	<-named
	if has, err := s.Has(context.Background(), object.KindBlock, repo, id); err != nil || !has {
		t.Fatalf("the named object is not present to another sync: %v %v", has, err)
	}
	synced := make(chan error, 1)
	go func() { synced <- s.Sync(context.Background()) }()
	select {
	case err := <-synced:
		t.Fatalf("Sync returned (%v) while an object it could have been trusted for was not yet pending", err)
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	if err := <-put; err != nil {
		t.Fatal(err)
	}
	if err := <-synced; err != nil {
		t.Fatal(err)
	}
	if n := Pending(s); n != 0 {
		t.Fatalf("%d objects left pending after a Sync called once the object was named", n)
	}
}
