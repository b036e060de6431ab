package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"seafbak/internal/seafgen"
	"seafbak/internal/testenv"
	"seafbak/sync/object"
)

// A copy into a filesystem store that a reboot interrupted (its marker names another
// boot) re-checks the destination by itself and fetches what the crash lost; one that
// only the process's death interrupted (this boot) trusts presence; a finished copy
// leaves no marker.
func TestCLIStoreCopyAfterReboot(t *testing.T) {
	env := testenv.New(t, srv)
	env.LoadRealLibrary()
	cfg := writeConfig(t, env)
	if code, out, errs := seafbak("--config", cfg, "scan"); code != 0 {
		t.Fatalf("scan: %d\n%s%s", code, out, errs)
	}
	dest := filepath.Join(t.TempDir(), "seafile-data")
	cfgDest := writeStoreConfig(t, env, "  data_dir: "+dest, env.StateDir)
	boot := filepath.Join(t.TempDir(), "boot_id")
	old := bootIDPath
	bootIDPath = boot
	t.Cleanup(func() { bootIDPath = old })
	if err := os.WriteFile(boot, []byte("boot-1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	marker := filepath.Join(dest, copyMarkerName)
	copyJSON := func(what string, wantBlocks int64) {
		t.Helper()
		code, out, errs := seafbak("--config", cfg, "store", "copy", "--to", cfgDest, "--json")
		if code != 0 {
			t.Fatalf("%s: %d\n%s%s", what, code, out, errs)
		}
		if r := copyResult(t, out); r.Copied.Blocks != wantBlocks {
			t.Fatalf("%s: copied %+v, want %d blocks", what, r.Copied, wantBlocks)
		}
		if _, err := os.Stat(marker); !os.IsNotExist(err) {
			t.Fatalf("%s: the marker is left: %v", what, err)
		}
	}
	copyJSON("first copy", 12)

	// Lose a block, as a crash of batch durability can, and leave a marker.
	want := fsStoreObjects(t, env.BackupDir)
	var lost string
	for k := range want {
		if strings.HasPrefix(k, "blocks/") {
			lost = k
			break
		}
	}
	parts := strings.Split(lost, "/")
	losePath := testenv.ObjectPath(dest, object.KindBlock, parts[1], parts[2])
	lose := func(markerBoot string) {
		t.Helper()
		if err := os.Remove(losePath); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(marker, []byte(markerBoot+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Same boot: only the process died; the page cache kept every write, so presence is
	// trusted and the lost block (which a process death cannot lose) is not looked for.
	lose("boot-1")
	copyJSON("rerun in the same boot", 0)
	// Another boot: everything there is re-checked, and the block comes back.
	if err := os.WriteFile(marker, []byte("boot-0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	copyJSON("rerun after a reboot", 1)
	sameStoreObjects(t, "after the reboot's re-check", want, fsStoreObjects(t, dest))
}

// Two copies into one filesystem store do not run at once: they would share its marker,
// and the first to finish would remove it while the other still had objects unflushed.
// The second is refused (exit 2) and names what to do; once the first is done it runs.
func TestCLIStoreCopyRefusesASecondCopyIntoTheSameStore(t *testing.T) {
	env := testenv.New(t, srv)
	env.LoadRealLibrary()
	cfg := writeConfig(t, env)
	if code, out, errs := seafbak("--config", cfg, "scan"); code != 0 {
		t.Fatalf("scan: %d\n%s%s", code, out, errs)
	}
	dest := filepath.Join(t.TempDir(), "seafile-data")
	if err := os.MkdirAll(dest, 0o755); err != nil {
		t.Fatal(err)
	}
	cfgDest := writeStoreConfig(t, env, "  data_dir: "+dest, env.StateDir)
	other, err := os.OpenFile(filepath.Join(dest, copyLockName), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Flock(int(other.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	code, out, errs := seafbak("--config", cfg, "store", "copy", "--to", cfgDest)
	if code != 2 || !strings.Contains(errs, "another seafbak store copy is writing into this store") {
		t.Fatalf("a copy beside another: %d\n%s%s", code, out, errs)
	}
	if _, err := os.Stat(filepath.Join(dest, copyMarkerName)); !os.IsNotExist(err) {
		t.Fatalf("the refused copy touched the marker: %v", err)
	}
	other.Close() // the first copy ends
	if code, out, errs := seafbak("--config", cfg, "store", "copy", "--to", cfgDest); code != 0 {
		t.Fatalf("the copy after the other ended: %d\n%s%s", code, out, errs)
	}
}

// The re-check a reboot made owed is kept until a copy of every library completes: a
// copy given one library re-checks only that one and leaves the marker of the earlier
// boot as it was, so the next copy (here of everything) still re-checks and finds the
// other library's damage. Before, the marker was rewritten with this boot's id at the
// start, and went with the partial copy: the full copy trusted the damaged object, and
// a copy killed mid-re-check left a marker of this boot (found by review).
func TestCLIStoreCopyKeepsTheOwedRecheckUntilACompleteCopy(t *testing.T) {
	env := testenv.New(t, srv)
	g := seafgen.New(env.PrimaryDir)
	var libs []*seafgen.Library
	for _, name := range []string{"A", "B"} {
		l, err := g.NewLibrary(seafgen.LibraryOptions{Name: name, Owner: "u@example.com"})
		if err != nil {
			t.Fatal(err)
		}
		testenv.Commit(t, l, "one", seafgen.Put(name+".txt", []byte(name+" bytes")))
		libs = append(libs, l)
	}
	a, b := libs[0], libs[1]
	env.Publish(a, b)
	cfg := writeConfig(t, env)
	if code, out, errs := seafbak("--config", cfg, "scan"); code != 0 {
		t.Fatalf("scan: %d\n%s%s", code, out, errs)
	}
	dest := filepath.Join(t.TempDir(), "seafile-data")
	cfgDest := writeStoreConfig(t, env, "  data_dir: "+dest, env.StateDir)
	boot := filepath.Join(t.TempDir(), "boot_id")
	old := bootIDPath
	bootIDPath = boot
	t.Cleanup(func() { bootIDPath = old })
	if err := os.WriteFile(boot, []byte("boot-1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out, errs := seafbak("--config", cfg, "store", "copy", "--to", cfgDest); code != 0 {
		t.Fatalf("copy: %d\n%s%s", code, out, errs)
	}
	// An earlier boot's copy died with the machine: B's block named but empty.
	_, blocks := env.PrimaryFile(b, "B.txt")
	damaged := testenv.ObjectPath(dest, object.KindBlock, b.StoreID, blocks[0])
	if err := os.Truncate(damaged, 0); err != nil {
		t.Fatal(err)
	}
	marker := filepath.Join(dest, copyMarkerName)
	if err := os.WriteFile(marker, []byte("boot-0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out, errs := seafbak("--config", cfg, "store", "copy", "--to", cfgDest, a.ID); code != 0 {
		t.Fatalf("copy of A alone: %d\n%s%s", code, out, errs)
	}
	if got, err := os.ReadFile(marker); err != nil || strings.TrimSpace(string(got)) != "boot-0" {
		t.Fatalf("after a copy of A alone, the marker is %q (%v), want the earlier boot's", got, err)
	}
	if code, out, errs := seafbak("--config", cfg, "store", "copy", "--to", cfgDest); code != 0 {
		t.Fatalf("full copy: %d\n%s%s", code, out, errs)
	}
	if got, err := os.ReadFile(damaged); err != nil || string(got) != "B bytes" {
		t.Errorf("after the full copy, B's damaged block holds %q (%v)", got, err)
	}
	if _, err := os.Stat(marker); !os.IsNotExist(err) {
		t.Errorf("the complete copy left the marker: %v", err)
	}
}
