package store

import "sync/atomic"

// NamedTemps makes s write through temp files named in seafbak-tmp, as it does where
// the filesystem cannot link O_TMPFILE files, so tests cover both ways on any machine.
func NamedTemps(s *FS) *FS {
	s.unnamed = false
	return s
}

// UnnamedTemps reports whether s writes through O_TMPFILE files.
func UnnamedTemps(s *FS) bool { return s.unnamed }

// FlushAheadBytes is how many pending bytes start a background syncfs.
const FlushAheadBytes = flushAheadBytes

// HookSyncfs makes every syncfs of s call hook instead of syncfs(2).
func HookSyncfs(s *FS, hook func() error) { s.syncfsHook = hook }

// FlushingAhead reports whether a background syncfs is running.
func FlushingAhead(s *FS) bool { return s.flushingAhead.Load() }

// LinkThroughProc makes s link unnamed temp files through /proc/self/fd, as it does
// without CAP_DAC_READ_SEARCH, so tests cover both ways whoever runs them.
func LinkThroughProc(s *FS) *FS {
	s.emptyPathLink = false
	return s
}

// HeldDirs is how many library directories s holds open.
func HeldDirs(s *FS) int { return s.held.Len() }

// OpenHeldAtOnce makes s open a held library directory at its first object call rather
// than after fsutil.DefaultOpenAfter of them.
func OpenHeldAtOnce(s *FS) *FS {
	s.held.OpenAfter = 1
	return s
}

// FlushedFilesystems names the directories through which a syncfs of s flushes: the
// root, then each of storage/<kind> on a filesystem of its own.
func FlushedFilesystems(s *FS) []string {
	names := []string{s.rootDir.Name()}
	for _, f := range s.otherFS {
		names = append(names, f.Name())
	}
	return names
}

// CountReplacementFsyncs counts the fsyncs of copies about to replace an object, until
// the test ends.
func CountReplacementFsyncs(t interface{ Cleanup(func()) }, n *atomic.Int32) {
	old := fsyncReplacement
	fsyncReplacement = func(fd int) error { n.Add(1); return old(fd) }
	t.Cleanup(func() { fsyncReplacement = old })
}

// ListPageKeys makes S3 listings ask for n keys a page, until the test ends.
func ListPageKeys(t interface{ Cleanup(func()) }, n int) {
	old := listPageKeys
	listPageKeys = n
	t.Cleanup(func() { listPageKeys = old })
}

// HookPlaced makes every Commit of s call hook once its object is named, before it is
// pending for the next Sync.
func HookPlaced(s *FS, hook func(path string)) { s.placedHook = hook }

// Pending is how many objects wait for the next Sync of s by name.
func Pending(s *FS) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.pendingFiles)
}
