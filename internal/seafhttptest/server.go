package seafhttptest

import (
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"seafbak/internal/testcert"
)

// Route names a route of the sync protocol; it is the key of the request
// counters and of the misbehaviour knobs.
type Route string

// The routes this stand-in serves (paths relative to the base URL).
const (
	// RouteAny, given to a knob, means every route; given to Requests, it
	// counts every request.
	RouteAny Route = ""

	RouteProtocolVersion  Route = "protocol-version"   // GET /protocol-version
	RouteHeadCommitsMulti Route = "head-commits-multi" // POST /repo/head-commits-multi/
	RouteHeadCommit       Route = "commit/HEAD"        // GET /repo/<repo>/commit/HEAD
	RouteCommit           Route = "commit"             // GET /repo/<repo>/commit/<id>
	RouteFSIDList         Route = "fs-id-list"         // GET /repo/<repo>/fs-id-list/
	RoutePackFS           Route = "pack-fs"            // POST /repo/<repo>/pack-fs/
	RouteCheckFS          Route = "check-fs"           // POST /repo/<repo>/check-fs/
	RouteCheckBlocks      Route = "check-blocks"       // POST /repo/<repo>/check-blocks/
	RouteBlock            Route = "block"              // GET /repo/<repo>/block/<id>
	RoutePermissionCheck  Route = "permission-check"   // GET /repo/<repo>/permission-check/
	RouteJWTToken         Route = "jwt-token"          // GET /repo/<repo>/jwt-token

	// RouteNotImplemented counts requests for routes the real file server
	// has but this stand-in does not serve (uploads, quota-check,
	// block-map, accessible-repos): they get 501.
	RouteNotImplemented Route = "not-implemented"
	// RouteNotFound counts requests that match no route (404, as gorilla/mux
	// answers them: "404 page not found").
	RouteNotFound Route = "not-found"
)

// Options configure a Server. The zero value serves at the root path with
// no caching, like the file server's own port without a proxy in front.
type Options struct {
	// Prefix is the path the protocol is served under, e.g. "/seafhttp" as
	// behind Seafile's usual nginx/Apache configuration (which strips it
	// before the file server sees the path). "" serves at the root. Requests
	// outside the prefix get 404.
	Prefix string

	// CacheTTL is the life of cached token lookups, permission grants and
	// virtual-library store ids. The real file server uses 2 hours; 0 (the
	// default) disables the caches so that database changes take effect at
	// once. SetCacheTTL changes it while running.
	CacheTTL time.Duration

	// CcnetDB is the ccnet database, read for group memberships (tables
	// `Group` and GroupUser) when checking group shares. nil: group shares
	// never grant anything (the real server logs the failed query and goes
	// on the same way).
	CcnetDB *sql.DB
	// GroupTableName is the ccnet group table; "" means "Group".
	GroupTableName string
	// CloudMode, as the file server's cloud_mode, stops InnerPubRepo
	// (libraries shared with everybody) from granting read access.
	CloudMode bool

	// MaxPackSize is where pack-fs stops adding objects; 0 means 1 MiB as in
	// the file server (maxObjectPackSize).
	MaxPackSize int
	// FSIDListWorkers bounds concurrent fs-id-list computations; 0 means 10
	// as in the file server (fsIdWorkers). Excess requests wait.
	FSIDListWorkers int

	// NotificationURL and JWTKey are the file server's INNER_NOTIFICATION_SERVER_URL
	// and JWT_PRIVATE_KEY with ENABLE_NOTIFICATION_SERVER=true: jwt-token hands out
	// subscription tokens, and BranchUpdated posts events there. Unset: jwt-token is
	// 404 and BranchUpdated does nothing, as on a server without notifications.
	NotificationURL string
	JWTKey          []byte

	// Now is the clock for cache expiry; nil means time.Now.
	Now func() time.Time
	// Logf receives what the real server would log as errors (e.g. the
	// cause of a 500) and net/http's server errors; nil discards them.
	// testing.T.Logf fits.
	Logf func(format string, args ...any)
}

