package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// Log records reach the journal at their level's priority, in both formats.
func TestJournalPriorities(t *testing.T) {
	for _, format := range []string{"text", "json"} {
		var buf bytes.Buffer
		log := newLogger(&journalStream{w: &buf}, &cli{Debug: true, LogFormat: format})
		log.Debug("d")
		log.Info("i", "repo", "r1")
		log.With("cmd", "scan").Warn("w")
		log.Error("e", "err", "two\nlines")
		lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
		if len(lines) != 4 {
			t.Fatalf("%s: %d lines:\n%s", format, len(lines), buf.String())
		}
		for i, want := range []string{"<7>", "<6>", "<4>", "<3>"} {
			if !strings.HasPrefix(lines[i], want) || strings.Count(lines[i], "<") != 1 {
				t.Errorf("%s: line %q, want one prefix %s", format, lines[i], want)
			}
		}
	}
}

// The real binary prefixes its error lines only when its stderr is the stream
// $JOURNAL_STREAM names, as under systemd; a pipe that merely inherited the variable
// (cron, a shell started from a unit) gets bare lines.
func TestJournalStreamDetected(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	run := func(journal func(*os.File) string) string {
		f, err := os.CreateTemp(dir, "stderr")
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		cmd := exec.Command(bin, "--config", filepath.Join(dir, "missing.yml"), "scan")
		cmd.Stderr = f
		cmd.Env = append(os.Environ(), "JOURNAL_STREAM="+journal(f))
		if err := cmd.Run(); err == nil {
			t.Fatal("scan with a missing config succeeded")
		}
		out, err := os.ReadFile(f.Name())
		if err != nil {
			t.Fatal(err)
		}
		return string(out)
	}
	devIno := func(f *os.File) string {
		var st syscall.Stat_t
		if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf("%d:%d", st.Dev, st.Ino)
	}
	out := run(devIno)
	for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if !strings.HasPrefix(l, "<3>seafbak scan: ") && !strings.HasPrefix(l, "<3>  hint: ") {
			t.Errorf("on the journal: line %q, want <3>", l)
		}
	}
	for name, journal := range map[string]func(*os.File) string{
		"another stream": func(*os.File) string { return "1:2" },
		"garbage":        func(*os.File) string { return "x" },
		"unset":          func(*os.File) string { return "" },
	} {
		if out := run(journal); !strings.HasPrefix(out, "seafbak scan: ") {
			t.Errorf("%s: stderr %q, want bare lines", name, out)
		}
	}
}
