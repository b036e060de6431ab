package state

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	gosync "sync"
	"testing"
	"time"
)

func repoID(i int) string { return fmt.Sprintf("%08x-0000-4000-8000-%012x", i, i) }

// UpToDate is true only for a clean record at that very head; each reason to sync
// alone makes it false.
func TestUpToDate(t *testing.T) {
	now := time.Now()
	clean := func() Library { return Library{ID: repoID(1), Head: "h1"} }
	if l := clean(); !l.UpToDate("h1") {
		t.Fatal("a clean record at its head is not up to date")
	}
	for name, spoil := range map[string]func(*Library){
		"other head":  func(l *Library) { l.Head = "h0" },
		"no head yet": func(l *Library) { l.Head = "" },
		"holes":       func(l *Library) { l.Holes = []Hole{{Kind: "blocks", ID: "b"}} },
		"deleted":     func(l *Library) { l.Deleted = &now },
		"failed":      func(l *Library) { l.LastError = "boom" },
		"recheck":     func(l *Library) { l.Recheck = true },
	} {
		l := clean()
		spoil(&l)
		if l.UpToDate("h1") {
			t.Errorf("%s: up to date", name)
		}
	}
}

func TestSaveLoadAll(t *testing.T) {
	d, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, err := d.Load(repoID(1)); ok || err != nil {
		t.Fatalf("empty state: ok=%v err=%v", ok, err)
	}
	now := time.Now().UTC().Truncate(time.Second)
	for i := 3; i >= 1; i-- {
		rec := Library{ID: repoID(i), Head: fmt.Sprintf("%040d", i), LastSuccess: now,
			Holes: []Hole{{Kind: "block", ID: fmt.Sprintf("%040d", 9), Commit: fmt.Sprintf("%040d", 8), FirstSeen: now}}}
		if err := d.Save(rec); err != nil {
			t.Fatal(err)
		}
	}
	all, damaged, err := d.All()
	if err != nil || len(damaged) != 0 || len(all) != 3 || all[0].ID != repoID(1) || all[2].Head != fmt.Sprintf("%040d", 3) || !all[1].LastSuccess.Equal(now) || len(all[1].Holes) != 1 {
		t.Fatalf("All: %+v %v", all, err)
	}
	if err := d.Save(Library{ID: "../../etc"}); err == nil {
		t.Fatal("bad id saved")
	}
}

