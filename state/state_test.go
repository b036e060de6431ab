package state

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	gosync "sync"
	"testing"
	"time"
)

func repoID(i int) string { return fmt.Sprintf("%08x-0000-4000-8000-%012x", i, i) }

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
	all, err := d.All()
	if err != nil || len(all) != 3 || all[0].ID != repoID(1) || all[2].Head != fmt.Sprintf("%040d", 3) || !all[1].LastSuccess.Equal(now) || len(all[1].Holes) != 1 {
		t.Fatalf("All: %+v %v", all, err)
	}
	if err := d.Save(Library{ID: "../../etc"}); err == nil {
		t.Fatal("bad id saved")
	}
}

func TestDamagedRecordIsAnError(t *testing.T) {
	d, _ := Open(t.TempDir())
	os.WriteFile(filepath.Join(d.Root(), "libraries", repoID(1)+".json"), []byte("{garbage"), 0o600)
	if _, _, err := d.Load(repoID(1)); err == nil {
		t.Fatal("damaged record loaded")
	}
	if _, err := d.All(); err == nil {
		t.Fatal("damaged state listed")
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
	if dead, _ := d.DeadDirty(store, self); dead {
		t.Fatal("dead marker in a fresh state")
	}
	// Another library writing into the same store (a virtual library) and alive.
	l, _ := d.TryLock(other)
	d.MarkDirty(store, other)
	if dead, _ := d.DeadDirty(store, self); dead {
		t.Fatal("a live writer's marker counted as dead")
	}
	l.Unlock() // it died without clearing its marker
	if dead, _ := d.DeadDirty(store, self); !dead {
		t.Fatal("a dead writer's marker not seen")
	}
	d.ClearDirty(store, other)
	d.MarkDirty(store, self) // our own marker: always from a dead attempt
	if dead, _ := d.DeadDirty(store, self); !dead {
		t.Fatal("own marker not seen")
	}
	d.ClearDirty(store, self)
	if dead, _ := d.DeadDirty(store, self); dead {
		t.Fatal("cleared marker still seen")
	}
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
