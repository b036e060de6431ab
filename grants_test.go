package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"seafbak/internal/testenv"
)

// The MySQL grants the README gives are enough: seafbak runs scan, sync and status with
// exactly those, and no more.
func TestReadmeGrantsAreEnough(t *testing.T) {
	for _, source := range []string{"dir", "http"} {
		t.Run(source, func(t *testing.T) { readmeGrants(t, source) })
	}
}

func readmeGrants(t *testing.T, source string) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	env := testenv.New(t, srv)
	env.LoadRealLibrary()
	objects := "data_dir: " + env.PrimaryDir
	if source == "http" {
		objects = fmt.Sprintf("url: %s\n  sync_token: %s", env.StartFileServer().URL(), testenv.SyncToken)
	}
	re := regexp.MustCompile(`(?m)^GRANT (.+) ON seafile_db\.(\w+) TO 'seafbak'@'([\w-]+)';$`)
	var primaryGrants, backupGrants []string
	for _, m := range re.FindAllStringSubmatch(string(readme), -1) {
		switch m[3] {
		case "backup-host":
			primaryGrants = append(primaryGrants, fmt.Sprintf("%s ON `%s`.`%s`", m[1], env.PrimaryDBName, m[2]))
		case "localhost":
			backupGrants = append(backupGrants, fmt.Sprintf("%s ON `%s`.`%s`", m[1], env.BackupDBName, m[2]))
		}
	}
	if len(primaryGrants) < 5 || len(backupGrants) != 3 {
		t.Fatalf("README grants not found: %v %v", primaryGrants, backupGrants)
	}
	user := strings.ToLower(strings.ReplaceAll(env.PrimaryDBName, "_", ""))
	if len(user) > 30 {
		user = user[len(user)-30:]
	}
	if err := srv.CreateUser(user+"p", "pw-p", primaryGrants...); err != nil {
		t.Fatal(err)
	}
	if err := srv.CreateUser(user+"b", "pw-b", backupGrants...); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "seafbak.yml")
	text := fmt.Sprintf("primary:\n  db: \"%[1]sp@unix(%[2]s)/%[3]s\"\n  %[4]s\nbackup:\n  data_dir: %[5]s\n  db: \"%[1]sb@unix(%[2]s)/%[6]s\"\nstate: %[7]s\n",
		user, srv.Socket, env.PrimaryDBName, objects, env.BackupDir, env.BackupDBName, env.StateDir)
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SEAFBAK_PRIMARY_DB_PASSWORD", "pw-p")
	t.Setenv("SEAFBAK_BACKUP_DB_PASSWORD", "pw-b")
	for _, args := range [][]string{{"scan"}, {"sync", testenv.RealLibraryID}, {"status"}} {
		if code, out, errs := seafbak(append([]string{"--config", cfg}, args...)...); code != 0 {
			t.Fatalf("%v with the README's grants: %d\n%s%s", args, code, out, errs)
		}
	}
	if env.BackupHead(testenv.RealLibraryID) != "5715208e10e33de4ac89cd441c52d948df77125b" {
		t.Fatal("backup db not updated")
	}
	// A wrong password is refused with a message that does not show it.
	t.Setenv("SEAFBAK_PRIMARY_DB_PASSWORD", "wrong-secret")
	code, _, errs := seafbak("--config", cfg, "status")
	if code != 2 || strings.Contains(errs, "wrong-secret") || !strings.Contains(errs, "primary database") {
		t.Fatalf("wrong password: %d %s", code, errs)
	}
}

// A backup database without Seafile's schema, or a primary user short of a grant:
// sync (the hook) and scan exit 2, as for any configuration error, and the hint names
// the README section with the fix (found by review: sync exited 1 with a bare "Error
// 1146", as if the library had failed).
func TestMissingSchemaOrGrantNamesTheFix(t *testing.T) {
	env := testenv.New(t, srv)
	env.LoadRealLibrary()
	noSchema := env.BackupDBName + "_bare"
	if err := srv.CreateDatabase(noSchema); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "seafbak.yml")
	write := func(primaryUser, backupDB string) {
		text := fmt.Sprintf("primary:\n  db: \"%[1]s@unix(%[2]s)/%[3]s\"\n  data_dir: %[4]s\nbackup:\n  data_dir: %[5]s\n  db: \"root@unix(%[2]s)/%[6]s\"\nstate: %[7]s\n",
			primaryUser, srv.Socket, env.PrimaryDBName, env.PrimaryDir, env.BackupDir, backupDB, env.StateDir)
		if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("root", noSchema)
	for _, args := range [][]string{{"sync", testenv.RealLibraryID}, {"scan"}} {
		code, out, errs := seafbak(append([]string{"--config", cfg}, args...)...)
		if code != 2 || !strings.Contains(errs, "Seafile's own schema") {
			t.Errorf("%v, the backup database without Seafile's schema: %d\n%s%s", args, code, out, errs)
		}
	}

	user := strings.ToLower(strings.ReplaceAll(env.PrimaryDBName, "_", ""))
	if len(user) > 30 {
		user = user[len(user)-30:]
	}
	var grants []string // the README's, but for VirtualRepo
	for _, table := range []string{"Repo", "Branch", "RepoInfo", "RepoOwner", "OrgRepo", "RepoValidSince"} {
		grants = append(grants, fmt.Sprintf("SELECT ON `%s`.`%s`", env.PrimaryDBName, table))
	}
	if err := srv.CreateUser(user+"g", "pw-g", grants...); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SEAFBAK_PRIMARY_DB_PASSWORD", "pw-g")
	write(user+"g", env.BackupDBName)
	for _, args := range [][]string{{"sync", testenv.RealLibraryID}, {"scan"}} {
		code, out, errs := seafbak(append([]string{"--config", cfg}, args...)...)
		if code != 2 || !strings.Contains(errs, `"MySQL grants"`) {
			t.Errorf("%v, the primary user without a grant: %d\n%s%s", args, code, out, errs)
		}
	}
}
