package scan_test

import (
	"bytes"
	"context"
	"database/sql"
	"log/slog"
	"strings"
	"testing"

	"seafbak/internal/testenv"
	"seafbak/sync/primary"
)

// tokenEmails maps each library to the emails of its seafbak token rows.
func tokenEmails(t *testing.T, f *fixture) map[string][]string {
	t.Helper()
	got := map[string][]string{}
	for _, l := range f.libs {
		rows, err := f.env.PrimaryDB.Query("SELECT email FROM RepoUserToken WHERE repo_id = ? AND token = ?", l.ID, primary.Token(testenv.SyncToken, l.ID))
		must(t, err)
		for rows.Next() {
			var email string
			must(t, rows.Scan(&email))
			got[l.ID] = append(got[l.ID], email)
		}
		must(t, rows.Err())
		rows.Close()
	}
	return got
}

// A scan over HTTP creates the new libraries' tokens in batches before their syncs, and
// leaves what a batch cannot settle (a row naming another owner) to each library's sync.
func TestScanOverHTTPPreparesTokensInBatches(t *testing.T) {
	f := newFixture(t, 7)
	f.env.StartFileServer()
	ctx := context.Background()
	owned, moved := f.libs[0], f.libs[1]
	// Beside seafbak's rows, a desktop client's (a random token of its own).
	_, err := f.env.PrimaryDB.Exec("INSERT INTO RepoUserToken (repo_id, email, token) VALUES (?, ?, ?), (?, ?, ?), (?, ?, ?)",
		owned.ID, "u@example.com", primary.Token(testenv.SyncToken, owned.ID),
		moved.ID, "old-owner@example.com", primary.Token(testenv.SyncToken, moved.ID),
		moved.ID, "u@example.com", "3f2b9c0e5d1a4b7c8e6f0a1b2c3d4e5f60718293")
	must(t, err)

	libs, err := f.env.Catalog.Libraries(ctx)
	must(t, err)
	remote := primary.NewRemote(f.env.PrimaryDB, f.env.HTTP, testenv.SyncToken)
	must(t, remote.PrepareMany(ctx, libs))
	got := tokenEmails(t, f)
	for _, l := range f.libs {
		want := "u@example.com"
		if l == moved {
			want = "old-owner@example.com" // a batch never rewrites a row
		}
		if len(got[l.ID]) != 1 || got[l.ID][0] != want {
			t.Fatalf("after PrepareMany, %s's token rows name %v, want [%s]", l.ID, got[l.ID], want)
		}
	}

	sum, err := f.scanner(false).Run(ctx)
	must(t, err)
	if sum.Synced != 7 || sum.Failed != 0 {
		t.Fatalf("scan: %+v", sum)
	}
	backedUp(t, f)
	if got := tokenEmails(t, f)[moved.ID]; len(got) != 1 || got[0] != "u@example.com" {
		t.Fatalf("the row naming the old owner was not moved by the library's sync: %v", got)
	}
}

// A batch that fails (here a library listed twice, as a batch racing another seafbak's
// insert fails) inserts nothing and is only logged; each library's sync then prepares
// its own token and backs it up.
func TestFailedTokenBatchFallsBackToEachLibrary(t *testing.T) {
	f := newFixture(t, 4)
	f.env.StartFileServer()
	ctx := context.Background()
	libs, err := f.env.Catalog.Libraries(ctx)
	must(t, err)
	remote := primary.NewRemote(f.env.PrimaryDB, f.env.HTTP, testenv.SyncToken)
	err = remote.PrepareMany(ctx, append(libs, libs[0]))
	if err == nil || !strings.Contains(err.Error(), "RepoUserToken") {
		t.Fatalf("a batch with a duplicate row: %v", err)
	}
	if got := tokenEmails(t, f); len(got) != 0 {
		t.Fatalf("a failed batch left rows: %v", got)
	}
	eng := f.env.Engine(false)
	eng.Source = remote
	var logs bytes.Buffer
	eng.Log = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	eng.PrepareListed(ctx, append(libs, libs[0]))
	if !strings.Contains(logs.String(), "preparing the libraries in batches failed") {
		t.Fatalf("the failed batch was not logged:\n%s", logs.String())
	}
	for _, lib := range libs {
		if _, err := eng.SyncListed(ctx, lib); err != nil {
			t.Fatal(err)
		}
	}
	backedUp(t, f)
	if got := tokenEmails(t, f); len(got) != 4 {
		t.Fatalf("token rows after the syncs: %v", got)
	}
}

// backedUp checks every library of f is in the backup as on the primary.
func backedUp(t *testing.T, f *fixture) {
	t.Helper()
	for _, l := range f.libs {
		f.env.CompareWithPrimary(l.ID, l.StoreID, l.Head)
	}
}

// Without the INSERT grant the scan's batch fails (once, logged), and each library fails
// with the hint that names the grant, as a sync of that library alone would.
func TestScanWithoutTokenGrantNamesIt(t *testing.T) {
	f := newFixture(t, 3)
	f.env.StartFileServer()
	user := "scanro"
	must(t, srv.CreateUser(user, "pw", "SELECT ON `"+f.env.PrimaryDBName+"`.*"))
	db, err := sql.Open("mysql", srv.UserDSN(user, "pw", f.env.PrimaryDBName))
	must(t, err)
	defer db.Close()
	s := f.scanner(false)
	eng := f.env.Engine(false)
	eng.Source = primary.NewRemote(db, f.env.HTTP, testenv.SyncToken)
	var logs bytes.Buffer
	eng.Log = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	s.Engine = eng
	sum, err := s.Run(context.Background())
	must(t, err)
	if sum.Failed != 3 || len(sum.Failures) != 3 {
		t.Fatalf("scan: %+v", sum)
	}
	for _, fl := range sum.Failures {
		if !strings.Contains(fl.Error, "INSERT on RepoUserToken") {
			t.Fatalf("%s: %s", fl.RepoID, fl.Error)
		}
	}
	if n := strings.Count(logs.String(), "preparing the libraries in batches failed"); n != 1 || !strings.Contains(logs.String(), "libraries=3") {
		t.Fatalf("the scan's batch was logged %d times:\n%s", n, logs.String())
	}
}
