package sync_test

import (
	"context"
	"crypto/sha1"
	"fmt"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"seafbak/internal/seafgen"
	"seafbak/internal/testenv"
	seafsync "seafbak/sync"
	"seafbak/sync/object"
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
	defer seafsync.SetSmallCopy(10, 1<<30)()
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
	large := newLargeSource(eng.Source.(*primary.Remote), 10, 1<<30)
	eng.Source = large
	syncAllAtOnce(seafsync.LimitTransfers(context.Background(), 8, 1), t, eng)
	if c, l := large.copy.Most(), large.large.Most(); c < 2 || l != 1 {
		t.Fatalf("%d copies and %d large ones at once, want several and 1", c, l)
	}
	for _, lib := range libs {
		env.CompareWithPrimary(lib.ID, lib.StoreID, lib.Head)
	}
}

// A copy of few but large fs objects (dirs of long names) counts as large by their
// bytes, and until it is, it fetches dirs in small batches: a copy waiting for a large
// slot holds what it fetched, and one dir can be a thousand entries.
func TestLimitTransfersBoundsCopiesOfLargeObjects(t *testing.T) {
	const smallBytes = 2 << 10
	defer seafsync.SetSmallCopy(1000, smallBytes)()
	env := testenv.New(t, srv)
	env.StartFileServer()
	g := seafgen.New(env.PrimaryDir)
	var libs []*seafgen.Library
	for i := range 6 {
		lib, err := g.NewLibrary(seafgen.LibraryOptions{Name: fmt.Sprint("wide ", i), Owner: "limits@example.com"})
		must(t, err)
		var files []seafgen.Change
		for d := range 20 {
			for f := range 3 {
				// Names that do not compress: the bytes are what this test is about.
				name := fmt.Sprintf("%x", sha1.Sum([]byte(fmt.Sprint(i, d, f))))
				name = strings.Repeat(name, 3)
				files = append(files, seafgen.Put(fmt.Sprintf("d%02d/%s.txt", d, name), []byte(fmt.Sprint(i, d, f))))
			}
		}
		testenv.Commit(t, lib, "files", files...)
		libs = append(libs, lib)
	}
	env.Publish(libs...)
	eng := env.Engine(false)
	large := newLargeSource(eng.Source.(*primary.Remote), 1000, smallBytes)
	eng.Source = large
	syncAllAtOnce(seafsync.LimitTransfers(context.Background(), 8, 1), t, eng)
	if c, l := large.copy.Most(), large.large.Most(); c < 2 || l != 1 {
		t.Fatalf("%d copies and %d large ones at once, want several and 1", c, l)
	}
	if d := large.mostSmallDirs; d == 0 || d > 8 {
		t.Fatalf("a small copy fetched %d dirs at once, want 1 to 8", d)
	}
	for _, lib := range libs {
		env.CompareWithPrimary(lib.ID, lib.StoreID, lib.Head)
	}
}

// largeSource counts the copies asking for objects at once, and those of them that
// had fetched objects or bytes past the small-copy limits before (large): a large one
// waits briefly for another to show up, so that two would be seen if they could run
// at once. It also keeps the most dirs a small copy asked for at once.
type largeSource struct {
	*primary.Remote
	objects, bytes int // the small-copy limits

	mu            gosync.Mutex
	fetched       map[string][2]int // objects and bytes answered, by library
	mostSmallDirs int
	copy, large   testenv.Gauge
}

func newLargeSource(r *primary.Remote, objects, bytes int) *largeSource {
	return &largeSource{Remote: r, objects: objects, bytes: bytes, fetched: map[string][2]int{}}
}

func (s *largeSource) asking(lib primary.Library, n int) (small bool, done func()) {
	s.mu.Lock()
	before := s.fetched[lib.ID]
	s.mu.Unlock()
	leaveCopy := s.copy.Enter()
	if before[0]+n <= s.objects && before[1] <= s.bytes {
		return true, leaveCopy
	}
	leaveLarge := s.large.EnterWaiting(50 * time.Millisecond)
	return false, func() { leaveLarge(); leaveCopy() }
}

func (s *largeSource) answered(lib primary.Library, data []byte) {
	s.mu.Lock()
	f := s.fetched[lib.ID]
	s.fetched[lib.ID] = [2]int{f[0] + 1, f[1] + len(data)}
	s.mu.Unlock()
}

func (s *largeSource) Commit(ctx context.Context, lib primary.Library, id string) ([]byte, error) {
	_, done := s.asking(lib, 1)
	defer done()
	raw, err := s.Remote.Commit(ctx, lib, id)
	s.answered(lib, raw)
	return raw, err
}

func (s *largeSource) FSObjects(ctx context.Context, lib primary.Library, ids []string, fn func(string, []byte, error) error) error {
	small, done := s.asking(lib, len(ids))
	defer done()
	dirs := 0
	err := s.Remote.FSObjects(ctx, lib, ids, func(id string, data []byte, err error) error {
		s.answered(lib, data)
		if fs, perr := object.ParseFS(id, data); err == nil && perr == nil && fs.IsDir() {
			dirs++
		}
		return fn(id, data, err)
	})
	if small && dirs == len(ids) {
		s.mu.Lock()
		s.mostSmallDirs = max(s.mostSmallDirs, dirs)
		s.mu.Unlock()
	}
	return err
}
