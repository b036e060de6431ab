package sync

// SetRecheckCacheLimit bounds the re-check cache for a test; the returned func restores it.
func SetRecheckCacheLimit(n int) (restore func()) {
	old := recheckCacheLimit
	recheckCacheLimit = n
	return func() { recheckCacheLimit = old }
}

// SetSmallCopy sets how many objects a copy fetches before it counts as large, for a
// test; the returned func restores it.
func SetSmallCopy(n int) (restore func()) {
	old := smallCopy
	smallCopy = n
	return func() { smallCopy = old }
}
