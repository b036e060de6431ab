package testenv

import (
	"sync"
	"sync/atomic"
	"time"
)

// Gauge counts the calls under way at once and the most seen together: how many
// copies or prepares a limit let run at the same time.
type Gauge struct {
	now, most atomic.Int64
	pairOnce  sync.Once
	pair      chan struct{} // closed once two calls were under way together
	closeOnce sync.Once
}

// Enter counts one more call under way until leave is called.
func (g *Gauge) Enter() (leave func()) {
	v := g.now.Add(1)
	for {
		m := g.most.Load()
		if v <= m || g.most.CompareAndSwap(m, v) {
			break
		}
	}
	return func() { g.now.Add(-1) }
}

// EnterWaiting is Enter, and while no two calls were ever under way together, waits up
// to d for a second one: a limit that allows two at once then shows it in every run,
// and one that allows only one costs d per call.
func (g *Gauge) EnterWaiting(d time.Duration) (leave func()) {
	g.pairOnce.Do(func() { g.pair = make(chan struct{}) })
	leave = g.Enter()
	if g.Most() >= 2 {
		g.closeOnce.Do(func() { close(g.pair) })
		return leave
	}
	select {
	case <-g.pair:
	case <-time.After(d):
	}
	return leave
}

// Most is the most calls seen under way at once.
func (g *Gauge) Most() int64 { return g.most.Load() }
