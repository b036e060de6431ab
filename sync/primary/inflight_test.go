package primary

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestInflightGrowsWhileAnswersComeBackWhole(t *testing.T) {
	f := newInflight(2, 5)
	for range 100 {
		release, err := f.acquire(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		release(false)
	}
	if got := f.current(); got != 5 {
		t.Fatalf("limit %d after 100 whole answers, want the maximum 5", got)
	}
}

func TestInflightHalvesOnOverloadOncePerBurst(t *testing.T) {
	f := newInflight(16, 16)
	var releases []func(bool)
	for range 16 {
		release, err := f.acquire(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		releases = append(releases, release)
	}
	// A 17th waits for a slot, and gives up with its context.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := f.acquire(ctx); err == nil {
		t.Fatal("a 17th request got a slot with a limit of 16")
	}
	// All 16 answered 503 at once: one halving, not sixteen.
	for _, r := range releases {
		r(true)
		r(true) // given back twice (body read to its end, then closed): counted once
	}
	if got := f.current(); got != 8 {
		t.Fatalf("limit %d after one burst of overload answers, want 8", got)
	}
	f.cut = time.Now().Add(-cutEvery) // the next burst, later
	release, _ := f.acquire(context.Background())
	release(true)
	if got := f.current(); got != 4 {
		t.Fatalf("limit %d after a second burst, want 4", got)
	}
	if f.active != 0 {
		t.Fatalf("%d slots still taken", f.active)
	}
}

// A freed slot goes to the request that has waited longest, and wakes only it: a scan of
// many large libraries has a thousand block workers waiting. One that gives up leaves
// the queue.
func TestInflightHandsAFreedSlotToTheFirstWaiter(t *testing.T) {
	f := newInflight(1, 1)
	first, err := f.acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan int, 3)
	releases := make([]func(bool), 3)
	ctx, giveUp := context.WithCancel(context.Background())
	for i := range 3 {
		c := context.Background()
		if i == 2 {
			c = ctx
		}
		go func() {
			release, err := f.acquire(c)
			if err != nil {
				got <- -1
				return
			}
			releases[i] = release
			got <- i
		}()
		for waiting(f) != i+1 { // queued in this order
			time.Sleep(time.Millisecond)
		}
	}
	first(false)
	if i := <-got; i != 0 {
		t.Fatalf("waiter %d got the freed slot, want 0", i)
	}
	if n := waiting(f); n != 2 {
		t.Fatalf("%d still waiting after one slot was freed, want 2", n)
	}
	releases[0](false)
	if i := <-got; i != 1 {
		t.Fatalf("waiter %d got the next slot, want 1", i)
	}
	giveUp()
	if i := <-got; i != -1 {
		t.Fatalf("waiter %d got a slot, want the last one to give up", i)
	}
	releases[1](false)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.active != 0 || f.waiters.Len() != 0 {
		t.Fatalf("%d slots taken and %d waiting at the end", f.active, f.waiters.Len())
	}
}

func waiting(f *inflight) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.waiters.Len()
}

// A file server that answers 503 beyond 6 requests at once: the client settles at
// most there, and every request is answered in the end (retried as any 5xx).
func TestHTTPBacksOffAnOverloadedServer(t *testing.T) {
	const capacity = 6
	var now, most, overloads atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := now.Add(1)
		defer now.Add(-1)
		if n > capacity {
			overloads.Add(1)
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		for {
			m := most.Load()
			if n <= m || most.CompareAndSwap(m, n) {
				break
			}
		}
		time.Sleep(2 * time.Millisecond)
		io.WriteString(w, "ok")
	}))
	defer srv.Close()
	h, err := NewHTTP(HTTPOptions{URL: srv.URL + "/seafhttp", SyncToken: "t", MaxInFlight: 32, Backoff: time.Millisecond, Attempts: 20})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				resp, err := h.do(context.Background(), request{method: "GET", path: "/protocol-version"})
				if err != nil {
					errs <- err
					return
				}
				if _, err := readAll(resp, 10); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	limit := h.inflight.current()
	h.inflight.mu.Lock()
	lowest := h.inflight.lowest
	h.inflight.mu.Unlock()
	t.Logf("limit %d at the end, halved down to %d; %d overload answers, at most %d answered at once", limit, lowest, overloads.Load(), most.Load())
	if overloads.Load() == 0 {
		t.Fatal("the server was never overloaded: the test shows nothing")
	}
	// The limit at the end depends on timing (the last requests, fewer at once, let it
	// grow again); what must have happened is that it came down to what the server
	// could take.
	if lowest == 0 || lowest > capacity {
		t.Fatalf("limit never came down to the server's %d (lowest %d) while it kept answering 503", capacity, lowest)
	}
	if h.inflight.active != 0 {
		t.Fatalf("%d slots never given back", h.inflight.active)
	}
}
