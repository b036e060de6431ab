package main

import (
	"fmt"

	"seafbak/scan"
	"seafbak/sync/store"
)

type scanCmd struct{}

func (c *scanCmd) Run(e *env) error {
	w, err := wire(e, false)
	if err != nil {
		return cantRun(err)
	}
	defer w.closeAll()
	s := &scan.Scanner{Engine: w.engine, Catalog: w.catalog, State: w.state, Log: e.log, Parallel: e.cfg.Parallel}
	sum, err := s.Run(e.ctx)
	e.run.Bytes = sum.Bytes
	if err != nil {
		return cantRun(err)
	}
	// Every library was compared with the primary: unchanged ones are known current.
	e.run.ComparedAll = true
	fmt.Fprintln(e.stdout, sum.String())
	if sum.StoreFull {
		return failed(fmt.Errorf("%w; %d libraries were left for the next run", store.ErrNoSpace, sum.NotTried))
	}
	if sum.Failed > 0 {
		// Each failure was logged with its library; the summary line says how many.
		return reported("some libraries failed")
	}
	return nil
}
