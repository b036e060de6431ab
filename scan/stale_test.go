package scan_test

import (
	"context"
	"testing"

	"seafbak/internal/seafgen"
)

// A listing is a snapshot: a scan's (or watch's) job that runs after the primary's hook
// synced a newer head does not move the backup back to the listed one. It failed with
// the state and the backup database at H2, and H3 kept as an "old head".
func TestStaleListingDoesNotMoveTheHeadBack(t *testing.T) {
	f := newFixture(t, 1)
	ctx := context.Background()
	l := f.libs[0]
	_, err := f.scanner(false).Run(ctx)
	must(t, err)
	_, err = l.Commit("h2", seafgen.Put("a.txt", []byte("two")))
	must(t, err)
	must(t, l.InsertRows(ctx, f.env.PrimaryDB))
	libs, err := f.env.Catalog.Libraries(ctx) // the scan's listing, at H2
	must(t, err)
	_, err = l.Commit("h3", seafgen.Put("a.txt", []byte("three")))
	must(t, err)
	must(t, l.InsertRows(ctx, f.env.PrimaryDB))
	h3 := l.Head
	eng := f.env.Engine(false)
	_, err = eng.Sync(ctx, l.ID) // the primary's hook records H3
	must(t, err)
	res, err := eng.SyncListed(ctx, libs[0]) // the scan's job, listed at H2, runs after
	must(t, err)
	rec, _, err := f.env.State.Load(l.ID)
	must(t, err)
	if rec.Head != h3 || res.Head != h3 || f.env.BackupHead(l.ID) != h3 || len(rec.OldHeads) != 0 {
		t.Errorf("after a stale listed job: recorded %s, result %s, backup db %s, old heads %v; want all at H3 %s and no old head",
			rec.Head, res.Head, f.env.BackupHead(l.ID), rec.OldHeads, h3)
	}
	// The primary really moved back to H2 (a branch reset): the listed head is then
	// what it has, and the backup follows, keeping H3 restorable.
	h2 := libs[0].Head
	l.Head = h2
	must(t, l.InsertRows(ctx, f.env.PrimaryDB))
	res, err = eng.SyncListed(ctx, libs[0])
	must(t, err)
	rec, _, err = f.env.State.Load(l.ID)
	must(t, err)
	if rec.Head != h2 || res.Head != h2 || f.env.BackupHead(l.ID) != h2 || len(rec.OldHeads) != 1 || rec.OldHeads[0].Head != h3 {
		t.Errorf("after the primary's reset to H2: recorded %s, result %s, backup db %s, old heads %v; want H2 %s, H3 kept",
			rec.Head, res.Head, f.env.BackupHead(l.ID), rec.OldHeads, h2)
	}
}

// A library a scan saw gone, restored from the trash (and synced by its hook) before the
// scan's job for it ran, is not marked deleted: its backup rows stay.
func TestStaleGoneLibraryIsNotMarkedDeleted(t *testing.T) {
	f := newFixture(t, 1)
	ctx := context.Background()
	l := f.libs[0]
	_, err := f.scanner(false).Run(ctx)
	must(t, err)
	must(t, seafgen.DeleteRows(ctx, f.env.PrimaryDB, l.ID)) // to the trash: a scan lists it gone
	must(t, l.InsertRows(ctx, f.env.PrimaryDB))             // back from the trash
	eng := f.env.Engine(false)
	_, err = eng.Sync(ctx, l.ID) // its hook
	must(t, err)
	res, err := eng.MarkDeleted(ctx, l.ID) // the scan's job for the gone library runs after
	must(t, err)
	rec, _, err := f.env.State.Load(l.ID)
	must(t, err)
	if res.Deleted || rec.Deleted != nil || f.env.BackupHead(l.ID) != l.Head {
		t.Errorf("a live library: result deleted %v, recorded deleted %v, backup db head %q (want %s)", res.Deleted, rec.Deleted, f.env.BackupHead(l.ID), l.Head)
	}
	// Gone for real, it is marked deleted.
	must(t, seafgen.DeleteRows(ctx, f.env.PrimaryDB, l.ID))
	res, err = eng.MarkDeleted(ctx, l.ID)
	must(t, err)
	if rec, _, err = f.env.State.Load(l.ID); err != nil || !res.Deleted || rec.Deleted == nil || f.env.BackupHead(l.ID) != "" {
		t.Errorf("a deleted library: result deleted %v, record %+v (%v), backup db head %q", res.Deleted, rec.Deleted, err, f.env.BackupHead(l.ID))
	}
}
