package watch

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"seafbak/internal/seafgen"
	"seafbak/internal/testenv"
	"seafbak/sync/primary"
)

// laggingFileServer is the primary's catalog as primary.Remote gives it while the file
// server lags the database for one library: the listing carries a HeadError for it
// (Remote.recheck), and, as Remote does, a listing whose database Print is unchanged is
// not made again (LibrariesSince answers "not changed").
type laggingFileServer struct {
	*primary.DB
	lagging atomic.Pointer[string] // library id, or nil once the file server caught up
}

func (c *laggingFileServer) LibrariesSince(ctx context.Context, since primary.Print) ([]primary.Library, primary.Print, bool, error) {
	libs, p, changed, err := c.DB.LibrariesSince(ctx, since)
	if id := c.lagging.Load(); id != nil && changed {
		for i := range libs {
			if libs[i].ID == *id {
				libs[i].HeadError = errors.New("the primary's database says head " + libs[i].Head + " but its file server says the previous one")
			}
		}
	}
	return libs, p, changed, err
}

// laggingSource is the engine's source while the same file server lags: the library
// asked for alone disagrees too, as Remote.Library's check of its head says.
type laggingSource struct {
	primary.Source
	lagging *atomic.Pointer[string]
}

func (s laggingSource) Library(ctx context.Context, id string) (primary.Library, error) {
	lib, err := s.Source.Library(ctx, id)
	if lagging := s.lagging.Load(); err == nil && lagging != nil && *lagging == id {
		lib.HeadError = errors.New("the primary's database says head " + lib.Head + " but its file server says the previous one")
	}
	return lib, err
}

// A library whose listing said the database and the file server disagree (a file server
// or a replica lagging for a moment) fails its sync, as it should. But once they agree
// again, watch retries it with the same listing entry, HeadError and all, every backoff,
// without asking the primary again: the primary's Print does not change, so the listing
// is reused, until the next full comparison (FullEvery, 1 min by default; set to 30 s
// here), each attempt recording the stale failure in the state.
func TestWatchRetriesAStaleHeadError(t *testing.T) {
	env := testenv.New(t, srv)
	gen := seafgen.New(env.PrimaryDir)
	l, err := gen.NewLibrary(seafgen.LibraryOptions{Name: "lag", Owner: "u@example.com"})
	must(t, err)
	testenv.Commit(t, l, "one", seafgen.Put("a.txt", []byte("a")))
	env.Publish(l)
	cat := &laggingFileServer{DB: env.Catalog}
	var logs testenv.LockedBuffer
	eng := env.Engine(false)
	eng.Source = laggingSource{Source: eng.Source, lagging: &cat.lagging}
	w := &Watcher{Engine: eng, Catalog: cat, State: env.State, Poll: 50 * time.Millisecond,
		MaxBackoff: 500 * time.Millisecond, FullEvery: 30 * time.Second,
		Log: slog.New(slog.NewTextHandler(&logs, nil))}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitFor(t, "first backup", func() bool { return env.BackupHead(l.ID) == l.Head })

	id := l.ID
	cat.lagging.Store(&id)
	testenv.Commit(t, l, "two", seafgen.Put("b.txt", []byte("b")))
	env.Publish(l)
	waitFor(t, "the disagreement recorded as a failure", func() bool {
		rec, _, err := env.State.Load(l.ID)
		must(t, err)
		return rec.LastError != ""
	})
	cat.lagging.Store(nil) // the file server caught up: a new look at the primary agrees
	caughtUp := time.Now()
	deadline := caughtUp.Add(5 * time.Second)
	for env.BackupHead(l.ID) != l.Head {
		if time.Now().After(deadline) {
			rec, _, _ := env.State.Load(l.ID)
			t.Fatalf("change not backed up %s after the primary agreed again (retried with the stale listing; poll 50ms, backoff <= 500ms); record: %q",
				time.Since(caughtUp).Round(time.Millisecond), rec.LastError)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("backed up %s after the primary agreed again", time.Since(caughtUp).Round(time.Millisecond))
}
