package restore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"

	"seafbak/dump"
	"seafbak/internal/dbconn"
	"seafbak/state"
	"seafbak/sync/store"
)

// Errors of Failover, matched with errors.Is. A refusal or ErrNotStarted means the
// dump's data was not loaded (at most missing databases were created, empty); any
// other error may come after part of it was.
var (
	// ErrRefusedPrimary: the backup's database server is the one the dump was taken
	// from, the primary's. The error is a *RefusedPrimaryError.
	ErrRefusedPrimary = errors.New("refusing: the backup database server is the primary's")
	// ErrRefusedNotEmpty: a target database already holds Seafile data and
	// FailoverOptions.Yes is not set. The error is a *RefusedNotEmptyError; it matches
	// ErrHoldsData too.
	ErrRefusedNotEmpty = errors.New("refusing: a backup database already holds Seafile data")
	// ErrNotStarted: the failover could not start (bad options, no such dump, the backup
	// database server unreachable, a database that could not be created or checked).
	ErrNotStarted = errors.New("the failover did not start")
	// ErrNoDump: DumpDir holds no complete set (of that name). Matches ErrNotStarted.
	ErrNoDump = errors.New("no dump set to load")
	// ErrDumpDamaged: the chosen set fails its checksums or is not a whole dump; nothing
	// was loaded. Another set may do.
	ErrDumpDamaged = errors.New("the dump set is damaged")
	// ErrStoreProblems: the databases are loaded and the live rows written, but verifying
	// the backup store found problems. Failover returns its result with this error, so
	// the report (FailoverResult.Verify) can be shown.
	ErrStoreProblems = errors.New("the databases are loaded, but the backup store has problems")
)

// RefusedPrimaryError is Failover's refusal to load a dump into the server it came from.
type RefusedPrimaryError struct {
	Server dump.Identity // the backup database server, as it answered
	Set    string        // the dump set's name
	// SameUUID: both servers have one MySQL @@server_uuid, which no override passes
	// (a datadir copied from the primary's keeps it; removing its auto.cnf makes a new
	// one). Otherwise they only look alike (host name, port and datadir, or MariaDB's
	// @@server_uid), as a VM cloned from the primary's does: FailoverOptions.NotThePrimary.
	SameUUID bool
}

func (e *RefusedPrimaryError) Error() string {
	return fmt.Sprintf("refusing: the backup database server (%s) is the server dump %s was taken from, the primary's", e.Server, e.Set)
}

// Is makes errors.Is(err, ErrRefusedPrimary) true.
func (e *RefusedPrimaryError) Is(target error) bool { return target == ErrRefusedPrimary }

// RefusedNotEmptyError is Failover's refusal to overwrite a database holding Seafile data.
type RefusedNotEmptyError struct {
	Role     dump.Role
	Database string // the target database's name
	Set      string // the dump set's name
}

func (e *RefusedNotEmptyError) Error() string {
	return fmt.Sprintf("refusing: the %s database %s %v", e.Role, e.Database, ErrHoldsData)
}

// Is makes errors.Is(err, ErrRefusedNotEmpty) and errors.Is(err, ErrHoldsData) true.
func (e *RefusedNotEmptyError) Is(target error) bool {
	return target == ErrRefusedNotEmpty || target == ErrHoldsData
}

// MissingCollationError: the dump's tables use collations the backup's database server
// does not have (a primary on a newer MariaDB, or on MySQL); nothing was loaded.
type MissingCollationError struct {
	Collations []string
	Server     dump.Identity
	Set        dump.Set
}

func (e *MissingCollationError) Error() string {
	var from []string
	for _, role := range e.Set.Roles() {
		if v := e.Set.Manifest.Files[role].Server.Version; v != "" && !slices.Contains(from, v) {
			from = append(from, v)
		}
	}
	primary := ""
	if len(from) > 0 {
		primary = " (the primary ran " + strings.Join(from, ", ") + ")"
	}
	return fmt.Sprintf("dump %s: its tables use collation %s, which the backup's database server %s does not have: run a server there as new as the primary's%s, of the same kind (MariaDB or MySQL), then run restore server again; nothing was loaded",
		e.Set.Name, strings.Join(e.Collations, ", "), e.Server, primary)
}

