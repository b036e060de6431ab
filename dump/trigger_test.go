package dump

import (
	"context"
	"testing"

	"github.com/go-sql-driver/mysql"

	"seafbak/internal/mariadbtest"
)

// dump passes --triggers --routines; a seafile database with a trigger whose body has
// an unquoted INSERT or UPDATE at a line's start (as its author wrote it, and as
// mariadb-dump reproduces it) is dumped, and the set loads (found by review: the
// stricter filter failed every such dump).
func TestDumpWithATrigger(t *testing.T) {
	db := mariadbtest.DBName(t)
	must(t, srv.CreateDatabase(db, mariadbtest.SchemaFile("seafile.sql")))
	c, err := srv.Open(db)
	must(t, err)
	defer c.Close()
	for _, q := range []string{
		"CREATE TABLE owner_log (repo_id CHAR(36), owner_id VARCHAR(255))",
		"CREATE TABLE owner_count (n INT)",
		"CREATE TRIGGER owner_audit AFTER INSERT ON RepoOwner FOR EACH ROW\nBEGIN\n  INSERT INTO owner_log (repo_id, owner_id) VALUES (NEW.repo_id, NEW.owner_id);\n  UPDATE owner_count SET n = n + 1;\nEND",
	} {
		if _, err := c.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	set, err := Run(context.Background(), Options{Dir: t.TempDir(), Keep: 1, Databases: map[Role]*mysql.Config{Seafile: rootConfig(db)}})
	if err != nil {
		t.Fatalf("dump of a seafile database with a trigger: %v", err)
	}
	if err := set.Verify(); err != nil {
		t.Fatalf("the set: %v", err)
	}
}
