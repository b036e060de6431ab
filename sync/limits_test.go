package sync_test

import (
	"context"
	"fmt"
	gosync "sync"
	"testing"
	"time"

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
	syncAllAtOnce(seafsync.LimitTransfers(context.Background(), 2, 2), t, eng)
	if p, c := counted.prepare.Most(), counted.copy.Most(); p > 2 || c > 2 || p == 0 || c == 0 {
		t.Fatalf("at most %d prepared and %d copied at once, want 1 or 2", p, c)
	}
	for _, lib := range libs {
		env.CompareWithPrimary(lib.ID, lib.StoreID, lib.Head)
	}
}

// syncAllAtOnce lists eng's libraries and syncs them all at once under ctx.
func syncAllAtOnce(ctx context.Context, t *testing.T, eng *seafsync.Engine) {
	t.Helper()
	listed, err := eng.Source.Libraries(context.Background())
	must(t, err)
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
}

type countingSource struct {
	primary.Source
	prepare, copy testenv.Gauge
}

func (c *countingSource) Prepare(ctx context.Context, lib primary.Library) error {
	defer c.prepare.Enter()()
	return c.Source.(primary.Preparer).Prepare(ctx, lib)
}

// Commit is where each copy starts (the head commit is read first).
func (c *countingSource) Commit(ctx context.Context, lib primary.Library, id string) ([]byte, error) {
	defer c.copy.Enter()()
	return c.Source.Commit(ctx, lib, id)
}

// Under LimitTransfers(copies, parallel) with more copies than parallel, small copies
// fill the copy slots but at most parallel copies go on past their first smallCopy
// objects, whether commits (long histories) or fs objects (large trees): a scan over
// HTTP copies many small libraries at once without holding as many large walks in
// memory.
func TestLimitTransfersBoundsLargeCopies(t *testing.T) {
	defer seafsync.SetSmallCopy(10)()
	env := testenv.New(t, srv)
	env.StartFileServer()
	g := seafgen.New(env.PrimaryDir)
	var libs []*seafgen.Library
	for i := range 6 {
		lib, err := g.NewLibrary(seafgen.LibraryOptions{Name: fmt.Sprint("large ", i), Owner: "limits@example.com"})
		must(t, err)
		if i%2 == 0 { // a long history
			for c := range 12 {
				testenv.Commit(t, lib, fmt.Sprint("commit ", c), seafgen.Put("a.txt", []byte(fmt.Sprint(i, c))))
			}
		} else { // a large tree
			var files []seafgen.Change
			for d := range 8 {
				for f := range 6 {
					files = append(files, seafgen.Put(fmt.Sprintf("d%d/f%d.txt", d, f), []byte(fmt.Sprint(i, d, f))))
				}
			}
			testenv.Commit(t, lib, "files", files...)
		}
		libs = append(libs, lib)
	}
	env.Publish(libs...)
	eng := env.Engine(false)
	large := &largeSource{Remote: eng.Source.(*primary.Remote), fetched: map[string]int{}}
	eng.Source = large
	syncAllAtOnce(seafsync.LimitTransfers(context.Background(), 8, 1), t, eng)
	if c, l := large.copy.Most(), large.large.Most(); c < 2 || l != 1 {
		t.Fatalf("%d copies and %d large ones at once, want several and 1", c, l)
	}
	for _, lib := range libs {
		env.CompareWithPrimary(lib.ID, lib.StoreID, lib.Head)
	}
}

// largeSource counts the copies asking for objects at once, and those of them that
// had fetched 10 objects before (large): a large one waits briefly for another to show
// up, so that two would be seen if they could run at once.
type largeSource struct {
	*primary.Remote
	mu          gosync.Mutex
	fetched     map[string]int
	copy, large testenv.Gauge
}

func (s *largeSource) asking(lib primary.Library, n int) (done func()) {
	s.mu.Lock()
	before := s.fetched[lib.ID]
	s.fetched[lib.ID] += n
	s.mu.Unlock()
	leaveCopy := s.copy.Enter()
	if before < 10 {
		return leaveCopy
	}
	leaveLarge := s.large.EnterWaiting(50 * time.Millisecond)
	return func() { leaveLarge(); leaveCopy() }
}

func (s *largeSource) Commit(ctx context.Context, lib primary.Library, id string) ([]byte, error) {
	defer s.asking(lib, 1)()
	return s.Remote.Commit(ctx, lib, id)
}

func (s *largeSource) FSObjects(ctx context.Context, lib primary.Library, ids []string, fn func(string, []byte, error) error) error {
	defer s.asking(lib, len(ids))()
	return s.Remote.FSObjects(ctx, lib, ids, fn)
}