func (e *MissingCollationError) Is(target error) bool { return target == ErrNotStarted }

// MissingDatabaseError says the chosen set holds a database FailoverOptions.Databases
// gives no target for. Nothing was loaded; it matches ErrNotStarted.
type MissingDatabaseError struct {
	Role dump.Role
	Set  string
}

func (e *MissingDatabaseError) Error() string {
	return fmt.Sprintf("dump %s holds the %s database, but no backup database is given for it", e.Set, e.Role)
}

// Is makes errors.Is(err, ErrNotStarted) true.
func (e *MissingDatabaseError) Is(target error) bool { return target == ErrNotStarted }

// tagged is err, also matching tags with errors.Is; its message is err's alone, so the
// CLI prints what it always printed.
type tagged struct {
	err  error
	tags []error
}

func (t *tagged) Error() string   { return t.err.Error() }
func (t *tagged) Unwrap() []error { return append([]error{t.err}, t.tags...) }

func tag(err error, tags ...error) error { return &tagged{err: err, tags: tags} }

// notStarted marks an error that stopped the failover before anything was loaded.
func notStarted(err error) error { return tag(err, ErrNotStarted) }

// FailoverOptions configure Failover.
type FailoverOptions struct {
	// DumpDir holds the sets `seafbak dump` writes.
	DumpDir string
	// DumpSet names the set to load (its directory's name in DumpDir); "": the latest.
	DumpSet string
	// Databases are the backup's databases by role: where each dumped database is
	// loaded. Seafile is required: its server is the one checked against the primary and
	// where missing databases are created, and Repo/Branch/RepoHead are written in it.
	// The others must be on that same server. A role the chosen set holds but Databases
	// lacks fails with a *MissingDatabaseError; a role here the set lacks is left alone.
	Databases map[dump.Role]*mysql.Config
	// Store is the backup store Seafile will serve: a *store.FS, whose root is the
	// seafile-data directory named in the start steps, or a *store.S3, whose
	// seafile.conf backend sections they print.
	Store store.Store
	// State holds the backed-up heads written as the live rows.
	State *state.Dir
	// Yes overwrites target databases that already hold Seafile data.
	Yes bool
	// NotThePrimary loads into a server that only looks like the one the dump came from
	// (the same host name, port and datadir, or MariaDB @@server_uid: a clone of the
	// primary's VM), on the operator's word. A shared MySQL @@server_uuid is refused
	// still.
	NotThePrimary bool
	// Sample is the share of blocks the verify hashes (VerifyOptions.Sample; 0: all).
	// Every block's presence is checked whatever it is; hashing every block of a large
	// store can take hours while Seafile stays down.
	Sample float64
	// Log receives progress of the rows and the verify (nil: none).
	Log *slog.Logger
	// Progress, if set, is called as the failover goes, from the calling goroutine, so a
	// CLI can print each step when it happens (a load can take minutes).
	Progress func(FailoverProgress)
}

// FailoverStage says which step a FailoverProgress reports.
type FailoverStage int

const (
	// FailoverLoading: every check passed; Set's databases are about to be loaded.
	FailoverLoading FailoverStage = iota + 1
	// FailoverLoaded: Role's dump is loaded into Database.
	FailoverLoaded
	// FailoverRowsWritten: Rows says what the live rows got.
	FailoverRowsWritten
	// FailoverVerifying: the backup store's verify starts.
	FailoverVerifying
)

// FailoverProgress is one step of Failover.
type FailoverProgress struct {
	Stage    FailoverStage
	Set      dump.Set
	Role     dump.Role  // FailoverLoaded
	Database string     // FailoverLoaded
	Rows     RowsResult // FailoverRowsWritten
}

