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
func (d *Dir) SaveDump(rec Dump) error {
	data, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return fmt.Errorf("state: %w", err)
	}
	if err := fsutil.WriteFileAtomic(d.dumpPath(), append(data, '\n'), 0o640); err != nil {
		return fmt.Errorf("state: save last dump: %w", err)
	}
	return nil
}

// LastDump is the last recorded dump, or nil if there was none.
func (d *Dir) LastDump() (*Dump, error) {
	data, err := os.ReadFile(d.dumpPath())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	var rec Dump
	if err := json.Unmarshal(data, &rec); err != nil {
		return nil, fmt.Errorf("state: %s is damaged (%v); the next seafbak dump rewrites it", d.dumpPath(), err)
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
		if err := os.Remove(d.scanFailurePath()); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("state: %w", err)
		}
		return nil
	}
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return fmt.Errorf("state: %w", err)
	}
	if err := fsutil.WriteFileAtomic(d.scanFailurePath(), append(data, '\n'), 0o640); err != nil {
		return fmt.Errorf("state: record the failed scan: %w", err)
	}
	return nil
}

// LastScanFailure is the recorded failure of the last scan, or nil if it ran.
func (d *Dir) LastScanFailure() (*ScanFailure, error) {
	data, err := os.ReadFile(d.scanFailurePath())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	var f ScanFailure
	if err := json.Unmarshal(data, &f); err != nil {
		// Damaged: still a scan that failed; the next scan that runs removes it.
		return &ScanFailure{Error: fmt.Sprintf("%s is damaged (%v)", d.scanFailurePath(), err)}, nil
	}
	return &f, nil
}
