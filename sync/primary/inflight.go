package primary

import (
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
	wake    chan struct{}
}

// cutEvery keeps one burst of overload answers (all the requests in flight at the time)
// from halving the limit once per request.
const cutEvery = 500 * time.Millisecond

func newInflight(start, maxN int) *inflight {
	limitMax := max(maxN, 1)
	return &inflight{limit: min(max(start, 1), limitMax), max: limitMax, wake: make(chan struct{})}
}

// acquire waits for a slot; the returned func gives it back with the request's outcome.
func (f *inflight) acquire(ctx context.Context) (release func(overloaded bool), err error) {
	for {
		f.mu.Lock()
		if f.active < f.limit {
			f.active++
			f.mu.Unlock()
			var once sync.Once
			return func(overloaded bool) { once.Do(func() { f.release(overloaded) }) }, nil
		}
		wake := f.wake
		f.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
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
	close(f.wake)
	f.wake = make(chan struct{})
}

// current is the limit now (tests, logs).
func (f *inflight) current() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.limit
}
