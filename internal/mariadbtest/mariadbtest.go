// Package mariadbtest runs private, throw-away MariaDB servers for tests.
//
// Each Server lives in its own temporary directory, listens only on a unix
// socket in that directory (no TCP port, so parallel test binaries never
// collide) and is stopped by the PID of the process this package started,
// never by process name, so a developer's own MariaDB is never touched.
//
// Typical use, one server per test binary:
//
//	var srv *mariadbtest.Server
//
//	func TestMain(m *testing.M) { mariadbtest.Main(m, &srv) }
//
//	func TestX(t *testing.T) {
//		name := mariadbtest.DBName(t)
//		if err := srv.CreateDatabase(name, mariadbtest.SchemaFile("seafile.sql")); err != nil {
//			t.Fatal(err)
//		}
//		db, err := srv.Open(name)
//		...
//	}
package mariadbtest

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

const (
	// readyTimeout bounds how long Start and Restart wait for the server to
	// answer; crash recovery after Kill is included in it.
	readyTimeout = 60 * time.Second
	// stopTimeout bounds a graceful shutdown before SIGKILL is used.
	stopTimeout = 30 * time.Second
	// maxSocketPath is the limit of sockaddr_un.sun_path (108) minus the
	// terminating NUL.
	maxSocketPath = 107
	// ownerFile records the PID of the test binary that owns a directory so
	// a later Start can remove directories whose owner died without Stop.
	ownerFile = "mariadbtest.owner"
	dirPrefix = "mdb"
)

// Server is a private MariaDB server started by Start.
//
// Its methods are safe for concurrent use, but Kill/Restart naturally break
// connections that other goroutines are using.
type Server struct {
	// Dir is the server's private temporary directory. It holds the datadir
	// (Dir/data), the socket, the pid file and the error log (Dir/error.log).
	Dir string
	// Socket is the unix socket the server listens on.
	Socket string

	mu   sync.Mutex
	proc *process // the running mariadbd; nil when not running
}

// process is one run of mariadbd.
type process struct {
	pid  int
	done chan struct{} // closed when the process has exited
	err  error         // wait status; read only after done is closed
}

// Start initialises a fresh datadir in a new temporary directory, starts
// mariadbd on it and waits until it answers SELECT 1 as root.
func Start() (*Server, error) {
	mariadbd, err := findBinary("mariadbd")
	if err != nil {
		return nil, err
	}
	installDB, err := findBinary("mariadb-install-db")
	if err != nil {
		return nil, err
	}

	sweepStaleDirs()
	dir, err := makeDir()
	if err != nil {
		return nil, err
	}
	s := &Server{Dir: dir, Socket: filepath.Join(dir, "mysqld.sock")}
	fail := func(err error) (*Server, error) {
		_ = s.Stop()
		return nil, err
	}

	args := []string{
		"--no-defaults",
		"--datadir=" + s.dataDir(),
		// Its own tmpdir, as the server has: a bootstrapping mariadbd clears the
		// #sql temp tables it finds in its tmpdir, so with /tmp shared, one test
		// binary's bootstrap deleted another's mid-install ("Unknown table
		// 'mysql.tmp_user_sys'"; 2 of 32 installs failed 8 at a time, 0 of 48 now).
		"--tmpdir=" + s.Dir,
		"--skip-test-db",
		// Bootstrap uses these too; a smaller redo log keeps each server's
		// directory at ~50 MB instead of ~115 MB.
		"--innodb-log-file-size=32M",
		"--innodb-buffer-pool-size=64M",
	}
	if os.Geteuid() == 0 {
		args = append(args, "--user=root", "--auth-root-authentication-method=socket")
	} else {
		// unix_socket auth would only let the OS user "root" in as root, so
		// a non-root CI runner gets a passwordless root@localhost instead.
		args = append(args, "--auth-root-authentication-method=normal")
	}
	out, err := exec.Command(installDB, args...).CombinedOutput()
	if err != nil {
		return fail(fmt.Errorf("mariadbtest: mariadb-install-db: %w\n%s", err, tail(out, 60))) // its error sits above 25 lines of advice
	}
	if err := s.start(mariadbd); err != nil {
		return fail(err)
	}
	return s, nil
}

