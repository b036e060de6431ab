// Package state is seafbak's local record of what has been backed up: per library, the
// last synced head and how the last attempts went. Each library has its own small file,
// replaced atomically, so recording one library costs the same in a state of 100 000
// libraries as in a state of ten, and a per-library lock keeps concurrent invocations
// (primary hook, cron scan, an admin) from losing each other's updates.
package state

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	gosync "sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"seafbak/internal/fsutil"
	"seafbak/sync/object"
)

// Library is everything seafbak remembers about one library.
type Library struct {
	ID      string `json:"id"`
	StoreID string `json:"store_id,omitempty"`
	Name    string `json:"name,omitempty"`
	Owner   string `json:"owner,omitempty"`
	// OrgID is the organisation the library belongs to (Seafile's OrgRepo), 0 for
	// none. Records written before it was kept have 0 for every library.
	OrgID int64 `json:"org_id,omitempty"`
	// Head is the last head whose every object is durable in the backup store.
	Head string `json:"head,omitempty"`
	// HeadTime is when Head was committed (its ctime), so that status needs no read of
	// the store for it (on S3, a GET per library); zero where unknown (records from
	// before it was kept, a head only its rows moved to).
	HeadTime    time.Time `json:"head_time,omitzero"`
	LastAttempt time.Time `json:"last_attempt,omitzero"`
	LastSuccess time.Time `json:"last_success,omitzero"`
	// LastError is the error of the last attempt; empty when it succeeded.
	LastError string `json:"last_error,omitempty"`
	// FailedBecause is LastError's class (the Failure* constants): one outage fails
	// each attempt at another object, and its text names that object, so a change of
	// health is told by the class. Empty in records from before it was kept.
	FailedBecause string `json:"failed_because,omitempty"`
	// Holes are objects the primary could not give (missing or corrupt), skipped under
	// --force. Every later sync asks for them again.
	Holes []Hole `json:"holes,omitempty"`
	// Truncated lists commits whose trees the primary's GC removed under a history
	// limit: expected, not errors, and never retried.
	Truncated []string `json:"truncated,omitempty"`
	// Deleted is when seafbak first saw the library gone from the primary. Its objects
	// stay in the backup.
	Deleted *time.Time `json:"deleted,omitempty"`
	// OldHeads are heads the primary moved away from without keeping them in history
	// (a revert, a seaf-fsck repair); their objects stay restorable.
	OldHeads []OldHead `json:"old_heads,omitempty"`
	// HeadMoves are the moves of the head the first-parent lines do not show, oldest
	// first (see HeadMove). Records from before they were kept have none.
	HeadMoves []HeadMove `json:"head_moves,omitempty"`
	// Recheck says presence of this library's objects must not be trusted until a sync
	// completes: a sync that had to re-check every object (after an attempt died, a lost
	// record, a repair) failed before it finished.
	Recheck bool `json:"recheck,omitempty"`
	// RecheckedAt is when the last re-check of this library completed: every object
	// of its history read back and verified. A dead attempt's marker left by a
	// library since deleted binds this one only if it is newer (see DeadDirty).
	RecheckedAt time.Time `json:"rechecked_at,omitzero"`

	// unknown are the fields of a record this seafbak does not know (a newer one wrote
	// them), kept through a Save: run side by side, or downgraded, an older seafbak
	// would otherwise drop what a newer one relies on. Only the record's own fields are
	// kept, not those inside its holes or old heads: a newer seafbak that adds any there,
	// or changes what a field means, sets format above recordFormat, and this one then
	// refuses to save the record (see Save).
	unknown map[string]json.RawMessage
	format  int // the record's "format", when above recordFormat
}

// recordFormat is the newest record format this seafbak writes and can save over. A
// record without "format" is of format 1.
const recordFormat = 1

// Classes of failure (Library.FailedBecause).
const (
	FailurePrimaryUnreachable = "primary_unreachable"
	FailureStoreUnavailable   = "store_unavailable"
	FailureStoreFull          = "store_full"
	FailureOther              = "other"
)

// Failed reports whether the last attempt failed.
func (l *Library) Failed() bool { return l.LastError != "" }

