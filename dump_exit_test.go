package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"seafbak/internal/testenv"
)

// dump exits 2, as every command does, when it could not run at all: a primary it
// cannot reach, or a database it cannot read. It exited 1. Its directory, made by the
// dump itself, is 0700: dumps hold password hashes.
func TestDumpThatCouldNotRunExits2(t *testing.T) {
	env := testenv.New(t, srv)
	cfg := writeConfig(t, env)
	dumpDir := filepath.Join(t.TempDir(), "dumps", "seafbak")
	appendConfig(t, cfg, fmt.Sprintf("dump:\n  dir: %s\n", dumpDir), nil)
	text := mustRead(t, cfg)

	unreachable := strings.Replace(text, "root@unix("+srv.Socket+")/"+env.PrimaryDBName, "root@unix("+filepath.Join(t.TempDir(), "no.sock")+")/"+env.PrimaryDBName, 1)
	must(t, os.WriteFile(cfg, []byte(unreachable), 0o600))
	if code, out, errs := seafbak("--config", cfg, "dump"); code != 2 || !strings.Contains(errs, "nothing was dumped") {
		t.Errorf("dump of a primary that does not answer: %d\n%s%s", code, out, errs)
	}

	noDB := strings.Replace(text, "/"+env.PrimaryDBName+`"`, `/no_such_db"`, 1)
	must(t, os.WriteFile(cfg, []byte(noDB), 0o600))
	if code, out, errs := seafbak("--config", cfg, "dump"); code != 2 || !strings.Contains(errs, "nothing was dumped") {
		t.Errorf("dump of a database that is not there: %d\n%s%s", code, out, errs)
	}
	fi, err := os.Stat(dumpDir)
	must(t, err)
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("dump.dir made %v, want 0700", fi.Mode().Perm())
	}
	must(t, os.WriteFile(cfg, []byte(text), 0o600))
	if code, out, errs := seafbak("--config", cfg, "dump"); code != 0 {
		t.Errorf("dump: %d\n%s%s", code, out, errs)
	}
}
