package mariadbtest

import (
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/go-sql-driver/mysql"
)

var srv *Server

func TestMain(m *testing.M) { Main(m, &srv) }

func seafileDB(t *testing.T) (string, *sql.DB) {
	t.Helper()
	name := DBName(t)
	if err := srv.CreateDatabase(name, SchemaFile("seafile.sql"), SchemaFile("ccnet.sql")); err != nil {
		t.Fatal(err)
	}
	db, err := srv.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return name, db
}

func TestCreateDatabaseLoadsSchema(t *testing.T) {
	t.Parallel()
	name, db := seafileDB(t)

	for _, table := range []string{"Repo", "Branch", "RepoHead", "RepoOwner", "EmailUser"} {
		var n int
		err := db.QueryRow(`SELECT COUNT(*) FROM information_schema.TABLES
			WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?`, name, table).Scan(&n)
		if err != nil {
			t.Fatal(err)
		}
		if n != 1 {
			t.Errorf("table %s.%s missing", name, table)
		}
	}
	var charset string
	err := db.QueryRow(`SELECT DEFAULT_CHARACTER_SET_NAME FROM information_schema.SCHEMATA
		WHERE SCHEMA_NAME = ?`, name).Scan(&charset)
	if err != nil {
		t.Fatal(err)
	}
	if charset != "utf8mb4" {
		t.Errorf("database charset = %q, want utf8mb4", charset)
	}
}

func TestCreateDatabaseReportsLaterStatementErrors(t *testing.T) {
	t.Parallel()
	f := filepath.Join(t.TempDir(), "bad.sql")
	sqlText := "CREATE TABLE ok1 (id INT);\nCREATE TABLE ok2 (id INT);\nTHIS IS NOT SQL;\n"
	if err := os.WriteFile(f, []byte(sqlText), 0o644); err != nil {
		t.Fatal(err)
	}
	err := srv.CreateDatabase(DBName(t), f)
	if err == nil || !strings.Contains(err.Error(), "bad.sql") {
		t.Fatalf("CreateDatabase with a broken third statement: err = %v, want a syntax error naming the file", err)
	}
}

func TestCreateUserSelectOnly(t *testing.T) {
	t.Parallel()
	name, root := seafileDB(t)
	if _, err := root.Exec("INSERT INTO Repo (repo_id) VALUES (?)", "repo-1"); err != nil {
		t.Fatal(err)
	}

	user, password := "reader", `p'w"\x;`
	if err := srv.CreateUser(user, password, "SELECT ON "+quoteIdent(name)+".*"); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("mysql", srv.UserDSN(user, password, name))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	var got string
	if err := db.QueryRow("SELECT repo_id FROM Repo").Scan(&got); err != nil {
		t.Fatalf("SELECT as %s: %v", user, err)
	}
	if got != "repo-1" {
		t.Errorf("repo_id = %q, want repo-1", got)
	}

	_, err = db.Exec("INSERT INTO Repo (repo_id) VALUES ('repo-2')")
	var me *mysql.MySQLError
	if !errors.As(err, &me) || me.Number != 1142 { // ER_TABLEACCESS_DENIED_ERROR
		t.Errorf("INSERT as %s: err = %v, want error 1142 (command denied)", user, err)
	}

	bad, err := sql.Open("mysql", srv.UserDSN(user, "wrong", name))
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	if err := bad.Ping(); err == nil {
		t.Error("login with a wrong password succeeded")
	}
}

// TestKillRestartStop uses its own server: killing the shared one would
// break the parallel tests.
func TestKillRestartStop(t *testing.T) {
	s, err := Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop() })

	if len(s.Socket) > maxSocketPath {
		t.Errorf("socket path %q is %d bytes", s.Socket, len(s.Socket))
	}
	if err := s.CreateDatabase("kept"); err != nil {
		t.Fatal(err)
	}
	db, err := s.Open("kept")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("CREATE TABLE t (v VARCHAR(20)) ENGINE=InnoDB"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("INSERT INTO t VALUES ('before kill')"); err != nil {
		t.Fatal(err)
	}

	pid := s.PID()
	if err := s.Kill(); err != nil {
		t.Fatal(err)
	}
	if s.Running() {
		t.Fatal("Running after Kill")
	}
	if err := db.Ping(); err == nil {
		t.Fatal("ping succeeded after Kill")
	}
	if _, err := os.Stat(s.Dir); err != nil {
		t.Fatalf("Dir gone after Kill: %v", err)
	}
	if err := s.Kill(); err == nil {
		t.Error("second Kill succeeded")
	}

	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	if s.PID() == pid || !s.Running() {
		t.Errorf("after Restart pid = %d (was %d), running = %v", s.PID(), pid, s.Running())
	}
	if err := s.Restart(); err == nil {
		t.Error("Restart of a running server succeeded")
	}
	var v string
	if err := db.QueryRow("SELECT v FROM t").Scan(&v); err != nil {
		t.Fatalf("after Kill+Restart: %v", err)
	}
	if v != "before kill" {
		t.Errorf("after Kill+Restart v = %q", v)
	}

	if _, err := db.Exec("INSERT INTO t VALUES ('before stop')"); err != nil {
		t.Fatal(err)
	}
	if err := s.StopKeep(); err != nil {
		t.Fatal(err)
	}
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := db.QueryRow("SELECT COUNT(*) FROM t").Scan(&n); err != nil || n != 2 {
		t.Fatalf("after StopKeep+Restart: %d rows, %v; want 2", n, err)
	}

	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.Dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Dir after Stop: %v, want not exist", err)
	}
	if err := s.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	if err := s.Restart(); err == nil {
		t.Error("Restart after Stop succeeded")
	}
}

func TestStopAfterKillRemovesDir(t *testing.T) {
	s, err := Start()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.Dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Dir after Kill+Stop: %v, want not exist", err)
	}
}

func TestDBName(t *testing.T) {
	valid := regexp.MustCompile(`^[a-z0-9_]{1,64}$`)
	seen := map[string]bool{}
	check := func(t *testing.T) {
		for range 2 {
			n := DBName(t)
			if !valid.MatchString(n) {
				t.Errorf("DBName = %q: not a plain identifier of at most 64 bytes", n)
			}
			if seen[n] {
				t.Errorf("DBName = %q twice", n)
			}
			seen[n] = true
		}
	}
	check(t)
	t.Run("sub test/with:odd chars-ÄÖ", check)
	t.Run(strings.Repeat("very_long_", 20), check)
}

func TestSchemaFile(t *testing.T) {
	for _, name := range []string{"seafile.sql", "ccnet.sql"} {
		p := SchemaFile(name)
		if !filepath.IsAbs(p) {
			t.Errorf("SchemaFile(%q) = %q, not absolute", name, p)
		}
		if _, err := os.Stat(p); err != nil {
			t.Error(err)
		}
	}
}