// FailureRecorded reports whether library id's record says it failed (or is damaged,
// which status counts as failed). A failure the engine could not record (the state's
// disk read-only or full) leaves the record at its old head, not failed: a scan or
// watch must not then count the library current, or the metrics would never show it
// behind.
func (d *Dir) FailureRecorded(id string) bool {
	rec, found, err := d.Load(id)
	return errors.Is(err, ErrDamaged) || err == nil && found && rec.Failed()
}

// UpToDate reports whether the backup of this library is complete at head, so that a
// sync to head has nothing to do. It is the one rule for "does this library need a
// sync": scan uses it to pick libraries, the engine to return at once, so the two
// cannot disagree about a library. Anything but "done, cleanly, at this head" needs
// a sync: holes are asked for again by every sync, a library recorded deleted that is
// listed again came back from the trash, a failed last attempt is retried, and a
// pending recheck must finish before presence is trusted again.
func (l *Library) UpToDate(head string) bool {
	return l.Head == head && len(l.Holes) == 0 && l.Deleted == nil && !l.Failed() && !l.Recheck
}

// Hole is an object of a library's history the backup lacks because the primary did.
type Hole struct {
	Kind      string    `json:"kind"`
	ID        string    `json:"id"`
	Path      string    `json:"path,omitempty"`
	Commit    string    `json:"commit"`
	Error     string    `json:"error"`
	FirstSeen time.Time `json:"first_seen"`
}

// OldHead is a former head that is no longer in the primary's history.
type OldHead struct {
	Head     string    `json:"head"`
	Replaced time.Time `json:"replaced"`
}

// HeadMove is a move of the backed-up head that its first-parent line does not show: a
// head leaving the primary's history (a reset, a repair), or coming back to a head that
// had left it (the reset undone). With them, which head the primary served at a time
// is known (restore --at); fast-forwards need no record, the line shows them.
type HeadMove struct {
	From string    `json:"from"`
	To   string    `json:"to"`
	At   time.Time `json:"at"`
}

// Dir is a state directory:
//
//	libraries/<repo id>.json   one record per library
//	locks/<repo id>.lock       held (flock) while a library syncs
//	dirty/<store id>.<repo id> a sync of repo id is writing unsynced objects into store id
type Dir struct {
	root string
	// rootFile is root, opened by Open: record flushes that take a syncfs go through
	// it, so they report every writeback error on the filesystem since Open, also one
	// that another descriptor saw first (the backup store's own syncfs, when the store
	// is on the same filesystem, or another seafbak's). It is reopened if root is no
	// longer that directory (see syncfs).
	rootMu   gosync.Mutex
	rootFile *os.File
	// mine holds the dirty markers this process wrote and has not cleared: their
	// objects are made durable by this process's own store, unlike other processes'.
	mu   gosync.Mutex
	mine map[string]bool
	// Group commits: the data of records about to be renamed into place, the
	// libraries/ directory after renames, the dirty/ directory after new markers.
	recordData, recordDir, dirtyDir fsutil.Group
	// view follows dirty/'s names through inotify, started by the first question
	// about markers; nil where inotify is unavailable. Then dirtyList shares listings
	// of dirty/ among the syncs asking at once, and markers is the latest listing.
	viewOnce  gosync.Once
	view      *markerView
	dirtyList fsutil.Group
	markers   atomic.Pointer[[]string]
}

func newDir(root string, rootFile *os.File) *Dir {
	d := &Dir{root: root, rootFile: rootFile}
	d.recordData.Linger, d.recordDir.Linger, d.dirtyDir.Linger = fsutil.FlushLinger, fsutil.FlushLinger, fsutil.FlushLinger
	return d
}

// Open opens (creating if needed) the state directory at root.
func Open(root string) (*Dir, error) {
	if root == "" {
		return nil, errors.New("state: no state directory configured")
	}
	for _, sub := range []string{"libraries", "locks", "dirty"} {
		if err := os.MkdirAll(filepath.Join(root, sub), 0o750); err != nil {
			return nil, fmt.Errorf("state %s: %w", root, err)
		}
	}
	rootFile, err := os.Open(root)
	if err != nil {
		return nil, fmt.Errorf("state %s: %w", root, err)
	}
	return newDir(root, rootFile), nil
}

