package state

import (
	"path/filepath"
	"runtime"
	"strings"
	gosync "sync"
	"unsafe"

	"golang.org/x/sys/unix"

	"seafbak/internal/fsutil"
)

// markerView keeps the names in dirty/ in memory, told of every change by inotify, so
// the two marker questions of each sync read a map instead of listing the directory. A
// scan keeps hundreds of markers there while it syncs many small libraries at once, and
// ext4 hashes and sorts every name of an indexed directory at each listing: the listings
// were 8–10% of a first scan's CPU (issue 10).
//
// It answers as a fresh listing would. The kernel queues an inotify event inside the
// creating or removing call, before that call returns, so once another process's marker
// is made, the event is in this process's queue; a question drains the queue first, and
// so sees every marker made (and misses every marker cleared) before it was asked. The
// watch is added before the first listing, and events are applied in order: each name's
// last event, or the listing for a name with none since, gives its presence now. A
// queue that overflowed drops events, so the view lists the directory again.
//
// Where inotify is unavailable (no instance left: the kernel allows each user 128 by
// default) or dirty/ is removed, replaced or moved under the watch (also with the state
// directory around it, which tells the watch nothing), questions list dirty/ as before, through the shared listing of markersOn. So they do on any filesystem not
// known to be local (localFilesystem): on NFS, CIFS or FUSE, inotify reports only this
// machine's changes, and a state directory shared between hosts would hide the other
// host's markers.
type markerView struct {
	dir      string
	dev, ino uint64 // the directory watched: still the one at dir?

	mu     gosync.Mutex
	fd     int                            // the inotify instance; -1 once given up
	stores map[string]map[string]struct{} // store id → writers with a marker on it
	buf    []byte
}

// maxInotifyEvent is the largest event a read can return: the header and a name of
// NAME_MAX bytes with its NUL.
const maxInotifyEvent = unix.SizeofInotifyEvent + unix.NAME_MAX + 1

// inotifyMask is what changes dirty/'s names, and what ends the watch's meaning.
const inotifyMask = unix.IN_CREATE | unix.IN_DELETE | unix.IN_MOVED_FROM | unix.IN_MOVED_TO |
	unix.IN_DELETE_SELF | unix.IN_MOVE_SELF | unix.IN_ONLYDIR

// inotifyInit is unix.InotifyInit1; tests make it fail to exercise the listings.
var inotifyInit = unix.InotifyInit1

// localFilesystem reports whether dir is on a filesystem whose every change passes
// through this kernel, so that inotify sees them all. A variable for tests.
var localFilesystem = func(dir string) bool {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return false
	}
	switch uint32(st.Type) {
	case unix.EXT4_SUPER_MAGIC, unix.XFS_SUPER_MAGIC, unix.BTRFS_SUPER_MAGIC, unix.TMPFS_MAGIC,
		unix.F2FS_SUPER_MAGIC, zfsSuperMagic:
		return true
	}
	return false
}

// zfsSuperMagic is OpenZFS's f_type, which x/sys/unix does not name.
const zfsSuperMagic = 0x2fc12fc1

// newMarkerView watches dir and lists it once. It returns nil when inotify cannot watch
// it; the caller then lists the directory for every question.
func newMarkerView(dir string) *markerView {
	if !localFilesystem(dir) {
		return nil
	}
	fd, err := inotifyInit(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return nil
	}
	if _, err := unix.InotifyAddWatch(fd, dir, inotifyMask); err != nil {
		unix.Close(fd)
		return nil
	}
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		unix.Close(fd)
		return nil
	}
	v := &markerView{dir: dir, dev: st.Dev, ino: st.Ino, fd: fd, buf: make([]byte, 64<<10)}
	if err := v.relist(); err != nil {
		v.stop()
		return nil
	}
	return v
}

// relist replaces the view with a listing of the directory. Events still queued are
// applied after it, which is right whatever they say: see markerView.
func (v *markerView) relist() error {
	names, err := listNames(v.dir)
	if err != nil {
		return err
	}
	v.stores = map[string]map[string]struct{}{}
	for _, name := range names {
		v.add(name)
	}
	return nil
}

