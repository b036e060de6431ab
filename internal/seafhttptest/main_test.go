package seafhttptest

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"seafbak/internal/mariadbtest"
)

var dbsrv *mariadbtest.Server

func TestMain(m *testing.M) { mariadbtest.Main(m, &dbsrv) }

// The real library of testdata/real-library.
const (
	realRepo  = "7b89d49b-5c5c-4f42-8ded-940c84a3e206"
	realHead  = "5715208e10e33de4ac89cd441c52d948df77125b"
	realOwner = "bob@example.com"
	realDir   = "../../testdata/real-library"
)

// Commits of the real library (commits.txt).
const (
	cHead    = "5715208e10e33de4ac89cd441c52d948df77125b" // after-merge.txt added
	cMerge   = "d32f7ff1c30b4724f3ccaa86a30dab6d66bbb1c7" // Auto merge by system
	cOffline = "7106461e7c46e455de8c3f27bcd98dc21a824fc1" // second parent of the merge
	cFirst   = "5b0cb6d31cee94c689520373762f2a71c00fb837" // Created library (empty root)
)

// fixture is a private seafile database and seafile-data directory holding
// the real library, a RepoUserToken for its owner and a started Server.
type fixture struct {
	t       *testing.T
	dataDir string
	db      *sql.DB
	srv     *Server
	url     string
	token   string
	client  *http.Client
}

func newToken(t testing.TB) string {
	var b [20]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b[:])
}

// newDB makes a database with Seafile's seafile and ccnet schemas.
func newDB(t *testing.T) *sql.DB {
	return dbsrv.TestDB(t, mariadbtest.SchemaFile("seafile.sql"), mariadbtest.SchemaFile("ccnet.sql"))
}

// copyTree copies a directory tree, making everything writable (the test
// data is read-only) so t.TempDir can clean up.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// loadRows runs rows.sql statement by statement.
func loadRows(t *testing.T, db *sql.DB, file string) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for _, stmt := range strings.Split(string(data), ";\n") {
		stmt = strings.TrimSpace(stmt)
		if stmt == "" {
			continue
		}
		if _, err := db.Exec(stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
}

func addToken(t *testing.T, db *sql.DB, repoID, email string) string {
	t.Helper()
	tok := newToken(t)
	if _, err := db.Exec("INSERT INTO RepoUserToken (repo_id, email, token) VALUES (?, ?, ?)", repoID, email, tok); err != nil {
		t.Fatal(err)
	}
	return tok
}

func exec(t *testing.T, db *sql.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func newFixture(t *testing.T, opts Options) *fixture {
	t.Helper()
	f := &fixture{t: t, dataDir: t.TempDir(), db: newDB(t)}
	copyTree(t, filepath.Join(realDir, "storage"), filepath.Join(f.dataDir, "storage"))
	loadRows(t, f.db, filepath.Join(realDir, "rows.sql"))
	f.token = addToken(t, f.db, realRepo, realOwner)
	if opts.Logf == nil {
		opts.Logf = t.Logf
	}
	f.srv = New(f.dataDir, f.db, opts)
	url, err := f.srv.Start()
	if err != nil {
		t.Fatal(err)
	}
	f.url = url
	t.Cleanup(func() { f.srv.Close() })
	f.client = &http.Client{Timeout: 30 * time.Second}
	return f
}

type resp struct {
	code   int
	body   []byte
	header http.Header
}

// do sends a request with the given headers ("" values are not sent).
func (f *fixture) do(method, path string, body []byte, hdr ...string) resp {
	f.t.Helper()
	r, err := f.try(f.client, method, path, body, hdr...)
	if err != nil {
		f.t.Fatalf("%s %s: %v", method, path, err)
	}
	return r
}

func (f *fixture) try(c *http.Client, method, path string, body []byte, hdr ...string) (resp, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(context.Background(), method, f.url+path, rd)
	if err != nil {
		return resp{}, err
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i+1] != "" {
			req.Header.Set(hdr[i], hdr[i+1])
		}
	}
	res, err := c.Do(req)
	if err != nil {
		return resp{}, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return resp{code: res.StatusCode, body: b, header: res.Header}, err
	}
	return resp{code: res.StatusCode, body: b, header: res.Header}, nil
}

// get sends GET with the fixture's token.
func (f *fixture) get(path string) resp {
	f.t.Helper()
	return f.do(http.MethodGet, path, nil, "Seafile-Repo-Token", f.token)
}

// post sends POST with the fixture's token.
func (f *fixture) post(path string, body string) resp {
	f.t.Helper()
	return f.do(http.MethodPost, path, []byte(body), "Seafile-Repo-Token", f.token)
}

func (f *fixture) want(r resp, code int, body string) {
	f.t.Helper()
	if r.code != code || string(r.body) != body {
		f.t.Errorf("got %d %q, want %d %q", r.code, r.body, code, body)
	}
}

func (f *fixture) readObject(kind, store, id string) []byte {
	f.t.Helper()
	b, err := os.ReadFile(filepath.Join(f.dataDir, "storage", kind, store, id[:2], id[2:]))
	if err != nil {
		f.t.Fatal(err)
	}
	return b
}

func repoPath(repo, rest string) string { return "/repo/" + repo + "/" + rest }

func readDirNames(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(ents))
	for i, e := range ents {
		names[i] = e.Name()
	}
	return names, nil
}
