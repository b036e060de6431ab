package main

import (
	"errors"
	"fmt"

	"seafbak/internal/dbconn"
	"seafbak/internal/jsonout"
	"seafbak/restore"
	"seafbak/state"
	"seafbak/sync/object"
	"seafbak/sync/store"
)

type verifyCmd struct {
	Repos  []string `arg:"" optional:"" name:"repo-id" help:"Libraries to verify (default: every library in the state)."`
	Sample float64  `help:"Hash only this share of blocks (0 < P <= 1), e.g. 0.05 for a quick nightly run; every block's presence is still checked." default:"1"`
	JSON   bool     `name:"json" help:"Print one JSON document for scripts."`
	Repair bool     `help:"Fetch again from the primary every object found missing or damaged in the backup (verified as always, across the whole history and the old heads), then verify those libraries again. What the primary no longer has is reported."`
}

// openBackup opens what restore and verify read: the backup store and the state,
// creating neither (repair writes objects into a store that is there). A backup disk
// not mounted is an error naming the path, not an empty state or store made on the
// mount point: that would hide the mount point from the next scan's check, which
// would then copy every library onto the wrong disk. rows, when the backup database is
// configured, lets that check see heads the database holds.
func openBackup(e *env, repair bool, rows *store.Rows) (store.Store, *state.Dir, error) {
	st, err := state.OpenExisting(e.cfg.State)
	if err != nil {
		return nil, nil, err
	}
	if err := checkStoreThere(e.ctx, e.cfg, st, rows, false); err != nil {
		return nil, nil, err
	}
	bs, err := openStore(e.ctx, e.cfg, !repair)
	if err != nil {
		return nil, nil, err
	}
	return bs, st, nil
}

func (c *verifyCmd) Run(e *env) error {
	if !(c.Sample > 0 && c.Sample <= 1) { // NaN too
		return usagef("--sample must be more than 0 and at most 1")
	}
	for _, id := range c.Repos {
		if err := object.CheckRepoID(id); err != nil {
			return cantRun(err)
		}
	}
	var rows *store.Rows
	var dbHeads map[string]string
	if e.cfg.Backup.DB != nil {
		bdb, err := dbconn.Open(e.ctx, "backup", e.cfg.Backup.DB)
		if err != nil {
			return cantRun(err)
		}
		defer bdb.Close()
		rows = store.NewRows(bdb)
		if dbHeads, err = rows.Heads(e.ctx); err != nil {
			return cantRun(err)
		}
	}
	bs, st, err := openBackup(e, c.Repair, rows)
	if err != nil {
		return cantRun(err)
	}
	opts := restore.VerifyOptions{Store: bs, State: st, Log: e.log, Libraries: c.Repos, Sample: c.Sample, Parallel: 0, DBHeads: dbHeads}
	if f := terminal(e); f != nil {
		opts.Progress = newByteBar(f, "verify")
	}
	rep, err := restore.Verify(e.ctx, opts)
	if err != nil {
		return cantRun(err)
	}
	if len(rep.Libraries) == 0 && len(c.Repos) == 0 {
		// Nothing verified is no pass: a nightly verify against a state on a disk not
		// mounted (made anew, empty) would have said all was well.
		return cantRun(fmt.Errorf("the state %s records no library and the backup database no head: nothing to verify (is this your backup's state directory, and is its disk mounted?)", st.Root()))
	}
	e.run.Bytes, e.run.Objects = rep.Bytes, rep.Commits+rep.FSObjects+rep.Blocks
	var repairs []repairOutcome
	var repairErr error
	if c.Repair && !rep.OK() {
		// A repair that could not run (the primary unreachable) still prints the
		// report: it is what names the damage.
		if repairs, err = repair(e, opts, rep); err != nil {
			repairErr = fmt.Errorf("--repair: %w", err)
		}
	}
	holes := withHoles(rep)
	if c.JSON {
		// A library at a time: at 100 000 libraries the report is tens of MB.
		rest := *rep
		rest.Libraries = nil
		libs := rep.Libraries
		if libs == nil {
			libs = []restore.LibraryReport{} // [], not null
		}
		repairError := ""
		if repairErr != nil {
			repairError = repairErr.Error()
		}
		err := jsonout.WriteIndented(e.stdout, struct {
			*restore.VerifyReport
			Repairs     []repairOutcome `json:"repairs,omitempty"`
			RepairError string          `json:"repair_error,omitempty"`
			WithHoles   int             `json:"with_holes"`
		}{&rest, repairs, repairError, holes}, "libraries", libs)
		if err != nil {
			return cantRun(err)
		}
	} else {
		printRepairs(e, repairs)
		printVerify(e, rep)
		if holes > 0 {
			fmt.Fprintf(e.stdout, "seafbak verify: %d libraries have holes (objects the primary could not give): their backup is incomplete until the primary is repaired and they are synced again (see seafbak status)\n", holes)
		}
	}
	if !rep.OK() || holes > 0 {
		// One line on stderr besides the report on stdout: a cron line that sends
		// stdout away still mails why verify failed.
		bad := 0
		for i := range rep.Libraries {
			if !rep.Libraries[i].OK() {
				bad++
			}
		}
		return failed(errors.Join(repairErr, fmt.Errorf("%d libraries with objects missing or damaged in the backup, %d with holes (the report on stdout names them; seafbak verify --repair fetches what the primary still has)", bad, holes)))
	}
	if repairErr != nil {
		return failed(repairErr)
	}
	return nil
}

