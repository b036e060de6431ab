package main

import (
	"os"
	"path/filepath"
	"testing"

	"seafbak/internal/testenv"
)

// Found by review: --to=~/DIR (no shell expands a tilde after "=") went to the home directory while --to
// was kong's path type; after 1f0d731 it restored into ./~/DIR of the current directory.
func TestRestoreToTildeIsTheHomeDir(t *testing.T) {
	env := testenv.New(t, srv)
	env.LoadRealLibrary()
	cfg := writeConfig(t, env)
	id := testenv.RealLibraryID
	if code, out, errs := seafbak("--config", cfg, "sync", id); code != 0 {
		t.Fatalf("sync: %d %s%s", code, out, errs)
	}
	home, cwd := t.TempDir(), t.TempDir()
	t.Setenv("HOME", home)
	t.Chdir(cwd)
	code, out, errs := seafbak("--config", cfg, "restore", "library", id, "--to=~/restored")
	if _, err := os.Stat(filepath.Join(cwd, "~")); err == nil {
		t.Fatalf("restore --to=~/restored (exit %d) made a directory literally named ~ in the current directory\n%s%s", code, out, errs)
	}
	if fi, err := os.Stat(filepath.Join(home, "restored")); code != 0 || err != nil || !fi.IsDir() {
		t.Errorf("restore --to=~/restored: exit %d, %v: not restored into the home directory\n%s%s", code, err, out, errs)
	}
}
