package main

import (
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"seafbak/internal/testenv"
)

// restore library --path: one folder (its contents into --to) at an older commit, one
// non-ASCII file (to --to/<name>) at the head; a path not in the commit exits 1 naming
// the path and commit and pointing at --list; bad syntax exits 2.
func TestCLIRestorePath(t *testing.T) {
	env := testenv.New(t, srv)
	env.LoadRealLibrary()
	cfg := writeConfig(t, env)
	id := testenv.RealLibraryID
	const old = "7407786e9f8c103e1cfd253ea4a9f238d4aa524f"
	if code, out, errs := seafbak("--config", cfg, "sync", id); code != 0 {
		t.Fatalf("sync: %d\n%s%s", code, out, errs)
	}

	dir := filepath.Join(t.TempDir(), "data")
	code, out, errs := seafbak("--config", cfg, "restore", "library", id, "--path", "/data", "--commit", old, "--to", dir)
	if code != 0 || !strings.Contains(out, `restored "/data" of commit `+old) || !strings.Contains(out, "1 files, 0 dirs") {
		t.Fatalf("restore --path /data: %d\n%s%s", code, out, errs)
	}
	if got, want := dirTree(t, dir), "3687a916a3053407fb578c1364d08c35e8c6b0b03b2b3ddc5b633c91651c48e3  307200  table.csv\n"; got != want {
		t.Fatalf("restored /data:\n%s\nwant\n%s", got, want)
	}

	dir = filepath.Join(t.TempDir(), "one file")
	code, out, errs = seafbak("--config", cfg, "restore", "library", id, "--path", "/café-renamed.txt", "--to", dir)
	if code != 0 || !strings.Contains(out, `restored "/café-renamed.txt" of commit 5715208e10e33de4ac89cd441c52d948df77125b`) {
		t.Fatalf("restore --path of a file: %d\n%s%s", code, out, errs)
	}
	b, err := os.ReadFile(filepath.Join(dir, "café-renamed.txt"))
	if err != nil || fmt.Sprintf("%x", sha256.Sum256(b)) != "72ef7765842795b68e6eade7a07ebb18187028917fe3e7db0535f4f2edfa8d23" {
		t.Fatalf("restored file: %q %v", b, err)
	}

	for _, c := range []struct {
		args []string
		code int
		says []string
	}{
		{[]string{"--path", "/from-desktop.txt", "--commit", old}, 1, []string{"/from-desktop.txt", "no such file or folder", old, "--list"}},
		{[]string{"--path", "/notes.md/x"}, 1, []string{"/notes.md is a file, not a folder"}},
		{[]string{"--path", "data/table.csv"}, 2, []string{"--path", "starting with /"}},
		{[]string{"--path", "/data/../notes.md"}, 2, []string{"--path", ".."}},
		{[]string{"--path", "/data//table.csv"}, 2, []string{"empty component"}},
		// A script's unset variable, milliseconds for seconds, --json where it does
		// nothing: refused, not the latest version restored as if asked for.
		{[]string{"--at", ""}, 2, []string{"--at is empty"}},
		{[]string{"--commit", ""}, 2, []string{"--commit is empty"}},
		{[]string{"--at", "9999999999999"}, 2, []string{"in the future", "not milliseconds"}},
		{[]string{"--json"}, 2, []string{"--json goes with --list"}},
	} {
		dir := filepath.Join(t.TempDir(), "out")
		code, out, errs := seafbak(append([]string{"--config", cfg, "restore", "library", id, "--to", dir}, c.args...)...)
		if code != c.code {
			t.Errorf("%v: exit %d, want %d\n%s%s", c.args, code, c.code, out, errs)
		}
		for _, s := range c.says {
			if !strings.Contains(errs, s) {
				t.Errorf("%v: stderr does not say %q:\n%s", c.args, s, errs)
			}
		}
		if _, err := os.Lstat(dir); !os.IsNotExist(err) {
			t.Errorf("%v: target created: %v", c.args, err)
		}
	}
	if code, _, errs := seafbak("--config", cfg, "restore", "library", id, "--list", "--path", "/data"); code != 2 || !strings.Contains(errs, "--path") {
		t.Fatalf("--list --path: %d %s", code, errs)
	}

	// Targets that cannot be used exit 2 naming the directory, whether the target is a
	// file, below a file or not writable; a commit not in the backup exits 1 pointing at
	// --list, naming the commit once (found by review: exit 1 with "stat ...: not a
	// directory", an unnamed probe file, "restore library: <id>: restore <id>: commit
	// X: commits X: ...").
	file := filepath.Join(t.TempDir(), "file")
	must(t, os.WriteFile(file, []byte("x"), 0o644))
	readOnly := filepath.Join(t.TempDir(), "read-only")
	must(t, os.Mkdir(readOnly, 0o555))
	targets := map[string]string{file: "not a directory", filepath.Join(file, "sub"): "a name above it is a file"}
	if os.Getuid() != 0 { // root writes anyway
		targets[readOnly] = "cannot be written"
	}
	for dir, says := range targets {
		code, out, errs := seafbak("--config", cfg, "restore", "library", id, "--to", dir)
		if code != 2 || !strings.Contains(errs, says) || !strings.Contains(errs, dir) {
			t.Errorf("--to %s: %d\n%s%s", dir, code, out, errs)
		}
	}
	missing := strings.Repeat("ab", 20)
	code, out, errs = seafbak("--config", cfg, "restore", "library", id, "--commit", missing, "--to", filepath.Join(t.TempDir(), "m"))
	if code != 1 || strings.Count(errs, missing) != 1 || strings.Count(errs, id) != 2 || !strings.Contains(errs, "--list") {
		t.Errorf("--commit not in the backup: %d\n%s%s", code, out, errs)
	}
}
