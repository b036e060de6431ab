package dump

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"
)

// tool is a MariaDB/MySQL command-line program (mariadb-dump, mysqldump, mariadb,
// mysql) and what it said about itself.
type tool struct {
	path    string
	version string // first line of --version
	mariadb bool   // MariaDB's build (mysqldump is often a symlink to mariadb-dump)
	help    string // --help, to tell which options this build knows
}

// toolDirs are searched after PATH: Debian installs the clients in /usr/bin, which cron
// always has, but MySQL's tarballs live in /usr/local/mysql/bin.
var toolDirs = []string{"/usr/bin", "/usr/local/bin", "/usr/local/mysql/bin"}

// findTool returns the program override names (a path, or a name looked up in PATH),
// or else the first of names found in PATH or toolDirs, and asks it what it is.
func findTool(ctx context.Context, override string, names ...string) (*tool, error) {
	path := ""
	if override != "" {
		p, err := exec.LookPath(override)
		if err != nil {
			return nil, fmt.Errorf("dump tool %s: %w", override, err)
		}
		path = p
	} else {
	search:
		for _, n := range names {
			if p, err := exec.LookPath(n); err == nil {
				path = p
				break
			}
			for _, d := range toolDirs {
				if p, err := exec.LookPath(filepath.Join(d, n)); err == nil {
					path = p
					break search
				}
			}
		}
		if path == "" {
			return nil, fmt.Errorf("none of %s found in PATH or %s (install mariadb-client)", strings.Join(names, ", "), strings.Join(toolDirs, ", "))
		}
	}
	t := &tool{path: path}
	// --no-defaults: no option file can change what the tool reports, nor make it fail.
	ver, err := probe(ctx, path, "--no-defaults", "--version")
	if err != nil {
		return nil, err
	}
	t.version, _, _ = strings.Cut(strings.TrimSpace(ver), "\n")
	t.mariadb = strings.Contains(ver, "MariaDB")
	if t.help, err = probe(ctx, path, "--no-defaults", "--help"); err != nil {
		return nil, err
	}
	return t, nil
}

func probe(ctx context.Context, path string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = childEnv()
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s %s: %w: %s", path, strings.Join(args, " "), err, firstBytes(out.Bytes(), 2000))
	}
	return out.String(), nil
}

// knows reports whether the tool's --help lists option (e.g. "--set-gtid-purged").
func (t *tool) knows(option string) bool {
	for _, line := range strings.Split(t.help, "\n") {
		line = strings.TrimSpace(line)
		// "  -R, --routines ..." or "  --set-gtid-purged=name ..."
		if _, rest, ok := strings.Cut(line, "--"); ok && strings.HasPrefix(line, "-") {
			name := rest
			if i := strings.IndexAny(name, "= \t["); i >= 0 {
				name = name[:i]
			}
			if "--"+name == option {
				return true
			}
		}
	}
	return false
}

// childEnv is this process's environment without the variables MariaDB and MySQL
// clients read connection settings from (MYSQL_PWD, MYSQL_HOST, MYSQL_TCP_PORT, ...):
// the defaults file alone says where to connect and as whom. MySQL's clients read
// ~/.mylogin.cnf even under --defaults-file; MYSQL_TEST_LOGIN_FILE points them at a file
// that does not exist instead.
func childEnv() []string {
	env := make([]string, 0, len(os.Environ())+1)
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "MYSQL_") || strings.HasPrefix(k, "MARIADB_") || k == "LIBMYSQL_ENABLE_CLEARTEXT_PLUGIN" {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "MYSQL_TEST_LOGIN_FILE=/nonexistent/.mylogin.cnf")
}

// defaultsFD is the descriptor the child reads its defaults file from: ExtraFiles[0].
const defaultsFD = 3

// maxDefaults bounds the defaults text: it is written whole into a pipe before the
// child starts, and a write beyond the pipe's capacity (64 KiB on Linux) would block.
const maxDefaults = 32 << 10

// legacyPrivPrefix names the directories under os.TempDir() where seafbak before
// issue 7 wrote defaults files; a run that was killed left them there, password and all.
const legacyPrivPrefix = "seafbak-dump-"

