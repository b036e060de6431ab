package dump

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"seafbak/internal/mariadbtest"
)

// Passwords with everything an option file could trip over.
const (
	dumpPassword = "p\"a'ss\\ w#rd;$x ü\t`end=\\"
	loadPassword = "#lead \"q\" \\n not-a-newline\nreal newline 密码 "
)

func testRows() int {
	if n, err := strconv.Atoi(os.Getenv("SEAFBAK_DUMP_TEST_ROWS")); err == nil && n > 0 {
		return n
	}
	return 20
}

// TestRoundTrip dumps three filled databases as a least-privileged password user, loads
// them into databases of other names as another password user, and compares every
// table, with the seafile database's live tables left out of the dump and untouched.
func TestRoundTrip(t *testing.T) {
	t.Parallel()
	rows := testRows()
	p := newPrimary(t, rows)
	dumper := user(t, dumpPassword, "SELECT, SHOW VIEW, TRIGGER", p.dbs[Ccnet], p.dbs[Seafile], p.dbs[Seahub])
	dir := t.TempDir()

	t0 := time.Now()
	set, err := Run(context.Background(), Options{
		Dir: dir, Keep: 3, Databases: p.databases(dumper, dumpPassword),
		Log: slog.New(slog.NewTextHandler(testLogger(t), nil)),
	})
	dumpTime := time.Since(t0)
	if err != nil {
		t.Fatal(err)
	}

	// The set: where and what List says, the manifest, the files.
	if got, err := Latest(dir); err != nil || got.Name != set.Name || got.Dir != set.Dir {
		t.Fatalf("Latest = %+v, %v; want %s", got, err, set.Name)
	}
	if !slices.Equal(set.Roles(), Roles) {
		t.Errorf("roles %v", set.Roles())
	}
	names, _ := os.ReadDir(set.Dir)
	var files []string
	for _, e := range names {
		files = append(files, e.Name())
	}
	if want := []string{"ccnet.sql.gz", "manifest.json", "seafile.sql.gz", "seahub.sql.gz"}; !slices.Equal(files, want) {
		t.Errorf("set holds %v, want %v", files, want)
	}
	for _, role := range Roles {
		f := set.Manifest.Files[role]
		if f.Database != p.dbs[role] || f.Server.Hostname == "" || f.Server.Datadir == "" || f.Server.Version == "" || f.SQLSize == 0 {
			t.Errorf("%s: manifest entry %+v", role, f)
		}
		sql := readSQL(t, set.Path(role))
		if bytes.HasPrefix(sql, []byte("/*M!999999")) || bytes.Contains(sql, []byte("sandbox mode */ \n")) {
			t.Errorf("%s: the dump keeps MariaDB's sandbox line", role)
		}
		if bytes.Contains(sql, []byte("\nUSE ")) || bytes.Contains(sql, []byte("CREATE DATABASE")) {
			t.Errorf("%s: the dump names its database", role)
		}
		if int64(len(sql)) != f.SQLSize {
			t.Errorf("%s: %d bytes of SQL, manifest says %d", role, len(sql), f.SQLSize)
		}
		if role == Seafile {
			for _, lt := range LiveTables {
				// At a line's start: the rows hold "DROP TABLE `Repo`" as data, escaped.
				if bytes.Contains(sql, []byte("\nDROP TABLE IF EXISTS `"+lt+"`")) || bytes.Contains(sql, []byte("\nCREATE TABLE `"+lt+"`")) ||
					bytes.Contains(sql, []byte("\nINSERT INTO `"+lt+"`")) {
					t.Errorf("the seafile dump holds the live table %s", lt)
				}
			}
			if !slices.Equal(f.IgnoredTables, LiveTables) {
				t.Errorf("ignored tables %v", f.IgnoredTables)
			}
		}
	}
	var m Manifest
	data, err := os.ReadFile(filepath.Join(set.Dir, ManifestName))
	if err != nil || json.Unmarshal(data, &m) != nil || m.Files[Seafile].SHA256 != set.Manifest.Files[Seafile].SHA256 {
		t.Errorf("manifest.json: %v\n%s", err, data)
	}
	if err := set.Verify(); err != nil {
		t.Error(err)
	}

	// Targets under other names: ccnet into an empty database; seafile into one with the
	// schema, its own live rows (as the sync engine keeps them) and stale rows elsewhere;
	// seahub over an older copy of itself.
	target := map[Role]string{}
	for _, role := range Roles {
		target[role] = mariadbtest.DBName(t) + "_restored_" + string(role)
	}
	must(t, srv.CreateDatabase(target[Ccnet]))
	must(t, srv.CreateDatabase(target[Seafile], mariadbtest.SchemaFile("seafile.sql")))
	fillAll(t, target[Seafile], 7, "backup")
	must(t, srv.CreateDatabase(target[Seahub], writeTemp(t, "seahub.sql", seahubSchema)))
	fillAll(t, target[Seahub], 5, "stale")
	tdb := openTestDB(t, target[Seafile])
	live := map[string]tableState{}
	for _, lt := range LiveTables {
		live[lt] = snapshot(t, tdb, lt)
	}
	loader := user(t, loadPassword, "ALL", target[Ccnet], target[Seafile], target[Seahub])

	t0 = time.Now()
	for _, role := range Roles {
		if err := Load(context.Background(), set, role, config(loader, loadPassword, target[role])); err != nil {
			t.Fatal(err)
		}
	}
	loadTime := time.Since(t0)

	ntables, nrows := 0, 0
	for _, role := range Roles {
		src, dst := openTestDB(t, p.dbs[role]), openTestDB(t, target[role])
		srcTables, dstTables := tables(t, src), tables(t, dst)
		if !slices.Equal(srcTables, dstTables) {
			t.Errorf("%s: tables %v, want %v", role, dstTables, srcTables)
		}
		for _, table := range srcTables {
			want := snapshot(t, src, table)
			got := snapshot(t, dst, table)
			if role == Seafile && slices.Contains(LiveTables, table) {
				if d := live[table].diff(got); d != "" {
					t.Errorf("live table %s changed by the load: %s", table, d)
				}
				if want.diff(got) == "" {
					t.Errorf("live table %s has the primary's rows", table)
				}
				continue
			}
			if d := want.diff(got); d != "" {
				t.Errorf("%s.%s: %s", role, table, d)
			}
			ntables++
			nrows += len(want.rows)
		}
	}
	var sizes []string
	for _, role := range Roles {
		f := set.Manifest.Files[role]
		sizes = append(sizes, string(role)+" "+strconv.FormatInt(f.SQLSize, 10)+" B SQL / "+strconv.FormatInt(f.Size, 10)+" B gz")
	}
	t.Logf("%d tables, %d rows (%s): dump %v, load %v", ntables, nrows, strings.Join(sizes, ", "), dumpTime.Round(time.Millisecond), loadTime.Round(time.Millisecond))

	t.Run("seafile into an empty database", func(t *testing.T) {
		empty := mariadbtest.DBName(t)
		must(t, srv.CreateDatabase(empty))
		if err := Load(context.Background(), set, Seafile, rootConfig(empty)); err != nil {
			t.Fatal(err)
		}
		got := tables(t, openTestDB(t, empty))
		for _, lt := range LiveTables {
			if slices.Contains(got, lt) {
				t.Errorf("loading created %s", lt)
			}
		}
		if len(got) != len(tables(t, openTestDB(t, p.dbs[Seafile])))-len(LiveTables) {
			t.Errorf("tables %v", got)
		}
	})
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func readSQL(t *testing.T, path string) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// blockDump write-locks a late table of the seafile database (tables are dumped in
// name order), so a dump of it stalls halfway, in the server, until unlock.
func blockDump(t *testing.T, seafileDB string) (unlock func()) {
	t.Helper()
	db := openTestDB(t, seafileDB)
	conn, err := db.Conn(context.Background())
	must(t, err)
	_, err = conn.ExecContext(context.Background(), "LOCK TABLES `VirtualRepo` WRITE")
	must(t, err)
	return func() {
		conn.ExecContext(context.Background(), "UNLOCK TABLES")
		conn.Close()
	}
}

// waitConns waits until the server has want connections of user waiting (waiting) or at
// all (!waiting).
func waitConns(t *testing.T, user string, waiting bool, want int) {
	t.Helper()
	db := openTestDB(t, "")
	q := "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = ?"
	if waiting {
		q += " AND STATE LIKE 'Waiting for table metadata lock%'"
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		var n int
		must(t, db.QueryRow(q, user).Scan(&n))
		if n == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d connections of %s (waiting: %v), want %d", n, user, waiting, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	must(t, err)
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

// TestKilledDumpLeavesNoSet kills (SIGKILL) a seafbak process in the middle of a dump:
// no set appears, the dump tool dies with it, no file anywhere it wrote (its TMPDIR, the
// dump directory) holds the password, the partial ".tmp-" directory is left for a later
// Run to remove once it is stale, and later dumps work.
func TestKilledDumpLeavesNoSet(t *testing.T) {
	t.Parallel()
	const pw = "kill-9-must-not-leave-this-password"
	p := newPrimary(t, 5)
	u := user(t, pw, "SELECT, SHOW VIEW, TRIGGER", p.dbs[Ccnet], p.dbs[Seafile], p.dbs[Seahub])
	dir := t.TempDir()
	tmpdir := t.TempDir()
	dsns := map[string]string{}
	for role, db := range p.dbs {
		dsns[string(role)] = srv.UserDSN(u, pw, db)
	}
	arg, _ := json.Marshal(helperArgs{Dir: dir, DSNs: dsns})

	unlock := blockDump(t, p.dbs[Seafile])
	defer unlock()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+string(arg), "TMPDIR="+tmpdir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	must(t, cmd.Start())
	waitConns(t, u, true, 1) // the dump of seafile is halfway, blocked
	must(t, cmd.Process.Signal(syscall.SIGKILL))
	err := cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
		t.Fatalf("helper was not killed: %v\n%s", err, stderr.String())
	}
	// The dump tool got SIGKILL when its parent died: its connection goes away.
	waitConns(t, u, false, 0)
	unlock()
	for _, root := range []string{tmpdir, dir} {
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := os.ReadFile(p)
			if err == nil && bytes.Contains(b, []byte(pw)) {
				t.Errorf("the killed dump left the password in %s", p)
			}
			return err
		})
		must(t, err)
	}

	if sets, err := List(dir); err != nil || len(sets) != 0 {
		t.Fatalf("List after a killed dump = %v, %v", sets, err)
	}
	if _, err := Latest(dir); !errors.Is(err, ErrNoSet) {
		t.Fatalf("Latest after a killed dump: %v", err)
	}
	names := dirNames(t, dir)
	if len(names) != 1 || !strings.HasPrefix(names[0], ".tmp-") {
		t.Fatalf("dir holds %v", names)
	}
	partial := dirNames(t, filepath.Join(dir, names[0]))
	if !slices.Equal(partial, []string{"ccnet.sql.gz", "seafile.sql.gz.part"}) {
		t.Errorf("the killed dump had written %v", partial)
	}

	// The next dump holds the directory's lock, so no other can be writing: the killed
	// one's partial dir goes at once, however young (a multi-GB one must not crowd out
	// the new dump).
	opts := Options{Dir: dir, Databases: p.databases(u, pw)}
	first, err := Run(context.Background(), opts)
	must(t, err)
	if got := dirNames(t, dir); !slices.Equal(got, []string{first.Name}) {
		t.Errorf("dir holds %v, want the new set alone", got)
	}
}

