package restore

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"slices"
	"strings"
	gosync "sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/sys/unix"

	"seafbak/internal/fsutil"
	"seafbak/state"
	"seafbak/sync/object"
	"seafbak/sync/store"
)

// ErrEncrypted is returned for a library whose commit says it is encrypted: the backup
// keeps its blocks as the ciphertext Seafile stored and seafbak never decrypts.
var ErrEncrypted = errors.New("the library is encrypted: the backup holds its blocks as ciphertext and seafbak does not decrypt them; serve the backup's seafile-data with a Seafile server and download the files there with the library's password")

// ErrNotEmpty is returned when the target directory already has entries and
// LibraryOptions.Force is not set.
// ErrNameCollision: two names of one folder of the library are one name to the target
// filesystem (it ignores case, or Unicode form: exFAT, NTFS, SMB shares, macOS), so one
// would overwrite the other, or two folders merge.
var ErrNameCollision = errors.New("the target filesystem takes two names of this folder as one (they differ only in case or Unicode form), so one would overwrite the other; restore to a filesystem that tells them apart (ext4, XFS, Btrfs), or each of them with --path into a directory of its own")

var ErrNotEmpty = errors.New("target directory is not empty (force writing into it, replacing what is in the way)")

// ErrTargetUnusable: the target directory cannot be made or written (permissions, a
// read-only filesystem): refused before anything is restored.
var ErrTargetUnusable = errors.New("the target directory cannot be written")

// ErrNotADirectory: the target names a file; refused as a non-empty directory is.
var ErrNotADirectory = errors.New("the target is not a directory (give a new or empty directory)")

// ErrTargetBusy: another restore is writing into the target directory right now (a
// rerun after an ssh drop while the first goes on under nohup). Taken for a killed one
// to resume, it would sweep the first's temp files and remove its marker mid-write.
var ErrTargetBusy = errors.New("another seafbak restore is writing into this directory; wait for it to finish (or stop it), then run this one again")

// ErrNoCommit is returned when LibraryOptions.At is older than every commit in the
// library's backed-up history.
var ErrNoCommit = errors.New("no commit of the library at or before that time")

// ErrBadPath is returned for a LibraryOptions.Path that is not a path from the
// library's top: relative, with empty, "." or ".." components, a NUL, or not UTF-8.
var ErrBadPath = errors.New("bad path")

// ErrPathNotFound is returned when LibraryOptions.Path is not in the commit restored:
// a component is missing, or one before the last is a file.
var ErrPathNotFound = errors.New("no such file or folder")

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
	// Path restores one folder or file of the library instead of all of it: a Seafile
	// path from the library's top ("/Projects/2026", "/Reports/Q3 plan.xlsx"; see
	// SplitPath). A folder's contents go into Dir (not Dir/<folder name>, and Dir keeps
	// its own mtime, as for the whole library), a file goes to Dir/<its name>. "" or "/"
	// is the whole library. A trailing "/" asks for a folder.
	Path string
	// Dir is where the files go; it is created if absent. It must be empty unless Force,
	// or hold nothing but an unfinished restore of the same library and commit (see
	// MarkerName; the same Path too), which is then finished.
	Dir string
	// Force writes into a non-empty Dir: restored files replace files and symlinks of
	// the same name, a file or symlink where a restored directory goes is removed; an
	// existing directory where a file goes is an error. Nothing else is deleted but
	// temp files an earlier restore left (see TempPrefix) in the directories restored.
	Force bool
	// Parallel is how many files are written at once (0 means 4).
	Parallel int
	// Fsync fsyncs each file before it is renamed into place, and each directory, so
	// that even a restore a machine crash interrupts leaves no empty file under a final
	// name. Without it the restore is as safe, at the cost of one syncfs rather than a
	// flush per file: the marker (see MarkerName) is removed only after a syncfs of
	// Dir's filesystem, so a crash before that leaves it, and the rerun writes every
	// file again.
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
	// Path is the folder or file restored ("/a/b", no trailing slash); "" for the
	// whole library.
	Path  string `json:"path,omitempty"`
	Dir   string `json:"dir"`
	Dirs  int    `json:"dirs"`
	Files int    `json:"files"`
	Bytes int64  `json:"bytes"`
	// Resumed: Dir held an unfinished restore of this library, commit and path (see
	// MarkerName), and this one finished it.
	Resumed bool `json:"resumed,omitempty"`
}

