package state

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"seafbak/internal/fsutil"
)

// ErrLocked is returned by TryLock when another invocation is syncing the library.
var ErrLocked = errors.New("another seafbak is syncing this library")

// Lock is a held library lock. The kernel drops it when the process dies, so a kill -9
// never leaves a library locked.
//
// It is two locks on the library's lock file: the flock that excludes other
// invocations (older seafbak versions take only that one), and, once the holder calls
// Announce, an open-file-description record lock over the whole file that tells Busy
// the holder's dirty markers are live. Busy asks about the record lock without taking
// it (F_OFD_GETLK): a probe that took the flock for an instant made a TryLock at that
// instant fail.
type Lock struct {
	fd   int
	held bool // false once unlocked, and in a zero Lock: never close a descriptor not ours
}

// Announce makes the holder busy to Busy, and so its dirty markers live to the other
// libraries of its store. A sync calls it only once its own markers left by a dead
// attempt are renamed dead (DeadDirty): until then, they would have looked live while
// it asked the primary for its head. Best effort: where the filesystem has no record
// locks, Busy probes the flock instead.
func (l *Lock) Announce() {
	if l != nil && l.held {
		fsutil.IgnoringEINTR(func() error { return unix.FcntlFlock(uintptr(l.fd), unix.F_OFD_SETLK, wholeFile(unix.F_WRLCK)) })
	}
}

// wholeFile is a write lock over the whole file, for the OFD record-lock calls.
func wholeFile(typ int16) *unix.Flock_t {
	return &unix.Flock_t{Type: typ, Whence: 0, Start: 0, Len: 0}
}

// Unlock releases the lock: the record lock first, so that whoever takes the flock
// next finds the record lock free as well.
func (l *Lock) Unlock() {
	if l != nil && l.held {
		fsutil.IgnoringEINTR(func() error { return unix.FcntlFlock(uintptr(l.fd), unix.F_OFD_SETLK, wholeFile(unix.F_UNLCK)) })
		fsutil.Unflock(l.fd)
		unix.Close(l.fd)
		l.held = false
	}
}

// lockFile opens (creating) the library's lock file, as a bare descriptor (fsutil.Open:
// a first scan locks thousands of libraries).
func (d *Dir) lockFile(repoID string) (int, error) {
	if _, err := d.recordPath(repoID); err != nil { // checks the id
		return -1, err
	}
	p := filepath.Join(d.root, "locks", repoID+".lock")
	fd, err := fsutil.Open(p, unix.O_RDWR|unix.O_CREAT, 0o640)
	if err != nil {
		return -1, fmt.Errorf("state: lock %s: %w", repoID, &os.PathError{Op: "open", Path: p, Err: err})
	}
	return fd, nil
}

// TryLock takes the library's lock or returns ErrLocked at once.
func (d *Dir) TryLock(repoID string) (*Lock, error) {
	fd, err := d.lockFile(repoID)
	if err != nil {
		return nil, err
	}
	if err := fsutil.TryFlock(fd); err != nil {
		unix.Close(fd)
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("library %s: %w", repoID, ErrLocked)
		}
		return nil, fmt.Errorf("state: lock %s: %w", repoID, err)
	}
	return &Lock{fd: fd, held: true}, nil
}

// Lock waits for the library's lock until ctx ends. The primary's hook blocks here while
// a cron scan syncs the same library, then finds little or nothing left to do.
func (d *Dir) Lock(ctx context.Context, repoID string) (*Lock, error) {
	delay := 10 * time.Millisecond
	for {
		l, err := d.TryLock(repoID)
		if !errors.Is(err, ErrLocked) {
			return l, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("library %s: waiting for another seafbak: %w", repoID, ctx.Err())
		case <-time.After(delay):
		}
		if delay < 500*time.Millisecond {
			delay *= 2
		}
	}
}

