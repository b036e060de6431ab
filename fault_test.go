package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"seafbak/internal/seafgen"
	"seafbak/internal/testenv"
)

// countFiles counts regular files under dir (0 if it does not exist).
func countFiles(dir string) int {
	n := 0
	filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n++
		}
		return nil
	})
	return n
}

// killMidway starts `seafbak sync id`, waits until it has written at least `after`
// blocks, and kills it with SIGKILL. It reports whether the kill landed mid-sync.
func killMidway(t *testing.T, bin, cfg, id, blocksDir string, after int) bool {
	t.Helper()
	cmd := exec.Command(bin, "--config", cfg, "sync", id)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-done:
			t.Logf("sync finished before the kill: %v", err)
			return false
		default:
		}
		if countFiles(blocksDir) >= after {
			cmd.Process.Signal(syscall.SIGKILL)
			<-done
			return true
		}
		time.Sleep(2 * time.Millisecond)
	}
	cmd.Process.Kill()
	t.Fatal("sync made no progress in 60 s")
	return false
}

// kill -9 of a running sync, first backup and then an incremental one: the backup
// database and state show the old head or the new one, never a head with missing
// objects; the rerun completes and re-checks what the dead attempt wrote.
func TestKill9DuringSync(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and copies a large library")
	}
	bin := buildBinary(t)
	for _, source := range []string{"dir", "http"} {
		t.Run(source, func(t *testing.T) { kill9DuringSync(t, bin, source) })
	}
}

// newSourceEnv is an empty primary and backup, read through source ("dir" or "http"),
// and a config for the seafbak binary.
func newSourceEnv(t *testing.T, source string) (*testenv.Env, string) {
	env := testenv.New(t, srv)
	if source == "http" {
		env.StartFileServer()
	}
	return env, writeConfig(t, env)
}

