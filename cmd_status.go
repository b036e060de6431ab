package main

import (
	"encoding/json"
	"fmt"

	"seafbak/scan"
	"seafbak/state"
	"seafbak/sync/primary"
)

type statusCmd struct {
	JSON    bool `name:"json" help:"Print one JSON document for scripts (adds every hole, truncated history and deleted libraries)."`
	Offline bool `help:"Use the state alone, without asking the primary (waiting then means never synced)."`
}

func (c *statusCmd) Run(e *env) error {
	st, err := state.Open(e.cfg.State)
	if err != nil {
		return cantRun(err)
	}
	var cat primary.Catalog
	if !c.Offline {
		pdb, err := openDB(e.ctx, "primary", e.cfg.Primary.DB)
		if err != nil {
			return cantRun(fmt.Errorf("%w (use --offline to report from the state alone)", err))
		}
		defer pdb.Close()
		cat = primary.NewDB(pdb)
	}
	rep, err := scan.Status(e.ctx, cat, st)
	if err != nil {
		return cantRun(err)
	}
	if c.JSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		err = enc.Encode(rep)
	} else {
		err = rep.WriteText(e.stdout)
	}
	if err != nil {
		return cantRun(err)
	}
	if !rep.Healthy() {
		return reported("some libraries failed or have holes")
	}
	return nil
}
