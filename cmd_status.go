package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"seafbak/config"
	"seafbak/internal/dbconn"
	"seafbak/internal/fsutil"
	"seafbak/scan"
	"seafbak/state"
	"seafbak/sync/object"
	"seafbak/sync/primary"
	"seafbak/sync/store"
)

type statusCmd struct {
	JSON      bool `name:"json" help:"Print one JSON document for scripts (adds every hole, truncated history and deleted libraries)."`
	Offline   bool `help:"Use the state alone, without asking the primary (waiting then means never synced)."`
	IfChanged bool `name:"if-changed" help:"For cron: print the status and exit 1 only when the unhealthy libraries (failed, with holes, and their errors) differ from the last --if-changed run; otherwise print nothing and exit 0."`
}

// healthFile, in the state dir, holds the unhealthy libraries as the last
// status --if-changed saw them (see health).
const healthFile = "status-if-changed"

func (c *statusCmd) Run(e *env) error {
	st, err := state.OpenExisting(e.cfg.State)
	if err != nil {
		return cantRun(err)
	}
	rep, err := c.report(e, st)
	if c.IfChanged {
		return c.ifChanged(e, st, rep, err)
	}
	if err != nil {
		return err
	}
	return c.print(e, rep)
}

func (c *statusCmd) report(e *env, st *state.Dir) (*scan.Report, error) {
	// A backup disk that did not mount leaves the state saying all is backed up; the
	// store itself must be there for that to be true (and step 1 of a failover is
	// status --offline).
	if err := checkStoreThere(e.ctx, e.cfg, st, nil, true); err != nil {
		return nil, cantRun(err)
	}
	var cat primary.Catalog
	if !c.Offline {
		pdb, err := dbconn.Open(e.ctx, "primary", e.cfg.Primary.DB)
		if err != nil {
			return nil, cantRun(fmt.Errorf("%w (use --offline to report from the state alone)", err))
		}
		defer pdb.Close()
		cat = primary.NewDB(pdb)
	}
	rep, err := scan.StatusTimed(e.ctx, cat, st, backedUpHeadTime(e.ctx, e.cfg))
	if err != nil {
		return nil, cantRun(err)
	}
	if c.Offline && rep.Total == 0 && len(rep.Deleted) == 0 {
		// Step 1 of a failover must not say "0 libraries, all healthy" for a state
		// directory made anew on a disk that did not mount.
		return nil, cantRun(fmt.Errorf("the state %s records no library: nothing to report from it (is this your backup's state directory, and is its disk mounted?)", st.Root()))
	}
	return rep, nil
}

func (c *statusCmd) print(e *env, rep *scan.Report) error {
	var err error
	if c.JSON {
		err = rep.WriteJSON(e.stdout)
	} else {
		err = rep.WriteText(e.stdout)
	}
	if err != nil {
		return cantRun(err)
	}
	if !rep.Healthy() {
		return reported("some libraries failed or have holes, or the last scan could not run")
	}
	return nil
}

// backedUpHeadTime reads a commit's time from the backup store, opened read only
// (status never writes there). A commit it cannot read or parse has no time: status
// leaves the figure out rather than fail; so does a store it cannot open.
func backedUpHeadTime(ctx context.Context, cfg *config.Config) scan.HeadTimer {
	fs, err := openStore(ctx, cfg, true)
	if err != nil {
		return nil
	}
	return func(repoID, commitID string) (time.Time, bool) {
		raw, err := fs.Get(ctx, object.KindCommit, repoID, commitID)
		if err != nil {
			return time.Time{}, false
		}
		c, err := object.ParseCommit(raw, commitID, repoID)
		if err != nil || c.Ctime <= 0 {
			return time.Time{}, false
		}
		return time.Unix(c.Ctime, 0).UTC(), true
	}
}