// FailoverResult is what a failover did.
type FailoverResult struct {
	// Set is the dump set loaded.
	Set dump.Set
	// Loaded names the database each of the set's roles was loaded into.
	Loaded map[dump.Role]string
	// Rows is what the live rows (Repo/Branch/RepoHead) got from the state.
	Rows RowsResult
	// Verify is the backup store's verify report (set once the verify ran). A library
	// the backup database names but the state has no record of is verified from its
	// database head (LibraryReport.Unrecorded).
	Verify *VerifyReport
	// NeverBackedUp are the libraries the state knows but no sync of them completed
	// (created just before the primary went, or failing): they are not served.
	NeverBackedUp []LibraryReport
	// NewerThanDump are the libraries served that the dump does not know (made after
	// it): given their recorded owner, or, for a shared folder, not served.
	NewerThanDump []NewerThanDump
	// Start is what Seafile on the backup host must be pointed at.
	Start StartSteps
}

// StartSteps are what Seafile's configuration must name to serve the backup.
type StartSteps struct {
	// Net and Addr are the backup database server: "tcp" and host:port, or "unix" and
	// the socket's path (seafile.conf, ccnet.conf and seahub_settings.py name it).
	Net, Addr string
	// SeafileDB (seafile.conf), CcnetDB (ccnet.conf) and SeahubDB (seahub_settings.py)
	// are the databases' names; "" for one the dump did not hold.
	SeafileDB, CcnetDB, SeahubDB string
	// DataDir is the seafile-data directory: the backup store's root ("" for S3).
	DataDir string
	// StorageConf is, for an S3 store, the seafile.conf sections ([commit_object_backend],
	// [fs_object_backend], [block_backend]) that point Seafile at its buckets, the
	// secret left as a placeholder.
	StorageConf string
}

