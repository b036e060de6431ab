package restore

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	gosync "sync"
	"sync/atomic"
	"time"

	"seafbak/state"
	"seafbak/sync/object"
	"seafbak/sync/store"
)

// ErrEncrypted is returned for a library whose commit says it is encrypted: the backup
// keeps its blocks as the ciphertext Seafile stored and seafbak never decrypts.
var ErrEncrypted = errors.New("the library is encrypted: the backup holds its blocks as ciphertext and seafbak does not decrypt them; serve the backup's seafile-data with a Seafile server and download the files there with the library's password")

// ErrNotEmpty is returned when the target directory already has entries and
// LibraryOptions.Force is not set.
var ErrNotEmpty = errors.New("target directory is not empty (force writing into it, replacing what is in the way)")

// ErrNoCommit is returned when LibraryOptions.At is older than every commit in the
// library's backed-up history.
var ErrNoCommit = errors.New("no commit of the library at or before that time")

// LibraryOptions says what RestoreLibrary writes where.
type LibraryOptions struct {
	Store store.Store
	// State gives the library's backed-up head, old heads and store id. It may be nil
	// when Commit is given (StoreID then defaults to RepoID).
	State *state.Dir
	Log   *slog.Logger // nil: silent
	// RepoID is the library to restore.
	RepoID string
	// StoreID overrides where the library's fs objects and blocks are (the origin's id
	// for a virtual library); "" takes it from the state.
	StoreID string
	// Which commit: Commit (an id), or At (the newest commit of the history, from the
	// head and old heads, whose ctime is not after At), or neither: the backed-up head.
	Commit string
	At     time.Time
	// Dir is where the files go; it is created if absent. It must be empty unless Force.
	Dir string
	// Force writes into a non-empty Dir: restored files replace files and symlinks of
	// the same name, a file or symlink where a restored directory goes is removed; an
	// existing directory where a file goes is an error. Nothing else is deleted.
	Force bool
	// Parallel is how many files are written at once (0 means 4).
	Parallel int
	// Fsync makes every file and directory durable before RestoreLibrary returns (each
	// file is fsynced before it is renamed into place, so a power failure cannot leave
	// an empty file under a final name either). Without it, a killed restore is still
	// safe (see RestoreLibrary); only a machine crash is not covered.
	Fsync    bool
	Progress Progress
}

// LibraryResult says what RestoreLibrary wrote.
type LibraryResult struct {
	RepoID      string    `json:"repo_id"`
	StoreID     string    `json:"store_id"`
	Commit      string    `json:"commit"`
	Time        time.Time `json:"time"` // the commit's ctime
	Description string    `json:"description,omitempty"`
	Dir         string    `json:"dir"`
	Dirs        int       `json:"dirs"`
	Files       int       `json:"files"`
	Bytes       int64     `json:"bytes"`
}

// TempPrefix starts the name of every file RestoreLibrary is writing. A file is written
// under a temp name (TempPrefix + random + ".tmp") in its final directory and renamed to
// its real name only once all its blocks are written and verified and its mtime is set;
// so after a restore that was killed or failed, every file under a real name is whole,
// and leftovers are recognisable by this prefix (a failed restore removes its own).
const TempPrefix = ".seafbak-restore-"

