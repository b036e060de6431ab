package restore

import (
	gosync "sync"

	meter "seafbak/internal/progress"
	"seafbak/state"
)

// Progress follows a long Verify or RestoreLibrary (see progress.Meter). Verify
// discovers objects as it walks and calls Todo as the known total grows; RestoreLibrary
// plans the whole tree first and calls Todo once. Calls are serialised.
type Progress = meter.Meter

// progress serialises calls to a Progress, which may be nil.
type progress struct {
	mu gosync.Mutex
	p  Progress
}

func (p *progress) todo(objects, bytes int64) {
	if p == nil || p.p == nil {
		return
	}
	p.mu.Lock()
	p.p.Todo(objects, bytes)
	p.mu.Unlock()
}

func (p *progress) done(objects, bytes int64) {
	if p == nil || p.p == nil {
		return
	}
	p.mu.Lock()
	p.p.Done(objects, bytes)
	p.mu.Unlock()
}

// LibraryOf says where a library's objects are, from its state record: commits under
// its own id, fs objects and blocks under its store id (the origin's for a virtual
// library).
func LibraryOf(rec state.Library) Library {
	lib := Library{RepoID: rec.ID, StoreID: rec.StoreID}
	if lib.StoreID == "" {
		lib.StoreID = rec.ID
	}
	return lib
}

// StateHeads lists the heads a library's history is read from: its backed-up head,
// then the old heads the primary moved away from (a revert, a repair), oldest first.
// Deleted libraries keep theirs, so their history can still be listed and restored.
func StateHeads(rec state.Library) []string {
	var heads []string
	seen := map[string]bool{}
	add := func(h string) {
		if h != "" && !seen[h] {
			seen[h] = true
			heads = append(heads, h)
		}
	}
	add(rec.Head)
	for _, o := range rec.OldHeads {
		add(o.Head)
	}
	return heads
}
