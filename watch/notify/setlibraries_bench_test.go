package notify

import (
	"testing"

	"seafbak/sync/primary"
)

// BenchmarkSetLibraries10000 is what every poll of watch costs the notification client
// with 10 000 libraries, none new or gone.
//
//	go test -run '^$' -bench SetLibraries10000 -benchmem ./watch/notify/
func BenchmarkSetLibraries10000(b *testing.B) {
	libs := make([]primary.Library, 10000)
	for i := range libs {
		libs[i] = lib(i)
	}
	c := &Client{}
	c.SetLibraries(libs)
	for b.Loop() {
		c.SetLibraries(libs)
	}
}
