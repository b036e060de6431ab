package sync

// SetRecheckCacheLimit bounds the re-check cache for a test; the returned func restores it.
func SetRecheckCacheLimit(n int) (restore func()) {
	old := recheckCacheLimit
	recheckCacheLimit = n
	return func() { recheckCacheLimit = old }
}
