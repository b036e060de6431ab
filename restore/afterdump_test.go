package restore_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/go-sql-driver/mysql"

	"seafbak/dump"
	"seafbak/internal/mariadbtest"
	"seafbak/internal/seafgen"
	"seafbak/internal/testenv"
	"seafbak/restore"
)

// A library created on the primary after the last (nightly) dump and backed up by sync
// before the primary died: the loaded seafile database has no RepoOwner row for it, so
// Seahub listed it for no one, and the failover said nothing (found by review). It gets
// the owner seafbak recorded, and the failover names it.
func TestLibraryMadeAfterTheDumpGetsItsOwner(t *testing.T) {
	ctx := context.Background()
	env := testenv.New(t, srv)
	// An origin library the dump knows, with a folder shared (a virtual library)
	// only after the dump.
	g := seafgen.New(env.PrimaryDir)
	origin, err := g.NewLibrary(seafgen.LibraryOptions{Name: "Origin", Owner: "ann@example.com"})
	must(t, err)
	testenv.Commit(t, origin, "files", seafgen.Put("shared/a.txt", []byte("a")))
	env.Publish(origin)
	testenv.SyncOK(t, env.Engine(false), origin.ID)
	dumpDir := filepath.Join(t.TempDir(), "dumps")
	// The nightly dump: before the library exists.
	_, err = dump.Run(ctx, dump.Options{Dir: dumpDir, Databases: map[dump.Role]*mysql.Config{
		dump.Seafile: dbConfig(t, srv, env.PrimaryDBName)}})
	must(t, err)
	// The library is created during the day, and sync backs it up.
	env.LoadRealLibrary()
	testenv.SyncOK(t, env.Engine(false), testenv.RealLibraryID)
	virt, err := g.NewVirtualLibrary(origin, "shared", "Shared")
	must(t, err)
	env.Publish(virt)
	testenv.SyncOK(t, env.Engine(false), virt.ID)
	// An organisation's library, also made after the dump: owned through OrgRepo only.
	orgLib, err := g.NewLibrary(seafgen.LibraryOptions{Name: "Org's", Owner: "org-user@example.com"})
	must(t, err)
	testenv.Commit(t, orgLib, "files", seafgen.Put("b.txt", []byte("b")))
	env.Publish(orgLib)
	for _, stmt := range []string{"DELETE FROM RepoOwner WHERE repo_id = ?", "INSERT INTO OrgRepo (org_id, repo_id, user) VALUES (7, ?, 'org-user@example.com')"} {
		_, err := env.PrimaryDB.Exec(stmt, orgLib.ID)
		must(t, err)
	}
	testenv.SyncOK(t, env.Engine(false), orgLib.ID)
	var primaryOwner string
	must(t, env.PrimaryDB.QueryRow("SELECT owner_id FROM RepoOwner WHERE repo_id = ?", testenv.RealLibraryID).Scan(&primaryOwner))

	prefix := mariadbtest.DBName(t)
	res, err := restore.Failover(ctx, restore.FailoverOptions{
		DumpDir: dumpDir, Databases: map[dump.Role]*mysql.Config{dump.Seafile: dbConfig(t, srv, prefix+"_seafile")},
		Store: env.Store, State: env.State, NotThePrimary: true,
	})
	if err != nil {
		t.Fatalf("failover: %v", err)
	}
	t.Logf("rows %+v, verify ok %v, never backed up %d", res.Rows, res.Verify.OK(), len(res.NeverBackedUp))
	db, err := srv.Open(prefix + "_seafile")
	must(t, err)
	defer db.Close()
	var head string
	must(t, db.QueryRow("SELECT commit_id FROM Branch WHERE repo_id = ?", testenv.RealLibraryID).Scan(&head))
	var owner string
	must(t, db.QueryRow("SELECT owner_id FROM RepoOwner WHERE repo_id = ?", testenv.RealLibraryID).Scan(&owner))
	if owner != primaryOwner {
		t.Errorf("library %s served (head %s) owned by %q, want the primary's %q", testenv.RealLibraryID, head, owner, primaryOwner)
	}
	// The shared folder: Seafile would look for its files under its own id without its
	// VirtualRepo row, so it is not served (its files are in the origin).
	want := map[string]restore.NewerThanDump{
		testenv.RealLibraryID: {RepoID: testenv.RealLibraryID, Name: "Shared", Owner: primaryOwner, OwnerSet: true, StoreID: testenv.RealLibraryID},
		virt.ID:               {RepoID: virt.ID, Name: "Shared", Owner: "ann@example.com", Withdrawn: true, StoreID: origin.ID},
		orgLib.ID:             {RepoID: orgLib.ID, Name: "Org's", Owner: "org-user@example.com", OrgID: 7, OwnerSet: true, StoreID: orgLib.ID},
	}
	if len(res.NewerThanDump) != len(want) {
		t.Errorf("newer than the dump: %+v", res.NewerThanDump)
	}
	for _, n := range res.NewerThanDump {
		if w := want[n.RepoID]; n.OwnerSet != w.OwnerSet || n.Withdrawn != w.Withdrawn || n.StoreID != w.StoreID || n.OrgID != w.OrgID || n.Owner != w.Owner {
			t.Errorf("newer than the dump: %+v, want %+v", n, w)
		}
	}
	// The organisation's library goes back to its organisation, not to its user.
	var org int64
	var user string
	must(t, db.QueryRow("SELECT org_id, user FROM OrgRepo WHERE repo_id = ?", orgLib.ID).Scan(&org, &user))
	if org != 7 || user != "org-user@example.com" {
		t.Errorf("the organisation's library is in organisation %d of %q, want 7 of org-user@example.com", org, user)
	}
	var rows int
	must(t, db.QueryRow("SELECT COUNT(*) FROM RepoOwner WHERE repo_id = ?", orgLib.ID).Scan(&rows))
	if rows != 0 {
		t.Errorf("the organisation's library was also made its user's own")
	}
	must(t, db.QueryRow("SELECT COUNT(*) FROM Branch WHERE repo_id = ?", virt.ID).Scan(&rows))
	if rows != 0 {
		t.Errorf("the shared folder made after the dump is served without its VirtualRepo row")
	}
	must(t, db.QueryRow("SELECT COUNT(*) FROM Branch WHERE repo_id = ?", origin.ID).Scan(&rows))
	if rows != 1 {
		t.Errorf("the origin, in the dump, has %d branch rows", rows)
	}
}
