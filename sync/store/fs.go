package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	gosync "sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"seafbak/internal/fsutil"
	"seafbak/sync/object"
)

// Durability chooses how FS makes objects durable.
type Durability int

const (
	// Batch writes objects without fsync and makes them durable together in Sync: one
	// fsync per object and directory when few were written (a one-file change), one
	// syncfs(2) when many were (a first backup). A crash before Sync can leave
	// named-but-empty objects, so the engine marks a library dirty before writing and
	// re-checks a dirty library's objects.
	Batch Durability = iota
	// PerObject fsyncs every object and its directory as it is written.
	PerObject
)

// FS is a Store in Seafile's filesystem layout:
// <root>/storage/<commits|fs|blocks>/<store id>/<id[0:2]>/<id[2:40]>.
// A Seafile server started on root serves it as it is.
type FS struct {
	root       string
	storage    string // filepath.Join(root, "storage"): object paths extend it
	tmp        string
	durability Durability
	madeDirs   *dirCache // directories known to exist, to skip mkdir per object
	// Temp files are named <object id>.<tmpTag>.<tmpSeq>: unique within this process by
	// the counter and across processes by the random tag (a container's seafbak is always
	// pid 1), so one O_EXCL create suffices where os.CreateTemp makes random names and
	// retries; O_EXCL still guarantees no temp file is ever shared.
	tmpTag string
	tmpSeq atomic.Uint64
	// unnamed: objects are written as O_TMPFILE files in their own directory and linked
	// into place, where the filesystem allows it (probed by NewFS). A temp file named in
	// seafbak-tmp puts every new inode in that directory's block group and makes each
	// commit a rename between two directories, which takes a filesystem-wide lock; both
	// serialised a first backup of small files (issue 10). An unnamed file also leaves
	// nothing behind when seafbak is killed.
	unnamed bool
	// emptyPathLink: an unnamed file is linked by its descriptor (AT_EMPTY_PATH, which
	// needs CAP_DAC_READ_SEARCH) rather than through /proc/self/fd, a walk of four
	// more components per object.
	emptyPathLink bool

	// held are the library directories first backups hold open (see libdir.go).
	held fsutil.Held[libKey]

	// Syncs are group commits: a Sync needs a flush that starts after it was called
	// (its objects were in place before), so Syncs that end their copies together (a
	// scan of many small libraries) share one flush of everything pending.
	flushes fsutil.Group

	mu           gosync.Mutex
	pendingFiles []string // objects put in place since the last flush
	// pendingMany: more than syncfsAbove objects are pending, so one syncfs will flush
	// them and their names are not kept (a first backup writes millions).
	pendingMany bool
	pendingDirs map[string]struct{} // directories whose entries changed since then

	// rootDir is the store's root, opened by NewFS: every syncfs goes through it, so
	// it reports each writeback error on the filesystem since NewFS (Linux reports one
	// to each open file once).
	rootDir *os.File
	// otherFS are storage/commits, fs and blocks where one is on a filesystem of its
	// own (a mount, or a symlink to another disk: storage/blocks often is): syncfs of
	// the root's filesystem would not reach it, so each is flushed through its own.
	otherFS []*os.File
	// syncfsMu keeps syncfs calls on rootDir from overlapping: Linux reports a
	// writeback error to only one of two syncfs calls running on the same open file, so
	// the other (a final flush beside a flush-ahead, or SyncAll beside a Sync) could
	// succeed before the first has recorded flushErr.
	syncfsMu gosync.Mutex
	// placing counts each Commit from naming its object to adding it to pendingFiles;
	// a flush waits for those under way before it takes the pending list.
	placing placements
	// flushErr is the first flush that failed. It fails every later Sync: Linux
	// marks pages whose writeback failed clean, so a later flush would succeed
	// without their bytes on disk.
	flushErr atomic.Pointer[error]
	// Bytes committed since the last flush, and whether a flush-ahead is running.
	unflushed     atomic.Int64
	flushingAhead atomic.Bool
	syncfsHook    func() error      // tests fail syncfs through it
	placedHook    func(path string) // tests pause a Commit between name and pending
}