// ifChanged prints the report (or the error that kept status from making one) only
// when the health it shows differs from what the previous --if-changed run recorded, so
// cron mails once when a library starts failing, once when its error changes and once
// when it recovers, not every few minutes. A status that could not tell (the primary's
// database down) is a health of its own: reported once, and again when it changes.
func (c *statusCmd) ifChanged(e *env, st *state.Dir, rep *scan.Report, rerr error) error {
	var now string
	if rerr != nil {
		now = "cannot tell\t" + errorLine(rerr.Error()) + "\n"
	} else {
		var err error
		if now, err = health(rep, st); err != nil {
			return cantRun(err)
		}
	}
	path := filepath.Join(st.Root(), healthFile)
	before, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return cantRun(fmt.Errorf("status --if-changed: %w", err))
	}
	// No file yet: the last known health is "all healthy" (nothing to mail about).
	if bytes.Equal(before, []byte(now)) {
		return nil
	}
	if rerr == nil {
		if perr := c.print(e, rep); perr != nil && !isReported(perr) {
			return perr
		}
	}
	if err := fsutil.WriteFileAtomic(path, []byte(now), 0o640); err != nil {
		// The report's own error first: it is why the admin is mailed.
		return cantRun(errors.Join(rerr, fmt.Errorf("status --if-changed: record the health in %s: %w (the next run reports again)", path, err)))
	}
	if rerr != nil {
		return rerr
	}
	e.run.ChangeTold = true
	return reported("the libraries' health changed since the last status --if-changed")
}

// health is the report's unhealthy libraries, one sorted line each: failed ones with
// the first line of their error (errorLine), then those with holes. A failed library
// that a sync is retrying right now (status shows it syncing) still counts as failed
// with its recorded error, so a retry does not look like a change of health.
func health(rep *scan.Report, st *state.Dir) (string, error) {
	var lines []string
	failed := func(f scan.Entry) {
		class := f.ErrorClass
		if class == "" {
			// A record from before classes were kept: told by its text.
			switch {
			case strings.Contains(f.Error, store.ErrNoSpace.Error()):
				class = state.FailureStoreFull
			case strings.Contains(firstLine(f.Error), primary.ErrUnreachable.Error()):
				class = state.FailurePrimaryUnreachable
			}
		}
		switch class {
		case state.FailureStoreFull:
			// A full backup store fails every library it meets, and each scan meets
			// more of them (it stops starting syncs at the first): one line for the
			// store, so the health changes when it fills and when it has room again,
			// not at every scan.
			lines = append(lines, "full\t"+store.ErrNoSpace.Error())
		case state.FailurePrimaryUnreachable, state.FailureStoreUnavailable:
			// An outage names whichever request gave up last (a block id, an object's
			// key, a count of restarts), which differs at each retry: one line per
			// library, or cron mailed every retry.
			lines = append(lines, "failed\t"+f.RepoID+"\t"+class)
		default:
			lines = append(lines, "failed\t"+f.RepoID+"\t"+errorLine(f.Error))
		}
	}
	for _, f := range rep.FailedList {
		failed(f)
	}
	for _, s := range rep.SyncingList {
		if s.Error != "" { // failed, being retried
			failed(s)
		}
	}
	if f := rep.ScanFailed; f != nil {
		lines = append(lines, "scan\t"+errorLine(f.Error))
	}
	if rep.FailedOver != nil {
		lines = append(lines, "failed over")
	}
	for _, h := range rep.Holes {
		if h.DeletedAt == nil { // as Report.WithHoles counts them
			lines = append(lines, "holes\t"+h.RepoID)
		}
	}
	slices.Sort(lines)
	lines = slices.Compact(lines)
	if len(lines) == 0 {
		return "", nil
	}
	return strings.Join(lines, "\n") + "\n", nil
}

// localPort matches the local end of a Go network error ("read tcp
// 10.0.0.2:41234->10.0.0.3:8082: ...", or a resolver's "read udp ..."), whose port is
// new on every connection.
var localPort = regexp.MustCompile(`((?:tcp|udp)[46]? \S+):\d+->`)

// errorLine is the part of an error that tells a change of health: its first line,
// without what differs on every attempt of the same failure (a connection's local port).
func errorLine(s string) string {
	return localPort.ReplaceAllString(firstLine(s), "$1:*->")
}

// isReported tells an "already printed, exit 1" error from a real one.
func isReported(err error) bool {
	var ce *cliError
	return errors.As(err, &ce) && ce.printed
}
