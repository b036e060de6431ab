package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/go-sql-driver/mysql"

	"seafbak/dump"
	"seafbak/restore"
	"seafbak/sync/store"
)

type restoreServerCmd struct {
	Dump string `help:"The dump set to load (its name under dump.dir); default: the latest." placeholder:"SET"`
	Yes  bool   `help:"Overwrite backup databases that already hold Seafile data."`
}

// backupDatabases names where each dumped database goes on the backup's server.
func backupDatabases(e *env, set dump.Set) (map[dump.Role]*mysql.Config, error) {
	targets := map[dump.Role]*mysql.Config{}
	keys := map[dump.Role]string{dump.Ccnet: "backup.ccnet_db", dump.Seahub: "backup.seahub_db"}
	names := map[dump.Role]string{dump.Ccnet: e.cfg.Backup.CcnetDB, dump.Seahub: e.cfg.Backup.SeahubDB}
	for _, role := range set.Roles() {
		if role == dump.Seafile {
			targets[role] = e.cfg.Backup.DB
			continue
		}
		if names[role] == "" {
			return nil, fmt.Errorf("dump %s holds the %s database, but config %s does not say where it goes: set %s", set.Name, role, e.cfg.Path, keys[role])
		}
		c := e.cfg.Backup.DB.Clone()
		c.DBName = names[role]
		targets[role] = c
	}
	return targets, nil
}

func (c *restoreServerCmd) run(e *env) int {
	fail := func(code int, format string, args ...any) int {
		fmt.Fprintf(e.stderr, "seafbak restore server: "+format+"\n", args...)
		return code
	}
	if e.cfg.Backup.DB == nil {
		return fail(exitCantRun, "config %s: backup.db is not set: name the backup host's seafile database (the server Seafile will run on)", e.cfg.Path)
	}
	if e.cfg.Dump.Dir == "" {
		return fail(exitCantRun, "config %s: dump.dir is not set: where seafbak dump wrote its dumps", e.cfg.Path)
	}
	fs, st, err := openBackup(e)
	if err != nil {
		return fail(exitCantRun, "%v", err)
	}
	var set dump.Set
	if c.Dump == "" {
		set, err = dump.Latest(e.cfg.Dump.Dir)
	} else {
		set, err = findSet(e.cfg.Dump.Dir, c.Dump)
	}
	if err != nil {
		return fail(exitCantRun, "%v (run seafbak dump on a schedule; see the README)", err)
	}
	if err := set.Verify(); err != nil {
		return fail(exitFailed, "dump %s is damaged: %v; choose another with --dump", set.Name, err)
	}
	// Never over the primary: the dump names the server it came from.
	serverOnly := e.cfg.Backup.DB.Clone()
	serverOnly.DBName = ""
	sdb, err := openDB(e.ctx, "backup", serverOnly)
	if err != nil {
		return fail(exitCantRun, "%v", err)
	}
	here, err := dump.ServerIdentity(e.ctx, sdb)
	sdb.Close()
	if err != nil {
		return fail(exitCantRun, "%v", err)
	}
	for _, role := range set.Roles() {
		if from := set.Manifest.Files[role].Server; from.Same(here) {
			return fail(exitCantRun, "refusing: the backup database server (%s) is the server dump %s was taken from, the primary's; point backup.db at the backup host's database server", here, set.Name)
		}
	}
	targets, err := backupDatabases(e, set)
	if err != nil {
		return fail(exitCantRun, "%v", err)
	}
	if err := createDatabases(e.ctx, e.cfg.Backup.DB, targets); err != nil {
		return fail(exitCantRun, "%v", err)
	}
	bdb, err := openDB(e.ctx, "backup", e.cfg.Backup.DB)
	if err != nil {
		return fail(exitCantRun, "%v", err)
	}
	defer bdb.Close()

	if !c.Yes {
		for _, role := range sortedRoles(targets) {
			db, err := openDB(e.ctx, "backup", targets[role])
			if err != nil {
				return fail(exitCantRun, "%v", err)
			}
			holds, err := restore.HoldsSeafileData(e.ctx, db, role == dump.Seafile)
			db.Close()
			if err != nil {
				return fail(exitCantRun, "%s database %s: %v", role, targets[role].DBName, err)
			}
			if holds {
				return fail(exitCantRun, "refusing: the %s database %s %v; add --yes to overwrite it with dump %s", role, targets[role].DBName, restore.ErrHoldsData, set.Name)
			}
		}
	}

	fmt.Fprintf(e.stdout, "Loading dump %s (taken %s from %s)\n", set.Name, set.Manifest.Finished.Format("2006-01-02 15:04:05 MST"), set.Manifest.Files[dump.Seafile].Server)
	for _, role := range sortedRoles(targets) {
		if err := dump.Load(e.ctx, set, role, targets[role]); err != nil {
			return fail(exitFailed, "%v", err)
		}
		fmt.Fprintf(e.stdout, "  %s database loaded into %s\n", role, targets[role].DBName)
	}
	if err := restore.EnsureLiveTables(e.ctx, bdb); err != nil {
		return fail(exitFailed, "%v", err)
	}
	rows, err := restore.WriteLiveRows(e.ctx, st, bdb, e.log)
	if err != nil {
		return fail(exitFailed, "%v", err)
	}
	fmt.Fprintf(e.stdout, "  Repo/Branch/RepoHead: %d libraries at their backed-up heads (%d moved, %d deleted on the primary removed)\n", rows.Set+rows.Unchanged, rows.Set, rows.Deleted)

	heads, err := store.NewRows(bdb).Heads(e.ctx)
	if err != nil {
		return fail(exitFailed, "%v", err)
	}
	rep, err := restore.Verify(e.ctx, restore.VerifyOptions{Store: fs, State: st, Log: e.log, DBHeads: heads})
	if err != nil {
		return fail(exitFailed, "verify: %v", err)
	}
	printVerify(e, rep)
	if !rep.OK() {
		fmt.Fprintln(e.stdout, "The databases are loaded, but the backup store has the problems above: see seafbak verify; restore the affected libraries from another copy before starting Seafile.")
		return exitFailed
	}
	printStartSteps(e.stdout, e, targets)
	return exitOK
}

