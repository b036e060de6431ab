package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"seafbak/internal/seafgen"
	"seafbak/internal/testenv"
	"seafbak/scan"
	"seafbak/state"
	"seafbak/sync/object"
)

// status --if-changed, as cron runs it after every scan, speaks only when the health
// changes: a library starting to fail, failing differently, getting holes, recovering;
// the primary's database becoming unreachable and coming back.
func TestStatusIfChanged(t *testing.T) {
	env := testenv.New(t, srv)
	g := seafgen.New(env.PrimaryDir)
	good, err := g.NewLibrary(seafgen.LibraryOptions{Name: "Good", Owner: "u@example.com"})
	must(t, err)
	testenv.Commit(t, good, "files", seafgen.Put("a.txt", []byte("a")))
	bad, err := g.NewLibrary(seafgen.LibraryOptions{Name: "Bad", Owner: "u@example.com"})
	must(t, err)
	testenv.Commit(t, bad, "files", seafgen.Put("a.txt", []byte("b")))
	env.Publish(good, bad)
	cfg := writeConfig(t, env)
	record := filepath.Join(env.StateDir, healthFile)

	// quiet runs status --if-changed and wants it silent, exit 0.
	quiet := func(what string, config string) {
		t.Helper()
		if code, out, errs := seafbak("--config", config, "status", "--if-changed"); code != 0 || out != "" || errs != "" {
			t.Fatalf("%s: status --if-changed: %d\n%s%s", what, code, out, errs)
		}
	}
	// changed runs status --if-changed and wants the status text, exit 1.
	changed := func(what string, wants ...string) string {
		t.Helper()
		code, out, errs := seafbak("--config", cfg, "status", "--if-changed")
		if code != 1 || errs != "" || !strings.HasPrefix(out, "Total number of libraries: 2\n") {
			t.Fatalf("%s: status --if-changed: %d\n%s%s", what, code, out, errs)
		}
		for _, w := range wants {
			if !strings.Contains(out, w) {
				t.Fatalf("%s: status --if-changed lacks %q:\n%s", what, w, out)
			}
		}
		return out
	}
	scan := func(wantCode int) {
		t.Helper()
		if code, out, errs := seafbak("--config", cfg, "-q", "scan"); code != wantCode {
			t.Fatalf("scan: %d, want %d\n%s%s", code, wantCode, out, errs)
		}
	}

	// All healthy from the start, even before anything is backed up: nothing to say.
	quiet("first run, nothing backed up", cfg)
	scan(0)
	quiet("healthy", cfg)
	if _, err := os.Stat(record); err != nil {
		// Healthy and never unhealthy: nothing needed recording.
		if !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}

	// A new file whose block the primary lost: the library fails. Reported once, then
	// silence while it keeps failing the same way, also while a sync is retrying it.
	testenv.Commit(t, bad, "more", seafgen.Put("lost.bin", testenv.RandomBytes(9000, 81)))
	env.Publish(bad)
	_, lost := env.PrimaryFile(bad, "lost.bin")
	lostPath := testenv.ObjectPath(env.PrimaryDir, object.KindBlock, bad.StoreID, lost[0])
	saved, err := os.ReadFile(lostPath)
	must(t, err)
	must(t, os.Remove(lostPath))
	scan(1)
	changed("starts failing", "Number of libraries failed to sync: 1\n", bad.ID+" Bad ", "missing on the primary")
	data, err := os.ReadFile(record)
	must(t, err)
	if !strings.HasPrefix(string(data), "failed\t"+bad.ID+"\t") || strings.Count(string(data), "\n") != 1 {
		t.Fatalf("recorded health: %q", data)
	}
	quiet("failing as before", cfg)
	scan(1)
	quiet("failing as before, after another scan", cfg)
	st, err := state.Open(env.StateDir)
	must(t, err)
	lock, err := st.TryLock(bad.ID)
	must(t, err)
	lock.Announce() // as a sync does once under way
	if _, out, _ := seafbak("--config", cfg, "status"); !strings.Contains(out, "Number of libraries syncing: 1\n") {
		t.Fatalf("plain status while the failed library is locked:\n%s", out)
	}
	quiet("failed library being retried", cfg)
	lock.Unlock()
	// Plain status is unchanged: it prints every time.
	if code, out, _ := seafbak("--config", cfg, "status"); code != 1 || !strings.Contains(out, "Number of libraries failed to sync: 1\n") {
		t.Fatalf("plain status: %d\n%s", code, out)
	}

	// sync --force backs up the rest and records the hole: failed becomes holes.
	if code, out, errs := seafbak("--config", cfg, "sync", "--force", bad.ID); code != 0 {
		t.Fatalf("sync --force: %d\n%s%s", code, out, errs)
	}
	changed("failed to holes", "Number of libraries failed to sync: 0\n", "Number of libraries synchronized with holes: 1\n")
	quiet("holes as before", cfg)

	// The primary's database goes away: said once (exit 2, the error on stderr), then
	// silence until it comes back.
	down := filepath.Join(t.TempDir(), "down.yml")
	must(t, os.WriteFile(down, []byte(strings.Replace(mustRead(t, cfg), srv.Socket, "/nonexistent/mysqld.sock", 2)), 0o600))
	code, out, errs := seafbak("--config", down, "status", "--if-changed")
	if code != 2 || out != "" || !strings.Contains(errs, "seafbak status: ") {
		t.Fatalf("primary down: %d\n%s%s", code, out, errs)
	}
	quiet("primary still down", down)
	changed("primary back", "Number of libraries synchronized with holes: 1\n")

	// The primary is repaired: the recovery is reported once too (exit 1, all healthy).
	must(t, os.WriteFile(lostPath, saved, 0o644))
	if code, out, errs := seafbak("--config", cfg, "sync", bad.ID); code != 0 {
		t.Fatalf("sync after the repair: %d\n%s%s", code, out, errs)
	}
	changed("recovered", "Number of synchronized libraries: 2\n", "Number of libraries failed to sync: 0\n", "Number of libraries synchronized with holes: 0\n")
	quiet("healthy again", cfg)
	if data, err := os.ReadFile(record); err != nil || len(data) != 0 {
		t.Fatalf("recorded health once healthy: %v %q", err, data)
	}
	if code, out, _ := seafbak("--config", cfg, "status"); code != 0 || !strings.Contains(out, "Number of synchronized libraries: 2\n") {
		t.Fatalf("plain status: %d\n%s", code, out)
	}
}