// Server is a test stand-in for Seafile's Go file server (the part that
// serves the HTTP sync protocol), reading a real seafile-data directory and
// a real seafile database. See the package documentation.
type Server struct {
	dataDir    string
	db         *sql.DB
	opts       Options
	prefix     string
	groupTable string
	maxPack    int
	fsIDSem    chan struct{}

	cacheTTL   atomic.Int64
	tokenCache ttlCache[tokenInfo]
	permCache  ttlCache[string]
	vrepoCache ttlCache[string]

	knobs knobs

	reqMu    sync.Mutex
	requests map[Route]int

	inflightMu sync.Mutex
	inflight   int
	idle       *sync.Cond // signalled when inflight drops to 0
	logOff     atomic.Bool

	mu        sync.Mutex
	srv       *http.Server
	url       string
	caPEM     []byte
	caDir     string
	closed    chan struct{}
	closeOnce sync.Once
}

// New returns a Server for the seafile-data directory dataDir (objects under
// dataDir/storage/{commits,fs,blocks}/<store>/<id[:2]>/<id[2:]>) and the
// seafile database db (Seafile's MySQL schema). Nothing listens until Start
// or StartTLS; Handler serves without a listener.
func New(dataDir string, db *sql.DB, opts Options) *Server {
	s := &Server{
		dataDir:    dataDir,
		db:         db,
		opts:       opts,
		prefix:     strings.TrimRight(opts.Prefix, "/"),
		groupTable: opts.GroupTableName,
		maxPack:    opts.MaxPackSize,
		requests:   make(map[Route]int),
		closed:     make(chan struct{}),
	}
	// The real file server reads its database through a bounded pool ([database]
	// max_connections in seafile.conf, 100 by default): many requests at once wait for a
	// connection rather than each opening one, which would exhaust the database server's
	// own max_connections (151 in the tests' MariaDB) when clients keep dozens of requests
	// in flight each.
	db.SetMaxOpenConns(32)
	if s.prefix != "" && !strings.HasPrefix(s.prefix, "/") {
		s.prefix = "/" + s.prefix
	}
	if s.groupTable == "" {
		s.groupTable = "Group"
	}
	if s.maxPack <= 0 {
		s.maxPack = 1 << 20
	}
	workers := opts.FSIDListWorkers
	if workers <= 0 {
		workers = 10
	}
	s.fsIDSem = make(chan struct{}, workers)
	s.idle = sync.NewCond(&s.inflightMu)
	s.cacheTTL.Store(int64(opts.CacheTTL))
	return s
}

func (s *Server) now() time.Time {
	if s.opts.Now != nil {
		return s.opts.Now()
	}
	return time.Now()
}

func (s *Server) logf(format string, args ...any) {
	if s.opts.Logf != nil && !s.logOff.Load() {
		s.opts.Logf("seafhttptest: "+format, args...)
	}
}

// SetCacheTTL changes the cache TTL (see Options.CacheTTL) for entries
// stored from now on; d <= 0 stops caching. Existing entries keep their
// expiry; ClearCaches drops them.
func (s *Server) SetCacheTTL(d time.Duration) { s.cacheTTL.Store(int64(d)) }

// ClearCaches forgets every cached token, permission and store id, as a
// restart of the file server would.
func (s *Server) ClearCaches() {
	s.tokenCache.clear()
	s.permCache.clear()
	s.vrepoCache.clear()
}

// Requests returns how many requests of route arrived since New (or the
// last ResetRequests), whatever they were answered; RouteAny counts all.
func (s *Server) Requests(route Route) int {
	s.reqMu.Lock()
	defer s.reqMu.Unlock()
	if route == RouteAny {
		n := 0
		for _, c := range s.requests {
			n += c
		}
		return n
	}
	return s.requests[route]
}

// ResetRequests sets every request counter to zero.
func (s *Server) ResetRequests() {
	s.reqMu.Lock()
	defer s.reqMu.Unlock()
	s.requests = make(map[Route]int)
}

func (s *Server) count(route Route) {
	s.reqMu.Lock()
	defer s.reqMu.Unlock()
	s.requests[route]++
}

// Handler returns the server's http.Handler (the Server itself), for use
// with a listener of the caller's choosing, e.g. httptest.NewServer. The
// connection-level knobs need a hijackable HTTP/1 connection; elsewhere
// they abort the handler (http.ErrAbortHandler) instead.
func (s *Server) Handler() http.Handler { return s }

// Start serves plain HTTP on a fresh 127.0.0.1 port and returns the base
// URL, e.g. "http://127.0.0.1:41234/seafhttp" (no trailing slash).
func (s *Server) Start() (string, error) { return s.start(false) }