// splitMarker splits a marker's name into the store and the writer (library ids carry
// no dot). Other names are not markers.
func splitMarker(name string) (store, writer string, ok bool) {
	store, writer, ok = strings.Cut(name, ".")
	return store, writer, ok && store != "" && writer != ""
}

func (v *markerView) add(name string) {
	store, writer, ok := splitMarker(name)
	if !ok {
		return
	}
	w := v.stores[store]
	if w == nil {
		w = map[string]struct{}{}
		v.stores[store] = w
	}
	w[writer] = struct{}{}
}

func (v *markerView) remove(name string) {
	store, writer, ok := splitMarker(name)
	if !ok {
		return
	}
	if w := v.stores[store]; w != nil {
		delete(w, writer)
		if len(w) == 0 {
			delete(v.stores, store)
		}
	}
}

// stop gives up the watch for good; the caller lists the directory from then on.
func (v *markerView) stop() {
	if v.fd >= 0 {
		unix.Close(v.fd)
		v.fd = -1
	}
}

// writers returns the writers with a marker on store as dirty/ holds them now; ok is
// false once the view has given up.
func (v *markerView) writers(store string) (writers []string, ok bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.fd < 0 {
		return nil, false
	}
	if !v.stillAt() || !v.drain() {
		// A view that cannot follow is stale: listings answer from now on, and
		// report their own errors.
		v.stop()
		return nil, false
	}
	for w := range v.stores[store] {
		writers = append(writers, w)
	}
	return writers, true
}

// stillAt reports whether the directory watched is still the one at the view's path. A
// state directory moved as a whole (to a new disk, under a running watch) sends the
// watch of its dirty/ no event, and markers other processes make in the new one would
// go unseen: one stat per question costs far less than the listing it saves.
func (v *markerView) stillAt() bool {
	var st unix.Stat_t
	return fsutil.IgnoringEINTR(func() error { return unix.Stat(v.dir, &st) }) == nil && st.Dev == v.dev && st.Ino == v.ino
}

// drain applies every queued event. It reports false when the view can no longer
// follow dirty/: the directory is gone or moved, the queue cannot be read, or a listing
// after an overflow failed.
func (v *markerView) drain() bool {
	for {
		n, err := unix.Read(v.fd, v.buf)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			return true
		case err != nil || n < unix.SizeofInotifyEvent:
			return false
		}
		overflowed := false
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&v.buf[off]))
			end := off + unix.SizeofInotifyEvent + int(ev.Len)
			if end > n {
				return false
			}
			name := strings.TrimRight(string(v.buf[off+unix.SizeofInotifyEvent:end]), "\x00")
			off = end
			switch {
			case ev.Mask&unix.IN_Q_OVERFLOW != 0:
				overflowed = true
			case ev.Mask&(unix.IN_DELETE_SELF|unix.IN_MOVE_SELF|unix.IN_IGNORED|unix.IN_UNMOUNT) != 0:
				// dirty/ itself is gone or moved: the watch says nothing about the
				// directory at the path any more.
				return false
			case ev.Mask&(unix.IN_CREATE|unix.IN_MOVED_TO) != 0:
				v.add(name)
			case ev.Mask&(unix.IN_DELETE|unix.IN_MOVED_FROM) != 0:
				v.remove(name)
			}
		}
		if overflowed {
			// Events were lost: what is queued now comes after the listing below
			// starts, or repeats what it sees.
			if v.relist() != nil {
				return false
			}
			continue
		}
		if n <= len(v.buf)-maxInotifyEvent {
			// Room was left for another event: the queue was empty when read, after
			// the question began. No read to learn it again.
			return true
		}
	}
}

// markerViewFor returns d's view of dirty/, starting it on first use; nil means list.
func (d *Dir) markerViewFor() *markerView {
	d.viewOnce.Do(func() {
		d.view = newMarkerView(filepath.Join(d.root, "dirty"))
		if d.view != nil {
			// Tests open many state directories in one process; the instance goes
			// with its Dir, not at exit.
			runtime.AddCleanup(d, func(v *markerView) {
				v.mu.Lock()
				defer v.mu.Unlock()
				v.stop()
			}, d.view)
		}
	})
	return d.view
}
