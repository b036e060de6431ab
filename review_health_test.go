package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"seafbak/internal/seafgen"
	"seafbak/internal/testenv"
	"seafbak/scan"
	"seafbak/state"
)

// Found by review: a scan whose sync of a changed library fails before the engine records
// the failure (here the store's presence check of the new head, in relisted, fails:
// as an S3 HEAD that keeps failing, or EIO would) exits 1, yet the state says nothing:
// status reports all healthy (exit 0), --if-changed stays silent, and the metrics
// count the library current as of the scan that failed it.
func TestScanFailureIsRecorded(t *testing.T) {
	env := testenv.New(t, srv)
	l, err := seafgen.New(env.PrimaryDir).NewLibrary(seafgen.LibraryOptions{Name: "b", Owner: "u@example.com"})
	must(t, err)
	testenv.Commit(t, l, "files", seafgen.Put("a.txt", []byte("a")))
	env.Publish(l)
	cfg := writeConfig(t, env)
	prom := filepath.Join(t.TempDir(), "s.prom")
	if code, _, errb := seafbak("--config", cfg, "--metrics-file", prom, "scan"); code != 0 {
		t.Fatalf("scan: %d\n%s", code, errb)
	}
	if code, out, _ := seafbak("--config", cfg, "status", "--if-changed"); code != 0 || out != "" {
		t.Fatalf("status --if-changed while healthy: %d %q", code, out)
	}
	commits := filepath.Join(env.BackupDir, "storage", "commits", l.ID)
	// A new head whose two-hex directory is not there yet: put a file in its way, so
	// that stat of the head commit fails with ENOTDIR (an I/O error of the store).
	for i := 0; ; i++ {
		testenv.Commit(t, l, "edit", seafgen.Put("a.txt", []byte{byte('b' + i)}))
		if _, err := os.Stat(filepath.Join(commits, l.Head[:2])); os.IsNotExist(err) {
			break
		}
	}
	env.Publish(l)
	must(t, os.WriteFile(filepath.Join(commits, l.Head[:2]), []byte("x"), 0o644))
	time.Sleep(1100 * time.Millisecond)
	code, out, errb := seafbak("--config", cfg, "--metrics-file", prom, "scan")
	if code != 1 || !strings.Contains(out, "1 failed") {
		t.Fatalf("scan with the store failing: %d\n%s%s", code, out, errb)
	}
	t.Logf("scan: %d %s%s", code, out, errb)
	code, out, _ = seafbak("--config", cfg, "status")
	if code != 1 || !strings.Contains(out, "Number of libraries failed to sync: 1") {
		t.Errorf("status after a scan that failed the library: exit %d, want 1\n%s", code, out)
	}
	if code, out, _ := seafbak("--config", cfg, "status", "--if-changed"); code != 1 {
		t.Errorf("status --if-changed after a scan that failed the library: exit %d %q, want 1 and the status", code, out)
	}
	data, err := os.ReadFile(prom)
	must(t, err)
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "seafbak_library_failed{") && strings.HasSuffix(line, " 0") {
			t.Errorf("metrics say the library is not failed: %s", line)
		}
		// Its last success was more than 1.1 s before this scan: a lag below 1 s is
		// the failing scan's start taken as the time the backup held the primary's head.
		if strings.HasPrefix(line, "seafbak_library_lag_seconds{") {
			var lag float64
			if _, err := fmt.Sscanf(line[strings.LastIndexByte(line, ' ')+1:], "%g", &lag); err == nil && lag < 1 {
				t.Errorf("metrics count the failed library current as of the failing scan: %s", line)
			}
		}
	}
}

// Found by review: errorLine drops the local port of TCP connections only. A primary database
// named by host name (db:3306, as the Docker recipe has it) whose resolver does not
// answer fails with Go's DNS error, which names the UDP socket's local port, new at
// every attempt: each cron scan records a new "could not run" text, and
// status --if-changed mails every 5 minutes for one unchanged outage.
func TestIfChangedUDPPortIsOneHealth(t *testing.T) {
	line := func(err string) string {
		h, err2 := health(&scan.Report{ScanFailed: &state.ScanFailure{Error: err}}, nil)
		if err2 != nil {
			t.Fatal(err2)
		}
		return h
	}
	a := line("scan: list libraries: dial tcp: lookup db on 127.0.0.11:53: read udp 127.0.0.1:43552->127.0.0.11:53: i/o timeout")
	b := line("scan: list libraries: dial tcp: lookup db on 127.0.0.11:53: read udp 127.0.0.1:51013->127.0.0.11:53: i/o timeout")
	if a != b {
		t.Errorf("one DNS outage is two healths (mailed at every scan):\n%s%s", a, b)
	}
	if x, y := errorLine("read udp 127.0.0.1:43552->127.0.0.53:53: read: connection refused"),
		errorLine("read udp 127.0.0.1:43553->127.0.0.53:53: read: connection refused"); x != y {
		t.Errorf("errorLine keeps the UDP local port: %q %q", x, y)
	}
}

// Found by review: health tells an unreachable primary by the text "primary unreachable"
// anywhere in the error's first line, and that line starts with the library's name
// ("sync <id> (<name>): ..."). A library whose name (or a failing path) holds those
// words has every failure folded into one health: its block missing on the primary
// turning into another one corrupt is no change, and nothing is mailed.
func TestIfChangedClassNotNameTellsUnreachable(t *testing.T) {
	line := func(err string) string {
		h, err2 := health(&scan.Report{FailedList: []scan.Entry{{RepoID: "r", Error: err, ErrorClass: state.FailureOther}}}, nil)
		if err2 != nil {
			t.Fatal(err2)
		}
		return h
	}
	a := line(`sync r (Runbooks: primary unreachable): block 1111111111111111111111111111111111111111 at "/a.bin" in commit c: missing on the primary`)
	b := line(`sync r (Runbooks: primary unreachable): block 2222222222222222222222222222222222222222 at "/b.bin" in commit c: corrupt on the primary: hash mismatch`)
	if a == b {
		t.Errorf("two different faults of one library are one health because of its name:\n%s", a)
	}
}

// Found by review: only an unreachable primary is folded into one health per library. A backup
// store on S3 that keeps throttling (or refusing connections) fails each library at
// whichever object it was writing, and the store's errors name that object's key: the
// same outage is a new health at every scan, and cron mails every 5 minutes.
func TestIfChangedS3OutageIsOneHealth(t *testing.T) {
	line := func(err string) string {
		h, err2 := health(&scan.Report{FailedList: []scan.Entry{{RepoID: "r", Error: err, ErrorClass: state.FailureStoreUnavailable}}}, nil)
		if err2 != nil {
			t.Fatal(err2)
		}
		return h
	}
	a := line(`sync r (x): s3 store s3.example.com: put seafbak-blocks/r/1111111111111111111111111111111111111111: Please reduce your request rate. (SlowDown, HTTP 503)`)
	b := line(`sync r (x): s3 store s3.example.com: put seafbak-blocks/r/2222222222222222222222222222222222222222: Please reduce your request rate. (SlowDown, HTTP 503)`)
	if a != b {
		t.Errorf("one S3 outage is two healths:\n%s%s", a, b)
	}
}
