package main

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"

	"seafbak/dump"
	"seafbak/state"
)

type dumpCmd struct{}

// primaryDatabases names the primary's databases to dump: the seafile database of
// primary.db and, on the same server with the same account, ccnet and seahub.
func primaryDatabases(e *env) map[dump.Role]*mysql.Config {
	dbs := map[dump.Role]*mysql.Config{dump.Seafile: e.cfg.Primary.DB}
	for role, name := range map[dump.Role]string{dump.Ccnet: e.cfg.Primary.CcnetDB, dump.Seahub: e.cfg.Primary.SeahubDB} {
		if name != "" {
			c := e.cfg.Primary.DB.Clone()
			c.DBName = name
			dbs[role] = c
		}
	}
	return dbs
}

// missingKeys names the config keys of the primary's databases a dump leaves out.
func missingKeys(e *env) []string {
	var missing []string
	if e.cfg.Primary.CcnetDB == "" {
		missing = append(missing, "primary.ccnet_db")
	}
	if e.cfg.Primary.SeahubDB == "" {
		missing = append(missing, "primary.seahub_db")
	}
	return missing
}

func (c *dumpCmd) Run(e *env) error {
	if e.cfg.Dump.Dir == "" {
		return cantRun(fmt.Errorf("config %s: dump.dir: not set; add e.g. this line: dump: {dir: /var/backups/seafbak, keep: 7}", e.cfg.Path))
	}
	st, err := state.Open(e.cfg.State)
	if err != nil {
		return cantRun(err)
	}
	start := time.Now()
	// Run makes dump.dir itself: 0700 (dumps hold password hashes), durably.
	set, err := dump.Run(e.ctx, dump.Options{Dir: e.cfg.Dump.Dir, Keep: e.cfg.Dump.Keep, Databases: primaryDatabases(e), Log: e.log})
	if set.Name == "" {
		if errors.Is(err, dump.ErrNotStarted) {
			return cantRun(err) // nothing was done: exit 2, as every command
		}
		return failed(err)
	}
	var total int64
	var parts, roles []string
	for _, role := range set.Roles() {
		f := set.Manifest.Files[role]
		total += f.Size
		roles = append(roles, string(role))
		parts = append(parts, fmt.Sprintf("%s %s", role, humanBytes(f.Size)))
	}
	e.run.Bytes = total
	if serr := st.SaveDump(state.Dump{Set: set.Name, Dir: set.Dir, Finished: set.Manifest.Finished, Bytes: total, Roles: roles}); serr != nil {
		return failed(serr)
	}
	fmt.Fprintf(e.stdout, "seafbak dump: %s (%s) in %.1fs\n", set.Dir, strings.Join(parts, ", "), time.Since(start).Seconds())
	// Said at every dump, on stderr (what cron mails): a set without these is found
	// wanting only at the failover, when Seafile on the backup host has no users.
	if missing := missingKeys(e); len(missing) > 0 {
		e.log.Warn("the dump set lacks databases a failover needs: Seafile restored from it has no users, groups, shares or Seahub data; set them in the config",
			"set", set.Name, "unset", strings.Join(missing, ", "))
	}
	if err != nil { // the set is good; pruning older ones failed
		return failed(err)
	}
	return nil
}
