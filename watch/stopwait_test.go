package watch

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"seafbak/internal/seafgen"
	"seafbak/internal/testenv"
	seafsync "seafbak/sync"
	"seafbak/sync/primary"
)

// stuckEngine's syncs never return, whatever the context: a sync stuck in the kernel.
type stuckEngine struct {
	Engine
	started chan struct{}
}

func (e *stuckEngine) SyncListed(ctx context.Context, lib primary.Library) (seafsync.Result, error) {
	close(e.started)
	select {} // ignores ctx on purpose
}

// Once its context ends, Run waits StopWait for running syncs, then returns without
// them, saying so.
func TestStopWaitBoundsTheStop(t *testing.T) {
	env := testenv.New(t, srv)
	gen := seafgen.New(env.PrimaryDir)
	l, err := gen.NewLibrary(seafgen.LibraryOptions{Name: "s", Owner: "u@example.com"})
	must(t, err)
	testenv.Commit(t, l, "files", seafgen.Put("a.txt", []byte("a")))
	env.Publish(l)
	eng := &stuckEngine{Engine: env.Engine(false), started: make(chan struct{})}
	var logs testenv.LockedBuffer
	w := &Watcher{Engine: eng, Catalog: env.Catalog, State: env.State, Poll: 50 * time.Millisecond,
		StopWait: 300 * time.Millisecond, Log: slog.New(slog.NewTextHandler(&logs, nil))}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	select {
	case <-eng.started:
	case <-time.After(20 * time.Second):
		t.Fatal("no sync started")
	}
	cancel()
	start := time.Now()
	select {
	case err := <-done:
		if took := time.Since(start); err != nil || took < 300*time.Millisecond || took > 5*time.Second {
			t.Fatalf("Run returned %v after %s", err, took)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
	}
	if !strings.Contains(logs.String(), "stopping without the syncs still running") || !strings.Contains(logs.String(), "running=1") {
		t.Fatalf("abandoned sync not logged:\n%s", logs.String())
	}
}