// syncfsAbove is how many pending objects and directories make one syncfs(2) cheaper
// than fsyncing each. syncfs also flushes whatever else is dirty on the filesystem, so
// for a handful of objects fsync keeps a one-file change's cost (about ten objects and
// as many directories) independent of other writers. Directories count: a first backup
// of a one-file library writes four objects into eight new directories, and syncs that
// finish together (a scan) share one Sync.
const syncfsAbove = 64

// ErrFlushFailed is a failed fsync or syncfs of the backup store. Every later flush of
// the same FS fails with it too (see FS.flushErr), so a process that keeps running
// (watch) must start afresh for its syncs to succeed again.
var ErrFlushFailed = errors.New("writing the backup store to disk failed")

// flushAheadBytes: once a sync has this many bytes pending for one syncfs, a syncfs
// starts in the background. Left to the final syncfs, a first backup's writeback began
// only after its copy: 1.2–1.5 s of the 3 s a 1 GiB library took (issue 10), since
// the kernel starts writing back only at 10% of RAM dirty or after 30 s. Flushing
// ahead overlaps the disk's work with the copy. It only starts the disk earlier:
// objects are durable when Sync returns, as before.
const flushAheadBytes = 64 << 20

var _ Store = (*FS)(nil)

// TempDirName is where FS writes objects before renaming them into place. It sits beside
// storage/ (same filesystem, so rename is atomic) where Seafile never looks.
const TempDirName = "seafbak-tmp"

// NewFS opens (creating if needed) a backup store rooted at a seafile-data directory.
func NewFS(root string, d Durability) (*FS, error) {
	s := &FS{root: root, storage: filepath.Join(root, "storage"), tmp: filepath.Join(root, TempDirName), durability: d, pendingDirs: map[string]struct{}{}, madeDirs: newDirCache(dirCacheLimit), flushes: fsutil.Group{Linger: fsutil.FlushLinger},
		tmpTag: strconv.FormatUint(rand.Uint64(), 36)}
	for _, dir := range []string{s.storage, s.tmp} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("backup store %s: %w", root, err)
		}
	}
	s.initHeld()
	s.removeStaleTemps()
	s.unnamed = s.canLinkUnnamed()
	var err error
	if s.rootDir, err = os.Open(root); err != nil {
		return nil, fmt.Errorf("backup store %s: %w", root, err)
	}
	if s.otherFS, err = otherFilesystems(s.rootDir, s.storage); err != nil {
		s.rootDir.Close()
		return nil, fmt.Errorf("backup store %s: %w", root, err)
	}
	return s, nil
}

// otherFilesystems opens, made where missing, each of storage/commits, fs and blocks
// that is not on root's filesystem nor on one opened before it (see FS.otherFS).
func otherFilesystems(root *os.File, storage string) ([]*os.File, error) {
	fi, err := root.Stat()
	if err != nil {
		return nil, err
	}
	devs := map[uint64]bool{fi.Sys().(*syscall.Stat_t).Dev: true}
	var out []*os.File
	for _, kind := range []object.Kind{object.KindCommit, object.KindFS, object.KindBlock} {
		dir := filepath.Join(storage, string(kind))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		f, err := os.Open(dir) // through a symlink: its target's filesystem
		if err == nil {
			fi, err = f.Stat()
		}
		if err != nil {
			for _, o := range out {
				o.Close()
			}
			if f != nil {
				f.Close()
			}
			return nil, err
		}
		if dev := fi.Sys().(*syscall.Stat_t).Dev; !devs[dev] {
			devs[dev] = true
			out = append(out, f)
		} else {
			f.Close()
		}
	}
	return out, nil
}

// canLinkUnnamed reports whether an O_TMPFILE file can be made and linked into a
// directory of the store: not every filesystem supports O_TMPFILE (NFS, older kernels),
// and linking through /proc/self/fd needs /proc.
func (s *FS) canLinkUnnamed() bool {
	for _, emptyPath := range []bool{true, false} {
		fd, err := openUnnamed(unix.AT_FDCWD, s.tmp)
		if err != nil {
			return false
		}
		s.emptyPathLink = emptyPath
		probe := s.tempName("probe")
		err = s.linkUnnamed(fd, unix.AT_FDCWD, probe)
		unix.Close(fd)
		if err == nil {
			unix.Unlink(probe)
			return true
		}
	}
	s.emptyPathLink = false
	return false
}

