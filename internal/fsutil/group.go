package fsutil

import (
	"fmt"
	"os"
	gosync "sync"

	"golang.org/x/sys/unix"
)

// Group shares one flush among the callers that ask for it at about the same time (a
// group commit): a caller waits for a flush that starts after it asked, and every
// caller that asks while one flush runs is served by the next one. Alone, a caller
// flushes at once; a scan syncing many small libraries at once pays one flush per
// round instead of one per library (issue 10). The state's records and markers and the
// backup store's objects all flush through it. The zero Group is ready to use.
type Group struct {
	mu      gosync.Mutex
	running bool
	idle    *gosync.Cond // signalled when a round ends
	next    *round       // the round that callers join now; nil until someone asks
}

type round struct {
	items []string // what the callers of this round want flushed
	done  chan struct{}
	err   error
}

// Do waits until a flush that started after this call has run (over item, with every
// other item of its round; "" adds none) and returns that flush's error.
func (g *Group) Do(item string, flush func(items []string) error) error {
	g.mu.Lock()
	if g.idle == nil {
		g.idle = gosync.NewCond(&g.mu)
	}
	if r := g.next; r != nil {
		// A round that has not started yet: it will run after this call.
		if item != "" {
			r.items = append(r.items, item)
		}
		g.mu.Unlock()
		<-r.done
		return r.err
	}
	r := &round{done: make(chan struct{})}
	if item != "" {
		r.items = []string{item}
	}
	g.next = r
	for g.running {
		g.idle.Wait() // callers arriving meanwhile join r
	}
	g.running = true
	g.next = nil // from here on, callers need a later round
	items := r.items
	g.mu.Unlock()
	r.err = flush(items)
	close(r.done)
	g.mu.Lock()
	g.running = false
	g.idle.Broadcast()
	g.mu.Unlock()
	return r.err
}

// SyncfsFile flushes the whole filesystem that holds f (syncfs(2)): cheaper than an
// fsync per file once there are more than a few, though it also flushes whatever else is
// dirty there. Through a file held open it reports every writeback error on the
// filesystem since f was opened; a file opened just for it would miss one that another
// process (or another descriptor) has seen already.
func SyncfsFile(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return fmt.Errorf("syncfs %s: %w", f.Name(), err)
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = IgnoringEINTR(func() error { return unix.Syncfs(int(fd)) })
	}); err != nil {
		return fmt.Errorf("syncfs %s: %w", f.Name(), err)
	}
	if serr != nil {
		return fmt.Errorf("syncfs %s: %w", f.Name(), serr)
	}
	return nil
}
