package store

import (
	"context"
	"fmt"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"seafbak/internal/mariadbtest"
)

// Heads set together share one transaction; when it fails, each library is set alone,
// so one library's bad row fails only that library, and every other head moves.
func TestSharedHeadRoundFailsOnlyTheBadLibrary(t *testing.T) {
	srv, err := mariadbtest.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	if err := srv.CreateDatabase("rows", mariadbtest.SchemaFile("seafile.sql")); err != nil {
		t.Fatal(err)
	}
	db, err := srv.Open("rows")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows := NewRows(db)
	ctx := context.Background()
	repo := func(i int) string { return fmt.Sprintf("%08d-0000-4000-8000-000000000000", i) }
	head := func(i int) string { return fmt.Sprintf("%040x", i+1) }

	// Hold the first round inside its transaction (another connection locks Repo), so
	// that every other caller joins the second round.
	lock, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lock.ExecContext(ctx, "LOCK TABLES Repo WRITE"); err != nil {
		t.Fatal(err)
	}
	const n = 40
	const bad = 17 // its head does not fit Branch.commit_id (char(41)): the round fails
	errs := make([]error, n)
	var wg gosync.WaitGroup
	start := func(i int) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h := head(i)
			if i == bad {
				h = strings.Repeat("f", 60)
			}
			errs[i] = rows.SetHead(ctx, repo(i), h)
		}()
	}
	start(0)
	waitFor(t, func() bool { rows.mu.Lock(); defer rows.mu.Unlock(); return rows.running })
	for i := 1; i < n; i++ {
		start(i)
	}
	waitFor(t, func() bool {
		rows.mu.Lock()
		defer rows.mu.Unlock()
		return rows.next != nil && len(rows.next.heads) == n-1
	})
	if _, err := lock.ExecContext(ctx, "UNLOCK TABLES"); err != nil {
		t.Fatal(err)
	}
	lock.Close()
	wg.Wait()

	heads, err := rows.Heads(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		switch {
		case i == bad:
			if errs[i] == nil || !strings.Contains(errs[i].Error(), repo(i)) {
				t.Errorf("bad library: error %v, want one naming %s", errs[i], repo(i))
			}
			if _, ok := heads[repo(i)]; ok {
				t.Errorf("bad library has a head row")
			}
		case errs[i] != nil:
			t.Errorf("library %d failed with the bad one's round: %v", i, errs[i])
		case heads[repo(i)] != head(i):
			t.Errorf("library %d: head %q, want %q", i, heads[repo(i)], head(i))
		}
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out waiting")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// SetHeads and DeleteMany write many libraries' rows a thousand to a transaction: a
// restore server of 100 000 libraries made a commit, a flush of the database's log, for each.
func TestSetHeadsAndDeleteManyWriteAThousandATransaction(t *testing.T) {
	srv, err := mariadbtest.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	db := srv.TestDB(t, mariadbtest.SchemaFile("seafile.sql"))
	rows := NewRows(db)
	ctx := context.Background()
	want := map[string]string{}
	for i := range 2500 {
		want[fmt.Sprintf("%08d-0000-4000-8000-000000000000", i)] = fmt.Sprintf("%040x", i+1)
	}
	commits := func() int {
		var name string
		var n int
		if err := db.QueryRowContext(ctx, "SHOW GLOBAL STATUS LIKE 'Com_commit'").Scan(&name, &n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := commits()
	if err := rows.SetHeads(ctx, want); err != nil {
		t.Fatal(err)
	}
	if n := commits() - before; n != 3 {
		t.Errorf("%d commits for 2 500 heads, want 3", n)
	}
	heads, err := rows.Heads(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(heads) != len(want) {
		t.Fatalf("%d heads, want %d", len(heads), len(want))
	}
	for id, h := range want {
		if heads[id] != h {
			t.Fatalf("library %s: head %q, want %q", id, heads[id], h)
		}
	}
	var repos, repoHeads int
	if err := db.QueryRowContext(ctx, "SELECT (SELECT COUNT(*) FROM Repo), (SELECT COUNT(*) FROM RepoHead)").Scan(&repos, &repoHeads); err != nil {
		t.Fatal(err)
	}
	if repos != len(want) || repoHeads != len(want) {
		t.Fatalf("%d Repo rows and %d RepoHead rows, want %d", repos, repoHeads, len(want))
	}
	// Deleted libraries' rows go a thousand to a transaction too, and only theirs.
	var gone []string
	for id := range want {
		if len(gone) < 1200 {
			gone = append(gone, id)
			delete(want, id)
		}
	}
	before = commits()
	if err := rows.DeleteMany(ctx, gone); err != nil {
		t.Fatal(err)
	}
	if n := commits() - before; n != 2 {
		t.Errorf("%d commits to delete 1 200 libraries, want 2", n)
	}
	heads, err = rows.Heads(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(heads) != len(want) {
		t.Fatalf("%d heads after deleting 1 200 of 2 500, want %d", len(heads), len(want))
	}
	for id, h := range want {
		if heads[id] != h {
			t.Fatalf("library %s kept: head %q, want %q", id, heads[id], h)
		}
	}
	if err := db.QueryRowContext(ctx, "SELECT (SELECT COUNT(*) FROM Repo), (SELECT COUNT(*) FROM RepoHead)").Scan(&repos, &repoHeads); err != nil {
		t.Fatal(err)
	}
	if repos != len(want) || repoHeads != len(want) {
		t.Fatalf("after deleting: %d Repo rows and %d RepoHead rows, want %d", repos, repoHeads, len(want))
	}
	// The heads go in id order: a batch that fails is named by its lowest id, the same
	// at every run.
	bad := map[string]string{}
	for i := range 30 {
		bad[fmt.Sprintf("%08d-0000-4000-8000-000000000001", 9000+i)] = fmt.Sprintf("%040x", i+1)
	}
	bad["00009017-0000-4000-8000-000000000001"] = strings.Repeat("f", 300) // does not fit Branch.commit_id
	for range 3 {
		err := rows.SetHeads(ctx, bad)
		if err == nil || !strings.Contains(err.Error(), "00009000-0000-4000-8000-000000000001 and 29 other libraries") {
			t.Fatalf("a batch with a bad head: %v", err)
		}
	}
}
