package watch

import (
	"context"
	"io"
	"testing"
	"time"

	"seafbak/internal/seafgen"
	"seafbak/internal/testenv"
	"seafbak/sync/primary"
)

// slowBlocks holds each block read of one library until released: a long copy.
type slowBlocks struct {
	primary.Source
	slow    string
	release chan struct{}
}

func (s slowBlocks) Block(ctx context.Context, lib primary.Library, id string) (io.ReadCloser, error) {
	if lib.ID == s.slow {
		select {
		case <-s.release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return s.Source.Block(ctx, lib, id)
}

// With the data dir and parallel 1, one library's long copy held the only copy slot,
// and a one-file change to any other library waited for all of it. A watcher keeps a
// slot for small copies beside it.
func TestALongCopyDoesNotHoldOtherLibrariesBack(t *testing.T) {
	env := testenv.New(t, srv)
	gen := seafgen.New(env.PrimaryDir)
	big, err := gen.NewLibrary(seafgen.LibraryOptions{Name: "big", Owner: "u@example.com"})
	must(t, err)
	small, err := gen.NewLibrary(seafgen.LibraryOptions{Name: "small", Owner: "u@example.com"})
	must(t, err)
	testenv.Commit(t, big, "f", seafgen.Put("a.bin", testenv.RandomBytes(5000, 1)))
	testenv.Commit(t, small, "f", seafgen.Put("a.txt", []byte("a")))
	env.Publish(big, small)
	eng := env.Engine(false)
	eng.Source = slowBlocks{Source: eng.Source, slow: big.ID, release: make(chan struct{})}
	release := eng.Source.(slowBlocks).release
	w := &Watcher{Engine: eng, Catalog: env.Catalog, State: env.State, Poll: 20 * time.Millisecond, Parallel: 1}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	// The big library's copy is stuck on its blocks for as long as the test runs; the
	// small one is backed up meanwhile, and then a change to it.
	waitFor(t, "small library", func() bool { return env.BackupHead(small.ID) == small.Head })
	testenv.Commit(t, small, "g", seafgen.Put("b.txt", []byte("b")))
	env.Publish(small)
	waitFor(t, "change to the small library", func() bool { return env.BackupHead(small.ID) == small.Head })
	if env.BackupHead(big.ID) == big.Head {
		t.Fatal("the big library's copy was not held")
	}
	close(release)
	waitFor(t, "big library", func() bool { return env.BackupHead(big.ID) == big.Head })
}
