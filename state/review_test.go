package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	gosync "sync"
	"syscall"
	"testing"
	"time"
)

// Found by review: the state directory moved under a running process (the case
// TestRecordsFlushWhereTheStateNowIs says is followed): records and locks follow the
// path, but the inotify view of dirty/ keeps watching the old dirty/ (moving its parent
// sends no IN_MOVE_SELF), so markers other processes leave in the state's dirty/ now
// are invisible to DeadDirty and OtherWriters.
func TestMarkerViewFollowsAMovedStateRoot(t *testing.T) {
	S, W, V := repoID(1), repoID(2), repoID(3)
	root := filepath.Join(t.TempDir(), "state")
	d, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	if dead, err := d.DeadDirty(S, V, time.Time{}); err != nil || dead {
		t.Fatalf("fresh: %v %v", dead, err)
	}
	if d.view == nil {
		t.Skip("no inotify view here")
	}
	// The admin moves the state: old one aside, a new one (a copy) in its place.
	if err := os.Rename(root, root+".old"); err != nil {
		t.Fatal(err)
	}
	for _, sub := range []string{"libraries", "locks", "dirty"} {
		if err := os.MkdirAll(filepath.Join(root, sub), 0o750); err != nil {
			t.Fatal(err)
		}
	}
	// Another process (a hook's sync) now works in the state at root: a live marker
	// of W on store S. W is not busy here (no lock held): its marker is dead.
	other, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	if err := other.MarkDirty(S, W); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "dirty", S+"."+W)); err != nil {
		t.Fatal(err)
	}
	others, err := d.OtherWriters(S, V)
	if err != nil {
		t.Fatal(err)
	}
	if !others {
		t.Errorf("OtherWriters(S, V) = false with another process's marker %s.%s in %s/dirty: V would record its head without flushing objects W wrote", S, W, root)
	}
	dead, err := d.DeadDirty(S, V, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if !dead {
		t.Errorf("DeadDirty(S, V) = false with a dead writer's marker in %s/dirty: V trusts presence of objects a dead attempt left", root)
	}
}

// Found by review: a record written by a newer seafbak (a field this one does not know) loses
// that field when this one saves the library again: no version in the record, unknown
// fields dropped silently.
func TestUnknownRecordFieldsSurviveASave(t *testing.T) {
	root := t.TempDir()
	d, _ := Open(root)
	id := repoID(7)
	p := filepath.Join(root, "libraries", id+".json")
	newer := `{"id": "` + id + `", "head": "` + strings.Repeat("a", 40) + `", "recheck_scope": ["fs"], "format": 1, "future": {"a": 1}}` + "\n"
	if err := os.WriteFile(p, []byte(newer), 0o640); err != nil {
		t.Fatal(err)
	}
	rec, found, err := d.Load(id)
	if err != nil || !found {
		t.Fatalf("load: %v %v", found, err)
	}
	rec.LastAttempt = time.Now()
	if err := d.Save(rec); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(p)
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"recheck_scope", "format", "future"} {
		if _, ok := m[k]; !ok {
			t.Errorf("field %q of a newer seafbak's record dropped by this one's Save:\n%s", k, raw)
		}
	}
}

