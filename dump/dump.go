// Package dump makes and loads SQL dumps of the Seafile server's databases: every table
// of the ccnet, seafile and seahub databases except the seafile database's Repo, Branch
// and RepoHead, which seafbak's sync engine keeps live on the backup.
//
// Run makes a dump set: one directory per dump, named by its UTC start time,
//
//	<dir>/2026-11-25T15-04-05Z/
//	    ccnet.sql.gz    (each role's database, dumped by the real mariadb-dump/mysqldump)
//	    seafile.sql.gz
//	    seahub.sql.gz
//	    manifest.json   (roles, source databases and servers, times, sizes, SHA-256s)
//
// A set is written in a ".tmp-..." directory, made durable and only then renamed into
// place, so a dump that failed or was killed never looks like a complete set: List
// shows only sets whose manifest and files are all there.
//
// Load verifies a set's file against its manifest and pipes it into the real
// mariadb/mysql client to load it into a target database of any name.
//
// Credentials reach the tools only as an option file read from an inherited pipe
// (--defaults-file=/dev/fd/3), never written to disk, so a seafbak killed mid-dump leaves
// no password behind; MYSQL_PWD and the other MYSQL_* variables are taken out of their
// environment.
//
// Grants: the dumping account needs SELECT, SHOW VIEW and TRIGGER on each database
// (without TRIGGER, triggers are silently left out; routines need SELECT on mysql.proc
// or they are silently left out too; Seafile and Seahub have neither). The loading
// account needs ALL on its target database.
package dump

import (
	"bufio"
	"cmp"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"

	"seafbak/internal/fsutil"
)

// Role is which of Seafile's databases a dump holds.
type Role string

const (
	Ccnet   Role = "ccnet"
	Seafile Role = "seafile"
	Seahub  Role = "seahub"
)

// Roles are all roles, in the order Run dumps them.
var Roles = []Role{Ccnet, Seafile, Seahub}

// LiveTables are the seafile database's tables that the sync engine keeps live on the
// backup. They are never in a dump, and loading a seafile dump leaves them as they are.
var LiveTables = []string{"Repo", "Branch", "RepoHead"}

// DefaultStaleAfter is how old a ".tmp-" directory (of a dump that died) must be before
// Run removes it.
const DefaultStaleAfter = 6 * time.Hour

// ManifestName is the manifest's file name in a set.
const ManifestName = "manifest.json"

// manifestFormat is the manifest format this package writes and reads.
const manifestFormat = 1

const nameLayout = "2006-01-02T15-04-05Z"

// gzipLevel is BestSpeed: Go's deflate runs in this one goroutine while the dump tool
// holds its snapshot open on the primary, and at the default level it compresses SQL at
// about 135 MB/s here (BestSpeed: about 385 MB/s), slower than mariadb-dump can write.
// The files come out about a quarter bigger.
const gzipLevel = gzip.BestSpeed

// setName matches a set directory's name: its UTC start time, and "-N" when several
// sets started in the same second.
var setName = regexp.MustCompile(`^(\d{4}-\d\d-\d\dT\d\d-\d\d-\d\dZ)(?:-([2-9]|[1-9]\d+))?$`)

var (
	// ErrNoSet is returned by Latest when the directory holds no complete set.
	ErrNoSet = errors.New("dump: no complete dump set")
	// ErrBusy is returned by Run when another Run (of any process) is writing to the
	// same directory.
	ErrBusy = errors.New("dump: another dump is running in this directory, or restore server is loading a set from it")
	// ErrNotStarted tags a Run that failed before dumping anything it could keep: the
	// options, the dump directory, the dump tool, or a database it could not reach
	// or read (wrong name, no grant). Nothing was written.
	ErrNotStarted = errors.New("nothing was dumped")
)