func findSet(dir, name string) (dump.Set, error) {
	sets, err := dump.List(dir)
	if err != nil {
		return dump.Set{}, err
	}
	var names []string
	for _, s := range sets {
		if s.Name == name {
			return s, nil
		}
		names = append(names, s.Name)
	}
	return dump.Set{}, fmt.Errorf("no complete dump %q in %s (there are: %s)", name, dir, strings.Join(names, ", "))
}

func sortedRoles(m map[dump.Role]*mysql.Config) []dump.Role {
	roles := make([]dump.Role, 0, len(m))
	for r := range m {
		roles = append(roles, r)
	}
	sort.Slice(roles, func(i, j int) bool { return roles[i] < roles[j] })
	return roles
}

// createDatabases creates the target databases that do not exist yet.
func createDatabases(ctx context.Context, server *mysql.Config, targets map[dump.Role]*mysql.Config) error {
	c := server.Clone()
	c.DBName = ""
	db, err := openDB(ctx, "backup", c)
	if err != nil {
		return err
	}
	defer db.Close()
	for _, role := range sortedRoles(targets) {
		name := targets[role].DBName
		q := "CREATE DATABASE IF NOT EXISTS `" + strings.ReplaceAll(name, "`", "``") + "` CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci"
		if _, err := db.ExecContext(ctx, q); err != nil {
			var me *mysql.MySQLError
			if errors.As(err, &me) && (me.Number == 1044 || me.Number == 1045) {
				return fmt.Errorf("create the %s database %s: %w (create it, or grant seafbak CREATE on the backup server)", role, name, err)
			}
			return fmt.Errorf("create the %s database %s: %w", role, name, err)
		}
	}
	return nil
}

func printStartSteps(w io.Writer, e *env, targets map[dump.Role]*mysql.Config) {
	name := func(r dump.Role) string {
		if c := targets[r]; c != nil {
			return c.DBName
		}
		return "(not in the dump)"
	}
	fmt.Fprintf(w, `
The backup host is ready to serve. To start Seafile on it:
  1. Stop seafbak's cron job and the primary's hook: from now on this host is the primary.
  2. Point Seafile at the backup's databases on %s:
       conf/seafile.conf        [database]  db_name = %s
       conf/ccnet.conf          [Database]  DB = %s
       conf/seahub_settings.py  DATABASES['default']['NAME'] = '%s'
     (host, port, user and password of that server in each).
  3. Point Seafile at the backup's data: its seafile-data directory is
       %s
     (link it as <seafile>/seafile-data, or set it where your installation names it).
  4. Start Seafile and Seahub: ./seafile.sh start && ./seahub.sh start
  5. Check: log in, open a few libraries; seafbak status --offline lists what was backed up.
`, e.cfg.Backup.DB.Addr, name(dump.Seafile), name(dump.Ccnet), name(dump.Seahub), e.cfg.Backup.DataDir)
}
