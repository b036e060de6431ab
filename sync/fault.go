package sync

import (
	"errors"
	"fmt"

	"seafbak/sync/object"
	"seafbak/sync/primary"
)

// Class says what is known about an object the primary did not give, which decides what
// --force may do with it. Only what the primary answered (it lacks the object, or it
// sent bytes that are not the object) may become a hole; a failure that proves nothing
// about the object must never be recorded as if the object were gone.
type Class int

const (
	// Absent: the primary answered that it does not have the object.
	Absent Class = iota + 1
	// Corrupt: the primary sent bytes that are not the object (wrong hash, unparsable,
	// over the size bound, a file whose blocks do not add up to its size).
	Corrupt
	// Unreachable: no answer about the object (connection refused, reset, timeout, 5xx
	// that persisted, data dir gone).
	Unreachable
	// Failed: any other error reading the primary (refused token, I/O error).
	Failed
)

func (c Class) String() string {
	switch c {
	case Absent:
		return "missing on the primary"
	case Corrupt:
		return "corrupt on the primary"
	case Unreachable:
		return "primary unreachable"
	}
	return "could not be read from the primary"
}

// Skippable reports whether --force may record an object of this class as a hole.
func (c Class) Skippable() bool { return c == Absent || c == Corrupt }

func classify(err error) Class {
	switch {
	case errors.Is(err, primary.ErrUnreachable):
		return Unreachable
	case errors.Is(err, primary.ErrNotFound):
		return Absent
	case errors.Is(err, object.ErrInvalid):
		return Corrupt
	}
	return Failed
}

// ObjectError is a library's failure at one object: which object, where it was met, and
// the class of what went wrong.
type ObjectError struct {
	Kind   string // "commit", "fs object", "block"
	ID     string
	Path   string // in the commit's tree; "" for commits
	Commit string // the commit whose tree holds it; "" for commits
	Class  Class
	Head   bool // the object is the primary's head commit: nothing can stand in for it
	Err    error
}

func (e *ObjectError) Error() string {
	msg := fmt.Sprintf("%s %s", e.Kind, e.ID)
	if e.Path != "" {
		msg += fmt.Sprintf(" at %q", e.Path)
	}
	if e.Commit != "" {
		msg += " in commit " + e.Commit
	}
	if e.Class == Unreachable && errors.Is(e.Err, primary.ErrUnreachable) {
		msg += fmt.Sprintf(": %v", e.Err) // says "primary unreachable" itself
	} else {
		msg += fmt.Sprintf(": %s: %v", e.Class, e.Err)
	}
	switch {
	case e.Class == Unreachable:
		msg += " (nothing was recorded and the backup keeps its previous head: check that the primary's file server or data dir is up, then sync again)"
	case !e.Class.Skippable():
		msg += " (nothing was recorded and the backup keeps its previous head)"
	case e.Head:
		msg += " (this is the primary's head commit, which --force cannot skip: the backup keeps its previous head; repair the primary with seaf-fsck)"
	default:
		msg += " (repair the primary with seaf-fsck, or run sync --force to back up the rest and record the hole)"
	}
	return msg
}

func (e *ObjectError) Unwrap() error { return e.Err }

// ErrInvariant marks a violated post-condition: the engine was about to record a head
// that the store does not fully hold. It is a bug in seafbak, and nothing is recorded.
var ErrInvariant = errors.New("seafbak bug: refusing to record a head the backup does not hold (please report this with the log; nothing was recorded)")
