package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"seafbak/internal/seafgen"
	"seafbak/internal/testenv"
	"seafbak/state"
)

// SIGINT and SIGTERM stop a running sync with 130 and 143; the library is not recorded
// as failed and keeps its previous head, and the next sync completes it.
func TestSignalsStopSync(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and copies a large library")
	}
	bin := buildBinary(t)
	for _, c := range []struct {
		sig  syscall.Signal
		code int
		cmd  string
	}{{syscall.SIGINT, 130, "sync"}, {syscall.SIGTERM, 143, "sync"}, {syscall.SIGTERM, 143, "scan"}} {
		t.Run(c.cmd+" "+sigName(c.sig), func(t *testing.T) {
			env, cfg := newSourceEnv(t, "dir")
			g := seafgen.New(env.PrimaryDir)
			g.BlockSize = 64 << 10
			lib, err := g.NewLibrary(seafgen.LibraryOptions{Name: "Big"})
			must(t, err)
			_, err = lib.CommitBulk("bulk", 600, 60<<20, 3)
			must(t, err)
			must(t, lib.InsertRows(context.Background(), env.PrimaryDB))
			blocksDir := filepath.Join(env.BackupDir, "storage", "blocks", lib.StoreID)

			args := []string{"--config", cfg, c.cmd}
			if c.cmd == "sync" {
				args = append(args, lib.ID)
			}
			cmd := exec.Command(bin, args...)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			must(t, cmd.Start())
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			deadline := time.Now().Add(60 * time.Second)
			for countFiles(blocksDir) < 100 {
				select {
				case err := <-done:
					t.Skipf("sync finished before the signal: %v", err)
				default:
				}
				if time.Now().After(deadline) {
					cmd.Process.Kill()
					t.Fatal("sync made no progress in 60 s")
				}
				time.Sleep(2 * time.Millisecond)
			}
			must(t, cmd.Process.Signal(c.sig))
			<-done
			if got := cmd.ProcessState.ExitCode(); got != c.code {
				t.Fatalf("exit %d, want %d; stderr:\n%s", got, c.code, stderr.String())
			}
			if !strings.Contains(stderr.String(), "interrupted by "+sigName(c.sig)) {
				t.Errorf("stderr does not say it was interrupted:\n%s", stderr.String())
			}
			if strings.Contains(stderr.String(), "level=ERROR") {
				t.Errorf("an interrupted %s logs a failure:\n%s", c.cmd, stderr.String())
			}
			rec, _, err := env.State.Load(lib.ID)
			must(t, err)
			if rec.Head != "" || rec.LastError != "" || env.BackupHead(lib.ID) != "" {
				t.Fatalf("interrupted sync recorded head %q / error %q / db head %q", rec.Head, rec.LastError, env.BackupHead(lib.ID))
			}
			if out, err := exec.Command(bin, "--config", cfg, "sync", lib.ID).CombinedOutput(); err != nil {
				t.Fatalf("rerun: %v\n%s", err, out)
			}
			env.CompareWithPrimary(lib.ID, lib.StoreID, lib.Head)
		})
	}
}

// --no-wait and --lock-wait bound how long sync waits for another seafbak on the same
// library; -v logs each library's progress, --log-format json as JSON lines.
func TestSyncLockWaitAndLogFlags(t *testing.T) {
	env := testenv.New(t, srv)
	env.LoadRealLibrary()
	cfg := writeConfig(t, env)
	id := testenv.RealLibraryID

	other, err := state.Open(env.StateDir)
	must(t, err)
	lock, err := other.Lock(context.Background(), id)
	must(t, err)
	code, _, errs := seafbak("--config", cfg, "sync", "--no-wait", id)
	if code != 1 || !strings.Contains(errs, "another seafbak is syncing this library") || !strings.Contains(errs, "hint:") {
		t.Fatalf("--no-wait on a locked library: %d\n%s", code, errs)
	}
	start := time.Now()
	code, _, errs = seafbak("--config", cfg, "sync", "--lock-wait", "300ms", id)
	if code != 1 || !strings.Contains(errs, "waited 300ms") || time.Since(start) < 300*time.Millisecond {
		t.Fatalf("--lock-wait 300ms on a locked library: %d after %s\n%s", code, time.Since(start), errs)
	}
	if rec, _, _ := env.State.Load(id); rec.LastError != "" {
		t.Fatalf("a busy library was recorded as failed: %q", rec.LastError)
	}
	lock.Unlock()

	code, out, errs := seafbak("--config", cfg, "-v", "--log-format", "json", "sync", id)
	if code != 0 || !strings.Contains(out, "synced to") {
		t.Fatalf("sync -v: %d\n%s%s", code, out, errs)
	}
	var synced bool
	for _, line := range strings.Split(strings.TrimSpace(errs), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("--log-format json wrote a line that is not JSON: %q", line)
		}
		synced = synced || rec["msg"] == "synced" && rec["repo"] == id
	}
	if !synced {
		t.Fatalf("-v logged no \"synced\" line for the library:\n%s", errs)
	}
	// The final error too is a JSON record, with its hint (it was plain text).
	code, _, errs = seafbak("--config", cfg, "--log-format", "json", "sync", "--no-wait", "00000000-0000-4000-8000-000000000000")
	var rec map[string]any
	if err := json.Unmarshal([]byte(strings.TrimSpace(errs)), &rec); code == 0 || err != nil || rec["level"] != "ERROR" || rec["command"] != "sync" || rec["msg"] == "" {
		t.Fatalf("--log-format json, a failing sync: %d %q (%v)", code, errs, err)
	}
	if code, _, errs := seafbak("--config", cfg, "-q", "sync", id); code != 0 || errs != "" {
		t.Fatalf("-q sync: %d %q", code, errs)
	}
	if code, out, _ := seafbak("--version"); code != 0 || !strings.HasPrefix(out, "seafbak ") {
		t.Fatalf("--version: %d %q", code, out)
	}
	if code, _, errs := seafbak("--config", cfg, "-v", "-q", "status"); code != 2 || errs == "" {
		t.Fatalf("-v with -q: %d %q", code, errs)
	}
}

