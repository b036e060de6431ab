package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"seafbak/internal/testenv"
	"seafbak/state"
)

// A scan that cannot run at all (here the primary's data dir gone) records nothing in
// any library's record, so status showed the libraries merely waiting and the cron
// recipe (scan >/dev/null; status --if-changed) mailed nothing while the backup stood
// still (found by review). Now status names the failed scan and is unhealthy, and
// --if-changed mails once when scans start failing and once when one runs again.
func TestScanThatCannotRunIsTold(t *testing.T) {
	env := testenv.New(t, srv)
	env.LoadRealLibrary()
	cfg := writeConfig(t, env)
	if code, out, errs := seafbak("--config", cfg, "scan"); code != 0 {
		t.Fatalf("scan: %d\n%s%s", code, out, errs)
	}
	if code, out, _ := seafbak("--config", cfg, "status", "--if-changed"); code != 0 || out != "" {
		t.Fatalf("status --if-changed while healthy: %d %q", code, out)
	}
	moved := env.PrimaryDir + ".moved"
	if err := os.Rename(env.PrimaryDir, moved); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if code, out, errs := seafbak("--config", cfg, "-q", "scan"); code != 2 {
			t.Fatalf("scan %d with the primary's data dir gone: %d\n%s%s", i, code, out, errs)
		}
	}
	code, out, _ := seafbak("--config", cfg, "status")
	if code != 1 || !strings.Contains(out, "The last scan could not run (") || !strings.Contains(out, env.PrimaryDir) {
		t.Fatalf("status after scans that could not run: %d\n%s", code, out)
	}
	code, out, _ = seafbak("--config", cfg, "status", "--json")
	if code != 1 || !strings.Contains(out, `"scan_failed": {`) {
		t.Fatalf("status --json: %d\n%s", code, out)
	}
	if code, out, _ := seafbak("--config", cfg, "status", "--if-changed"); code != 1 || !strings.Contains(out, "The last scan could not run") {
		t.Fatalf("status --if-changed once scans fail: %d %q", code, out)
	}
	seafbak("--config", cfg, "-q", "scan")
	if code, out, _ := seafbak("--config", cfg, "status", "--if-changed"); code != 0 || out != "" {
		t.Fatalf("status --if-changed after another scan failing the same way: %d %q", code, out)
	}
	if err := os.Rename(moved, env.PrimaryDir); err != nil {
		t.Fatal(err)
	}
	if code, out, errs := seafbak("--config", cfg, "scan"); code != 0 {
		t.Fatalf("scan once the data dir is back: %d\n%s%s", code, out, errs)
	}
	if code, out, _ := seafbak("--config", cfg, "status"); code != 0 || strings.Contains(out, "could not run") {
		t.Fatalf("status once a scan ran: %d\n%s", code, out)
	}
	if code, out, _ := seafbak("--config", cfg, "status", "--if-changed"); code != 1 || out == "" {
		t.Fatalf("status --if-changed on the recovery: %d %q", code, out)
	}
}

// One scan at a time: a cron scan that starts while another still runs (a first
// backup of hours) leaves the libraries to it, exits 0 and says since when that one
// runs; it starts no syncs and no database connections of its own (found by review:
// the README's bound on the primary's connections did not hold under cron).
func TestScanLeavesTheLibrariesToARunningScan(t *testing.T) {
	env := testenv.New(t, srv)
	env.LoadRealLibrary()
	cfg := writeConfig(t, env)
	st, err := state.Open(env.StateDir)
	if err != nil {
		t.Fatal(err)
	}
	running, err := st.TryScanLock()
	if err != nil {
		t.Fatal(err)
	}
	code, out, errs := seafbak("--config", cfg, "scan")
	if code != 0 || !strings.Contains(out, "another seafbak scan is still running (started ") || !strings.Contains(out, "leaving the libraries to it") {
		t.Fatalf("scan beside a running one: %d\n%s%s", code, out, errs)
	}
	if h := env.BackupHead(testenv.RealLibraryID); h != "" {
		t.Fatalf("the second scan synced: %s", h)
	}
	running.Unlock()
	if code, out, errs := seafbak("--config", cfg, "scan"); code != 0 || env.BackupHead(testenv.RealLibraryID) == "" {
		t.Fatalf("scan once the other ended: %d\n%s%s", code, out, errs)
	}
}

// A deployment that moves from cron scans to seafbak watch: watch's comparison is the
// scan's, so once it has run, an earlier scan's "could not run" is over, and status
// stops telling it.
func TestWatchEndsAnEarlierScanFailure(t *testing.T) {
	env := testenv.New(t, srv)
	env.LoadRealLibrary()
	cfg := writeConfig(t, env)
	moved := env.PrimaryDir + ".moved"
	if err := os.Rename(env.PrimaryDir, moved); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := seafbak("--config", cfg, "-q", "scan"); code != 2 {
		t.Fatalf("scan with the data dir gone: %d", code)
	}
	if err := os.Rename(moved, env.PrimaryDir); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	var out, errb bytes.Buffer
	done := make(chan int, 1)
	go func() { done <- runContext(ctx, []string{"--config", cfg, "watch", "--poll", "100ms"}, &out, &errb) }()
	deadline := time.Now().Add(20 * time.Second)
	for env.BackupHead(testenv.RealLibraryID) == "" {
		if time.Now().After(deadline) {
			cancel(nil)
			<-done
			t.Fatalf("watch did not back up within 20 s:\n%s", errb.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel(interrupt{sig: syscall.SIGTERM})
	<-done
	if code, out, _ := seafbak("--config", cfg, "status"); code != 0 || strings.Contains(out, "could not run") {
		t.Fatalf("status once watch ran: %d\n%s", code, out)
	}
}
