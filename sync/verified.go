package sync

import (
	"seafbak/internal/gencache"
	"seafbak/sync/object"
)

// recheckCacheLimit is how many ids of each kind one generation of verifiedCache holds;
// it keeps two. At most about 64 MiB in all (2 generations x 2 kinds x 2^18 ids), whatever the
// library's size (TestVerifiedCacheMemoryBounded).
var recheckCacheLimit = 1 << 18

// verifiedCache remembers, during a re-check, the fs objects and blocks already read and
// verified in this run, so that an object many commits share is re-read once rather than
// once per commit. It is only a cache: forgetting an entry costs a second read of that
// object, never correctness. So it is bounded: a re-check of a library of millions of
// files would otherwise hold every id it met (issue 10: about 100 bytes per object with
// string keys, past 256 MiB at two million files).
//
// It keeps the newest ids in two generations: when the current one fills up, the older
// one is dropped. A tree is verified bottom-up, so the dirs nearest the root are always
// among the newest, and those are what let the next commit's walk skip whole unchanged
// subtrees.
type verifiedCache struct {
	fs     gencache.Generations[[20]byte, struct{}]
	blocks gencache.Generations[[20]byte, int64] // the verified block's size
}

func newVerifiedCache(limit int) *verifiedCache {
	return &verifiedCache{fs: gencache.New[[20]byte, struct{}](limit), blocks: gencache.New[[20]byte, int64](limit)}
}

// key is id's binary form; an id that is not one (the caller checked it) is simply not
// cached.
func key(id string) ([20]byte, bool) { return object.BinaryID(id) }

func (c *verifiedCache) hasFS(id string) bool {
	k, ok := key(id)
	if !ok {
		return false
	}
	_, ok = c.fs.Get(k)
	return ok
}

func (c *verifiedCache) addFS(id string) {
	if k, ok := key(id); ok {
		c.fs.Put(k, struct{}{})
	}
}

func (c *verifiedCache) blockSize(id string) (int64, bool) {
	k, ok := key(id)
	if !ok {
		return 0, false
	}
	return c.blocks.Get(k)
}

func (c *verifiedCache) addBlock(id string, size int64) {
	if k, ok := key(id); ok {
		c.blocks.Put(k, size)
	}
}
