package state

import (
	"fmt"
	"os"
	gosync "sync"

	"golang.org/x/sys/unix"
)

// group shares one flush among the callers that ask for it at about the same time (a
// group commit): a caller waits for a flush that starts after it asked, and every
// caller that asks while one flush runs is served by the next one. Alone, a caller
// flushes at once; a scan syncing many small libraries at once pays one fsync per
// round instead of one per library (issue 10).
type group struct {
	mu      gosync.Mutex
	running bool
	idle    *gosync.Cond // signalled when a round ends
	next    *round       // the round that callers join now; nil until someone asks
}

type round struct {
	files []string // what the callers of this round want flushed
	done  chan struct{}
	err   error
}

// do waits until a flush that started after this call has run over file (with every
// other file of its round) and returns that flush's error.
func (g *group) do(file string, flush func(files []string) error) error {
	g.mu.Lock()
	if g.idle == nil {
		g.idle = gosync.NewCond(&g.mu)
	}
	if r := g.next; r != nil {
		// A round that has not started yet: it will run after this call.
		r.files = append(r.files, file)
		g.mu.Unlock()
		<-r.done
		return r.err
	}
	r := &round{files: []string{file}, done: make(chan struct{})}
	g.next = r
	for g.running {
		g.idle.Wait() // callers arriving meanwhile join r
	}
	g.running = true
	g.next = nil // from here on, callers need a later round
	files := r.files
	g.mu.Unlock()
	r.err = flush(files)
	close(r.done)
	g.mu.Lock()
	g.running = false
	g.idle.Broadcast()
	g.mu.Unlock()
	return r.err
}

// syncfsAbove is how many files of one round make a syncfs(2) of the state's filesystem
// cheaper than fsyncing each: syncfs also flushes whatever else is dirty there.
const syncfsAbove = 4

// flushFiles makes files' data durable: one fsync each when they are few, else one
// syncfs of the filesystem holding root.
func flushFiles(root string, files []string) error {
	if len(files) > syncfsAbove {
		return syncfs(root)
	}
	for _, f := range files {
		if err := fsyncPath(f); err != nil {
			return err
		}
	}
	return nil
}

func syncfs(path string) error {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	if err := unix.Syncfs(fd); err != nil {
		return fmt.Errorf("syncfs %s: %w", path, err)
	}
	return nil
}

// fsyncPath fsyncs a file or directory by name (a read-only descriptor is enough).
func fsyncPath(path string) error {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	for {
		err := unix.Fsync(fd)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return &os.PathError{Op: "fsync", Path: path, Err: err}
		}
		return nil
	}
}
