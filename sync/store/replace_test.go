package store

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"os"
	"sync/atomic"
	"testing"

	"seafbak/sync/object"
)

// A second writer of an object another has already put in place (two syncs of one
// store that both found it absent; a repair) replaces it only with a flushed copy:
// the object there may be durable and named by a recorded head, and renamed over by
// an unflushed copy a power cut could leave it empty (found by review). A first write
// costs no fsync. Both ways of writing: O_TMPFILE linked, and named temp files.
func TestFSStoreReplacesAnObjectOnlyWithAFlushedCopy(t *testing.T) {
	for _, named := range []bool{false, true} {
		s, err := NewFS(t.TempDir(), Batch)
		if err != nil {
			t.Fatal(err)
		}
		if named {
			NamedTemps(s)
		}
		var fsyncs atomic.Int32
		CountReplacementFsyncs(t, &fsyncs)
		data := []byte("block bytes")
		sum := sha1.Sum(data)
		id := hex.EncodeToString(sum[:])
		first, err := s.Create(context.Background(), object.KindBlock, repo, id)
		if err != nil {
			t.Fatal(err)
		}
		second, err := s.Create(context.Background(), object.KindBlock, repo, id) // found it absent too
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range []Writer{first, second} {
			if _, err := w.Write(data); err != nil {
				t.Fatal(err)
			}
		}
		if err := first.Commit(); err != nil {
			t.Fatal(err)
		}
		if n := fsyncs.Load(); n != 0 {
			t.Errorf("named=%v: %d fsyncs for a first write", named, n)
		}
		if err := second.Commit(); err != nil {
			t.Fatal(err)
		}
		if n := fsyncs.Load(); n != 1 {
			t.Errorf("named=%v: the second copy replaced the object after %d fsyncs of it, want 1", named, n)
		}
		got, err := s.Get(context.Background(), object.KindBlock, repo, id)
		if err != nil || string(got) != string(data) {
			t.Errorf("named=%v: %q %v", named, got, err)
		}
		if ents, _ := os.ReadDir(s.tmp); len(ents) != 0 {
			t.Errorf("named=%v: temp files left: %v", named, ents)
		}
	}
}