// A damaged record fails only its own library, with an error naming the file and the
// fix, and is left as it is for the admin to look at.
func TestDamagedRecordFailsOnlyItsLibrary(t *testing.T) {
	d, _ := Open(t.TempDir())
	for i := 1; i <= 4; i++ {
		if err := d.Save(Library{ID: repoID(i), Head: fmt.Sprintf("%040d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	truncated := filepath.Join(d.Root(), "libraries", repoID(2)+".json")
	good, _ := os.ReadFile(truncated)
	if err := os.WriteFile(truncated, good[:len(good)/2], 0o640); err != nil {
		t.Fatal(err)
	}
	// A record holding another library's id (a copy gone wrong) is damaged too.
	other := filepath.Join(d.Root(), "libraries", repoID(4)+".json")
	if err := os.WriteFile(other, fmt.Appendf(nil, `{"id":%q}`, repoID(1)), 0o640); err != nil {
		t.Fatal(err)
	}
	_, ok, err := d.Load(repoID(2))
	var de *DamagedError
	if ok || !errors.Is(err, ErrDamaged) || !errors.As(err, &de) || de.RepoID != repoID(2) || de.Path != truncated {
		t.Fatalf("Load of a truncated record: ok=%v %#v", ok, err)
	}
	for _, want := range []string{truncated + " is damaged", "mv " + truncated + " " + truncated + ".damaged", `"seafbak sync ` + repoID(2) + `"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	recs, damaged, err := d.All()
	if err != nil || len(recs) != 2 || recs[0].ID != repoID(1) || recs[1].ID != repoID(3) ||
		len(damaged) != 2 || damaged[0].RepoID != repoID(2) || damaged[1].RepoID != repoID(4) || !strings.Contains(damaged[1].Error(), repoID(1)) {
		t.Fatalf("All: %+v %v %v", recs, damaged, err)
	}
	if _, err := Whole(d.All()); !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), truncated) || !strings.Contains(err.Error(), other) {
		t.Fatalf("Whole: %v", err)
	}
	if now, _ := os.ReadFile(truncated); string(now) != string(good[:len(good)/2]) {
		t.Fatal("damaged record changed")
	}
	// Once moved aside, the library is simply unknown, and the moved file is ignored.
	if err := os.Rename(truncated, truncated+".damaged"); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := d.Load(repoID(2)); ok || err != nil {
		t.Fatalf("after mv: ok=%v %v", ok, err)
	}
	if recs, damaged, err := d.All(); err != nil || len(recs) != 2 || len(damaged) != 1 {
		t.Fatalf("All after mv: %+v %v %v", recs, damaged, err)
	}
}

// A record that cannot be read (an I/O error, permissions) fails only its library too.
func TestUnreadableRecordFailsOnlyItsLibrary(t *testing.T) {
	d, _ := Open(t.TempDir())
	for i := 1; i <= 2; i++ {
		if err := d.Save(Library{ID: repoID(i)}); err != nil {
			t.Fatal(err)
		}
	}
	// A directory in the record's place reads as an error (EISDIR), even for root.
	p := filepath.Join(d.Root(), "libraries", repoID(1)+".json")
	os.Remove(p)
	if err := os.Mkdir(p, 0o750); err != nil {
		t.Fatal(err)
	}
	recs, damaged, err := d.All()
	if err != nil || len(recs) != 1 || len(damaged) != 1 || !damaged[0].Unreadable ||
		!strings.Contains(damaged[0].Error(), p+" cannot be read (is a directory)") {
		t.Fatalf("All: %+v %v %v", recs, damaged, err)
	}
}

// Many writers, each holding the library lock for a read-modify-write: no update is lost.
func TestLockedUpdatesAreNotLost(t *testing.T) {
	d, _ := Open(t.TempDir())
	const writers, rounds = 8, 25
	var wg gosync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := 0; r < rounds; r++ {
				l, err := d.Lock(context.Background(), repoID(1))
				if err != nil {
					t.Error(err)
					return
				}
				rec, _, err := d.Load(repoID(1))
				if err != nil {
					t.Error(err)
				}
				rec.OldHeads = append(rec.OldHeads, OldHead{Head: fmt.Sprint(w, r)})
				if err := d.Save(rec); err != nil {
					t.Error(err)
				}
				l.Unlock()
			}
		}()
	}
	wg.Wait()
	rec, _, _ := d.Load(repoID(1))
	if len(rec.OldHeads) != writers*rounds {
		t.Fatalf("%d updates kept, want %d", len(rec.OldHeads), writers*rounds)
	}
}

func TestTryLockAndBusy(t *testing.T) {
	d, _ := Open(t.TempDir())
	if d.Busy(repoID(1)) {
		t.Fatal("busy before anyone locked")
	}
	l, err := d.TryLock(repoID(1))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.TryLock(repoID(1)); !errors.Is(err, ErrLocked) {
		t.Fatalf("second TryLock: %v", err)
	}
	l.Announce()
	if !d.Busy(repoID(1)) {
		t.Fatal("not busy while locked")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := d.Lock(ctx, repoID(1)); err == nil {
		t.Fatal("Lock did not wait")
	}
	l.Unlock()
	if d.Busy(repoID(1)) {
		t.Fatal("busy after unlock")
	}
}

func TestDirtyMarkers(t *testing.T) {
	d, _ := Open(t.TempDir())
	store, self, other := repoID(1), repoID(1), repoID(2)
	if dead, _ := d.DeadDirty(store, self, time.Time{}); dead {
		t.Fatal("dead marker in a fresh state")
	}
	// Another library writing into the same store (a virtual library) and alive.
	l, _ := d.TryLock(other)
	l.Announce()
	d.MarkDirty(store, other)
	if dead, _ := d.DeadDirty(store, self, time.Time{}); dead {
		t.Fatal("a live writer's marker counted as dead")
	}
	l.Unlock() // it died without clearing its marker
	if dead, _ := d.DeadDirty(store, self, time.Time{}); !dead {
		t.Fatal("a dead writer's marker not seen")
	}
	d.ClearDirty(store, other)
	d.MarkDirty(store, self) // our own marker: always from a dead attempt
	if dead, _ := d.DeadDirty(store, self, time.Time{}); !dead {
		t.Fatal("own marker not seen")
	}
	// Found dead, it stays dead (renamed) until the re-check it caused completes.
	d.ClearDirty(store, self)
	if dead, _ := d.DeadDirty(store, self, time.Time{}); !dead {
		t.Fatal("a dead marker gone with the next attempt's own")
	}
	d.ClearDead(store, self)
	if dead, _ := d.DeadDirty(store, self, time.Time{}); dead {
		t.Fatal("cleared marker still seen")
	}
}

// Syncs asking about markers at once share listings of dirty/, and each still sees
// every marker that existed when it asked: another process's marker written just before
// the question, and a marker cleared just before it is gone.
func TestMarkerQuestionsSeeMarkersMadeBeforeThem(t *testing.T) {
	root := t.TempDir()
	me, _ := Open(root)
	other, _ := Open(root) // another seafbak on the same state
	var wg gosync.WaitGroup
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 40; i++ {
				store, writer, self := repoID(1000+g), repoID(2000+g), repoID(3000+g)
				l, err := other.TryLock(writer)
				if err != nil {
					t.Error(err)
					return
				}
				l.Announce()
				if err := other.MarkDirty(store, writer); err != nil {
					t.Error(err)
					return
				}
				if others, err := me.OtherWriters(store, self); err != nil || !others {
					t.Errorf("round %d: another process's marker made before the question not seen (%v)", i, err)
				}
				if dead, err := me.DeadDirty(store, self, time.Time{}); err != nil || dead {
					t.Errorf("round %d: a live writer's marker counted as dead (%v)", i, err)
				}
				l.Unlock()
				if dead, err := me.DeadDirty(store, self, time.Time{}); err != nil || !dead {
					t.Errorf("round %d: a dead writer's marker not seen (%v)", i, err)
				}
				if err := other.ClearDirty(store, writer); err != nil {
					t.Error(err)
					return
				}
				if others, err := me.OtherWriters(store, self); err != nil || others {
					t.Errorf("round %d: a cleared marker still seen (%v)", i, err)
				}
			}
		}()
	}
	wg.Wait()
}

// Recording one library costs the same however many the state holds: compare the
// ns/op of the two sizes.
func BenchmarkSaveOne(b *testing.B) {
	for _, n := range []int{100, 100_000} {
		b.Run(fmt.Sprintf("libraries=%d", n), func(b *testing.B) {
			d, _ := Open(b.TempDir())
			for i := 0; i < n; i++ {
				// Setup writes records directly: 100 000 fsyncing Saves take minutes.
				data := fmt.Sprintf(`{"id":%q,"head":"%040d"}`, repoID(i), i)
				if err := os.WriteFile(filepath.Join(d.Root(), "libraries", repoID(i)+".json"), []byte(data), 0o640); err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				l, err := d.TryLock(repoID(7))
				if err != nil {
					b.Fatal(err)
				}
				rec, _, _ := d.Load(repoID(7))
				rec.LastAttempt = time.Now()
				if err := d.Save(rec); err != nil {
					b.Fatal(err)
				}
				l.Unlock()
			}
		})
	}
}

// BenchmarkAll reads every record of a state of 30 000 libraries, as each scan, status
// and verify does.
//
//	go test -run '^$' -bench 'All$' -benchtime 5x ./state/
func BenchmarkAll(b *testing.B) {
	const n = 30_000
	d, _ := Open(b.TempDir())
	now := time.Now().UTC().Format(time.RFC3339Nano)
	for i := range n {
		data := fmt.Sprintf(`{"id":%q,"store_id":%q,"name":"library %d","head":"%040d","last_success":%q,"last_attempt":%q,"old_heads":[{"head":"%040d","at":%q}]}`,
			repoID(i), repoID(i), i, i, now, now, i+1, now)
		if err := os.WriteFile(filepath.Join(d.Root(), "libraries", repoID(i)+".json"), []byte(data), 0o640); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for range b.N {
		recs, damaged, err := d.All()
		if err != nil || len(recs) != n || len(damaged) != 0 {
			b.Fatalf("%d records, %d damaged, %v", len(recs), len(damaged), err)
		}
	}
}

// All reads many records at once (chunks across readers): every record comes back once,
// in order, and damaged ones apart, wherever they fall.
func TestAllReadsManyRecordsAtOnce(t *testing.T) {
	d, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	const n = 1000
	dir := filepath.Join(d.Root(), "libraries")
	for i := range n {
		data := fmt.Sprintf(`{"id":%q,"head":"%040d"}`, repoID(i), i)
		if i%200 == 7 {
			data = data[:len(data)/2] // cut short, as by a crash without the atomic write
		}
		if err := os.WriteFile(filepath.Join(dir, repoID(i)+".json"), []byte(data), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, ".tmp-123"), []byte("x"), 0o640); err != nil {
		t.Fatal(err)
	}
	recs, damaged, err := d.All()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != n-5 || len(damaged) != 5 {
		t.Fatalf("%d records and %d damaged, want %d and 5", len(recs), len(damaged), n-5)
	}
	j := 0
	for i := range n {
		if i%200 == 7 {
			if damaged[i/200].RepoID != repoID(i) {
				t.Fatalf("damaged %d is %s, want %s", i/200, damaged[i/200].RepoID, repoID(i))
			}
			continue
		}
		if recs[j].ID != repoID(i) || recs[j].Head != fmt.Sprintf("%040d", i) {
			t.Fatalf("record %d: %+v, want library %s", j, recs[j], repoID(i))
		}
		j++
	}
}

// Records saved at once share their flushes (a syncfs through the state's root, held
// open since Open, when more than a few are pending): each comes back as saved.
func TestRecordsSavedAtOnceShareAFlush(t *testing.T) {
	d, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	const n = 64
	var wg gosync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if err := d.Save(Library{ID: repoID(i), Head: fmt.Sprintf("%040d", i)}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	recs, damaged, err := d.All()
	if err != nil || len(recs) != n || len(damaged) != 0 {
		t.Fatalf("%d records, %d damaged, %v; want %d", len(recs), len(damaged), err, n)
	}
	for i, rec := range recs {
		if rec.ID != repoID(i) || rec.Head != fmt.Sprintf("%040d", i) {
			t.Fatalf("record %d: %+v", i, rec)
		}
	}
}

// A state directory moved to another filesystem under a running process (here: replaced
// by a link to one) is flushed where its records now are: the held root is opened again.
func TestRecordsFlushWhereTheStateNowIs(t *testing.T) {
	elsewhere, err := os.MkdirTemp("/dev/shm", "seafbak-state-")
	if err != nil {
		t.Skipf("no /dev/shm: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(elsewhere) })
	root := filepath.Join(t.TempDir(), "state")
	d, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	saveMany := func(from int) {
		t.Helper()
		var wg gosync.WaitGroup
		for i := range 16 {
			wg.Go(func() {
				if err := d.Save(Library{ID: repoID(from + i)}); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
	}
	sameDir := func(f *os.File, path string) bool {
		a, errA := f.Stat()
		b, errB := os.Stat(path)
		return errA == nil && errB == nil && os.SameFile(a, b)
	}
	saveMany(0)
	if !sameDir(d.rootFile, root) {
		t.Fatal("the held root is not the state directory")
	}
	// Moved: the records now go through the link to another filesystem.
	for _, sub := range []string{"libraries", "locks", "dirty"} {
		if err := os.Mkdir(filepath.Join(elsewhere, sub), 0o750); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Rename(root, root+".old"); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(elsewhere, root); err != nil {
		t.Fatal(err)
	}
	saveMany(100)
	// Saves on tmpfs finish one by one, too fast to share a flush: ask for the
	// syncfs a round of many takes.
	if err := d.syncfs(); err != nil {
		t.Fatal(err)
	}
	if !sameDir(d.rootFile, elsewhere) {
		t.Fatal("after the state moved, its flushes still go through the old directory")
	}
	recs, damaged, err := d.All()
	if err != nil || len(recs) != 16 || len(damaged) != 0 {
		t.Fatalf("in the moved state: %d records, %d damaged, %v; want the 16 saved after the move", len(recs), len(damaged), err)
	}
}

// A dead attempt's marker keeps telling every library of its store to re-check until
// its own library's re-check completes: while that library's next attempt holds the
// lock (it looked live then), and after that attempt failed and cleared its marker.
func TestDeadMarkerStaysDeadForTheOtherLibrariesOfItsStore(t *testing.T) {
	S, W, V := repoID(1), repoID(2), repoID(3)
	root := t.TempDir()
	d, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	// W's last attempt died with the machine: its marker is there, its lock is not held.
	if err := os.WriteFile(filepath.Join(root, "dirty", S+"."+W), []byte("x\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	if dead, err := d.DeadDirty(S, V, time.Time{}); !dead || err != nil {
		t.Fatalf("V does not see W's dead marker: %v %v", dead, err)
	}
	// W's next attempt, in another process, takes its lock and finds its marker dead.
	other, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	l, err := other.TryLock(W)
	if err != nil {
		t.Fatal(err)
	}
	if dead, err := other.DeadDirty(S, W, time.Time{}); !dead || err != nil {
		t.Fatalf("W does not see its own dead marker: %v %v", dead, err)
	}
	if dead, err := d.DeadDirty(S, V, time.Time{}); !dead || err != nil {
		t.Errorf("while W's re-check runs, V does not see the dead marker: %v %v", dead, err)
	}
	// That attempt fails after writing (the primary went away): its own marker goes.
	if err := other.MarkDirty(S, W); err != nil {
		t.Fatal(err)
	}
	if err := other.ClearDirty(S, W); err != nil {
		t.Fatal(err)
	}
	l.Unlock()
	for _, who := range []string{V, W} {
		if dead, err := d.DeadDirty(S, who, time.Time{}); !dead || err != nil {
			t.Errorf("after W's failed re-check, %s does not see the dead marker: %v %v", who, dead, err)
		}
	}
	// W's re-check completes: the dead marker goes, for everyone.
	if err := other.ClearDead(S, W); err != nil {
		t.Fatal(err)
	}
	for _, who := range []string{V, W} {
		if dead, err := d.DeadDirty(S, who, time.Time{}); dead || err != nil {
			t.Errorf("after W's re-check, %s still sees a dead marker: %v %v", who, dead, err)
		}
	}
}
