package testenv

import "sync/atomic"

// Gauge counts the calls under way at once and the most seen together: how many
// copies or prepares a limit let run at the same time.
type Gauge struct{ now, most atomic.Int64 }

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

// Most is the most calls seen under way at once.
func (g *Gauge) Most() int64 { return g.most.Load() }