// TempPrefix starts the name of every file RestoreLibrary is writing. A file is written
// under a temp name (TempPrefix + 16 hex digits + ".tmp") in its final directory and
// renamed to its real name only once all its blocks are written and verified and its
// mtime is set; so after a restore that was killed or failed, every file under a real
// name is whole, and leftovers are recognisable by their name (a failed restore removes
// its own; a rerun removes those of a killed one, and nothing else).
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
//
// With opts.Path, only that folder's tree (its contents go into Dir) or that one file
// (to Dir/<name>) is read and written; the path is walked from the commit's root, one
// verified dir object per component.
//
// While it writes, Dir holds MarkerName. A restore that was killed (or failed) can be
// run again into the same Dir: it removes the temp files the first one left and writes
// every file again, over the whole ones already there.
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
	comps, err := SplitPath(opts.Path)
	if err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	path := JoinPath(comps)
	wantDir := len(comps) > 0 && strings.HasSuffix(opts.Path, "/")
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
		if commitID, err = pickAt(hist, rec, opts.At); err != nil {
			return fail(err)
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
		// The store's error names the commit already.
		return fail(err)
	}
	if c.Encrypted {
		return fail(fmt.Errorf("commit %s: %w", commitID, ErrEncrypted))
	}
	res := &LibraryResult{
		RepoID: lib.RepoID, StoreID: lib.StoreID, Commit: c.ID, Time: time.Unix(c.Ctime, 0).UTC(),
		Description: c.Description, Path: path, Dir: opts.Dir,
	}

	p, err := planPath(ctx, opts.Store, lib, c, comps, wantDir)
	if err != nil {
		if errors.Is(err, store.ErrNotExist) {
			rootThere := c.RootID == object.EmptyID
			if !rootThere {
				rootThere, _ = opts.Store.Has(ctx, object.KindFS, lib.For(object.KindFS), c.RootID)
			}
			if !rootThere {
				// As --list shows it: the commit's tree never came whole.
				err = fmt.Errorf("the tree of commit %s is not in the backup (history truncated by the primary's GC, or a hole; --list shows which commits are whole): %w", c.ID, err)
			} else {
				err = damaged(lib.RepoID, err, false)
			}
		} else if errors.Is(err, object.ErrInvalid) {
			err = damaged(lib.RepoID, err, false)
		}
		return fail(err)
	}
	root, resumed, unlock, err := openTarget(opts.Dir, opts.Force, unfinished{RepoID: lib.RepoID, Commit: c.ID, Path: path})
	if err != nil {
		return fail(err)
	}
	defer root.Close()
	defer unlock()
	if err := checkFolding(root, p); err != nil {
		return fail(err)
	}
	// A library holding an entry of the marker's own name at its root gets no marker:
	// writing it would clobber the marker, and removing the marker would delete it.
	marked := !p.rootHas(MarkerName)
	if marked && resumed && !opts.Force {
		if m, err := readMarker(root); err == nil && m.Collision != "" {
			return fail(fmt.Errorf("the run that left this restore unfinished stopped at: %s; writing over it now would let one name replace the other (add --force to accept that)", m.Collision))
		}
	}
	mark := unfinished{RepoID: lib.RepoID, Commit: c.ID, Path: path, Started: time.Now().UTC()}
	if marked {
		if err := writeMarker(root, mark); err != nil {
			return fail(fmt.Errorf("%s: %w", MarkerName, err))
		}
	}
	w := &writer{
		s: opts.Store, lib: lib, plan: p, force: opts.Force || resumed, sweep: opts.Force || resumed, fsync: opts.Fsync,
		prog: &progress{p: opts.Progress},
	}
	// Flushed before success is reported, marker or not (see below).
	if w.flush, err = newFlusher(root); err != nil {
		return fail(err)
	}
	defer w.flush.close()
	w.prog.todo(int64(len(p.dirs)-1+p.files), p.bytes)
	log.Info("restoring", "repo", lib.RepoID, "commit", c.ID, "path", displayPath(path), "dirs", len(p.dirs)-1, "files", p.files, "bytes", p.bytes, "dir", opts.Dir, "resumed", resumed)
	if err := w.writeTree(ctx, root, max(opts.Parallel, 0)); err != nil {
		if marked && errors.Is(err, ErrNameCollision) {
			mark.Collision = err.Error()
			if merr := writeMarker(root, mark); merr != nil {
				err = errors.Join(err, fmt.Errorf("%s: %w", MarkerName, merr))
			}
		}
		if errors.Is(err, store.ErrNotExist) || errors.Is(err, object.ErrInvalid) {
			err = damaged(lib.RepoID, err, true)
		}
		return fail(err)
	}
	// The marker goes only once every file is on disk: were its removal written first,
	// a machine crash could leave empty files under their final names and nothing to say
	// the restore is unfinished. One syncfs, not a flush per file.
	if err := w.flush.finish(); err != nil {
		return fail(fmt.Errorf("every file is written, but flushing them to disk failed (%w); the restore stays unfinished: run it again", err))
	}
	if marked {
		if err := root.Remove(MarkerName); err != nil {
			return fail(fmt.Errorf("every file is restored, but removing %s failed: %w", MarkerName, err))
		}
		if err := fsutil.SyncDirIn(root, "."); err != nil {
			return fail(fmt.Errorf("every file is restored, but flushing the removal of %s failed: %w", MarkerName, err))
		}
	}
	res.Dirs, res.Files, res.Bytes, res.Resumed = len(p.dirs)-1, p.files, w.bytes.Load(), resumed
	return res, nil
}

// The plan is a tree of directories, each with its files, rather than a list of paths:
// building every entry's full path costs the sum of all depths, quadratic in a deep
// tree; paths are built only for error messages.
type plan struct {
	// base is where dirs[0] is in the library (slash-separated, no leading slash; "" for
	// the library's root); it only prefixes the paths of error messages.
	base  string
	dirs  []planDir // dirs[0] is what goes into the target dir; parents before children
	files int
	bytes int64
}

type planDir struct {
	name    string // "" for the root
	parent  int    // index in plan.dirs; -1 for the root
	mtime   int64
	subdirs []int // indexes in plan.dirs
	files   []planFile
}

type planFile struct {
	name  string
	id    string
	size  int64
	mtime int64
	exec  bool // the owner's execute bit in the dirent's mode, which Seafile's client checks out
}

