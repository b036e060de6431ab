// Package gencache is a cache bounded in entries, for what costs only a second lookup
// when forgotten (ids verified during a re-check, directories known to exist): it keeps
// the newest entries in two generations, and when the current one is full the older one
// is dropped, so it holds at most twice its limit and always the last limit entries.
package gencache

// Generations is the cache; not safe for concurrent use.
type Generations[K comparable, V any] struct {
	cur, old map[K]V
	limit    int
}

// New is a cache of generations of limit entries (at least 1).
func New[K comparable, V any](limit int) Generations[K, V] {
	return Generations[K, V]{cur: map[K]V{}, limit: max(limit, 1)}
}

func (g *Generations[K, V]) Get(k K) (V, bool) {
	if v, ok := g.cur[k]; ok {
		return v, true
	}
	v, ok := g.old[k]
	return v, ok
}

func (g *Generations[K, V]) Put(k K, v V) {
	if len(g.cur) >= g.limit {
		g.old, g.cur = g.cur, make(map[K]V, g.limit)
	}
	g.cur[k] = v
}

// Delete forgets k.
func (g *Generations[K, V]) Delete(k K) {
	delete(g.cur, k)
	delete(g.old, k)
}

// Len is how many entries it holds, of both generations.
func (g *Generations[K, V]) Len() int { return len(g.cur) + len(g.old) }
