package sync

import (
	"context"
	"testing"
)

// Under a scan's wide copy slots, each copy starts its own workers freely, and the
// workers beyond them come from one allowance of as many as copy slots, given back when
// a copy's workers stop.
func TestWorkersBeyondTheirOwnShareOneAllowance(t *testing.T) {
	ctx := LimitTransfers(context.Background(), 8, 2)
	newWorkers := func() *workers {
		wctx, cancel := context.WithCancel(ctx)
		ch := &workerChans{jobs: make(chan job, window), results: make(chan result, window+32)}
		return &workers{workerChans: ch, ctx: wctx, cancel: cancel, max: 32, exited: make(chan struct{}, 32),
			own: 2, shared: transferSlots(wctx)}
	}
	a, b := newWorkers(), newWorkers()
	a.grow(6)
	b.grow(100)
	if a.started != 6 || b.started != 6 {
		t.Fatalf("started %d and %d workers, want 6 (2 own, 4 shared) and 6 (2 own, the 4 shared left)", a.started, b.started)
	}
	a.stop()
	b.grow(100)
	if b.started != 10 {
		t.Fatalf("started %d workers once the others stopped, want 10 (2 own, 8 shared)", b.started)
	}
	b.stop()
	if n := transferSlots(ctx).extraWorkers.Load(); n != 0 {
		t.Fatalf("%d shared workers not given back", n)
	}
	// Without wide copy slots (the data dir, or no scan) a copy has its own max.
	c := newWorkers()
	c.shared = transferSlots(LimitTransfers(context.Background(), 2, 2))
	c.grow(100)
	if c.started != 32 {
		t.Fatalf("started %d workers without shared ones, want 32", c.started)
	}
	c.stop()
}