// openUnnamed opens a new file in directory name (relative to dirfd) that has no name
// until linkUnnamed gives it one.
func openUnnamed(dirfd int, name string) (fd int, err error) {
	err = fsutil.IgnoringEINTR(func() error {
		fd, err = unix.Openat(dirfd, name, unix.O_WRONLY|unix.O_TMPFILE|unix.O_CLOEXEC, 0o600)
		return err
	})
	return fd, err
}

// linkUnnamed names an openUnnamed file path (relative to dirfd): by its descriptor
// where seafbak may (AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH), else through /proc. A
// name that exists already is EEXIST, never replaced.
func (s *FS) linkUnnamed(fd, dirfd int, path string) error {
	if s.emptyPathLink {
		return fsutil.IgnoringEINTR(func() error {
			return unix.Linkat(fd, "", dirfd, path, unix.AT_EMPTY_PATH)
		})
	}
	return fsutil.IgnoringEINTR(func() error {
		return unix.Linkat(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(fd), dirfd, path, unix.AT_SYMLINK_FOLLOW)
	})
}

// tempName is a new name in the temp directory, unique within this process by the
// counter and across processes by the random tag.
func (s *FS) tempName(id string) string {
	return s.tmp + "/" + id + "." + s.tmpTag + "." + strconv.FormatUint(s.tmpSeq.Add(1), 36)
}

// OpenFS opens an existing store only to read it: unlike NewFS it creates nothing and
// sweeps no temp files, so a read-only command (status) changes nothing on the backup.
func OpenFS(root string) (*FS, error) {
	if _, err := os.Stat(filepath.Join(root, "storage")); err != nil {
		return nil, fmt.Errorf("backup store %s: %w", root, err)
	}
	rootDir, err := os.Open(root)
	if err != nil {
		return nil, fmt.Errorf("backup store %s: %w", root, err)
	}
	s := &FS{root: root, storage: filepath.Join(root, "storage"), tmp: filepath.Join(root, TempDirName), pendingDirs: map[string]struct{}{}, madeDirs: newDirCache(dirCacheLimit), rootDir: rootDir}
	s.initHeld()
	return s, nil
}

// removeStaleTemps deletes temp files a killed seafbak left behind. They were never
// renamed into place, so they are not objects; an hour-old one has no live writer.
func (s *FS) removeStaleTemps() {
	ents, err := os.ReadDir(s.tmp)
	if err != nil {
		return
	}
	for _, e := range ents {
		if fi, err := e.Info(); err == nil && fi.Mode().IsRegular() && time.Since(fi.ModTime()) > time.Hour {
			os.Remove(filepath.Join(s.tmp, e.Name()))
		}
	}
}

// Root is the seafile-data directory the store lives in.
func (s *FS) Root() string { return s.root }

// HasLibrary reports whether storeID has any object of kind: its directory holds at
// least one entry. A library is never removed from the store, so this is stable.
func (s *FS) HasLibrary(_ context.Context, kind object.Kind, storeID string) (bool, error) {
	if !kind.Valid() {
		return false, fmt.Errorf("backup store: unknown object kind %q", kind)
	}
	if err := object.CheckRepoID(storeID); err != nil {
		return false, fmt.Errorf("backup store: %w", err)
	}
	f, err := os.Open(filepath.Join(s.storage, string(kind), storeID))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer f.Close()
	names, err := f.Readdirnames(1)
	if err != nil && err != io.EOF {
		return false, err
	}
	return len(names) > 0, nil
}

// objectPath builds a path only from a checked kind, library id and object id.
func (s *FS) objectPath(kind object.Kind, storeID, id string) (dir, file string, err error) {
	if !kind.Valid() {
		return "", "", fmt.Errorf("backup store: unknown object kind %q", kind)
	}
	if err := object.CheckRepoID(storeID); err != nil {
		return "", "", fmt.Errorf("backup store: %w", err)
	}
	if err := object.CheckID(id); err != nil {
		return "", "", fmt.Errorf("backup store: %w", err)
	}
	// Each part is one checked, clean component, so plain concatenation is what
	// filepath.Join would build, in one allocation (a first scan asks for every object
	// a few times).
	file = s.storage + "/" + string(kind) + "/" + storeID + "/" + id[:2] + "/" + id[2:]
	return file[:len(file)-len(id)+1], file, nil
}

