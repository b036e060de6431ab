package watch

import (
	"container/heap"
	"context"
	"errors"
	"log/slog"
	gosync "sync"
	"time"

	"seafbak/state"
	"seafbak/sync/primary"
	"seafbak/sync/store"
)

// job is one piece of work on a library: bring it to lib's head, or (gone) record that
// the primary no longer has it.
type job struct {
	lib  primary.Library
	gone bool
	// seen is when the change this job backs up was first noticed: the start of the
	// latency logged once it is durable.
	seen time.Time
	// retry says the library is backed up at lib's head and the job only tries its
	// holes (holes of them recorded) or a pending re-check again (see
	// Watcher.putOffRetries): one that finds nothing new is no change to tell.
	retry bool
	holes int
}

// covers reports whether running j leaves nothing for k to do.
func (j job) covers(k job) bool { return j.gone == k.gone && j.lib.Head == k.lib.Head }

// scheduler runs jobs: at most parallel at once, one at a time per library. A change
// that arrives while its library is busy waits as the one pending job of that library,
// replacing any older pending one, so any number of changes during a sync make one
// follow-up sync. A library whose job failed waits, exponentially longer after each
// failure in a row, before its next job; the others are not delayed. It keeps nothing a
// restart needs: the state on disk says what is done.
type scheduler struct {
	do         func(ctx context.Context, j job) error
	parallel   int
	minBackoff time.Duration
	maxBackoff time.Duration
	now        func() time.Time
	log        *slog.Logger

	mu   gosync.Mutex
	libs map[string]*slot
	// queue holds the libraries with a pending job and none running, oldest first;
	// delayed those of them found backing off when their turn came, soonest retry
	// first. A dispatch takes from either in O(log n): a first round queues every
	// library at once, and each job's end dispatches the next.
	queue   fifo
	delayed retryHeap
	// delayedSeq orders delayed libraries with the same retry time as they were queued.
	delayedSeq uint64
	running    int
	ran        int // jobs finished, for tests
	wg         gosync.WaitGroup
	// storeFull counts the holds in a row that the backup store full began, and heldUntil
	// is when the next may start: every sync would fail the same way after reading the
	// primary (as a scan, which stops), so none starts until the hold passes, and then
	// one at a time until one succeeds.
	storeFull int
	heldUntil time.Time
}

// slot is one library the scheduler is busy with: running, pending or backing off.
type slot struct {
	current  *job // running
	pending  *job // to run next
	queued   bool // in scheduler.queue or scheduler.delayed
	failures int  // failed jobs in a row
	retryAt  time.Time
}

func newScheduler(do func(context.Context, job) error, parallel int, minBackoff, maxBackoff time.Duration, log *slog.Logger) *scheduler {
	return &scheduler{
		do: do, parallel: max(parallel, 1),
		minBackoff: minBackoff, maxBackoff: max(maxBackoff, minBackoff),
		now: time.Now, log: log, libs: map[string]*slot{},
	}
}

// want asks for j. It starts at once if a slot is free and its library is neither busy
// nor backing off; otherwise it waits as the library's pending job.
func (s *scheduler) want(ctx context.Context, j job) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := j.lib.ID
	sl := s.libs[id]
	if sl == nil {
		sl = &slot{}
		s.libs[id] = sl
	}
	if sl.current != nil && sl.current.covers(j) {
		sl.pending = nil // the running job does it; an older pending one is stale
		return
	}
	if sl.pending != nil && sl.pending.seen.Before(j.seen) {
		j.seen = sl.pending.seen // the older change is durable only when j is
	}
	sl.pending = &j
	if sl.current == nil && !sl.queued {
		sl.queued = true
		s.queue.push(id)
	}
	s.dispatchLocked(ctx)
}

// holds reports whether a job that covers j is running or waiting to run: asking for j
// would change nothing.
func (s *scheduler) holds(j job) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	sl := s.libs[j.lib.ID]
	return sl != nil && (sl.current != nil && sl.current.covers(j) || sl.pending != nil && sl.pending.covers(j))
}

// busy reports whether s has a job for library id, running or waiting.
func (s *scheduler) busy(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	sl := s.libs[id]
	return sl != nil && (sl.current != nil || sl.pending != nil)
}

// forget drops library id if s has no job for it, running or waiting: a comparison
// found it backed up (by another seafbak) or gone without a record. Kept, the slot of a
// library that had failed stayed for the life of the process, and its next failure,
// however much later, waited the backoff the old failures had reached.
func (s *scheduler) forget(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sl := s.libs[id]; sl != nil && sl.current == nil && sl.pending == nil {
		delete(s.libs, id)
	}
}

// dispatch starts what may start now: libraries whose backoff has passed.
func (s *scheduler) dispatch(ctx context.Context) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dispatchLocked(ctx)
}

func (s *scheduler) dispatchLocked(ctx context.Context) {
	if ctx.Err() != nil {
		return // stopping: no new work
	}
	now := s.now()
	if now.Before(s.heldUntil) {
		return // the next poll's dispatch looks again
	}
	limit := s.parallel
	if s.storeFull > 0 {
		limit = 1 // a probe: is there room again?
	}
	for s.running < limit {
		id, ok := s.nextDue(now)
		if !ok {
			return
		}
		sl := s.libs[id]
		j := *sl.pending
		sl.queued, sl.pending, sl.current = false, nil, &j
		s.running++
		s.wg.Add(1)
		go s.run(ctx, j)
	}
}

