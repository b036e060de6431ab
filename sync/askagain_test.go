package sync_test

import (
	"context"
	"errors"
	gosync "sync"
	"testing"

	"seafbak/internal/seafgen"
	"seafbak/internal/testenv"
	"seafbak/state"
	"seafbak/sync/primary"
)

// A hook's sync --no-wait that finds the library locked leaves a request, and the
// holder, which read its head before the change that fired the hook, syncs the new
// head before it lets go. Before, the hook exited 1 as "the other invocation finishes
// it" while that one recorded the old head, and the change waited for the next scan
// (found by review).
func TestNoWaitAsksTheHolderToSyncAgain(t *testing.T) {
	env := testenv.New(t, srv)
	lib, err := seafgen.New(env.PrimaryDir).NewLibrary(seafgen.LibraryOptions{Name: "again", Owner: "a@example.com"})
	must(t, err)
	testenv.Commit(t, lib, "one", seafgen.Put("a.txt", []byte("1")))
	env.Publish(lib)
	listed, err := env.Source().Library(context.Background(), lib.ID)
	must(t, err)

	holder := env.Engine(false)
	blocking := &blockingSource{Source: holder.Source, entered: make(chan struct{}), release: make(chan struct{})}
	holder.Source = blocking
	var res struct {
		head string
		err  error
	}
	var wg gosync.WaitGroup
	wg.Add(1)
	go func() { // a scan's job, with the head it listed
		defer wg.Done()
		r, err := holder.SyncListed(context.Background(), listed)
		res.head, res.err = r.Head, err
	}()
	<-blocking.entered // copying the listed head
	second := testenv.Commit(t, lib, "two", seafgen.Put("b.txt", []byte("2")))
	env.Publish(lib)
	hook := env.Engine(false)
	hook.LockWait = -1 // --no-wait
	if _, err := hook.Sync(context.Background(), lib.ID); !errors.Is(err, state.ErrLocked) {
		t.Fatalf("hook beside the holder: %v", err)
	}
	close(blocking.release)
	wg.Wait()
	if res.err != nil || res.head != second {
		t.Fatalf("holder: head %s, %v; want the hook's %s", res.head, res.err, second)
	}
	if h := env.BackupHead(lib.ID); h != second {
		t.Fatalf("backup head %s, want %s", h, second)
	}
	env.CompareWithPrimary(lib.ID, lib.StoreID, second)
	// The request was taken: the next sync reads the head once.
	if asked, err := env.State.TakeAgain(lib.ID); asked || err != nil {
		t.Errorf("a request left behind: %v %v", asked, err)
	}
}

// blockingSource stops the first Commit until release is closed.
type blockingSource struct {
	primary.Source
	once             gosync.Once
	entered, release chan struct{}
}

func (b *blockingSource) Commit(ctx context.Context, lib primary.Library, id string) ([]byte, error) {
	b.once.Do(func() {
		close(b.entered)
		<-b.release
	})
	return b.Source.Commit(ctx, lib, id)
}
