package store

import (
	gosync "sync"
	"sync/atomic"
	"testing"
	"time"
)

// A wait returns only once every placement begun before it was called has ended,
// however placements and waits interleave; placements never wait.
func TestPlacementsWaitForThoseBegunBefore(t *testing.T) {
	var p placements
	const workers, each = 8, 2000
	var begun, ended [workers * each]atomic.Bool
	var wg gosync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				k := w*each + i
				e := p.begin()
				begun[k].Store(true)
				if i%97 == 0 {
					time.Sleep(time.Microsecond)
				}
				ended[k].Store(true)
				p.end(e)
			}
		})
	}
	stop := make(chan struct{})
	waits := make(chan int, 1)
	go func() {
		n := 0
		defer func() { waits <- n }()
		for {
			select {
			case <-stop:
				return
			default:
			}
			var before []int
			for k := range begun {
				if begun[k].Load() && !ended[k].Load() {
					before = append(before, k)
				}
			}
			p.wait()
			n++
			for _, k := range before {
				if !ended[k].Load() {
					t.Errorf("placement %d, begun before the wait, had not ended when it returned", k)
					return
				}
			}
		}
	}()
	wg.Wait()
	close(stop)
	if n := <-waits; n == 0 {
		t.Fatal("no wait ran")
	}
}
