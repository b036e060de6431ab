// Package s3test runs a real S3 server for tests: VersityGW (github.com/versity/versitygw,
// the posix backend over a temp dir), not a fake. Each server is a child process (the
// test binary itself, re-executed), because VersityGW allows one gateway per process
// and its posix backend chdirs into its root; a child can also be killed -9 and
// restarted on the same port and data, as a real server restarts.
//
// A package that uses Start calls Main from its TestMain:
//
//	func TestMain(m *testing.M) { s3test.Main(m) }
package s3test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/versity/versitygw/backend/meta"
	"github.com/versity/versitygw/backend/posix"
	"github.com/versity/versitygw/embedgw"
	"golang.org/x/sys/unix"

	"seafbak/internal/testcert"
)

// Credentials and region every server here accepts.
const (
	AccessKey = "seafbak-test-access"
	SecretKey = "seafbak-test-secret-do-not-print"
	Region    = "us-east-1"
)

const (
	envServe = "SEAFBAK_S3TEST_SERVE" // set in the child: serve instead of running tests
	envDir   = "SEAFBAK_S3TEST_DIR"
	envAddr  = "SEAFBAK_S3TEST_ADDR"
)

// Main runs the package's tests, or, in a child started by Start, the S3 server.
func Main(m *testing.M) {
	ServeIfChild()
	code := m.Run()
	shared.mu.Lock()
	if shared.s != nil {
		shared.s.Stop()
		os.RemoveAll(shared.s.dir)
	}
	shared.mu.Unlock()
	os.Exit(code)
}