// Options configure Run.
type Options struct {
	// Dir holds the sets (created 0700 if missing). Run never touches anything in it
	// but sets, and ".tmp-" directories it made.
	Dir string
	// Keep is how many complete sets to keep, the new one included; older ones are
	// deleted once the new one is durable. 0 keeps all.
	Keep int
	// Databases are the primary's databases by role. Seafile is required; Ccnet and
	// Seahub are optional. Each needs DBName; Net must be "tcp" or "unix".
	Databases map[Role]*mysql.Config
	// Tool is the dump program (a path, or a name looked up in PATH). Empty: the first
	// of mariadb-dump and mysqldump found in PATH, /usr/bin, /usr/local/bin,
	// /usr/local/mysql/bin.
	Tool string
	// StaleAfter is how old a ".tmp-" directory must be for Run to remove it
	// (0: DefaultStaleAfter).
	StaleAfter time.Duration
	// StallAfter is how long the dump tool may send nothing before it is killed and
	// the dump fails (0: DefaultStallAfter). A primary that hangs without closing the
	// connection (its host frozen, a unix socket) left the tool waiting for ever, and
	// it held the dump directory's lock, which restore server needs.
	StallAfter time.Duration
	// Log receives progress (Info) and the dump tool's warnings (Warn); nil: none.
	Log *slog.Logger
}

// DefaultStallAfter is Options.StallAfter's default: with --quick the tool streams
// each table as the server sends its rows, so minutes of nothing is a server that
// stopped answering.
const DefaultStallAfter = 10 * time.Minute

// ErrStalled is a dump whose tool sent nothing for Options.StallAfter: it was killed.
var ErrStalled = errors.New("the primary's database server sent nothing")

// Set is one complete dump set.
type Set struct {
	Name     string // the directory's name, e.g. "2026-11-25T15-04-05Z"
	Dir      string // the directory's path
	Manifest Manifest
}

// Manifest describes a set; it is the set's manifest.json.
type Manifest struct {
	Format   int           `json:"format"`
	Started  time.Time     `json:"started"`
	Finished time.Time     `json:"finished"`
	Tool     ToolInfo      `json:"tool"`
	Files    map[Role]File `json:"files"`
}

// ToolInfo records the program that made the dumps.
type ToolInfo struct {
	Path    string   `json:"path"`
	Version string   `json:"version"`
	Flags   []string `json:"flags"` // besides --defaults-file, --ignore-table and the database
}

// File describes one role's dump in a set.
type File struct {
	Name          string    `json:"name"`     // e.g. "seafile.sql.gz"
	Database      string    `json:"database"` // the source database's name
	Server        Identity  `json:"server"`   // the source server
	IgnoredTables []string  `json:"ignored_tables,omitempty"`
	Size          int64     `json:"size"`     // bytes of the .gz file
	SQLSize       int64     `json:"sql_size"` // bytes of SQL in it
	SHA256        string    `json:"sha256"`   // of the .gz file
	Started       time.Time `json:"started"`
	Finished      time.Time `json:"finished"`
}

// Roles lists the set's roles in Roles order.
func (s Set) Roles() []Role {
	var rs []Role
	for _, r := range Roles {
		if _, ok := s.Manifest.Files[r]; ok {
			rs = append(rs, r)
		}
	}
	return rs
}

// Path is the path of role's file in the set ("" if the set has no such role).
func (s Set) Path(role Role) string {
	f, ok := s.Manifest.Files[role]
	if !ok {
		return ""
	}
	return filepath.Join(s.Dir, f.Name)
}

func fileName(role Role) string { return string(role) + ".sql.gz" }

