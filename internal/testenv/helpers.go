package testenv

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	gosync "sync"
	"testing"
	"time"

	"seafbak/internal/seafgen"
	seafsync "seafbak/sync"
	"seafbak/sync/object"
)

// RandomBytes is n deterministic pseudo-random bytes: file contents that do not
// compress and differ by seed.
func RandomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// Commit makes a commit on the library's head, failing the test on error.
func Commit(t testing.TB, l *seafgen.Library, desc string, changes ...seafgen.Change) string {
	t.Helper()
	id, err := l.Commit(desc, changes...)
	must(t, err)
	return id
}

// Publish writes the libraries' rows into the primary database, heads included: what
// the primary's database says after its file server committed.
func (e *Env) Publish(libs ...*seafgen.Library) {
	e.T.Helper()
	for _, l := range libs {
		must(e.T, l.InsertRows(context.Background(), e.PrimaryDB))
	}
}

// SyncOK syncs one library and fails the test on error.
func SyncOK(t testing.TB, eng *seafsync.Engine, id string) seafsync.Result {
	t.Helper()
	res, err := eng.Sync(context.Background(), id)
	if err != nil {
		t.Fatalf("sync %s: %v", id, err)
	}
	return res
}

// ObjectPath is where an object lives in a seafile-data directory.
func ObjectPath(dataDir string, kind object.Kind, store, id string) string {
	return filepath.Join(dataDir, "storage", string(kind), store, id[:2], id[2:])
}

// PrimaryFile finds a file at the root of the library's head on the primary and
// returns its fs id and block ids (to damage or repair them in tests).
func (e *Env) PrimaryFile(lib *seafgen.Library, name string) (fileID string, blocks []string) {
	e.T.Helper()
	root, err := lib.RootID(lib.Head)
	must(e.T, err)
	fsKey := object.Keys{RepoID: lib.ID, StoreID: lib.StoreID}.For(object.KindFS)
	raw, err := os.ReadFile(ObjectPath(e.PrimaryDir, object.KindFS, fsKey, root))
	must(e.T, err)
	dir, err := object.ParseFS(root, raw)
	must(e.T, err)
	for _, d := range dir.Dirents {
		if d.Name == name {
			raw, err := os.ReadFile(ObjectPath(e.PrimaryDir, object.KindFS, fsKey, d.ID))
			must(e.T, err)
			f, err := object.ParseFS(d.ID, raw)
			must(e.T, err)
			return d.ID, f.BlockIDs
		}
	}
	e.T.Fatalf("no %s at the root of %s", name, lib.ID)
	return "", nil
}

// LockedBuffer collects what goroutines write (a logger, a child's stderr) while the
// test reads it.
type LockedBuffer struct {
	mu  gosync.Mutex
	buf bytes.Buffer
}

func (b *LockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *LockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// WaitFor polls cond every 10 ms until it holds, and fails the test naming what if it
// does not within limit; it returns how long it took.
func WaitFor(t testing.TB, what string, limit time.Duration, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > limit {
			t.Fatalf("%s: not within %s", what, limit)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}
