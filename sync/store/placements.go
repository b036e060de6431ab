package store

import (
	"runtime"
	"sync/atomic"
	"time"
)

// placements lets a flush wait for the objects being put in place when it starts,
// without making a Commit ever wait for a flush. From its name until it is pending, an
// object is one another sync of the process may find present and trust, yet a flush
// that took the pending list meanwhile would not cover it. A read-write lock would do
// too, but a flush waiting for it stops every new write (a first scan over HTTP runs
// 32 copies at once) until the ones under way are done.
//
// Placements count in one of two slots, by the parity of the epoch they began in; a
// flush moves the epoch on and waits for the old epoch's slot to empty. Flushes run
// one at a time (FS.flushes), so the slot a flush waits on holds only placements that
// began before it.
type placements struct {
	epoch    atomic.Uint64
	inflight [2]atomic.Int64
}

// begin marks a placement under way; pass what it returns to end.
func (p *placements) begin() uint64 {
	for {
		e := p.epoch.Load()
		p.inflight[e&1].Add(1)
		if p.epoch.Load() == e {
			return e
		}
		// A flush moved the epoch on between the two loads: it may have found this
		// slot empty already, so count in the new one.
		p.inflight[e&1].Add(-1)
	}
}

// end marks the placement begun in epoch e done.
func (p *placements) end(e uint64) { p.inflight[e&1].Add(-1) }

// wait returns once every placement begun before it was called has ended. Only one
// wait may run at a time.
func (p *placements) wait() {
	e := p.epoch.Add(1) - 1
	for i := 0; p.inflight[e&1].Load() != 0; i++ {
		if i < 100 {
			runtime.Gosched() // a link and an append: microseconds
		} else {
			time.Sleep(50 * time.Microsecond) // a placement making directories
		}
	}
}