// TestSweepsLegacyDefaults: a Run removes the defaults files that killed runs of older
// seafbak versions left in TMPDIR (seafbak-dump-*/<role>.cnf), even when it then fails,
// and nothing else there.
func TestSweepsLegacyDefaults(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	left := filepath.Join(tmp, "seafbak-dump-123456")
	must(t, os.Mkdir(left, 0o700))
	must(t, os.WriteFile(filepath.Join(left, "seafile.cnf"), []byte("[client]\npassword=\"x\"\n"), 0o600))
	must(t, os.WriteFile(filepath.Join(left, "ccnet.cnf"), []byte("[client]\n"), 0o600))
	empty := filepath.Join(tmp, "seafbak-dump-789")
	must(t, os.Mkdir(empty, 0o700))
	notOurs := filepath.Join(tmp, "seafbak-dump-someone-elses")
	must(t, os.Mkdir(notOurs, 0o700))
	must(t, os.WriteFile(filepath.Join(notOurs, "notes.txt"), []byte("keep"), 0o600))
	must(t, os.WriteFile(filepath.Join(tmp, "seafbak-dump-file.cnf"), []byte("keep"), 0o600))

	_, err := Run(context.Background(), Options{Dir: t.TempDir(), Tool: "/nonexistent/mariadb-dump", Databases: map[Role]*mysql.Config{Seafile: rootConfig("x")}})
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/mariadb-dump") {
		t.Fatalf("Run with a missing tool: %v", err)
	}
	if got, want := dirNames(t, tmp), []string{"seafbak-dump-file.cnf", "seafbak-dump-someone-elses"}; !slices.Equal(got, want) {
		t.Errorf("TMPDIR holds %v, want %v", got, want)
	}
}