// Run dumps the databases of opts into a new set in opts.Dir and returns it once it is
// complete and durable; then it deletes sets beyond opts.Keep and ".tmp-" directories
// older than opts.StaleAfter. It also removes the defaults files (passwords) that killed
// runs of older seafbak versions left in os.TempDir() (sweepLegacyDefaults). If ctx ends
// or anything fails, no set appears and the partial one is removed. If the set was made
// but pruning failed, Run returns the set and an error.
//
// The databases are dumped one after the other, each in its own consistent snapshot
// (--single-transaction); the snapshots of different databases are seconds apart.
func Run(ctx context.Context, opts Options) (Set, error) {
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.Dir == "" {
		return Set{}, errors.New("dump: no dump directory configured")
	}
	notStarted := func(err error) error { return fmt.Errorf("%w (%w)", err, ErrNotStarted) }
	if err := checkDatabases(opts.Databases); err != nil {
		return Set{}, notStarted(err)
	}
	stale := opts.StaleAfter
	if stale <= 0 {
		stale = DefaultStaleAfter
	}
	if err := mkdirDurable(opts.Dir); err != nil {
		return Set{}, notStarted(fmt.Errorf("dump: %w", err))
	}
	unlock, locked, err := lockDir(opts.Dir, log)
	if err != nil {
		return Set{}, notStarted(err)
	}
	defer unlock()
	if locked {
		// No other dump can be writing: every ".tmp-" directory is one that died
		// (killed, a reboot), and a multi-GB one must not crowd out this dump.
		stale = 0
	}
	sweepStale(opts.Dir, stale, log)
	sweepLegacyDefaults(log)

	t, err := findTool(ctx, opts.Tool, "mariadb-dump", "mysqldump")
	if err != nil {
		return Set{}, notStarted(fmt.Errorf("dump: %w", err))
	}

	started := time.Now().UTC()
	name := started.Format(nameLayout)
	tmp, err := os.MkdirTemp(opts.Dir, ".tmp-"+name+"-")
	if err != nil {
		return Set{}, notStarted(fmt.Errorf("dump: %w", err))
	}
	done := false
	defer func() {
		if !done {
			os.RemoveAll(tmp)
		}
	}()

	m := Manifest{
		Format:  manifestFormat,
		Started: started,
		Tool:    ToolInfo{Path: t.path, Version: t.version, Flags: t.dumpFlags()},
		Files:   map[Role]File{},
	}
	for _, role := range Roles {
		cfg, ok := opts.Databases[role]
		if !ok {
			continue
		}
		f, err := dumpOne(ctx, t, role, cfg, tmp, cmp.Or(opts.StallAfter, DefaultStallAfter), log)
		if err != nil {
			return Set{}, fmt.Errorf("dump %s (database %s): %w", role, cfg.DBName, err)
		}
		m.Files[role] = f
	}
	if err := ctx.Err(); err != nil {
		return Set{}, fmt.Errorf("dump: %w", context.Cause(ctx))
	}
	m.Finished = time.Now().UTC()
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return Set{}, fmt.Errorf("dump: %w", err)
	}
	// WriteFileAtomic fsyncs the file and then the set directory.
	if err := fsutil.WriteFileAtomic(filepath.Join(tmp, ManifestName), append(data, '\n'), 0o600); err != nil {
		return Set{}, fmt.Errorf("dump: manifest: %w", err)
	}
	final, err := freeName(opts.Dir, name)
	if err != nil {
		return Set{}, fmt.Errorf("dump: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(opts.Dir, final)); err != nil {
		return Set{}, fmt.Errorf("dump: %w", err)
	}
	done = true
	set := Set{Name: final, Dir: filepath.Join(opts.Dir, final), Manifest: m}
	if err := fsutil.SyncDir(opts.Dir); err != nil {
		// The set is complete but its name may not survive a crash; report it and do not
		// prune older sets on its account.
		return set, fmt.Errorf("dump: set %s made, but syncing %s failed: %w", final, opts.Dir, err)
	}
	log.Info("dump set complete", "set", final, "seconds", m.Finished.Sub(started).Seconds())
	// Read back from the disk before older sets go on its account: with keep 1 the last
	// good set would otherwise be deleted for one only known to have the right sizes.
	beforeReadBack(set.Dir)
	if err := set.Verify(); err != nil {
		// Not a set any more: List, LatestBefore, a failover and prune's count of
		// keep would all take it for a good one. Moved aside, it goes with the next
		// dump's sweep of .tmp- directories.
		aside := ".tmp-unverified-" + final
		if rerr := os.Rename(set.Dir, filepath.Join(opts.Dir, aside)); rerr != nil {
			return Set{}, fmt.Errorf("dump: set %s made, but reading it back failed (%w), and moving it aside failed: %w; delete it, older sets are kept", final, err, rerr)
		}
		if serr := fsutil.SyncDir(opts.Dir); serr != nil {
			err = errors.Join(err, serr)
		}
		return Set{}, fmt.Errorf("dump: set %s made, but reading it back failed, so it is not used (moved aside as %s) and older sets are kept: %w", final, aside, err)
	}
	if err := prune(opts.Dir, opts.Keep, final, log); err != nil {
		return set, fmt.Errorf("dump: set %s made, but deleting older sets failed: %w", final, err)
	}
	return set, nil
}

// beforeReadBack is called with a new set's directory before it is read back; tests
// damage the set through it.
var beforeReadBack = func(string) {}

