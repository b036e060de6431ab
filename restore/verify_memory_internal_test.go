package restore

import (
	"fmt"
	"runtime"
	"testing"
)

// Verify of a server of many small libraries: what each store costs while the first
// pass walks, beside its objects. It was 2 KiB of empty shards per store, 581 MiB for
// a restore server of 100 000 one-file libraries.
func TestStoreCheckCostsLittleBeyondItsObjects(t *testing.T) {
	const n = 20000
	storeIDs, fsIDs, blockIDs := make([]string, n), make([]string, n), make([]string, n)
	for i := range n {
		storeIDs[i] = fmt.Sprintf("%08x-0000-4000-8000-000000000000", i)
		fsIDs[i] = fmt.Sprintf("%040x", 2*i)
		blockIDs[i] = fmt.Sprintf("%040x", 2*i+1)
	}
	stores := make([]*storeCheck, n)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	m := &met{}
	for i := range n {
		st := newStoreCheck(storeIDs[i], uint32(i))
		if !m.fs.add(st.key(fsIDs[i])) {
			t.Fatalf("store %d: fs object met before", i)
		}
		if _, met := m.blocks.claim(st.key(blockIDs[i])); met {
			t.Fatalf("store %d: block met before", i)
		}
		m.blocks.set(st.key(blockIDs[i]), 4096)
		stores[i] = st
	}
	runtime.ReadMemStats(&after)
	perStore := float64(after.TotalAlloc-before.TotalAlloc) / n
	t.Logf("%.0f bytes allocated per store of one fs object and one block", perStore)
	if perStore > 512 {
		t.Fatalf("%.0f bytes allocated per store of one fs object and one block, want at most 512", perStore)
	}
	// The same object id in two stores is two objects: each store checks its own.
	if !m.fs.add(stores[1].key(fsIDs[0])) {
		t.Fatal("an object met in store 0 counted as met in store 1")
	}
	if m.fs.add(stores[0].key(fsIDs[0])) {
		t.Fatal("an object met twice in store 0 counted as new")
	}
}