// TestCancelledDump cancels a Run whose dump tool is halfway: Run returns the
// cancellation, and neither a set nor a partial directory is left.
func TestCancelledDump(t *testing.T) {
	t.Parallel()
	p := newPrimary(t, 3)
	u := user(t, "pw", "SELECT, SHOW VIEW, TRIGGER", p.dbs[Seafile])
	dir := t.TempDir()
	unlock := blockDump(t, p.dbs[Seafile])
	defer unlock()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := Run(ctx, Options{Dir: dir, Databases: map[Role]*mysql.Config{Seafile: config(u, "pw", p.dbs[Seafile])}})
		done <- err
	}()
	waitConns(t, u, true, 1)
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Run = %v, want context.Canceled", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	waitConns(t, u, false, 0)
	if names := dirNames(t, dir); len(names) != 0 {
		t.Errorf("a cancelled dump left %v", names)
	}
}

// TestKeep keeps the newest Keep sets and never touches anything else in the directory.
func TestKeep(t *testing.T) {
	t.Parallel()
	db := mariadbtest.DBName(t)
	must(t, srv.CreateDatabase(db, mariadbtest.SchemaFile("seafile.sql")))
	fillAll(t, db, 2, "k")
	dir := t.TempDir()
	strays := []string{"notes.txt", "keepme", "2020-01-01T00-00-00Z", "2020-01-02T00-00-00Z-x"}
	for _, s := range strays {
		if strings.Contains(s, ".") && !strings.HasPrefix(s, ".tmp") {
			must(t, os.WriteFile(filepath.Join(dir, s), []byte("x"), 0o600))
		} else {
			must(t, os.Mkdir(filepath.Join(dir, s), 0o700))
		}
	}
	// Looks like a set, but its manifest is not one: never ours to delete.
	must(t, os.WriteFile(filepath.Join(dir, "2020-01-01T00-00-00Z", ManifestName), []byte("{}"), 0o600))
	old := filepath.Join(dir, ".tmp-2020-01-01T00-00-00Z-123")
	must(t, os.Mkdir(old, 0o700))
	must(t, os.WriteFile(filepath.Join(old, "seafile.sql.gz.part"), []byte("x"), 0o600))
	stale := time.Now().Add(-7 * time.Hour)
	must(t, os.Chtimes(old, stale, stale))
	// A young one goes too: the dump holds the directory's lock, so none is writing it.
	must(t, os.Mkdir(filepath.Join(dir, ".tmp-"+time.Now().UTC().Format(nameLayout)+"-young"), 0o700))

	opts := Options{Dir: dir, Keep: 2, Databases: map[Role]*mysql.Config{Seafile: rootConfig(db)}}
	var made []string
	for i := range 4 {
		set, err := Run(context.Background(), opts)
		must(t, err)
		made = append(made, set.Name)
		sets, err := List(dir)
		must(t, err)
		var got []string
		for _, s := range sets {
			got = append(got, s.Name)
		}
		want := slices.Clone(made[max(0, i-1):])
		slices.Reverse(want)
		if !slices.Equal(got, want) {
			t.Fatalf("after dump %d: List = %v, want %v", i+1, got, want)
		}
	}
	want := append(slices.Clone(strays), made[2], made[3])
	slices.Sort(want)
	if got := dirNames(t, dir); !slices.Equal(got, want) {
		t.Errorf("dir holds %v, want %v", got, want)
	}
	// Four dumps in about a second: names are told apart by a suffix.
	t.Logf("set names: %v", made)
}

