package store_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"seafbak/sync/object"
	"seafbak/sync/store"
	"seafbak/sync/store/storetest"
)

func TestFSConformance(t *testing.T) {
	for _, named := range []bool{false, true} {
		for _, d := range []store.Durability{store.Batch, store.PerObject} {
			name := map[store.Durability]string{store.Batch: "batch", store.PerObject: "per-object"}[d]
			if named {
				name += "/named-temps"
			}
			t.Run(name, func(t *testing.T) { fsConformance(t, d, named) })
		}
	}
}

func fsConformance(t *testing.T, d store.Durability, named bool) {
	storetest.Run(t, func(t *testing.T) storetest.Subject {
		root := t.TempDir()
		s, err := store.NewFS(root, d)
		if err != nil {
			t.Fatal(err)
		}
		if named {
			s = store.NamedTemps(s)
		}
		return storetest.Subject{
			Store: s,
			Raw: func(kind object.Kind, storeID, id string) ([]byte, bool) {
				b, err := os.ReadFile(filepath.Join(root, "storage", string(kind), storeID, id[:2], id[2:]))
				return b, err == nil
			},
			// Objects, and temp files a write left behind.
			Count: func() int {
				n := 0
				for _, dir := range []string{"storage", store.TempDirName} {
					filepath.WalkDir(filepath.Join(root, dir), func(_ string, e fs.DirEntry, err error) error {
						if err == nil && e.Type().IsRegular() {
							n++
						}
						return err
					})
				}
				return n
			},
		}
	})
}
