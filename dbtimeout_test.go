package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"seafbak/config"
	"seafbak/internal/mariadbtest"
	"seafbak/internal/testenv"
)

// testDBTimeout is the db_timeout these tests configure; a call on a frozen database
// must fail within hungLimit of the freeze, and the test gives up waiting (a hang: the
// bug) at hangWatchdog.
const (
	testDBTimeout = 2 * time.Second
	hungLimit     = 4 * testDBTimeout
	hangWatchdog  = 20 * time.Second
)

// freeze SIGSTOPs a test's own mariadbd (by the PID mariadbtest started, never by
// name): the server keeps its sockets open and answers nothing, as a hung server does.
// It is SIGCONTed when the (sub)test ends, before the server is stopped.
func freeze(t *testing.T, s *mariadbtest.Server) time.Time {
	t.Helper()
	pid := s.PID()
	if pid <= 0 {
		t.Fatal("freeze: the test's mariadbd is not running")
	}
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatalf("SIGSTOP mariadbd %d: %v", pid, err)
	}
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGCONT) })
	return time.Now()
}

// wireFromConfig wires the engine from a config file as the CLI does (config.Load,
// openDB, wire), so the test sees the deadlines the config puts on the connections.
func wireFromConfig(t *testing.T, path string) *wiring {
	t.Helper()
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DBTimeout != testDBTimeout {
		t.Fatalf("db_timeout %s, want %s", cfg.DBTimeout, testDBTimeout)
	}
	e := &env{ctx: context.Background(), cfg: cfg, log: slog.New(slog.DiscardHandler), stdout: io.Discard, stderr: io.Discard}
	w, err := wire(e, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.closeAll)
	return w
}

// within runs call and returns its error and how long after since it returned; a call
// still running after hangWatchdog is the hang this guards against.
func within(t *testing.T, what string, since func() time.Time, call func() error) (error, time.Duration) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- call() }()
	select {
	case err := <-done:
		took := time.Since(since())
		t.Logf("%s returned %.2fs after the freeze: %v", what, took.Seconds(), err)
		return err, took
	case <-time.After(hangWatchdog):
		t.Fatalf("%s still hangs %s after starting, with db_timeout %s", what, hangWatchdog, testDBTimeout)
		return nil, 0
	}
}

// stopper freezes the server once the sync has planned its copy: mid-sync, connections
// open, the library's lock held.
type stopper struct {
	t      *testing.T
	srv    *mariadbtest.Server
	frozen time.Time
}

func (s *stopper) Todo(int64, int64) {
	if s.frozen.IsZero() {
		s.frozen = freeze(s.t, s.srv)
	}
}
func (s *stopper) Done(int64, int64) {}

func appendDBTimeout(t *testing.T, path string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := fmt.Fprintf(f, "db_timeout: %s\n", testDBTimeout); err != nil {
		t.Fatal(err)
	}
}