// --metrics-file (and metrics.file) make each command rewrite a node_exporter textfile:
// the libraries from the state and every command's last run.
func TestCLIMetricsFile(t *testing.T) {
	env := testenv.New(t, srv)
	env.LoadRealLibrary()
	cfg := writeConfig(t, env)
	prom := filepath.Join(t.TempDir(), "seafbak.prom")
	// As metrics.file in the config: absolute, and a .prom the collector reads.
	// relative: the command runs, and says the file was not written.
	if code, _, errs := seafbak("--config", cfg, "--metrics-file", "seafbak.prom", "status", "--offline"); !strings.Contains(errs, "is not an absolute path") {
		t.Errorf("--metrics-file seafbak.prom: %d\n%s", code, errs)
	}
	if _, err := os.Stat("seafbak.prom"); err == nil {
		os.Remove("seafbak.prom")
		t.Error("a relative --metrics-file was written in the working directory")
	}
	if code, out, errs := seafbak("--config", cfg, "--metrics-file", prom, "sync", testenv.RealLibraryID); code != 0 {
		t.Fatalf("sync: %d\n%s%s", code, out, errs)
	}
	if code, out, errs := seafbak("--config", cfg, "--metrics-file", prom, "scan"); code != 0 {
		t.Fatalf("scan: %d\n%s%s", code, out, errs)
	}
	if code, _, _ := seafbak("--config", cfg, "--metrics-file", prom, "sync", "--no-wait", "00000000-0000-4000-8000-000000000000"); code != 1 {
		t.Fatalf("sync of an unknown library: %d", code)
	}
	f, err := os.Open(prom)
	must(t, err)
	defer f.Close()
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(f)
	must(t, err)
	value := func(name string, labels map[string]string) float64 {
		t.Helper()
		mf := families[name]
		if mf == nil {
			t.Fatalf("no %s in the metrics file", name)
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if want, ok := labels[l.GetName()]; ok && want != l.GetValue() {
					continue next
				}
			}
			return m.GetGauge().GetValue()
		}
		t.Fatalf("no %s%v in the metrics file", name, labels)
		return 0
	}
	if v := value("seafbak_run_exit_code", map[string]string{"command": "sync"}); v != 1 {
		t.Errorf("sync's exit code %v, want the last run's 1", v)
	}
	if v := value("seafbak_run_exit_code", map[string]string{"command": "scan"}); v != 0 {
		t.Errorf("scan's exit code %v", v)
	}
	if v := value("seafbak_library_failed", map[string]string{"repo_id": testenv.RealLibraryID}); v != 0 {
		t.Errorf("library failed = %v", v)
	}
	if v := value("seafbak_library_current_timestamp_seconds", map[string]string{"repo_id": testenv.RealLibraryID}); time.Since(time.Unix(int64(v), 0)) > time.Minute {
		t.Errorf("library current timestamp %v is not recent", v)
	}
	if v := value("seafbak_last_scan_timestamp_seconds", nil); v == 0 {
		t.Error("no last scan time")
	}
	if code, _, errs := seafbak("--config", cfg, "--metrics-file", prom+".txt", "status"); code != 0 || !strings.Contains(errs, ".prom") {
		t.Fatalf("a metrics file not named .prom: %d %q", code, errs)
	}
}

// The shell asks for completions by running seafbak with COMP_LINE set.
func TestShellCompletion(t *testing.T) {
	for line, want := range map[string]string{
		"seafbak res":           "restore\n",
		"seafbak restore l":     "library\n",
		"seafbak sync --no-w":   "--no-wait\n",
		"seafbak --log-format ": "json\ntext\n",
	} {
		t.Setenv("COMP_LINE", line)
		code, out, errs := seafbak()
		got := strings.Split(strings.TrimSpace(out), "\n")
		sort.Strings(got)
		if code != 0 || strings.Join(got, "\n")+"\n" != want {
			t.Errorf("COMP_LINE %q: %d %q %q, want %q", line, code, out, errs, want)
		}
	}
}