// withHoles counts the libraries, still on the primary, whose backup has holes: verify
// passes them (the holes are known), but the backup of them is not whole.
func withHoles(rep *restore.VerifyReport) int {
	n := 0
	for _, l := range rep.Libraries {
		if len(l.Holes) > 0 && l.Deleted == nil {
			n++
		}
	}
	return n
}

// repairOutcome is what verify --repair did for one library.
type repairOutcome struct {
	RepoID   string `json:"repo_id"`
	Name     string `json:"name,omitempty"`
	Repaired bool   `json:"repaired"`
	Objects  int    `json:"objects_fetched"`
	Error    string `json:"error,omitempty"`
}

// repair re-syncs every library verify found damaged, re-checking every object against
// its id and fetching again what is missing or damaged, then verifies those libraries
// again and puts their new reports into rep.
func repair(e *env, opts restore.VerifyOptions, rep *restore.VerifyReport) ([]repairOutcome, error) {
	w, err := wire(e, false)
	if err != nil {
		return nil, err
	}
	defer w.closeAll()
	w.engine.Recheck = true
	var outcomes []repairOutcome
	var ids []string
	for _, l := range rep.Libraries {
		if l.OK() {
			continue
		}
		o := repairOutcome{RepoID: l.RepoID, Name: l.Name}
		if l.Deleted != nil {
			o.Error = "deleted on the primary: its objects cannot be fetched again"
			outcomes = append(outcomes, o)
			continue
		}
		res, err := w.engine.Sync(e.ctx, l.RepoID)
		switch {
		case err != nil:
			o.Error = err.Error()
		case res.Deleted:
			o.Error = "deleted on the primary: its objects cannot be fetched again"
		default:
			o.Repaired = true
			o.Objects = res.Commits + res.FSObjects + res.Blocks
		}
		outcomes = append(outcomes, o)
		ids = append(ids, l.RepoID)
	}
	if len(ids) == 0 {
		return outcomes, nil
	}
	again := opts
	again.Libraries = ids
	if w.engine.Rows != nil {
		if again.DBHeads, err = w.engine.Rows.Heads(e.ctx); err != nil {
			return outcomes, err
		}
	}
	after, err := restore.Verify(e.ctx, again)
	if err != nil {
		return outcomes, err
	}
	byID := map[string]restore.LibraryReport{}
	for _, l := range after.Libraries {
		byID[l.RepoID] = l
	}
	for i, l := range rep.Libraries {
		if n, ok := byID[l.RepoID]; ok {
			rep.Libraries[i] = n
		}
	}
	return outcomes, nil
}

func printRepairs(e *env, outcomes []repairOutcome) {
	for _, o := range outcomes {
		if o.Repaired {
			fmt.Fprintf(e.stdout, "%s %s: repaired from the primary (%d objects fetched again)\n", o.RepoID, o.Name, o.Objects)
		} else {
			fmt.Fprintf(e.stdout, "%s %s: could not repair: %s\n", o.RepoID, o.Name, o.Error)
		}
	}
}

func printVerify(e *env, rep *restore.VerifyReport) {
	w := e.stdout
	bad := 0
	for _, l := range rep.Libraries {
		if l.OK() {
			continue
		}
		bad++
		fmt.Fprintf(w, "%s %s: FAILED", l.RepoID, l.Name)
		if l.Error != "" {
			fmt.Fprintf(w, ": %s", l.Error)
		}
		fmt.Fprintln(w)
		for _, p := range l.Problems {
			state := "damaged"
			if p.Missing {
				state = "missing"
			}
			where := "" // a commit is where it is: no path, no commit holding it
			if p.Path != "" {
				where += fmt.Sprintf(" at %q", p.Path)
			}
			if p.Commit != "" {
				where += " in commit " + p.Commit
			}
			fmt.Fprintf(w, "  %s %s %s%s: %s\n", p.Kind, p.ID, state, where, p.Error)
		}
		for _, h := range l.Heads {
			if !h.Complete && !h.Expected {
				fmt.Fprintf(w, "  head %s (%s) is not complete in the backup\n", h.Commit, h.From)
			}
		}
	}
	for _, l := range rep.Libraries {
		if len(l.Expected) > 0 || len(l.Holes) > 0 || len(l.Truncated) > 0 {
			fmt.Fprintf(w, "%s %s: %d known holes, %d commits with truncated history (expected, see status --json)\n", l.RepoID, l.Name, len(l.Holes), len(l.Truncated))
		}
	}
	hashed := "every block hashed"
	if rep.Sample < 1 {
		hashed = fmt.Sprintf("%d of %d blocks hashed (sample %.0f%%)", rep.BlocksHashed, rep.Blocks, rep.Sample*100)
	}
	mibs := 0.0
	if rep.Seconds > 0 {
		mibs = float64(rep.Bytes) / (1 << 20) / rep.Seconds
	}
	fmt.Fprintf(w, "seafbak verify: %d libraries, %d failed; %d commits, %d fs objects, %d blocks (%s), %s read in %.1fs (%.0f MiB/s)\n",
		len(rep.Libraries), bad, rep.Commits, rep.FSObjects, rep.Blocks, hashed, humanBytes(rep.Bytes), rep.Seconds, mibs)
}
