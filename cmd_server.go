package main

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"

	"seafbak/dump"
	"seafbak/restore"
)

type restoreServerCmd struct {
	Dump string `help:"The dump set to load (its name under dump.dir); default: the latest." placeholder:"SET"`
	Yes  bool   `help:"Overwrite backup databases that already hold Seafile data."`
	// The refusal of the primary's own server leans to "same" (dump.Identity.Same):
	// a VM cloned from the primary's keeps its host name, port and datadir.
	NotThePrimary bool `help:"The backup database server only looks like the primary's (a clone of its VM keeps its host name, port and datadir): load anyway. A shared MySQL server_uuid is still refused."`
	// Seafile stays down while the store is verified: hashing every block of a large
	// store can take hours, and seafbak verify can finish the job once Seafile serves.
	Sample float64 `help:"Hash only this share of blocks in the verify before the start steps (0 < P <= 1); every block's presence is still checked. Run seafbak verify in full afterwards." default:"1"`
}

// backupDBKeys are the config keys naming the backup's ccnet and seahub databases, for
// the message when a dump holds one the config does not place.
var backupDBKeys = map[dump.Role]string{dump.Ccnet: "backup.ccnet_db", dump.Seahub: "backup.seahub_db"}

// backupDatabases names where each database goes on the backup's server: the seafile
// database is backup.db; the others are on its server, with its account.
func backupDatabases(e *env) map[dump.Role]*mysql.Config {
	targets := map[dump.Role]*mysql.Config{dump.Seafile: e.cfg.Backup.DB}
	for role, name := range map[dump.Role]string{dump.Ccnet: e.cfg.Backup.CcnetDB, dump.Seahub: e.cfg.Backup.SeahubDB} {
		if name == "" {
			continue
		}
		c := e.cfg.Backup.DB.Clone()
		c.DBName = name
		targets[role] = c
	}
	return targets
}

