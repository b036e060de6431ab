package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"seafbak/internal/testenv"
)

// Found by review: a config without primary.ccnet_db / primary.seahub_db (both optional keys)
// makes `seafbak dump` dump the seafile database alone, exit 0 and say nothing on
// stderr, which is all cron mails (the README's recipe sends stdout to /dev/null, and
// status does not show a dump's roles). The set has no users, groups, shares or Seahub
// data; the admin learns it only at failover, where restore server loads the seafile
// database alone, reports "ready" and exits 0 with ccnet.conf pointing at "(not in the
// dump)".
func TestDumpWithoutCcnetAndSeahubWarns(t *testing.T) {
	env := testenv.New(t, srv)
	env.LoadRealLibrary()
	cfg := writeConfig(t, env)
	dumpDir := filepath.Join(t.TempDir(), "dumps")
	appendConfig(t, cfg, fmt.Sprintf("dump:\n  dir: %s\n", dumpDir), nil)
	if code, out, errs := seafbak("--config", cfg, "scan"); code != 0 {
		t.Fatalf("scan: %d %s %s", code, out, errs)
	}
	code, out, errs := seafbak("--config", cfg, "dump")
	t.Logf("dump: exit %d\nstdout: %s\nstderr: %s", code, out, errs)
	dumpWarned := code != 0 || strings.Contains(errs, "ccnet")

	// The failover that set leads to, on a fresh backup server with every database named.
	other, err := startOwnServer(t)
	must(t, err)
	failover := filepath.Join(t.TempDir(), "failover.yml")
	text := mustRead(t, cfg)
	text = strings.Replace(text, fmt.Sprintf("root@unix(%s)/%s", srv.Socket, env.BackupDBName), fmt.Sprintf("root@unix(%s)/seafile_db", other.Socket), 1)
	text = strings.Replace(text, "state: ", "  ccnet_db: ccnet_db\n  seahub_db: seahub_db\nstate: ", 1)
	must(t, os.WriteFile(failover, []byte(text), 0o600))
	code, out, errs = seafbak("--config", failover, "restore", "server")
	t.Logf("restore server: exit %d\n%s%s", code, out, errs)
	failoverWarned := code != 0 || !strings.Contains(out, "The backup host is ready to serve")
	if !strings.Contains(out, "no ccnet or seahub database") {
		t.Errorf("restore server of a set with neither ccnet nor seahub does not name both:\n%s", out)
	}

	if !dumpWarned {
		t.Errorf("dump without primary.ccnet_db/seahub_db: exit 0 and nothing on stderr; the set holds only the seafile database")
	}
	if !failoverWarned {
		t.Errorf("restore server of a set without ccnet/seahub, with backup.ccnet_db set: exit 0, \"ready to serve\" (Seafile has no users)")
	}
}
