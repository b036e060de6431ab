package sync

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"seafbak/state"
	"seafbak/sync/object"
	"seafbak/sync/store"
)

// proveRecordable is the last check before a library's metadata moves to the primary's
// head. It reads the store, not the run's bookkeeping, so no bug in the walk can make
// seafbak record a head the backup does not hold: the head commit must be in the store
// and readable, and every commit the walk met must be in the store with its root tree,
// or be accounted for by a recorded hole or recorded truncation. The store has been
// synced before this is called, so present here means durable.
func (r *run) proveRecordable(ctx context.Context, holes []state.Hole, truncated []string) error {
	holeCommits := map[string]bool{}    // commits with a hole somewhere in their tree
	missingCommits := map[string]bool{} // commits that are themselves holes
	for _, h := range holes {
		holeCommits[h.Commit] = true
		if h.Kind == "commit" {
			missingCommits[h.ID] = true
		}
	}
	cut := map[string]bool{}
	for _, id := range truncated {
		cut[id] = true
	}
	ids := make([]string, 0, len(r.reached))
	for id := range r.reached {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	violation := func(format string, args ...any) error {
		return fmt.Errorf("%w: head %s: %s", ErrInvariant, r.lib.Head, fmt.Sprintf(format, args...))
	}
	if !r.reached[r.lib.Head] {
		return violation("the walk never reached the head commit")
	}
	for _, id := range ids {
		raw, err := r.e.Store.Get(ctx, object.KindCommit, r.keys.For(object.KindCommit), id)
		if errors.Is(err, store.ErrNotExist) {
			if id == r.lib.Head {
				return violation("the head commit is not in the store")
			}
			if !missingCommits[id] {
				return violation("commit %s was walked but is neither in the store nor a recorded hole", id)
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("check the store holds head %s: commit %s: %w", r.lib.Head, id, err)
		}
		c, err := object.ParseCommit(raw, id, r.lib.ID)
		if err != nil {
			return violation("the store's copy of commit %s is unreadable: %v", id, err)
		}
		if c.RootID == object.EmptyID || holeCommits[id] || cut[id] {
			continue
		}
		has, err := r.e.Store.Has(ctx, object.KindFS, r.keys.For(object.KindFS), c.RootID)
		if err != nil {
			return fmt.Errorf("check the store holds head %s: root %s of commit %s: %w", r.lib.Head, c.RootID, id, err)
		}
		if !has {
			return violation("the root tree %s of commit %s is not in the store, and no hole or truncation is recorded for it", c.RootID, id)
		}
	}
	return nil
}
