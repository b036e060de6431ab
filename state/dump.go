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