// A set that fails its read-back (the disk returned other bytes, or an error) is no set:
// it was left listed, so status and the metrics showed it as the last dump, a failover
// picked it as the latest, and the next prune counted it among the sets kept, deleting
// a good one in its place (found by review). It is moved aside, reported, and the older
// sets stay.
func TestSetThatFailsItsReadBackIsNotASet(t *testing.T) {
	db := mariadbtest.DBName(t)
	must(t, srv.CreateDatabase(db, mariadbtest.SchemaFile("seafile.sql")))
	fillAll(t, db, 2, "r")
	dir := t.TempDir()
	opts := Options{Dir: dir, Keep: 1, Databases: map[Role]*mysql.Config{Seafile: rootConfig(db)}}
	good, err := Run(context.Background(), opts)
	must(t, err)
	beforeReadBack = func(setDir string) {
		p := filepath.Join(setDir, fileName(Seafile))
		data, err := os.ReadFile(p)
		must(t, err)
		data[len(data)/2] ^= 0xff // same size, other bytes
		must(t, os.WriteFile(p, data, 0o600))
	}
	defer func() { beforeReadBack = func(string) {} }()
	set, err := Run(context.Background(), opts)
	if err == nil || set.Name != "" || !strings.Contains(err.Error(), "reading it back failed") {
		t.Fatalf("a set damaged before its read-back: %+v, %v", set, err)
	}
	sets, err := List(dir)
	must(t, err)
	if len(sets) != 1 || sets[0].Name != good.Name {
		t.Fatalf("sets after the damaged one: %v, want only %s", sets, good.Name)
	}
	beforeReadBack = func(string) {}
	next, err := Run(context.Background(), opts)
	must(t, err)
	if got := dirNames(t, dir); !slices.Equal(got, []string{next.Name}) {
		t.Errorf("after the next dump the directory holds %v, want only %s (the damaged set swept)", got, next.Name)
	}
}

