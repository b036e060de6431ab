package state

import (
	"fmt"
	"path/filepath"
	"time"
)

// FailedOver records that restore server made this host's databases Seafile's: from
// then on the backup database is live, edited by the users of the Seafile started on
// it, and a sync moving its Branch rows to the old primary's heads (cron or watch left
// running, the old primary back) would put every library back in time. Commands that
// write the backup database refuse while it is there (ErrFailedOver).
type FailedOver struct {
	At      time.Time `json:"at"`
	DumpSet string    `json:"dump_set"`
}

func (d *Dir) failedOverPath() string { return filepath.Join(d.root, "failed-over.json") }

// FailedOverPath is the record's file: removing it lets backups run again (a failover
// made for a test, with the primary still serving).
func (d *Dir) FailedOverPath() string { return d.failedOverPath() }

// RefuseIfFailedOver is the one check of the record for everything that moves the
// backup database's rows (the commands before they start, the engine before each
// move): a *FailedOverError if it is there.
func (d *Dir) RefuseIfFailedOver() error {
	f, err := d.LastFailover()
	if err != nil {
		return err
	}
	if f != nil {
		return &FailedOverError{Rec: *f, Path: d.failedOverPath()}
	}
	return nil
}

// FailedOverError is ErrFailedOver with when, from which dump, and the record's file.
type FailedOverError struct {
	Rec  FailedOver
	Path string
}

func (e *FailedOverError) Error() string {
	when := ""
	if !e.Rec.At.IsZero() {
		when = fmt.Sprintf(" on %s (dump %s)", e.Rec.At.UTC().Format("2006-01-02 15:04:05 MST"), e.Rec.DumpSet)
	}
	return fmt.Sprintf("%s%s: recorded in %s", ErrFailedOver, when, e.Path)
}

func (e *FailedOverError) Is(target error) bool { return target == ErrFailedOver }

// SaveFailedOver records a failover, durably, before its rows are written.
func (d *Dir) SaveFailedOver(f FailedOver) error {
	return saveJSON(d.failedOverPath(), f, "record the failover")
}

// LastFailover is the recorded failover, or nil if there was none. A damaged record
// still says a failover happened.
func (d *Dir) LastFailover() (*FailedOver, error) {
	var f FailedOver
	found, damaged, err := loadJSON(d.failedOverPath(), &f)
	switch {
	case err != nil || !found:
		return nil, err
	case damaged != nil:
		return &FailedOver{}, nil
	}
	return &f, nil
}

// ErrFailedOver: this host serves Seafile since a restore server; backups into its
// databases would overwrite what its users do.
var ErrFailedOver = fmt.Errorf("this host's databases serve Seafile since a failover (seafbak restore server)")