// sweepLegacyDefaults removes what killed runs of older seafbak versions left in
// os.TempDir(): directories named seafbak-dump-*, owned by this user, holding nothing
// but *.cnf files. Nothing writes there any more, so none is in use.
func sweepLegacyDefaults(log *slog.Logger) {
	tmp := os.TempDir()
	entries, err := os.ReadDir(tmp)
	if err != nil {
		return
	}
	for _, e := range entries {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), legacyPrivPrefix) {
			continue
		}
		d := filepath.Join(tmp, e.Name())
		fi, err := os.Lstat(d)
		if err != nil || !fi.IsDir() {
			continue
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); !ok || int(st.Uid) != os.Getuid() {
			continue
		}
		files, err := os.ReadDir(d)
		if err != nil {
			continue
		}
		ours := true
		for _, f := range files {
			if !f.Type().IsRegular() || !strings.HasSuffix(f.Name(), ".cnf") {
				ours = false
				break
			}
		}
		if !ours {
			continue
		}
		if err := os.RemoveAll(d); err != nil {
			log.Warn("cannot remove credentials an older seafbak left; remove them by hand", "dir", d, "err", err)
			continue
		}
		log.Info("removed credentials an older seafbak left", "dir", d)
	}
}

// defaultsText renders cfg's connection settings and credentials as a [client] option
// file. run hands it to the tool as --defaults-file (not --defaults-extra-file: with
// that, ~/.my.cnf is read after it and its user or password would win), so nothing but
// this text decides where the tool connects.
func defaultsText(cfg *mysql.Config, t *tool) (string, error) {
	mariadb := t.mariadb
	var b strings.Builder
	b.WriteString("# written by seafbak for one run of a MariaDB/MySQL client\n[client]\n")
	opt := func(k, v string) { fmt.Fprintf(&b, "%s=%s\n", k, optionValue(v)) }
	if cfg.User != "" {
		opt("user", cfg.User)
	}
	if cfg.Passwd != "" {
		opt("password", cfg.Passwd)
	}
	switch cfg.Net {
	case "unix":
		opt("protocol", "SOCKET")
		opt("socket", cfg.Addr)
	case "tcp", "tcp4", "tcp6", "":
		addr := cfg.Addr
		if addr == "" {
			addr = "127.0.0.1:3306"
		}
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			host, port = addr, "3306"
		}
		// protocol=TCP: otherwise the clients take host "localhost" to mean the socket.
		opt("protocol", "TCP")
		opt("host", host)
		opt("port", port)
	default:
		return "", fmt.Errorf("network %q is not supported by the command-line clients (use tcp or unix)", cfg.Net)
	}
	if cfg.Timeout > 0 && t.knows("--connect-timeout") { // the clients know it, the dump tools not
		opt("connect-timeout", strconv.Itoa(int((cfg.Timeout+time.Second-1)/time.Second)))
	}
	if cfg.Net != "unix" {
		switch cfg.TLSConfig {
		case "":
			// Without tls= the Go driver, so seafbak's own checks, speak plain text.
			// MariaDB's clients from 11.4 on ask for a verified TLS by default, and
			// would fail every dump of a primary without it; MySQL's prefer TLS and
			// fall back.
			if mariadb {
				b.WriteString("skip-ssl\n")
			}
		case "false":
			if mariadb {
				b.WriteString("skip-ssl\n")
			} else {
				opt("ssl-mode", "DISABLED")
			}
		case "true":
			if mariadb {
				b.WriteString("ssl\nssl-verify-server-cert\n")
			} else {
				opt("ssl-mode", "VERIFY_IDENTITY")
			}
		case "skip-verify":
			if mariadb {
				b.WriteString("ssl\n")
			} else {
				opt("ssl-mode", "REQUIRED")
			}
		case "preferred":
			if !mariadb {
				opt("ssl-mode", "PREFERRED")
			}
		default:
			return "", fmt.Errorf("the TLS config %q is registered in Go and cannot be handed to the command-line clients; use tls=true, skip-verify, preferred or false", cfg.TLSConfig)
		}
	}
	return b.String(), nil
}