func (s *FS) Has(_ context.Context, kind object.Kind, storeID, id string) (bool, error) {
	var st unix.Stat_t
	return s.stat(kind, storeID, id, &st)
}

func (s *FS) Size(_ context.Context, kind object.Kind, storeID, id string) (int64, error) {
	var st unix.Stat_t
	present, err := s.stat(kind, storeID, id, &st)
	if err == nil && !present {
		err = fmt.Errorf("%s %s: %w", kind, id, ErrNotExist)
	}
	return st.Size, err
}

// stat fills st for an object, through its library's held directory if a sync holds
// it. Most objects a first backup asks about are absent: no error value is built for
// them.
func (s *FS) stat(kind object.Kind, storeID, id string, st *unix.Stat_t) (present bool, err error) {
	_, p, err := s.objectPath(kind, storeID, id)
	if err != nil {
		return false, err
	}
	if d := s.heldDir(kind, storeID); d != nil {
		err = fsutil.IgnoringEINTR(func() error { return unix.Fstatat(d.FD, p[len(d.Path)+1:], st, 0) })
		s.held.Done(d)
	} else {
		err = fsutil.IgnoringEINTR(func() error { return unix.Stat(p, st) })
	}
	switch {
	case err == nil:
		return true, nil
	case err == unix.ENOENT:
		return false, nil
	}
	return false, fmt.Errorf("backup store: %w", &fs.PathError{Op: "stat", Path: p, Err: err})
}

// Get reads a commit or fs object whole, through a bare descriptor (fsutil.Open): every
// sync reads its commits back to prove them recorded (proveRecordable).
func (s *FS) Get(_ context.Context, kind object.Kind, storeID, id string) ([]byte, error) {
	_, p, err := s.objectPath(kind, storeID, id)
	if err != nil {
		return nil, err
	}
	fd, err := fsutil.Open(p, unix.O_RDONLY, 0)
	if err == unix.ENOENT {
		return nil, fmt.Errorf("%s %s: %w", kind, id, ErrNotExist)
	}
	if err != nil {
		return nil, fmt.Errorf("backup store: %w", &fs.PathError{Op: "open", Path: p, Err: err})
	}
	f := &fsutil.RawFile{FD: fd, Path: p}
	defer f.Close()
	// A larger file than any commit or fs object is damage, and must not cost
	// unbounded memory.
	limit := object.MaxStoredSize(kind)
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("backup store: %w", err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("backup store: %s %s: %w: larger than %d bytes", kind, id, object.ErrInvalid, limit)
	}
	return data, nil
}

func (s *FS) Open(_ context.Context, kind object.Kind, storeID, id string) (io.ReadCloser, error) {
	_, p, err := s.objectPath(kind, storeID, id)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s %s: %w", kind, id, ErrNotExist)
	}
	if err != nil {
		return nil, fmt.Errorf("backup store: %w", err)
	}
	return f, nil
}

// Create writes the object to a temp file through a bare descriptor: os.OpenFile would
// add five fcntl/epoll_ctl calls per file to try the netpoller, which regular files
// never use, and os.Rename an lstat; at four files per small file copied they made up
// most of the syscalls of a first backup (issue 10). The temp file is unnamed, in the
// object's directory (made first if new), where the filesystem allows (see unnamed).
func (s *FS) Create(ctx context.Context, kind object.Kind, storeID, id string) (Writer, error) {
	w, err := s.create(ctx, kind, storeID, id)
	if err != nil {
		return nil, noSpace(s.root, err)
	}
	return w, nil
}

