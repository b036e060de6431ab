package sync

import (
	"crypto/sha1"
	"encoding/hex"
	"runtime"
	"testing"
)

func testID(i int) string {
	s := sha1.Sum([]byte{byte(i), byte(i >> 8), byte(i >> 16), byte(i >> 24)})
	return hex.EncodeToString(s[:])
}

func TestVerifiedCacheForgetsWhenFull(t *testing.T) {
	c := newVerifiedCache(2)
	c.addFS(testID(1))
	c.addFS(testID(2))
	if !c.hasFS(testID(1)) || !c.hasFS(testID(2)) || c.hasFS(testID(3)) {
		t.Fatal("cache does not answer what it holds")
	}
	c.addFS(testID(3)) // a new generation: 1 and 2 are the old one
	if !c.hasFS(testID(1)) || !c.hasFS(testID(3)) {
		t.Fatal("cache lost an id of the last two generations")
	}
	c.addFS(testID(4))
	c.addFS(testID(5)) // 1 and 2 are dropped
	if c.fs.Len() > 4 || c.hasFS(testID(1)) || !c.hasFS(testID(3)) || !c.hasFS(testID(5)) {
		t.Fatalf("cache of limit 2 holds %d ids, or kept the oldest, or lost the newest", c.fs.Len())
	}
	c.addBlock(testID(9), 7)
	if size, ok := c.blockSize(testID(9)); !ok || size != 7 {
		t.Fatalf("block size %d %v", size, ok)
	}
	for _, bad := range []string{"", "xyz", testID(1)[:39], testID(1) + "0", "zz" + testID(1)[2:]} {
		c.addFS(bad)
		if c.hasFS(bad) {
			t.Fatalf("cached the malformed id %q", bad)
		}
	}
}

// The re-check of a library of millions of objects must not hold them all: the cache's
// heap stays under its budget however many ids go through it.
func TestVerifiedCacheMemoryBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("fills the cache to its limit several times")
	}
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	before := heap()
	c := newVerifiedCache(recheckCacheLimit)
	n := 5 * recheckCacheLimit
	for i := range n {
		id := testID(i)
		c.addFS(id)
		c.addBlock(id, int64(i))
	}
	used := heap() - before
	runtime.KeepAlive(c)
	t.Logf("%d ids through the cache: %.1f MiB held", n, float64(used)/(1<<20))
	if used > 100<<20 {
		t.Fatalf("cache holds %.1f MiB after %d ids, want < 100 MiB", float64(used)/(1<<20), n)
	}
}