// checkFolding refuses, before anything is written, a plan with two names in one folder
// that differ only in case when the target directory ignores case (a probe file tells):
// a library made on Linux can hold "Report.txt" beside "report.txt", and restored to an
// exFAT disk or an SMB share one silently replaced the other. Names the filesystem
// folds otherwise (Unicode forms) are caught as they are written, in a fresh restore
// (see writer.mkdir and writeFile).
func checkFolding(root *os.Root, p *plan) error {
	insensitive, err := caseProbe(root)
	if err != nil || !insensitive {
		return err
	}
	for d := range p.dirs {
		seen := map[string]string{}
		see := func(name string) error {
			k := foldCase(name)
			if other, ok := seen[k]; ok {
				return fmt.Errorf("%s and %s: %w", p.filePath(d, other), p.filePath(d, name), ErrNameCollision)
			}
			seen[k] = name
			return nil
		}
		for _, s := range p.dirs[d].subdirs {
			if err := see(p.dirs[s].name); err != nil {
				return err
			}
		}
		for _, f := range p.dirs[d].files {
			if err := see(f.name); err != nil {
				return err
			}
		}
	}
	return nil
}

var caseProbe = ignoresCase // tests stand in for a case-insensitive filesystem

// ignoresCase reports whether the directory root ignores the case of names: a probe
// file made under a lower-case name is looked up under its upper-case one.
func ignoresCase(root *os.Root) (bool, error) {
	name := tempName()
	lower, upper := strings.ToLower(name), strings.ToUpper(name)
	f, err := root.OpenFile(lower, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return false, fmt.Errorf("%w: %s: make a file in it: %w", ErrTargetUnusable, root.Name(), err)
	}
	f.Close()
	defer root.Remove(lower)
	_, err = root.Lstat(upper)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	}
	return false, fmt.Errorf("probe the target directory: %w", err)
}

// foldCase maps name to one key for all its case variants: each rune to the smallest of
// its simple case folding orbit (unicode.SimpleFold), as case-insensitive filesystems
// compare names.
func foldCase(name string) string {
	var b strings.Builder
	b.Grow(len(name))
	for _, r := range name {
		least := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			least = min(least, f)
		}
		b.WriteRune(least)
	}
	return b.String()
}

// path is dir d's slash-separated path relative to the library root ("" for the root).
func (p *plan) path(d int) string {
	var names []string
	for ; d > 0; d = p.dirs[d].parent {
		names = append(names, p.dirs[d].name)
	}
	if p.base != "" {
		names = append(names, p.base)
	}
	slices.Reverse(names)
	return strings.Join(names, "/")
}

func (p *plan) filePath(d int, name string) string {
	if dp := p.path(d); dp != "" {
		return dp + "/" + name
	}
	return name
}

func (p *plan) rootHas(name string) bool {
	for _, s := range p.dirs[0].subdirs {
		if p.dirs[s].name == name {
			return true
		}
	}
	for _, f := range p.dirs[0].files {
		if f.name == name {
			return true
		}
	}
	return false
}

// SplitPath checks a LibraryOptions.Path and returns its components: nil for the whole
// library ("" or "/"). A path starts with "/" and may end with one; its components are
// Seafile names (UTF-8, any character but '/' and NUL, spaces and non-ASCII included),
// never empty, "." or "..". Errors wrap ErrBadPath.
func SplitPath(p string) ([]string, error) {
	if p == "" || p == "/" {
		return nil, nil
	}
	bad := func(why string) error {
		return fmt.Errorf("%w %q: %s", ErrBadPath, p, why)
	}
	if !utf8.ValidString(p) {
		return nil, bad("not UTF-8")
	}
	rest, ok := strings.CutPrefix(p, "/")
	if !ok {
		return nil, bad("give the path from the library's top, starting with / (like /Projects/2026)")
	}
	rest = strings.TrimSuffix(rest, "/")
	comps := strings.Split(rest, "/")
	for _, c := range comps {
		switch c {
		case "":
			return nil, bad("empty component (//)")
		case ".", "..":
			return nil, bad(`"." and ".." are not allowed`)
		}
		if err := object.CheckName(c); err != nil {
			return nil, bad(err.Error())
		}
	}
	return comps, nil
}

// JoinPath is the path of SplitPath's components: "/a/b", or "" for the whole library.
func JoinPath(comps []string) string {
	if len(comps) == 0 {
		return ""
	}
	return "/" + strings.Join(comps, "/")
}

// planPath walks from commit c's root down the components of a path (each dir object
// read verified) and plans the folder's tree, or the one file, it ends at. wantDir: the
// path must be a folder.
func planPath(ctx context.Context, s store.Store, lib Library, c *object.Commit, comps []string, wantDir bool) (*plan, error) {
	if len(comps) == 0 {
		return planTree(ctx, s, lib, c.RootID, "")
	}
	full := JoinPath(comps)
	where := fmt.Sprintf("commit %s (%s)", c.ID, time.Unix(c.Ctime, 0).UTC().Format(time.RFC3339))
	id := c.RootID
	for i, name := range comps {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		parent := strings.Join(comps[:i], "/")
		var ents []object.Dirent
		if id != object.EmptyID {
			f, err := readFS(ctx, s, lib, id, parent)
			if err != nil {
				return nil, err
			}
			if !f.IsDir() {
				return nil, fmt.Errorf("%s/: %w: fs object %s is a file, not a dir", parent, object.ErrInvalid, id)
			}
			ents = f.Dirents
		}
		k := slices.IndexFunc(ents, func(de object.Dirent) bool { return de.Name == name })
		if k < 0 {
			near := ""
			if j := slices.IndexFunc(ents, func(de object.Dirent) bool { return strings.EqualFold(de.Name, name) }); j >= 0 {
				near = fmt.Sprintf(" (names are case-sensitive: there is %q)", ents[j].Name)
			}
			return nil, fmt.Errorf("%s: %w in %s: %s has no entry %q%s", full, ErrPathNotFound, where, displayPath("/"+parent), name, near)
		}
		de := ents[k]
		if err := object.CheckName(de.Name); err != nil { // ParseFS checked; defence in depth
			return nil, fmt.Errorf("%s/: %w: %v", parent, object.ErrInvalid, err)
		}
		last := i == len(comps)-1
		if de.IsDir() {
			if last {
				return planTree(ctx, s, lib, de.ID, strings.Join(comps, "/"))
			}
			id = de.ID
			continue
		}
		if !last || wantDir {
			return nil, fmt.Errorf("%s: %w in %s: %s is a file, not a folder", full, ErrPathNotFound, where, JoinPath(comps[:i+1]))
		}
		p := &plan{base: parent, dirs: []planDir{{parent: -1}}, files: 1, bytes: de.Size}
		p.dirs[0].files = []planFile{{name: de.Name, id: de.ID, size: de.Size, mtime: de.Mtime, exec: de.Mode&0o100 != 0}}
		return p, nil
	}
	panic("unreachable")
}

