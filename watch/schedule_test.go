package watch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	gosync "sync"
	"testing"
	"time"

	"seafbak/state"
	"seafbak/sync/primary"
)

// fakeSyncer stands in for the engine: each job it is given is announced on started and
// returns what the test sends for that library with finish.
type fakeSyncer struct {
	started chan job
	mu      gosync.Mutex
	results map[string]chan error
}

func newFake() *fakeSyncer {
	return &fakeSyncer{started: make(chan job, 100), results: map[string]chan error{}}
}

func (f *fakeSyncer) result(id string) chan error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.results[id] == nil {
		f.results[id] = make(chan error, 1)
	}
	return f.results[id]
}

func (f *fakeSyncer) do(ctx context.Context, j job) error {
	f.started <- j
	select {
	case err := <-f.result(j.lib.ID):
		return err
	case <-ctx.Done():
		return fmt.Errorf("stopped: %w", ctx.Err())
	}
}

// fakeClock is the scheduler's clock, moved by the test.
type fakeClock struct {
	mu gosync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newTestScheduler(f *fakeSyncer, parallel int) (*scheduler, *fakeClock) {
	clk := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	s := newScheduler(f.do, parallel, 2*time.Second, 10*time.Second, slog.New(slog.DiscardHandler))
	s.now = clk.now
	return s, clk
}

func lib(id, head string) job {
	return job{lib: primary.Library{ID: id, Name: id, Head: head}}
}

func expectStart(t *testing.T, f *fakeSyncer, id, head string) job {
	t.Helper()
	select {
	case j := <-f.started:
		if j.lib.ID != id || j.lib.Head != head {
			t.Fatalf("started %s@%s, want %s@%s", j.lib.ID, j.lib.Head, id, head)
		}
		return j
	case <-time.After(5 * time.Second):
		t.Fatalf("%s@%s did not start", id, head)
	}
	return job{}
}

func expectNoStart(t *testing.T, f *fakeSyncer) {
	t.Helper()
	select {
	case j := <-f.started:
		t.Fatalf("unexpected start of %s@%s", j.lib.ID, j.lib.Head)
	case <-time.After(50 * time.Millisecond):
	}
}

// expectIdle waits for the started jobs and checks that the scheduler keeps nothing:
// no library, none queued or delayed, none running.
func expectIdle(t *testing.T, s *scheduler) {
	t.Helper()
	s.wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.libs) != 0 || s.queue.len() != 0 || len(s.delayed) != 0 || s.running != 0 {
		t.Fatalf("scheduler keeps %d libraries, %d queued, %d delayed, %d running", len(s.libs), s.queue.len(), len(s.delayed), s.running)
	}
}

