package sync

import (
	"strings"
	"testing"

	"seafbak/sync/object"
	"seafbak/sync/primary"
)

// Seafile's GC walks on through every commit not older than the limit (ctime >=
// truncate_time) and keeps the first older one on each path: the parent of a commit
// made exactly at the limit is kept, so a missing object there is a fault, not
// truncation. markGCKept took only commits strictly newer than the limit.
func TestParentOfACommitAtTheLimitIsGCKept(t *testing.T) {
	id := func(c byte) string { return strings.Repeat(string(c), 40) }
	const limit = 1000
	head := &object.Commit{ID: id('a'), ParentID: id('b'), Ctime: limit + 10}
	atLimit := &object.Commit{ID: id('b'), ParentID: id('c'), Ctime: limit}
	older := &object.Commit{ID: id('c'), ParentID: id('d'), Ctime: limit - 10}
	oldest := &object.Commit{ID: id('d'), Ctime: limit - 20}
	r := &run{lib: primary.Library{Head: head.ID, ValidSince: limit}, toWalk: []*object.Commit{head, atLimit, older, oldest}}
	r.markGCKept()
	for _, c := range []struct {
		c    *object.Commit
		want bool
	}{{head, false}, {atLimit, false}, {older, false}, {oldest, true}} {
		if got := r.mayBeTrimmed(c.c); got != c.want {
			t.Errorf("commit of ctime %d (limit %d): may be trimmed %v, want %v", c.c.Ctime, limit, got, c.want)
		}
	}
}