// planTree reads every dir object of the tree (verified, names checked by ParseFS).
// base is where the tree is in the library, for error messages.
func planTree(ctx context.Context, s store.Store, lib Library, rootID, base string) (*plan, error) {
	p := &plan{base: base, dirs: []planDir{{parent: -1}}}
	var walk func(d int, id string) error
	walk = func(d int, id string) error {
		if id == object.EmptyID {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		raw, err := s.Get(ctx, object.KindFS, lib.For(object.KindFS), id)
		if err != nil {
			return fmt.Errorf("%s: %w", displayPath(p.path(d)), err)
		}
		f, err := object.ParseFS(id, raw)
		if err != nil {
			return fmt.Errorf("%s: %w", displayPath(p.path(d)), err)
		}
		if !f.IsDir() {
			return fmt.Errorf("%s/: %w: fs object %s is a file, not a dir", p.path(d), object.ErrInvalid, id)
		}
		for _, de := range f.Dirents {
			if err := object.CheckName(de.Name); err != nil { // ParseFS checked; defence in depth
				return fmt.Errorf("%s/: %w: %v", p.path(d), object.ErrInvalid, err)
			}
			if de.IsDir() {
				sub := len(p.dirs)
				p.dirs = append(p.dirs, planDir{name: de.Name, parent: d, mtime: de.Mtime})
				p.dirs[d].subdirs = append(p.dirs[d].subdirs, sub)
				if err := walk(sub, de.ID); err != nil {
					return err
				}
				continue
			}
			p.dirs[d].files = append(p.dirs[d].files, planFile{name: de.Name, id: de.ID, size: de.Size, mtime: de.Mtime, exec: de.Mode&0o100 != 0})
			p.files++
			p.bytes += de.Size
		}
		return nil
	}
	if err := walk(0, rootID); err != nil {
		return nil, err
	}
	return p, nil
}

// MarkerName is the file RestoreLibrary keeps at the top of the target directory while
// it writes (JSON: library, commit, path, start time) and removes when every file is in
// place. A restore that was killed or failed leaves it, and a rerun of the same library,
// commit and path into the same directory finishes that restore instead of refusing a
// non-empty directory (a restore of another path, or of the whole library, is another
// restore).
const MarkerName = ".seafbak-unfinished-restore.json"

type unfinished struct {
	RepoID  string    `json:"repo_id"`
	Commit  string    `json:"commit"`
	Path    string    `json:"path,omitempty"` // JoinPath's form; "" for the whole library
	Started time.Time `json:"started"`
	// Collision is the ErrNameCollision this restore stopped at: a rerun, which
	// writes over what is there, would let one of the two names replace the other.
	Collision string `json:"collision,omitempty"`
}

// writeMarker puts the marker in place under a temp name and a rename, so a kill never
// leaves a half-written one, and flushes it and its name before any file is written: a
// power cut must not leave the restored files without it, nor it empty beside them.
func writeMarker(root *os.Root, m unfinished) error {
	data, err := json.Marshal(m)
	if err != nil {
		return err
	}
	tmp := tempName()
	f, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(append(data, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = root.Rename(tmp, MarkerName)
	}
	if err != nil {
		root.Remove(tmp)
		return err
	}
	return fsutil.SyncDirIn(root, ".")
}

func readMarker(root *os.Root) (unfinished, error) {
	var m unfinished
	fi, err := root.Lstat(MarkerName)
	if err != nil {
		return m, err
	}
	if !fi.Mode().IsRegular() || fi.Size() > 4096 {
		return m, fmt.Errorf("%s is not a file seafbak wrote", MarkerName)
	}
	data, err := root.ReadFile(MarkerName)
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return m, fmt.Errorf("%s: %w", MarkerName, err)
	}
	return m, nil
}

// tempName is a fresh name matching isTempName.
func tempName() string {
	var rnd [8]byte
	crand.Read(rnd[:])
	return TempPrefix + hex.EncodeToString(rnd[:]) + ".tmp"
}

// isTempName reports whether name is one tempName makes: only these are ever swept.
func isTempName(name string) bool {
	mid, ok := strings.CutPrefix(name, TempPrefix)
	if !ok {
		return false
	}
	mid, ok = strings.CutSuffix(mid, ".tmp")
	if !ok || len(mid) != 16 {
		return false
	}
	_, err := hex.DecodeString(mid)
	return err == nil && strings.ToLower(mid) == mid
}

// openTarget creates dir if need be and opens it as the root every write is confined
// to. Without force, dir must be empty, or hold nothing but temp files of a killed
// restore (removed here), or hold the marker of an unfinished restore of this very
// library, commit and path (want's): then resumed is true, and the restore writes over
// what that one left (sweeping its temp files dir by dir).
//
// It holds an flock on dir until unlock, so two restores never write into one
// directory at once (ErrTargetBusy).
func openTarget(dir string, force bool, want unfinished) (_ *os.Root, resumed bool, unlock func(), err error) {
	r, resumed, d, err := openTargetLocked(dir, force, want)
	if err != nil {
		return nil, false, nil, err
	}
	return r, resumed, func() { fsutil.Unflock(int(d.Fd())); d.Close() }, nil
}

func openTargetLocked(dir string, force bool, want unfinished) (_ *os.Root, resumed bool, lock *os.File, err error) {
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(dir, 0o755); errors.Is(err, unix.ENOTDIR) {
			return nil, false, nil, fmt.Errorf("%s: a name above it is a file: %w", dir, ErrNotADirectory)
		} else if err != nil {
			return nil, false, nil, fmt.Errorf("%w: %w", ErrTargetUnusable, err)
		}
	case errors.Is(err, unix.ENOTDIR):
		return nil, false, nil, fmt.Errorf("%s: a name above it is a file: %w", dir, ErrNotADirectory)
	case err != nil:
		return nil, false, nil, fmt.Errorf("%w: %w", ErrTargetUnusable, err)
	case !fi.IsDir():
		return nil, false, nil, fmt.Errorf("%s: %w", dir, ErrNotADirectory)
	}
	r, err := os.OpenRoot(dir)
	if err != nil {
		return nil, false, nil, err
	}
	d, err := r.Open(".")
	if err != nil {
		r.Close()
		return nil, false, nil, err
	}
	defer func() {
		if err != nil {
			d.Close()
			r.Close()
		}
	}()
	switch err := fsutil.TryFlock(int(d.Fd())); {
	case errors.Is(err, unix.EWOULDBLOCK):
		return nil, false, nil, fmt.Errorf("%s: %w", dir, ErrTargetBusy)
	case err != nil && !fsutil.FlockUnsupported(err):
		return nil, false, nil, fmt.Errorf("%s: lock: %w", dir, err)
	}
	ents, err := d.ReadDir(-1)
	if err != nil {
		return nil, false, nil, err
	}
	var temps []string
	marker, others := false, 0
	for _, e := range ents {
		switch {
		case e.Name() == MarkerName:
			marker = true
		case isTempName(e.Name()) && e.Type().IsRegular():
			temps = append(temps, e.Name())
		default:
			others++
		}
	}
	if marker {
		m, merr := readMarker(r)
		switch {
		case merr == nil && m.RepoID == want.RepoID && m.Commit == want.Commit && m.Path == want.Path:
			return r, true, d, nil
		case force:
		case merr != nil:
			return nil, false, nil, fmt.Errorf("%s: %w: it holds %s, which seafbak cannot read (%v); remove it, or add --force to write into the directory", dir, ErrNotEmpty, MarkerName, merr)
		default:
			what, again := "", "--commit "+m.Commit
			switch {
			case m.Path == "" && want.Path != "":
				what = " (the whole library)"
			case m.Path != "":
				what = fmt.Sprintf(", path %q", m.Path)
				again += fmt.Sprintf(" --path %q", m.Path)
			}
			return nil, false, nil, fmt.Errorf("%s: %w: it holds an unfinished restore of library %s at commit %s%s (started %s); to finish it, rerun that restore (%s), or choose another directory, or add --force to write this one into it",
				dir, ErrNotEmpty, m.RepoID, m.Commit, what, m.Started.Format(time.RFC3339), again)
		}
	}
	if force {
		return r, false, d, nil
	}
	if others > 0 || marker {
		return nil, false, nil, fmt.Errorf("%s: %w", dir, ErrNotEmpty)
	}
	for _, n := range temps {
		if err := r.Remove(n); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, false, nil, fmt.Errorf("%s: removing the temp file %s of a killed restore: %w", dir, n, err)
		}
	}
	return r, false, d, nil
}

