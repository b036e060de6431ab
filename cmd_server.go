package main

import "fmt"

type restoreServerCmd struct {
	Dump string `help:"The dump set to load (a directory under dump.dir); default: the latest." placeholder:"SET"`
	Yes  bool   `help:"Overwrite backup databases that already hold Seafile data."`
}

func (c *restoreServerCmd) run(e *env) int {
	fmt.Fprintln(e.stderr, "seafbak restore server: not built yet")
	return exitCantRun
}
