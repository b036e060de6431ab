package scan_test

import (
	"os"
	"path/filepath"

	"seafbak/sync/object"
)

func removeObject(dataDir string, kind object.Kind, store, id string) error {
	return os.Remove(filepath.Join(dataDir, "storage", string(kind), store, id[:2], id[2:]))
}
