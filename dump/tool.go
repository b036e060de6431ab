package dump

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
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
	cmd.Env = childEnv("")
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
// that does not exist instead (privDir's, or /nonexistent).
func childEnv(privDir string) []string {
	env := make([]string, 0, len(os.Environ())+1)
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "MYSQL_") || strings.HasPrefix(k, "MARIADB_") || k == "LIBMYSQL_ENABLE_CLEARTEXT_PLUGIN" {
			continue
		}
		env = append(env, kv)
	}
	login := "/nonexistent/.mylogin.cnf"
	if privDir != "" {
		login = filepath.Join(privDir, "no-login-path.cnf")
	}
	return append(env, "MYSQL_TEST_LOGIN_FILE="+login)
}

// privateDir makes a directory only this user can enter, for defaults files.
func privateDir() (string, error) {
	d, err := os.MkdirTemp("", "seafbak-dump-")
	if err != nil {
		return "", err
	}
	if err := os.Chmod(d, 0o700); err != nil {
		os.RemoveAll(d)
		return "", err
	}
	return d, nil
}

// writeDefaults writes cfg's connection settings and credentials as a [client] option
// file, mode 0600, in privDir, and returns its path. It is passed as --defaults-file
// (not --defaults-extra-file: with that, ~/.my.cnf is read after it and its user or
// password would win), so nothing but this file decides where the tool connects.
func writeDefaults(privDir, name string, cfg *mysql.Config, t *tool) (string, error) {
	mariadb := t.mariadb
	var b strings.Builder
	b.WriteString("# written by seafbak for one run of a MariaDB/MySQL client; removed after it\n[client]\n")
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
	f, err := os.OpenFile(filepath.Join(privDir, name+".cnf"), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", err
	}
	if _, err := f.WriteString(b.String()); err != nil {
		f.Close()
		return "", err
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	return f.Name(), nil
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

// run runs path with args (the first of which is --defaults-file=...), stdin and stdout
// as given, and returns the tool's stderr (its warnings, when it succeeds) with secret
// scrubbed from it. A failure's error carries that stderr. The tool is killed if ctx
// ends, or if this process dies (SIGKILL as parent-death signal), so a dump tool never
// outlives the seafbak that started it.
func run(ctx context.Context, privDir, path string, args []string, stdin io.Reader, stdout io.Writer, secret string) (string, error) {
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = childEnv(privDir)
	cmd.Dir = privDir
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
	err := <-done
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
