package sync_test

import (
	"runtime"
	"strings"
	gosync "sync"
	"sync/atomic"
	"testing"
	"time"

	"seafbak/internal/seafgen"
	"seafbak/internal/testenv"
)

// Entry names can be long (nothing in the format bounds them) and the walk holds every
// ancestor of the dir it fetches: when each node kept its full path, depth D of names
// of L bytes cost L*D*D/2 bytes, from dir objects zlib shrinks to almost nothing on
// the wire (found by review: 175 MiB of heap for 2 MiB of names). Each node keeps its
// own name now, and paths are built for messages and holes only.
func TestDeepTreeOfLongNamesIsLinearInMemory(t *testing.T) {
	const depth, nameLen = 128, 16 << 10
	env := testenv.New(t, srv)
	lib, err := seafgen.New(env.PrimaryDir).NewLibrary(seafgen.LibraryOptions{Name: "deep"})
	if err != nil {
		t.Fatal(err)
	}
	name := strings.Repeat("n", nameLen)
	p := strings.Repeat(name+"/", depth) + "f"
	testenv.Commit(t, lib, "deep", seafgen.Put(p, []byte("x")))
	env.Publish(lib)
	eng := env.Engine(false)
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	var peak atomic.Uint64
	stop := make(chan struct{})
	var wg gosync.WaitGroup
	wg.Go(func() {
		for {
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			if m.HeapAlloc > peak.Load() {
				peak.Store(m.HeapAlloc)
			}
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	})
	res := testenv.SyncOK(t, eng, lib.ID)
	close(stop)
	wg.Wait()
	grew := int64(peak.Load()) - int64(base)
	objBytes := int64(depth) * nameLen
	t.Logf("fs objects %d, dir JSON about %d KiB in all; heap grew by %d MiB during the sync", res.FSObjects, objBytes>>10, grew>>20)
	if grew > 20*objBytes {
		t.Fatalf("heap grew %d MiB for %d KiB of dir objects: paths are quadratic in depth", grew>>20, objBytes>>10)
	}
}
