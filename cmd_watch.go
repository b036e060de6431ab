package main

import (
	"time"

	"seafbak/watch"
)

type watchCmd struct {
	Poll time.Duration `default:"2s" help:"How often the primary's library heads are listed (one query)."`
}

func (c *watchCmd) Run(e *env) error {
	if c.Poll <= 0 {
		return usagef("--poll must be positive, not %s", c.Poll)
	}
	w, err := wire(e, false)
	if err != nil {
		return cantRun(err)
	}
	defer w.closeAll()
	// A terminal's progress bar would be shared by every sync for as long as watch runs.
	w.engine.Progress = nil
	wt := &watch.Watcher{
		Engine: w.engine, Catalog: w.catalog, State: w.state, Log: e.log,
		Poll: c.Poll, Parallel: e.cfg.Parallel,
	}
	if err := wt.Run(e.ctx); err != nil {
		return cantRun(err)
	}
	// Run returns nil only once ctx ended: SIGTERM or SIGINT, the normal stop.
	return errStoppedAsAsked
}
