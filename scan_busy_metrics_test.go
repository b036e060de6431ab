package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"seafbak/internal/seafgen"
	"seafbak/internal/testenv"
	"seafbak/state"
)

// A scan that leaves a changed library to another seafbak still syncing it (its lock
// held: a long sync, a hung hook) did not compare that library through: the metrics
// must not count it current as of this scan, or its lag alert never fires.
func TestBusyScanDoesNotMakeALibraryCurrent(t *testing.T) {
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
	current := func() string {
		data, err := os.ReadFile(prom)
		must(t, err)
		for _, line := range strings.Split(string(data), "\n") {
			if strings.HasPrefix(line, "seafbak_library_current_timestamp_seconds{") {
				return line
			}
		}
		t.Fatalf("no current timestamp in:\n%s", data)
		return ""
	}
	before := current()

	testenv.Commit(t, l, "edit", seafgen.Put("a.txt", []byte("b")))
	env.Publish(l)
	st, err := state.Open(env.StateDir)
	must(t, err)
	lk, err := st.TryLock(l.ID)
	must(t, err)
	lk.Announce()
	defer lk.Unlock()
	time.Sleep(1100 * time.Millisecond) // a later second for the scan's start
	if code, out, errb := seafbak("--config", cfg, "--metrics-file", prom, "scan"); code != 0 || !strings.Contains(out, "1 busy") {
		t.Fatalf("scan while busy: %d %s %s", code, out, errb)
	}
	if after := current(); after != before {
		t.Errorf("a library left busy became current:\n%s\nwas\n%s", after, before)
	}
}