func (s *FS) create(_ context.Context, kind object.Kind, storeID, id string) (*fsWriter, error) {
	dir, p, err := s.objectPath(kind, storeID, id)
	if err != nil {
		return nil, err
	}
	if s.unnamed {
		if lib := s.heldDir(kind, storeID); lib != nil {
			// In the object's directory, made now if it is new (a held library's
			// directory exists: see initHeld), or the library's if it is gone again.
			if err := s.ensureSubdir(lib, id[:2]); err != nil {
				s.held.Done(lib)
				return nil, fmt.Errorf("backup store: %w", err)
			}
			fd, err := openUnnamed(lib.FD, id[:2])
			if err == unix.ENOENT {
				lib.ClearSubdir(hexByte(id[:2]))
				fd, err = openUnnamed(lib.FD, ".")
			}
			if err != nil {
				s.held.Done(lib)
				return nil, fmt.Errorf("backup store: create temp file: %w", &fs.PathError{Op: "open", Path: dir, Err: err})
			}
			return &fsWriter{s: s, fd: fd, id: id, dir: dir, path: p, lib: lib}, nil
		}
		// In the object's directory, or if that is not made yet the nearest one that
		// is, up to storage/<kind>: a link cannot cross filesystems, and storage/blocks
		// is often a mount of its own. In a library's directory that exists, the object's
		// is made now (Commit would make it anyway), which saves a new subdirectory a
		// failed open; the library's own is left to Commit, as its presence says the
		// library has objects (HasLibrary).
		fd, climbFrom, err := -1, dir, s.madeSubdir(dir)
		switch {
		case err == nil:
			if fd, err = openUnnamed(unix.AT_FDCWD, dir); err == unix.ENOENT {
				s.madeDirs.forget(dir) // removed since it was made
			}
		case err == unix.ENOENT: // the library's directory is not there either
			climbFrom = filepath.Dir(dir)
		}
		if err == unix.ENOENT {
			top := filepath.Join(s.storage, string(kind))
			for d := climbFrom; err == unix.ENOENT && len(d) > len(top); {
				d = filepath.Dir(d)
				fd, err = openUnnamed(unix.AT_FDCWD, d)
			}
		}
		if err == unix.ENOENT {
			fd, err = openUnnamed(unix.AT_FDCWD, s.tmp)
		}
		if _, mkdir := err.(*fs.PathError); mkdir {
			return nil, fmt.Errorf("backup store: create temp file: %w", err)
		}
		if err != nil {
			// No named temp file instead: a directory whose filesystem lacks O_TMPFILE
			// when seafbak-tmp's has it is another filesystem, which a rename from
			// seafbak-tmp cannot reach either.
			return nil, fmt.Errorf("backup store: create temp file: %w", &fs.PathError{Op: "open", Path: dir, Err: err})
		}
		return &fsWriter{s: s, fd: fd, id: id, dir: dir, path: p, newLibrary: climbFrom != dir}, nil
	}
	for {
		tmp := s.tempName(id)
		fd, err := unix.Open(tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o600)
		switch {
		case err == unix.EINTR || err == unix.EEXIST: // EEXIST: another name, never another's file
			continue
		case err != nil:
			return nil, fmt.Errorf("backup store: create temp file: %w", &fs.PathError{Op: "open", Path: tmp, Err: err})
		}
		return &fsWriter{s: s, fd: fd, id: id, tmp: tmp, dir: dir, path: p}, nil
	}
}

// Sync makes every object written before it was called durable, with their directory
// entries.
func (s *FS) Sync(context.Context) error {
	return s.flushes.Do("", func([]string) error {
		// Objects reached through a held directory are in place only if it is still
		// the library's; a failed flush or check before fails this Sync even with
		// nothing pending.
		if err := s.checkHeldDirs(); err != nil {
			return err
		}
		s.placing.wait() // objects named before this Sync are pending by now
		s.mu.Lock()
		files, dirs, many := s.pendingFiles, s.pendingDirs, s.pendingMany
		s.pendingFiles, s.pendingDirs, s.pendingMany = nil, map[string]struct{}{}, false
		s.mu.Unlock()
		s.unflushed.Store(0)
		if len(files) == 0 && len(dirs) == 0 && !many {
			return nil
		}
		err := flush(s, many, files, dirs)
		if err != nil {
			// Keep them pending: the next Sync tries again.
			s.mu.Lock()
			s.pendingMany = s.pendingMany || many
			s.pendingFiles = append(s.pendingFiles, files...)
			for d := range dirs {
				s.pendingDirs[d] = struct{}{}
			}
			s.mu.Unlock()
		}
		return err
	})
}

