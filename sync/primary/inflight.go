package primary

import (
	"container/list"
	"context"
	"sync"
	"time"
)

// inflight adapts how many requests are sent to the file server at once, as TCP adapts
// its window (AIMD): one more for every window's worth of answers that came back whole,
// half as many when the server says it is overloaded (503, 429) or stops answering in
// time. A primary on another machine, behind a WAN link, is kept busy (at 5 ms of
// round trip, four requests at a time left it idle most of the time), and one that
// struggles is backed off from before its requests fail.
type inflight struct {
	mu      sync.Mutex
	limit   int // requests allowed at once now
	max     int
	active  int
	okSince int       // answers since the limit last grew
	cut     time.Time // when the limit was last halved
	lowest  int       // the lowest the limit was halved to (0: never halved)
	// waiters are the requests waiting for a slot, first come first served, each
	// handed its slot alone: a scan of many large libraries has a thousand block
	// workers waiting here, and waking them all at every answer (as a broadcast would)
	// cost more CPU than the copying (issue 10).
	waiters list.List // of chan struct{}, closed when the slot is handed over
}

// cutEvery keeps one burst of overload answers (all the requests in flight at the time)
// from halving the limit once per request.
const cutEvery = 500 * time.Millisecond

func newInflight(start, maxN int) *inflight {
	limitMax := max(maxN, 1)
	return &inflight{limit: min(max(start, 1), limitMax), max: limitMax}
}

// acquire waits for a slot; the returned func gives it back with the request's outcome.
func (f *inflight) acquire(ctx context.Context) (release func(overloaded bool), err error) {
	f.mu.Lock()
	if f.active < f.limit && f.waiters.Len() == 0 {
		f.active++
		f.mu.Unlock()
		return f.releaser(), nil
	}
	ready := make(chan struct{})
	waiter := f.waiters.PushBack(ready)
	f.mu.Unlock()
	select {
	case <-ready:
		return f.releaser(), nil
	case <-ctx.Done():
		f.mu.Lock()
		defer f.mu.Unlock()
		select {
		case <-ready:
			// Handed a slot just as ctx ended: pass it on, as no request used it.
			f.active--
			f.handOff()
		default:
			f.waiters.Remove(waiter)
		}
		return nil, ctx.Err()
	}
}

func (f *inflight) releaser() func(overloaded bool) {
	var once sync.Once
	return func(overloaded bool) { once.Do(func() { f.release(overloaded) }) }
}

func (f *inflight) release(overloaded bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.active--
	switch {
	case overloaded:
		f.okSince = 0
		if now := time.Now(); now.Sub(f.cut) >= cutEvery {
			f.limit = max(f.limit/2, 1)
			f.cut = now
			if f.lowest == 0 || f.limit < f.lowest {
				f.lowest = f.limit
			}
		}
	default:
		if f.okSince++; f.okSince >= f.limit && f.limit < f.max {
			f.limit++
			f.okSince = 0
		}
	}
	f.handOff()
}

// handOff gives the free slots to the first waiters; f.mu is held.
func (f *inflight) handOff() {
	for f.active < f.limit && f.waiters.Len() > 0 {
		f.active++
		close(f.waiters.Remove(f.waiters.Front()).(chan struct{}))
	}
}

// current is the limit now (tests, logs).
func (f *inflight) current() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.limit
}
