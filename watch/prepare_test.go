package watch

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"seafbak/internal/seafgen"
	"seafbak/internal/testenv"
	"seafbak/sync/primary"
)

// Over HTTP, watch's first poll creates the new libraries' tokens in one batch before
// their syncs, as a scan does.
func TestWatchFirstPollPreparesTokensInBatches(t *testing.T) {
	env := testenv.New(t, srv)
	env.StartFileServer()
	gen := seafgen.New(env.PrimaryDir)
	ctx := context.Background()
	var libs []*seafgen.Library
	for i := range 3 {
		l, err := gen.NewLibrary(seafgen.LibraryOptions{Name: fmt.Sprintf("lib%d", i), Owner: "u@example.com"})
		must(t, err)
		testenv.Commit(t, l, "files", seafgen.Put("a.txt", []byte(fmt.Sprint("a", i))))
		env.Publish(l)
		libs = append(libs, l)
	}
	var logs testenv.LockedBuffer
	eng := env.Engine(false)
	eng.Log = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	w := &Watcher{Engine: eng, Catalog: env.Catalog, State: env.State, Log: eng.Log,
		Poll: 100 * time.Millisecond, Parallel: 2, MaxBackoff: time.Second}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- w.Run(wctx) }()
	waitBackedUp(t, env, libs)
	cancel()
	must(t, <-done)
	for _, l := range libs {
		env.CompareWithPrimary(l.ID, l.StoreID, l.Head)
		var n int
		must(t, env.PrimaryDB.QueryRow("SELECT COUNT(*) FROM RepoUserToken WHERE repo_id = ? AND token = ? AND email = ?",
			l.ID, primary.Token(testenv.SyncToken, l.ID), "u@example.com").Scan(&n))
		if n != 1 {
			t.Fatalf("%s has %d token rows", l.ID, n)
		}
	}
	if !strings.Contains(logs.String(), `msg="prepared the libraries in batches" libraries=3`) {
		t.Fatalf("the first poll did not prepare its libraries in a batch:\n%s", logs.String())
	}
}