// Busy reports whether some invocation holds the library's lock and has announced it
// (see Lock.Announce) right now. It asks about the record lock without taking anything. Only where the filesystem
// has no record locks does it probe the flock, which holds it for an instant.
func (d *Dir) Busy(repoID string) bool {
	if _, err := d.recordPath(repoID); err != nil {
		return false
	}
	// No lock file: nobody ever synced it here, so nobody is syncing it. Not creating
	// one keeps status free of side effects.
	fd, err := fsutil.Open(filepath.Join(d.root, "locks", repoID+".lock"), unix.O_RDONLY, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	lk := wholeFile(unix.F_WRLCK)
	err = fsutil.IgnoringEINTR(func() error { return unix.FcntlFlock(uintptr(fd), unix.F_OFD_GETLK, lk) })
	if err == nil {
		// An older seafbak takes the flock only, so one of them syncing during an
		// upgrade is seen as not busy: its dirty marker counts as dead, and costs a
		// re-check, never a trusted object.
		return lk.Type != unix.F_UNLCK
	}
	err = fsutil.TryFlock(fd)
	if err == nil {
		unix.Flock(fd, unix.LOCK_UN)
		return false
	}
	return errors.Is(err, unix.EWOULDBLOCK)
}

// Dirty markers make batched durability safe. Before a sync writes objects without
// fsync, it leaves a durable marker naming the store and itself; it removes the marker
// once a syncfs has made those objects durable. A marker whose writer no longer holds its
// library lock belongs to an attempt that died, maybe with the machine: objects in that
// store may be present but empty, so presence cannot be trusted until re-checked.

func (d *Dir) dirtyPath(storeID, repoID string) (string, error) {
	if _, err := d.recordPath(storeID); err != nil {
		return "", err
	}
	if _, err := d.recordPath(repoID); err != nil {
		return "", err
	}
	return filepath.Join(d.root, "dirty", storeID+"."+repoID), nil
}

// MarkDirty records, durably, that repoID is about to write unsynced objects to storeID.
// Only the marker's name matters (its content is the time, for people), so it is made
// durable by an fsync of dirty/ alone, shared with the markers other syncs of this
// process leave at the same time.
func (d *Dir) MarkDirty(storeID, repoID string) error {
	p, err := d.dirtyPath(storeID, repoID)
	if err != nil {
		return err
	}
	if err := writeMarker(p); err != nil {
		return fmt.Errorf("state: mark %s dirty: %w", repoID, err)
	}
	dir := filepath.Dir(p)
	if err := d.dirtyDir.Do(dir, func([]string) error { return fsutil.SyncDir(dir) }); err != nil {
		return fmt.Errorf("state: mark %s dirty: %w", repoID, err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.mine == nil {
		d.mine = map[string]bool{}
	}
	d.mine[filepath.Base(p)] = true
	return nil
}

// writeMarker creates the marker at p through a bare descriptor (see lockFile).
func writeMarker(p string) error {
	fd, err := fsutil.Open(p, unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC, 0o640)
	if err != nil {
		return &os.PathError{Op: "open", Path: p, Err: err}
	}
	// The content is for people only (see MarkDirty): a short write is no error.
	_, err = unix.Write(fd, []byte(time.Now().UTC().Format(time.RFC3339)+"\n"))
	if cerr := unix.Close(fd); err == nil {
		err = cerr
	}
	if err != nil {
		return &os.PathError{Op: "write", Path: p, Err: err}
	}
	return nil
}

// ClearDirty removes repoID's marker on storeID after its objects were made durable.
func (d *Dir) ClearDirty(storeID, repoID string) error {
	p, err := d.dirtyPath(storeID, repoID)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("state: clear dirty %s: %w", repoID, err)
	}
	d.mu.Lock()
	delete(d.mine, filepath.Base(p))
	d.mu.Unlock()
	return nil
}

// OtherWriters reports whether another process has a marker on storeID: it may have
// written objects this sync found present and trusted that are not durable yet, so
// before moving metadata this sync must make the whole store durable, not only what it
// wrote itself. Markers of this process are left out: its own store flushes them.
func (d *Dir) OtherWriters(storeID, self string) (bool, error) {
	var writers []string
	if err := d.markersOn(storeID, func(name, writer string) { writers = append(writers, name) }); err != nil {
		return false, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, name := range writers {
		if name != storeID+"."+self && !d.mine[name] {
			return true, nil
		}
	}
	return false, nil
}

// DeadDirty reports whether storeID has a marker left by an attempt that died. The
// caller holds self's lock, so a marker of its own is always from a dead attempt.
//
// Its own dead marker is renamed <store>.<self>.dead (deadSuffix), durably, and stays
// until ClearDead: the objects that attempt wrote are in the store every library of it
// shares (an origin and its virtual libraries), and only self's completed re-check
// covers them all. Left under its old name, it would have looked live to the other
// libraries while self's next attempt held the lock, and been cleared by that attempt
// even when it failed before re-checking anything. A .dead marker's writer is no
// library, so it is never busy: every library of the store sees it dead.
//
// A marker left by a library since deleted (see MarkWriterDeleted) has no re-check of
// its own to come: it binds self only if self's last completed re-check (recheckedAt)
// began before the marker was left, so every library of the store re-checks once after
// it, not at every sync.
func (d *Dir) DeadDirty(storeID, self string, recheckedAt time.Time) (bool, error) {
	var writers []string
	if err := d.markersOn(storeID, func(_, writer string) { writers = append(writers, writer) }); err != nil {
		return false, err
	}
	dead := false
	for _, writer := range writers {
		switch {
		case writer == self:
			if err := d.markDead(storeID, self); err != nil {
				return false, err
			}
			dead = true
		case strings.HasSuffix(writer, deletedSuffix):
			fi, err := os.Stat(filepath.Join(d.root, "dirty", storeID+"."+writer))
			switch {
			case errors.Is(err, fs.ErrNotExist): // swept meanwhile
			case err != nil:
				return false, fmt.Errorf("state: %w", err)
			case !recheckedAt.After(fi.ModTime()):
				dead = true
			}
		case !d.Busy(writer):
			dead = true
		}
	}
	return dead, nil
}

// deletedSuffix ends the name of a dead attempt's marker whose library has since been
// deleted on the primary (see MarkWriterDeleted).
const deletedSuffix = ".deleted"

// MarkWriterDeleted renames the markers of repoID, deleted on the primary, on storeID
// (a dead attempt's, under either name) to <store>.<repo>.deleted, durably; the caller
// holds repoID's lock, so any is from an attempt that died. Such a library is never
// synced again, so its own re-check, which alone cleared the marker, would never come
// and every library of the store would re-check at every sync. The renamed marker binds
// each library until it has re-checked once (see DeadDirty); SweepDeletedMarkers
// removes it once every live library of the store has. It reports whether there was
// one: the deleted library's own history is then unverified (seafbak verify).
func (d *Dir) MarkWriterDeleted(storeID, repoID string) (bool, error) {
	p, err := d.dirtyPath(storeID, repoID)
	if err != nil {
		return false, err
	}
	found := false
	for _, from := range []string{p, p + deadSuffix} {
		// The mtime says when the obligation began: a re-check that started before
		// the rename cannot have covered it.
		now := time.Now()
		if err := os.Chtimes(from, now, now); errors.Is(err, fs.ErrNotExist) {
			continue
		} else if err != nil {
			return false, fmt.Errorf("state: %w", err)
		}
		if err := os.Rename(from, p+deletedSuffix); err != nil {
			return false, fmt.Errorf("state: keep the marker of deleted library %s: %w", repoID, err)
		}
		found = true
	}
	if !found {
		return false, nil
	}
	dir := filepath.Dir(p)
	if err := d.dirtyDir.Do(dir, func([]string) error { return fsutil.SyncDir(dir) }); err != nil {
		return false, fmt.Errorf("state: keep the marker of deleted library %s: %w", repoID, err)
	}
	return true, nil
}

// SweepDeletedMarkers removes each marker of a deleted library (see
// MarkWriterDeleted) once every library of its store that is not deleted, among recs,
// has completed a re-check since it was left. A scan calls it with every record.
func (d *Dir) SweepDeletedMarkers(recs []Library) error {
	names, err := d.listMarkers()
	if err != nil {
		return err
	}
	// Markers of libraries recorded deleted that an older seafbak left under their
	// first names: given the deleted name here (a library syncing again after it came
	// back from the trash is busy, and its marker live).
	deleted := map[string]bool{}
	for i := range recs {
		if recs[i].Deleted != nil {
			deleted[recs[i].ID] = true
		}
	}
	for _, name := range names {
		store, writer, ok := splitMarker(name)
		if w := strings.TrimSuffix(writer, deadSuffix); ok && deleted[w] && !d.Busy(w) {
			if _, err := d.MarkWriterDeleted(store, w); err != nil {
				return err
			}
		}
	}
	if names, err = d.listMarkers(); err != nil {
		return err
	}
	for _, name := range names {
		store, writer, ok := splitMarker(name)
		if !ok || !strings.HasSuffix(writer, deletedSuffix) {
			continue
		}
		p := filepath.Join(d.root, "dirty", name)
		fi, err := os.Stat(p)
		if err != nil {
			continue // swept by another scan
		}
		pending := false
		for i := range recs {
			if recs[i].StoreID == store && recs[i].Deleted == nil && !recs[i].RecheckedAt.After(fi.ModTime()) {
				pending = true
				break
			}
		}
		if pending {
			continue
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("state: %w", err)
		}
	}
	return nil
}

// deadSuffix ends the name of a dead attempt's marker (see DeadDirty).
const deadSuffix = ".dead"

// markDead renames self's marker on storeID to its dead name, durably.
func (d *Dir) markDead(storeID, self string) error {
	p, err := d.dirtyPath(storeID, self)
	if err != nil {
		return err
	}
	if err := os.Rename(p, p+deadSuffix); err != nil {
		if errors.Is(err, os.ErrNotExist) { // another view of the same rename
			return nil
		}
		return fmt.Errorf("state: keep the dead marker of %s: %w", self, err)
	}
	dir := filepath.Dir(p)
	if err := d.dirtyDir.Do(dir, func([]string) error { return fsutil.SyncDir(dir) }); err != nil {
		return fmt.Errorf("state: keep the dead marker of %s: %w", self, err)
	}
	return nil
}

// ClearDead removes self's dead marker on storeID (see DeadDirty), once a re-check of
// self has completed: every object of its history was read back, and what a dead
// attempt had left damaged was written again.
func (d *Dir) ClearDead(storeID, self string) error {
	p, err := d.dirtyPath(storeID, self)
	if err != nil {
		return err
	}
	if err := os.Remove(p + deadSuffix); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("state: clear the dead marker of %s: %w", self, err)
	}
	return nil
}

// markersOn calls fn with the name and writer of every marker on storeID, as dirty/
// held them at some instant after the call began. It reads the process's inotify view
// of dirty/ (markerView). Without one, the syncs that ask at about the same time share
// one listing, as they share a flush: a listing that starts after a caller asked sees
// every marker that existed when it asked, which is all either question needs.
func (d *Dir) markersOn(storeID string, fn func(name, writer string)) error {
	if v := d.markerViewFor(); v != nil {
		if writers, ok := v.writers(storeID); ok {
			for _, w := range writers {
				fn(storeID+"."+w, w)
			}
			return nil
		}
	}
	if err := d.dirtyList.Do("", func([]string) error {
		names, err := d.listMarkers()
		if err != nil {
			return err
		}
		d.markers.Store(&names)
		return nil
	}); err != nil {
		return err
	}
	// The latest listing: this caller's round's, or one that started even later.
	for _, name := range *d.markers.Load() {
		if store, writer, ok := splitMarker(name); ok && store == storeID {
			fn(name, writer)
		}
	}
	return nil
}

// listMarkers reads the names in dirty/; markersOn picks those on a store.
func (d *Dir) listMarkers() ([]string, error) {
	return listNames(filepath.Join(d.root, "dirty"))
}

// listNames reads the names in dir.
func listNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	return names, nil
}

// ErrScanRunning is returned by TryScanLock while another scan holds the state's scan
// lock.
var ErrScanRunning = errors.New("another seafbak scan is still running")

// ScanLock is the state's scan lock, held by one scan at a time: a first backup that
// takes hours would otherwise meet a new cron scan every 5 minutes, each starting as
// many syncs and database connections again on the libraries the others had not
// reached. Released by Unlock or when the process dies.
type ScanLock struct{ fd int }

// TryScanLock takes the scan lock, or returns ErrScanRunning naming when the holder
// started.
func (d *Dir) TryScanLock() (*ScanLock, error) {
	p := filepath.Join(d.root, "scan.lock")
	fd, err := fsutil.Open(p, unix.O_RDWR|unix.O_CREAT, 0o640)
	if err != nil {
		return nil, fmt.Errorf("state: scan lock: %w", &os.PathError{Op: "open", Path: p, Err: err})
	}
	if err := fsutil.TryFlock(fd); err != nil {
		defer unix.Close(fd)
		if errors.Is(err, unix.EWOULDBLOCK) {
			buf := make([]byte, 128)
			n, _ := unix.Pread(fd, buf, 0)
			since := strings.TrimSpace(string(buf[:max(n, 0)]))
			if since == "" {
				return nil, ErrScanRunning
			}
			return nil, fmt.Errorf("%w (%s)", ErrScanRunning, since)
		}
		return nil, fmt.Errorf("state: scan lock: %w", err)
	}
	// For the next scan's message; content only, so a short write is no error.
	unix.Ftruncate(fd, 0)
	unix.Pwrite(fd, []byte(fmt.Sprintf("started %s, pid %d\n", time.Now().UTC().Format(time.RFC3339), os.Getpid())), 0)
	return &ScanLock{fd: fd}, nil
}

// Unlock releases the scan lock.
func (l *ScanLock) Unlock() {
	if l != nil && l.fd >= 0 {
		fsutil.Unflock(l.fd)
		unix.Close(l.fd)
		l.fd = -1
	}
}

// againPath is locks/<repo id>.again: a request, left by an invocation that gave up
// waiting for the library's lock, that the holder sync the library once more before it
// lets go (see AskAgain).
func (d *Dir) againPath(repoID string) (string, error) {
	if _, err := d.recordPath(repoID); err != nil { // checks the id
		return "", err
	}
	return filepath.Join(d.root, "locks", repoID+".again"), nil
}

// AskAgain asks whoever holds repoID's lock to read the primary's head again before
// it lets go, and sync that if it moved. A hook's sync --no-wait (or one that waited
// in vain) leaves it: the holder may be copying a head it read before the change that
// fired the hook, and the change would otherwise wait for the next scan. Only the name
// matters; it needs no flush (a crash ends the holder too).
func (d *Dir) AskAgain(repoID string) error {
	p, err := d.againPath(repoID)
	if err != nil {
		return err
	}
	fd, err := fsutil.Open(p, unix.O_WRONLY|unix.O_CREAT, 0o640)
	if err != nil {
		return fmt.Errorf("state: ask for another sync of %s: %w", repoID, &os.PathError{Op: "open", Path: p, Err: err})
	}
	unix.Close(fd)
	return nil
}

// Asked reports whether repoID has a request for another sync waiting, without taking
// it: a holder that just let go looks once more for one made after its last TakeAgain.
func (d *Dir) Asked(repoID string) bool {
	p, err := d.againPath(repoID)
	if err != nil {
		return false
	}
	var st unix.Stat_t
	return unix.Stat(p, &st) == nil
}

// TakeAgain removes repoID's request for another sync, reporting whether there was
// one. The lock holder asks before it lets go, and again after each sync it made for a
// request, until none is left.
func (d *Dir) TakeAgain(repoID string) (bool, error) {
	p, err := d.againPath(repoID)
	if err != nil {
		return false, err
	}
	switch err := unix.Unlink(p); err {
	case nil:
		return true, nil
	case unix.ENOENT:
		return false, nil
	default:
		return false, fmt.Errorf("state: %w", &os.PathError{Op: "unlink", Path: p, Err: err})
	}
}
