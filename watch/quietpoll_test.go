package watch

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
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
	fail  map[string]bool // libraries whose syncs and deletions fail, recording nothing
}

func (e *recordingEngine) SyncListed(_ context.Context, lib primary.Library) (seafsync.Result, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.asked = append(e.asked, lib.ID+"@"+lib.Head)
	if e.fail[lib.ID] {
		return seafsync.Result{}, errors.New("primary unreachable")
	}
	return seafsync.Result{Head: lib.Head}, e.st.Save(state.Library{ID: lib.ID, StoreID: lib.StoreID, Name: lib.Name, Head: lib.Head, LastSuccess: time.Now()})
}

func (e *recordingEngine) MarkDeleted(_ context.Context, id string) (seafsync.Result, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.asked = append(e.asked, "deleted "+id)
	if e.fail[id] {
		return seafsync.Result{}, errors.New("backup database unreachable")
	}
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

// primaryRows writes libraries into a test primary's tables as Seafile does.
type primaryRows struct {
	t   *testing.T
	db  *sql.DB
	tag string // the last group of the libraries' ids
}

func (p primaryRows) id(n int) string { return fmt.Sprintf("%08x-aaaa-4bbb-8ccc-%s", n, p.tag) }
func head(n int) string               { return fmt.Sprintf("%040x", n) }

func (p primaryRows) exec(q string, args ...any) {
	p.t.Helper()
	if _, err := p.db.Exec(q, args...); err != nil {
		p.t.Fatalf("%s: %v", q, err)
	}
}

// add makes library n, at head n.
func (p primaryRows) add(n int) {
	p.t.Helper()
	p.exec("INSERT INTO Repo (repo_id) VALUES (?)", p.id(n))
	p.exec("INSERT INTO Branch (name, repo_id, commit_id) VALUES ('master', ?, ?)", p.id(n), head(n))
	p.exec("INSERT INTO RepoInfo (repo_id, name, update_time, version, is_encrypted) VALUES (?, ?, 1764300000, 1, 0)", p.id(n), fmt.Sprint("lib", n))
	p.exec("INSERT INTO RepoOwner (repo_id, owner_id) VALUES (?, 'u@example.com')", p.id(n))
}

// Between full comparisons, a poll of a primary where nothing moved does not list the
// libraries again (one query of the database's Print instead; a listing was 0.5 s at
// 100 000 libraries); a head that moves, a library that comes or goes, or a full
// comparison lists them.
func TestQuietPollsDoNotListAgain(t *testing.T) {
	env := testenv.New(t, srv)
	ctx := context.Background()
	p := primaryRows{t, env.PrimaryDB, "dddddddddddd"}
	id, exec, add := p.id, p.exec, p.add
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

// Between full comparisons, a poll that reuses the last listing (the primary's Print is
// unchanged) reads only the records of unsettled libraries that hold no job: a sync that
// failed, and a deletion that could not be recorded, are each asked for again after one
// record read, and nothing else is read.
func TestReusedListingsLookOnlyAtUnsettledLibraries(t *testing.T) {
	env := testenv.New(t, srv)
	ctx := context.Background()
	p := primaryRows{t, env.PrimaryDB, "eeeeeeeeeeee"}
	id, exec := p.id, p.exec
	for n := 1; n <= 20; n++ {
		p.add(n)
	}
	st := newTestState(t)
	eng := &recordingEngine{st: st, fail: map[string]bool{id(7): true, id(13): true}}
	listings := 0
	w := &Watcher{Engine: eng, Catalog: primary.Combine(env.Catalog, env.Objects), State: st, FullEvery: time.Hour,
		Listed: func([]primary.Library) { listings++ }}
	// No backoff: a failed library is asked for again at each poll that reads its record.
	s := newScheduler(w.do, 1, 0, 0, slog.New(slog.DiscardHandler))
	poll := func(wantListings, wantRead int, wantAsked ...string) {
		t.Helper()
		before := w.recordsRead
		must(t, w.poll(ctx, s))
		s.wait()
		slices.Sort(wantAsked)
		asked, read := eng.take(), w.recordsRead-before
		if listings != wantListings || read != wantRead || !slices.Equal(asked, wantAsked) {
			t.Fatalf("after the poll: %d listings, %d records read, asked %q; want %d, %d, %q", listings, read, asked, wantListings, wantRead, wantAsked)
		}
	}
	var all []string
	for n := 1; n <= 20; n++ {
		all = append(all, id(n)+"@"+head(n))
	}
	poll(1, 0, all...) // the first poll is a full comparison: every record read at once
	poll(1, 2, id(7)+"@"+head(7), id(13)+"@"+head(13))
	poll(1, 2, id(7)+"@"+head(7), id(13)+"@"+head(13))
	eng.fail = map[string]bool{id(5): true}
	poll(1, 2, id(7)+"@"+head(7), id(13)+"@"+head(13)) // both back up now
	poll(1, 0)
	// Library 5 leaves the primary, and its deletion cannot be recorded: the poll that
	// lists the change asks for it, and the polls that reuse that listing ask again.
	exec("DELETE FROM Branch WHERE repo_id = ?", id(5))
	exec("DELETE FROM Repo WHERE repo_id = ?", id(5))
	poll(2, 1, "deleted "+id(5))
	poll(2, 1, "deleted "+id(5))
	eng.fail = nil
	poll(2, 1, "deleted "+id(5))
	poll(2, 0)
	poll(2, 0)
}

// A head that a targeted round (a notification, a webhook) saw move, and that then came
// back to where the last listing had it (seaf-fsck resetting a branch), is compared
// again at the next poll: the listing is not reused as if nothing had moved.
func TestHeadBackWhereTheListingHadIt(t *testing.T) {
	env := testenv.New(t, srv)
	ctx := context.Background()
	p := primaryRows{t, env.PrimaryDB, "cccccccccccc"}
	id, exec := p.id, p.exec
	for n := 1; n <= 3; n++ {
		p.add(n)
	}
	st := newTestState(t)
	eng := &recordingEngine{st: st}
	w := &Watcher{Engine: eng, Catalog: primary.Combine(env.Catalog, env.Objects), State: st, FullEvery: time.Hour}
	s := newScheduler(w.do, 1, time.Hour, time.Hour, slog.New(slog.DiscardHandler))
	must(t, w.poll(ctx, s))
	s.wait()
	eng.take()
	exec("UPDATE Branch SET commit_id = ? WHERE repo_id = ?", head(200), id(2))
	must(t, w.pollSome(ctx, s, []string{id(2)}))
	s.wait()
	if asked := eng.take(); !slices.Equal(asked, []string{id(2) + "@" + head(200)}) {
		t.Fatalf("the targeted round asked %q", asked)
	}
	exec("UPDATE Branch SET commit_id = ? WHERE repo_id = ?", head(2), id(2))
	must(t, w.poll(ctx, s))
	s.wait()
	if asked := eng.take(); !slices.Equal(asked, []string{id(2) + "@" + head(2)}) {
		t.Fatalf("after the head came back, the poll asked %q; want %s@%s", asked, id(2), head(2))
	}
}

// BenchmarkReusedListingWithAFailingLibrary is a poll of 10 000 libraries that reuses
// the last listing while one library is unsettled with no job held (failing, its backoff
// running out): before, every such poll compared all 10 000 with the last listing.
//
//	go test -run '^$' -bench ReusedListing ./watch/
func BenchmarkReusedListingWithAFailingLibrary(b *testing.B) {
	env := testenv.New(b, srv)
	ctx := context.Background()
	st, err := state.Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	const libraries = 10000
	var ids []string
	for n := range libraries {
		id := fmt.Sprintf("%08x-aaaa-4bbb-8ccc-ffffffffffff", n)
		ids = append(ids, id)
		if err := st.Save(state.Library{ID: id, StoreID: id, Name: "lib", Head: fmt.Sprintf("%040x", n), LastSuccess: time.Now()}); err != nil {
			b.Fatal(err)
		}
	}
	for _, table := range []string{"Repo", "Branch", "RepoInfo", "RepoOwner"} {
		for lo := 0; lo < libraries; lo += 1000 {
			var q strings.Builder
			var args []any
			for n := lo; n < lo+1000; n++ {
				if n > lo {
					q.WriteString(",")
				}
				switch table {
				case "Repo":
					q.WriteString("(?)")
					args = append(args, ids[n])
				case "Branch":
					q.WriteString("('master', ?, ?)")
					args = append(args, ids[n], fmt.Sprintf("%040x", n))
				case "RepoInfo":
					q.WriteString("(?, 'lib', 1764300000, 1, 0)")
					args = append(args, ids[n])
				case "RepoOwner":
					q.WriteString("(?, 'u@example.com')")
					args = append(args, ids[n])
				}
			}
			cols := map[string]string{"Repo": "(repo_id)", "Branch": "(name, repo_id, commit_id)",
				"RepoInfo": "(repo_id, name, update_time, version, is_encrypted)", "RepoOwner": "(repo_id, owner_id)"}[table]
			if _, err := env.PrimaryDB.Exec("INSERT INTO "+table+" "+cols+" VALUES "+q.String(), args...); err != nil {
				b.Fatal(err)
			}
		}
	}
	w := &Watcher{Engine: noEngine{}, Catalog: primary.Combine(env.Catalog, env.Objects), State: st, FullEvery: time.Hour}
	s := newScheduler(w.do, 1, time.Second, time.Second, slog.New(slog.DiscardHandler))
	if err := w.poll(ctx, s); err != nil { // the first poll is full, and finds all backed up
		b.Fatal(err)
	}
	w.setUnsettled(ids[libraries/2], true)
	b.ResetTimer()
	for range b.N {
		if err := w.poll(ctx, s); err != nil {
			b.Fatal(err)
		}
	}
}
