package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"seafbak/internal/mariadbtest"
	"seafbak/internal/testenv"
	"seafbak/state"
)

// A backup disk that is not mounted (backup.data_dir empty, or a wrong path) beside a
// state that records backed-up libraries: every command that would have made a new
// store there refuses (exit 2), naming the store and the likely cause, and makes
// nothing. scan would have copied every library's whole history onto the wrong
// filesystem; verify reported every library missing everything.
func TestCommandsRefuseAStoreThatIsNotThere(t *testing.T) {
	env := testenv.New(t, srv)
	env.LoadRealLibrary()
	cfg := writeConfig(t, env)
	if code, out, errs := seafbak("--config", cfg, "scan"); code != 0 {
		t.Fatalf("scan: %d\n%s%s", code, out, errs)
	}
	unmounted := filepath.Join(t.TempDir(), "mnt", "seafile-data")
	if err := os.MkdirAll(unmounted, 0o755); err != nil { // the mount point, empty
		t.Fatal(err)
	}
	cfgUnmounted := writeStoreConfig(t, env, "  data_dir: "+unmounted, env.StateDir)
	for _, args := range [][]string{
		{"scan"},
		{"sync", testenv.RealLibraryID},
		{"verify"},
		{"verify", "--repair"},
		{"restore", "library", testenv.RealLibraryID, "--to", filepath.Join(t.TempDir(), "out")},
	} {
		code, out, errs := seafbak(append([]string{"--config", cfgUnmounted}, args...)...)
		if code != 2 || !strings.Contains(errs, "is the backup disk mounted") || !strings.Contains(errs, unmounted) {
			t.Errorf("%v with the store not there: %d\n%s%s", args, code, out, errs)
		}
		if ents, err := os.ReadDir(unmounted); err != nil || len(ents) != 0 {
			t.Errorf("%v made %v in the empty mount point (%v)", args, ents, err)
		}
	}
	// The state on the same disk, not mounted either (so made anew, empty): the backup
	// database's heads tell (found by review: the scan copied everything again onto the
	// mount point).
	mnt := filepath.Join(t.TempDir(), "mnt")
	if err := os.MkdirAll(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	cfgBoth := writeStoreConfig(t, env, "  data_dir: "+filepath.Join(mnt, "seafile-data"), filepath.Join(mnt, "state"))
	// What an admin looking into it runs first reads, and makes nothing there: a
	// storage/ made by verify or a restore would let the next scan through (found by
	// review: the scan then copied every library onto the root filesystem).
	readers := [][]string{
		{"verify"},
		{"restore", "library", testenv.RealLibraryID, "--list"},
		{"restore", "library", testenv.RealLibraryID, "--to", filepath.Join(t.TempDir(), "out2")},
		{"status", "--offline"},
	}
	for _, args := range readers {
		code, out, errs := seafbak(append([]string{"--config", cfgBoth}, args...)...)
		if code != 2 || !strings.Contains(errs, "no seafbak state there") {
			t.Errorf("%v with the store and the state not there: %d\n%s%s", args, code, out, errs)
		}
		if ents, err := os.ReadDir(mnt); err != nil || len(ents) != 0 {
			t.Errorf("%v made %v in the empty mount point (%v)", args, ents, err)
		}
	}
	for _, args := range [][]string{{"scan"}, {"sync", testenv.RealLibraryID}} {
		code, out, errs := seafbak(append([]string{"--config", cfgBoth}, args...)...)
		if code != 2 || !strings.Contains(errs, "the backup database says libraries were backed up") {
			t.Errorf("%v with the store and the state not there: %d\n%s%s", args, code, out, errs)
		}
	}
	// scan made the state anew (empty) before it refused: the readers still refuse.
	for _, args := range readers {
		code, out, errs := seafbak(append([]string{"--config", cfgBoth}, args...)...)
		if code != 2 || !strings.Contains(errs, "mounted") {
			t.Errorf("%v with the store not there and the state empty: %d\n%s%s", args, code, out, errs)
		}
	}
	if _, err := os.Stat(filepath.Join(mnt, "seafile-data", "storage")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a store was made on the mount point: %v", err)
	}
	if code, out, errs := seafbak("--config", cfgBoth, "scan"); code != 2 {
		t.Errorf("scan after the readers: %d\n%s%s", code, out, errs)
	}
	// A state that has backed up nothing makes its store, as on the first day (a
	// backup database of its own, with no head yet).
	env.BackupDBName = mariadbtest.DBName(t) + "_fresh"
	if err := srv.CreateDatabase(env.BackupDBName, mariadbtest.SchemaFile("seafile.sql")); err != nil {
		t.Fatal(err)
	}
	fresh := filepath.Join(t.TempDir(), "seafile-data")
	cfgFresh := writeStoreConfig(t, env, "  data_dir: "+fresh, filepath.Join(t.TempDir(), "state"))
	if code, out, errs := seafbak("--config", cfgFresh, "scan"); code != 0 {
		t.Fatalf("a first scan into a new store: %d\n%s%s", code, out, errs)
	}
}

// backup.db naming the primary's own seafile database is refused before any sync:
// sync writes the backup's heads into backup.db's Branch rows, which would move the
// primary's libraries back to the head a long sync started from. The config refuses
// the same address; here the same socket is named another way, so the servers are asked.
func TestBackupDBThatIsThePrimarysIsRefused(t *testing.T) {
	env := testenv.New(t, srv)
	env.LoadRealLibrary()
	sameSocket := filepath.Dir(srv.Socket) + "/./" + filepath.Base(srv.Socket) // not Join: it cleans
	text := fmt.Sprintf(`primary:
  db: "root@unix(%[1]s)/%[2]s"
  data_dir: %[3]s
backup:
  data_dir: %[4]s
  db: "root@unix(%[5]s)/%[2]s"
state: %[6]s
`, srv.Socket, env.PrimaryDBName, env.PrimaryDir, env.BackupDir, sameSocket, env.StateDir)
	cfg := filepath.Join(t.TempDir(), "seafbak.yml")
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	primaryHead := func() string {
		var h string
		if err := env.PrimaryDB.QueryRow("SELECT commit_id FROM Branch WHERE repo_id = ? AND name = 'master'", testenv.RealLibraryID).Scan(&h); err != nil {
			t.Fatal(err)
		}
		return h
	}
	head := primaryHead()
	for _, args := range [][]string{{"scan"}, {"sync", testenv.RealLibraryID}} {
		code, out, errs := seafbak(append([]string{"--config", cfg}, args...)...)
		if code != 2 || !strings.Contains(errs, "is the primary's seafile database") {
			t.Errorf("%v with backup.db the primary's: %d\n%s%s", args, code, out, errs)
		}
	}
	if got := primaryHead(); got != head {
		t.Errorf("the primary's head moved: %s, was %s", got, head)
	}
}

// backup.data_dir reaching the primary's seafile-data by another name (a symlink to
// it, a directory inside it through a symlink, a bind mount of it) is refused before
// anything is written: the config sees only names, so the commands ask the filesystem.
// Before, a trailing slash alone let a scan use the primary's storage as the backup's
// and make seafbak-tmp/ inside the primary's seafile-data.
func TestBackupStoreInsideThePrimarysIsRefused(t *testing.T) {
	env := testenv.New(t, srv)
	env.LoadRealLibrary()
	links := t.TempDir()
	same := filepath.Join(links, "same")
	if err := os.Symlink(env.PrimaryDir, same); err != nil {
		t.Fatal(err)
	}
	cases := map[string]string{
		"a symlink to it":         same,
		"inside it via a symlink": filepath.Join(same, "backup"),
		"a trailing slash":        env.PrimaryDir + "/",
		"the bind mount of it":    "",
		"inside its bind mount":   "",
	}
	if os.Geteuid() == 0 {
		bind := filepath.Join(t.TempDir(), "bind")
		if err := os.Mkdir(bind, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := unix.Mount(env.PrimaryDir, bind, "", unix.MS_BIND, ""); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { unix.Unmount(bind, unix.MNT_DETACH) })
		cases["the bind mount of it"] = bind
		cases["inside its bind mount"] = filepath.Join(bind, "storage", "backup")
	}
	for name, dir := range cases {
		if dir == "" {
			continue // not root: no bind mount
		}
		cfg := writeStoreConfig(t, env, "  data_dir: "+dir, filepath.Join(t.TempDir(), "state"))
		code, out, errs := seafbak("--config", cfg, "scan")
		if code != 2 || !strings.Contains(errs, "apart from primary.data_dir") && !strings.Contains(errs, "one is inside the other") {
			t.Errorf("%s: scan: %d\n%s%s", name, code, out, errs)
		}
	}
	if _, err := os.Stat(filepath.Join(env.PrimaryDir, "seafbak-tmp")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("seafbak-tmp made in the primary's seafile-data: %v", err)
	}
	if _, err := os.Stat(filepath.Join(env.PrimaryDir, "backup")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a store made inside the primary's seafile-data: %v", err)
	}
}

// verify and store copy against a state that records nothing (a wrong state: path,
// or its disk not mounted and the directory made anew) exit 2 saying so: a nightly
// verify reported "0 libraries" and exit 0, and a copy copied nothing, successfully
// (found by review).
func TestVerifyAndCopyRefuseAnEmptyState(t *testing.T) {
	env := testenv.New(t, srv) // nothing backed up: the backup database has no head
	empty := filepath.Join(t.TempDir(), "state")
	cfg := writeStoreConfig(t, env, "  data_dir: "+env.BackupDir, empty)
	// No state directory at all: verify makes none (a state made on the mount point
	// would hide it from the next scan's check).
	if code, out, errs := seafbak("--config", cfg, "verify"); code != 2 || !strings.Contains(errs, "no seafbak state there") || !strings.Contains(errs, empty) {
		t.Errorf("verify, no state: %d\n%s%s", code, out, errs)
	}
	if _, err := os.Stat(empty); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("verify made the state directory: %v", err)
	}
	if _, err := state.Open(empty); err != nil {
		t.Fatal(err)
	}
	if code, out, errs := seafbak("--config", cfg, "verify"); code != 2 || !strings.Contains(errs, "records no library") || !strings.Contains(errs, empty) {
		t.Errorf("verify: %d\n%s%s", code, out, errs)
	}
	dest := writeStoreConfig(t, env, "  data_dir: "+filepath.Join(t.TempDir(), "seafile-data"), empty)
	if code, out, errs := seafbak("--config", cfg, "store", "copy", "--to", dest); code != 2 || !strings.Contains(errs, "records no library") {
		t.Errorf("store copy: %d\n%s%s", code, out, errs)
	}
}