// Failover makes the backup host ready to serve as the primary: it chooses the dump set
// (DumpSet, or the latest) and checks it whole; refuses when the backup's database
// server is the one the dump came from (the primary's); creates missing databases;
// refuses databases that already hold Seafile data unless Yes; loads each dumped
// database; writes Repo/Branch/RepoHead from the state's backed-up heads (only those
// are known complete in the store); and verifies the store against them.
//
// Refusals are *RefusedPrimaryError and *RefusedNotEmptyError; failures before anything
// was loaded match ErrNotStarted. When the store has problems, Failover returns the
// result (with its Verify report) and ErrStoreProblems.
func Failover(ctx context.Context, opts FailoverOptions) (*FailoverResult, error) {
	server, err := checkFailoverOptions(opts)
	if err != nil {
		return nil, notStarted(err)
	}
	progress := opts.Progress
	if progress == nil {
		progress = func(FailoverProgress) {}
	}

	if _, serr := os.Stat(opts.DumpDir); serr == nil {
		// Held until the load is done: no dump prunes the set meanwhile. (A dump
		// directory not there is chooseSet's to report.)
		unlock, err := dump.LockForLoad(opts.DumpDir)
		if err != nil {
			return nil, notStarted(err)
		}
		defer unlock()
	}
	set, err := chooseSet(opts.DumpDir, opts.DumpSet, opts.Log)
	if err != nil {
		return nil, tag(err, ErrNoDump, ErrNotStarted)
	}
	collations, err := set.VerifyCollations()
	if err != nil {
		return nil, tag(fmt.Errorf("dump %s is damaged: %w", set.Name, err), ErrDumpDamaged)
	}

	// Never over the primary: the dump names the server it came from, which works when
	// the primary is gone (the usual reason for a failover).
	sdb, err := dbconn.Open(ctx, "backup", server)
	if err != nil {
		return nil, notStarted(err)
	}
	here, err := dump.ServerIdentity(ctx, sdb)
	var missing []string
	if err == nil {
		// A collation the server lacks fails the load at the first table using it,
		// with the tables before it loaded: refused before anything is.
		missing, err = dump.MissingCollations(ctx, sdb, collations)
	}
	sdb.Close()
	if err != nil {
		return nil, notStarted(err)
	}
	if len(missing) > 0 {
		return nil, &MissingCollationError{Collations: missing, Server: here, Set: set}
	}
	for _, role := range set.Roles() {
		from := set.Manifest.Files[role].Server
		if !from.Same(here) {
			continue
		}
		sameUUID := from.ServerUUID != "" && from.ServerUUID == here.ServerUUID
		if sameUUID || !opts.NotThePrimary {
			return nil, &RefusedPrimaryError{Server: here, Set: set.Name, SameUUID: sameUUID}
		}
		if opts.Log != nil {
			opts.Log.Warn("the backup database server looks like the primary's; loading as told (not the primary)", "server", here.String(), "dump_server", from.String())
		}
	}

	targets := map[dump.Role]*mysql.Config{}
	for _, role := range set.Roles() {
		c := opts.Databases[role]
		if c == nil {
			return nil, &MissingDatabaseError{Role: role, Set: set.Name}
		}
		targets[role] = c
	}
	// The state is read whole before anything is created or loaded: a damaged record
	// found only after the load would stop a failover half done.
	recs, err := state.Whole(opts.State.All())
	if errors.Is(err, state.ErrDamaged) {
		// The fix a damaged record names (sync rebuilds it) needs the primary.
		return nil, notStarted(fmt.Errorf("%w\nin a failover the primary cannot rebuild it: put back the record from a copy of the state, or move it aside to fail over without that record (the library is then served at the backup database's head if that verifies whole, else not served; its objects stay in the backup store)", err))
	}
	if err != nil {
		return nil, notStarted(err)
	}
	if err := createDatabases(ctx, server, targets); err != nil {
		return nil, notStarted(err)
	}
	bdb, err := dbconn.Open(ctx, "backup", opts.Databases[dump.Seafile])
	if err != nil {
		return nil, notStarted(err)
	}
	defer bdb.Close()

	if !opts.Yes {
		for _, role := range sortedRoles(targets) {
			db, err := dbconn.Open(ctx, "backup", targets[role])
			if err != nil {
				return nil, notStarted(err)
			}
			holds, err := HoldsSeafileData(ctx, db, role)
			db.Close()
			if err != nil {
				return nil, notStarted(fmt.Errorf("%s database %s: %w", role, targets[role].DBName, err))
			}
			if holds {
				return nil, &RefusedNotEmptyError{Role: role, Database: targets[role].DBName, Set: set.Name}
			}
		}
	}

	// From here the backup's databases become Seafile's: no sync may move their rows
	// again (a cron job or watch left running, the old primary back).
	if err := opts.State.SaveFailedOver(state.FailedOver{At: time.Now().UTC(), DumpSet: set.Name}); err != nil {
		return nil, notStarted(err)
	}
	res := &FailoverResult{Set: set, Loaded: map[dump.Role]string{}}
	progress(FailoverProgress{Stage: FailoverLoading, Set: set})
	for _, role := range sortedRoles(targets) {
		if err := dump.Load(ctx, set, role, targets[role]); err != nil {
			return nil, err
		}
		res.Loaded[role] = targets[role].DBName
		progress(FailoverProgress{Stage: FailoverLoaded, Set: set, Role: role, Database: targets[role].DBName})
	}
	if err := EnsureLiveTables(ctx, bdb); err != nil {
		return nil, err
	}
	storeIDs, err := virtualOrigins(ctx, bdb)
	if err != nil {
		return nil, err
	}
	res.Rows, err = writeLiveRows(ctx, opts.Store, recs, bdb, storeIDs, opts.Log)
	if err != nil {
		return nil, err
	}
	heads := res.Rows.heads
	owners, err := adoptOwners(ctx, bdb, recs, heads)
	if err != nil {
		return nil, err
	}
	res.NewerThanDump = append(res.Rows.sharedAfterDump, owners...)
	progress(FailoverProgress{Stage: FailoverRowsWritten, Set: set, Rows: res.Rows})

	progress(FailoverProgress{Stage: FailoverVerifying, Set: set})
	res.Verify, err = Verify(ctx, VerifyOptions{Store: opts.Store, State: opts.State, Log: opts.Log, DBHeads: heads, DBStoreIDs: storeIDs, Sample: opts.Sample})
	if err != nil {
		return nil, err // Verify's errors say "verify:"
	}
	// A library no sync completed has nothing to serve and no rows: not a problem of
	// the store, only something the admin must hear of.
	res.Verify.Libraries = slices.DeleteFunc(res.Verify.Libraries, func(l LibraryReport) bool {
		if l.NeverBackedUp && l.Deleted == nil && heads[l.RepoID] == "" {
			res.NeverBackedUp = append(res.NeverBackedUp, l)
			return true
		}
		return false
	})
	res.Start = StartSteps{
		Net:       server.Net,
		Addr:      server.Addr,
		SeafileDB: res.Loaded[dump.Seafile],
		CcnetDB:   res.Loaded[dump.Ccnet],
		SeahubDB:  res.Loaded[dump.Seahub],
	}
	switch s := opts.Store.(type) {
	case *store.FS:
		res.Start.DataDir = s.Root()
	case *store.S3:
		res.Start.StorageConf = s.SeafileConf()
	}
	if !res.Verify.OK() {
		return res, ErrStoreProblems
	}
	return res, nil
}