func flush(s *FS, many bool, files []string, dirs map[string]struct{}) error {
	if err := s.flushErr.Load(); err != nil {
		return *err
	}
	if many || len(files)+len(dirs) > syncfsAbove {
		return s.syncfs()
	}
	for _, f := range files {
		if err := fsutil.SyncFile(f); err != nil {
			return s.failed(fmt.Errorf("backup store: fsync %s: %w", f, err))
		}
	}
	for d := range dirs {
		if err := fsutil.SyncDir(d); err != nil {
			return s.failed(fmt.Errorf("backup store: fsync %s: %w", d, err))
		}
	}
	return nil
}

// failed records the first failed flush, which every later one returns (see flushErr).
// An open that failed (EMFILE) flushed nothing and consumed no writeback error, so it
// fails only this flush.
func (s *FS) failed(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) && pe.Op == "open" {
		return err
	}
	err = fmt.Errorf("%w: %w", ErrFlushFailed, err)
	s.flushErr.CompareAndSwap(nil, &err)
	return *s.flushErr.Load()
}

// SyncAll flushes the whole filesystem holding the store (syncfs), so objects other
// processes put in place are durable too.
func (s *FS) SyncAll(ctx context.Context) error {
	if err := s.Sync(ctx); err != nil {
		return err
	}
	return s.syncfs()
}

func (s *FS) syncfs() error {
	s.syncfsMu.Lock()
	defer s.syncfsMu.Unlock()
	if err := s.flushErr.Load(); err != nil {
		return *err
	}
	for _, f := range append([]*os.File{s.rootDir}, s.otherFS...) {
		var err error
		if s.syncfsHook != nil {
			err = s.syncfsHook()
		} else {
			err = fsutil.SyncfsFile(f)
		}
		if err != nil {
			return s.failed(fmt.Errorf("backup store: %w", err))
		}
	}
	return nil
}

// flushAhead starts a syncfs in the background when unflushed bytes, all pending for
// one syncfs, reach flushAheadBytes. Its error is kept for Sync.
func (s *FS) flushAhead(unflushed int64) {
	if unflushed < flushAheadBytes || !s.flushingAhead.CompareAndSwap(false, true) {
		return
	}
	s.unflushed.Store(0)
	go func() {
		defer s.flushingAhead.Store(false)
		s.syncfs()
	}()
}

func (s *FS) ensureDir(dir string) error {
	if s.madeDirs.has(dir) {
		return nil
	}
	created, err := s.mkdirs(dir)
	if err != nil {
		return err
	}
	if created {
		// New directories: their entries in their parents must survive a crash too.
		for d := dir; len(d) > len(s.root); d = filepath.Dir(d) {
			if err := s.entryAdded(filepath.Dir(d)); err != nil {
				return err
			}
		}
	}
	s.madeDirs.add(dir)
	return nil
}

// madeSubdir makes dir, an object's <id[:2]> directory, if its library's directory
// exists: ENOENT if that is not made yet. It remembers dir as made, so Commit's inDir
// costs nothing more.
func (s *FS) madeSubdir(dir string) error {
	if s.madeDirs.has(dir) {
		return nil
	}
	err := fsutil.IgnoringEINTR(func() error { return unix.Mkdir(dir, 0o755) })
	switch err {
	case nil:
		if err := s.entryAdded(filepath.Dir(dir)); err != nil {
			return err
		}
	case unix.EEXIST:
	case unix.ENOENT:
		return err
	default:
		return &fs.PathError{Op: "mkdir", Path: dir, Err: err}
	}
	s.madeDirs.add(dir)
	return nil
}

// entryAdded makes a new entry in dir durable as the store's durability says: at once
// (PerObject), or with the next Sync.
func (s *FS) entryAdded(dir string) error {
	if s.durability == PerObject {
		return fsutil.SyncDir(dir)
	}
	s.mu.Lock()
	s.pendingDirs[dir] = struct{}{}
	s.mu.Unlock()
	return nil
}

