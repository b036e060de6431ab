package scan_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	gosync "sync"
	"testing"

	"seafbak/internal/mariadbtest"
	"seafbak/internal/seafgen"
	"seafbak/internal/testenv"
	"seafbak/scan"
	"seafbak/sync/object"
	"seafbak/sync/primary"
)

var srv *mariadbtest.Server

func TestMain(m *testing.M) { mariadbtest.Main(m, &srv) }

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

type fixture struct {
	env  *testenv.Env
	gen  *seafgen.Generator
	libs []*seafgen.Library
}

func newFixture(t *testing.T, n int) *fixture {
	f := &fixture{env: testenv.New(t, srv)}
	f.gen = seafgen.New(f.env.PrimaryDir)
	f.gen.BlockSize = 4096
	for i := 0; i < n; i++ {
		l, err := f.gen.NewLibrary(seafgen.LibraryOptions{Name: fmt.Sprintf("lib%d", i), Owner: "u@example.com"})
		must(t, err)
		_, err = l.Commit("files", seafgen.Put("a.txt", []byte(fmt.Sprint("a", i))), seafgen.Put("d/b.bin", bytes.Repeat([]byte{byte(i)}, 9000)))
		must(t, err)
		must(t, l.InsertRows(context.Background(), f.env.PrimaryDB))
		f.libs = append(f.libs, l)
	}
	return f
}

func (f *fixture) scanner(force bool) *scan.Scanner {
	return &scan.Scanner{Engine: f.env.Engine(force), Catalog: f.env.Catalog, State: f.env.State, Parallel: 3}
}

func (f *fixture) status(t *testing.T) (*scan.Report, string) {
	rep, err := scan.Status(context.Background(), f.env.Catalog, f.env.State)
	must(t, err)
	var buf bytes.Buffer
	must(t, rep.WriteText(&buf))
	return rep, buf.String()
}

func TestScanSyncsNewChangedAndDeleted(t *testing.T) {
	f := newFixture(t, 5)
	ctx := context.Background()
	rep, _ := f.status(t)
	if rep.Total != 5 || rep.Waiting != 5 {
		t.Fatalf("before: %+v", rep)
	}
	sum, err := f.scanner(false).Run(ctx)
	must(t, err)
	if sum.Checked != 5 || sum.Synced != 5 || sum.Failed != 0 || sum.Bytes == 0 {
		t.Fatalf("first scan: %+v", sum)
	}
	if !strings.HasPrefix(sum.String(), "seafbak scan: 5 libraries checked, 5 synced, 0 failed, 0 busy, 0 deleted") {
		t.Fatalf("summary line %q", sum.String())
	}
	for _, l := range f.libs {
		f.env.CompareWithPrimary(l.ID, l.StoreID, l.Head)
	}
	sum, err = f.scanner(false).Run(ctx)
	must(t, err)
	if sum.Synced != 0 || sum.Bytes != 0 {
		t.Fatalf("unchanged scan: %+v", sum)
	}
	// The backup database lost a library's rows (restored from an older dump): the next
	// scan puts them back without copying anything.
	_, err = f.env.BackupDB.Exec("DELETE FROM Branch WHERE repo_id = ?", f.libs[2].ID)
	must(t, err)
	sum, err = f.scanner(false).Run(ctx)
	must(t, err)
	if sum.Synced != 1 || sum.Bytes != 0 || f.env.BackupHead(f.libs[2].ID) != f.libs[2].Head {
		t.Fatalf("scan after lost rows: %+v", sum)
	}

	// One changed, one added, one deleted.
	_, err = f.libs[0].Commit("edit", seafgen.Put("a.txt", []byte("changed")))
	must(t, err)
	must(t, f.libs[0].InsertRows(ctx, f.env.PrimaryDB))
	added, err := f.gen.NewLibrary(seafgen.LibraryOptions{Name: "added"})
	must(t, err)
	must(t, added.InsertRows(ctx, f.env.PrimaryDB))
	must(t, seafgen.DeleteRows(ctx, f.env.PrimaryDB, f.libs[1].ID))
	rep, _ = f.status(t)
	if rep.Total != 5 || rep.Waiting != 2 || rep.Synchronized != 3 {
		t.Fatalf("status before second scan: %+v", rep)
	}
	sum, err = f.scanner(false).Run(ctx)
	must(t, err)
	if sum.Checked != 5 || sum.Synced != 2 || sum.Deleted != 1 || sum.Failed != 0 {
		t.Fatalf("second scan: %+v", sum)
	}
	f.env.CompareWithPrimary(f.libs[0].ID, f.libs[0].StoreID, f.libs[0].Head)
	f.env.CompareWithPrimary(f.libs[1].ID, f.libs[1].StoreID, f.libs[1].Head) // kept
	rep, _ = f.status(t)
	if rep.Synchronized != 5 || len(rep.Deleted) != 1 || rep.Deleted[0].RepoID != f.libs[1].ID {
		t.Fatalf("status after: %+v", rep)
	}
}

