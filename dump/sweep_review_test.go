package dump

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/go-sql-driver/mysql"

	"seafbak/internal/mariadbtest"
)

// Found by review: Options.Dir says "Run never touches anything in it but sets, and .tmp-
// directories it made", but sweepStale (with the lock held: stale = 0) deletes every
// directory whose name starts with ".tmp-", whoever made it and however young. A
// dump.dir shared with anything else (e.g. /var/backups) loses such directories.
func TestSweepLeavesForeignTmpDirs(t *testing.T) {
	db := mariadbtest.DBName(t)
	must(t, srv.CreateDatabase(db, mariadbtest.SchemaFile("seafile.sql")))
	dir := t.TempDir()
	foreign := filepath.Join(dir, ".tmp-other-program")
	must(t, os.MkdirAll(filepath.Join(foreign, "work"), 0o700))
	must(t, os.WriteFile(filepath.Join(foreign, "work", "data"), []byte("not seafbak's"), 0o600))
	_, err := Run(context.Background(), Options{Dir: dir, Databases: map[Role]*mysql.Config{Seafile: rootConfig(db)}})
	must(t, err)
	if _, err := os.Stat(filepath.Join(foreign, "work", "data")); err != nil {
		t.Errorf("a young .tmp- directory seafbak did not make was deleted by the dump: %v", err)
	}
}