func (s *scheduler) run(ctx context.Context, j job) {
	defer s.wg.Done()
	err := s.do(ctx, j)
	s.mu.Lock()
	defer s.mu.Unlock()
	id := j.lib.ID
	sl := s.libs[id]
	sl.current = nil
	s.running--
	s.ran++
	switch {
	case err == nil:
		sl.failures, sl.retryAt = 0, time.Time{}
		s.storeFull, s.heldUntil = 0, time.Time{}
	case ctx.Err() != nil:
		// Stopped: the engine recorded nothing half-done, and this is no failure.
	case errors.Is(err, state.ErrLocked):
		// Another seafbak (a hook's sync, cron's scan) is on it; the next poll sees
		// whether it finished.
	case err != nil:
		sl.failures++
		wait := s.backoff(sl.failures)
		sl.retryAt = s.now().Add(wait)
		s.log.Error("library failed to sync", "repo", id, "name", j.lib.Name, "err", err,
			"failures_in_a_row", sl.failures, "retry_in", wait.String())
		// Syncs that were running when the store filled end during the hold: one
		// finding, not one more failure each, or the first full disk would hold
		// every sync for the longest backoff at once.
		if errors.Is(err, store.ErrNoSpace) && !s.now().Before(s.heldUntil) {
			s.storeFull++
			hold := s.backoff(s.storeFull)
			s.heldUntil = s.now().Add(hold)
			s.log.Warn("the backup store is full: no sync starts until it may have room again, then one at a time until one succeeds",
				"next_try_in", hold.String())
		}
	}
	switch {
	case sl.pending != nil:
		sl.queued = true
		s.queue.push(id)
	case sl.failures == 0:
		delete(s.libs, id) // nothing to remember
	}
	s.dispatchLocked(ctx)
}

// nextDue takes the queued library to start next, if one may start at now: a delayed
// one whose retry time has come (it has waited longest), else the oldest in the queue.
// Queued libraries found backing off move to delayed; a queued library's retry time
// does not change, as it is set only when its job ends.
func (s *scheduler) nextDue(now time.Time) (string, bool) {
	if len(s.delayed) > 0 && !now.Before(s.delayed[0].at) {
		return heap.Pop(&s.delayed).(retry).id, true
	}
	for {
		id, ok := s.queue.pop()
		if !ok {
			return "", false
		}
		if at := s.libs[id].retryAt; now.Before(at) {
			heap.Push(&s.delayed, retry{id: id, at: at, seq: s.delayedSeq})
			s.delayedSeq++
			continue
		}
		return id, true
	}
}

// fifo is a queue of library ids with O(1) push and pop.
type fifo struct {
	ids  []string
	head int // ids[head:] are queued
}

func (q *fifo) push(id string) { q.ids = append(q.ids, id) }

func (q *fifo) pop() (string, bool) {
	if q.head == len(q.ids) {
		return "", false
	}
	id := q.ids[q.head]
	q.ids[q.head] = ""
	q.head++
	switch {
	case q.head == len(q.ids):
		q.ids, q.head = q.ids[:0], 0
	case q.head >= 1024 && 2*q.head >= len(q.ids):
		// Reclaim the popped front; each id is moved at most once per halving.
		n := copy(q.ids, q.ids[q.head:])
		clear(q.ids[n:])
		q.ids, q.head = q.ids[:n], 0
	}
	return id, true
}

func (q *fifo) len() int { return len(q.ids) - q.head }

// retry is a delayed library: at is when its backoff ends, seq keeps queue order
// among equal times.
type retry struct {
	id  string
	at  time.Time
	seq uint64
}

// retryHeap is a min-heap of retries by time (container/heap).
type retryHeap []retry

func (h retryHeap) Len() int { return len(h) }
func (h retryHeap) Less(i, j int) bool {
	if !h[i].at.Equal(h[j].at) {
		return h[i].at.Before(h[j].at)
	}
	return h[i].seq < h[j].seq
}
func (h retryHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *retryHeap) Push(x any)   { *h = append(*h, x.(retry)) }
func (h *retryHeap) Pop() any {
	old := *h
	r := old[len(old)-1]
	*h = old[:len(old)-1]
	return r
}

// backoff is the wait after n failures in a row: minBackoff, doubling, capped.
func (s *scheduler) backoff(n int) time.Duration {
	d := s.minBackoff
	for i := 1; i < n && d < s.maxBackoff; i++ {
		d *= 2
	}
	return min(d, s.maxBackoff)
}

// wait returns when every started job has returned.
func (s *scheduler) wait() { s.wg.Wait() }

// waitAtMost waits for the running jobs for up to d and reports whether they all ended.
func (s *scheduler) waitAtMost(d time.Duration) bool {
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}

// running is how many jobs are running now.
func (s *scheduler) runningNow() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.running
}
