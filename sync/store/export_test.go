package store

// NamedTemps makes s write through temp files named in seafbak-tmp, as it does where
// the filesystem cannot link O_TMPFILE files, so tests cover both ways on any machine.
func NamedTemps(s *FS) *FS {
	s.unnamed = false
	return s
}

// UnnamedTemps reports whether s writes through O_TMPFILE files.
func UnnamedTemps(s *FS) bool { return s.unnamed }
