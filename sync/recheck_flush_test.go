package sync_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"seafbak/internal/seafgen"
	"seafbak/internal/testenv"
	"seafbak/state"
	"seafbak/sync/store"
)

// sectorsWritten is the block device's written sectors (/sys/block/<dev>/stat field 7).
func sectorsWritten(t *testing.T, dev string) int64 {
	b, err := os.ReadFile("/sys/block/" + filepath.Base(dev) + "/stat")
	must(t, err)
	n, _ := strconv.ParseInt(strings.Fields(string(b))[6], 10, 64)
	return n
}

// killedStore is a store whose Sync never happens: the process "dies" after its objects
// were put in place (in the page cache) and before its flush, leaving its marker.
type killedStore struct{ store.Store }

func (killedStore) Sync(context.Context) error    { return errors.New("killed -9 before the flush") }
func (killedStore) SyncAll(context.Context) error { return errors.New("killed -9 before the flush") }

// A sync killed by kill -9 (the machine stays up) after putting its objects in place
// and before its flush leaves its marker, and its objects dirty in the page cache. The
// next sync of the library renames the marker dead and re-checks: it reads every object
// back from the page cache, finds it whole and writes nothing, so a flush of its own
// writes flushes nothing. Were the marker then cleared and the head recorded, a power
// loss in the next half minute would leave rows and state naming a head whose blocks
// are empty, with no marker left to make anyone re-check them. This test puts the
// store on a disk of its own and counts the sectors that reach it.
func TestRecheckAfterKilledSyncFlushesTheStore(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to mount a loop device")
	}
	if _, err := os.Stat("/dev/loop-control"); err != nil {
		t.Skipf("no loop devices here: %v", err)
	}
	env := testenv.New(t, srv)

	// The backup store on a filesystem of its own, to count what reaches its disk.
	img := filepath.Join(t.TempDir(), "store.img")
	run := func(name string, args ...string) string {
		out, err := exec.Command(name, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	run("truncate", "-s", "256M", img)
	run("mkfs.ext4", "-q", img)
	dev := run("losetup", "--find", "--show", img)
	t.Cleanup(func() { exec.Command("losetup", "-d", dev).Run() })
	mnt := t.TempDir()
	run("mount", dev, mnt)
	t.Cleanup(func() { exec.Command("umount", "-l", mnt).Run() })
	dataDir := filepath.Join(mnt, "seafile-data")

	g := seafgen.New(env.PrimaryDir)
	lib, err := g.NewLibrary(seafgen.LibraryOptions{Name: "Big", Owner: "o@example.com"})
	must(t, err)
	const size = 24 << 20 // under the store's 64 MiB flush-ahead
	testenv.Commit(t, lib, "big", seafgen.Put("big.bin", testenv.RandomBytes(size, 42)))
	env.Publish(lib)

	// Process 1: its own store and state, killed before its flush.
	fs1, err := store.NewFS(dataDir, store.Batch)
	must(t, err)
	run("sync")
	st1, err := state.Open(env.StateDir)
	must(t, err)
	eng1 := env.Engine(false)
	eng1.Store, eng1.State = killedStore{fs1}, st1
	if _, err := eng1.Sync(context.Background(), lib.ID); err == nil {
		t.Fatal("the killed sync succeeded")
	}
	names, _ := os.ReadDir(filepath.Join(env.StateDir, "dirty"))
	if len(names) != 1 {
		t.Fatalf("want the dead attempt's marker, have %v", names)
	}

	// Process 2: the next sync of the library, at once (the hook, a restarted watch).
	start := time.Now()
	fs2, err := store.NewFS(dataDir, store.Batch)
	must(t, err)
	st2, err := state.Open(env.StateDir)
	must(t, err)
	eng2 := env.Engine(false)
	eng2.Store, eng2.State = fs2, st2
	before := sectorsWritten(t, dev)
	res, err := eng2.Sync(context.Background(), lib.ID)
	must(t, err)
	after := sectorsWritten(t, dev)
	rec, _, err := st2.Load(lib.ID)
	must(t, err)
	names, _ = os.ReadDir(filepath.Join(env.StateDir, "dirty"))
	t.Logf("second sync: rechecked=%v blocks written=%d head=%s recorded=%s markers left=%d; %d sectors reached the store's disk during it (%.1fs)",
		res.Rechecked, res.Blocks, res.Head, rec.Head, len(names), after-before, time.Since(start).Seconds())
	run("sync")
	flushedLater := sectorsWritten(t, dev) - after
	t.Logf("a global sync afterwards wrote %d more sectors", flushedLater)
	if rec.Head == lib.Head && len(names) == 0 && after-before < size/512 && flushedLater >= size/512 {
		t.Errorf("head %s recorded (rows and state), no marker left, yet %d of the dead attempt's sectors (>= %d MiB of blocks) were still only in the page cache",
			rec.Head, flushedLater, size>>20)
	}
}