// TestBusy refuses a second dump into a directory another is writing to.
func TestBusy(t *testing.T) {
	dir := t.TempDir()
	unlock, _, err := lockDir(dir, slog.New(slog.DiscardHandler))
	must(t, err)
	defer unlock()
	_, err = Run(context.Background(), Options{Dir: dir, Databases: map[Role]*mysql.Config{Seafile: rootConfig("x")}})
	if !errors.Is(err, ErrBusy) {
		t.Fatalf("Run = %v, want ErrBusy", err)
	}
}

// A set being loaded (restore server) keeps dumps out, so none prunes it meanwhile; a
// dump running keeps the load out (it may prune); two loads go together.
func TestLoadAndDumpExcludeEachOther(t *testing.T) {
	dir := t.TempDir()
	unlock, _, err := lockDir(dir, slog.New(slog.DiscardHandler)) // a dump running
	must(t, err)
	if _, err := LockForLoad(dir); !errors.Is(err, ErrDumping) {
		t.Errorf("load during a dump: %v, want ErrDumping", err)
	}
	unlock()
	load1, err := LockForLoad(dir)
	must(t, err)
	load2, err := LockForLoad(dir)
	must(t, err)
	_, err = Run(context.Background(), Options{Dir: dir, Databases: map[Role]*mysql.Config{Seafile: rootConfig("x")}})
	if !errors.Is(err, ErrBusy) {
		t.Errorf("dump during a load: %v, want ErrBusy", err)
	}
	load1()
	load2()
	again, _, err := lockDir(dir, slog.New(slog.DiscardHandler))
	must(t, err)
	again()
}