// optionValue quotes v for a MariaDB/MySQL option file: in double quotes, with the
// escapes the option file parser knows (\\ \" \n \r \t \b), so any byte but NUL
// (and '#', which is a comment outside quotes) survives.
func optionValue(v string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(v); i++ {
		switch c := v[i]; c {
		case '\\':
			b.WriteString(`\\`)
		case '"':
			b.WriteString(`\"`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		case '\b':
			b.WriteString(`\b`)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// scrub removes secret, as it is and as it appears in an option file, from s.
func scrub(s, secret string) string {
	if secret == "" {
		return s
	}
	q := optionValue(secret)
	s = strings.ReplaceAll(s, q, `"***"`)
	s = strings.ReplaceAll(s, q[1:len(q)-1], "***")
	return strings.ReplaceAll(s, secret, "***")
}

// capBuffer keeps the first max bytes written to it.
type capBuffer struct {
	buf  bytes.Buffer
	max  int
	lost int64
}

func (c *capBuffer) Write(p []byte) (int, error) {
	if room := c.max - c.buf.Len(); room < len(p) {
		if room > 0 {
			c.buf.Write(p[:room])
		}
		c.lost += int64(len(p) - max(room, 0))
		return len(p), nil
	}
	return c.buf.Write(p)
}

func (c *capBuffer) String() string {
	s := strings.TrimSpace(c.buf.String())
	if c.lost > 0 {
		s += fmt.Sprintf(" ... (%d more bytes)", c.lost)
	}
	return s
}

func firstBytes(b []byte, n int) string {
	if len(b) > n {
		b = b[:n]
	}
	return strings.TrimSpace(string(b))
}

// run runs path with "--defaults-file=/dev/fd/3" and args, stdin and stdout as given,
// and returns the tool's stderr (its warnings, when it succeeds) with secret scrubbed
// from it. A failure's error carries that stderr. The tool is killed if ctx ends, or if
// this process dies (SIGKILL as parent-death signal), so a dump tool never outlives the
// seafbak that started it.
//
// The defaults text reaches the tool through a pipe it inherits as fd 3, filled and
// closed for writing before it starts: no file ever holds the password, so nothing is
// left on disk whatever kills seafbak or the tool (a file, even in a private directory,
// outlives a kill -9). The clients open --defaults-file by name (stat, then fopen),
// which /dev/fd/N serves; the pipe is mode 0600, so none takes it for a world-writable
// file to ignore. mariadb-dump and mariadb are tested reading it (TestDefaultsFile*).
func run(ctx context.Context, path, defaults string, args []string, stdin io.Reader, stdout io.Writer, secret string) (string, error) {
	if len(defaults) > maxDefaults {
		return "", fmt.Errorf("%s: the defaults file would be %d bytes, more than %d", filepath.Base(path), len(defaults), maxDefaults)
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return "", fmt.Errorf("%s: defaults pipe: %w", filepath.Base(path), err)
	}
	defer pr.Close()
	_, err = pw.WriteString(defaults)
	if cerr := pw.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("%s: defaults pipe: %w", filepath.Base(path), err)
	}
	args = append([]string{"--defaults-file=/dev/fd/" + strconv.Itoa(defaultsFD)}, args...)
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = childEnv()
	// The clients resolve --defaults-file against the working directory and fail if it
	// is gone; "/" always exists and is nothing the tool could litter.
	cmd.Dir = "/"
	cmd.ExtraFiles = []*os.File{pr} // fd 3 = defaultsFD
	cmd.Stdin = stdin
	cmd.Stdout = stdout
	stderr := &capBuffer{max: 16 << 10}
	cmd.Stderr = stderr
	// After a kill, do not wait forever for pipes a grandchild might hold.
	cmd.WaitDelay = 10 * time.Second
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}

	// The parent-death signal fires when the forking *thread* exits, so fork from a
	// thread locked for exactly as long as the child lives.
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			done <- err
			return
		}
		done <- cmd.Wait()
	}()
	err = <-done
	msg := scrub(stderr.String(), secret)
	if err != nil {
		if ctx.Err() != nil {
			return msg, fmt.Errorf("%s: %w", filepath.Base(path), context.Cause(ctx))
		}
		var exit *exec.ExitError
		if errors.As(err, &exit) && msg != "" {
			return msg, fmt.Errorf("%s: %v: %s", filepath.Base(path), err, msg)
		}
		if msg != "" {
			return msg, fmt.Errorf("%s: %w: %s", filepath.Base(path), err, msg)
		}
		return msg, fmt.Errorf("%s: %w", filepath.Base(path), err)
	}
	return msg, nil
}
