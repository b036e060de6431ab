// Package store is the backup side: where objects are written (Store) and the backup
// database rows that name each library's head (Rows). Nothing above it assumes local
// files, so an object-storage Store can take the filesystem's place.
package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"

	"golang.org/x/sys/unix"

	"seafbak/sync/object"
)

// ErrNotExist is returned for an object that is not in the store.
var ErrNotExist = errors.New("object not in backup store")

// ErrUnavailable marks a store request that failed for a reason that may pass (S3
// throttling, a server error, no answer, a stalled transfer) after its retries: the
// store's outage, not the library's fault.
var ErrUnavailable = errors.New("the backup store is unavailable")

// Unreadable reports whether err is one object's file that the filesystem could not
// read (EIO on a lost sector, say): that object's fault, as a damaged one is, not the
// store's. A re-check fetches such an object again; verify lists it. Any other error
// but ErrNotExist and an object found invalid is the store failing as a whole.
func Unreadable(err error) bool {
	var pe *fs.PathError
	return errors.As(err, &pe) && !errors.Is(err, ErrNotExist) &&
		!errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
}

// ErrNoSpace is a write the backup store's filesystem refused for want of room: no
// space or no inodes left (ENOSPC), or a quota reached (EDQUOT). Every other library
// would meet it too, so a scan stops starting syncs when one meets it.
var ErrNoSpace = errors.New("the backup store's filesystem is full")

// NoSpaceError is ErrNoSpace for a filesystem store. Its text names the store and the
// errno, not the object being written when room ran out: that differs at every attempt,
// and a library's recorded error must not (status --if-changed mails a change of health,
// not every retry). The full error goes to the log.
type NoSpaceError struct {
	Root  string // the store's seafile-data directory
	Errno unix.Errno
	Err   error // as the write failed, object path and all
}

func (e *NoSpaceError) Error() string {
	return fmt.Sprintf("%s at %s: %v", ErrNoSpace, e.Root, e.Errno)
}
func (e *NoSpaceError) Unwrap() []error { return []error{ErrNoSpace, e.Err} }

// noSpace turns a write's error into a NoSpaceError when the filesystem had no room.
func noSpace(root string, err error) error {
	for _, errno := range []unix.Errno{unix.ENOSPC, unix.EDQUOT} {
		if errors.Is(err, errno) {
			return &NoSpaceError{Root: root, Errno: errno, Err: err}
		}
	}
	return err
}

// Store holds Seafile objects keyed by kind, store id and object id. Writes are atomic:
// an object is either absent or complete, never partial, even after kill -9.
type Store interface {
	// Has reports whether the object is present.
	Has(ctx context.Context, kind object.Kind, storeID, id string) (bool, error)
	// HasLibrary reports whether any object of this kind is stored under storeID.
	HasLibrary(ctx context.Context, kind object.Kind, storeID string) (bool, error)
	// Size is the stored object's length; ErrNotExist if absent.
	Size(ctx context.Context, kind object.Kind, storeID, id string) (int64, error)
	// Get reads a small object (commit or fs object) whole, refusing one larger than
	// object.MaxStoredSize.
	Get(ctx context.Context, kind object.Kind, storeID, id string) ([]byte, error)
	// Open streams an object (a block); the caller closes it.
	Open(ctx context.Context, kind object.Kind, storeID, id string) (io.ReadCloser, error)
	// Create starts writing an object. Nothing is visible until Commit; Abort discards it.
	Create(ctx context.Context, kind object.Kind, storeID, id string) (Writer, error)
	// Sync makes every object written so far durable. The engine calls it before moving
	// any metadata (invariant 2).
	Sync(ctx context.Context) error
	// SyncAll makes every object in the store durable, whoever wrote it: what a sync
	// trusts as present may have been written by another process that has not synced.
	SyncAll(ctx context.Context) error
}

// Preloader is a Store that reaches a whole library's objects more cheaply once told
// the library will be copied: S3 answers presence from one listing instead of a request
// per object (one ListObjectsV2 page per 1000 keys against one HEAD per object); FS holds
// the library's directories open (see libdir.go). A sync preloads a library when it
// expects to ask about most of its objects (its first backup, or the resumption of one),
// and forgets it when the copy is done, so a scan of many libraries holds one preload
// per running sync, not one per library. A listing may say "absent" for an object
// another process wrote since; the sync then writes it again, which is redundant but
// harmless.
type Preloader interface {
	Preload(ctx context.Context, kind object.Kind, storeID string) error
	Forget(kind object.Kind, storeID string)
}

// CommitDurable is a Store whose Writer.Commit returns only once the object is durable
// (S3: a PUT is durable when it returned). A
// sync that dies writing into it leaves only whole, durable objects, so it needs no dirty
// marker, and a killed sync costs the next one no re-check.
type CommitDurable interface {
	DurableOnCommit() bool
}

// DurableOnCommit reports whether s is a CommitDurable store that says so.
func DurableOnCommit(s Store) bool {
	d, ok := s.(CommitDurable)
	return ok && d.DurableOnCommit()
}

// Writer receives one object's bytes. Exactly one of Commit or Abort must be called.
type Writer interface {
	io.Writer
	Commit() error
	Abort()
}

// Put writes a whole small object.
func Put(ctx context.Context, s Store, kind object.Kind, storeID, id string, data []byte) error {
	w, err := s.Create(ctx, kind, storeID, id)
	if err != nil {
		return err
	}
	if _, err := w.Write(data); err != nil {
		w.Abort()
		return err
	}
	return w.Commit()
}