// TestWrongPassword: the errors say access was denied and never hold a password.
func TestWrongPassword(t *testing.T) {
	t.Parallel()
	// Enough rows that the SQL overflows a pipe: the client quits with most of it unread.
	p := newPrimary(t, 30)
	u := user(t, dumpPassword, "ALL", p.dbs[Seafile])
	wrong := dumpPassword + "wrong"
	dir := t.TempDir()
	_, err := Run(context.Background(), Options{Dir: dir, Databases: map[Role]*mysql.Config{Seafile: config(u, wrong, p.dbs[Seafile])}})
	checkDenied(t, "Run", err, wrong, dumpPassword)
	if names := dirNames(t, dir); len(names) != 0 {
		t.Errorf("a failed dump left %v", names)
	}

	// The real client reports a wrong password at load time.
	set, err := Run(context.Background(), Options{Dir: dir, Databases: map[Role]*mysql.Config{Seafile: config(u, dumpPassword, p.dbs[Seafile])}})
	must(t, err)
	if set.Manifest.Files[Seafile].SQLSize < 256<<10 {
		t.Fatalf("only %d bytes of SQL", set.Manifest.Files[Seafile].SQLSize)
	}
	err = Load(context.Background(), set, Seafile, config(u, wrong, p.dbs[Seafile]))
	checkDenied(t, "Load", err, wrong, dumpPassword)
}

func checkDenied(t *testing.T, what string, err error, passwords ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s with a wrong password succeeded", what)
	}
	if !strings.Contains(err.Error(), "Access denied") {
		t.Errorf("%s: %v", what, err)
	}
	for _, pw := range passwords {
		if strings.Contains(err.Error(), pw) || strings.Contains(err.Error(), optionValue(pw)) {
			t.Errorf("%s: the error holds a password: %v", what, err)
		}
	}
	t.Logf("%s: %v", what, err)
}

// TestToolErrorIsScrubbed: whatever a failing tool prints, its error holds no password.
func TestToolErrorIsScrubbed(t *testing.T) {
	t.Parallel()
	bin := t.TempDir()
	fake := filepath.Join(bin, "fake-dump")
	must(t, os.WriteFile(fake, []byte("#!/bin/sh\ncase \"$1\" in --no-defaults) echo 'fake-dump Ver 1.0 Distrib 10.11-MariaDB'; exit 0;; esac\n"+
		"f=\"${1#--defaults-file=}\"\ncat \"$f\" >&2\nexit 2\n"), 0o755))
	db := mariadbtest.DBName(t)
	must(t, srv.CreateDatabase(db, mariadbtest.SchemaFile("seafile.sql")))
	u := user(t, dumpPassword, "ALL", db)
	_, err := Run(context.Background(), Options{Dir: t.TempDir(), Tool: fake, Databases: map[Role]*mysql.Config{Seafile: config(u, dumpPassword, db)}})
	if err == nil {
		t.Fatal("Run with a failing tool succeeded")
	}
	if !strings.Contains(err.Error(), `password="***"`) || !strings.Contains(err.Error(), "user=") {
		t.Errorf("the tool's stderr is not in the error: %v", err)
	}
	if strings.Contains(err.Error(), dumpPassword) || strings.Contains(err.Error(), optionValue(dumpPassword)) {
		t.Errorf("the error holds the password: %v", err)
	}
}

