package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"seafbak/internal/seafgen"
	"seafbak/internal/testenv"
	"seafbak/state"
	"seafbak/sync/object"
)

// A primary with no library: every command answers, and says all is well.
func TestEmptyPrimary(t *testing.T) {
	env := testenv.New(t, srv)
	cfg := writeConfig(t, env)
	prom := filepath.Join(t.TempDir(), "s.prom")
	if code, out, errb := seafbak("--config", cfg, "--metrics-file", prom, "scan"); code != 0 {
		t.Errorf("scan: %d %q %q", code, out, errb)
	}
	if code, out, errb := seafbak("--config", cfg, "status"); code != 0 || !strings.Contains(out, "Total number of libraries: 0") {
		t.Errorf("status: %d %q %q", code, out, errb)
	}
	code, out, errb := seafbak("--config", cfg, "status", "--json")
	var v map[string]any
	if err := json.Unmarshal([]byte(out), &v); code != 0 || err != nil {
		t.Errorf("status --json: %d %v %q %q", code, err, out, errb)
	}
	if code, out, errb := seafbak("--config", cfg, "status", "--if-changed"); code != 0 || out != "" {
		t.Errorf("status --if-changed: %d %q %q", code, out, errb)
	}
	if data, err := os.ReadFile(prom); err != nil || !strings.Contains(string(data), "seafbak_last_scan_timestamp_seconds") {
		t.Errorf("metrics: %v\n%s", err, data)
	}
}

// Found by review: seafbak_run_objects{command="scan"} is documented as the objects the run
// copied, but scan never fills it: a scan that copied a whole library reports 0.
func TestScanRunObjects(t *testing.T) {
	env := testenv.New(t, srv)
	env.LoadRealLibrary()
	cfg := writeConfig(t, env)
	prom := filepath.Join(t.TempDir(), "s.prom")
	if code, out, errb := seafbak("--config", cfg, "--metrics-file", prom, "scan"); code != 0 || !strings.Contains(out, "1 synced") {
		t.Fatalf("scan: %d %s %s", code, out, errb)
	}
	data, err := os.ReadFile(prom)
	must(t, err)
	text := string(data)
	if !strings.Contains(text, "seafbak_run_bytes{command=\"scan\"} 0\n") && strings.Contains(text, "seafbak_run_objects{command=\"scan\"} 0\n") {
		t.Errorf("scan copied bytes but reports 0 objects:\n%s", text[strings.Index(text, "# HELP seafbak_run_bytes"):])
	}
}

// Found by review: status reports a damaged last-dump record as one line ("Last database
// dump: unknown: ...") and goes on; the metrics file refuses to be written at all
// (metrics.Collect returns LastDump's error), so every library's metrics freeze until
// the next nightly dump rewrites the record.
func TestDamagedDumpRecordKeepsTheMetrics(t *testing.T) {
	env := testenv.New(t, srv)
	env.LoadRealLibrary()
	cfg := writeConfig(t, env)
	prom := filepath.Join(t.TempDir(), "s.prom")
	must(t, os.WriteFile(filepath.Join(env.StateDir, "dump.json"), []byte("{\"set\": "), 0o640))
	code, out, errb := seafbak("--config", cfg, "--metrics-file", prom, "scan")
	if code != 0 {
		t.Fatalf("scan: %d %s %s", code, out, errb)
	}
	if strings.Contains(errb, "metrics file") {
		t.Errorf("a damaged dump record kept the metrics file from being written: %s", errb)
	}
	if _, err := os.Stat(prom); err != nil {
		t.Errorf("no metrics file: %v", err)
	}
	if code, out, _ := seafbak("--config", cfg, "status"); code != 0 || !strings.Contains(out, "Last database dump: unknown") {
		t.Errorf("status: %d\n%s", code, out)
	}
}

// Found by review: a failed library that a sync is retrying right now (watch's backoff, a
// hook) makes status exit 1, and --if-changed mails it, yet the text says "failed to
// sync: 0", no holes, and names the library only under syncing, without its error:
// the mail an admin gets says nothing is wrong. (The JSON has the error.)
func TestRetryingFailedIsToldInText(t *testing.T) {
	env := testenv.New(t, srv)
	env.LoadRealLibrary()
	cfg := writeConfig(t, env)
	if code, out, errb := seafbak("--config", cfg, "scan"); code != 0 {
		t.Fatalf("scan: %d %s %s", code, out, errb)
	}
	st, err := state.Open(env.StateDir)
	must(t, err)
	rec, _, err := st.Load(testenv.RealLibraryID)
	must(t, err)
	rec.LastError = "sync x: block 1111: missing on the primary"
	must(t, st.Save(rec))
	lk, err := st.TryLock(testenv.RealLibraryID)
	must(t, err)
	lk.Announce()
	defer lk.Unlock()
	code, out, _ := seafbak("--config", cfg, "status", "--if-changed")
	if code != 1 {
		t.Fatalf("status --if-changed: %d\n%s", code, out)
	}
	if !strings.Contains(out, "missing on the primary") {
		t.Errorf("status --if-changed exits 1 for a failing library and mails a text without its failure:\n%s", out)
	}
}

