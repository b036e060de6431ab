// Package primary is the read-only side of a backup: the Seafile server being backed up.
// A Source tells which libraries exist and where their heads are (from the primary's
// database) and hands out their objects (from its data dir now, over Seafile's HTTP sync
// protocol later). Everything a Source returns is untrusted: the engine verifies it.
package primary

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"
)

// ErrNotFound is wrapped when the primary does not have an object.
var ErrNotFound = errors.New("not found on the primary")

// ErrUnreachable is wrapped when the primary gave no answer about an object: the
// connection was refused, reset or timed out, the file server kept failing (5xx), or the
// data dir is gone. Nothing can be concluded about the object, so such a failure never
// becomes a hole: the library fails and keeps its previous head.
var ErrUnreachable = errors.New("primary unreachable")

// UnreachableError says which request got no answer and why.
type UnreachableError struct {
	What string // the request or path, never a token
	Err  error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("%v: %s: %v", ErrUnreachable, e.What, e.Err)
}
func (e *UnreachableError) Unwrap() []error { return []error{ErrUnreachable, e.Err} }

// ErrLibraryGone is wrapped when the primary has no such library (never had it, or it
// was deleted).
var ErrLibraryGone = errors.New("library does not exist on the primary")

// Library is one library as the primary describes it.
type Library struct {
	ID      string
	StoreID string // where fs objects and blocks live: the origin's id for a virtual library
	Name    string
	Owner   string
	// OrgID is the organisation whose OrgRepo row gives the library its owner (no
	// RepoOwner row of its own); 0 for none. A failover needs it to give a library made
	// after the dump back to its organisation rather than to its user.
	OrgID int64
	Head  string // master branch head commit
	// HeadTime is when the library last changed (RepoInfo.update_time: the file server
	// sets it to the head commit's time); zero when unknown. For status only.
	HeadTime   time.Time
	ValidSince int64 // unix seconds; history older than this may have been GC'd (0: keeps all)
	Encrypted  bool
	Version    int
	// HeadError is set when the primary could not say for sure where the head is
	// (its database and file server disagree); such a library is not synced this time.
	HeadError error
}

// Virtual reports whether the library is a sub-folder of another one.
func (l Library) Virtual() bool { return l.StoreID != l.ID }

// Catalog lists libraries and their heads.
type Catalog interface {
	// Libraries lists every library that has a master branch, as one view of the
	// primary (one query, or one snapshot).
	Libraries(ctx context.Context) ([]Library, error)
	// Library describes one library; ErrLibraryGone if the primary has none by that id.
	Library(ctx context.Context, id string) (Library, error)
}

// Objects reads a library's objects.
type Objects interface {
	// Commit reads a commit object (under the library's own id).
	Commit(ctx context.Context, lib Library, id string) ([]byte, error)
	// FSObjects reads fs objects (under the store id) in a batch, calling fn once per id
	// with the zlib bytes or with the error for that id (wrapping ErrNotFound when
	// missing). An error returned by fn stops the batch and is returned.
	FSObjects(ctx context.Context, lib Library, ids []string, fn func(id string, data []byte, err error) error) error
	// Block streams a block (under the store id); the caller closes it.
	Block(ctx context.Context, lib Library, id string) (io.ReadCloser, error)
}

// Source is a whole primary.
type Source interface {
	Catalog
	Objects
}

// AbsenceChecker is a Source that can tell in one request which fs objects it lacks.
// Over HTTP a missing object costs a failed pack-fs and a check-fs each; asking for the
// roots of all commits past the history limit at once costs one request.
type AbsenceChecker interface {
	// MissingFS returns the ids among ids that the primary does not have.
	MissingFS(ctx context.Context, lib Library, ids []string) ([]string, error)
}

// Concurrent is a Source whose block reads wait on the network, so a sync should keep
// more of them in flight than Engine.Parallel (the HTTP source bounds what it sends
// with its own adaptive limit).
type Concurrent interface {
	BlockConcurrency() int
}

// Preparer is a Source that must set something up before a library's objects can be
// read (the HTTP source creates the library's token).
type Preparer interface {
	Prepare(ctx context.Context, lib Library) error
}

// BatchPreparer is a Preparer that can prepare many libraries at once, ahead of their
// syncs (a scan's new libraries). It is only a head start: Prepare still runs for each
// library, and is free for those already prepared.
type BatchPreparer interface {
	PrepareMany(ctx context.Context, libs []Library) error
}

// Holder is a Source that reads a library's objects faster while the library is held
// (the data dir source keeps its directories open). The engine holds a library for the
// copy of its first backup, when it reads most of its objects.
type Holder interface {
	Hold(lib Library)
	Release(lib Library)
}

// Combine joins a catalog and an object reader into a Source.
func Combine(c Catalog, o Objects) Source {
	if h, ok := o.(Holder); ok {
		return struct {
			combined
			Holder
		}{combined{c, o}, h}
	}
	return combined{c, o}
}

type combined struct {
	Catalog
	Objects
}

// LibrariesSince keeps the catalog's, which embedding the interface would hide.
func (c combined) LibrariesSince(ctx context.Context, since Print) ([]Library, Print, bool, error) {
	return LibrariesSince(ctx, c.Catalog, since)
}

// NotFoundError names the object the primary lacks.
type NotFoundError struct {
	Kind string
	ID   string
}

func (e *NotFoundError) Error() string { return fmt.Sprintf("%s %s %v", e.Kind, e.ID, ErrNotFound) }
func (e *NotFoundError) Unwrap() error { return ErrNotFound }

func truncate(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}