// DSN returns a go-sql-driver/mysql DSN for root over the server's socket,
// with database db selected ("" for none). multiStatements stays off, as it
// should for application code.
func (s *Server) DSN(db string) string {
	return s.config("root", "", db).FormatDSN()
}

// UserDSN is like DSN but logs in as user with password, e.g. an account made
// by CreateUser.
func (s *Server) UserDSN(user, password, db string) string {
	return s.config(user, password, db).FormatDSN()
}

// Open returns a connection pool for DSN(db) that has already answered a
// ping, so setup errors surface here rather than in the first query.
func (s *Server) Open(db string) (*sql.DB, error) {
	return openPing(s.config("root", "", db))
}

// CreateDatabase creates database name (utf8mb4, as Seafile's own databases
// are) and loads each schema file into it in order. The files may contain
// several statements and mariadb-dump's /*!40101 ... */ comments.
func (s *Server) CreateDatabase(name string, schemaFiles ...string) error {
	root, err := s.Open("")
	if err != nil {
		return err
	}
	defer root.Close()
	_, err = root.Exec("CREATE DATABASE " + quoteIdent(name) +
		" CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci")
	if err != nil {
		return fmt.Errorf("mariadbtest: create database %s: %w", name, err)
	}
	if len(schemaFiles) == 0 {
		return nil
	}

	cfg := s.config("root", "", name)
	cfg.MultiStatements = true
	db, err := openPing(cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	for _, f := range schemaFiles {
		text, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("mariadbtest: load schema into %s: %w", name, err)
		}
		// One Exec keeps the dump's session variables (SET @saved_cs_client
		// ...) on one connection; the driver reports an error from any of
		// the statements, not only the first.
		if _, err := db.Exec(string(text)); err != nil {
			return fmt.Errorf("mariadbtest: load schema %s into %s: %w", f, name, err)
		}
	}
	return nil
}

// TestDB creates a database of its own for t (see DBName), loads each schema file into
// it and opens it; the pool is closed when t ends.
func (s *Server) TestDB(t testing.TB, schemaFiles ...string) *sql.DB {
	t.Helper()
	name := DBName(t)
	if err := s.CreateDatabase(name, schemaFiles...); err != nil {
		t.Fatal(err)
	}
	db, err := s.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// CreateUser creates (or replaces, so tests run with -count=N still work)
// the account user@'localhost' with password, authenticated by
// mysql_native_password, and applies each grant as
// "GRANT <grant> TO user@'localhost'", e.g. "SELECT ON `db`.*".
// 'localhost' is what a unix socket login matches.
func (s *Server) CreateUser(user, password string, grants ...string) error {
	cfg := s.config("root", "", "")
	// Account statements cannot be server-side prepared; client-side
	// interpolation quotes the name and password correctly instead.
	cfg.InterpolateParams = true
	db, err := openPing(cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	_, err = db.Exec("CREATE OR REPLACE USER ?@'localhost' IDENTIFIED VIA mysql_native_password USING PASSWORD(?)", user, password)
	if err != nil {
		return fmt.Errorf("mariadbtest: create user %s: %w", user, err)
	}
	for _, g := range grants {
		if _, err := db.Exec("GRANT "+g+" TO ?@'localhost'", user); err != nil {
			return fmt.Errorf("mariadbtest: grant %s to %s: %w", g, user, err)
		}
	}
	return nil
}

// Kill sends SIGKILL to mariadbd and waits for it to die, simulating a
// database crash. Dir (and so all data) is kept; use Restart to bring the
// server back, or Stop to clean up.
func (s *Server) Kill() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.proc
	if p == nil {
		return errors.New("mariadbtest: kill: mariadbd is not running")
	}
	if err := syscall.Kill(p.pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("mariadbtest: kill mariadbd (pid %d): %w", p.pid, err)
	}
	<-p.done
	s.proc = nil
	return nil
}

// StopKeep shuts mariadbd down gracefully (SIGTERM, then SIGKILL after 30 s)
// and keeps Dir, so Restart can bring the same data back. It is a no-op if
// mariadbd is not running.
func (s *Server) StopKeep() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopLocked()
}