// writer writes a planned tree.
//
// Every operation names one entry in its own directory, through an os.Root opened on
// that directory: resolving a path from the target's top instead (one openat per
// component, os.Root's way of staying inside) costs the depth of every entry, quadratic
// in a deep tree. The walk keeps the directories on its way down open, but at most
// keepOpen of the deepest ones and every keepOpen-th above them, so a tree thousands
// of levels deep needs a few hundred descriptors; a directory closed on the way down is
// reopened from the nearest open one above it on the way up.
type writer struct {
	s     store.Store
	lib   Library
	plan  *plan
	force bool // replace files and symlinks in the way
	sweep bool // remove temp files of an earlier restore from each directory first
	fsync bool
	prog  *progress
	bytes atomic.Int64
	flush *flusher // nil: nothing flushed ahead

	cancel context.CancelFunc
	mu     gosync.Mutex
	err    error // the first error
	failed atomic.Bool
}

const keepOpen = 32

// handle is an open directory shared by the walk and the directory's file jobs; the
// last to let go closes it.
type handle struct {
	r    *os.Root
	refs atomic.Int32
}

func newHandle(r *os.Root) *handle {
	h := &handle{r: r}
	h.refs.Store(1)
	return h
}

func (h *handle) release() {
	if h.refs.Add(-1) == 0 {
		h.r.Close()
	}
}

