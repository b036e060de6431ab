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