// The same failure on every attempt is the same health, though a connection's local port
// differs each time; another failure is another health.
func TestStatusIfChangedErrorLine(t *testing.T) {
	for _, c := range []struct{ a, b string }{
		{"sync x: primary unreachable: read tcp 10.0.0.2:41234->10.0.0.3:8082: read: connection reset by peer",
			"sync x: primary unreachable: read tcp 10.0.0.2:50001->10.0.0.3:8082: read: connection reset by peer"},
		{"write tcp [::1]:39999->[::1]:80: broken pipe", "write tcp [::1]:40000->[::1]:80: broken pipe"},
		{"first line\nsecond", "first line\nother second"},
	} {
		if a, b := errorLine(c.a), errorLine(c.b); a != b {
			t.Errorf("errorLine differs: %q, %q", a, b)
		}
	}
	for _, c := range []struct{ a, b string }{
		{"read tcp 10.0.0.2:41234->10.0.0.3:8082: reset", "read tcp 10.0.0.2:41234->10.0.0.3:8083: reset"},
		{"block abc: missing on the primary", "block abd: missing on the primary"},
	} {
		if errorLine(c.a) == errorLine(c.b) {
			t.Errorf("errorLine the same for %q and %q", c.a, c.b)
		}
	}
}

// An unreachable primary is one health per library, whichever request gave up last: a
// flaky file server fails a different block (with a different count of restarts) at
// each retry, and cron mailed each one.
func TestStatusIfChangedUnreachableIsOneHealth(t *testing.T) {
	line := func(err string) string {
		h, err2 := health(&scan.Report{FailedList: []scan.Entry{{RepoID: "r", Error: err}}}, nil)
		if err2 != nil {
			t.Fatal(err2)
		}
		return h
	}
	a := line(`sync r (x): block 1111111111111111111111111111111111111111 at "/a.bin" in commit c: primary unreachable: GET /repo/r/block/1111111111111111111111111111111111111111, 3 restarts: connection reset by peer`)
	b := line(`sync r (x): block 2222222222222222222222222222222222222222 at "/b.bin" in commit c: primary unreachable: GET /repo/r/block/2222222222222222222222222222222222222222, 5 restarts: connection reset by peer`)
	if a != b {
		t.Errorf("two retries against a flaky primary are two healths:\n%s%s", a, b)
	}
	if c := line(`sync r (x): block 1111111111111111111111111111111111111111 at "/a.bin": corrupt on the primary: hash mismatch`); c == a {
		t.Errorf("a corrupt block is the same health as an unreachable primary: %s", c)
	}
}