func checkDatabases(dbs map[Role]*mysql.Config) error {
	if dbs[Seafile] == nil {
		return errors.New("dump: the seafile database is not configured")
	}
	seen := map[string]Role{}
	for role, cfg := range dbs {
		if !slices.Contains(Roles, role) {
			return fmt.Errorf("dump: unknown database role %q", role)
		}
		if cfg == nil {
			return fmt.Errorf("dump: the %s database is nil", role)
		}
		if cfg.DBName == "" {
			return fmt.Errorf("dump: the %s database's address names no database", role)
		}
		key := cfg.Net + "(" + cfg.Addr + ")/" + cfg.DBName
		if other, ok := seen[key]; ok {
			// A shared database would put the seafile database's live tables in another
			// role's dump.
			return fmt.Errorf("dump: the %s and %s databases are the same database %s", other, role, cfg.DBName)
		}
		seen[key] = role
	}
	return nil
}

// dumpFlags are the dump tool's flags, besides the defaults file (first), the ignored
// tables and the database (after "--"). No --databases: a dump then has no CREATE
// DATABASE or USE and loads into a database of any name. The sandbox line MariaDB 10.11
// writes first cannot be switched off; the filter drops it.
func (t *tool) dumpFlags() []string {
	f := []string{
		"--single-transaction", // one consistent InnoDB snapshot, no table locks
		"--quick",              // stream rows, do not buffer whole tables
		"--hex-blob",           // binary columns as 0x..., immune to charset conversion
		"--default-character-set=utf8mb4",
		"--add-drop-table", // a load replaces each dumped table, and only those
		"--tz-utc",         // TIMESTAMPs in UTC, whatever the loading server's zone
		"--triggers",
		"--routines",
		"--skip-events",    // events would start firing on the backup server
		"--no-tablespaces", // MySQL 8 would need the PROCESS privilege otherwise
		"--comments",       // the closing "-- Dump completed" proves the dump ran to the end
		"--max-allowed-packet=1G",
	}
	if t.knows("--set-gtid-purged") { // MySQL's mysqldump: no GTID state in the dump
		f = append(f, "--set-gtid-purged=OFF")
	}
	if t.knows("--column-statistics") { // MySQL 8's mysqldump against a MariaDB server
		f = append(f, "--column-statistics=0")
	}
	return f
}

// dumpOne dumps one database into dir/<role>.sql.gz, durably.
func dumpOne(ctx context.Context, t *tool, role Role, cfg *mysql.Config, dir string, stallAfter time.Duration, log *slog.Logger) (File, error) {
	out := File{Name: fileName(role), Database: cfg.DBName, Started: time.Now().UTC()}
	db, err := openDB(cfg)
	if err != nil {
		return out, fmt.Errorf("%w (%w)", err, ErrNotStarted)
	}
	out.Server, err = ServerIdentity(ctx, db)
	var protect []string
	if err == nil && role == Seafile {
		out.IgnoredTables, err = liveTables(ctx, db, cfg.DBName)
		protect = LiveTables
	}
	db.Close()
	if err != nil {
		// The database could not be reached or read: the set is dropped, nothing kept.
		return out, fmt.Errorf("%w (%w)", err, ErrNotStarted)
	}

	defaults, err := defaultsText(cfg, t)
	if err != nil {
		return out, err
	}
	args := t.dumpFlags()
	for _, tb := range out.IgnoredTables {
		args = append(args, "--ignore-table="+cfg.DBName+"."+tb)
	}
	args = append(args, "--", cfg.DBName)

	part := filepath.Join(dir, out.Name+".part")
	f, err := os.OpenFile(part, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return out, err
	}
	defer f.Close() // after the explicit Close below, a no-op
	h := sha256.New()
	cw := &countWriter{w: io.MultiWriter(f, h)}
	bw := bufio.NewWriterSize(cw, 256<<10)
	gz, err := gzip.NewWriterLevel(bw, gzipLevel)
	if err != nil {
		return out, err
	}
	gz.Name = strings.TrimSuffix(out.Name, ".gz")
	gz.ModTime = out.Started
	filt := newSQLFilter(gz, protect)

	log.Info("dumping", "role", role, "database", cfg.DBName, "server", out.Server.String())
	wctx, stop := watchProgress(ctx, stallAfter)
	warnings, err := run(wctx.ctx, t.path, defaults, args, nil, &progressWriter{w: filt, p: wctx}, cfg.Passwd)
	stop()
	if filt.err != nil {
		// The filter refused the stream; the tool's own error is then only a broken pipe.
		return out, filt.err
	}
	if err != nil {
		return out, err
	}
	if warnings != "" {
		log.Warn("dump tool warnings", "role", role, "database", cfg.DBName, "stderr", warnings)
	}
	if err := filt.Close(); err != nil {
		return out, err
	}
	if err := gz.Close(); err != nil {
		return out, err
	}
	if err := bw.Flush(); err != nil {
		return out, err
	}
	if err := f.Sync(); err != nil {
		return out, err
	}
	if err := f.Close(); err != nil {
		return out, err
	}
	if err := os.Rename(part, filepath.Join(dir, out.Name)); err != nil {
		return out, err
	}
	out.Size = cw.n
	out.SQLSize = filt.size()
	out.SHA256 = hex.EncodeToString(h.Sum(nil))
	out.Finished = time.Now().UTC()
	log.Info("dumped", "role", role, "database", cfg.DBName, "sql_bytes", out.SQLSize, "gz_bytes", out.Size,
		"seconds", out.Finished.Sub(out.Started).Seconds())
	return out, nil
}