// TestDefaultsFile: the tools get credentials only through an inherited pipe (the
// defaults file is /dev/fd/3, a 0600 fifo, never a file on disk); not in their
// arguments or environment.
func TestDefaultsFile(t *testing.T) {
	p := newPrimary(t, 2)
	u := user(t, dumpPassword, "ALL", p.dbs[Seafile])
	bin := t.TempDir()
	logf := filepath.Join(bin, "log")
	wrap := func(name, real string) string {
		path := filepath.Join(bin, name)
		script := "#!/bin/sh\ncase \"$1\" in --defaults-file=*)\n" +
			"  f=\"${1#--defaults-file=}\"\n" +
			"  echo \"FILE $f $(stat -L -c %a \"$f\") $(stat -L -c %F \"$f\" | tr ' ' _)\" >>" + logf + "\n" +
			"  echo \"ARGS $*\" >>" + logf + "\n  env >>" + logf + "\n;; esac\nexec " + real + " \"$@\"\n"
		must(t, os.WriteFile(path, []byte(script), 0o755))
		return path
	}
	realDump, err := exec.LookPath("mariadb-dump")
	must(t, err)
	realClient, err := exec.LookPath("mariadb")
	must(t, err)
	tool := wrap("dump-wrapper", realDump)
	wrap("mariadb", realClient) // Load finds it first in PATH
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	t.Setenv("MYSQL_PWD", "leaked-from-env")

	set, err := Run(context.Background(), Options{Dir: t.TempDir(), Tool: tool, Databases: map[Role]*mysql.Config{Seafile: config(u, dumpPassword, p.dbs[Seafile])}})
	must(t, err)
	target := mariadbtest.DBName(t)
	must(t, srv.CreateDatabase(target))
	loader := user(t, loadPassword, "ALL", target)
	must(t, Load(context.Background(), set, Seafile, config(loader, loadPassword, target)))

	log, err := os.ReadFile(logf)
	must(t, err)
	files := 0
	sc := bufio.NewScanner(bytes.NewReader(log))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 4 && f[0] == "FILE" {
			files++
			if f[1] != "/dev/fd/3" || f[2] != "600" || f[3] != "fifo" {
				t.Errorf("defaults file %s (mode %s, %s), want /dev/fd/3, a 0600 fifo", f[1], f[2], f[3])
			}
		}
	}
	if files != 2 {
		t.Errorf("%d tool runs logged, want 2 (dump, load):\n%s", files, log)
	}
	for _, secret := range []string{dumpPassword, loadPassword, "leaked-from-env", "ü\t`end", "密码"} {
		if bytes.Contains(log, []byte(secret)) {
			t.Errorf("a tool saw %q in its arguments or environment", secret)
		}
	}
	if bytes.Contains(log, []byte("MYSQL_PWD")) {
		t.Errorf("MYSQL_PWD reached a tool")
	}
}

