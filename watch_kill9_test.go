package main

import (
	"context"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"seafbak/internal/seafgen"
	"seafbak/internal/testenv"
	"seafbak/restore"
)

// kill -9 of `seafbak watch` mid-sync, first backup and then an incremental one: the
// state and the backup database agree on a head (or the database is one step ahead),
// whatever is recorded verifies, and a restarted watch backs up the primary's head
// and stops with exit 0 on SIGTERM.
func TestWatchKill9MidSync(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and copies a large library")
	}
	bin := buildBinary(t)
	env, cfg := newSourceEnv(t, "dir")
	g := seafgen.New(env.PrimaryDir)
	g.BlockSize = 64 << 10
	lib, err := g.NewLibrary(seafgen.LibraryOptions{Name: "Big", Owner: "u@example.com"})
	must(t, err)
	_, err = lib.CommitBulk("bulk", 1000, 100<<20, 1)
	must(t, err)
	must(t, lib.InsertRows(context.Background(), env.PrimaryDB))
	blocksDir := filepath.Join(env.BackupDir, "storage", "blocks", lib.StoreID)

	type watcher struct {
		cmd  *exec.Cmd
		logs *testenv.LockedBuffer
		done chan struct{} // closed once it exited, with err
		err  error
	}
	start := func() *watcher {
		w := &watcher{cmd: exec.Command(bin, "--config", cfg, "-v", "watch", "--poll", "100ms"), logs: &testenv.LockedBuffer{}, done: make(chan struct{})}
		w.cmd.Stderr = w.logs
		must(t, w.cmd.Start())
		go func() { w.err = w.cmd.Wait(); close(w.done) }()
		t.Cleanup(func() {
			w.cmd.Process.Kill() // an error once it has exited
			select {
			case <-w.done:
			case <-time.After(10 * time.Second):
			}
		})
		return w
	}
	// killAfter kills w once the store holds at least n blocks of the library; false if
	// the library was backed up before that (a machine too fast to kill mid-sync).
	killAfter := func(w *watcher, n int) bool {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for countFiles(blocksDir) < n {
			select {
			case <-w.done:
				t.Fatalf("watch exited: %v\n%s", w.err, w.logs.String())
			default:
			}
			if env.BackupHead(lib.ID) == lib.Head {
				t.Logf("backed up before the kill")
				return false
			}
			if time.Now().After(deadline) {
				t.Fatalf("watch made no progress in 60 s\n%s", w.logs.String())
			}
			time.Sleep(2 * time.Millisecond)
		}
		must(t, w.cmd.Process.Signal(syscall.SIGKILL))
		<-w.done
		return true
	}
	// consistent checks what a kill left: the backup database at the state's head or
	// at the new one, and each recorded head complete and verifying. It returns the
	// state's head.
	consistent := func(stage string) string {
		t.Helper()
		rec, _, err := env.State.Load(lib.ID)
		must(t, err)
		dbHead := env.BackupHead(lib.ID)
		if dbHead != rec.Head && dbHead != lib.Head {
			t.Fatalf("%s: backup db head %q is neither the state's %q nor the new %q", stage, dbHead, rec.Head, lib.Head)
		}
		if rec.Head == "" && dbHead == "" {
			return ""
		}
		for _, h := range []string{rec.Head, dbHead} {
			if h != "" {
				env.CompareWithPrimary(lib.ID, lib.StoreID, h)
			}
		}
		rep, err := restore.Verify(context.Background(), restore.VerifyOptions{
			Store: env.Store, State: env.State, Libraries: []string{lib.ID},
			DBHeads: map[string]string{lib.ID: dbHead},
		})
		must(t, err)
		if !rep.OK() {
			t.Fatalf("%s: verify of the recorded heads failed: %+v", stage, rep.Libraries)
		}
		return rec.Head
	}
	// finish restarts watch, waits for the primary's head to be backed up, and stops
	// it with SIGTERM: exit 0.
	finish := func(stage string) {
		t.Helper()
		w := start()
		deadline := time.Now().Add(120 * time.Second)
		for env.BackupHead(lib.ID) != lib.Head {
			if time.Now().After(deadline) {
				t.Fatalf("%s: the restarted watch did not back up the head in 120 s\n%s", stage, w.logs.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
		// The state follows the database row within the same sync.
		for {
			rec, _, err := env.State.Load(lib.ID)
			must(t, err)
			if rec.Head == lib.Head {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: state head %q, want %q", stage, rec.Head, lib.Head)
			}
			time.Sleep(20 * time.Millisecond)
		}
		env.CompareWithPrimary(lib.ID, lib.StoreID, lib.Head)
		must(t, w.cmd.Process.Signal(syscall.SIGTERM))
		select {
		case <-w.done:
			if w.err != nil {
				t.Fatalf("%s: watch after SIGTERM: %v\n%s", stage, w.err, w.logs.String())
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("%s: watch did not stop on SIGTERM\n%s", stage, w.logs.String())
		}
	}

	if !killAfter(start(), 200) {
		t.Skip("machine too fast to kill mid-sync")
	}
	if h := consistent("after kill of the first backup"); h != "" && h != lib.Head {
		t.Fatalf("state head %s after a killed first backup", h)
	}
	finish("first backup")
	first := lib.Head

	// An incremental sync killed midway leaves the first head (or the new one) in place.
	_, err = lib.CommitBulk("more", 600, 60<<20, 2)
	must(t, err)
	w := start()
	must(t, lib.InsertRows(context.Background(), env.PrimaryDB))
	if killAfter(w, countFiles(blocksDir)+200) {
		if h := consistent("after kill of an incremental sync"); h != first && h != lib.Head {
			t.Fatalf("state head %s, want the old head %s or the new %s", h, first, lib.Head)
		}
	} else {
		must(t, w.cmd.Process.Signal(syscall.SIGTERM))
		<-w.done
		if w.err != nil {
			t.Fatalf("watch after SIGTERM: %v", w.err)
		}
	}
	finish("incremental")
}