// Stop shuts mariadbd down gracefully if it is running and removes Dir.
// It is safe to call after Kill or StopKeep, and more than once.
func (s *Server) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.stopLocked()
	if s.Dir != "" {
		if rerr := os.RemoveAll(s.Dir); rerr != nil {
			err = errors.Join(err, fmt.Errorf("mariadbtest: remove %s: %w", s.Dir, rerr))
		}
	}
	return err
}

// Restart starts mariadbd again on the same datadir and socket after Kill or
// StopKeep and waits until it answers (InnoDB crash recovery included).
func (s *Server) Restart() error {
	mariadbd, err := findBinary("mariadbd")
	if err != nil {
		return err
	}
	if _, err := os.Stat(s.dataDir()); err != nil {
		return fmt.Errorf("mariadbtest: restart: %w", err)
	}
	return s.start(mariadbd)
}

// Running reports whether the mariadbd started by this Server is alive.
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return false
	}
	select {
	case <-s.proc.done:
		return false
	default:
		return true
	}
}

// PID returns the process ID of the running mariadbd, or 0.
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return 0
	}
	return s.proc.pid
}

// ErrorLog returns the last lines of the server's error log, for test
// failure messages.
func (s *Server) ErrorLog() string {
	b, _ := os.ReadFile(s.errorLog())
	return string(tail(b, 30))
}

// SchemaFile returns the absolute path of testdata/seafile-schema/name (e.g.
// "seafile.sql", "ccnet.sql") in this module. Tests run with the package
// directory as working directory, so the module root is found by walking up
// to go.mod. It panics if there is no go.mod above the working directory,
// which only happens when tests are run from outside the module.
func SchemaFile(name string) string {
	dir, err := os.Getwd()
	if err != nil {
		panic(fmt.Sprintf("mariadbtest: schema file %s: %v", name, err))
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "testdata", "seafile-schema", name)
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			panic(fmt.Sprintf("mariadbtest: schema file %s: no go.mod above the working directory", name))
		}
		dir = parent
	}
}

var (
	dbCounter   atomic.Int64
	nonIdentRun = regexp.MustCompile(`[^A-Za-z0-9_]+`)
)

// DBName returns a database name derived from t.Name() that is unique within
// this process, so tests (including subtests, parallel tests and -count=N
// reruns) sharing one server each get their own database. It fits
// MariaDB's 64-character limit and needs no quoting, though callers should
// quote it anyway.
func DBName(t testing.TB) string {
	base := strings.Trim(nonIdentRun.ReplaceAllString(t.Name(), "_"), "_")
	base = strings.ToLower(base)
	if len(base) > 40 {
		base = base[:40]
	}
	return "t_" + base + "_" + strconv.FormatInt(dbCounter.Add(1), 10)
}

// Main is for TestMain: it starts a server into *srv, runs the tests, stops
// the server and exits with the tests' code. When the server cannot start it
// prints why and exits 1: a missing MariaDB must fail CI, not skip tests.
func Main(m *testing.M, srv **Server) {
	// testing.Verbose needs the flags; m.Run does not parse them twice.
	if !flag.Parsed() {
		flag.Parse()
	}
	t0 := time.Now()
	s, err := Start()
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: %v\n", err)
		os.Exit(1)
	}
	if testing.Verbose() {
		fmt.Fprintf(os.Stderr, "mariadbtest: server ready in %s at %s\n", time.Since(t0).Round(time.Millisecond), s.Socket)
	}
	*srv = s
	code := m.Run()
	if err := s.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

