package seafgen

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	"seafbak/internal/mariadbtest"
)

// TestRowsMariaDB checks InsertRows and DeleteRows against Seafile's real
// schema on a private MariaDB server.
func TestRowsMariaDB(t *testing.T) {
	srv, err := mariadbtest.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Stop(); err != nil {
			t.Error(err)
		}
	})
	db := srv.TestDB(t, mariadbtest.SchemaFile("seafile.sql"))
	ctx := context.Background()

	count := func(q string, args ...any) int {
		t.Helper()
		var n int
		if err := db.QueryRowContext(ctx, q, args...).Scan(&n); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		return n
	}
	str := func(q string, args ...any) string {
		t.Helper()
		var s sql.NullString
		if err := db.QueryRowContext(ctx, q, args...).Scan(&s); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		return s.String
	}

	// The fixture's rows are reproduced.
	dir := t.TempDir()
	copyDir(t, filepath.Join(fixtureDir, "storage"), filepath.Join(dir, "storage"))
	g := New(dir)
	fx, err := g.OpenLibrary(fixtureRepo, fixtureHead, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if err := fx.InsertRows(ctx, db); err != nil {
		t.Fatal(err)
	}
	var (
		rName, rModifier             string
		rUpdate                      int64
		rVersion, rEncrypted, status int
		typ                          sql.NullString
	)
	if err := db.QueryRowContext(ctx, "SELECT name, update_time, version, is_encrypted, last_modifier, status, type FROM RepoInfo WHERE repo_id = ?",
		fixtureRepo).Scan(&rName, &rUpdate, &rVersion, &rEncrypted, &rModifier, &status, &typ); err != nil {
		t.Fatal(err)
	}
	if rName != "Shared" || rUpdate != 1795584699 || rVersion != 1 || rEncrypted != 0 || rModifier != "bob@example.com" || status != 0 || typ.Valid {
		t.Errorf("RepoInfo %q %d %d %d %q %d %v", rName, rUpdate, rVersion, rEncrypted, rModifier, status, typ)
	}
	if h := str("SELECT commit_id FROM Branch WHERE repo_id = ? AND name = 'master'", fixtureRepo); h != fixtureHead {
		t.Errorf("Branch %s", h)
	}
	if o := str("SELECT owner_id FROM RepoOwner WHERE repo_id = ?", fixtureRepo); o != "bob@example.com" {
		t.Errorf("owner %s", o)
	}
	if b := str("SELECT branch_name FROM RepoHead WHERE repo_id = ?", fixtureRepo); b != "master" {
		t.Errorf("RepoHead %s", b)
	}

	// A generated origin with a virtual library, truncated history and an
	// encrypted sibling.
	o, err := g.NewLibrary(LibraryOptions{Name: "Origin", Owner: "o@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	c1 := mustCommit(t)(o.Commit("c1", Put("shared/a", []byte("a"))))
	c2 := mustCommit(t)(o.Commit("c2", Put("b", []byte("b"))))
	v, err := g.NewVirtualLibrary(o, "shared", "")
	if err != nil {
		t.Fatal(err)
	}
	if err := o.TruncateBefore(c2); err != nil {
		t.Fatal(err)
	}
	e, err := g.NewLibrary(LibraryOptions{Encrypted: true})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // idempotent
		for _, l := range []*Library{o, v, e} {
			if err := l.InsertRows(ctx, db); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, table := range []string{"Repo", "Branch", "RepoHead", "RepoOwner", "RepoInfo"} {
		if n := count("SELECT COUNT(*) FROM "+table+" WHERE repo_id IN (?, ?, ?)", o.ID, v.ID, e.ID); n != 3 {
			t.Errorf("%s: %d rows", table, n)
		}
	}
	if n := count("SELECT COUNT(*) FROM VirtualRepo WHERE repo_id = ? AND origin_repo = ? AND path = '/shared' AND base_commit = ?", v.ID, o.ID, c2); n != 1 {
		t.Errorf("VirtualRepo rows: %d", n)
	}
	ctime2, _ := o.Ctime(c2)
	if n := count("SELECT COUNT(*) FROM RepoValidSince WHERE repo_id = ? AND timestamp = ?", o.ID, ctime2); n != 1 {
		t.Errorf("RepoValidSince rows: %d", n)
	}
	if n := count("SELECT is_encrypted FROM RepoInfo WHERE repo_id = ?", e.ID); n != 1 {
		t.Errorf("is_encrypted %d", n)
	}

	// Moving the head backwards and clearing ValidSince update the rows.
	o.SetHead(c1)
	o.ValidSince = 0
	if err := o.InsertRows(ctx, db); err != nil {
		t.Fatal(err)
	}
	if h := str("SELECT commit_id FROM Branch WHERE repo_id = ? AND name = 'master'", o.ID); h != c1 {
		t.Errorf("Branch after SetHead: %s", h)
	}
	if n := count("SELECT COUNT(*) FROM RepoValidSince WHERE repo_id = ?", o.ID); n != 0 {
		t.Errorf("stale RepoValidSince row")
	}

	// Deletion: rows go (with the virtual library's), a RepoTrash row comes.
	if _, err := db.ExecContext(ctx, "INSERT INTO RepoSize (repo_id, size, head_id) VALUES (?, 42, ?)", o.ID, c1); err != nil {
		t.Fatal(err)
	}
	if err := DeleteRows(ctx, db, o.ID); err != nil {
		t.Fatal(err)
	}
	for _, table := range []string{"Repo", "Branch", "RepoHead", "RepoOwner", "RepoInfo", "RepoSize", "RepoValidSince"} {
		if n := count("SELECT COUNT(*) FROM "+table+" WHERE repo_id IN (?, ?)", o.ID, v.ID); n != 0 {
			t.Errorf("%s: %d rows left", table, n)
		}
	}
	if n := count("SELECT COUNT(*) FROM VirtualRepo WHERE repo_id = ? OR origin_repo = ?", v.ID, o.ID); n != 0 {
		t.Errorf("VirtualRepo rows left: %d", n)
	}
	if n := count("SELECT COUNT(*) FROM RepoTrash WHERE repo_id = ? AND repo_name = 'Origin' AND head_id = ? AND owner_id = 'o@example.com' AND size = 42 AND org_id = -1 AND del_time > 0",
		o.ID, c1); n != 1 {
		t.Errorf("RepoTrash rows: %d", n)
	}
	if n := count("SELECT COUNT(*) FROM RepoTrash WHERE repo_id = ?", v.ID); n != 0 {
		t.Errorf("virtual library in the trash")
	}
	if n := count("SELECT COUNT(*) FROM Repo WHERE repo_id IN (?, ?)", e.ID, fixtureRepo); n != 2 {
		t.Errorf("other libraries deleted")
	}
	if err := DeleteRows(ctx, db, o.ID); err != nil {
		t.Errorf("second DeleteRows: %v", err)
	}
	if n := count("SELECT COUNT(*) FROM RepoTrash WHERE repo_id = ?", o.ID); n != 1 {
		t.Errorf("RepoTrash rows after second delete: %d", n)
	}
}
