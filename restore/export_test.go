package restore

import "os"

// FailSyncfs makes the syncfs a restore ends with fail with err, until the returned
// func is called.
func FailSyncfs(err error) (undo func()) {
	syncfs = func(*os.File) error { return err }
	return func() { syncfs = fsutilSyncfs }
}

var fsutilSyncfs = syncfs