// start launches mariadbd on the existing datadir and waits until it answers.
func (s *Server) start(mariadbd string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		return fmt.Errorf("mariadbtest: start mariadbd: already running as pid %d", s.proc.pid)
	}
	// A killed server leaves these behind; clear them so nothing can
	// mistake them for the new server's.
	_ = os.Remove(s.Socket)
	_ = os.Remove(filepath.Join(s.Dir, "mysqld.pid"))

	args := []string{
		"--no-defaults",
		"--datadir=" + s.dataDir(),
		"--socket=" + s.Socket,
		"--pid-file=" + filepath.Join(s.Dir, "mysqld.pid"),
		"--log-error=" + s.errorLog(),
		"--tmpdir=" + s.Dir,
		"--skip-networking",
		"--skip-log-bin",
		"--innodb-buffer-pool-size=64M",
		"--innodb-log-file-size=32M",
		// io_uring/libaio are often unavailable in containers (seccomp,
		// aio-max-nr); tests do not need them.
		"--innodb-use-native-aio=0",
		// Commits reach the OS page cache, which survives SIGKILL of
		// mariadbd, so Kill tests still see committed data; only an OS
		// crash could lose it.
		"--innodb-flush-log-at-trx-commit=2",
		"--character-set-server=utf8mb4",
		"--collation-server=utf8mb4_general_ci",
	}
	if os.Geteuid() == 0 {
		args = append(args, "--user=root")
	}
	cmd := exec.Command(mariadbd, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// Own process group: a terminal ^C reaches the test binary, which
		// then stops the server in order, rather than both at once.
		Setpgid: true,
		// If the test binary dies (panic, -timeout, SIGKILL) the server
		// must not outlive it.
		Pdeathsig: syscall.SIGKILL,
	}

	// Pdeathsig fires when the forking *thread* exits, and Go may retire
	// threads. So fork from a goroutine locked to its thread that lives
	// exactly as long as the child, waiting for it.
	p := &process{done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		p.pid = cmd.Process.Pid
		started <- nil
		p.err = cmd.Wait()
		close(p.done)
	}()
	if err := <-started; err != nil {
		return fmt.Errorf("mariadbtest: start mariadbd: %w", err)
	}
	s.proc = p
	if err := s.waitReady(p); err != nil {
		_ = s.stopLocked()
		return err
	}
	return nil
}

// waitReady polls SELECT 1 until it succeeds, p exits or readyTimeout passes.
func (s *Server) waitReady(p *process) error {
	cfg := s.config("root", "", "")
	cfg.Timeout = time.Second
	deadline := time.Now().Add(readyTimeout)
	for {
		select {
		case <-p.done:
			return fmt.Errorf("mariadbtest: start mariadbd: exited early (%v); error log:\n%s", p.err, s.ErrorLog())
		default:
		}
		err := ping(cfg)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("mariadbtest: start mariadbd: not ready after %s: %w; error log:\n%s", readyTimeout, err, s.ErrorLog())
		}
		select {
		case <-p.done:
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func ping(cfg *mysql.Config) error {
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return err
	}
	db := sql.OpenDB(conn)
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var one int
	return db.QueryRowContext(ctx, "SELECT 1").Scan(&one)
}

// stopLocked terminates the running mariadbd, if any; s.mu must be held.
func (s *Server) stopLocked() error {
	p := s.proc
	if p == nil {
		return nil
	}
	// ESRCH just means it already exited; done is closed or about to be.
	if err := syscall.Kill(p.pid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("mariadbtest: stop mariadbd (pid %d): %w", p.pid, err)
	}
	defer func() { s.proc = nil }()
	select {
	case <-p.done:
		return nil
	case <-time.After(stopTimeout):
		_ = syscall.Kill(p.pid, syscall.SIGKILL)
		<-p.done
		return fmt.Errorf("mariadbtest: stop mariadbd (pid %d): still running %s after SIGTERM, killed; error log:\n%s", p.pid, stopTimeout, s.ErrorLog())
	}
}

func (s *Server) config(user, password, db string) *mysql.Config {
	cfg := mysql.NewConfig()
	cfg.User = user
	cfg.Passwd = password
	cfg.Net = "unix"
	cfg.Addr = s.Socket
	cfg.DBName = db
	// A dead server should fail a test quickly, not hang it.
	cfg.Timeout = 10 * time.Second
	return cfg
}

func openPing(cfg *mysql.Config) (*sql.DB, error) {
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("mariadbtest: open %s: %w", cfg.DBName, err)
	}
	db := sql.OpenDB(conn)
	if err := db.Ping(); err != nil {
		db.Close()
		return nil, fmt.Errorf("mariadbtest: open %q as %s: %w", cfg.DBName, cfg.User, err)
	}
	return db, nil
}

