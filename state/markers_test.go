package state

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Where the view cannot serve, questions list dirty/ and answer the same: without an
// inotify instance left, and on a filesystem not known to be local (NFS, CIFS, FUSE),
// where inotify would miss another host's markers.
func TestMarkerQuestionsByListing(t *testing.T) {
	for _, c := range []struct {
		name    string
		disable func()
	}{
		{"no inotify instance", func() { inotifyInit = func(int) (int, error) { return -1, unix.EMFILE } }},
		{"not a local filesystem", func() { localFilesystem = func(string) bool { return false } }},
	} {
		t.Run(c.name, func(t *testing.T) {
			savedInit, savedLocal := inotifyInit, localFilesystem
			t.Cleanup(func() { inotifyInit, localFilesystem = savedInit, savedLocal })
			c.disable()
			t.Run("markers", TestDirtyMarkers)
			t.Run("before", TestMarkerQuestionsSeeMarkersMadeBeforeThem)
			d, _ := Open(t.TempDir())
			d.DeadDirty(repoID(1), repoID(1), time.Time{})
			if d.view != nil {
				t.Fatal("a view started")
			}
		})
	}
}

// On a local filesystem (the test machine's temp directory, usually) the view is used.
func TestMarkerViewOnALocalFilesystem(t *testing.T) {
	d, _ := Open(t.TempDir())
	if !localFilesystem(d.Root()) {
		var st unix.Statfs_t
		unix.Statfs(d.Root(), &st)
		t.Skipf("%s is on a filesystem seafbak does not know as local (f_type %#x)", d.Root(), st.Type)
	}
	d.DeadDirty(repoID(1), repoID(1), time.Time{})
	if d.view == nil {
		t.Fatal("no view of dirty/ on a local filesystem")
	}
}

// More changes than the kernel queues (max_queued_events) overflow the watch: the view
// lists dirty/ again and still answers as the directory is.
func TestMarkerViewAfterOverflow(t *testing.T) {
	raw, err := os.ReadFile("/proc/sys/fs/inotify/max_queued_events")
	if err != nil {
		t.Skip(err)
	}
	queued, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil || queued > 100_000 {
		t.Skipf("max_queued_events %q: too many to overflow in a test", raw)
	}
	d, _ := Open(t.TempDir())
	store, self := repoID(1), repoID(1)
	if dead, err := d.DeadDirty(store, self, time.Time{}); err != nil || dead {
		t.Fatalf("fresh state: dead %v, %v", dead, err)
	}
	if d.view == nil {
		t.Skip("no inotify instance")
	}
	// Another process's markers, written straight in: creating and removing them
	// queues twice as many events as the kernel keeps.
	dirty := filepath.Join(d.Root(), "dirty")
	for i := 0; i < queued; i++ {
		p := filepath.Join(dirty, repoID(10_000+i)+"."+repoID(10_000+i))
		if err := os.WriteFile(p, nil, 0o640); err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			os.Remove(p)
		}
	}
	os.WriteFile(filepath.Join(dirty, store+"."+repoID(2)), nil, 0o640) // after the overflow
	if dead, err := d.DeadDirty(store, self, time.Time{}); err != nil || !dead {
		t.Fatalf("a dead writer's marker made after the overflow: dead %v, %v", dead, err)
	}
	if d.view.fd < 0 {
		t.Fatal("the view gave up on an overflow instead of listing again")
	}
	for i := 0; i < queued; i++ {
		id := repoID(10_000 + i)
		dead, err := d.DeadDirty(id, repoID(3), time.Time{})
		if err != nil || dead != (i%2 == 1) {
			t.Fatalf("marker %d (removed: %v): dead %v, %v", i, i%2 == 0, dead, err)
		}
	}
}

// A dirty/ replaced under the watch (an admin restoring the state directory) is read
// by listing from then on.
func TestMarkerViewOfReplacedDirectory(t *testing.T) {
	d, _ := Open(t.TempDir())
	store, self := repoID(1), repoID(1)
	d.MarkDirty(store, repoID(2))
	d.ClearDirty(store, repoID(2))
	if dead, err := d.DeadDirty(store, self, time.Time{}); err != nil || dead {
		t.Fatalf("dead %v, %v", dead, err)
	}
	if d.view == nil {
		t.Skip("no inotify instance")
	}
	dirty := filepath.Join(d.Root(), "dirty")
	if err := os.Rename(dirty, dirty+".old"); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(dirty, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dirty, fmt.Sprintf("%s.%s", store, repoID(2))), nil, 0o640); err != nil {
		t.Fatal(err)
	}
	if dead, err := d.DeadDirty(store, self, time.Time{}); err != nil || !dead {
		t.Fatalf("the new dirty/'s dead marker: dead %v, %v", dead, err)
	}
	if d.view.fd >= 0 {
		t.Fatal("the view still follows the moved directory")
	}
}