// Found by review: every command writes its exit code to the metrics file, status too; status
// --if-changed exits 1 for "the health changed", a recovery included. With
// metrics.file in the config and the cron recipe, the recovery mail comes with
// seafbak_run_exit_code{command="status"} 1, which the README's SeafbakRunFailed alert
// (seafbak_run_exit_code != 0) takes for a failure: all healthy, and an alert fires.
func TestIfChangedRecoveryIsNoFailedRun(t *testing.T) {
	env := testenv.New(t, srv)
	env.LoadRealLibrary()
	cfg := writeConfig(t, env)
	prom := filepath.Join(t.TempDir(), "s.prom")
	if code, out, errb := seafbak("--config", cfg, "--metrics-file", prom, "scan"); code != 0 {
		t.Fatalf("scan: %d %s %s", code, out, errb)
	}
	// The previous --if-changed saw this library failing; it has recovered since.
	must(t, os.WriteFile(filepath.Join(env.StateDir, healthFile), []byte("failed\t"+testenv.RealLibraryID+"\tsync x: primary unreachable\n"), 0o640))
	code, out, _ := seafbak("--config", cfg, "--metrics-file", prom, "status", "--if-changed")
	if code != 1 || !strings.Contains(out, "Number of libraries failed to sync: 0") {
		t.Fatalf("status --if-changed on the recovery: %d\n%s", code, out)
	}
	data, err := os.ReadFile(prom)
	must(t, err)
	if strings.Contains(string(data), "seafbak_run_exit_code{command=\"status\"} 1\n") {
		t.Errorf("all healthy, yet the metrics show a failed run of status (SeafbakRunFailed fires on the recovery)")
	}
}

// Found by review: a library backed up at the primary's head with holes (sync --force) is
// retried by every scan, which is right, but a retry that finds the primary still
// lacking the block is counted "synced" (Summary.Synced: "libraries brought up to
// date"): cron's summary says "1 synced" every 5 minutes while nothing changed.
// (watch tells such a retry apart: "holes or re-check tried again; nothing changed".)
func TestScanHoleRetryIsNotSynced(t *testing.T) {
	env := testenv.New(t, srv)
	g := seafgen.New(env.PrimaryDir)
	bad, err := g.NewLibrary(seafgen.LibraryOptions{Name: "Bad", Owner: "u@example.com"})
	must(t, err)
	testenv.Commit(t, bad, "files", seafgen.Put("lost.bin", testenv.RandomBytes(9000, 81)))
	env.Publish(bad)
	_, lost := env.PrimaryFile(bad, "lost.bin")
	must(t, os.Remove(testenv.ObjectPath(env.PrimaryDir, object.KindBlock, bad.StoreID, lost[0])))
	cfg := writeConfig(t, env)
	if code, out, errs := seafbak("--config", cfg, "sync", "--force", bad.ID); code != 0 {
		t.Fatalf("sync --force: %d\n%s%s", code, out, errs)
	}
	for i := range 2 {
		code, out, errs := seafbak("--config", cfg, "scan")
		t.Logf("scan %d: %d %s%s", i, code, out, errs)
		if strings.Contains(out, "1 synced") {
			t.Errorf("scan %d, nothing changed on the primary: %s", i, out)
		}
	}
}

// Found by review: a re-check that recorded holes (a block damaged in the backup that the
// primary no longer has; sync --force) keeps the library's recheck flag, so every sync re-reads and
// hashes every object of the library. watch puts such retries off to once an hour
// (holesRetry: "syncing it each minute re-read its history (every object, for a
// re-check)"); scan retries it at every run, so cron re-hashes the whole library every
// 5 minutes, for as long as the primary lacks the block.
func TestScanRetriesRechecksHourly(t *testing.T) {
	env := testenv.New(t, srv)
	g := seafgen.New(env.PrimaryDir)
	lib, err := g.NewLibrary(seafgen.LibraryOptions{Name: "L", Owner: "u@example.com"})
	must(t, err)
	testenv.Commit(t, lib, "files", seafgen.Put("a.bin", testenv.RandomBytes(9000, 7)), seafgen.Put("b.bin", testenv.RandomBytes(9000, 8)))
	env.Publish(lib)
	cfg := writeConfig(t, env)
	if code, out, errs := seafbak("--config", cfg, "scan"); code != 0 {
		t.Fatalf("scan: %d\n%s%s", code, out, errs)
	}
	_, blocks := env.PrimaryFile(lib, "a.bin")
	must(t, os.Remove(testenv.ObjectPath(env.PrimaryDir, object.KindBlock, lib.StoreID, blocks[0])))
	must(t, os.WriteFile(testenv.ObjectPath(env.BackupDir, object.KindBlock, lib.StoreID, blocks[0]), []byte("rot"), 0o644))
	st, err := state.Open(env.StateDir)
	must(t, err)
	rec, _, err := st.Load(lib.ID)
	must(t, err)
	rec.Recheck = true // as a dead attempt's marker, or verify --repair, leaves it
	must(t, st.Save(rec))
	// The admin backs up the rest and records the hole, as the error advises.
	if code, out, errs := seafbak("--config", cfg, "sync", "--force", lib.ID); code != 0 {
		t.Fatalf("sync --force: %d\n%s%s", code, out, errs)
	}
	rechecks := 0
	for i := range 3 {
		code, out, errs := seafbak("--config", cfg, "scan")
		t.Logf("scan %d: %d %s%s", i, code, out, errs)
		if strings.Contains(errs, "re-checking every object") {
			rechecks++
		}
	}
	if rechecks > 1 {
		t.Errorf("%d scans in a row, the primary unchanged, re-checked every object of the library %d times", 3, rechecks)
	}
}