// A database server that stops answering after seafbak connected (here SIGSTOPped:
// sockets open, no answer) fails the sync within db_timeout, frees the library's lock,
// records no new head; once the server answers again, the next sync completes. Without
// deadlines on the connections, each call below hangs forever holding the lock.
func TestDBTimeoutStoppedServer(t *testing.T) {
	own, err := startOwnServer(t)
	if err != nil {
		t.Fatal(err)
	}
	id := testenv.RealLibraryID
	const head = "5715208e10e33de4ac89cd441c52d948df77125b"

	t.Run("backup", func(t *testing.T) {
		// The primary on the shared server, the backup database on the test's own.
		env := testenv.New(t, srv)
		env.LoadRealLibrary()
		if err := own.CreateDatabase(env.BackupDBName, mariadbtest.SchemaFile("seafile.sql")); err != nil {
			t.Fatal(err)
		}
		cfg := filepath.Join(t.TempDir(), "seafbak.yml")
		text := fmt.Sprintf("primary:\n  db: \"root@unix(%s)/%s\"\n  data_dir: %s\nbackup:\n  data_dir: %s\n  db: \"root@unix(%s)/%s\"\nstate: %s\n",
			srv.Socket, env.PrimaryDBName, env.PrimaryDir, env.BackupDir, own.Socket, env.BackupDBName, env.StateDir)
		if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		appendDBTimeout(t, cfg)
		w := wireFromConfig(t, cfg)
		stop := &stopper{t: t, srv: own}
		w.engine.Progress = stop

		start := time.Now()
		err, took := within(t, "sync (backup db frozen mid-sync)", func() time.Time { return stop.frozen }, func() error {
			_, err := w.engine.Sync(context.Background(), id)
			return err
		})
		if stop.frozen.IsZero() {
			t.Fatalf("the sync never reached its copy (%v): the test froze nothing", err)
		}
		if err == nil || !strings.Contains(err.Error(), "backup db: set head of "+id) || !strings.Contains(err.Error(), "db_timeout") {
			t.Fatalf("sync with the backup db frozen: %v", err)
		}
		if took > hungLimit {
			t.Fatalf("sync failed %s after the freeze; db_timeout is %s", took, testDBTimeout)
		}
		t.Logf("whole sync %.2fs", time.Since(start).Seconds())
		lock, err := w.state.TryLock(id)
		if err != nil {
			t.Fatalf("the library's lock is still held after the sync failed: %v", err)
		}
		lock.Unlock()
		rec, _, err := w.state.Load(id)
		if err != nil {
			t.Fatal(err)
		}
		if rec.Head != "" || !rec.Failed() {
			t.Fatalf("state after the failed sync: head %q, last error %q", rec.Head, rec.LastError)
		}

		// The server answers again: the same wiring (its pool dropped the dead
		// connections) completes the sync.
		syscall.Kill(own.PID(), syscall.SIGCONT)
		w.engine.Progress = nil
		res, err := w.engine.Sync(context.Background(), id)
		if err != nil || res.Head != head {
			t.Fatalf("sync after the server came back: %+v %v", res, err)
		}
		bdb, err := own.Open(env.BackupDBName)
		if err != nil {
			t.Fatal(err)
		}
		defer bdb.Close()
		var got string
		if err := bdb.QueryRow("SELECT commit_id FROM Branch WHERE repo_id = ? AND name = 'master'", id).Scan(&got); err != nil || got != head {
			t.Fatalf("backup db head after the server came back: %q %v", got, err)
		}
	})

	t.Run("primary", func(t *testing.T) {
		// Both databases on the test's own server, frozen before the sync asks the
		// primary for the library (connected: wire pinged both).
		env := testenv.New(t, own)
		env.LoadRealLibrary()
		cfg := writeConfigFor(t, env, own.Socket)
		appendDBTimeout(t, cfg)
		w := wireFromConfig(t, cfg)
		frozen := freeze(t, own)
		since := func() time.Time { return frozen }

		err, took := within(t, "sync (primary db frozen)", since, func() error {
			_, err := w.engine.Sync(context.Background(), id)
			return err
		})
		if err == nil || !strings.Contains(err.Error(), "primary db: read library") || !strings.Contains(err.Error(), "db_timeout") {
			t.Fatalf("sync with the primary db frozen: %v", err)
		}
		if took > hungLimit {
			t.Fatalf("sync failed %s after the freeze; db_timeout is %s", took, testDBTimeout)
		}
		lock, err := w.state.TryLock(id)
		if err != nil {
			t.Fatalf("the library's lock is still held after the sync failed: %v", err)
		}
		lock.Unlock()

		// scan's one query: fresh connections (the failed one is gone) time out too,
		// the connect itself or the handshake's read.
		frozen = time.Now()
		err, took = within(t, "scan's library list (primary db frozen)", since, func() error {
			_, err := w.catalog.Libraries(context.Background())
			return err
		})
		if err == nil || !strings.Contains(err.Error(), "primary db: list libraries") {
			t.Fatalf("list libraries with the primary db frozen: %v", err)
		}
		if took > hungLimit {
			t.Fatalf("list libraries failed %s after starting; db_timeout is %s", took, testDBTimeout)
		}
	})
}