// liveTables returns the names under which the database holds LiveTables (as the server
// spells them: lower_case_table_names=1 makes "repo" of "Repo"), plus LiveTables
// themselves, for --ignore-table.
func liveTables(ctx context.Context, db *sql.DB, dbName string) ([]string, error) {
	rows, err := db.QueryContext(ctx, "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?", dbName)
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	defer rows.Close()
	names := slices.Clone(LiveTables)
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, fmt.Errorf("list tables: %w", err)
		}
		for _, lt := range LiveTables {
			if strings.EqualFold(n, lt) && !slices.Contains(names, n) {
				names = append(names, n)
			}
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	return names, nil
}

func openDB(cfg *mysql.Config) (*sql.DB, error) {
	c := cfg.Clone()
	if c.Timeout == 0 {
		c.Timeout = 30 * time.Second
	}
	conn, err := mysql.NewConnector(c)
	if err != nil {
		return nil, err
	}
	return sql.OpenDB(conn), nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// List returns the complete sets in dir, newest first. A missing dir holds none.
// A set is complete when its manifest is readable and every file it lists is there
// with its recorded size; Verify also checks their SHA-256.
func List(dir string) ([]Set, error) {
	all, err := scan(dir)
	if err != nil {
		return nil, err
	}
	var sets []Set
	for _, s := range all {
		if s.complete {
			sets = append(sets, s.Set)
		}
	}
	return sets, nil
}

// Latest returns the newest complete set in dir, or ErrNoSet.
func Latest(dir string) (Set, error) {
	sets, err := List(dir)
	if err != nil {
		return Set{}, err
	}
	if len(sets) == 0 {
		return Set{}, fmt.Errorf("%w in %s", ErrNoSet, dir)
	}
	return sets[0], nil
}

// LatestBefore is the newest complete set made by t, and the sets dated after it: a set
// made while the clock ran ahead (NTP not synced at boot, a VM restored from a
// snapshot) is named in the future, sorts first for ever, and is no newer than the
// others for that. ErrNoSet if none was made by t.
func LatestBefore(dir string, t time.Time) (Set, []Set, error) {
	all, err := scan(dir)
	if err != nil {
		return Set{}, nil, err
	}
	var ahead []Set
	for _, s := range all {
		switch {
		case !s.complete:
		case s.when.After(t):
			ahead = append(ahead, s.Set)
		default:
			return s.Set, ahead, nil
		}
	}
	return Set{}, ahead, fmt.Errorf("%w made by %s in %s", ErrNoSet, t.UTC().Format(time.RFC3339), dir)
}

type scanned struct {
	Set
	when     time.Time
	seq      int
	complete bool
}

// scan finds every directory of dir that is named like a set and has a valid manifest,
// newest first.
func scan(dir string) ([]scanned, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("dump: %w", err)
	}
	var out []scanned
	for _, e := range entries {
		if !e.IsDir() {
			continue // files, and symlinks: never ours
		}
		m := setName.FindStringSubmatch(e.Name())
		if m == nil {
			continue
		}
		when, err := time.Parse(nameLayout, m[1])
		if err != nil {
			continue
		}
		seq := 1
		if m[2] != "" {
			seq, _ = strconv.Atoi(m[2])
		}
		path := filepath.Join(dir, e.Name())
		man, err := readManifest(path)
		if err != nil {
			continue
		}
		s := scanned{Set: Set{Name: e.Name(), Dir: path, Manifest: man}, when: when, seq: seq, complete: true}
		for _, f := range man.Files {
			fi, err := os.Stat(filepath.Join(path, f.Name))
			if err != nil || !fi.Mode().IsRegular() || fi.Size() != f.Size {
				s.complete = false
			}
		}
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b scanned) int {
		if c := b.when.Compare(a.when); c != 0 {
			return c
		}
		return b.seq - a.seq
	})
	return out, nil
}