// group counts what must happen in a directory before its mtime can be set: its
// subdirectories made and its files written. The last to finish sets it.
type group struct {
	w    *writer
	d    int
	h    *handle
	left atomic.Int32
}

func (g *group) done() {
	if g.left.Add(-1) == 0 {
		g.w.finish(g.d, g.h.r)
		g.h.release()
	}
}

type fileJob struct {
	g *group
	f *planFile
}

// frame is a directory on the walk's way down.
type frame struct {
	d    int
	h    *handle // nil while closed (see writer)
	next int     // the next of its subdirs to enter
}

func (w *writer) fail(err error) {
	w.mu.Lock()
	if w.err == nil {
		w.err = err
	}
	w.mu.Unlock()
	w.failed.Store(true)
	w.cancel()
}

// writeTree makes every directory and writes every file, parallel files at once, then
// returns once every directory's mtime is set (and with fsync, every directory synced).
func (w *writer) writeTree(ctx context.Context, top *os.Root, parallel int) error {
	if parallel == 0 {
		parallel = 4
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w.cancel = cancel
	jobs := make(chan fileJob)
	var wg gosync.WaitGroup
	for range min(parallel, max(w.plan.files, 1)) {
		wg.Go(func() {
			buf := make([]byte, 256<<10)
			for j := range jobs {
				if err := w.writeFile(wctx, j, buf); err != nil {
					w.fail(err)
				}
				j.g.done()
			}
		})
	}
	err := w.walk(wctx, top, jobs)
	close(jobs)
	wg.Wait()
	if err != nil {
		w.fail(err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return w.err
	}
	return ctx.Err()
}

// walk visits the directories depth first, parents before children, making each one's
// subdirectories and handing its files to the workers.
func (w *writer) walk(ctx context.Context, top *os.Root, jobs chan<- fileJob) error {
	r, err := top.OpenRoot(".")
	if err != nil {
		return err
	}
	stack := []frame{{d: 0, h: newHandle(r)}}
	defer func() {
		for _, f := range stack {
			if f.h != nil {
				f.h.release()
			}
		}
	}()
	if err := w.populate(ctx, 0, stack[0].h, jobs); err != nil {
		return err
	}
	for len(stack) > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		i := len(stack) - 1
		subdirs := w.plan.dirs[stack[i].d].subdirs
		if stack[i].next == len(subdirs) {
			if stack[i].h != nil {
				stack[i].h.release()
			}
			stack = stack[:i]
			continue
		}
		child := subdirs[stack[i].next]
		stack[i].next++
		if stack[i].h == nil {
			if err := w.reopen(stack); err != nil {
				return err
			}
		}
		r, err := stack[i].h.r.OpenRoot(w.plan.dirs[child].name)
		if err != nil {
			return fmt.Errorf("%s: %w", w.plan.path(child), err)
		}
		h := newHandle(r)
		stack = append(stack, frame{d: child, h: h})
		if j := len(stack) - 1 - keepOpen; j > 0 && j%keepOpen != 0 && stack[j].h != nil {
			stack[j].h.release()
			stack[j].h = nil
		}
		if err := w.populate(ctx, child, h, jobs); err != nil {
			return err
		}
	}
	return nil
}

// reopen opens the top frame's directory, and the closed ones above it, from the
// nearest open frame above (at most keepOpen levels up: every keepOpen-th stays open).
func (w *writer) reopen(stack []frame) error {
	top := len(stack) - 1
	i := top - 1
	for stack[i].h == nil {
		i--
	}
	for k := i + 1; k <= top; k++ {
		r, err := stack[k-1].h.r.OpenRoot(w.plan.dirs[stack[k].d].name)
		if err != nil {
			return fmt.Errorf("%s: %w", w.plan.path(stack[k].d), err)
		}
		stack[k].h = newHandle(r)
	}
	return nil
}

// populate makes dir d's subdirectories and queues its files. Its group is released
// here once all are queued; the workers release it file by file.
func (w *writer) populate(ctx context.Context, d int, h *handle, jobs chan<- fileJob) error {
	dir := &w.plan.dirs[d]
	if w.sweep {
		if err := w.sweepTemps(h.r, d); err != nil {
			return err
		}
	}
	for _, s := range dir.subdirs {
		if err := w.mkdir(h.r, s); err != nil {
			return err
		}
		w.prog.done(1, 0)
	}
	h.refs.Add(1)
	g := &group{w: w, d: d, h: h}
	g.left.Store(1)
	defer g.done()
	for i := range dir.files {
		g.left.Add(1)
		select {
		case jobs <- fileJob{g: g, f: &dir.files[i]}:
		case <-ctx.Done():
			g.left.Add(-1) // the walk's own count keeps it above zero
			return ctx.Err()
		}
	}
	return nil
}

// finish sets dir d's mtime (its entries are all written: nothing changes it after) and
// with fsync makes the directory durable. The library's root has no mtime of its own.
func (w *writer) finish(d int, r *os.Root) {
	if w.failed.Load() {
		return
	}
	if d == 0 && !w.fsync {
		return
	}
	dir, err := r.Open(".")
	if err != nil {
		w.fail(fmt.Errorf("%s: %w", displayPath(w.plan.path(d)), err))
		return
	}
	defer dir.Close()
	if d != 0 {
		if err := fsutil.SetMtime(dir, w.plan.dirs[d].mtime); err != nil {
			w.fail(fmt.Errorf("%s: %w", w.plan.path(d), err))
			return
		}
	}
	if w.fsync {
		if err := dir.Sync(); err != nil {
			w.fail(fmt.Errorf("%s: fsync: %w", displayPath(w.plan.path(d)), err))
		}
	}
}

// flushAheadBytes: each time a restore has written this many more bytes, a syncfs of
// the target starts in the background (one at a time). Left to the end, the flush of a
// 1 GiB restore began only after its copy and tripled it here (2.0 s to 6.0 s: the
// kernel starts writeback on its own only at 10% of RAM dirty, or after 30 s).
const flushAheadBytes = 64 << 20

// flusher makes a restore's files durable (see RestoreLibrary's marker) through a
// descriptor of the target held from the start, overlapping the disk's work with the
// copy. A background flush's error is kept for finish: Linux reports a writeback error
// once per open file, so it must not be lost.
type flusher struct {
	dir     *os.File
	pending atomic.Int64 // bytes written since the last background flush began
	running atomic.Bool
	wg      gosync.WaitGroup
	mu      gosync.Mutex
	err     error
}

func newFlusher(root *os.Root) (*flusher, error) {
	dir, err := root.Open(".")
	if err != nil {
		return nil, err
	}
	return &flusher{dir: dir}, nil
}

// wrote counts n bytes written, and starts a background flush past flushAheadBytes.
func (f *flusher) wrote(n int64) {
	if f == nil || f.pending.Add(n) < flushAheadBytes || !f.running.CompareAndSwap(false, true) {
		return
	}
	f.pending.Store(0)
	f.wg.Go(func() {
		defer f.running.Store(false)
		if err := syncfs(f.dir); err != nil {
			f.mu.Lock()
			if f.err == nil {
				f.err = err
			}
			f.mu.Unlock()
		}
	})
}

// finish waits for a background flush and flushes what is left: every file written
// is durable when it returns nil.
func (f *flusher) finish() error {
	f.wg.Wait()
	f.mu.Lock()
	err := f.err
	f.mu.Unlock()
	if err != nil {
		return err
	}
	return syncfs(f.dir)
}

func (f *flusher) close() {
	f.wg.Wait()
	f.dir.Close()
}

var syncfs = fsutil.SyncfsFile // tests fail it

// sweepTemps removes the temp files an earlier, killed restore left in dir d: regular
// files whose names tempName could have made, nothing else.
func (w *writer) sweepTemps(r *os.Root, d int) error {
	f, err := r.Open(".")
	if err != nil {
		return fmt.Errorf("%s: %w", displayPath(w.plan.path(d)), err)
	}
	ents, err := f.ReadDir(-1)
	f.Close()
	if err != nil {
		return fmt.Errorf("%s: %w", displayPath(w.plan.path(d)), err)
	}
	for _, e := range ents {
		if isTempName(e.Name()) && e.Type().IsRegular() {
			if err := r.Remove(e.Name()); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("%s: %w", w.plan.filePath(d, e.Name()), err)
			}
		}
	}
	return nil
}

