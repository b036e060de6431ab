package main

import (
	"errors"
	"fmt"
	"time"

	"seafbak/scan"
	"seafbak/state"
	"seafbak/sync/store"
)

type scanCmd struct{}

func (c *scanCmd) Run(e *env) error {
	st, err := state.Open(e.cfg.State)
	if err != nil {
		return cantRun(err)
	}
	lock, err := st.TryScanLock()
	if errors.Is(err, state.ErrScanRunning) {
		// Not a failure: that scan is doing this one's work (cron starting one every
		// 5 minutes beside a first backup of hours).
		fmt.Fprintf(e.stdout, "seafbak scan: %v; leaving the libraries to it\n", err)
		return nil
	}
	if err != nil {
		return cantRun(err)
	}
	defer lock.Unlock()
	w, err := wireState(e, st, false)
	if err != nil {
		return recordScanFailure(e, st, cantRun(err))
	}
	defer w.closeAll()
	s := &scan.Scanner{Engine: w.engine, Catalog: w.catalog, State: w.state, Log: e.log, Parallel: e.cfg.Parallel}
	sum, err := s.Run(e.ctx)
	e.run.Bytes, e.run.Objects = sum.Bytes, sum.Objects
	if err != nil {
		return recordScanFailure(e, st, cantRun(err))
	}
	// Every library was compared with the primary: unchanged ones are known current.
	// Not when some that had changed were left to another seafbak still syncing them
	// (busy) or to the next run (the store full): the metrics would count those
	// current as of this scan, and their lag alert would never fire while, say, a hung
	// sync held a lock for days. Nor when a failure could not be recorded.
	e.run.ComparedAll = sum.Busy == 0 && sum.NotTried == 0 && sum.Unrecorded == 0
	fmt.Fprintln(e.stdout, sum.String())
	if sum.StoreFull {
		return failed(fmt.Errorf("%w; %d libraries were left for the next run", store.ErrNoSpace, sum.NotTried))
	}
	if sum.Failed > 0 {
		// A database set up short of what seafbak needs (schema, grants) fails every
		// library alike: a configuration error, exit 2 with its fix, as sync does.
		var errs []error
		for _, f := range sum.Failures {
			errs = append(errs, f.Err)
		}
		if errs[0] != nil && allSetupErrors(errs) {
			return cantRun(errs[0])
		}
		// Each failure was logged with its library; the summary line says how many.
		return reported("some libraries failed")
	}
	return nil
}

// recordScanFailure records in the state that this scan could not run, so that status
// (and the cron recipe's status --if-changed) tells it (see state.ScanFailure). An
// interrupted scan is not a failure of its own. scan.Compared removes the record.
func recordScanFailure(e *env, st *state.Dir, err error) error {
	if e.ctx.Err() != nil {
		return err
	}
	if serr := st.SaveScanFailure(&state.ScanFailure{At: time.Now().UTC(), Error: err.Error()}); serr != nil {
		e.log.Warn("cannot record that the scan could not run", "err", serr)
	}
	return err
}
