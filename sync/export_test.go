package sync

// SetRecheckCacheLimit bounds the re-check cache for a test; the returned func restores it.
func SetRecheckCacheLimit(n int) (restore func()) {
	old := recheckCacheLimit
	recheckCacheLimit = n
	return func() { recheckCacheLimit = old }
}

// SetSmallCopy sets how many objects, and bytes of them, a copy fetches before it
// counts as large, for a test; the returned func restores them.
func SetSmallCopy(n, bytes int) (restore func()) {
	old, oldBytes := smallCopy, smallCopyBytes
	smallCopy, smallCopyBytes = n, bytes
	return func() { smallCopy, smallCopyBytes = old, oldBytes }
}
