package fsutil

import (
	"fmt"
	"os"
	gosync "sync"
	"time"

	"golang.org/x/sys/unix"
)

// Group shares one flush among the callers that ask for it at about the same time (a
// group commit): a caller waits for a flush that starts after it asked, and every
// caller that asks while one flush runs is served by the next one. Alone, a caller
// flushes at once; a scan syncing many small libraries at once pays one flush per
// round instead of one per library (issue 10). The state's records and markers and the
// backup store's objects all flush through it. The zero Group is ready to use.
type Group struct {
	// Linger, when set, spaces the rounds of a busy group: while a round that served
	// several callers started less than busyFor(Linger) ago, a round waits until
	// lingerFlushes times the last flush's duration, at most Linger, after the one
	// before it started, and the callers asking meanwhile join it. Each flush is a
	// journal commit of the whole filesystem, which rewrites the directory, bitmap and
	// inode blocks every library touched since the last one: a first scan of 10,000
	// small libraries made about 7,000 commits flushing as fast as it could (issue 10).
	// Waiting is worth it only as long as a flush is dear: where flushes take
	// microseconds (no journal, tmpfs) rounds hardly wait. Callers that only ever come
	// one at a time (a hook's sync, syncs one after another, a watcher's single change)
	// never wait.
	Linger time.Duration

	mu      gosync.Mutex
	running bool
	idle    *gosync.Cond // signalled when a round ends
	next    *round       // the round that callers join now; nil until someone asks
	// When the last round started, and the last that served several callers; how
	// long the last flush took.
	lastStart, lastBusy time.Time
	lastFlush           time.Duration
}

// lingerFlushes is how many of the last flush's durations a busy round may wait.
const lingerFlushes = 10

// busyFor is how long a group stays busy after a round that served several callers.
// Remembering only the last round would trap a busy group in rounds of one: a round
// that catches one caller makes the next go at once, which catches only those that
// asked during one flush, often one again (with that rule a first scan still made
// about 4,000 commits).
func busyFor(linger time.Duration) time.Duration { return 20 * linger }

// FlushLinger is the Linger of the groups that flush the backup store and the state.
// Where flushes are dear, rounds of the same busy group come at most this often; a
// sync under load waits for up to this long at each of its flushes (its marker, its
// objects, its record), so a watcher's burst of changes is recorded up to a few of
// these later.
const FlushLinger = 50 * time.Millisecond

type round struct {
	items   []string // what the callers of this round want flushed
	callers int
	done    chan struct{}
	err     error
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
		r.callers++
		g.mu.Unlock()
		<-r.done
		return r.err
	}
	r := &round{done: make(chan struct{}), callers: 1}
	if item != "" {
		r.items = []string{item}
	}
	g.next = r
	for g.running {
		g.idle.Wait() // callers arriving meanwhile join r
	}
	g.running = true
	if time.Since(g.lastBusy) < busyFor(g.Linger) {
		if wait := time.Until(g.lastStart.Add(min(g.Linger, lingerFlushes*g.lastFlush))); wait > 0 {
			g.mu.Unlock()
			time.Sleep(wait) // callers arriving meanwhile join r too
			g.mu.Lock()
		}
	}
	g.next = nil // from here on, callers need a later round
	start := time.Now()
	g.lastStart = start
	if r.callers > 1 {
		g.lastBusy = g.lastStart
	}
	items := r.items
	g.mu.Unlock()
	r.err = flush(items)
	took := time.Since(start)
	close(r.done)
	g.mu.Lock()
	g.lastFlush = took
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
