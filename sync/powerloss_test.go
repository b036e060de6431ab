package sync_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"seafbak/internal/seafgen"
	"seafbak/internal/testenv"
	"seafbak/scan"
	"seafbak/state"
	"seafbak/sync/object"
	"seafbak/sync/store"
)

// A scan of many small libraries shares its flushes (markers, objects, records) between
// the syncs that reach them together. This test cuts the power in the middle of such a
// scan: at the crashAt-th object, every store call freezes (as if the machine stopped),
// and every object put in place but not yet made durable by a Sync loses its bytes
// (the named-but-empty file a crash can leave under batch durability). Then, reading
// the state as the crash left it:
//   - no library's record or backup database row names a head without every object
//     (invariant 2: metadata moves only after the objects are durable);
//   - every library with an object that lost its bytes has its dirty marker (invariant
//     1: the marker is durable before the objects it covers are written);
//   - the next scan re-checks those libraries and brings every library whole.
func TestPowerLossDuringBatchedScan(t *testing.T) {
	env := testenv.New(t, srv)
	g := seafgen.New(env.PrimaryDir)
	g.BlockSize = 4096
	var libs []*seafgen.Library
	for i := range 120 {
		lib, err := g.NewLibrary(seafgen.LibraryOptions{Name: fmt.Sprint("small ", i), Owner: "crash@example.com"})
		must(t, err)
		testenv.Commit(t, lib, "file", seafgen.Put("readme.txt", []byte(fmt.Sprint("library ", i))), seafgen.Put("d/e.bin", testenv.RandomBytes(5000, uint64(i))))
		libs = append(libs, lib)
	}
	env.Publish(libs...)

	eng := env.Engine(false)
	cs := &crashStore{Store: env.Store, crashAt: 150, crashed: make(chan struct{}), release: make(chan struct{}), unsynced: map[objKey]bool{}}
	eng.Store = cs
	scanned := make(chan error, 1)
	go func() {
		_, err := (&scan.Scanner{Engine: eng, Catalog: eng.Source, State: env.State, Parallel: 2}).Run(context.Background())
		scanned <- err
	}()
	defer func() { close(cs.release); <-scanned }() // the frozen syncs end; what they write then is not looked at
	select {
	case <-cs.crashed:
	case err := <-scanned:
		t.Fatalf("the scan ended (%v) before the crash point", err)
	}
	// Syncs past their last store call (saving a record, clearing a marker) finish; every
	// other one is frozen in the store. Then the state is what the crash leaves.
	settle(t, env.StateDir)
	crashState := t.TempDir()
	for _, sub := range []string{"libraries", "dirty"} {
		must(t, os.MkdirAll(filepath.Join(crashState, sub), 0o750))
		ents, err := os.ReadDir(filepath.Join(env.StateDir, sub))
		must(t, err)
		for _, e := range ents {
			testenv.CopyFile(t, filepath.Join(env.StateDir, sub, e.Name()), filepath.Join(crashState, sub, e.Name()))
		}
	}
	lost := cs.loseUnsynced(t, env.BackupDir)
	if len(lost) == 0 {
		t.Fatal("test setup: the crash found no unsynced object to lose")
	}
	st, err := state.Open(crashState)
	must(t, err)
	markers, err := os.ReadDir(filepath.Join(crashState, "dirty"))
	must(t, err)
	marked := map[string]bool{}
	for _, m := range markers {
		storeID, _, _ := strings.Cut(m.Name(), ".")
		marked[storeID] = true
	}
	for storeID := range lost {
		if !marked[storeID] {
			t.Errorf("store %s lost unsynced objects but has no dirty marker", storeID)
		}
	}
	recorded := 0
	for _, lib := range libs {
		rec, _, err := st.Load(lib.ID)
		must(t, err)
		for what, head := range map[string]string{"state": rec.Head, "backup db": env.BackupHead(lib.ID)} {
			switch head {
			case "":
			case lib.Head:
				if lost[lib.StoreID] {
					t.Errorf("%s: %s records head %s but the crash emptied objects of the library", lib.Name, what, head)
				}
				env.CompareWithPrimary(lib.ID, lib.StoreID, head)
			default:
				t.Errorf("%s: %s records head %s, want %s or none", lib.Name, what, head, lib.Head)
			}
		}
		if rec.Head != "" {
			recorded++
		}
	}
	t.Logf("at the crash: %d of %d libraries recorded, %d stores lost unsynced objects, %d markers", recorded, len(libs), len(lost), len(markers))
	if recorded == len(libs) {
		t.Fatal("test setup: every library was recorded before the crash")
	}

	// After the reboot: a new process, the state as the crash left it.
	var logs testenv.LockedBuffer
	fresh, err := store.NewFS(env.BackupDir, store.Batch)
	must(t, err)
	eng2 := env.Engine(false)
	eng2.Store, eng2.State = fresh, st
	eng2.Log = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	sum, err := (&scan.Scanner{Engine: eng2, Catalog: eng2.Source, State: st, Parallel: 2}).Run(context.Background())
	must(t, err)
	if sum.Failed != 0 {
		t.Fatalf("scan after the crash: %+v", sum)
	}
	for storeID := range lost {
		if !strings.Contains(logs.String(), "repo="+storeID) || !strings.Contains(logs.String(), "re-checking") {
			t.Errorf("library %s lost objects but the scan after the crash did not re-check it:\n%s", storeID, logs.String())
		}
	}
	for _, lib := range libs {
		env.CompareWithPrimary(lib.ID, lib.StoreID, lib.Head)
		rec, _, err := st.Load(lib.ID)
		must(t, err)
		if rec.Head != lib.Head || env.BackupHead(lib.ID) != lib.Head {
			t.Fatalf("%s: after the second scan state %s, db %s, want %s", lib.Name, rec.Head, env.BackupHead(lib.ID), lib.Head)
		}
	}
	if left, _ := os.ReadDir(filepath.Join(crashState, "dirty")); len(left) != 0 {
		t.Fatalf("markers left after a clean scan: %v", left)
	}
}