func kill9DuringSync(t *testing.T, bin, source string) {
	env, cfg := newSourceEnv(t, source)
	g := seafgen.New(env.PrimaryDir)
	g.BlockSize = 64 << 10
	lib, err := g.NewLibrary(seafgen.LibraryOptions{Name: "Big"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lib.CommitBulk("bulk", 1000, 100<<20, 1); err != nil {
		t.Fatal(err)
	}
	if err := lib.InsertRows(context.Background(), env.PrimaryDB); err != nil {
		t.Fatal(err)
	}
	blocksDir := filepath.Join(env.BackupDir, "storage", "blocks", lib.StoreID)

	checkConsistent := func(stage string) string {
		t.Helper()
		rec, _, err := env.State.Load(lib.ID)
		if err != nil {
			t.Fatal(err)
		}
		dbHead := env.BackupHead(lib.ID)
		if dbHead != rec.Head && dbHead != lib.Head {
			t.Fatalf("%s: backup db head %q is neither the state's %q nor the new one", stage, dbHead, rec.Head)
		}
		for _, h := range []string{rec.Head, dbHead} {
			if h != "" {
				env.CompareWithPrimary(lib.ID, lib.StoreID, h)
			}
		}
		return rec.Head
	}

	if !killMidway(t, bin, cfg, lib.ID, blocksDir, 200) {
		t.Skip("machine too fast to kill mid-sync")
	}
	if h := checkConsistent("after kill of the first sync"); h != "" {
		t.Fatalf("state moved to %s during a killed first sync", h)
	}
	out, err := exec.Command(bin, "--config", cfg, "-v", "sync", lib.ID).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "re-checking") {
		t.Fatalf("rerun: %v\n%s", err, out)
	}
	env.CompareWithPrimary(lib.ID, lib.StoreID, lib.Head)
	first := lib.Head

	// An incremental sync killed midway leaves the first head in place.
	if _, err := lib.CommitBulk("more", 600, 60<<20, 2); err != nil {
		t.Fatal(err)
	}
	if err := lib.InsertRows(context.Background(), env.PrimaryDB); err != nil {
		t.Fatal(err)
	}
	before := countFiles(blocksDir)
	if killMidway(t, bin, cfg, lib.ID, blocksDir, before+200) {
		if h := checkConsistent("after kill of the second sync"); h != first {
			t.Fatalf("state head %s, want the old head %s", h, first)
		}
	}
	if out, err := exec.Command(bin, "--config", cfg, "sync", lib.ID).CombinedOutput(); err != nil {
		t.Fatalf("rerun: %v\n%s", err, out)
	}
	env.CompareWithPrimary(lib.ID, lib.StoreID, lib.Head)
	if env.BackupHead(lib.ID) != lib.Head {
		t.Fatal("backup db not at the new head")
	}
}

// Many processes at once (hooks for each library, cron scans, a person's status):
// all finish, nothing is lost.
func TestManyInvocationsAtOnce(t *testing.T) {
	bin := buildBinary(t)
	for _, source := range []string{"dir", "http"} {
		t.Run(source, func(t *testing.T) { manyInvocationsAtOnce(t, bin, source) })
	}
}

func manyInvocationsAtOnce(t *testing.T, bin, source string) {
	env, cfg := newSourceEnv(t, source)
	g := seafgen.New(env.PrimaryDir)
	g.BlockSize = 4096
	var libs []*seafgen.Library
	for i := 0; i < 6; i++ {
		l, err := g.NewLibrary(seafgen.LibraryOptions{Name: fmt.Sprint("lib", i)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.CommitBulk("files", 200, 2<<20, uint64(i)); err != nil {
			t.Fatal(err)
		}
		if err := l.InsertRows(context.Background(), env.PrimaryDB); err != nil {
			t.Fatal(err)
		}
		libs = append(libs, l)
	}
	var cmds []*exec.Cmd
	for round := 0; round < 2; round++ {
		for _, l := range libs {
			cmds = append(cmds, exec.Command(bin, "--config", cfg, "sync", l.ID))
		}
		cmds = append(cmds, exec.Command(bin, "--config", cfg, "scan"))
		cmds = append(cmds, exec.Command(bin, "--config", cfg, "status"))
	}
	outs := make([][]byte, len(cmds))
	errs := make([]error, len(cmds))
	done := make(chan int)
	for i, c := range cmds {
		go func() {
			outs[i], errs[i] = c.CombinedOutput()
			done <- i
		}()
	}
	for range cmds {
		<-done
	}
	for i, c := range cmds {
		isStatus := c.Args[len(c.Args)-1] == "status"
		if errs[i] != nil && !isStatus {
			t.Errorf("%v: %v\n%s", c.Args[3:], errs[i], outs[i])
		}
	}
	code, out, _ := seafbak("--config", cfg, "status")
	if code != 0 || !strings.Contains(out, "Number of synchronized libraries: 6\n") {
		t.Fatalf("status: %d\n%s", code, out)
	}
	for _, l := range libs {
		env.CompareWithPrimary(l.ID, l.StoreID, l.Head)
		if env.BackupHead(l.ID) != l.Head {
			t.Fatalf("backup db head of %s", l.ID)
		}
	}
}

// The database going away mid-life: sync fails with a clear error and exit 1, moves
// nothing; once it is back, sync completes.
func TestDatabaseDown(t *testing.T) {
	own, err := startOwnServer(t)
	if err != nil {
		t.Fatal(err)
	}
	env := testenv.New(t, own)
	env.LoadRealLibrary()
	cfg := writeConfigFor(t, env, own.Socket)
	if err := own.Kill(); err != nil {
		t.Fatal(err)
	}
	code, _, errs := seafbak("--config", cfg, "sync", testenv.RealLibraryID)
	if code != 2 || !strings.Contains(errs, "primary database") {
		t.Fatalf("sync with the database down: %d %s", code, errs)
	}
	code, _, _ = seafbak("--config", cfg, "status")
	if code != 2 {
		t.Fatalf("status with the database down: %d", code)
	}
	if err := own.Restart(); err != nil {
		t.Fatal(err)
	}
	code, out, errs := seafbak("--config", cfg, "sync", testenv.RealLibraryID)
	if code != 0 {
		t.Fatalf("sync after restart: %d %s %s", code, out, errs)
	}
	env.CompareWithPrimary(testenv.RealLibraryID, testenv.RealLibraryID, "5715208e10e33de4ac89cd441c52d948df77125b")
}

// kill -9 of a scan of many small libraries, whose syncs share their flushes (markers,
// store, rows, records): every library's recorded head, in the state and in the backup
// database, is none or the primary's with every object; the syncs in flight left their
// markers, and the next scan re-checks those libraries and completes them all.
func TestKill9DuringScan(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and syncs hundreds of libraries")
	}
	bin := buildBinary(t)
	env, cfg := newSourceEnv(t, "dir")
	g := seafgen.New(env.PrimaryDir)
	var libs []*seafgen.Library
	for i := range 400 {
		lib, err := g.NewLibrary(seafgen.LibraryOptions{Name: fmt.Sprint("small ", i)})
		if err != nil {
			t.Fatal(err)
		}
		testenv.Commit(t, lib, "file", seafgen.Put("readme.txt", []byte(fmt.Sprint("library ", i))))
		libs = append(libs, lib)
	}
	env.Publish(libs...)
	records := filepath.Join(env.StateDir, "libraries")
	dirty := filepath.Join(env.StateDir, "dirty")
	cmd := exec.Command(bin, "--config", cfg, "scan")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	killed := false
	for deadline := time.Now().Add(60 * time.Second); !killed && time.Now().Before(deadline); {
		select {
		case err := <-done:
			t.Skipf("scan finished before the kill (%v): machine too fast", err)
		default:
		}
		// Killed with syncs copying: markers on disk. Records alone are not enough: on a
		// loaded machine the 50th record can land while every sync in flight is past its
		// flush (markers cleared) and those started after have not marked yet.
		recs, _ := filepath.Glob(filepath.Join(records, "*.json")) // not the temp files
		if len(recs) >= 50 && countFiles(dirty) > 0 {
			cmd.Process.Signal(syscall.SIGKILL)
			<-done
			killed = true
		}
		time.Sleep(time.Millisecond)
	}
	if !killed {
		cmd.Process.Kill()
		t.Fatal("in 60 s the scan never had 50 libraries recorded and syncs in flight")
	}
	markers := countFiles(dirty)
	recorded := 0
	for _, lib := range libs {
		rec, _, err := env.State.Load(lib.ID)
		if err != nil {
			t.Fatal(err)
		}
		for what, head := range map[string]string{"state": rec.Head, "backup db": env.BackupHead(lib.ID)} {
			switch head {
			case "":
			case lib.Head:
				env.CompareWithPrimary(lib.ID, lib.StoreID, head)
			default:
				t.Fatalf("%s: %s records %s, want %s or none", lib.Name, what, head, lib.Head)
			}
		}
		if rec.Head != "" {
			recorded++
		}
	}
	t.Logf("killed with %d of %d libraries recorded and %d markers left", recorded, len(libs), markers)
	if markers == 0 {
		t.Fatal("no sync was in flight at the kill: no marker left")
	}
	out, err := exec.Command(bin, "--config", cfg, "-v", "scan").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "re-checking") {
		t.Fatalf("scan after the kill did not re-check (%v):\n%s", err, out)
	}
	for _, lib := range libs {
		env.CompareWithPrimary(lib.ID, lib.StoreID, lib.Head)
		if rec, _, _ := env.State.Load(lib.ID); rec.Head != lib.Head || env.BackupHead(lib.ID) != lib.Head {
			t.Fatalf("%s: state %s, db %s after the second scan, want %s", lib.Name, rec.Head, env.BackupHead(lib.ID), lib.Head)
		}
	}
	if n := countFiles(filepath.Join(env.StateDir, "dirty")); n != 0 {
		t.Fatalf("%d markers left after a clean scan", n)
	}
}