// Found by review: a seafbak killed (kill -9, OOM) while it saves records leaves their temp files
// (.<id>.json.<random>) in libraries/ for ever: nothing removes them, not the next Save
// of the same library, not a scan. A watch restarted by systemd after each OOM kill
// adds up to one per library being saved at each kill.
func TestKilledSaveLeavesNoTempFilesForEver(t *testing.T) {
	if os.Getenv("SEAFBAK_TEST_SAVER") != "" {
		d, err := Open(os.Getenv("SEAFBAK_TEST_SAVER"))
		if err != nil {
			os.Exit(3)
		}
		var wg gosync.WaitGroup
		for i := range 64 {
			wg.Go(func() {
				for n := 0; ; n++ {
					d.Save(Library{ID: repoID(100 + i), Name: strings.Repeat("x", 1000), LastError: fmt.Sprint(n)})
				}
			})
		}
		wg.Wait()
	}
	root := t.TempDir()
	exe, _ := os.Executable()
	strays := func() []string {
		ents, _ := os.ReadDir(filepath.Join(root, "libraries"))
		var s []string
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), ".") {
				s = append(s, e.Name())
			}
		}
		return s
	}
	for try := 0; try < 20 && len(strays()) == 0; try++ {
		cmd := exec.Command(exe, "-test.run=^TestKilledSaveLeavesNoTempFilesForEver$")
		cmd.Env = append(os.Environ(), "SEAFBAK_TEST_SAVER="+root)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
	}
	if len(strays()) == 0 {
		t.Skip("no kill landed inside a Save")
	}
	t.Logf("after kill -9: %d temp files, e.g. %s", len(strays()), strays()[0])
	// A temp file younger than staleTempAge may be a save in progress: only those
	// left for longer are removed. These are made older.
	old := time.Now().Add(-2 * staleTempAge)
	for _, s := range strays() {
		if err := os.Chtimes(filepath.Join(root, "libraries", s), old, old); err != nil {
			t.Fatal(err)
		}
	}
	// A later seafbak saves every library again and reads the state (a scan).
	d, _ := Open(root)
	for i := range 64 {
		if err := d.Save(Library{ID: repoID(100 + i)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := d.All(); err != nil {
		t.Fatal(err)
	}
	if s := strays(); len(s) > 0 {
		t.Errorf("%d temp files of records left after a restart saved and read every record (e.g. %s): nothing ever removes them", len(s), s[0])
	}
}

// Found by review: a passing failure to read a record (here EMFILE: a watch's syncs holding
// many descriptors) is reported as a damaged record, failing its library in scan and
// status, with the advice to move the good record aside (which drops its old heads,
// deletion time and truncation from the state: the rebuild re-reads only the history).
func TestPassingReadErrorIsNotDamage(t *testing.T) {
	root := t.TempDir()
	d, _ := Open(root)
	id := repoID(9)
	if err := d.Save(Library{ID: id, Head: strings.Repeat("b", 40), OldHeads: []OldHead{{Head: strings.Repeat("c", 40)}}}); err != nil {
		t.Fatal(err)
	}
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	var fds []int
	for {
		fd, err := syscall.Open("/dev/null", syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
		if err != nil {
			break
		}
		fds = append(fds, fd)
		if len(fds) > 1<<20 {
			t.Skip("no descriptor limit reached")
		}
	}
	_, damaged, err := d.All()
	_, _, lerr := d.Load(id)
	for _, fd := range fds {
		syscall.Close(fd)
	}
	if err != nil {
		t.Logf("All: %v", err)
	}
	if len(damaged) > 0 {
		t.Errorf("a good record reported damaged while descriptors ran out: %v", damaged[0])
	}
	if errors.Is(lerr, ErrDamaged) {
		t.Errorf("Load while descriptors ran out: %v", lerr)
	}
}

// A record's temp file younger than staleTempAge may be a save in progress in another
// process: All leaves it, and removes only those left for longer.
func TestAllLeavesYoungTempFiles(t *testing.T) {
	root := t.TempDir()
	d, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	young := filepath.Join(root, "libraries", "."+repoID(1)+".json.abc")
	aged := filepath.Join(root, "libraries", "."+repoID(2)+".json.def")
	other := filepath.Join(root, "libraries", ".notes")
	for _, p := range []string{young, aged, other} {
		if err := os.WriteFile(p, []byte("{"), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-2 * staleTempAge)
	for _, p := range []string{aged, other} {
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := d.All(); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]bool{young: true, aged: false, other: true} {
		if _, err := os.Stat(p); (err == nil) != want {
			t.Errorf("%s: present %v, want %v", filepath.Base(p), err == nil, want)
		}
	}
}

// A record a newer seafbak marked with a higher format (what it changed may be inside
// holes or old heads, which are not kept field by field) is read, but this one refuses
// to save over it rather than drop what it does not know.
func TestNewerRecordFormatIsNotSavedOver(t *testing.T) {
	root := t.TempDir()
	d, _ := Open(root)
	id := repoID(8)
	p := filepath.Join(root, "libraries", id+".json")
	newer := `{"id": "` + id + `", "head": "` + strings.Repeat("a", 40) + `", "format": 2, "holes": [{"kind": "block", "id": "` + strings.Repeat("b", 40) + `", "commit": "` + strings.Repeat("c", 40) + `", "error": "x", "first_seen": "2026-11-29T00:00:00Z", "scope": "all"}]}` + "\n"
	if err := os.WriteFile(p, []byte(newer), 0o640); err != nil {
		t.Fatal(err)
	}
	rec, found, err := d.Load(id)
	if err != nil || !found || rec.Head != strings.Repeat("a", 40) || len(rec.Holes) != 1 {
		t.Fatalf("load: %+v %v %v", rec, found, err)
	}
	if err := d.Save(rec); err == nil || !strings.Contains(err.Error(), "newer seafbak") {
		t.Fatalf("save over a newer format: %v", err)
	}
	if raw, _ := os.ReadFile(p); string(raw) != newer {
		t.Errorf("the newer record was changed:\n%s", raw)
	}
}
