package sync_test

import (
	"context"
	"fmt"
	gosync "sync"
	"sync/atomic"
	"testing"

	"seafbak/internal/seafgen"
	"seafbak/internal/testenv"
	seafsync "seafbak/sync"
	"seafbak/sync/primary"
)

// Under LimitTransfers(n), however many syncs run at once (a scan runs 64 per slot),
// at most n prepare at once (over HTTP each queries the primary's database: hundreds
// at once exceeded MariaDB's max_connections) and at most n copy at once.
func TestLimitTransfersBoundsPrepareAndCopy(t *testing.T) {
	env := testenv.New(t, srv)
	env.StartFileServer()
	g := seafgen.New(env.PrimaryDir)
	var libs []*seafgen.Library
	for i := range 40 {
		lib, err := g.NewLibrary(seafgen.LibraryOptions{Name: fmt.Sprint("lib ", i), Owner: "limits@example.com"})
		must(t, err)
		testenv.Commit(t, lib, "file", seafgen.Put("a.txt", []byte(fmt.Sprint(i))))
		libs = append(libs, lib)
	}
	env.Publish(libs...)
	eng := env.Engine(false)
	counted := &countingSource{Source: eng.Source}
	eng.Source = counted
	listed, err := eng.Source.Libraries(context.Background())
	must(t, err)
	ctx := seafsync.LimitTransfers(context.Background(), 2, 2)
	var wg gosync.WaitGroup
	for _, lib := range listed {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := eng.SyncListed(ctx, lib); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if p, c := counted.maxPrepare.Load(), counted.maxCopy.Load(); p > 2 || c > 2 || p == 0 || c == 0 {
		t.Fatalf("at most %d prepared and %d copied at once, want 1 or 2", p, c)
	}
	for _, lib := range libs {
		env.CompareWithPrimary(lib.ID, lib.StoreID, lib.Head)
	}
}

type countingSource struct {
	primary.Source
	prepare, copy       atomic.Int64
	maxPrepare, maxCopy atomic.Int64
}

func enter(n, most *atomic.Int64) func() {
	v := n.Add(1)
	for {
		m := most.Load()
		if v <= m || most.CompareAndSwap(m, v) {
			break
		}
	}
	return func() { n.Add(-1) }
}

func (c *countingSource) Prepare(ctx context.Context, lib primary.Library) error {
	defer enter(&c.prepare, &c.maxPrepare)()
	return c.Source.(primary.Preparer).Prepare(ctx, lib)
}

// Commit is where each copy starts (the head commit is read first).
func (c *countingSource) Commit(ctx context.Context, lib primary.Library, id string) ([]byte, error) {
	defer enter(&c.copy, &c.maxCopy)()
	return c.Source.Commit(ctx, lib, id)
}
