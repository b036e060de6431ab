package watch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"seafbak/internal/seafgen"
	"seafbak/internal/testenv"
	seafsync "seafbak/sync"
	"seafbak/sync/primary"
	"seafbak/sync/store"
)

// flushFailEngine syncs for real, then fails as a sync whose store flush failed does.
type flushFailEngine struct {
	Engine
	syncs int
}

func (e *flushFailEngine) SyncListed(ctx context.Context, lib primary.Library) (seafsync.Result, error) {
	e.syncs++
	res, _ := e.Engine.SyncListed(ctx, lib)
	return res, fmt.Errorf("sync %s: %w: backup store: syncfs: input/output error", lib.ID, store.ErrFlushFailed)
}

// After a failed flush of the backup store no later sync of the process can succeed
// (the store keeps failing, see store.ErrFlushFailed): watch stops with the error, so
// that systemd starts a new process, which re-checks what this one wrote.
func TestWatchStopsWhenTheStoreCannotFlush(t *testing.T) {
	env := testenv.New(t, srv)
	gen := seafgen.New(env.PrimaryDir)
	l, err := gen.NewLibrary(seafgen.LibraryOptions{Name: "f", Owner: "u@example.com"})
	must(t, err)
	testenv.Commit(t, l, "files", seafgen.Put("a.txt", []byte("a")))
	env.Publish(l)
	eng := &flushFailEngine{Engine: env.Engine(false)}
	var logs testenv.LockedBuffer
	w := &Watcher{Engine: eng, Catalog: env.Catalog, State: env.State, Poll: 20 * time.Millisecond,
		Log: slog.New(slog.NewTextHandler(&logs, nil))}
	done := make(chan error, 1)
	go func() { done <- w.Run(context.Background()) }()
	select {
	case err := <-done:
		if !errors.Is(err, store.ErrFlushFailed) {
			t.Fatalf("Run returned %v, want the flush failure", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run went on after the store's flush failed")
	}
	if eng.syncs != 1 {
		t.Fatalf("%d syncs ran, want 1", eng.syncs)
	}
	if !strings.Contains(logs.String(), "writing the backup store to disk failed") {
		t.Fatalf("the stop is not explained:\n%s", logs.String())
	}
}
