// Package storetest is the conformance suite every store.Store passes: the filesystem
// store and S3 today, the next one (Swift, librados) by adding one test that calls Run.
package storetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	gosync "sync"
	"testing"

	"seafbak/sync/object"
	"seafbak/sync/store"
)

// Subject is one freshly opened, empty store and two windows on where it keeps its
// objects, read without the Store, as Seafile itself would find them.
type Subject struct {
	Store store.Store
	// Raw reads an object's bytes at the place Seafile's own backend reads it from (FS:
	// storage/<kind>/<store>/<id[:2]>/<id[2:]>; S3: bucket of kind, key <store>/<id>);
	// found is false if nothing is there.
	Raw func(kind object.Kind, storeID, id string) (data []byte, found bool)
	// Count is how many objects of any kind the store holds, wherever: anything left
	// by an aborted or abandoned write shows up here.
	Count func() int
}

// The two libraries the suite writes to; B differs from A in its last digit only, so a
// prefix bug shows. A store with a per-library cache can load it for these before.
const (
	LibA = "7b89d49b-5c5c-4f42-8ded-940c84a3e206"
	LibB = "7b89d49b-5c5c-4f42-8ded-940c84a3e207"
)

var kinds = []object.Kind{object.KindCommit, object.KindFS, object.KindBlock}

// ID is the id content-addressed data would have (fine for every kind here: stores
// do not check content against ids).
func ID(data []byte) string {
	h := sha1.Sum(data)
	return hex.EncodeToString(h[:])
}