// One broken library fails alone; the others are backed up; status lists it.
func TestScanGoesOnPastFailures(t *testing.T) {
	f := newFixture(t, 3)
	bad := f.libs[1]
	root, err := bad.RootID(bad.Head)
	must(t, err)
	must(t, removeObject(f.env.PrimaryDir, object.KindFS, bad.StoreID, root))

	sum, err := f.scanner(false).Run(context.Background())
	must(t, err)
	if sum.Synced != 2 || sum.Failed != 1 || sum.Failures[0].RepoID != bad.ID || !strings.Contains(sum.Failures[0].Error, root) {
		t.Fatalf("scan: %+v", sum)
	}
	rep, text := f.status(t)
	if rep.FailedCount != 1 || rep.Synchronized != 2 || rep.Healthy() {
		t.Fatalf("status: %+v", rep)
	}
	lines := strings.Split(text, "\n")
	if lines[4] != "Number of libraries failed to sync: 1" || lines[6] != "List of libraries failed to sync:" ||
		!strings.HasPrefix(lines[7], bad.ID+" lib1 ") || !strings.Contains(lines[7], "fs object "+root) {
		t.Fatalf("status text:\n%s", text)
	}
}

// Scans and syncs of the same libraries at once: nothing is lost or half-recorded.
func TestConcurrentScansAndSyncs(t *testing.T) {
	f := newFixture(t, 6)
	ctx := context.Background()
	var wg gosync.WaitGroup
	errs := make(chan error, 32)
	for i := 0; i < 3; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := f.scanner(false).Run(ctx); err != nil {
				errs <- err
			}
		}()
	}
	for _, l := range f.libs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := f.env.Engine(false).Sync(ctx, l.ID); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	rep, _ := f.status(t)
	if rep.Synchronized != 6 {
		t.Fatalf("%+v", rep)
	}
	for _, l := range f.libs {
		f.env.CompareWithPrimary(l.ID, l.StoreID, l.Head)
		if f.env.BackupHead(l.ID) != l.Head {
			t.Fatalf("backup db head of %s", l.ID)
		}
	}
}

// A damaged state record fails only its own library: the scan backs up the others, says
// which file and what to do, and leaves the file as it is. Once it is moved aside, the
// next scan backs the library up again.
func TestScanGoesOnPastDamagedRecord(t *testing.T) {
	f := newFixture(t, 3)
	ctx := context.Background()
	sum, err := f.scanner(false).Run(ctx)
	must(t, err)
	if sum.Synced != 3 {
		t.Fatalf("first scan: %+v", sum)
	}
	for i, l := range f.libs {
		_, err := l.Commit("edit", seafgen.Put("a.txt", []byte(fmt.Sprint("changed", i))))
		must(t, err)
		must(t, l.InsertRows(ctx, f.env.PrimaryDB))
	}
	bad := f.libs[1]
	oldHead := f.env.BackupHead(bad.ID)
	path := filepath.Join(f.env.StateDir, "libraries", bad.ID+".json")
	data, err := os.ReadFile(path)
	must(t, err)
	damaged := data[:len(data)/2]
	must(t, os.WriteFile(path, damaged, 0o640))

	sum, err = f.scanner(false).Run(ctx)
	must(t, err)
	if sum.Checked != 3 || sum.Synced != 2 || sum.Failed != 1 || len(sum.Failures) != 1 {
		t.Fatalf("scan with a damaged record: %+v", sum)
	}
	fail := sum.Failures[0]
	if fail.RepoID != bad.ID || fail.Name != "lib1" || !strings.Contains(fail.Error, path+" is damaged") ||
		!strings.Contains(fail.Error, "mv "+path+" "+path+".damaged") || !strings.Contains(fail.Error, "seafbak sync "+bad.ID) {
		t.Fatalf("failure: %+v", fail)
	}
	for _, l := range []*seafgen.Library{f.libs[0], f.libs[2]} {
		f.env.CompareWithPrimary(l.ID, l.StoreID, l.Head)
		if f.env.BackupHead(l.ID) != l.Head {
			t.Fatalf("backup db head of %s not moved", l.ID)
		}
	}
	if f.env.BackupHead(bad.ID) != oldHead {
		t.Fatal("the damaged library's head moved")
	}
	if now, err := os.ReadFile(path); err != nil || !bytes.Equal(now, damaged) {
		t.Fatalf("damaged record changed: %v\n%s", err, now)
	}

	// status: failed, in text and JSON, with the file named; exit 1 (not healthy).
	for _, cat := range []primary.Catalog{f.env.Catalog, nil} {
		rep, err := scan.Status(ctx, cat, f.env.State)
		must(t, err)
		var buf bytes.Buffer
		must(t, rep.WriteText(&buf))
		text := buf.String()
		if rep.Healthy() || rep.FailedCount != 1 || rep.Total != 3 || len(rep.FailedList) != 1 || rep.FailedList[0].RepoID != bad.ID {
			t.Fatalf("status (offline %v): %+v", rep.Offline, rep)
		}
		lines := strings.Split(text, "\n")
		if lines[4] != "Number of libraries failed to sync: 1" || !strings.HasPrefix(lines[7], bad.ID+" ") || !strings.Contains(lines[7], " - state: library "+bad.ID+": record "+path+" is damaged") {
			t.Fatalf("status text (offline %v):\n%s", rep.Offline, text)
		}
		js, err := json.Marshal(rep)
		must(t, err)
		if !strings.Contains(string(js), `"failed":1`) || !strings.Contains(string(js), path+".damaged") {
			t.Fatalf("status json (offline %v): %s", rep.Offline, js)
		}
	}
	if now, _ := os.ReadFile(path); !bytes.Equal(now, damaged) {
		t.Fatal("status changed the damaged record")
	}

	// The fix the message gives.
	must(t, os.Rename(path, path+".damaged"))
	sum, err = f.scanner(false).Run(ctx)
	must(t, err)
	if sum.Synced != 1 || sum.Failed != 0 {
		t.Fatalf("scan after the record was moved aside: %+v", sum)
	}
	f.env.CompareWithPrimary(bad.ID, bad.StoreID, bad.Head)
	if rep, _ := f.status(t); !rep.Healthy() || rep.Synchronized != 3 {
		t.Fatalf("status after the fix: %+v", rep)
	}
}