// checkFailoverOptions rejects options Failover cannot work with and returns the
// backup database server's config (the seafile database's, no database selected).
func checkFailoverOptions(opts FailoverOptions) (*mysql.Config, error) {
	switch {
	case opts.DumpDir == "":
		return nil, errors.New("failover: no dump directory")
	case opts.Store == nil || opts.State == nil:
		return nil, errors.New("failover: no backup store or no state")
	}
	seafile := opts.Databases[dump.Seafile]
	if seafile == nil || seafile.DBName == "" {
		return nil, errors.New("failover: no backup seafile database")
	}
	for role, c := range opts.Databases {
		if c == nil {
			continue
		}
		if c.DBName == "" {
			return nil, fmt.Errorf("failover: the backup %s database has no name", role)
		}
		// The guard and CREATE DATABASE run on the seafile database's server only.
		if c.Net != seafile.Net || c.Addr != seafile.Addr {
			return nil, fmt.Errorf("failover: the backup %s database is on %s, not on the seafile database's server %s", role, c.Addr, seafile.Addr)
		}
	}
	server := seafile.Clone()
	server.DBName = ""
	return server, nil
}

// chooseSet is the set named name in dir, or the latest when name is "".
func chooseSet(dir, name string, log *slog.Logger) (dump.Set, error) {
	if name == "" {
		// A few minutes' slack for clocks that differ between the hosts.
		set, ahead, err := dump.LatestBefore(dir, time.Now().Add(5*time.Minute))
		for _, s := range ahead {
			if log != nil {
				log.Warn("passing over a dump set dated in the future (made while the clock ran ahead?); name it with --dump to load it", "set", s.Name)
			}
		}
		return set, err
	}
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
	db, err := dbconn.Open(ctx, "backup", server)
	if err != nil {
		return err
	}
	defer db.Close()
	for _, role := range sortedRoles(targets) {
		name := targets[role].DBName
		q := "CREATE DATABASE IF NOT EXISTS `" + strings.ReplaceAll(name, "`", "``") + "` CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci"
		if _, err := db.ExecContext(ctx, q); err != nil {
			if n := dbconn.ErrorNumber(err); n == dbconn.ErDBAccessDenied || n == dbconn.ErAccessDenied {
				return fmt.Errorf("create the %s database %s: %w (create it, or grant seafbak CREATE on the backup server)", role, name, err)
			}
			return fmt.Errorf("create the %s database %s: %w", role, name, err)
		}
	}
	return nil
}

// virtualOrigins reads, from the loaded seafile database, the store of each virtual
// library (its origin's): a library whose state record is missing is verified in it.
func virtualOrigins(ctx context.Context, db *sql.DB) (map[string]string, error) {
	ids := map[string]string{}
	rows, err := db.QueryContext(ctx, "SELECT repo_id, origin_repo FROM VirtualRepo")
	if dbconn.NoSuchTable(err) {
		return ids, nil // a dump of a server that never had one
	}
	if err != nil {
		return nil, fmt.Errorf("backup db: read VirtualRepo: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var repo, origin sql.NullString
		if err := rows.Scan(&repo, &origin); err != nil {
			return nil, fmt.Errorf("backup db: read VirtualRepo: %w", err)
		}
		if repo.Valid && origin.Valid {
			ids[repo.String] = origin.String // checked as a store id before use
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("backup db: read VirtualRepo: %w", err)
	}
	return ids, nil
}
