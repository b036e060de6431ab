package restore

import "os"

// FailSyncfs makes the syncfs a restore ends with fail with err, until the returned
// func is called.
func FailSyncfs(err error) (undo func()) {
	syncfs = func(*os.File) error { return err }
	return func() { syncfs = fsutilSyncfs }
}

var fsutilSyncfs = syncfs

// AssumeCaseInsensitive makes restores take their target directory as ignoring case
// (exFAT, NTFS, SMB), which no filesystem of the test machine does.
func AssumeCaseInsensitive() (undo func()) {
	caseProbe = func(*os.Root) (bool, error) { return true, nil }
	return func() { caseProbe = ignoresCase }
}

// IgnoresCase and FoldCase are ignoresCase and foldCase.
var IgnoresCase, FoldCase = ignoresCase, foldCase

// MarkUnfinished leaves in dir the marker of a restore of repo at commit (the whole
// library) that stopped at collision, as a run on a normalising filesystem would.
func MarkUnfinished(dir, repo, commit, collision string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	return writeMarker(root, unfinished{RepoID: repo, Commit: commit, Collision: collision})
}