// mkdirs is os.MkdirAll for directories under the store's root, reporting whether it
// created dir or one of its parents. It tries mkdir(2) first and climbs only on ENOENT: os.MkdirAll stats dir
// and each parent before creating, three extra calls per directory a new library
// needs. A name taken by a file is not reported here; the rename into it fails.
func (s *FS) mkdirs(dir string) (created bool, err error) {
	err = fsutil.IgnoringEINTR(func() error { return unix.Mkdir(dir, 0o755) })
	switch {
	case err == nil:
		return true, nil
	case err == unix.EEXIST:
		return false, nil
	case err == unix.ENOENT && len(filepath.Dir(dir)) > len(s.root):
		parentCreated, err := s.mkdirs(filepath.Dir(dir))
		if err != nil {
			return false, err
		}
		err = fsutil.IgnoringEINTR(func() error { return unix.Mkdir(dir, 0o755) })
		if err == nil || err == unix.EEXIST { // EEXIST: another writer made it meanwhile
			return err == nil || parentCreated, nil
		}
	}
	return false, &fs.PathError{Op: "mkdir", Path: dir, Err: err}
}

type fsWriter struct {
	s    *FS
	fd   int
	id   string
	tmp  string // the temp file's name; empty while it is unnamed (O_TMPFILE)
	dir  string
	path string
	lib  *fsutil.HeldDir // the library's directory held by a sync, if one is: released when done
	// newLibrary: the library's directory was not there at Create, so Commit makes it
	// before the object's rather than first trying the object's.
	newLibrary bool
	done       bool
	n          int64 // bytes written
}

func (w *fsWriter) Write(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		m, err := unix.Write(w.fd, p[n:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return n, noSpace(w.s.root, &fs.PathError{Op: "write", Path: w.path, Err: err})
		}
		n += m
	}
	w.n += int64(n)
	return n, nil
}

func (w *fsWriter) Commit() (err error) {
	if w.done {
		return errors.New("backup store: object committed twice")
	}
	w.done = true
	defer w.releaseLib()
	defer func() {
		if err != nil {
			if w.tmp != "" {
				unix.Unlink(w.tmp)
			}
			err = noSpace(w.s.root, fmt.Errorf("backup store: write %s: %w", w.path, err))
		}
	}()
	if w.s.durability == PerObject {
		if err := fsutil.IgnoringEINTR(func() error { return unix.Fsync(w.fd) }); err != nil {
			unix.Close(w.fd)
			return err
		}
		if _, err := w.place(); err != nil {
			return err
		}
		return fsutil.SyncDir(w.dir)
	}
	// From its name until it is pending, an object is one another sync of this process
	// may find present and trust, yet a Sync would not flush: Sync waits for placings
	// under way before it takes the pending list.
	e := w.s.placing.begin()
	defer w.s.placing.end(e)
	placed, err := w.place()
	if placed && w.s.placedHook != nil {
		w.s.placedHook(w.path)
	}
	if placed {
		// Even when a close after the name failed: the object is there to be trusted.
		w.s.pend(w.path, w.dir, w.n)
	}
	return err
}

// place names the object: placed once its name is there, even if closing fails after.
func (w *fsWriter) place() (placed bool, err error) {
	if w.tmp == "" {
		return w.linkIntoPlace()
	}
	return w.renameIntoPlace()
}

// pend adds an object put in place to what the next Sync flushes.
func (s *FS) pend(path, dir string, n int64) {
	unflushed := s.unflushed.Add(n)
	s.mu.Lock()
	if s.pendingMany || len(s.pendingFiles)+len(s.pendingDirs) >= syncfsAbove {
		// One syncfs will flush them all: their names need not be kept (a first
		// backup writes millions).
		s.pendingMany, s.pendingFiles, s.pendingDirs = true, nil, map[string]struct{}{}
		s.mu.Unlock()
		s.flushAhead(unflushed)
		return
	}
	s.pendingFiles = append(s.pendingFiles, path)
	s.pendingDirs[dir] = struct{}{}
	s.mu.Unlock()
}

// renameIntoPlace renames the named temp file to the object's name, then closes it. A
// name already taken is replaced only by a flushed copy (see replace).
func (w *fsWriter) renameIntoPlace() (placed bool, err error) {
	err = w.s.inDir(w.dir, func() error {
		return fsutil.IgnoringEINTR(func() error {
			return unix.Renameat2(unix.AT_FDCWD, w.tmp, unix.AT_FDCWD, w.path, unix.RENAME_NOREPLACE)
		})
	})
	switch err {
	case unix.EINVAL, unix.ENOSYS: // a filesystem without RENAME_NOREPLACE
		err = unix.EEXIST
		if _, serr := os.Lstat(w.path); errors.Is(serr, fs.ErrNotExist) {
			err = fsutil.IgnoringEINTR(func() error { return unix.Rename(w.tmp, w.path) })
		}
	}
	if err == unix.EEXIST {
		err = w.replace()
	}
	placed = err == nil
	// close(2) must not be retried on EINTR: the descriptor is gone either way.
	if cerr := unix.Close(w.fd); err == nil {
		err = cerr
	}
	return placed, err
}