func readManifest(setDir string) (Manifest, error) {
	var m Manifest
	f, err := os.Open(filepath.Join(setDir, ManifestName))
	if err != nil {
		return m, err
	}
	defer f.Close()
	if err := json.NewDecoder(io.LimitReader(f, 1<<20)).Decode(&m); err != nil {
		return m, err
	}
	if m.Format != manifestFormat {
		return m, fmt.Errorf("manifest format %d, not %d", m.Format, manifestFormat)
	}
	if _, ok := m.Files[Seafile]; !ok {
		return m, errors.New("manifest has no seafile dump")
	}
	for role, f := range m.Files {
		if !slices.Contains(Roles, role) || f.Name != fileName(role) || len(f.SHA256) != sha256.Size*2 {
			return m, fmt.Errorf("manifest entry %q is not valid", role)
		}
	}
	return m, nil
}

// freeName returns name if nothing in dir starts with it, else name-N with N above every
// set of that second, so that names keep sorting in the order sets were made even after
// pruning freed a lower number.
func freeName(dir, name string) (string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", err
	}
	top := 0
	for _, e := range entries {
		if e.Name() == name {
			top = max(top, 1)
		} else if rest, ok := strings.CutPrefix(e.Name(), name+"-"); ok {
			n, err := strconv.Atoi(rest)
			if err != nil {
				continue
			}
			top = max(top, n)
		}
	}
	if top == 0 {
		return name, nil
	}
	return name + "-" + strconv.Itoa(top+1), nil
}

// prune deletes the sets beyond the keep newest complete ones, never newest (the set
// just made, whatever the clock did). A set is first renamed to a ".tmp-" name, so a
// crash halfway through deleting it never leaves something that looks like a set.
func prune(dir string, keep int, newest string, log *slog.Logger) error {
	if keep <= 0 {
		return nil
	}
	all, err := scan(dir)
	if err != nil {
		return err
	}
	kept := 1
	var errs []error
	var newestWhen time.Time
	for _, s := range all {
		if s.Name == newest {
			newestWhen = s.when
		}
	}
	for _, s := range all {
		if s.Name == newest {
			continue
		}
		if s.when.After(newestWhen) {
			// Dated after the set just made: the clock ran ahead when it was made. It
			// takes no place of the newer sets, and is not deleted on a guess.
			log.Warn("a dump set is dated after the one just made (the clock ran ahead when it was made?): kept, and not counted in dump.keep; restore server passes over it unless named with --dump", "set", s.Name, "new_set", newest)
			continue
		}
		if s.complete && kept < keep {
			kept++
			continue
		}
		gone := filepath.Join(dir, ".tmp-pruned-"+s.Name+"-"+strconv.FormatInt(time.Now().UnixNano(), 36))
		if err := os.Rename(s.Dir, gone); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := fsutil.SyncDir(dir); err != nil {
			errs = append(errs, err)
		}
		if err := os.RemoveAll(gone); err != nil {
			errs = append(errs, err)
			continue
		}
		log.Info("deleted old dump set", "set", s.Name)
	}
	return errors.Join(errs...)
}

// sweepStale removes its own ".tmp-" directories (ownTemp) older than age: dumps that
// died, prunes that were interrupted. Run holds the directory's lock, so none is being written.
func sweepStale(dir string, age time.Duration, log *slog.Logger) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if !e.IsDir() || !ownTemp(e.Name()) {
			continue
		}
		fi, err := e.Info()
		if err != nil || time.Since(fi.ModTime()) < age {
			continue
		}
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			log.Warn("cannot remove a stale partial dump", "dir", e.Name(), "err", err)
			continue
		}
		log.Info("removed a stale partial dump", "dir", e.Name())
	}
}

