package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"seafbak/internal/testenv"
)

// A backup disk that is not mounted (backup.data_dir empty, or a wrong path) beside a
// state that records backed-up libraries: every command that would have made a new
// store there refuses (exit 2), naming the store and the likely cause, and makes
// nothing. scan would have copied every library's whole history onto the wrong
// filesystem; verify reported every library missing everything.
func TestCommandsRefuseAStoreThatIsNotThere(t *testing.T) {
	env := testenv.New(t, srv)
	env.LoadRealLibrary()
	cfg := writeConfig(t, env)
	if code, out, errs := seafbak("--config", cfg, "scan"); code != 0 {
		t.Fatalf("scan: %d\n%s%s", code, out, errs)
	}
	unmounted := filepath.Join(t.TempDir(), "mnt", "seafile-data")
	if err := os.MkdirAll(unmounted, 0o755); err != nil { // the mount point, empty
		t.Fatal(err)
	}
	cfgUnmounted := writeStoreConfig(t, env, "  data_dir: "+unmounted, env.StateDir)
	for _, args := range [][]string{
		{"scan"},
		{"sync", testenv.RealLibraryID},
		{"verify"},
		{"verify", "--repair"},
		{"restore", "library", testenv.RealLibraryID, "--to", filepath.Join(t.TempDir(), "out")},
	} {
		code, out, errs := seafbak(append([]string{"--config", cfgUnmounted}, args...)...)
		if code != 2 || !strings.Contains(errs, "is the backup disk mounted") || !strings.Contains(errs, unmounted) {
			t.Errorf("%v with the store not there: %d\n%s%s", args, code, out, errs)
		}
		if ents, err := os.ReadDir(unmounted); err != nil || len(ents) != 0 {
			t.Errorf("%v made %v in the empty mount point (%v)", args, ents, err)
		}
	}
	// A state that has backed up nothing makes its store, as on the first day.
	fresh := filepath.Join(t.TempDir(), "seafile-data")
	cfgFresh := writeStoreConfig(t, env, "  data_dir: "+fresh, filepath.Join(t.TempDir(), "state"))
	if code, out, errs := seafbak("--config", cfgFresh, "scan"); code != 0 {
		t.Fatalf("a first scan into a new store: %d\n%s%s", code, out, errs)
	}
}
