package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"seafbak/internal/testenv"
)

// Found by review: a backup-database user short of the README's write grants is configuration:
// sync (the hook) exits 2 for it ("as scan does", says cmd_sync.go), but scan copies
// every library, fails each at its rows, records each library failed and exits 1, as
// if the libraries had failed.
func TestScanWithBackupGrantMissingExits2(t *testing.T) {
	env := testenv.New(t, srv)
	env.LoadRealLibrary()
	user := "rvw" + fmt.Sprint(os.Getpid()%100000)
	var grants []string
	for _, table := range []string{"Repo", "Branch", "RepoHead"} {
		grants = append(grants, fmt.Sprintf("SELECT ON `%s`.`%s`", env.BackupDBName, table))
	}
	must(t, srv.CreateUser(user, "pw-r", grants...))
	t.Setenv("SEAFBAK_BACKUP_DB_PASSWORD", "pw-r")
	cfg := filepath.Join(t.TempDir(), "seafbak.yml")
	text := fmt.Sprintf("primary:\n  db: \"root@unix(%[1]s)/%[2]s\"\n  data_dir: %[3]s\nbackup:\n  data_dir: %[4]s\n  db: \"%[6]s@unix(%[1]s)/%[5]s\"\nstate: %[7]s\n",
		srv.Socket, env.PrimaryDBName, env.PrimaryDir, env.BackupDir, env.BackupDBName, user, env.StateDir)
	must(t, os.WriteFile(cfg, []byte(text), 0o600))
	code, out, errs := seafbak("--config", cfg, "sync", testenv.RealLibraryID)
	t.Logf("sync: %d\n%s%s", code, out, errs)
	code, out, errs = seafbak("--config", cfg, "scan")
	t.Logf("scan: %d\n%s%s", code, out, errs)
	if code != 2 || !strings.Contains(errs, `"MySQL grants"`) {
		t.Errorf("scan with the backup user short of a grant: exit %d, want 2 and the grants hint", code)
	}
}