func (s *Server) dataDir() string  { return filepath.Join(s.Dir, "data") }
func (s *Server) errorLog() string { return filepath.Join(s.Dir, "error.log") }

// findBinary looks in PATH and then /usr/sbin, where Debian installs
// mariadbd but which is not in a normal user's PATH.
func findBinary(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"} {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("mariadbtest: %s not found in PATH or /usr/sbin (install mariadb-server, or run scripts/test.sh)", name)
}

// makeDir creates the server directory, falling back to /tmp when $TMPDIR is
// so long that the socket path would not fit in sun_path.
func makeDir() (string, error) {
	const sockSuffix = "/mysqld.sock"
	parent := os.TempDir()
	if len(parent)+len("/"+dirPrefix)+12+len(sockSuffix) > maxSocketPath {
		parent = "/tmp"
	}
	dir, err := os.MkdirTemp(parent, dirPrefix)
	if err != nil {
		return "", fmt.Errorf("mariadbtest: create server dir: %w", err)
	}
	if len(dir)+len(sockSuffix) > maxSocketPath {
		os.RemoveAll(dir)
		return "", fmt.Errorf("mariadbtest: socket path %s%s is longer than %d bytes", dir, sockSuffix, maxSocketPath)
	}
	owner := strconv.Itoa(os.Getpid())
	if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(owner), 0o600); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("mariadbtest: create server dir: %w", err)
	}
	return dir, nil
}

// sweepStaleDirs removes server directories left by test binaries that died
// without Stop (each is ~50 MB). A directory is only removed when both its
// owning test binary and its mariadbd are gone, so servers of concurrently
// running test binaries are never touched. Errors are ignored: this is
// housekeeping.
func sweepStaleDirs() {
	for _, parent := range []string{os.TempDir(), "/tmp"} {
		matches, _ := filepath.Glob(filepath.Join(parent, dirPrefix+"*"))
		for _, dir := range matches {
			owner, ok := readPID(filepath.Join(dir, ownerFile))
			if !ok || owner == os.Getpid() || alive(owner) {
				continue
			}
			if server, ok := readPID(filepath.Join(dir, "mysqld.pid")); ok && alive(server) {
				continue
			}
			_ = os.RemoveAll(dir)
		}
		if os.TempDir() == "/tmp" {
			break
		}
	}
}

func readPID(path string) (int, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid, err == nil && pid > 0
}

// alive reports whether pid is a live process. A zombie counts as dead: in
// containers whose init does not reap, a killed mariadbd stays one forever.
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	// The state follows the parenthesised command name, which may itself
	// contain ") ".
	if i := bytes.LastIndex(stat, []byte(") ")); i >= 0 && i+2 < len(stat) {
		return stat[i+2] != 'Z'
	}
	return true
}

func quoteIdent(name string) string {
	return "`" + strings.ReplaceAll(name, "`", "``") + "`"
}

// tail returns the last n lines of b.
func tail(b []byte, n int) []byte {
	b = bytes.TrimRight(b, "\n")
	if len(b) == 0 {
		return b
	}
	i := len(b)
	for ; n > 0 && i > 0; n-- {
		i = bytes.LastIndexByte(b[:i], '\n')
		if i < 0 {
			return b
		}
	}
	return b[i+1:]
}
