package state

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	gosync "sync"
	"sync/atomic"
	"testing"
	"time"
)

// A lock this process released is free at once, even while other goroutines fork
// children: a forked child holds a copy of every descriptor until its exec closes it,
// and a lock released only by closing its descriptor stayed held by that copy. A
// TryLock right after an Unlock then failed (a hook's sync --no-wait exiting 1).
func TestReleasedLockIsFreeWhileChildrenFork(t *testing.T) {
	d, _ := Open(t.TempDir())
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
	deadline := time.Now().Add(2 * time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		l, err := d.TryLock(repoID(1))
		if err != nil {
			t.Fatalf("TryLock %d right after an Unlock: %v", i, err)
		}
		l.Unlock()
	}
}

// Asking whether a library is busy never makes it busy: a TryLock at the same instant
// as a Busy of the same library succeeds.
func TestBusyNeverMakesALibraryBusy(t *testing.T) {
	d, _ := Open(t.TempDir())
	l, err := d.TryLock(repoID(1)) // creates the lock file Busy looks at
	if err != nil {
		t.Fatal(err)
	}
	l.Unlock()
	var stop atomic.Bool
	var wg gosync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				d.Busy(repoID(1))
			}
		}()
	}
	defer func() { stop.Store(true); wg.Wait() }()
	deadline := time.Now().Add(2 * time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		l, err := d.TryLock(repoID(1))
		if errors.Is(err, ErrLocked) {
			t.Fatalf("TryLock %d saw the library busy while only Busy asked about it", i)
		}
		if err != nil {
			t.Fatal(err)
		}
		l.Announce()
		if !d.Busy(repoID(1)) {
			t.Fatal("not busy while locked and announced")
		}
		l.Unlock()
	}
}

// A dead attempt's marker stays dead to the other libraries of its store while the
// library's next attempt holds the lock but has not yet renamed its markers (it asks
// the primary for its head first: seconds over HTTP). Before Announce, the holder was
// busy from TryLock on, so the marker looked live and the others trusted presence.
func TestDeadMarkerStaysDeadUntilTheNextAttemptAnnounces(t *testing.T) {
	S, W, V := repoID(1), repoID(2), repoID(3)
	root := t.TempDir()
	d, _ := Open(root)
	other, _ := Open(root)
	if err := os.WriteFile(filepath.Join(root, "dirty", S+"."+W), []byte("x\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	l, err := other.TryLock(W)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Unlock()
	if dead, err := d.DeadDirty(S, V, time.Time{}); !dead || err != nil {
		t.Fatalf("W holds its lock, not yet announced: V takes its dead marker as live (%v %v)", dead, err)
	}
	if d.Busy(W) {
		t.Error("busy before announcing")
	}
	if dead, err := other.DeadDirty(S, W, time.Time{}); !dead || err != nil {
		t.Fatalf("W does not see its own dead marker: %v %v", dead, err)
	}
	l.Announce()
	if !d.Busy(W) {
		t.Error("not busy once announced")
	}
	if dead, err := d.DeadDirty(S, V, time.Time{}); !dead || err != nil {
		t.Errorf("W announced after renaming its marker dead: V must still see it dead (%v %v)", dead, err)
	}
}

// A scan gives a marker left, under its first name, by a library now recorded deleted
// (an older seafbak's) the deleted name, and removes it once every live library of the
// store has re-checked since.
func TestSweepDeletedMarkers(t *testing.T) {
	S, W, O := repoID(1), repoID(2), repoID(1)
	root := t.TempDir()
	d, _ := Open(root)
	marker := filepath.Join(root, "dirty", S+"."+W)
	if err := os.WriteFile(marker, []byte("x\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	gone := time.Now()
	recs := []Library{{ID: W, StoreID: S, Deleted: &gone}, {ID: O, StoreID: S}}
	if err := d.SweepDeletedMarkers(recs); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(marker + deletedSuffix); err != nil {
		t.Fatalf("not renamed deleted: %v", err)
	}
	if dead, err := d.DeadDirty(S, O, time.Time{}); !dead || err != nil {
		t.Fatalf("O, never re-checked, does not see it: %v %v", dead, err)
	}
	recs[1].RecheckedAt = time.Now().Add(time.Second)
	if dead, err := d.DeadDirty(S, O, recs[1].RecheckedAt); dead || err != nil {
		t.Fatalf("O, re-checked since, still bound: %v %v", dead, err)
	}
	if err := d.SweepDeletedMarkers(recs); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(marker + deletedSuffix); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("kept once every live library re-checked: %v", err)
	}
}
