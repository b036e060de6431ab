package store

import (
	"context"
	"crypto/sha1"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"seafbak/sync/object"
)

// The directories an FS remembers are bounded, however many it made: forgetting one
// costs a mkdir, and an object written into a forgotten (existing) directory lands as
// any other.
func TestFSStoreRemembersABoundedNumberOfDirectories(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	s, err := NewFS(root, Batch)
	if err != nil {
		t.Fatal(err)
	}
	s.madeDirs = newDirCache(8)
	var ids []string
	for i := range 200 {
		sum := sha1.Sum([]byte(fmt.Sprint(i)))
		id := fmt.Sprintf("%x", sum)
		ids = append(ids, id)
		if err := Put(ctx, s, object.KindBlock, repo, id, []byte(id)); err != nil {
			t.Fatal(err)
		}
		if n := s.madeDirs.len(); n > 16 {
			t.Fatalf("remembers %d directories after %d objects, want at most 16", n, i+1)
		}
	}
	// More, into directories made and mostly forgotten.
	for i := range 200 {
		id := fmt.Sprintf("%x", sha1.Sum([]byte(fmt.Sprint("again ", i))))
		ids = append(ids, id)
		if err := Put(ctx, s, object.KindBlock, repo, id, []byte(id)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		data, err := os.ReadFile(filepath.Join(root, "storage", "blocks", repo, id[:2], id[2:]))
		if err != nil || string(data) != id {
			t.Fatalf("block %s: %q %v", id, data, err)
		}
	}
}

func TestDirCacheKeepsTwoGenerations(t *testing.T) {
	c := newDirCache(2)
	c.add("a")
	c.add("b")
	c.add("c") // a and b become the old generation
	if !c.has("a") || !c.has("b") || !c.has("c") {
		t.Fatal("forgot a directory of the current or the old generation")
	}
	c.add("d")
	c.add("e") // c and d old, a and b forgotten
	if c.has("a") || c.has("b") || !c.has("c") || !c.has("e") || c.len() != 3 {
		t.Fatalf("after five adds with generations of 2: len %d", c.len())
	}
}
