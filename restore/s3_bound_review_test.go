package restore_test

import (
	"context"
	"io"
	"sync/atomic"
	"testing"

	"seafbak/restore"
	"seafbak/sync/object"
	"seafbak/sync/store"
)

// hugeBlockStore answers every block with a body far longer than any block of the file
// can be: what an S3 server (or something in front of it) may send for a GET, with a
// Content-Length to match. store.S3.Open bounds nothing (only Get does).
type hugeBlockStore struct {
	store.Store
	n int64
}

func (s hugeBlockStore) Open(ctx context.Context, kind object.Kind, storeID, id string) (io.ReadCloser, error) {
	return io.NopCloser(io.LimitReader(zeros{}, s.n)), nil
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// Found by review: restoring from S3, a block's body is written into the restored file whole
// before its hash is checked, however long the server makes it (restore/library.go's
// copy loop: f.Write of every chunk, h.Check at EOF; nothing compares the bytes to the
// file's size on the way): a GET answered with a huge or endless body (a Content-Length
// to match) fills the restore target before the mismatch is found. A block of a file of
// Size bytes holds at most Size (+16 for an encrypted library) bytes; more is wrong from
// the first byte past that.
func TestRestoreBlockReadIsBounded(t *testing.T) {
	env, lib, _ := backedUpRichLibrary(t)
	const body = 64 << 20
	s := &countingBlocks{hugeBlockStore: hugeBlockStore{Store: env.Store, n: body}}
	dir := t.TempDir()
	_, err := restore.RestoreLibrary(context.Background(), restore.LibraryOptions{
		Store: s, State: env.State, RepoID: lib.ID, Dir: dir, Parallel: 1,
	})
	if err == nil {
		t.Fatal("blocks of 64 MiB restored")
	}
	if n := s.read.Load(); n >= body {
		t.Fatalf("restore read (and wrote into the target) %d MiB of one block before failing: %v", n>>20, err)
	}
}

type countingBlocks struct {
	hugeBlockStore
	read atomic.Int64
}

func (s *countingBlocks) Open(ctx context.Context, kind object.Kind, storeID, id string) (io.ReadCloser, error) {
	if kind != object.KindBlock {
		return s.Store.Open(ctx, kind, storeID, id)
	}
	rc, _ := s.hugeBlockStore.Open(ctx, kind, storeID, id)
	return struct {
		io.Reader
		io.Closer
	}{&countReader{rc, &s.read}, rc}, nil
}

type countReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}
