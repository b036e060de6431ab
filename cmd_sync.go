package main

import (
	"errors"
	"fmt"
	"time"

	"seafbak/scan"
	seafsync "seafbak/sync"
	"seafbak/sync/object"
)

type syncCmd struct {
	Repos    []string      `arg:"" name:"repo-id" help:"Library ids to back up."`
	Force    bool          `help:"Skip objects the primary answered are missing or sent corrupt, back up the rest and record the holes; later syncs retry them. Never skips the head commit or what the primary did not answer."`
	LockWait time.Duration `help:"How long to wait for another seafbak syncing the same library (0: as long as it takes)." default:"0" placeholder:"DURATION" env:"SEAFBAK_LOCK_WAIT"`
	NoWait   bool          `help:"Do not wait for another seafbak syncing the same library: fail that library at once. Overrides --lock-wait and SEAFBAK_LOCK_WAIT." xor:"wait"`
}

func (c *syncCmd) Run(e *env) error {
	// A typo in one id must not leave the others half done: refuse them all first, like
	// restore and verify do.
	for _, id := range c.Repos {
		if err := object.CheckRepoID(id); err != nil {
			return cantRun(err)
		}
	}
	if c.LockWait < 0 {
		return usagef("--lock-wait (or SEAFBAK_LOCK_WAIT) %s: give a duration like 30s or 5m, or 0 to wait as long as it takes", c.LockWait)
	}
	w, err := wire(e, c.Force)
	if err != nil {
		return cantRun(err)
	}
	defer w.closeAll()
	w.engine.LockWait = c.LockWait
	if c.NoWait {
		w.engine.LockWait = -1
	}
	var errs []error
	for _, id := range c.Repos {
		start := time.Now()
		res, err := w.engine.Sync(e.ctx, id)
		if err != nil {
			errs = append(errs, err)
			if e.ctx.Err() != nil {
				break
			}
			continue
		}
		e.run.Bytes += res.Bytes
		e.run.Objects += int64(res.Commits + res.FSObjects + res.Blocks)
		fmt.Fprintln(e.stdout, describe(res, time.Since(start)))
	}
	if len(errs) > 0 {
		if allSetupErrors(errs) {
			// The hook's sync meets a missing schema or grant as scan does: as
			// configuration, not as libraries that failed.
			return cantRun(errors.Join(errs...))
		}
		return failed(errors.Join(errs...))
	}
	return nil
}

// describe is the one line sync prints per library.
func describe(r seafsync.Result, took time.Duration) string {
	switch {
	case r.Deleted:
		return fmt.Sprintf("%s %s: deleted on the primary; backup kept at head %s", r.RepoID, r.Name, r.Head)
	case r.UpToDate:
		return fmt.Sprintf("%s %s: up to date at %s", r.RepoID, r.Name, r.Head)
	}
	s := fmt.Sprintf("%s %s: synced to %s: %s, %s, %s, %s in %.2fs", r.RepoID, r.Name, r.Head,
		plural(r.Commits, "commit"), plural(r.FSObjects, "fs object"), plural(r.Blocks, "block"), humanBytes(r.Bytes), took.Seconds())
	if len(r.Holes) > 0 {
		s += fmt.Sprintf("; %d holes recorded (see seafbak status)", len(r.Holes))
	}
	if r.Truncated > 0 {
		s += fmt.Sprintf("; %d old commits without trees (history truncated on the primary)", r.Truncated)
	}
	return s
}

var humanBytes = scan.HumanBytes

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

func allSetupErrors(errs []error) bool {
	for _, err := range errs {
		if !setupError(err) {
			return false
		}
	}
	return true
}