// Random returns n random bytes.
func Random(t testing.TB, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// Run runs the suite; open returns a new empty Subject for each subtest.
func Run(t *testing.T, open func(t *testing.T) Subject) {
	ctx := context.Background()

	t.Run("WriteRead", func(t *testing.T) {
		s := open(t)
		for i, kind := range kinds {
			data := Random(t, 100+i)
			id := ID(data)
			if has, err := s.Store.Has(ctx, kind, LibA, id); has || err != nil {
				t.Fatalf("%s: empty store has it: %v %v", kind, has, err)
			}
			if err := store.Put(ctx, s.Store, kind, LibA, id, data); err != nil {
				t.Fatalf("%s: put: %v", kind, err)
			}
			if has, err := s.Store.Has(ctx, kind, LibA, id); !has || err != nil {
				t.Fatalf("%s: not there after Put: %v %v", kind, has, err)
			}
			if n, err := s.Store.Size(ctx, kind, LibA, id); n != int64(len(data)) || err != nil {
				t.Fatalf("%s: size %d %v, want %d", kind, n, err, len(data))
			}
			if got, err := s.Store.Get(ctx, kind, LibA, id); err != nil || !bytes.Equal(got, data) {
				t.Fatalf("%s: Get: %v, same bytes %v", kind, err, bytes.Equal(got, data))
			}
			r, err := s.Store.Open(ctx, kind, LibA, id)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(r)
			r.Close()
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("%s: Open: %v, same bytes %v", kind, err, bytes.Equal(got, data))
			}
			// Seafile's layout, byte for byte, and under the library it was written to only.
			if raw, found := s.Raw(kind, LibA, id); !found || !bytes.Equal(raw, data) {
				t.Fatalf("%s: not in Seafile's layout (found %v)", kind, found)
			}
			if _, found := s.Raw(kind, LibB, id); found {
				t.Fatalf("%s: also under another library", kind)
			}
			for _, other := range kinds {
				if other != kind {
					if has, _ := s.Store.Has(ctx, other, LibA, id); has {
						t.Fatalf("%s is also a %s", kind, other)
					}
				}
			}
		}
		if n := s.Count(); n != len(kinds) {
			t.Fatalf("%d objects stored, want %d", n, len(kinds))
		}
		if err := s.Store.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		if err := s.Store.SyncAll(ctx); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("Missing", func(t *testing.T) {
		s := open(t)
		id := ID([]byte("absent"))
		for _, kind := range kinds {
			if has, err := s.Store.Has(ctx, kind, LibA, id); has || err != nil {
				t.Fatalf("Has: %v %v", has, err)
			}
			if _, err := s.Store.Size(ctx, kind, LibA, id); !errors.Is(err, store.ErrNotExist) {
				t.Fatalf("Size: %v, want ErrNotExist", err)
			}
			if _, err := s.Store.Get(ctx, kind, LibA, id); !errors.Is(err, store.ErrNotExist) {
				t.Fatalf("Get: %v, want ErrNotExist", err)
			}
			if _, err := s.Store.Open(ctx, kind, LibA, id); !errors.Is(err, store.ErrNotExist) {
				t.Fatalf("Open: %v, want ErrNotExist", err)
			}
		}
	})

	t.Run("AbortAndAbandonLeaveNothing", func(t *testing.T) {
		s := open(t)
		for _, size := range []int{10, 3 << 20} { // in memory, and past any spill threshold
			data := Random(t, size)
			id := ID(data)
			w, err := s.Store.Create(ctx, object.KindBlock, LibA, id)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := w.Write(data); err != nil {
				t.Fatal(err)
			}
			w.Abort()
			w.Abort() // harmless twice
			// Abandoned: neither Commit nor Abort, as when the writing process is
			// killed before it commits.
			w2, err := s.Store.Create(ctx, object.KindBlock, LibA, id)
			if err != nil {
				t.Fatal(err)
			}
			w2.Write(data[:size/2])
			if has, err := s.Store.Has(ctx, object.KindBlock, LibA, id); has || err != nil {
				t.Fatalf("%d bytes: visible after Abort or mid-write: %v %v", size, has, err)
			}
			if has, err := s.Store.HasLibrary(ctx, object.KindBlock, LibA); has || err != nil {
				t.Fatalf("library visible after Abort or mid-write: %v %v", has, err)
			}
			if _, found := s.Raw(object.KindBlock, LibA, id); found {
				t.Fatal("raw object after Abort or mid-write")
			}
			w2.Abort()
		}
		if n := s.Count(); n != 0 {
			t.Fatalf("%d objects after aborted writes", n)
		}
	})

	t.Run("LargeBlock", func(t *testing.T) {
		s := open(t)
		data := Random(t, 9<<20+17) // Seafile's blocks reach 8 MiB and more
		id := ID(data)
		w, err := s.Store.Create(ctx, object.KindBlock, LibA, id)
		if err != nil {
			t.Fatal(err)
		}
		for off := 0; off < len(data); off += 64 << 10 { // as io.Copy writes
			end := min(off+64<<10, len(data))
			if _, err := w.Write(data[off:end]); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Commit(); err != nil {
			t.Fatal(err)
		}
		if err := w.Commit(); err == nil {
			t.Fatal("second Commit accepted")
		}
		r, err := s.Store.Open(ctx, object.KindBlock, LibA, id)
		if err != nil {
			t.Fatal(err)
		}
		h := sha1.New()
		n, err := io.Copy(h, r)
		r.Close()
		if err != nil || n != int64(len(data)) || hex.EncodeToString(h.Sum(nil)) != id {
			t.Fatalf("streamed back %d bytes, err %v, same %v", n, err, hex.EncodeToString(h.Sum(nil)) == id)
		}
		if raw, found := s.Raw(object.KindBlock, LibA, id); !found || !bytes.Equal(raw, data) {
			t.Fatal("large block not stored as it was written")
		}
	})

	t.Run("GetBound", func(t *testing.T) {
		s := open(t)
		limit := object.MaxStoredSize(object.KindCommit)
		big := bytes.Repeat([]byte("x"), int(limit)+1)
		id := ID(big)
		if err := store.Put(ctx, s.Store, object.KindCommit, LibA, id, big); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Store.Get(ctx, object.KindCommit, LibA, id); !errors.Is(err, object.ErrInvalid) {
			t.Fatalf("Get of a %d-byte commit: %v, want ErrInvalid", len(big), err)
		}
		exact := big[:limit]
		id = ID(exact)
		if err := store.Put(ctx, s.Store, object.KindCommit, LibA, id, exact); err != nil {
			t.Fatal(err)
		}
		if got, err := s.Store.Get(ctx, object.KindCommit, LibA, id); err != nil || len(got) != len(exact) {
			t.Fatalf("Get of a commit at the bound: %d bytes, %v", len(got), err)
		}
	})

	t.Run("HasLibrary", func(t *testing.T) {
		s := open(t)
		for _, kind := range kinds {
			if has, err := s.Store.HasLibrary(ctx, kind, LibA); has || err != nil {
				t.Fatalf("empty store: %v %v", has, err)
			}
		}
		data := []byte("one fs object")
		if err := store.Put(ctx, s.Store, object.KindFS, LibA, ID(data), data); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			kind object.Kind
			lib  string
			want bool
		}{{object.KindFS, LibA, true}, {object.KindCommit, LibA, false}, {object.KindBlock, LibA, false}, {object.KindFS, LibB, false}} {
			if has, err := s.Store.HasLibrary(ctx, c.kind, c.lib); has != c.want || err != nil {
				t.Fatalf("HasLibrary(%s, %s) = %v %v, want %v", c.kind, c.lib, has, err, c.want)
			}
		}
	})

	t.Run("IdempotentRewrite", func(t *testing.T) {
		s := open(t)
		data := []byte("written twice, as a resumed sync does")
		id := ID(data)
		for range 2 {
			if err := store.Put(ctx, s.Store, object.KindBlock, LibA, id, data); err != nil {
				t.Fatal(err)
			}
		}
		if got, err := s.Store.Get(ctx, object.KindBlock, LibA, id); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("after a rewrite: %q %v", got, err)
		}
		if n := s.Count(); n != 1 {
			t.Fatalf("%d objects after writing one twice", n)
		}
	})

	t.Run("BadNames", func(t *testing.T) {
		s := open(t)
		good := ID([]byte("x"))
		for _, c := range []struct {
			kind    object.Kind
			lib, id string
		}{
			{"tmp", LibA, good},
			{object.KindBlock, "../" + LibA[3:], good},
			{object.KindBlock, LibA, "../../../../../etc/passwd"},
			{object.KindBlock, LibA, good[:39]},
			{object.KindBlock, LibA, good[:39] + "G"},
		} {
			if w, err := s.Store.Create(ctx, c.kind, c.lib, c.id); err == nil {
				w.Abort()
				t.Fatalf("Create(%q, %q, %q) accepted", c.kind, c.lib, c.id)
			}
			if _, err := s.Store.Has(ctx, c.kind, c.lib, c.id); err == nil {
				t.Fatalf("Has(%q, %q, %q) accepted", c.kind, c.lib, c.id)
			}
		}
	})

	t.Run("Concurrent", func(t *testing.T) {
		s := open(t)
		var wg gosync.WaitGroup
		errs := make(chan error, 16)
		for i := range 16 {
			wg.Go(func() {
				data := []byte(fmt.Sprintf("object %d", i))
				if err := store.Put(ctx, s.Store, object.KindBlock, LibA, ID(data), data); err != nil {
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		if err := s.Store.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		if n := s.Count(); n != 16 {
			t.Fatalf("%d objects after 16 concurrent writes", n)
		}
	})
}