// mkdir makes directory s in its parent's directory r. Under force, a file or symlink
// in its place is removed first (never followed).
func (w *writer) mkdir(r *os.Root, s int) error {
	name := w.plan.dirs[s].name
	wrap := func(err error) error { return fmt.Errorf("%s: %w", w.plan.path(s), err) }
	err := r.Mkdir(name, 0o755)
	if err == nil {
		return nil
	}
	if !errors.Is(err, fs.ErrExist) {
		return wrap(err)
	}
	if !w.force {
		// Nothing was here before this restore (a fresh one): what is in the way is
		// another folder or file of it, under a name the filesystem takes as the same.
		return wrap(ErrNameCollision)
	}
	fi, lerr := r.Lstat(name)
	if lerr != nil {
		return wrap(lerr)
	}
	if fi.IsDir() {
		return nil
	}
	if err := r.Remove(name); err != nil {
		return wrap(err)
	}
	if err := r.Mkdir(name, 0o755); err != nil {
		return wrap(err)
	}
	return nil
}

// oldHeadKey names an old head's entry by head and time, as its HeadMove does.
type oldHeadKey struct {
	Head string
	At   time.Time
}

// ErrBackupDamaged is an object of a commit's tree missing or damaged in the backup
// store where the backup had it whole: bit rot, a lost sector, a hand's rm.
var ErrBackupDamaged = errors.New("missing or damaged in the backup")

// damaged says what to do about an object of a whole tree the backup lost: fetch it
// again, then run the restore again (begun: it finishes what this one wrote).
func damaged(repoID string, err error, begun bool) error {
	again := "run this restore again"
	if begun {
		again = "run this restore again: it finishes what this one began"
	}
	return fmt.Errorf("%w (%w): seafbak verify --repair %s fetches it again from the primary; then %s", err, ErrBackupDamaged, repoID, again)
}

