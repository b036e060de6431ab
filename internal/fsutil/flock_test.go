package fsutil

import (
	"os/exec"
	"path/filepath"
	gosync "sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// A released flock is free at once, even while other goroutines fork children that
// hold copies of every descriptor until they exec (see Unflock).
func TestUnflockedIsFreeWhileChildrenFork(t *testing.T) {
	p := filepath.Join(t.TempDir(), "lock")
	var stop atomic.Bool
	var wg gosync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				exec.Command("/bin/true").Run()
			}
		}()
	}
	defer func() { stop.Store(true); wg.Wait() }()
	for i, deadline := 0, time.Now().Add(2*time.Second); time.Now().Before(deadline); i++ {
		fd, err := Open(p, unix.O_RDWR|unix.O_CREAT, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		if err := TryFlock(fd); err != nil {
			t.Fatalf("TryFlock %d right after an Unflock: %v", i, err)
		}
		Unflock(fd)
		unix.Close(fd)
	}
}
