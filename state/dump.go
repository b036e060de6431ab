package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"seafbak/internal/fsutil"
)

// The state's small records beside the libraries' (dump.json, scan-failed.json,
// failed-over.json): one JSON file each, written whole and flushed (fsutil.WriteFileAtomic).

// saveJSON writes v to path; what names the record in an error.
func saveJSON(path string, v any, what string) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("state: %w", err)
	}
	if err := fsutil.WriteFileAtomic(path, append(data, '\n'), 0o640); err != nil {
		return fmt.Errorf("state: %s: %w", what, err)
	}
	return nil
}

// loadJSON reads path into v. found is false if there is no such file; a file that
// does not parse is returned as damaged (found true), for the caller to word.
func loadJSON(path string, v any) (found bool, damaged, err error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil, nil
	}
	if err != nil {
		return false, nil, fmt.Errorf("state: %w", err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return true, err, nil
	}
	return true, nil, nil
}

// removeRecord removes path if it is there.
func removeRecord(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("state: %w", err)
	}
	return nil
}

// Dump records the last complete database dump, for status and restore.
type Dump struct {
	Set      string    `json:"set"`
	Dir      string    `json:"dir"`
	Finished time.Time `json:"finished"`
	Bytes    int64     `json:"bytes"`
	Roles    []string  `json:"roles"`
}

func (d *Dir) dumpPath() string { return filepath.Join(d.root, "dump.json") }

// SaveDump records a finished dump.
func (d *Dir) SaveDump(rec Dump) error { return saveJSON(d.dumpPath(), rec, "save last dump") }

// LastDump is the last recorded dump, or nil if there was none.
func (d *Dir) LastDump() (*Dump, error) {
	var rec Dump
	found, damaged, err := loadJSON(d.dumpPath(), &rec)
	switch {
	case err != nil || !found:
		return nil, err
	case damaged != nil:
		return nil, fmt.Errorf("state: %s is damaged (%v); the next seafbak dump rewrites it", d.dumpPath(), damaged)
	}
	return &rec, nil
}

// ScanFailure records that the last scan could not run at all (the primary's data dir
// or database, the backup disk or database unreachable): it synced nothing and
// recorded nothing in any library's record, so without it status would show the
// libraries merely waiting, and the cron recipe's status --if-changed mail nothing
// while the backup stood still.
type ScanFailure struct {
	At    time.Time `json:"at"`
	Error string    `json:"error"`
}

func (d *Dir) scanFailurePath() string { return filepath.Join(d.root, "scan-failed.json") }

// SaveScanFailure records that a scan could not run, with why; nil records that one
// ran (whatever became of each library), removing the record.
func (d *Dir) SaveScanFailure(f *ScanFailure) error {
	if f == nil {
		return removeRecord(d.scanFailurePath())
	}
	return saveJSON(d.scanFailurePath(), f, "record the failed scan")
}

// LastScanFailure is the recorded failure of the last scan, or nil if it ran.
func (d *Dir) LastScanFailure() (*ScanFailure, error) {
	var f ScanFailure
	found, damaged, err := loadJSON(d.scanFailurePath(), &f)
	switch {
	case err != nil || !found:
		return nil, err
	case damaged != nil:
		// Still a scan that failed; the next scan that runs removes it.
		return &ScanFailure{Error: fmt.Sprintf("%s is damaged (%v)", d.scanFailurePath(), damaged)}, nil
	}
	return &f, nil
}