// RestoreLibrary writes a library's files as they were at one commit into opts.Dir:
// every directory (empty ones too) and every file, with the dirent's mtime. Files are
// streamed block by block through a fixed buffer, every block checked against its id
// and every file against its size, Parallel files at a time.
//
// The tree is read whole (dir objects only) before anything is written, so a damaged
// or forged tree (bad names: "/", "..", NUL; an fs object that does not hash to its id)
// fails the restore with nothing written. Paths are resolved with os.Root: no name,
// symlink or race makes a write land outside Dir.
func RestoreLibrary(ctx context.Context, opts LibraryOptions) (*LibraryResult, error) {
	if opts.Store == nil {
		return nil, errors.New("restore: no store")
	}
	if err := object.CheckRepoID(opts.RepoID); err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	if opts.Dir == "" {
		return nil, errors.New("restore: no target directory")
	}
	if opts.Commit != "" && !opts.At.IsZero() {
		return nil, errors.New("restore: give a commit or a time, not both")
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	fail := func(err error) (*LibraryResult, error) {
		return nil, fmt.Errorf("restore %s: %w", opts.RepoID, err)
	}

	var rec state.Library
	found := false
	if opts.State != nil {
		var err error
		if rec, found, err = opts.State.Load(opts.RepoID); err != nil {
			return fail(err)
		}
	}
	if !found && opts.Commit == "" {
		return fail(errors.New("never backed up (not in seafbak's state); give a commit id and the store id to restore from the store alone"))
	}
	lib := Library{RepoID: opts.RepoID, StoreID: opts.StoreID}
	if lib.StoreID == "" {
		lib.StoreID = LibraryOf(rec).StoreID
		if !found {
			lib.StoreID = opts.RepoID
		}
	}
	if err := checkLibrary(lib); err != nil {
		return fail(err)
	}

	commitID := opts.Commit
	switch {
	case commitID != "":
	case !opts.At.IsZero():
		hist, err := History(ctx, opts.Store, lib, StateHeads(rec))
		if err != nil {
			return fail(err)
		}
		for _, e := range hist {
			if e.Error == "" && !e.Time.After(opts.At) {
				commitID = e.ID
				break
			}
		}
		if commitID == "" {
			return fail(fmt.Errorf("%w (%s)", ErrNoCommit, opts.At.UTC().Format(time.RFC3339)))
		}
	default:
		if commitID = rec.Head; commitID == "" {
			return fail(errors.New("no head backed up yet"))
		}
	}
	c, err := readCommit(ctx, opts.Store, lib, commitID)
	if err != nil {
		return fail(fmt.Errorf("commit %s: %w", commitID, err))
	}
	if c.Encrypted {
		return fail(fmt.Errorf("commit %s: %w", commitID, ErrEncrypted))
	}
	res := &LibraryResult{
		RepoID: lib.RepoID, StoreID: lib.StoreID, Commit: c.ID, Time: time.Unix(c.Ctime, 0).UTC(),
		Description: c.Description, Dir: opts.Dir,
	}

	p, err := planTree(ctx, opts.Store, lib, c.RootID)
	if err != nil {
		if errors.Is(err, store.ErrNotExist) {
			err = fmt.Errorf("the tree of commit %s is not whole in the backup (history truncated by the primary's GC, or a hole): %w", c.ID, err)
		}
		return fail(err)
	}
	root, err := openTarget(opts.Dir, opts.Force)
	if err != nil {
		return fail(err)
	}
	defer root.Close()
	w := &writer{
		ctx: ctx, s: opts.Store, lib: lib, root: root, force: opts.Force, fsync: opts.Fsync,
		prog: &progress{p: opts.Progress},
	}
	w.prog.todo(int64(len(p.dirs)+len(p.files)), p.bytes)
	log.Info("restoring", "repo", lib.RepoID, "commit", c.ID, "dirs", len(p.dirs), "files", len(p.files), "bytes", p.bytes, "dir", opts.Dir)
	for _, d := range p.dirs {
		if err := w.mkdir(d.path); err != nil {
			return fail(err)
		}
		w.prog.done(1, 0)
	}
	if err := w.writeFiles(p.files, max(opts.Parallel, 0)); err != nil {
		return fail(err)
	}
	// Writing a directory's entries moved its mtime: set them last, deepest first.
	for i := len(p.dirs) - 1; i >= 0; i-- {
		d := p.dirs[i]
		t := time.Unix(d.mtime, 0)
		if err := root.Chtimes(d.path, t, t); err != nil {
			return fail(fmt.Errorf("%s: %w", d.path, err))
		}
	}
	if opts.Fsync {
		for _, d := range append([]planEntry{{path: "."}}, p.dirs...) {
			if err := syncIn(root, d.path); err != nil {
				return fail(err)
			}
		}
	}
	res.Dirs, res.Files, res.Bytes = len(p.dirs), len(p.files), w.bytes.Load()
	return res, nil
}

// planEntry is a dir or file of the tree to restore.
type planEntry struct {
	path  string // slash-separated, relative to the library root
	id    string
	size  int64
	mtime int64
}

type plan struct {
	dirs  []planEntry // parents before children
	files []planEntry
	bytes int64
}

// planTree reads every dir object of the tree (verified, names checked by ParseFS).
func planTree(ctx context.Context, s store.Store, lib Library, rootID string) (*plan, error) {
	p := &plan{}
	var walk func(id, dir string) error
	walk = func(id, dir string) error {
		if id == object.EmptyID {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		f, err := readFS(ctx, s, lib, id, dir)
		if err != nil {
			return err
		}
		if !f.IsDir() {
			return fmt.Errorf("%s/: %w: fs object %s is a file, not a dir", dir, object.ErrInvalid, id)
		}
		for _, d := range f.Dirents {
			if err := object.CheckName(d.Name); err != nil { // ParseFS checked; defence in depth
				return fmt.Errorf("%s/: %w: %v", dir, object.ErrInvalid, err)
			}
			e := planEntry{path: path.Join(dir, d.Name), id: d.ID, size: d.Size, mtime: d.Mtime}
			if d.IsDir() {
				p.dirs = append(p.dirs, e)
				if err := walk(d.ID, e.path); err != nil {
					return err
				}
				continue
			}
			p.files = append(p.files, e)
			p.bytes += d.Size
		}
		return nil
	}
	if err := walk(rootID, ""); err != nil {
		return nil, err
	}
	return p, nil
}

// openTarget creates dir if need be, checks it is empty unless force, and opens it as
// the root every write is confined to.
func openTarget(dir string, force bool) (*os.Root, error) {
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, err
	case !fi.IsDir():
		return nil, fmt.Errorf("%s is not a directory", dir)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	if !force {
		d, err := root.Open(".")
		if err != nil {
			root.Close()
			return nil, err
		}
		names, err := d.Readdirnames(1)
		d.Close()
		if err != nil && err != io.EOF {
			root.Close()
			return nil, err
		}
		if len(names) > 0 {
			root.Close()
			return nil, fmt.Errorf("%s: %w", dir, ErrNotEmpty)
		}
	}
	return root, nil
}

// writer writes a planned tree under root.
type writer struct {
	ctx   context.Context
	s     store.Store
	lib   Library
	root  *os.Root
	force bool
	fsync bool
	prog  *progress
	bytes atomic.Int64
}

// mkdir makes a directory; its parent exists and is a real directory. Under force, a
// file or symlink in its place is removed first (never followed).
func (w *writer) mkdir(p string) error {
	err := w.root.Mkdir(p, 0o755)
	if err == nil || !errors.Is(err, fs.ErrExist) {
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		return nil
	}
	fi, lerr := w.root.Lstat(p)
	if lerr != nil {
		return fmt.Errorf("%s: %w", p, lerr)
	}
	if fi.IsDir() {
		return nil
	}
	if !w.force {
		return fmt.Errorf("%s: %w", p, err)
	}
	if err := w.root.Remove(p); err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	if err := w.root.Mkdir(p, 0o755); err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	return nil
}

func (w *writer) writeFiles(files []planEntry, parallel int) error {
	if parallel == 0 {
		parallel = 4
	}
	ctx, cancel := context.WithCancel(w.ctx)
	defer cancel()
	jobs := make(chan planEntry)
	var mu gosync.Mutex
	var firstErr error
	var wg gosync.WaitGroup
	for range min(parallel, max(len(files), 1)) {
		wg.Go(func() {
			buf := make([]byte, 256<<10)
			for e := range jobs {
				if err := w.writeFile(ctx, e, buf); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					cancel()
				}
			}
		})
	}
feed:
	for _, e := range files {
		select {
		case jobs <- e:
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	return w.ctx.Err()
}

// writeFile writes one file under a temp name, verifying every block, and renames it
// into place once whole.
func (w *writer) writeFile(ctx context.Context, e planEntry, buf []byte) (err error) {
	if err := ctx.Err(); err != nil {
		return err
	}
	var rnd [8]byte
	crand.Read(rnd[:])
	tmp := path.Join(path.Dir(e.path), TempPrefix+hex.EncodeToString(rnd[:])+".tmp")
	f, err := w.root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("%s: %w", e.path, err)
	}
	defer func() {
		if f != nil {
			f.Close()
		}
		if err != nil {
			w.root.Remove(tmp)
			err = fmt.Errorf("%s: %w", e.path, err)
		}
	}()
	if e.id != object.EmptyID {
		if err := w.copyBlocks(ctx, e, f, buf); err != nil {
			return err
		}
	}
	if w.fsync {
		if err := f.Sync(); err != nil {
			return err
		}
	}
	err = f.Close()
	f = nil
	if err != nil {
		return err
	}
	t := time.Unix(e.mtime, 0)
	if err := w.root.Chtimes(tmp, t, t); err != nil {
		return err
	}
	if err := w.root.Rename(tmp, e.path); err != nil {
		if fi, lerr := w.root.Lstat(e.path); lerr == nil && fi.IsDir() {
			return fmt.Errorf("a directory is in the way of this file: %w", err)
		}
		return err
	}
	w.prog.done(1, 0)
	return nil
}

// copyBlocks streams a file's blocks into f through buf, checking each block's SHA-1
// and the total size.
func (w *writer) copyBlocks(ctx context.Context, e planEntry, f *os.File, buf []byte) error {
	fo, err := readFS(ctx, w.s, w.lib, e.id, e.path)
	if err != nil {
		return err
	}
	if fo.IsDir() {
		return fmt.Errorf("%w: fs object %s is a dir, not a file", object.ErrInvalid, e.id)
	}
	var total int64
	for _, b := range fo.BlockIDs {
		if err := ctx.Err(); err != nil {
			return err
		}
		rc, err := w.s.Open(ctx, object.KindBlock, w.lib.StoreID, b)
		if err != nil {
			return err
		}
		h := object.NewBlockHasher(b)
		for {
			n, rerr := rc.Read(buf)
			if n > 0 {
				h.Write(buf[:n])
				if _, err := f.Write(buf[:n]); err != nil {
					rc.Close()
					return err
				}
				w.prog.done(0, int64(n))
			}
			if rerr == io.EOF {
				break
			}
			if rerr != nil {
				rc.Close()
				return rerr
			}
		}
		rc.Close()
		if err := h.Check(); err != nil {
			return err
		}
		total += h.Size()
	}
	if total != fo.Size {
		return fmt.Errorf("%w: file %s: blocks hold %d bytes, file says %d", object.ErrInvalid, e.id, total, fo.Size)
	}
	w.bytes.Add(total)
	return nil
}

func syncIn(root *os.Root, p string) error {
	d, err := root.Open(p)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("%s: fsync: %w", p, err)
	}
	return nil
}
