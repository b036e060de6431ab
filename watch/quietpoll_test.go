package watch

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	gosync "sync"
	"testing"
	"time"

	"seafbak/internal/testenv"
	"seafbak/state"
	seafsync "seafbak/sync"
	"seafbak/sync/primary"
)

// recordingEngine copies nothing: it records what it was asked in the state, as the
// engine would, and in asked.
type recordingEngine struct {
	noEngine
	st    *state.Dir
	mu    gosync.Mutex
	asked []string
}

func (e *recordingEngine) SyncListed(_ context.Context, lib primary.Library) (seafsync.Result, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.asked = append(e.asked, lib.ID+"@"+lib.Head)
	return seafsync.Result{Head: lib.Head}, e.st.Save(state.Library{ID: lib.ID, StoreID: lib.StoreID, Name: lib.Name, Head: lib.Head, LastSuccess: time.Now()})
}

func (e *recordingEngine) MarkDeleted(_ context.Context, id string) (seafsync.Result, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.asked = append(e.asked, "deleted "+id)
	rec, _, err := e.st.Load(id)
	if err != nil {
		return seafsync.Result{}, err
	}
	now := time.Now()
	rec.Deleted = &now
	return seafsync.Result{}, e.st.Save(rec)
}

func (e *recordingEngine) take() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	a := e.asked
	e.asked = nil
	slices.Sort(a)
	return a
}

// Between full comparisons, a poll of a primary where nothing moved does not list the
// libraries again (one query of the database's Print instead; a listing was 0.5 s at
// 100 000 libraries); a head that moves, a library that comes or goes, or a full
// comparison lists them.
func TestQuietPollsDoNotListAgain(t *testing.T) {
	env := testenv.New(t, srv)
	ctx := context.Background()
	id := func(n int) string { return fmt.Sprintf("%08x-aaaa-4bbb-8ccc-dddddddddddd", n) }
	head := func(n int) string { return fmt.Sprintf("%040x", n) }
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := env.PrimaryDB.Exec(q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	add := func(n int) {
		exec("INSERT INTO Repo (repo_id) VALUES (?)", id(n))
		exec("INSERT INTO Branch (name, repo_id, commit_id) VALUES ('master', ?, ?)", id(n), head(n))
		exec("INSERT INTO RepoInfo (repo_id, name, update_time, version, is_encrypted) VALUES (?, ?, 1764300000, 1, 0)", id(n), fmt.Sprint("lib", n))
		exec("INSERT INTO RepoOwner (repo_id, owner_id) VALUES (?, 'u@example.com')", id(n))
	}
	for n := 1; n <= 3; n++ {
		add(n)
	}
	st := newTestState(t)
	eng := &recordingEngine{st: st}
	listings := 0
	w := &Watcher{Engine: eng, Catalog: primary.Combine(env.Catalog, env.Objects), State: st, FullEvery: time.Hour,
		Listed: func([]primary.Library) { listings++ }}
	s := newScheduler(w.do, 1, time.Hour, time.Hour, slog.New(slog.DiscardHandler))
	poll := func(wantListings int, wantAsked ...string) {
		t.Helper()
		must(t, w.poll(ctx, s))
		s.wait()
		slices.Sort(wantAsked)
		if asked := eng.take(); listings != wantListings || !slices.Equal(asked, wantAsked) {
			t.Fatalf("after the poll: %d listings, asked %q; want %d, %q", listings, asked, wantListings, wantAsked)
		}
	}
	poll(1, id(1)+"@"+head(1), id(2)+"@"+head(2), id(3)+"@"+head(3))
	poll(1)
	poll(1)
	exec("UPDATE RepoInfo SET name = 'renamed' WHERE repo_id = ?", id(1))
	poll(1) // a rename alone waits for the next full comparison
	exec("UPDATE Branch SET commit_id = ? WHERE repo_id = ?", head(100), id(2))
	poll(2, id(2)+"@"+head(100))
	poll(2)
	add(4)
	poll(3, id(4)+"@"+head(4))
	exec("DELETE FROM Branch WHERE repo_id = ?", id(3))
	exec("DELETE FROM Repo WHERE repo_id = ?", id(3))
	poll(4, "deleted "+id(3))
	poll(4)
	w.CheckAll()
	poll(5) // a full comparison lists, and finds all backed up
	poll(5)
	// A failed query lists at the next poll.
	must(t, srv.Kill())
	t.Cleanup(func() {
		if !srv.Running() {
			srv.Restart() // for the package's other tests
		}
	})
	if err := w.poll(ctx, s); err == nil {
		t.Fatal("a poll with the database down succeeded")
	}
	must(t, srv.Restart())
	poll(6)
}
