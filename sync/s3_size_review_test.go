package sync_test

import (
	"context"
	"errors"
	"testing"

	"seafbak/internal/seafgen"
	"seafbak/internal/testenv"
	"seafbak/sync/object"
	"seafbak/sync/store"
)

// headSizeStore answers a present block's size as store.S3.Size does when the HEAD's
// answer had no Content-Length before TestS3SizeIsChecked's fix: -1, no error.
type headSizeStore struct{ store.Store }

func (s headSizeStore) Size(ctx context.Context, kind object.Kind, storeID, id string) (int64, error) {
	n, err := s.Store.Size(ctx, kind, storeID, id)
	if err == nil && kind == object.KindBlock {
		return -1, nil
	}
	return n, err
}

// Found by review: the size an S3 HEAD (or listing) answers for a present block goes unchecked
// into the file's size check (tree.go: n.stored += size; object.CheckFileSize), which
// then blames the PRIMARY's fs object as invalid: a good new file that reuses blocks
// already backed up fails the sync as corrupt on the primary (with --force: recorded
// as a hole and left out of the backup).
func TestS3BlockSizeAnswerIsNotThePrimarysFault(t *testing.T) {
	env := testenv.New(t, srv)
	g := seafgen.New(env.PrimaryDir)
	g.BlockSize = 4096
	lib, err := g.NewLibrary(seafgen.LibraryOptions{Name: "Sizes"})
	must(t, err)
	data := testenv.RandomBytes(9000, 5)
	testenv.Commit(t, lib, "a", seafgen.Put("a.bin", data))
	env.Publish(lib)
	testenv.SyncOK(t, env.Engine(false), lib.ID)
	// b.bin's first two blocks are a.bin's: present in the backup.
	testenv.Commit(t, lib, "b", seafgen.Put("b.bin", append(append([]byte{}, data[:8192]...), []byte("tail")...)))
	env.Publish(lib)
	eng := env.Engine(false)
	eng.Store = headSizeStore{env.Store}
	_, err = eng.Sync(context.Background(), lib.ID)
	if err == nil || errors.Is(err, object.ErrInvalid) || !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("a store answering a size of -1 for a present block: sync error %v, want the store unavailable and the primary not blamed", err)
	}
}