// ErrNoState: the state directory, or its libraries/, does not exist.
var ErrNoState = errors.New("no seafbak state there")

// OpenExisting opens the state directory at root for a command that reads the backup
// (status, verify, restore), creating nothing: a state made anew on a disk not mounted
// would show an empty backup as a healthy one, and leave a directory that hides the
// mount point from the next check.
func OpenExisting(root string) (*Dir, error) {
	if root == "" {
		return nil, errors.New("state: no state directory configured")
	}
	fi, err := os.Stat(filepath.Join(root, "libraries"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("state %s: %w (is the state's disk mounted, and state: in the config right? seafbak scan or sync makes a new one)", root, ErrNoState)
	}
	if err != nil {
		return nil, fmt.Errorf("state %s: %w", root, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("state %s: libraries is not a directory", root)
	}
	rootFile, err := os.Open(root)
	if err != nil {
		return nil, fmt.Errorf("state %s: %w", root, err)
	}
	return newDir(root, rootFile), nil
}

// Root is the state directory.
func (d *Dir) Root() string { return d.root }

func (d *Dir) recordPath(repoID string) (string, error) {
	if err := object.CheckRepoID(repoID); err != nil {
		return "", fmt.Errorf("state: %w", err)
	}
	return filepath.Join(d.root, "libraries", repoID+".json"), nil
}

// Load reads one library's record; ok is false if seafbak has never recorded it.
func (d *Dir) Load(repoID string) (rec Library, ok bool, err error) {
	p, err := d.recordPath(repoID)
	if err != nil {
		return rec, false, err
	}
	data, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return Library{ID: repoID}, false, nil
	}
	if passing(err) {
		// Nothing wrong with the record: the command fails, and the next one reads it.
		return rec, false, fmt.Errorf("state: library %s: read %s: %w", repoID, p, err)
	}
	if err != nil {
		return rec, false, &DamagedError{RepoID: repoID, Path: p, Err: err, Unreadable: true}
	}
	if rec, err = decodeRecord(data); err != nil {
		return Library{}, false, &DamagedError{RepoID: repoID, Path: p, Err: err}
	}
	if rec.ID != repoID {
		return Library{}, false, &DamagedError{RepoID: repoID, Path: p, Err: fmt.Errorf("it records library %q", rec.ID)}
	}
	return rec, true, nil
}

// decodeRecord parses a record, keeping the fields it does not know apart. The strict
// pass is the usual one (1 µs more than a plain Unmarshal); only a record with
// fields of a newer seafbak, or a bad one, is read twice more.
func decodeRecord(data []byte) (Library, error) {
	var rec Library
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rec); err == nil {
		if _, err := dec.Token(); err == io.EOF {
			return rec, nil
		}
	}
	rec = Library{}
	if err := json.Unmarshal(data, &rec); err != nil {
		return Library{}, err
	}
	var all map[string]json.RawMessage
	if err := json.Unmarshal(data, &all); err != nil {
		return Library{}, err
	}
	for _, k := range knownFields {
		delete(all, k)
	}
	if len(all) > 0 {
		rec.unknown = all
	}
	if raw, ok := all["format"]; ok {
		var f int
		if err := json.Unmarshal(raw, &f); err != nil {
			return Library{}, fmt.Errorf("format: %w", err)
		}
		if f > recordFormat {
			rec.format = f
		}
	}
	return rec, nil
}

// knownFields are the JSON names of Library's fields.
var knownFields = func() []string {
	t := reflect.TypeFor[Library]()
	var names []string
	for i := range t.NumField() {
		if name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ","); name != "" && name != "-" {
			names = append(names, name)
		}
	}
	return names
}()

// encodeRecord is the record's JSON, with the fields decodeRecord did not know.
func encodeRecord(rec Library) ([]byte, error) {
	data, err := json.MarshalIndent(rec, "", "  ")
	if err != nil || len(rec.unknown) == 0 {
		return data, err
	}
	var all map[string]json.RawMessage
	if err := json.Unmarshal(data, &all); err != nil {
		return nil, err
	}
	for k, v := range rec.unknown {
		if _, known := all[k]; !known {
			all[k] = v
		}
	}
	return json.MarshalIndent(all, "", "  ")
}

