package main

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"seafbak/internal/fsutil"
	"seafbak/sync/store"
)

// copyMarkerName sits in the root of a filesystem store while `store copy` writes into
// it, beside seafbak-tmp, where Seafile never looks.
const copyMarkerName = "seafbak-copy-unfinished"

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
// (kill -9, SIGTERM): every write is in the page cache, and presence stays trusted.
// It returns whether to re-check, and done, to call after the destination's Sync
// succeeded. Other stores (S3: durable once each PUT returned) need no guard.
func guardCopy(dst store.Store, log *slog.Logger) (recheck bool, done func() error, err error) {
	fsStore, ok := dst.(*store.FS)
	if !ok {
		return false, func() error { return nil }, nil
	}
	boot, err := os.ReadFile(bootIDPath)
	if err != nil {
		// Without a boot id, any unfinished copy may have met a crash.
		boot = []byte("unknown")
	}
	boot = bytes.TrimSpace(boot)
	path := filepath.Join(fsStore.Root(), copyMarkerName)
	old, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return false, nil, fmt.Errorf("destination store %s: %w", fsStore.Root(), err)
	case !bytes.Equal(bytes.TrimSpace(old), boot) || string(boot) == "unknown":
		recheck = true
		log.Warn("an earlier copy into this store did not finish before a reboot (power loss or OS crash?): re-checking every object already there",
			"store", fsStore.Root())
	}
	if err := fsutil.WriteFileAtomic(path, append(boot, '\n'), 0o644); err != nil {
		return false, nil, fmt.Errorf("destination store %s: %w", fsStore.Root(), err)
	}
	done = func() error {
		if err := os.Remove(path); err != nil {
			return err
		}
		return fsutil.SyncDir(fsStore.Root())
	}
	return recheck, done, nil
}