// ownTemp reports whether name is one of the ".tmp-" directories Run makes: a set being
// written (".tmp-<set>-…"), pruned (".tmp-pruned-<set>-…") or that failed its read-back
// (".tmp-unverified-<set>"). A dump directory may be shared (/var/backups): another
// program's ".tmp-" directories are not the dump's to delete.
func ownTemp(name string) bool {
	rest, ok := strings.CutPrefix(name, ".tmp-")
	if !ok {
		return false
	}
	for _, kind := range []string{"pruned-", "unverified-"} {
		if r, ok := strings.CutPrefix(rest, kind); ok {
			rest = r
			break
		}
	}
	if len(rest) < len(nameLayout) {
		return false
	}
	_, err := time.Parse(nameLayout, rest[:len(nameLayout)])
	return err == nil
}

// lockDir takes an exclusive flock on dir itself (no lock file in it), released when
// the returned function runs or the process dies.
// locked is false where the filesystem has no flocks (the dump goes on unlocked).
func lockDir(dir string, log *slog.Logger) (unlock func(), locked bool, err error) {
	locked = true
	unlock, err = flockDir(dir, fsutil.TryFlock, ErrBusy, func(err error) {
		locked = false
		log.Warn("the dump directory cannot be locked; do not run two dumps into it at once", "dir", dir, "err", err)
	})
	return unlock, locked && err == nil, err
}

// ErrDumping: LockForLoad found a dump running into the directory.
var ErrDumping = errors.New("a seafbak dump is running into this directory (it may add a newer set and prune older ones); wait for it to finish, then run this again")

// LockForLoad keeps dumps out of dir while a set of it is loaded (restore server): a
// dump finishing meanwhile would prune the oldest sets beyond dump.keep, perhaps the
// one being loaded. It is a shared flock, so loads do not exclude each other; a dump
// running now is ErrDumping. The returned func releases it.
func LockForLoad(dir string) (func(), error) {
	return flockDir(dir, fsutil.TryFlockShared, ErrDumping, func(error) {})
}

// flockDir takes lock (exclusive or shared) on dir's own descriptor: busy when another
// holds it against this one; on a filesystem without flocks, unsupported is told and
// the caller goes on unlocked. The lock is released by Unflock, not by the close
// alone: a child forked by another goroutine would otherwise hold it until its exec.
func flockDir(dir string, lock func(int) error, busy error, unsupported func(error)) (func(), error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("dump: %w", err)
	}
	switch err := lock(int(f.Fd())); {
	case err == nil:
		return func() { fsutil.Unflock(int(f.Fd())); f.Close() }, nil
	case errors.Is(err, syscall.EWOULDBLOCK):
		f.Close()
		return nil, fmt.Errorf("%w (%s)", busy, dir)
	case fsutil.FlockUnsupported(err):
		unsupported(err)
		return func() { f.Close() }, nil
	default:
		f.Close()
		return nil, fmt.Errorf("dump: lock %s: %w", dir, err)
	}
}

// mkdirDurable creates dir (0700: dumps hold password hashes and sessions) and its
// missing parents, syncing each parent that gained an entry.
func mkdirDurable(dir string) error {
	if fi, err := os.Stat(dir); err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("%s is not a directory", dir)
		}
		return nil
	}
	parent := filepath.Dir(dir)
	if parent != dir {
		if err := mkdirDurable(parent); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return fsutil.SyncDir(parent)
}

// progress is the time of the last byte a dump tool sent, watched by watchProgress.
type progress struct {
	ctx  context.Context
	last atomic.Int64 // unix nanoseconds
}

// watchProgress returns a context that ends, with cause ErrStalled, once nothing was
// written through a progressWriter of it for stallAfter; stop ends the watch.
func watchProgress(parent context.Context, stallAfter time.Duration) (*progress, func()) {
	ctx, cancel := context.WithCancelCause(parent)
	p := &progress{ctx: ctx}
	p.last.Store(time.Now().UnixNano())
	done := make(chan struct{})
	go func() {
		tick := time.NewTicker(max(stallAfter/20, 10*time.Millisecond))
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case now := <-tick.C:
				if idle := now.Sub(time.Unix(0, p.last.Load())); idle >= stallAfter {
					cancel(fmt.Errorf("%w for %s: the dump tool was stopped (is the primary's database server up?)", ErrStalled, stallAfter))
					return
				}
			}
		}
	}()
	return p, func() {
		close(done)
		cancel(nil)
	}
}

// progressWriter notes each write in p.
type progressWriter struct {
	w io.Writer
	p *progress
}

func (w *progressWriter) Write(b []byte) (int, error) {
	w.p.last.Store(time.Now().UnixNano())
	return w.w.Write(b)
}
