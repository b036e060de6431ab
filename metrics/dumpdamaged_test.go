package metrics

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"seafbak/state"
)

// Found by review: a damaged dump.json (a hand edit, a disk error) stops every metrics file
// from being written: the libraries' metrics stay at their last values, though status
// reports the same state with the dump's record as one line of it.
func TestDamagedDumpRecordKeepsTheLibrariesMetrics(t *testing.T) {
	root := t.TempDir()
	st, err := state.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Save(state.Library{ID: "00000001-0000-4000-8000-000000000001", Head: "0123456789012345678901234567890123456789"}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "dump.json"), []byte("{\"set\": \"2026-"), 0o640); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "seafbak.prom")
	if err := Write(path, st, &Run{Command: "scan", Duration: time.Second}, time.Now()); err != nil {
		t.Errorf("metrics not written because dump.json is damaged: %v", err)
	}
}