// pickAt chooses the commit the library was at, at time at, on the line of heads the
// primary served: the first-parent chain from the head. When a client uploads a commit
// on a stale parent, the file server merges it with the primary's head as the first
// parent and the upload as the second, so the upload's own commits were never served,
// though their ctimes (the client's clock, taken offline perhaps) may fall in the time
// asked for. Each line is walked from its head to its first commit made by then: a
// commit's ctime is its client's clock, and a laptop's running fast made a parent look
// newer than the child that replaced it before at. An old head's line counts only if
// the primary moved away from it after at; of the lines' commits, the newest is taken.
// A line cut by a commit the backup cannot read before such a commit is met gives that
// commit's error when no line gives an answer.
func pickAt(hist []HistoryEntry, rec state.Library, at time.Time) (string, error) {
	byID := make(map[string]*HistoryEntry, len(hist))
	for i := range hist {
		byID[hist[i].ID] = &hist[i]
	}
	var best *HistoryEntry
	var cut error
	line := func(head string) {
		for id, steps := head, 0; id != "" && steps <= len(hist); steps++ {
			e := byID[id]
			switch {
			case e == nil:
				return
			case e.Error != "":
				if cut == nil {
					cut = fmt.Errorf("commit %s, on the line of heads before %s: %s", id, at.UTC().Format(time.RFC3339), e.Error)
				}
				return
			case !e.Time.After(at):
				if best == nil || e.Time.After(best.Time) {
					best = e
				}
				return
			case len(e.Parents) == 0:
				return
			}
			id = e.Parents[0]
		}
	}
	// The head served at at: the one the first move the lines do not show (a reset,
	// its undo) made after at moved from, else the backed-up one. Between such moves the
	// head only moved forward, so that head's line holds what was served.
	head := rec.Head
	moved := map[oldHeadKey]bool{}
	found := false
	for _, m := range rec.HeadMoves {
		moved[oldHeadKey{m.From, m.At}] = true
		if !found && m.At.After(at) {
			head, found = m.From, true
		}
	}
	line(head)
	// Old heads recorded before moves were kept: each counts if it was replaced after at.
	for _, o := range rec.OldHeads {
		if !moved[oldHeadKey{o.Head, o.Replaced}] && (o.Replaced.IsZero() || o.Replaced.After(at)) {
			line(o.Head)
		}
	}
	if best != nil {
		return best.ID, nil
	}
	return "", cut
}

// writeFile writes one file under a temp name in its directory, verifying every block,
// and renames it into place once whole.
func (w *writer) writeFile(ctx context.Context, j fileJob, buf []byte) (err error) {
	if err := ctx.Err(); err != nil {
		return err
	}
	r, e := j.g.h.r, j.f
	tmp := tempName()
	// As Seafile's client checks a file out (seaf_fs_manager_checkout_file): executable
	// when the dirent's mode has the owner's execute bit, the umask applying.
	perm := os.FileMode(0o666)
	if e.exec {
		perm = 0o777
	}
	f, err := r.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return fmt.Errorf("%s: %w", w.plan.filePath(j.g.d, e.name), err)
	}
	defer func() {
		if f != nil {
			f.Close()
		}
		if err != nil {
			r.Remove(tmp)
			err = fmt.Errorf("%s: %w", w.plan.filePath(j.g.d, e.name), err)
		}
	}()
	if e.id != object.EmptyID {
		if err := w.copyBlocks(ctx, j, f, buf); err != nil {
			return err
		}
	}
	if err := fsutil.SetMtime(f, e.mtime); err != nil {
		return err
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
	if !w.force {
		// A fresh restore replaces nothing: a name taken is another file or folder of
		// this restore, under a name the filesystem takes as the same (Unicode forms on
		// a normalising filesystem). A link never replaces, so two workers naming files
		// of one folder cannot both find the name free; a check, then a rename, could.
		err := r.Link(tmp, e.name)
		switch {
		case err == nil:
			if err := r.Remove(tmp); err != nil {
				return err
			}
			w.prog.done(1, 0)
			return nil
		case errors.Is(err, fs.ErrExist):
			return ErrNameCollision
		}
		// No hard links here (FAT, exFAT, some network shares): check, then rename.
		if _, err := r.Lstat(e.name); err == nil {
			return ErrNameCollision
		} else if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	if err := r.Rename(tmp, e.name); err != nil {
		if fi, lerr := r.Lstat(e.name); lerr == nil && fi.IsDir() {
			return fmt.Errorf("a directory is in the way of this file: %w", err)
		}
		return err
	}
	w.prog.done(1, 0)
	return nil
}

// copyBlocks streams a file's blocks into f through buf, checking each block's SHA-1
// and the total size.
func (w *writer) copyBlocks(ctx context.Context, j fileJob, f *os.File, buf []byte) error {
	e := j.f
	// writeFile's error names the file; a path built here for every file would cost its
	// depth each time.
	raw, err := w.s.Get(ctx, object.KindFS, w.lib.For(object.KindFS), e.id)
	if err != nil {
		return err
	}
	fo, err := object.ParseFS(e.id, raw)
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
		rc, err := w.s.Open(ctx, object.KindBlock, w.lib.For(object.KindBlock), b)
		if err != nil {
			return err
		}
		h := object.NewBlockHasher(b)
		for {
			n, rerr := rc.Read(buf)
			if n > 0 {
				// Bounded by the file's size (restore refuses encrypted libraries, so
				// blocks are the plain bytes): a store that keeps sending fills no disk.
				if total+h.Size()+int64(n) > fo.Size {
					rc.Close()
					return fmt.Errorf("%w: file %s: its blocks hold more than the %d bytes it says (block %s)", object.ErrInvalid, e.id, fo.Size, b)
				}
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
		w.flush.wrote(h.Size())
	}
	if total != fo.Size {
		return fmt.Errorf("%w: file %s: blocks hold %d bytes, file says %d", object.ErrInvalid, e.id, total, fo.Size)
	}
	w.bytes.Add(total)
	return nil
}