// StartTLS is Start over HTTPS (HTTP/1.1 only) with a certificate for
// 127.0.0.1, ::1 and localhost issued by a private CA made for this Server;
// CAFile, CAPEM and CertPool give that CA to the client.
func (s *Server) StartTLS() (string, error) { return s.start(true) }

func (s *Server) start(useTLS bool) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.closed:
		return "", errors.New("seafhttptest: server is closed")
	default:
	}
	if s.srv != nil {
		return "", errors.New("seafhttptest: server already started")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	var logw io.Writer = io.Discard
	if s.opts.Logf != nil {
		logw = logfWriter(s.logf)
	}
	srv := &http.Server{Handler: s, ErrorLog: log.New(logw, "", 0)}
	scheme := "http"
	if useTLS {
		certs, err := testcert.New("seafhttptest private CA")
		if err != nil {
			l.Close()
			return "", err
		}
		cert, err := tls.X509KeyPair(certs.Cert, certs.Key)
		if err != nil {
			l.Close()
			return "", err
		}
		caPEM := certs.CA
		dir, err := os.MkdirTemp("", "seafhttptest-ca-")
		if err != nil {
			l.Close()
			return "", err
		}
		if err := os.WriteFile(path.Join(dir, "ca.pem"), caPEM, 0o644); err != nil {
			os.RemoveAll(dir)
			l.Close()
			return "", err
		}
		s.caPEM, s.caDir = caPEM, dir
		cfg := &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"http/1.1"}}
		srv.TLSConfig = cfg
		// An empty, non-nil TLSNextProto keeps HTTP/2 off: connections
		// must stay hijackable for the connection-level knobs.
		srv.TLSNextProto = map[string]func(*http.Server, *tls.Conn, http.Handler){}
		l = tls.NewListener(l, cfg)
		scheme = "https"
	}
	s.srv = srv
	s.url = scheme + "://" + l.Addr().String() + s.prefix
	go srv.Serve(l)
	return s.url, nil
}

type logfWriter func(format string, args ...any)

func (f logfWriter) Write(p []byte) (int, error) {
	f("%s", strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// URL returns the base URL given by Start or StartTLS ("" before).
func (s *Server) URL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.url
}

// CAFile returns the path of a PEM file holding the private CA certificate
// of StartTLS ("" before StartTLS). Close removes it.
func (s *Server) CAFile() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.caDir == "" {
		return ""
	}
	return path.Join(s.caDir, "ca.pem")
}

// CAPEM returns the PEM of the private CA of StartTLS (nil before).
func (s *Server) CAPEM() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]byte(nil), s.caPEM...)
}

// CertPool returns a pool holding only the private CA of StartTLS (nil
// before).
func (s *Server) CertPool() *x509.CertPool {
	pem := s.CAPEM()
	if pem == nil {
		return nil
	}
	p := x509.NewCertPool()
	p.AppendCertsFromPEM(pem)
	return p
}

// Close stops the listener, closes all connections (waking delayed and
// stalled responses), waits for running handlers to return and removes the
// CA file; after it, nothing more is logged, so Options.Logf may be a
// testing.T's. It does not close the databases. A closed Server cannot be
// started again.
func (s *Server) Close() error {
	s.closeOnce.Do(func() { close(s.closed) })
	s.mu.Lock()
	srv, dir := s.srv, s.caDir
	s.srv, s.caDir = nil, ""
	s.mu.Unlock()
	var err error
	if srv != nil {
		err = srv.Close()
	}
	s.inflightMu.Lock()
	for s.inflight > 0 {
		s.idle.Wait()
	}
	s.inflightMu.Unlock()
	s.logOff.Store(true)
	if dir != "" {
		if rerr := os.RemoveAll(dir); err == nil {
			err = rerr
		}
	}
	return err
}

// The file server's gorilla/mux routes (fileserver.go, newHTTPRouter).
// Repository ids must match [\da-z]{8}-...-[\da-z]{12} and object ids
// [\da-z]{40}: anything else matches no route and gets mux's 404.
const (
	reRepo = `([\da-z]{8}-[\da-z]{4}-[\da-z]{4}-[\da-z]{4}-[\da-z]{12})`
	reID   = `([\da-z]{40})`
)

type routeDef struct {
	re    *regexp.Regexp
	route Route
	h     func(s *Server, w http.ResponseWriter, r *http.Request, vars []string) *appError
}