// A library backed up with holes (sync --force) is synchronized, but counted and listed
// on its own, and status is not healthy until a later sync fills the holes.
func TestStatusShowsHoles(t *testing.T) {
	f := newFixture(t, 3)
	ctx := context.Background()
	lib := f.libs[2]
	_, blocks := f.env.PrimaryFile(lib, "a.txt")
	blockPath := testenv.ObjectPath(f.env.PrimaryDir, object.KindBlock, lib.StoreID, blocks[0])
	block, err := os.ReadFile(blockPath)
	must(t, err)
	must(t, os.Remove(blockPath))

	sum, err := f.scanner(true).Run(ctx)
	must(t, err)
	if sum.Synced != 3 || sum.Failed != 0 {
		t.Fatalf("scan --force: %+v", sum)
	}
	rep, text := f.status(t)
	t.Logf("status with a hole:\n%s", text)
	if rep.Healthy() || rep.WithHoles != 1 || rep.Synchronized != 3 || rep.FailedCount != 0 || rep.Waiting != 0 {
		t.Fatalf("status: %+v", rep)
	}
	lines := strings.Split(text, "\n")
	want := []string{
		"Total number of libraries: 3",
		"Number of synchronized libraries: 3",
		"Number of libraries waiting for sync: 0",
		"Number of libraries syncing: 0",
		"Number of libraries failed to sync: 0",
		"List of syncing libraries:",
		"List of libraries failed to sync:",
		"Number of libraries synchronized with holes: 1",
		"List of libraries with holes:",
		fmt.Sprintf("%s lib2 1 hole, first: block %s at %q", lib.ID, blocks[0], "/a.txt"),
		"",
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Fatalf("status text:\n%s\nwant\n%s", text, strings.Join(want, "\n"))
	}
	js, err := json.Marshal(rep)
	must(t, err)
	if !strings.Contains(string(js), `"with_holes":1`) || !strings.Contains(string(js), `"holes":[{"repo_id":"`+lib.ID) {
		t.Fatalf("status json: %s", js)
	}

	// The primary is repaired: a scan right away leaves the hole to the hourly retry
	// (scan.RetryEvery: each retry walks the library), the first scan an hour on fills
	// it and status is healthy.
	must(t, os.WriteFile(blockPath, block, 0o644))
	sum, err = f.scanner(false).Run(ctx)
	must(t, err)
	if sum.Synced != 0 || sum.Retried != 0 {
		t.Fatalf("scan right after the sync that recorded the hole: %+v", sum)
	}
	rec, _, err := f.env.State.Load(lib.ID)
	must(t, err)
	rec.LastAttempt = rec.LastAttempt.Add(-scan.RetryEvery)
	must(t, f.env.State.Save(rec))
	sum, err = f.scanner(false).Run(ctx)
	must(t, err)
	if sum.Synced != 1 || sum.Failed != 0 {
		t.Fatalf("scan after repair: %+v", sum)
	}
	f.env.CompareWithPrimary(lib.ID, lib.StoreID, lib.Head)
	rep, text = f.status(t)
	if !rep.Healthy() || rep.WithHoles != 0 || !strings.Contains(text, "Number of libraries synchronized with holes: 0\nList of libraries with holes:\n") {
		t.Fatalf("status after repair: %+v\n%s", rep, text)
	}
}
