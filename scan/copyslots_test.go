package scan_test

import (
	"context"
	"testing"
	"time"

	"seafbak/internal/testenv"
	"seafbak/scan"
	"seafbak/sync/primary"
)

// Over HTTP a small library's copy is a chain of round trips, so a scan copies as many
// libraries at once as the source keeps requests in flight, not only Parallel of them
// (issue 10: with 4 at once, a first scan at 5 ms RTT waited on round trips). From the
// data dir, Parallel still bounds the copies.
func TestScanOverHTTPCopiesMoreLibrariesThanParallel(t *testing.T) {
	f := newFixture(t, 12)
	if n := f.env.Engine(false).CopySlots(1); n != 1 {
		t.Fatalf("data dir: %d copy slots for parallel 1, want 1", n)
	}
	f.env.StartFileServer()
	eng := f.env.Engine(false)
	overlap := &overlapSource{Remote: eng.Source.(*primary.Remote)}
	eng.Source = overlap
	s := &scan.Scanner{Engine: eng, Catalog: f.env.Catalog, State: f.env.State, Parallel: 1}
	sum, err := s.Run(context.Background())
	must(t, err)
	if sum.Synced != 12 || sum.Failed != 0 {
		t.Fatalf("scan: %+v", sum)
	}
	if most := overlap.copy.Most(); most < 2 {
		t.Fatalf("at most %d libraries copied at once over HTTP with parallel 1, want more", most)
	}
	for _, l := range f.libs {
		f.env.CompareWithPrimary(l.ID, l.StoreID, l.Head)
	}
}

// overlapSource counts the copies under way (each starts by reading its head commit)
// and holds the first one briefly, so that a second one can show up if it may.
type overlapSource struct {
	*primary.Remote
	copy testenv.Gauge
}

func (o *overlapSource) Commit(ctx context.Context, lib primary.Library, id string) ([]byte, error) {
	defer o.copy.EnterWaiting(200 * time.Millisecond)()
	return o.Remote.Commit(ctx, lib, id)
}