// ServeIfChild is, in a child started by Start, the S3 server: it serves and exits.
// Otherwise it returns at once. A TestMain that must run another harness (mariadbtest.Main)
// calls it first instead of Main; such a package uses Start, not Shared, since Main's
// cleanup of the shared server does not run.
func ServeIfChild() {
	if os.Getenv(envServe) == "" {
		return
	}
	if err := serve(os.Getenv(envDir), os.Getenv(envAddr)); err != nil {
		fmt.Fprintln(os.Stderr, "s3test server:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

var shared struct {
	mu  sync.Mutex
	s   *Server
	err error
}

// Shared is one server for the whole test binary, started on first use and stopped
// when Main's tests end. Tests must not stop it: those that kill a server use Start.
func Shared(t testing.TB) *Server {
	t.Helper()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.s == nil && shared.err == nil {
		dir, err := os.MkdirTemp("", "s3test-")
		if err == nil {
			shared.s, err = newServer(dir)
			if err != nil {
				os.RemoveAll(dir)
			}
		}
		shared.err = err
	}
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.s
}

func serve(dir, addr string) error {
	data, side := filepath.Join(dir, "data"), filepath.Join(dir, "meta")
	for _, d := range []string{data, side} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	// Metadata in xattrs (half the time of a sidecar dir per PUT), or in a sidecar dir
	// where the filesystem has no user xattrs (an older tmpfs).
	var ms meta.MetadataStorer = meta.XattrMeta{}
	opts := posix.PosixOpts{}
	if err := unix.Setxattr(data, "user.s3test", []byte("1"), 0); err != nil {
		sc, err := meta.NewSideCar(side)
		if err != nil {
			return err
		}
		ms, opts.SideCarDir = sc, side
	}
	be, err := posix.New(data, ms, opts)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	cfg := &embedgw.Config{
		RootUserAccess: AccessKey,
		RootUserSecret: SecretKey,
		Region:         Region,
		Ports:          []string{addr},
		// Far above what one test package opens: each test's client keeps its idle
		// connections, and at 250 a `go test -count=3` ran into "Server.Concurrency
		// limit exceeded" (503) while making buckets.
		MaxConnections:    4096,
		MaxRequests:       1024,
		MultipartMaxParts: 10000,
		Quiet:             true,
		KeepAlive:         true,
	}
	if _, err := os.Stat(filepath.Join(dir, "cert.pem")); err == nil {
		cfg.CertFile, cfg.KeyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	}
	err = embedgw.RunVersityGW(ctx, be, cfg)
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// Server is one VersityGW process serving S3 on a loopback port, over its own temp dir.
type Server struct {
	// Endpoint is host:port: plain HTTP, or HTTPS for StartTLS.
	Endpoint string
	// CAFile is the PEM certificate of the private CA a StartTLS server's certificate
	// is signed with; empty for plain HTTP.
	CAFile string
	dir    string
	log    string
	cmd    *exec.Cmd
	exited chan struct{}
}

// Start starts a server of the test's own; it is killed when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	s, err := newServer(t.TempDir())
	if s != nil {
		t.Cleanup(s.Stop)
	}
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// StartTLS starts a server of the test's own that speaks HTTPS only, with a
// certificate for 127.0.0.1 from a private CA (CAFile): what ca_file is for.
func StartTLS(t testing.TB) *Server {
	t.Helper()
	dir := t.TempDir()
	if err := writeCert(dir); err != nil {
		t.Fatal(err)
	}
	s, err := newServer(dir)
	if s != nil {
		t.Cleanup(s.Stop)
	}
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// writeCert writes a private CA (ca.pem) and a certificate it signs for 127.0.0.1
// (cert.pem, key.pem).
func writeCert(dir string) error {
	certs, err := testcert.New("s3test private CA")
	if err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		data []byte
		perm os.FileMode
	}{{"ca.pem", certs.CA, 0o644}, {"cert.pem", certs.Cert, 0o644}, {"key.pem", certs.Key, 0o600}} {
		if err := os.WriteFile(filepath.Join(dir, f.name), f.data, f.perm); err != nil {
			return err
		}
	}
	return nil
}

func newServer(dir string) (*Server, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	// The port is free again for the child; the race with another process taking it
	// in between is the usual one of tests, and fails loudly.
	addr := l.Addr().String()
	l.Close()
	s := &Server{Endpoint: addr, dir: dir, log: filepath.Join(dir, "server.log")}
	if _, err := os.Stat(filepath.Join(dir, "ca.pem")); err == nil {
		s.CAFile = filepath.Join(dir, "ca.pem")
	}
	return s, s.start()
}

func (s *Server) start() error {
	logf, err := os.OpenFile(s.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	// -test.run=^$: a test binary whose TestMain does not call Main runs no tests and
	// exits, which start reports, instead of running the tests again in a loop.
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envServe+"=1", envDir+"="+s.dir, envAddr+"="+s.Endpoint)
	cmd.Stdout, cmd.Stderr = logf, logf
	// The server must not outlive a test binary killed by a timeout.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("s3test: start server: %w", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	s.cmd, s.exited = cmd, exited

	c, err := s.client()
	if err != nil {
		return err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := c.ListBuckets(ctx)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("s3test: server exited before serving (does TestMain call s3test.Main?): %s", s.logTail())
		default:
		}
		if time.Now().After(deadline) {
			s.Stop()
			return fmt.Errorf("s3test: server not serving after 30s: %v: %s", err, s.logTail())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *Server) logTail() string {
	b, _ := os.ReadFile(s.log)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return strings.TrimSpace(string(b))
}

// Stop kills the server at once (SIGKILL: no flush, no goodbye), as a crash would.
func (s *Server) Stop() {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Kill()
	<-s.exited
	s.cmd = nil
}

// Restart kills the server and starts it again on the same port and data.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Stop()
	if err := s.start(); err != nil {
		t.Fatal(err)
	}
}

// Resume starts a stopped server again on the same port and data.
func (s *Server) Resume(t testing.TB) {
	t.Helper()
	if s.cmd != nil {
		t.Fatal("s3test: Resume of a running server")
	}
	if err := s.start(); err != nil {
		t.Fatal(err)
	}
}

func (s *Server) client() (*minio.Client, error) {
	if s.CAFile == "" {
		return clientOf(s.Endpoint)
	}
	pemBytes, err := os.ReadFile(s.CAFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pemBytes)
	tr, err := minio.DefaultTransport(true)
	if err != nil {
		return nil, err
	}
	tr.TLSClientConfig = &tls.Config{RootCAs: pool}
	return minio.New(s.Endpoint, &minio.Options{
		Creds:        credentials.NewStaticV4(AccessKey, SecretKey, ""),
		Region:       Region,
		Secure:       true,
		Transport:    tr,
		BucketLookup: minio.BucketLookupPath,
		MaxRetries:   1,
	})
}

func clientOf(endpoint string) (*minio.Client, error) {
	return minio.New(endpoint, &minio.Options{
		Creds:        credentials.NewStaticV4(AccessKey, SecretKey, ""),
		Region:       Region,
		BucketLookup: minio.BucketLookupPath,
		MaxRetries:   1,
	})
}

// Client is a plain S3 client of the server, for checks that bypass the code under test.
func (s *Server) Client(t testing.TB) *minio.Client {
	t.Helper()
	c, err := s.client()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// ClientVia is a plain S3 client of endpoint (a Proxy's) with the servers' credentials.
func ClientVia(t testing.TB, endpoint string) *minio.Client {
	t.Helper()
	c, err := clientOf(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// MakeBuckets creates buckets.
func (s *Server) MakeBuckets(t testing.TB, names ...string) {
	t.Helper()
	c := s.Client(t)
	for _, n := range names {
		if err := c.MakeBucket(context.Background(), n, minio.MakeBucketOptions{Region: Region}); err != nil {
			t.Fatalf("s3test: make bucket %s: %v", n, err)
		}
	}
}

// Keys lists every key in a bucket.
func (s *Server) Keys(t testing.TB, bucket string) []string {
	t.Helper()
	var keys []string
	for o := range s.Client(t).ListObjects(context.Background(), bucket, minio.ListObjectsOptions{Recursive: true}) {
		if o.Err != nil {
			t.Fatalf("s3test: list %s: %v", bucket, o.Err)
		}
		keys = append(keys, o.Key)
	}
	return keys
}