var fsyncReplacement = func(fd int) error { // tests count it
	return fsutil.IgnoringEINTR(func() error { return unix.Fsync(fd) })
}

// replace renames the named temp file over an object already there, after flushing
// it. What is there may be durable and named by a recorded head (another writer of the
// same object finished first); replaced by an unflushed copy, a power cut could leave
// the name on an empty file. A repair replaces damaged objects the same way.
func (w *fsWriter) replace() error {
	if err := fsyncReplacement(w.fd); err != nil {
		return err
	}
	return fsutil.IgnoringEINTR(func() error { return unix.Rename(w.tmp, w.path) })
}

// inDir makes dir if it is not known to exist, then puts an object in it with put. A
// directory removed since it was made (by hand, under a running watch) is known to exist
// wrongly: put finds it missing, and it is made again for one more try.
func (s *FS) inDir(dir string, put func() error) error {
	if err := s.ensureDir(dir); err != nil {
		return err
	}
	err := put()
	if err == unix.ENOENT {
		s.madeDirs.forget(dir)
		if err := s.ensureDir(dir); err != nil {
			return err
		}
		err = put()
	}
	return err
}

// linkIntoPlace gives the unnamed temp file the object's name. A link never replaces,
// so when the name is taken (a repair replacing a damaged object, or another writer of
// the same object) the file is named in the temp directory and renamed over it.
func (w *fsWriter) linkIntoPlace() (placed bool, err error) {
	err = w.link()
	placed = err == nil
	// Closed only now: an unnamed file closed before its link is gone. close(2) is
	// never retried on EINTR; the descriptor is gone either way.
	if cerr := unix.Close(w.fd); err == nil {
		err = cerr
	}
	return placed, err
}

func (w *fsWriter) link() error {
	var err error
	if w.lib != nil {
		err = w.linkHeld()
	} else {
		if w.newLibrary {
			if err := w.s.ensureDir(filepath.Dir(w.dir)); err != nil {
				return err
			}
		}
		err = w.s.inDir(w.dir, func() error { return w.s.linkUnnamed(w.fd, unix.AT_FDCWD, w.path) })
	}
	if err != unix.EEXIST {
		return err
	}
	w.tmp = w.s.tempName(w.id)
	err = w.s.linkUnnamed(w.fd, unix.AT_FDCWD, w.tmp)
	if err == unix.EXDEV {
		// The object's filesystem is not seafbak-tmp's (storage/blocks mounted apart):
		// a dot-name beside the object, there only until the rename just below.
		w.tmp = w.dir + "/." + filepath.Base(w.s.tempName(w.id))
		err = w.s.linkUnnamed(w.fd, unix.AT_FDCWD, w.tmp)
	}
	if err != nil {
		return err
	}
	return w.replace()
}

// linkHeld names the file through the held library directory. A subdirectory removed
// since it was known to exist (by hand, during a long first backup) is made again for
// one more try, as inDir does for directories reached by path; the library directory
// itself removed stays an error, which Sync reports as ErrLibraryDirMoved.
func (w *fsWriter) linkHeld() error {
	sub, name := w.id[:2], w.path[len(w.lib.Path)+1:]
	for retry := true; ; retry = false {
		if err := w.s.ensureSubdir(w.lib, sub); err != nil {
			return err
		}
		err := w.s.linkUnnamed(w.fd, w.lib.FD, name)
		if err != unix.ENOENT || !retry {
			return err
		}
		w.lib.ClearSubdir(hexByte(sub))
	}
}

func (w *fsWriter) Abort() {
	if w.done {
		return
	}
	w.done = true
	unix.Close(w.fd)
	w.releaseLib()
	if w.tmp != "" {
		unix.Unlink(w.tmp)
	}
}

func (w *fsWriter) releaseLib() {
	if w.lib != nil {
		w.s.held.Done(w.lib)
		w.lib = nil
	}
}