var routes = []routeDef{
	{regexp.MustCompile(`^/protocol-version/?$`), RouteProtocolVersion, (*Server).protocolVersion},
	{regexp.MustCompile(`^/repo/` + reRepo + `/permission-check/?$`), RoutePermissionCheck, (*Server).permissionCheck},
	{regexp.MustCompile(`^/repo/` + reRepo + `/commit/HEAD/?$`), RouteHeadCommit, (*Server).headCommitOper},
	{regexp.MustCompile(`^/repo/` + reRepo + `/commit/` + reID + `$`), RouteCommit, (*Server).commitOper},
	{regexp.MustCompile(`^/repo/` + reRepo + `/block/` + reID + `$`), RouteBlock, (*Server).blockOper},
	{regexp.MustCompile(`^/repo/` + reRepo + `/fs-id-list/?$`), RouteFSIDList, (*Server).fsIDList},
	{regexp.MustCompile(`^/repo/head-commits-multi/?$`), RouteHeadCommitsMulti, (*Server).headCommitsMulti},
	{regexp.MustCompile(`^/repo/` + reRepo + `/pack-fs/?$`), RoutePackFS, (*Server).packFS},
	{regexp.MustCompile(`^/repo/` + reRepo + `/check-fs/?$`), RouteCheckFS, (*Server).checkFS},
	{regexp.MustCompile(`^/repo/` + reRepo + `/check-blocks/?$`), RouteCheckBlocks, (*Server).checkBlocks},
	{regexp.MustCompile(`^/repo/` + reRepo + `/jwt-token/?$`), RouteJWTToken, (*Server).jwtToken},
	{regexp.MustCompile(`^/repo/` + reRepo + `/(recv-fs|quota-check)/?$`), RouteNotImplemented, nil},
	{regexp.MustCompile(`^/repo/` + reRepo + `/block-map/` + reID + `$`), RouteNotImplemented, nil},
	{regexp.MustCompile(`^/accessible-repos/?$`), RouteNotImplemented, nil},
}

// cleanPath is gorilla/mux's cleanPath: path.Clean keeping a trailing slash.
func cleanPath(p string) string {
	if p == "" {
		return "/"
	}
	if p[0] != '/' {
		p = "/" + p
	}
	np := path.Clean(p)
	if p[len(p)-1] == '/' && np != "/" {
		np += "/"
	}
	return np
}

// ServeHTTP strips the prefix, routes as the file server's mux does and
// applies the misbehaviour knobs.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.inflightMu.Lock()
	s.inflight++
	s.inflightMu.Unlock()
	defer func() {
		s.inflightMu.Lock()
		s.inflight--
		if s.inflight == 0 {
			s.idle.Broadcast()
		}
		s.inflightMu.Unlock()
	}()
	p := r.URL.Path
	if s.prefix != "" {
		if p != s.prefix && !strings.HasPrefix(p, s.prefix+"/") {
			s.count(RouteNotFound)
			http.NotFound(w, r)
			return
		}
		p = p[len(s.prefix):]
	}
	// mux redirects non-canonical paths (//, /./, /../) to the clean path.
	if cp := cleanPath(p); cp != p {
		u := *r.URL
		u.Path = s.prefix + cp
		w.Header().Set("Location", u.String())
		w.WriteHeader(http.StatusMovedPermanently)
		return
	}
	var (
		def  *routeDef
		vars []string
	)
	for i := range routes {
		if m := routes[i].re.FindStringSubmatch(p); m != nil {
			def, vars = &routes[i], m[1:]
			break
		}
	}
	if def == nil {
		s.count(RouteNotFound)
		http.NotFound(w, r)
		return
	}
	s.count(def.route)
	if def.h == nil {
		http.Error(w, "not implemented by seafhttptest", http.StatusNotImplemented)
		return
	}
	rw := &respWriter{ResponseWriter: w, s: s, route: def.route, req: r}
	if !s.before(rw, r) {
		return
	}
	if e := def.h(s, rw, r, vars); e != nil {
		if e.err != nil && e.code == http.StatusInternalServerError {
			s.logf("path %s internal server error: %v", r.URL.Path, e.err)
		}
		http.Error(rw, e.msg, e.code)
	}
	rw.finish()
}

// sleep waits d unless the request goes away or the server closes; it
// reports whether the full time passed.
func (s *Server) sleep(r *http.Request, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		return false
	case <-s.closed:
		return false
	}
}

// String describes the server for test logs.
func (s *Server) String() string {
	return fmt.Sprintf("seafhttptest.Server(%s, %s)", s.dataDir, s.URL())
}
