package store

import (
	"strings"
	gosync "sync"

	"seafbak/internal/gencache"
)

// dirCache remembers directories known to exist, so that writing an object does not
// ask the filesystem each time. It is only a cache: a directory forgotten costs one
// mkdir that answers EEXIST. So it is bounded: a long-running watch, or a first scan of
// thousands of libraries, ensures up to 771 directories per library (3 kinds x 256
// prefixes, and the library's own), and remembering every one kept about 200 bytes each
// for the life of the process (4.6 MB of object paths at the peak of a first round of
// 10 000 one-file libraries).
//
// It keeps the newest entries in two generations (gencache): the libraries being copied
// now are the ones written to.
type dirCache struct {
	mu   gosync.RWMutex
	dirs gencache.Generations[string, struct{}]
}

// dirCacheLimit is the size of a generation: the directories of about five large
// libraries being copied at once, a few hundred KiB.
const dirCacheLimit = 4096

func newDirCache(limit int) *dirCache {
	return &dirCache{dirs: gencache.New[string, struct{}](limit)}
}

func (c *dirCache) has(dir string) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	_, ok := c.dirs.Get(dir)
	return ok
}

// add remembers dir, a copy of it: dir is often a slice of an object's whole path.
func (c *dirCache) add(dir string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dirs.Put(strings.Clone(dir), struct{}{})
}

// forget drops dir: it was found missing (removed by hand under a running watch).
func (c *dirCache) forget(dir string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dirs.Delete(dir)
}

func (c *dirCache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.dirs.Len()
}