func (c *restoreServerCmd) Run(e *env) error {
	if e.cfg.Backup.DB == nil {
		return usagef("config %s: backup.db is not set: name the backup host's seafile database (the server Seafile will run on)", e.cfg.Path)
	}
	if e.cfg.Dump.Dir == "" {
		return usagef("config %s: dump.dir is not set: where seafbak dump wrote its dumps", e.cfg.Path)
	}
	if !(c.Sample > 0 && c.Sample <= 1) { // NaN too
		return usagef("--sample %g: give a share of blocks above 0 and at most 1, e.g. 0.05", c.Sample)
	}
	// The identity check (against the server the dump came from) can miss the primary's
	// own server when it was recreated (a Docker container gets a new host name): the
	// config naming one address for both is certain, whatever --not-the-primary says.
	if b, p := e.cfg.Backup.DB, e.cfg.Primary.DB; p != nil && b.Net == p.Net && b.Addr == p.Addr {
		return cantRun(fmt.Errorf("%w: backup.db and primary.db in %s name the same server (%s %s); point backup.db at the backup host's database server",
			restore.ErrRefusedPrimary, e.cfg.Path, b.Net, b.Addr))
	}
	fs, st, err := openBackup(e, false, nil)
	if err != nil {
		return cantRun(err)
	}
	res, err := restore.Failover(e.ctx, restore.FailoverOptions{
		Sample:        c.Sample,
		NotThePrimary: c.NotThePrimary,
		DumpDir:       e.cfg.Dump.Dir,
		DumpSet:       c.Dump,
		Databases:     backupDatabases(e),
		Store:         fs,
		State:         st,
		Yes:           c.Yes,
		Log:           e.log,
		Progress:      func(p restore.FailoverProgress) { printFailoverProgress(e.stdout, p) },
	})
	var refused *restore.RefusedPrimaryError
	var missing *restore.MissingDatabaseError
	var notEmpty *restore.RefusedNotEmptyError
	switch {
	case err == nil:
	case errors.Is(err, restore.ErrNoDump) && c.Dump != "":
		return cantRun(fmt.Errorf("%w (the sets are the directories in %s; leave --dump out for the latest)", err, e.cfg.Dump.Dir))
	case errors.Is(err, restore.ErrNoDump):
		return cantRun(fmt.Errorf("%w (run seafbak dump on a schedule; see the README)", err))
	case errors.Is(err, restore.ErrDumpDamaged):
		return failed(fmt.Errorf("%w; choose another with --dump", err))
	case errors.As(err, &refused) && refused.SameUUID:
		return cantRun(fmt.Errorf("%w (the same MySQL server_uuid); point backup.db at the backup host's database server, or if it is that server with a datadir copied from the primary's, remove its auto.cnf and restart it to give it its own", err))
	case errors.Is(err, restore.ErrRefusedPrimary):
		return cantRun(fmt.Errorf("%w; point backup.db at the backup host's database server, or if it is that server and only looks like the primary's (a clone of its VM), add --not-the-primary", err))
	case errors.As(err, &notEmpty):
		return cantRun(fmt.Errorf("%w; add --yes to overwrite it with dump %s", err, notEmpty.Set))
	case errors.As(err, &missing):
		return cantRun(fmt.Errorf("dump %s holds the %s database, but config %s does not say where it goes: set %s", missing.Set, missing.Role, e.cfg.Path, backupDBKeys[missing.Role]))
	case errors.Is(err, restore.ErrNotStarted):
		return cantRun(err)
	case errors.Is(err, restore.ErrStoreProblems) && res != nil && res.Verify != nil:
		printVerify(e, res.Verify)
		fmt.Fprintln(e.stdout, "The databases are loaded, but the backup store has the problems above: see seafbak verify; restore the affected libraries from another copy before starting Seafile.")
		return reported("store problems")
	default:
		return failed(err)
	}
	printVerify(e, res.Verify)
	for _, l := range res.Verify.Libraries {
		if l.Unrecorded {
			fmt.Fprintf(e.stdout, "%s: no record in seafbak's state; served at the backup database's head, which verified whole\n", l.RepoID)
		}
	}
	for _, l := range res.NeverBackedUp {
		fmt.Fprintf(e.stdout, "%s %s: never backed up (%s): NOT SERVED\n", l.RepoID, l.Name, l.Error)
	}
	unowned := 0
	for _, n := range res.NewerThanDump {
		switch {
		case n.Withdrawn:
			fmt.Fprintf(e.stdout, "%s %s: a shared folder made after dump %s: NOT SERVED (Seafile needs its VirtualRepo row; its files are in library %s)\n", n.RepoID, n.Name, res.Set.Name, n.StoreID)
		case n.OwnerSet && n.OrgID != 0:
			fmt.Fprintf(e.stdout, "%s %s: made after dump %s: given back to organisation %d, owner %s, from seafbak's record\n", n.RepoID, n.Name, res.Set.Name, n.OrgID, n.Owner)
		case n.OwnerSet:
			fmt.Fprintf(e.stdout, "%s %s: made after dump %s: owner %s written from seafbak's record (an organisation's library last synced before seafbak kept organisations is now its user's own: move it in Seahub's admin panel)\n", n.RepoID, n.Name, res.Set.Name, n.Owner)
		default:
			unowned++
			fmt.Fprintf(e.stdout, "%s %s: made after dump %s: served with NO OWNER (seafbak recorded none), so no one's library list shows it: give it one in Seahub's admin panel\n", n.RepoID, n.Name, res.Set.Name)
		}
	}
	printStartSteps(e.stdout, res.Start)
	withdrawn := 0
	for _, n := range res.NewerThanDump {
		if n.Withdrawn {
			withdrawn++
		}
	}
	if n := notServed(res.Rows) + len(res.NeverBackedUp) + withdrawn; n > 0 || unowned > 0 {
		return reported(fmt.Sprintf("%d libraries not served, %d served without an owner (listed above)", n, unowned))
	}
	return nil
}

