package scan_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"seafbak/scan"
	"seafbak/state"
	"seafbak/sync/primary"
)

type listedCatalog struct{ libs []primary.Library }

func (c listedCatalog) Libraries(context.Context) ([]primary.Library, error) { return c.libs, nil }
func (c listedCatalog) Library(context.Context, string) (primary.Library, error) {
	return primary.Library{}, primary.ErrLibraryGone
}

// A failed library that a sync is retrying right now is still failed: status must not
// turn healthy (exit 0) for the length of each retry while the metrics and --if-changed
// say failed.
func TestAFailedLibraryBeingRetriedIsNotHealthy(t *testing.T) {
	st, err := state.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	id := "7b89d49b-5c5c-4f42-8ded-940c84a3e206"
	now := time.Now().UTC()
	if err := st.Save(state.Library{ID: id, Name: "x", Head: strings.Repeat("a", 40), LastSuccess: now.Add(-48 * time.Hour),
		LastAttempt: now, LastError: "block 12: missing on the primary"}); err != nil {
		t.Fatal(err)
	}
	lk, err := st.TryLock(id)
	if err != nil {
		t.Fatal(err)
	}
	lk.Announce()
	defer lk.Unlock()
	rep, err := scan.Status(context.Background(), listedCatalog{[]primary.Library{{ID: id, Name: "x", Head: strings.Repeat("b", 40)}}}, st)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Syncing != 1 || rep.RetryingFailed != 1 || rep.Healthy() || rep.SyncingList[0].Error == "" {
		t.Fatalf("syncing %d, retrying failed %d, healthy %v, list %+v", rep.Syncing, rep.RetryingFailed, rep.Healthy(), rep.SyncingList)
	}
}

// A damaged record of the last dump says nothing of the libraries: status reports them,
// with a line for the dump's record, rather than failing whole.
func TestADamagedDumpRecordIsALineOfTheStatus(t *testing.T) {
	dir := t.TempDir()
	st, err := state.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "dump.json"), []byte("{not json"), 0o640); err != nil {
		t.Fatal(err)
	}
	rep, err := scan.Status(context.Background(), nil, st)
	if err != nil {
		t.Fatalf("status with a damaged dump record: %v", err)
	}
	var out strings.Builder
	if err := rep.WriteText(&out); err != nil {
		t.Fatal(err)
	}
	if rep.LastDump != nil || !strings.Contains(out.String(), "Last database dump: unknown: ") || !rep.Healthy() {
		t.Errorf("report %+v:\n%s", rep, out.String())
	}
}
