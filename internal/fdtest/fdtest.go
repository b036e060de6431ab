// Package fdtest counts a test process's open descriptors, for tests that hold
// directories open and must close them.
package fdtest

import (
	"os"
	"strings"
	"testing"
)

// OpenBelow counts this process's open descriptors of files and directories below
// root. It skips the test where /proc/self/fd cannot be read.
func OpenBelow(t testing.TB, root string) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd:", err)
	}
	n := 0
	for _, e := range ents {
		if target, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && strings.HasPrefix(target, root+"/") {
			n++
		}
	}
	return n
}
