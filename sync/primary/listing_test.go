package primary

import (
	"context"
	"database/sql"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"seafbak/internal/mariadbtest"
)

var srv *mariadbtest.Server

func TestMain(m *testing.M) { mariadbtest.Main(m, &srv) }

// seafileDB is a fresh primary database with Seafile's schema.
func seafileDB(t testing.TB) *sql.DB { return srv.TestDB(t, mariadbtest.SchemaFile("seafile.sql")) }

func execAll(t *testing.T, db *sql.DB, stmts ...string) {
	t.Helper()
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// joinedLibraries is the listing as one query of libraryQuery: the reference the
// table-at-a-time listing must agree with.
func joinedLibraries(t *testing.T, db *sql.DB) (map[string]Library, error) {
	rows, err := db.Query(libraryQuery)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	libs := map[string]Library{}
	for rows.Next() {
		lib, err := scanLibrary(rows)
		if err != nil {
			return nil, err
		}
		libs[lib.ID] = lib
	}
	return libs, rows.Err()
}

func repoID(n int) string   { return fmt.Sprintf("%08x-1111-4222-8333-444444444444", n) }
func commitID(n int) string { return fmt.Sprintf("%040x", 0xc0ffee00+n) }

// library writes the rows every library has: Repo and its master Branch.
func library(n int) []string {
	return []string{
		fmt.Sprintf("INSERT INTO Repo (repo_id) VALUES ('%s')", repoID(n)),
		fmt.Sprintf("INSERT INTO Branch (name, repo_id, commit_id) VALUES ('master', '%s', '%s')", repoID(n), commitID(n)),
	}
}

// The listing joins Seafile's tables as libraryQuery does, in every shape a real
// server's rows take: plain, encrypted, organisation and virtual libraries, owners from
// RepoOwner or OrgRepo or the origin's, rows missing, NULL columns.
func TestLibrariesJoinsAsTheQueryDoes(t *testing.T) {
	db := seafileDB(t)
	ctx := context.Background()
	var stmts []string
	for n := 1; n <= 14; n++ {
		if n != 5 && n != 6 {
			stmts = append(stmts, library(n)...)
		}
	}
	info := func(n int, cols string) string {
		return fmt.Sprintf("INSERT INTO RepoInfo (repo_id, name, update_time, version, is_encrypted) VALUES ('%s', %s)", repoID(n), cols)
	}
	owner := func(n int, who string) string {
		return fmt.Sprintf("INSERT INTO RepoOwner (repo_id, owner_id) VALUES ('%s', %s)", repoID(n), who)
	}
	org := func(n int, who string) string {
		return fmt.Sprintf("INSERT INTO OrgRepo (org_id, repo_id, user) VALUES (%d, '%s', %s)", n, repoID(n), who)
	}
	virtual := func(n, origin int) string {
		return fmt.Sprintf("INSERT INTO VirtualRepo (repo_id, origin_repo, path, base_commit) VALUES ('%s', '%s', '/sub', '%s')", repoID(n), repoID(origin), commitID(origin))
	}
	stmts = append(stmts,
		// 1: plain, with another branch beside master.
		info(1, "'Plain', 1764300001, 1, 0"), owner(1, "'alice@example.com'"),
		fmt.Sprintf("INSERT INTO Branch (name, repo_id, commit_id) VALUES ('local', '%s', '%s')", repoID(1), commitID(99)),
		// 2: encrypted, version 2, history limited.
		info(2, "'Secret', 1764300002, 2, 1"), owner(2, "'bob@example.com'"),
		fmt.Sprintf("INSERT INTO RepoValidSince (repo_id, timestamp) VALUES ('%s', 1700000000)", repoID(2)),
		// 3: an organisation's library (OrgRepo only).
		info(3, "'Org', 1764300003, 1, 0"), org(3, "'carol@org.example.com'"),
		// 4: both owners: RepoOwner's wins.
		info(4, "'Both', 1764300004, 1, 0"), owner(4, "'dave@example.com'"), org(4, "'dave@org.example.com'"),
		// 5: a master branch without a Repo row; 6: a Repo row without a branch.
		fmt.Sprintf("INSERT INTO Branch (name, repo_id, commit_id) VALUES ('master', '%s', '%s')", repoID(5), commitID(5)),
		fmt.Sprintf("INSERT INTO Repo (repo_id) VALUES ('%s')", repoID(6)),
		info(5, "'No repo', 1, 1, 0"), info(6, "'No branch', 1, 1, 0"),
		// 7: virtual library of 1, with an owner row of its own: the origin's owner wins.
		virtual(7, 1), info(7, "'Sub of plain', 1764300007, 1, 0"), owner(7, "'sharee@example.com'"),
		// 8: virtual library of the organisation's library 3.
		virtual(8, 3), info(8, "'Sub of org', 1764300008, 1, 0"),
		// 9: virtual library of 20, which has an owner but no Repo or Branch row.
		virtual(9, 20), owner(20, "'gone@example.com'"), info(9, "'Sub of gone', 1764300009, 1, 0"),
		// 10: virtual library of 6 (no branch, no owner): its own owner.
		virtual(10, 6), owner(10, "'own@example.com'"),
		// 11: no RepoInfo row at all. 12: RepoInfo's nullable columns NULL.
		owner(11, "'erin@example.com'"),
		info(12, "'Nulls', NULL, NULL, NULL"),
		// 13: a NULL owner in RepoOwner passes to OrgRepo's.
		info(13, "'Null owner', 1764300013, 1, 0"), owner(13, "NULL"), org(13, "'frank@org.example.com'"),
		// 14: a VirtualRepo row without an origin.
		fmt.Sprintf("INSERT INTO VirtualRepo (repo_id, origin_repo, path) VALUES ('%s', NULL, '/x')", repoID(14)),
		// A master branch of nothing.
		"INSERT INTO Branch (name, repo_id, commit_id) VALUES ('master', NULL, NULL)",
	)
	execAll(t, db, stmts...)

	want, err := joinedLibraries(t, db)
	if err != nil {
		t.Fatal(err)
	}
	cat := NewDB(db)
	got, err := cat.Libraries(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) || len(want) != 12 {
		t.Fatalf("listed %d libraries, the query %d, want 12", len(got), len(want))
	}
	for _, lib := range got {
		if !reflect.DeepEqual(lib, want[lib.ID]) {
			t.Errorf("library %s:\n listed %+v\n query  %+v", lib.ID, lib, want[lib.ID])
		}
		one, err := cat.Library(ctx, lib.ID)
		if err != nil || !reflect.DeepEqual(one, lib) {
			t.Errorf("library %s: Library says %+v (%v)", lib.ID, one, err)
		}
	}
	// The shapes the query gives, spelt out, so that agreeing is not agreeing on nothing.
	check := func(n int, f func(Library) bool) {
		t.Helper()
		for _, lib := range got {
			if lib.ID == repoID(n) {
				if !f(lib) {
					t.Errorf("library %d: %+v", n, lib)
				}
				return
			}
		}
		t.Errorf("library %d not listed", n)
	}
	check(1, func(l Library) bool {
		return l.Name == "Plain" && l.Owner == "alice@example.com" && l.Head == commitID(1) && !l.Virtual() && l.HeadTime.Unix() == 1764300001
	})
	check(2, func(l Library) bool { return l.Encrypted && l.Version == 2 && l.ValidSince == 1700000000 })
	check(3, func(l Library) bool { return l.Owner == "carol@org.example.com" && l.OrgID == 3 })
	check(4, func(l Library) bool { return l.Owner == "dave@example.com" && l.OrgID == 0 })
	check(7, func(l Library) bool { return l.StoreID == repoID(1) && l.Owner == "alice@example.com" })
	check(8, func(l Library) bool { return l.StoreID == repoID(3) && l.Owner == "carol@org.example.com" })
	check(9, func(l Library) bool { return l.StoreID == repoID(20) && l.Owner == "gone@example.com" })
	check(10, func(l Library) bool { return l.StoreID == repoID(6) && l.Owner == "own@example.com" })
	check(11, func(l Library) bool { return l.Name == "" && l.Version == 1 && !l.Encrypted && l.HeadTime.IsZero() })
	check(12, func(l Library) bool {
		return l.Name == "Nulls" && l.Version == 1 && !l.Encrypted && l.HeadTime.IsZero()
	})
	check(13, func(l Library) bool { return l.Owner == "frank@org.example.com" && l.OrgID == 13 })
	check(8, func(l Library) bool { return l.OrgID == 0 }) // its owner is its origin's
	check(14, func(l Library) bool { return l.StoreID == l.ID })

	// The Print the database computes is the one the listing computed from the rows;
	// every change a listing depends on changes it, a rename does not.
	_, p, changed, err := cat.LibrariesSince(ctx, Print{})
	if err != nil || !changed || !p.valid {
		t.Fatalf("first listing: changed %v, print %+v, %v", changed, p, err)
	}
	for _, c := range []struct{ what, stmt string }{
		{"", ""},
		{"", fmt.Sprintf("UPDATE RepoInfo SET name = 'Renamed' WHERE repo_id = '%s'", repoID(1))},
		{"a head moved", fmt.Sprintf("UPDATE Branch SET commit_id = '%s' WHERE repo_id = '%s' AND name = 'master'", commitID(50), repoID(1))},
		{"a library's Repo row came", fmt.Sprintf("INSERT INTO Repo (repo_id) VALUES ('%s')", repoID(5))},
		{"a library was made virtual", fmt.Sprintf("UPDATE VirtualRepo SET origin_repo = '%s' WHERE repo_id = '%s'", repoID(2), repoID(14))},
		{"a library is no longer virtual", fmt.Sprintf("DELETE FROM VirtualRepo WHERE repo_id = '%s'", repoID(7))},
		{"a RepoInfo row came", info(11, "'Late', 1764300011, 1, 1")},
		{"a branch went", fmt.Sprintf("DELETE FROM Branch WHERE repo_id = '%s'", repoID(3))},
		{"a Repo row went", fmt.Sprintf("DELETE FROM Repo WHERE repo_id = '%s'", repoID(4))},
	} {
		if c.stmt != "" {
			execAll(t, db, c.stmt)
		}
		libs, p2, changed, err := cat.LibrariesSince(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		if changed != (c.what != "") || (changed && p2 == p) || (!changed && (p2 != p || libs != nil)) {
			t.Fatalf("after %q (%s): changed %v, print %+v, was %+v", c.stmt, c.what, changed, p2, p)
		}
		if changed {
			if want, err := joinedLibraries(t, db); err != nil || len(want) != len(libs) {
				t.Fatalf("after %q: listed %d, the query %d (%v)", c.stmt, len(libs), len(want), err)
			}
			if _, p3, again, err := cat.LibrariesSince(ctx, p2); err != nil || again || p3 != p2 {
				t.Fatalf("after %q, asked again: changed %v, %v", c.stmt, again, err)
			}
		}
		p = p2
	}

	// A row whose head or origin cannot be trusted fails that library alone, named:
	// the others are listed as before (found by review: one bad row stopped every
	// library's backup).
	all, err := cat.Libraries(ctx)
	if err != nil {
		t.Fatal(err)
	}
	listedWith := func(what, id, want string) {
		t.Helper()
		libs, err := cat.Libraries(ctx)
		if err != nil {
			t.Fatalf("%s: the listing failed: %v", what, err)
		}
		found := 0
		for _, l := range libs {
			switch {
			case l.ID == id:
				found++
				if l.HeadError == nil || !strings.Contains(l.HeadError.Error(), want) || l.StoreID != l.ID {
					t.Errorf("%s: %+v", what, l)
				}
			case l.HeadError != nil:
				t.Errorf("%s: another library failed too: %+v", what, l)
			}
		}
		if found != 1 || len(libs) != len(all) {
			t.Errorf("%s: listed %d libraries (the bad one %d times), want %d", what, len(libs), found, len(all))
		}
	}
	execAll(t, db, fmt.Sprintf("UPDATE Branch SET commit_id = 'not-a-commit' WHERE repo_id = '%s' AND name = 'master'", repoID(2)))
	listedWith("bad head", repoID(2), "Branch row of "+repoID(2))
	execAll(t, db, fmt.Sprintf("UPDATE Branch SET commit_id = NULL WHERE repo_id = '%s' AND name = 'master'", repoID(2)))
	listedWith("NULL head", repoID(2), "Branch row of "+repoID(2))
	execAll(t, db, fmt.Sprintf("UPDATE Branch SET commit_id = '%s' WHERE repo_id = '%s' AND name = 'master'", commitID(2), repoID(2)),
		fmt.Sprintf("UPDATE VirtualRepo SET origin_repo = '../../etc' WHERE repo_id = '%s'", repoID(8)))
	listedWith("bad origin", repoID(8), "VirtualRepo row of "+repoID(8))
}
