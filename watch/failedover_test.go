package watch

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"seafbak/internal/seafgen"
	"seafbak/internal/testenv"
	"seafbak/state"
)

// A watch started before a failover (restore server) meets the failover's record at its
// next sync: it moves no row and stops, naming the cause, rather than retrying every
// library forever.
func TestWatchStopsAfterAFailover(t *testing.T) {
	env := testenv.New(t, srv)
	gen := seafgen.New(env.PrimaryDir)
	l, err := gen.NewLibrary(seafgen.LibraryOptions{Name: "f", Owner: "u@example.com"})
	must(t, err)
	testenv.Commit(t, l, "files", seafgen.Put("a.txt", []byte("a")))
	env.Publish(l)
	testenv.SyncOK(t, env.Engine(false), l.ID)
	served := l.Head

	var logs testenv.LockedBuffer
	w := &Watcher{Engine: env.Engine(false), Catalog: env.Catalog, State: env.State, Poll: 20 * time.Millisecond,
		Log: slog.New(slog.NewTextHandler(&logs, nil))}
	done := make(chan error, 1)
	go func() { done <- w.Run(context.Background()) }()
	must(t, env.State.SaveFailedOver(state.FailedOver{At: time.Now(), DumpSet: "set"}))
	testenv.Commit(t, l, "after the failover", seafgen.Put("b.txt", []byte("b")))
	env.Publish(l)
	select {
	case err := <-done:
		if !errors.Is(err, state.ErrFailedOver) {
			t.Fatalf("Run returned %v, want the failover", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("watch went on after the failover")
	}
	if got := env.BackupHead(l.ID); got != served {
		t.Fatalf("Branch row moved to %s after the failover, want %s", got, served)
	}
	if !strings.Contains(logs.String(), "serves Seafile since a failover") {
		t.Fatalf("the stop is not explained:\n%s", logs.String())
	}
}