func printFailoverProgress(w io.Writer, p restore.FailoverProgress) {
	switch p.Stage {
	case restore.FailoverLoading:
		fmt.Fprintf(w, "Loading dump %s (taken %s from %s)\n", p.Set.Name, p.Set.Manifest.Finished.Format("2006-01-02 15:04:05 MST"), p.Set.Manifest.Files[dump.Seafile].Server)
	case restore.FailoverLoaded:
		fmt.Fprintf(w, "  %s database loaded into %s\n", p.Role, p.Database)
	case restore.FailoverRowsWritten:
		fmt.Fprintf(w, "  Repo/Branch/RepoHead: %d libraries at their backed-up heads (%d moved, %d deleted on the primary removed)\n", p.Rows.Set+p.Rows.Unchanged-(len(p.Rows.Earlier)-notServed(p.Rows)), p.Rows.Set, p.Rows.Deleted)
		for _, e := range p.Rows.Earlier {
			if e.Served == "" {
				fmt.Fprintf(w, "  library %s (%s): its head %s holds holes and no earlier commit of it is whole: NOT SERVED (its objects stay in the backup store)\n", e.RepoID, e.Name, e.Head)
				continue
			}
			fmt.Fprintf(w, "  library %s (%s): its head %s holds holes, so it is served at its newest whole commit %s of %s; seafbak restore library --list shows what came after\n",
				e.RepoID, e.Name, e.Head, e.Served, time.Unix(e.ServedCtime, 0).UTC().Format("2006-01-02 15:04:05 MST"))
		}
	}
}

// notServed counts the libraries the failover left without rows: their heads hold holes
// and no commit before them is whole.
func notServed(rows restore.RowsResult) int {
	n := 0
	for _, e := range rows.Earlier {
		if e.Served == "" {
			n++
		}
	}
	return n
}

func printStartSteps(w io.Writer, s restore.StartSteps) {
	name := func(db string) string {
		if db != "" {
			return db
		}
		return "(not in the dump)"
	}
	ready := "The backup host is ready to serve."
	var lacking []string
	if s.CcnetDB == "" {
		lacking = append(lacking, "ccnet")
	}
	if s.SeahubDB == "" {
		lacking = append(lacking, "seahub")
	}
	if len(lacking) > 0 {
		// Libraries alone are no server: without ccnet nobody can log in, without
		// seahub the web interface does not start.
		ready = fmt.Sprintf("The backup host holds the libraries, but the dump set has no %s database: load one\n"+
			"(from an older dump, or the primary's) before users can log in. Dumps hold them once the\n"+
			"config sets primary.ccnet_db and primary.seahub_db.", strings.Join(lacking, " or "))
	}
	fmt.Fprintf(w, `
%s To start Seafile on it:
  1. Stop seafbak's cron job, watch and the primary's hook: from now on this host is the
     primary (seafbak here refuses to sync into these databases again; see the README).
  2. Point Seafile at the backup's databases on %s:
       conf/seafile.conf        [database]  db_name = %s
       conf/ccnet.conf          [Database]  DB = %s
       conf/seahub_settings.py  DATABASES['default']['NAME'] = '%s'
     (host, port, user and password of that server in each).
  3. %s
  4. Start Seafile and Seahub: ./seafile.sh start && ./seahub.sh start
  5. Check: log in, open a few libraries; seafbak status --offline lists what was backed up.
`, ready, s.Addr, name(s.SeafileDB), name(s.CcnetDB), name(s.SeahubDB), dataStep(s))
}

// dataStep says where Seafile finds the backed-up objects: a seafile-data directory, or
// (S3, a Pro server's backend) the buckets seafile.conf must name.
func dataStep(s restore.StartSteps) string {
	if s.StorageConf == "" {
		return "Point Seafile at the backup's data: its seafile-data directory is\n       " + s.DataDir +
			"\n     (link it as <seafile>/seafile-data, or set it where your installation names it)."
	}
	var conf strings.Builder
	for i, line := range strings.Split(strings.TrimRight(s.StorageConf, "\n"), "\n") {
		if i > 0 {
			conf.WriteString("\n")
			if line != "" { // no trailing blanks on the empty lines between sections
				conf.WriteString("       ")
			}
		}
		conf.WriteString(line)
	}
	return "Point Seafile at the backup's buckets (Seafile Pro's S3 backend): put these sections\n" +
		"     in conf/seafile.conf, with the secret key in place of <secret key>:\n       " + conf.String()
}