// settle waits until the state dir has not changed for a while.
func settle(t *testing.T, dir string) {
	t.Helper()
	snap := func() string {
		var b strings.Builder
		for _, sub := range []string{"libraries", "dirty"} {
			ents, _ := os.ReadDir(filepath.Join(dir, sub))
			for _, e := range ents {
				fi, err := e.Info()
				if err == nil {
					fmt.Fprintf(&b, "%s/%s %d %d\n", sub, e.Name(), fi.Size(), fi.ModTime().UnixNano())
				}
			}
		}
		return b.String()
	}
	prev := snap()
	for still := 0; still < 3; {
		time.Sleep(100 * time.Millisecond)
		cur := snap()
		if cur == prev {
			still++
		} else {
			still = 0
		}
		prev = cur
	}
}

type objKey struct {
	kind        object.Kind
	storeID, id string
}

// crashStore passes calls to Store until the crashAt-th object is committed; from then
// on every call waits for release and fails, as if the machine had stopped. It keeps the
// objects committed since the last Sync that covered them: those a power loss may empty.
type crashStore struct {
	store.Store
	crashAt int
	crashed chan struct{}
	release chan struct{}

	mu         gosync.Mutex
	commits    int
	down       bool
	unsynced   map[objKey]bool
	atTheCrash []objKey
}

var errCrashed = errors.New("the machine is down")

func (c *crashStore) frozen() bool {
	c.mu.Lock()
	down := c.down
	c.mu.Unlock()
	if down {
		<-c.release
	}
	return down
}

func (c *crashStore) Has(ctx context.Context, kind object.Kind, storeID, id string) (bool, error) {
	if c.frozen() {
		return false, errCrashed
	}
	return c.Store.Has(ctx, kind, storeID, id)
}

func (c *crashStore) HasLibrary(ctx context.Context, kind object.Kind, storeID string) (bool, error) {
	if c.frozen() {
		return false, errCrashed
	}
	return c.Store.HasLibrary(ctx, kind, storeID)
}

func (c *crashStore) Size(ctx context.Context, kind object.Kind, storeID, id string) (int64, error) {
	if c.frozen() {
		return 0, errCrashed
	}
	return c.Store.Size(ctx, kind, storeID, id)
}

func (c *crashStore) Get(ctx context.Context, kind object.Kind, storeID, id string) ([]byte, error) {
	if c.frozen() {
		return nil, errCrashed
	}
	return c.Store.Get(ctx, kind, storeID, id)
}

func (c *crashStore) Open(ctx context.Context, kind object.Kind, storeID, id string) (io.ReadCloser, error) {
	if c.frozen() {
		return nil, errCrashed
	}
	return c.Store.Open(ctx, kind, storeID, id)
}

func (c *crashStore) Create(ctx context.Context, kind object.Kind, storeID, id string) (store.Writer, error) {
	if c.frozen() {
		return nil, errCrashed
	}
	w, err := c.Store.Create(ctx, kind, storeID, id)
	if err != nil {
		return nil, err
	}
	return &crashWriter{Writer: w, c: c, key: objKey{kind, storeID, id}}, nil
}

// Sync marks durable only what was committed before it was called.
func (c *crashStore) Sync(ctx context.Context) error {
	if c.frozen() {
		return errCrashed
	}
	c.mu.Lock()
	before := make([]objKey, 0, len(c.unsynced))
	for k := range c.unsynced {
		before = append(before, k)
	}
	c.mu.Unlock()
	if err := c.Store.Sync(ctx); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.down {
		return errCrashed // the flush did not finish before the power went
	}
	for _, k := range before {
		delete(c.unsynced, k)
	}
	return nil
}

func (c *crashStore) SyncAll(ctx context.Context) error {
	if c.frozen() {
		return errCrashed
	}
	return c.Sync(ctx)
}

// loseUnsynced empties every object that was not durable at the crash, and returns the
// stores that lost some.
func (c *crashStore) loseUnsynced(t *testing.T, dataDir string) map[string]bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	lost := map[string]bool{}
	for _, k := range c.atTheCrash {
		must(t, os.Truncate(testenv.ObjectPath(dataDir, k.kind, k.storeID, k.id), 0))
		lost[k.storeID] = true
	}
	return lost
}

type crashWriter struct {
	store.Writer
	c   *crashStore
	key objKey
}

func (w *crashWriter) Commit() error {
	if w.c.frozen() {
		w.Writer.Abort()
		return errCrashed
	}
	if err := w.Writer.Commit(); err != nil {
		return err
	}
	c := w.c
	c.mu.Lock()
	c.unsynced[w.key] = true
	c.commits++
	crash := c.commits == c.crashAt
	if crash {
		c.down = true
		for k := range c.unsynced {
			c.atTheCrash = append(c.atTheCrash, k)
		}
	}
	c.mu.Unlock()
	if crash {
		close(c.crashed)
		<-c.release
		return errCrashed
	}
	return nil
}
