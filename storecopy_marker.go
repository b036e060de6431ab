package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"seafbak/internal/fsutil"
	"seafbak/sync/store"
)

// copyMarkerName sits in the root of a filesystem store while `store copy` writes into
// it, beside seafbak-tmp, where Seafile never looks.
const copyMarkerName = "seafbak-copy-unfinished"

// copyLockName sits beside it: a copy holds an exclusive flock on it from before the
// marker is written until the marker is removed, so two copies into one store never
// share the marker (the first to finish would remove it while the other still had
// unflushed objects).
const copyLockName = "seafbak-copy.lock"

// errCopyBusy: another process is copying into the same store.
var errCopyBusy = errors.New("another seafbak store copy is writing into this store; wait for it to finish (or stop it), then run this one again")

// bootIDPath names this boot of the kernel: a process that died leaves the page cache,
// and with it every write it made, to the kernel; only a new boot can have lost them.
var bootIDPath = "/proc/sys/kernel/random/boot_id"

// guardCopy protects a copy into a filesystem store, whose objects are made durable
// together at the end (batch durability): a power loss or OS crash mid-copy can leave a
// dir or commit renamed into place whose children never reached the disk, and a rerun
// would trust it as complete. So a marker naming this boot is written durably before
// the copy and removed once the destination is synced. A marker found from an earlier
// boot means exactly that crash: the copy then re-checks everything it finds in the
// destination (as --recheck). A marker from this boot means only the process died
// (kill -9, SIGTERM): every write is in the page cache, and presence stays trusted;
// but those writes are flushed only by a syncfs of the whole filesystem (the copy's own
// Sync flushes what it wrote), which done then makes before the marker goes.
// The re-check a crash makes owed is kept until a copy discharges it: the marker of
// the earlier boot stays as it is, so a copy killed while re-checking, one given only
// some libraries, or one where some failed leaves the next copy re-checking too.
// It returns whether to re-check, and done, to call after the destination's Sync
// succeeded; complete says the copy covered every library the state records, and none
// failed. Other stores (S3: durable once each PUT returned) need no guard.
func guardCopy(ctx context.Context, dst store.Store, log *slog.Logger) (recheck bool, done func(complete bool) error, err error) {
	fsStore, ok := dst.(*store.FS)
	if !ok {
		return false, func(bool) error { return nil }, nil
	}
	lockPath := filepath.Join(fsStore.Root(), copyLockName)
	lock, err := fsutil.Open(lockPath, unix.O_RDWR|unix.O_CREAT, 0o644)
	if err != nil {
		return false, nil, fmt.Errorf("destination store %s: %w", fsStore.Root(), &fs.PathError{Op: "open", Path: lockPath, Err: err})
	}
	err = fsutil.TryFlock(lock)
	if err != nil {
		unix.Close(lock)
		if err == unix.EWOULDBLOCK {
			return false, nil, fmt.Errorf("destination store %s: %w", fsStore.Root(), errCopyBusy)
		}
		return false, nil, fmt.Errorf("destination store %s: %w", fsStore.Root(), &fs.PathError{Op: "flock", Path: lockPath, Err: err})
	}
	// Held until done, or until the process ends (the kernel releases it).
	unlock := func() { fsutil.Unflock(lock); unix.Close(lock) }
	boot, err := os.ReadFile(bootIDPath)
	if err != nil {
		// Without a boot id, any unfinished copy may have met a crash.
		boot = []byte("unknown")
	}
	boot = bytes.TrimSpace(boot)
	path := filepath.Join(fsStore.Root(), copyMarkerName)
	old, err := os.ReadFile(path)
	died := err == nil
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		unlock()
		return false, nil, fmt.Errorf("destination store %s: %w", fsStore.Root(), err)
	case !bytes.Equal(bytes.TrimSpace(old), boot) || string(boot) == "unknown":
		recheck = true
		log.Warn("an earlier copy into this store did not finish before a reboot (power loss or OS crash?): re-checking every object already there",
			"store", fsStore.Root())
	}
	if !recheck {
		if err := fsutil.WriteFileAtomic(path, append(boot, '\n'), 0o644); err != nil {
			unlock()
			return false, nil, fmt.Errorf("destination store %s: %w", fsStore.Root(), err)
		}
	}
	done = func(complete bool) error {
		defer unlock()
		if recheck && !complete {
			log.Warn("the re-check owed since the reboot did not cover every library (some were not given, or failed): the next copy re-checks again",
				"store", fsStore.Root())
			return nil
		}
		if died {
			// What the dead copy wrote is trusted and in the page cache, not yet on disk.
			if err := fsStore.SyncAll(context.WithoutCancel(ctx)); err != nil {
				return err
			}
		}
		if err := os.Remove(path); err != nil {
			return err
		}
		return fsutil.SyncDir(fsStore.Root())
	}
	return recheck, done, nil
}