// passing reports whether a read failed for a reason of this process or this moment
// (descriptors or memory ran out, a signal) rather than of the record: calling it
// damaged would fail the library with advice to move a good record aside, and the
// rebuild that follows drops its old heads, deletion and truncation.
func passing(err error) bool {
	for _, e := range []error{unix.EMFILE, unix.ENFILE, unix.ENOMEM, unix.ENOBUFS, unix.EINTR, unix.EAGAIN} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// ErrDamaged matches (errors.Is) every *DamagedError.
var ErrDamaged = errors.New("damaged state record")

// DamagedError is a library record that cannot be parsed (a crash of the disk or the
// filesystem, a hand edit). It fails only its own library: nothing seafbak does
// overwrites it, so the admin sees what was there, and no guess about its head is made.
type DamagedError struct {
	RepoID string
	Path   string
	Err    error
	// Unreadable is a read error (permissions, an I/O error) rather than bad content.
	Unreadable bool
}

func (e *DamagedError) Error() string {
	// Moving the record aside is safe: a sync of a library that has no record but has
	// objects in the store re-checks every one of them before trusting it.
	fix := fmt.Sprintf("move it aside (mv %s %s.damaged) and run \"seafbak sync %s\" to rebuild it from the backup store", e.Path, e.Path, e.RepoID)
	if e.Unreadable {
		cause := e.Err
		var pe *fs.PathError
		if errors.As(cause, &pe) {
			cause = pe.Err // the path is named already
		}
		return fmt.Sprintf("state: library %s: record %s cannot be read (%v); fix its permissions, or if the disk damaged it, %s",
			e.RepoID, e.Path, cause, fix)
	}
	return fmt.Sprintf("state: library %s: record %s is damaged (%v); %s", e.RepoID, e.Path, e.Err, fix)
}

func (e *DamagedError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrDamaged) true.
func (e *DamagedError) Is(target error) bool { return target == ErrDamaged }

// Save replaces one library's record durably and atomically. The caller holds the
// library's lock, so no concurrent update is lost. The record is written to a temp file,
// made durable, renamed into place and its directory fsynced, as fsutil.WriteFileAtomic
// does; the two flushes are shared with the other records saved at the same time (a
// scan of many libraries), so they cost one syncfs and one directory fsync per round
// rather than two fsyncs per record. The rename comes only after the data is durable,
// so a crash leaves the old record or the new one, never an empty one.
func (d *Dir) Save(rec Library) error {
	p, err := d.recordPath(rec.ID)
	if err != nil {
		return err
	}
	if rec.format > recordFormat {
		return fmt.Errorf("state: library %s: its record %s is of format %d, written by a newer seafbak (this one writes format %d): run that version, or move the record aside to let this one rebuild it", rec.ID, p, rec.format, recordFormat)
	}
	data, err := encodeRecord(rec)
	if err != nil {
		return fmt.Errorf("state: %w", err)
	}
	if err := d.writeRecord(p, append(data, '\n'), 0o640); err != nil {
		return fmt.Errorf("state: save %s: %w", rec.ID, err)
	}
	return nil
}

func (d *Dir) writeRecord(path string, data []byte, perm os.FileMode) error {
	return fsutil.WriteFileAtomicFlushed(path, data, perm,
		func(tmp string) error {
			return d.recordData.Do(tmp, func(files []string) error { return d.flushFiles(files) })
		},
		func(dir string) error {
			return d.recordDir.Do(dir, func([]string) error { return fsutil.SyncDir(dir) })
		})
}

// syncfsAbove is how many records of one round make a syncfs(2) of the state's
// filesystem cheaper than fsyncing each.
const syncfsAbove = 4

// flushFiles makes files' data durable: one fsync each when they are few, else one
// syncfs of the filesystem holding the state.
func (d *Dir) flushFiles(files []string) error {
	if len(files) > syncfsAbove {
		return d.syncfs()
	}
	for _, f := range files {
		if err := fsutil.SyncFile(f); err != nil {
			return err
		}
	}
	return nil
}

// syncfs flushes the filesystem holding the state through the root held open. A state
// directory moved or replaced under a running process (an admin moving it to a new disk
// under a watch) is no longer the held one, whose filesystem may not be the one the
// records now go to: the root is opened again, and flushed through its new descriptor.
func (d *Dir) syncfs() error {
	d.rootMu.Lock()
	defer d.rootMu.Unlock()
	same, err := fsutil.SameDir(int(d.rootFile.Fd()), d.root)
	if err != nil {
		return fmt.Errorf("state %s: %w", d.root, err)
	}
	if !same {
		f, err := os.Open(d.root)
		if err != nil {
			return fmt.Errorf("state %s: %w", d.root, err)
		}
		d.rootFile.Close()
		d.rootFile = f
	}
	return fsutil.SyncfsFile(d.rootFile)
}

// staleTempAge is how old a record's temp file must be to be taken as a killed save's
// rather than one being written: a save takes milliseconds.
const staleTempAge = time.Hour

// staleTemp reports whether e is the temp file of a record's save (fsutil's
// .<id>.json.<random>) left for over staleTempAge.
func staleTemp(dir string, e fs.DirEntry) bool {
	name, ok := strings.CutPrefix(e.Name(), ".")
	if !ok || e.IsDir() {
		return false
	}
	id, rest, ok := strings.Cut(name, ".json.")
	if !ok || rest == "" || !object.ValidRepoID(id) {
		return false
	}
	fi, err := e.Info()
	return err == nil && time.Since(fi.ModTime()) > staleTempAge
}

// allReaders is how many records All reads at once: the CPUs of a small host, and a
// disk's queue when the records are not cached.
const allReaders = 4

// All reads every library's record, sorted by id. Damaged records come back apart, also
// sorted, so that one of them does not stop the backup of every other library; err is
// only for a state that cannot be read at all.
func (d *Dir) All() (recs []Library, damaged []*DamagedError, err error) {
	dir := filepath.Join(d.root, "libraries")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("state: %w", err)
	}
	ids := make([]string, 0, len(entries))
	for _, e := range entries {
		id, ok := strings.CutSuffix(e.Name(), ".json")
		if ok && object.ValidRepoID(id) {
			ids = append(ids, id)
		} else if staleTemp(dir, e) {
			// A save killed between its temp file and the rename (kill -9, the OOM
			// killer) left it: nothing else would ever remove it.
			os.Remove(filepath.Join(dir, e.Name()))
		} // else strays, records moved aside
	}
	// Records are read several at a time: each is a file to open and JSON to decode
	// (30 µs), and a server of 100 000 libraries has that many.
	recs = make([]Library, len(ids))
	found := make([]bool, len(ids))
	errs := make([]error, len(ids))
	const chunk = 64
	var next atomic.Int64
	var wg gosync.WaitGroup
	for range min(allReaders, len(ids)/chunk+1) {
		wg.Go(func() {
			for {
				from := int(next.Add(chunk)) - chunk
				if from >= len(ids) {
					return
				}
				for i := from; i < min(from+chunk, len(ids)); i++ {
					recs[i], found[i], errs[i] = d.Load(ids[i])
				}
			}
		})
	}
	wg.Wait()
	n := 0
	for i := range ids {
		var de *DamagedError
		switch {
		case errors.As(errs[i], &de):
			damaged = append(damaged, de)
		case errs[i] != nil:
			return nil, nil, errs[i] // a passing read error (see passing): the state, not the record
		case found[i]:
			recs[n] = recs[i]
			n++
		}
	}
	clear(recs[n:])
	recs = recs[:n]
	sort.Slice(recs, func(i, j int) bool { return recs[i].ID < recs[j].ID })
	sort.Slice(damaged, func(i, j int) bool { return damaged[i].RepoID < damaged[j].RepoID })
	return recs, damaged, nil
}

// Whole is All for callers that need every record or none (restoring a server, say):
// a damaged record is an error, naming every damaged file.
func Whole(recs []Library, damaged []*DamagedError, err error) ([]Library, error) {
	if err != nil {
		return nil, err
	}
	if len(damaged) > 0 {
		errs := make([]error, len(damaged))
		for i, de := range damaged {
			errs[i] = de
		}
		return nil, errors.Join(errs...)
	}
	return recs, nil
}