// finish makes id's running job return err and waits until the scheduler has taken
// note of it (a follow-up may have started since).
func finish(t *testing.T, s *scheduler, f *fakeSyncer, id string, err error) {
	t.Helper()
	s.mu.Lock()
	n := s.ran
	s.mu.Unlock()
	f.result(id) <- err
	deadline := time.Now().Add(5 * time.Second)
	for {
		s.mu.Lock()
		ran := s.ran
		s.mu.Unlock()
		if ran > n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("job of %s did not finish", id)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestWatchSchedulerCoalescesChangesDuringASync(t *testing.T) {
	f := newFake()
	s, clk := newTestScheduler(f, 2)
	ctx := context.Background()
	j := lib("a", "h1")
	j.seen = clk.now()
	s.want(ctx, j)
	expectStart(t, f, "a", "h1")
	// The same head again (the next polls, before the state moves): nothing more.
	s.want(ctx, lib("a", "h1"))
	expectNoStart(t, f)
	// Three changes while it runs: one follow-up, to the last head, timed from the first.
	clk.add(time.Second)
	first := clk.now()
	for _, h := range []string{"h2", "h3", "h4"} {
		j := lib("a", h)
		j.seen = clk.now()
		s.want(ctx, j)
		clk.add(time.Second)
	}
	expectNoStart(t, f)
	finish(t, s, f, "a", nil)
	got := expectStart(t, f, "a", "h4")
	if !got.seen.Equal(first) {
		t.Fatalf("follow-up seen at %v, want the first change's %v", got.seen, first)
	}
	// The head went back to what is running: the pending follow-up is dropped.
	s.want(ctx, lib("a", "h5"))
	s.want(ctx, lib("a", "h4"))
	finish(t, s, f, "a", nil)
	expectNoStart(t, f)
	expectIdle(t, s)
}

func TestWatchSchedulerBoundsConcurrency(t *testing.T) {
	f := newFake()
	s, _ := newTestScheduler(f, 2)
	ctx := context.Background()
	for _, id := range []string{"a", "b", "c", "d"} {
		s.want(ctx, lib(id, "h"))
	}
	// a and b start, in either order.
	if j, k := <-f.started, <-f.started; j.lib.ID == k.lib.ID || j.lib.ID+k.lib.ID != "ab" && j.lib.ID+k.lib.ID != "ba" {
		t.Fatalf("started %s and %s, want a and b", j.lib.ID, k.lib.ID)
	}
	expectNoStart(t, f)
	finish(t, s, f, "b", nil)
	expectStart(t, f, "c", "h")
	expectNoStart(t, f)
	finish(t, s, f, "a", nil)
	expectStart(t, f, "d", "h")
	finish(t, s, f, "c", nil)
	finish(t, s, f, "d", nil)
	s.wait()
}

func TestWatchSchedulerBacksOffAFailingLibraryOnly(t *testing.T) {
	f := newFake()
	s, clk := newTestScheduler(f, 2)
	ctx := context.Background()
	boom := errors.New("primary unreachable")
	s.want(ctx, lib("a", "h"))
	expectStart(t, f, "a", "h")
	// Failures in a row wait 2, 4, 8, then 10 s (the cap), 10 s.
	for i, wait := range []time.Duration{2, 4, 8, 10, 10} {
		wait *= time.Second
		finish(t, s, f, "a", boom)
		s.want(ctx, lib("a", "h")) // the next poll: still not backed up
		expectNoStart(t, f)
		// Another library is not delayed.
		b := fmt.Sprint("h", i)
		s.want(ctx, lib("b", b))
		expectStart(t, f, "b", b)
		finish(t, s, f, "b", nil)
		clk.add(wait - time.Millisecond)
		s.dispatch(ctx)
		expectNoStart(t, f)
		clk.add(time.Millisecond)
		s.dispatch(ctx)
		expectStart(t, f, "a", "h")
	}
	// A success resets the backoff: the next failure waits 2 s again.
	finish(t, s, f, "a", nil)
	s.want(ctx, lib("a", "h2"))
	expectStart(t, f, "a", "h2")
	finish(t, s, f, "a", boom)
	s.want(ctx, lib("a", "h2"))
	clk.add(2 * time.Second)
	s.dispatch(ctx)
	expectStart(t, f, "a", "h2")
	finish(t, s, f, "a", nil)
	s.wait()
}

// A library another seafbak is syncing is no failure: the next poll asks again and it
// starts at once.
func TestWatchSchedulerLockedIsNoFailure(t *testing.T) {
	f := newFake()
	s, _ := newTestScheduler(f, 1)
	ctx := context.Background()
	s.want(ctx, lib("a", "h"))
	expectStart(t, f, "a", "h")
	finish(t, s, f, "a", fmt.Errorf("library a: %w", state.ErrLocked))
	s.want(ctx, lib("a", "h"))
	expectStart(t, f, "a", "h")
	finish(t, s, f, "a", nil)
	s.wait()
	if len(s.libs) != 0 {
		t.Fatalf("scheduler remembers %v", s.libs)
	}
}

// Once ctx ends nothing new starts; running jobs see ctx ended, and that is no failure.
func TestWatchSchedulerStops(t *testing.T) {
	f := newFake()
	s, _ := newTestScheduler(f, 1)
	ctx, cancel := context.WithCancel(context.Background())
	s.want(ctx, lib("a", "h"))
	s.want(ctx, lib("b", "h"))
	expectStart(t, f, "a", "h")
	cancel()
	s.wait()
	s.want(ctx, lib("c", "h"))
	s.dispatch(ctx)
	expectNoStart(t, f)
	if sl := s.libs["a"]; sl != nil && (sl.failures != 0 || sl.current != nil) {
		t.Fatalf("a after stop: %+v", sl)
	}
}

// A library found backing off when its turn comes waits aside; the libraries queued
// after it start meanwhile, and it starts once its backoff has passed.
func TestWatchSchedulerQueueGoesOnPastABackingOffLibrary(t *testing.T) {
	f := newFake()
	s, clk := newTestScheduler(f, 1)
	ctx := context.Background()
	s.want(ctx, lib("a", "h"))
	expectStart(t, f, "a", "h")
	s.want(ctx, lib("b", "h"))
	s.want(ctx, lib("c", "h"))
	finish(t, s, f, "a", errors.New("primary unreachable")) // a waits 2 s
	expectStart(t, f, "b", "h")
	s.want(ctx, lib("a", "h")) // queued behind c, backing off
	s.want(ctx, lib("d", "h"))
	finish(t, s, f, "b", nil)
	expectStart(t, f, "c", "h")
	finish(t, s, f, "c", nil)
	expectStart(t, f, "d", "h") // a's turn came first, but it is backing off
	finish(t, s, f, "d", nil)
	expectNoStart(t, f)
	clk.add(2 * time.Second)
	s.want(ctx, lib("e", "h"))
	expectStart(t, f, "a", "h") // due: it has waited longer than e
	finish(t, s, f, "a", nil)
	expectStart(t, f, "e", "h")
	finish(t, s, f, "e", nil)
	expectIdle(t, s)
}

// The queue hands out ids in the order they came, across the compactions of its
// popped front.
func TestFIFOKeepsOrder(t *testing.T) {
	var q fifo
	next, want := 0, 0
	for round := range 50 {
		for range 100 + round*7 {
			q.push(fmt.Sprint(next))
			next++
		}
		for range 90 + round*5 {
			id, ok := q.pop()
			if !ok || id != fmt.Sprint(want) {
				t.Fatalf("popped %q, %v; want %d", id, ok, want)
			}
			want++
		}
	}
	for q.len() > 0 {
		id, _ := q.pop()
		if id != fmt.Sprint(want) {
			t.Fatalf("popped %q; want %d", id, want)
		}
		want++
	}
	if want != next {
		t.Fatalf("popped %d of %d", want, next)
	}
	if _, ok := q.pop(); ok {
		t.Fatal("popped from an empty queue")
	}
}
