package fsutil

import (
	"errors"
	"fmt"
	gosync "sync"
	"testing"
	"time"
)

// Callers that ask while a flush runs are served together by the next one, which
// starts after they asked; each gets its own round's error.
func TestGroupSharesTheNextFlush(t *testing.T) {
	var g Group
	var mu gosync.Mutex
	var rounds [][]string
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	flush := func(items []string) error {
		mu.Lock()
		rounds = append(rounds, items)
		n := len(rounds)
		mu.Unlock()
		if n == 1 {
			started <- struct{}{}
			<-release // hold the first round while the others ask
			return errors.New("first round failed")
		}
		return nil
	}
	firstErr := make(chan error, 1)
	go func() { firstErr <- g.Do("a", flush) }()
	<-started
	var wg gosync.WaitGroup
	errs := make(chan error, 10)
	for i := range 10 {
		wg.Add(1)
		go func() { defer wg.Done(); errs <- g.Do(fmt.Sprint("b", i), flush) }()
	}
	time.Sleep(100 * time.Millisecond) // let them all join the waiting round
	close(release)
	wg.Wait()
	close(errs)
	if err := <-firstErr; err == nil {
		t.Fatal("the first round's error was lost")
	}
	for err := range errs {
		if err != nil {
			t.Fatalf("a later round got %v", err)
		}
	}
	if len(rounds) != 2 || len(rounds[0]) != 1 || len(rounds[1]) != 10 {
		t.Fatalf("rounds %v, want [a] then the 10 callers that asked while it ran", rounds)
	}
}

// A lone caller never lingers, however long Linger is; after a round that served
// several callers, the next rounds start Linger after the one before, gathering the
// callers that ask meanwhile, even those that catch one caller.
func TestGroupLingersOnlyWhenBusy(t *testing.T) {
	const linger = 300 * time.Millisecond
	g := Group{Linger: linger}
	var mu gosync.Mutex
	var rounds [][]string
	var starts []time.Time
	release := make(chan struct{})
	flush := func(items []string) error {
		mu.Lock()
		rounds = append(rounds, items)
		starts = append(starts, time.Now())
		n := len(rounds)
		mu.Unlock()
		if n == 2 {
			<-release // hold the lone caller's second round while two others ask
		}
		time.Sleep(linger / 5) // a dear flush: worth waiting for Linger
		return nil
	}
	t0 := time.Now()
	if err := g.Do("alone", flush); err != nil {
		t.Fatal(err)
	}
	secondDone := make(chan error, 1)
	go func() { secondDone <- g.Do("alone again", flush) }()
	for {
		mu.Lock()
		n := len(rounds)
		mu.Unlock()
		if n == 2 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if waited := time.Since(t0); waited >= linger+linger/5 {
		t.Fatalf("a lone caller waited %s for its flushes, want no lingering", waited)
	}
	var wg gosync.WaitGroup
	for _, item := range []string{"b1", "b2"} {
		wg.Add(1)
		go func() { defer wg.Done(); g.Do(item, flush) }()
	}
	time.Sleep(50 * time.Millisecond) // let both join the round waiting behind round 2
	close(release)
	<-secondDone
	wg.Wait() // round 3 served b1 and b2: busy
	wg.Add(1)
	go func() { defer wg.Done(); g.Do("c1", flush) }()
	time.Sleep(50 * time.Millisecond) // c1 is lingering; c2 joins its round
	if err := g.Do("c2", flush); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	// Still busy: lone callers now linger too, round after round, rather than falling
	// back to flushing at once.
	for _, item := range []string{"d", "e"} {
		if err := g.Do(item, flush); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(rounds) != 6 || len(rounds[2]) != 2 || len(rounds[3]) != 2 {
		t.Fatalf("rounds %v, want [alone] [alone again] [b1 b2] [c1 c2] [d] [e]", rounds)
	}
	for i := 3; i < 6; i++ {
		if gap := starts[i].Sub(starts[i-1]); gap < linger {
			t.Fatalf("round %v started %s after the one before, want at least %s while busy", rounds[i], gap, linger)
		}
	}
}

// Where flushes cost next to nothing, a busy group hardly waits, whatever its Linger.
func TestGroupLingersLittleForCheapFlushes(t *testing.T) {
	g := Group{Linger: time.Hour}
	release := make(chan struct{})
	held := make(chan struct{})
	var once gosync.Once
	flush := func([]string) error {
		once.Do(func() { close(held); <-release })
		return nil
	}
	go g.Do("a", flush)
	<-held
	var wg gosync.WaitGroup
	for _, item := range []string{"b1", "b2"} {
		wg.Add(1)
		go func() { defer wg.Done(); g.Do(item, flush) }()
	}
	time.Sleep(20 * time.Millisecond)
	close(release)
	wg.Wait() // a round of two: busy
	t0 := time.Now()
	for _, item := range []string{"c", "d", "e"} {
		g.Do(item, flush)
	}
	if took := time.Since(t0); took > time.Second {
		t.Fatalf("three rounds of flushes that take microseconds took %s while busy", took)
	}
}