// TestLoadChecksTheFile refuses to load a file whose bytes are not the manifest's, before
// touching the target.
func TestLoadChecksTheFile(t *testing.T) {
	t.Parallel()
	p := newPrimary(t, 2)
	set, err := Run(context.Background(), Options{Dir: t.TempDir(), Databases: p.databases("", "")})
	must(t, err)
	path := set.Path(Seahub)
	b, err := os.ReadFile(path)
	must(t, err)
	b[len(b)/2] ^= 0x40
	must(t, os.WriteFile(path, b, 0o600))
	target := mariadbtest.DBName(t)
	must(t, srv.CreateDatabase(target))
	err = Load(context.Background(), set, Seahub, rootConfig(target))
	if err == nil || !strings.Contains(err.Error(), "SHA-256") {
		t.Fatalf("Load of a damaged file = %v", err)
	}
	if got := tables(t, openTestDB(t, target)); len(got) != 0 {
		t.Errorf("a refused load created %v", got)
	}
	if err := set.Verify(); err == nil {
		t.Error("Verify passed a damaged set")
	}
	// A truncated file changes its size: List no longer shows the set.
	must(t, os.WriteFile(path, b[:len(b)/2], 0o600))
	if sets, _ := List(filepath.Dir(set.Dir)); len(sets) != 0 {
		t.Errorf("List shows a set with a truncated file")
	}
}

func TestServerIdentity(t *testing.T) {
	t.Parallel()
	db := openTestDB(t, "")
	id, err := ServerIdentity(context.Background(), db)
	must(t, err)
	t.Logf("identity: %s; server_uid %q, server_uuid %q", id, id.ServerUID, id.ServerUUID)
	if id.Hostname == "" || id.Datadir == "" || id.Version == "" || id.ServerUID == "" || id.ServerUUID != "" {
		t.Errorf("identity %+v", id)
	}
	if !id.Same(id) {
		t.Error("a server is not the same as itself")
	}
	other := id
	other.Datadir = "/elsewhere/"
	if id.Same(other) {
		t.Error("another datadir on the same host is the same server")
	}
	renamed := id
	renamed.Hostname = "renamed"
	if !id.Same(renamed) {
		t.Error("a renamed host (same MAC, port, datadir) is another server")
	}
	mysqlA := Identity{ServerUUID: "a", Hostname: "h1", Datadir: "/d/"}
	mysqlB := Identity{ServerUUID: "a", Hostname: "h2", Datadir: "/e/"}
	if !mysqlA.Same(mysqlB) {
		t.Error("equal server_uuid is not the same server")
	}
}

// TestDefaultsFileParses has the real tools read the option files defaultsText makes,
// through run's pipe (--print-defaults): every value arrives as it was, TLS settings
// included.
func TestDefaultsFileParses(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"mariadb-dump", "mariadb"} {
		tl, err := findTool(context.Background(), "", name)
		must(t, err)
		cases := []struct {
			dsn  string
			want []string
		}{
			{srv.UserDSN("us\"er", dumpPassword, "db"), []string{"--user=us\"er", "--password=" + dumpPassword, "--protocol=SOCKET", "--socket=" + srv.Socket}},
			{"u:" + loadPassword + "@tcp([::1]:3307)/db?tls=true&timeout=5s", []string{"--password=" + loadPassword, "--protocol=TCP", "--host=::1", "--port=3307", "--ssl --ssl-verify-server-cert"}},
			{"u@tcp(db.example:3306)/db?tls=false", []string{"--host=db.example", "--skip-ssl"}},
			{"u@tcp(db.example:3306)/db?tls=skip-verify", []string{"--ssl"}},
		}
		for _, c := range cases {
			cfg, err := mysql.ParseDSN(c.dsn)
			must(t, err)
			text, err := defaultsText(cfg, tl)
			must(t, err)
			// Through run, as the tools get it: from the pipe, as /dev/fd/3.
			var stdout bytes.Buffer
			_, err = run(context.Background(), tl.path, text, []string{"--print-defaults"}, nil, &stdout, "")
			must(t, err)
			out := stdout.Bytes()
			for _, w := range c.want {
				if !strings.Contains(string(out), w) {
					t.Errorf("%s: %q not in\n%s", name, w, out)
				}
			}
			if strings.Contains(c.dsn, "timeout") && strings.Contains(string(out), "connect-timeout") != tl.knows("--connect-timeout") {
				t.Errorf("%s: connect-timeout handling: %s", name, out)
			}
		}
	}
}
