package main

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"seafbak/internal/mariadbtest"
	"seafbak/internal/seafgen"
	"seafbak/internal/testenv"
)

func tables(t *testing.T, db *sql.DB) []string {
	t.Helper()
	names, err := mariadbtest.Tables(db)
	must(t, err)
	return names
}

func tableRows(t *testing.T, db *sql.DB, table string) []string {
	t.Helper()
	rows, err := mariadbtest.TableRows(db, table)
	must(t, err)
	return rows
}

// Dump the primary, fail over to a fresh database server: every table matches the
// primary's, the live tables match the backed-up heads, the store verifies; and restore
// refuses the primary's own server and databases that already hold data.
func TestDumpAndRestoreServer(t *testing.T) {
	env := testenv.New(t, srv)
	env.LoadRealLibrary()
	g := seafgen.New(env.PrimaryDir)
	g.BlockSize = 4096
	lib, err := g.NewLibrary(seafgen.LibraryOptions{Name: "Ünïcode", Owner: "zoë@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lib.Commit("files", seafgen.Put("a.txt", []byte("a")), seafgen.Put("b/c.bin", testenv.RandomBytes(9000, 1))); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := lib.InsertRows(ctx, env.PrimaryDB); err != nil {
		t.Fatal(err)
	}
	// ccnet and seahub databases on the primary's server, with a little data.
	ccnet, seahub := env.PrimaryDBName+"_ccnet", env.PrimaryDBName+"_seahub"
	must(t, srv.CreateDatabase(ccnet, mariadbtest.SchemaFile("ccnet.sql")))
	must(t, srv.CreateDatabase(seahub))
	cdb, err := srv.Open(ccnet)
	must(t, err)
	defer cdb.Close()
	_, err = cdb.Exec("INSERT INTO EmailUser (email, passwd, is_staff, is_active, ctime) VALUES ('zoë@example.com', 'PBKDF2SHA256$x', 0, 1, 1700000000)")
	must(t, err)
	sdb, err := srv.Open(seahub)
	must(t, err)
	defer sdb.Close()
	_, err = sdb.Exec("CREATE TABLE base_userstarredfiles (id int PRIMARY KEY AUTO_INCREMENT, email varchar(255), repo_id char(36), path longtext)")
	must(t, err)
	_, err = sdb.Exec("INSERT INTO base_userstarredfiles (email, repo_id, path) VALUES ('zoë@example.com', ?, '/b/c.bin')", lib.ID)
	must(t, err)

	dumpDir := filepath.Join(t.TempDir(), "dumps")
	cfg := writeConfig(t, env)
	appendConfig(t, cfg, fmt.Sprintf("dump:\n  dir: %s\n  keep: 2\n", dumpDir), map[string]string{
		"  data_dir: " + env.PrimaryDir: fmt.Sprintf("  data_dir: %s\n  ccnet_db: %s\n  seahub_db: %s", env.PrimaryDir, ccnet, seahub),
	})
	if code, out, errs := seafbak("--config", cfg, "scan"); code != 0 {
		t.Fatalf("scan: %d %s %s", code, out, errs)
	}
	code, out, errs := seafbak("--config", cfg, "dump")
	if code != 0 || !strings.Contains(out, "seafbak dump: "+dumpDir) {
		t.Fatalf("dump: %d %s %s", code, out, errs)
	}
	if _, out, _ := seafbak("--config", cfg, "status"); !strings.Contains(out, "Last database dump: ") {
		t.Fatalf("status does not show the dump:\n%s", out)
	}

	// Refuses the primary's own server.
	// Here backup.db and primary.db name one address: certain, whatever
	// --not-the-primary says (the identity check and its override are restore's tests).
	for _, args := range [][]string{{"restore", "server"}, {"restore", "server", "--not-the-primary"}} {
		code, _, errs = seafbak(append([]string{"--config", cfg}, args...)...)
		if code != 2 || !strings.Contains(errs, "refusing") || !strings.Contains(errs, "name the same server") {
			t.Fatalf("%v onto the primary's server: %d %s", args, code, errs)
		}
	}

	// A fresh backup database server.
	other, err := startOwnServer(t)
	must(t, err)
	failover := filepath.Join(t.TempDir(), "failover.yml")
	text := mustRead(t, cfg)
	text = strings.Replace(text, fmt.Sprintf("root@unix(%s)/%s", srv.Socket, env.BackupDBName), fmt.Sprintf("root@unix(%s)/seafile_db", other.Socket), 1)
	text = strings.Replace(text, "state: ", "  ccnet_db: ccnet_db\n  seahub_db: seahub_db\nstate: ", 1)
	must(t, os.WriteFile(failover, []byte(text), 0o600))
	code, out, errs = seafbak("--config", failover, "restore", "server")
	t.Log(out)
	if code != 0 || !strings.Contains(out, "The backup host is ready to serve") {
		t.Fatalf("restore server: %d\n%s%s", code, out, errs)
	}
	for _, pair := range []struct{ from, to string }{{env.PrimaryDBName, "seafile_db"}, {ccnet, "ccnet_db"}, {seahub, "seahub_db"}} {
		a, err := srv.Open(pair.from)
		must(t, err)
		b, err := other.Open(pair.to)
		must(t, err)
		ta, tb := tables(t, a), tables(t, b)
		if strings.Join(ta, ",") != strings.Join(tb, ",") {
			t.Fatalf("%s tables differ:\n%v\n%v", pair.to, ta, tb)
		}
		for _, table := range ta {
			if table == "Repo" || table == "Branch" || table == "RepoHead" {
				continue
			}
			if ra, rb := tableRows(t, a, table), tableRows(t, b, table); strings.Join(ra, "\n") != strings.Join(rb, "\n") {
				t.Errorf("%s.%s differs:\n%v\n%v", pair.to, table, ra, rb)
			}
		}
		if pair.to == "seafile_db" {
			for id, head := range map[string]string{testenv.RealLibraryID: "5715208e10e33de4ac89cd441c52d948df77125b", lib.ID: lib.Head} {
				var got string
				must(t, b.QueryRow("SELECT commit_id FROM Branch WHERE repo_id = ? AND name = 'master'", id).Scan(&got))
				if got != head {
					t.Errorf("restored head of %s: %s, want %s", id, got, head)
				}
			}
		}
		a.Close()
		b.Close()
	}

	// Again: the databases now hold data.
	code, _, errs = seafbak("--config", failover, "restore", "server")
	if code != 2 || !strings.Contains(errs, "already holds Seafile data") || !strings.Contains(errs, "--yes") {
		t.Fatalf("second restore: %d %s", code, errs)
	}
	if code, _, errs := seafbak("--config", failover, "restore", "server", "--yes", "--sample", "0"); code != 2 || !strings.Contains(errs, "--sample 0") {
		t.Fatalf("restore --sample 0: %d %s", code, errs)
	}
	// NaN passed a check of <= 0 || > 1: every database was loaded before it failed.
	if code, _, errs := seafbak("--config", failover, "restore", "server", "--yes", "--sample", "NaN"); code != 2 || !strings.Contains(errs, "--sample NaN") {
		t.Fatalf("restore --sample NaN: %d %s", code, errs)
	}
	code, out, errs = seafbak("--config", failover, "restore", "server", "--yes", "--sample", "0.5")
	if code != 0 || !strings.Contains(out, "(sample 50%)") {
		t.Fatalf("restore --yes --sample 0.5: %d %s %s", code, out, errs)
	}

	// From now on this host serves Seafile: no sync, scan or watch moves its rows.
	for _, args := range [][]string{{"sync", lib.ID}, {"scan"}, {"watch"}} {
		code, _, errs := seafbak(append([]string{"--config", failover}, args...)...)
		if code != 2 || !strings.Contains(errs, "failed-over.json") || !strings.Contains(errs, "stop seafbak's cron job") {
			t.Errorf("%s after the failover: %d %s", args[0], code, errs)
		}
	}
	// status says so, and is not healthy: the backups stand still.
	if code, out, errs := seafbak("--config", failover, "status", "--offline"); code != 1 || !strings.Contains(out, "This host serves Seafile since a failover") {
		t.Errorf("status after the failover: %d\n%s%s", code, out, errs)
	}
}

// appendConfig adds text to a config file and applies replacements.
func appendConfig(t *testing.T, path, extra string, replace map[string]string) {
	t.Helper()
	text := mustRead(t, path)
	for from, to := range replace {
		if !strings.Contains(text, from) {
			t.Fatalf("config has no %q", from)
		}
		text = strings.Replace(text, from, to, 1)
	}
	must(t, os.WriteFile(path, []byte(text+extra), 0o600))
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
