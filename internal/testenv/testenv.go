// Package testenv builds the real parts an end-to-end test of seafbak needs: a primary
// (seafile database on a private MariaDB, seafile-data directory), a backup (store,
// database, state) and an engine wired between them, plus checks that compare the
// backup with the primary byte for byte.
package testenv

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"seafbak/internal/mariadbtest"
	"seafbak/internal/notiftest"
	"seafbak/internal/seafhttptest"
	"seafbak/restore"
	"seafbak/state"
	seafsync "seafbak/sync"
	"seafbak/sync/object"
	"seafbak/sync/primary"
	"seafbak/sync/store"
)

// Env is one primary and one backup, private to a test.
type Env struct {
	T                           testing.TB
	Srv                         *mariadbtest.Server
	PrimaryDB                   *sql.DB
	BackupDB                    *sql.DB
	PrimaryDBName, BackupDBName string
	PrimaryDir                  string // the primary's seafile-data
	BackupDir                   string // the backup's seafile-data
	StateDir                    string
	Store                       *store.FS
	State                       *state.Dir
	Catalog                     *primary.DB
	Objects                     *primary.Dir
	// FileServer, once StartFileServer ran, serves this primary over Seafile's HTTP
	// sync protocol, and Engine reads through it instead of the data dir.
	FileServer *seafhttptest.Server
	HTTP       *primary.HTTP
}

// SyncToken is the secret library tokens are derived from in tests.
const SyncToken = "seafbak-test-sync-token-0123456789"

// StartFileServer starts a protocol-faithful file server over this primary (its data
// dir and database) on a real socket; from then on Engine reads objects over HTTP.
func (e *Env) StartFileServer() *seafhttptest.Server {
	e.T.Helper()
	return e.startFileServer(seafhttptest.Options{})
}

// JWTKey is the notification servers' JWT_PRIVATE_KEY in tests.
var JWTKey = []byte("seafbak-test-jwt-private-key-0123456789")

// StartNotifications starts a notification server, and the file server as StartFileServer
// does but with notifications enabled: it hands out subscription tokens, and its
// BranchUpdated posts events to the notification server as the real one does after a
// commit. Call Env.Moved after publishing a commit.
func (e *Env) StartNotifications() (*notiftest.Server, *seafhttptest.Server) {
	e.T.Helper()
	n := &notiftest.Server{Key: JWTKey}
	url, err := n.Start()
	must(e.T, err)
	e.T.Cleanup(n.Stop)
	return n, e.startFileServer(seafhttptest.Options{NotificationURL: url, JWTKey: JWTKey})
}

func (e *Env) startFileServer(opts seafhttptest.Options) *seafhttptest.Server {
	e.T.Helper()
	opts.Prefix, opts.Logf = "/seafhttp", e.T.Logf
	s := seafhttptest.New(e.PrimaryDir, e.PrimaryDB, opts)
	base, err := s.Start()
	must(e.T, err)
	e.T.Cleanup(func() { s.Close() })
	e.FileServer = s
	e.HTTP, err = primary.NewHTTP(primary.HTTPOptions{URL: base, SyncToken: SyncToken, Backoff: 5 * time.Millisecond, StallTimeout: 5 * time.Second})
	must(e.T, err)
	return s
}

// Source is what Engine reads from: the data dir, or the file server once started.
func (e *Env) Source() primary.Source {
	if e.HTTP != nil {
		return primary.NewRemote(e.PrimaryDB, e.HTTP, SyncToken)
	}
	return primary.Combine(e.Catalog, e.Objects)
}

// New creates empty primary and backup databases (Seafile's real schema) and dirs.
func New(t testing.TB, srv *mariadbtest.Server) *Env {
	t.Helper()
	e := &Env{T: t, Srv: srv}
	root := t.TempDir()
	e.PrimaryDir = filepath.Join(root, "primary")
	e.BackupDir = filepath.Join(root, "backup")
	e.StateDir = filepath.Join(root, "state")
	must(t, os.MkdirAll(filepath.Join(e.PrimaryDir, "storage"), 0o755))
	name := mariadbtest.DBName(t)
	e.PrimaryDBName, e.BackupDBName = name+"_p", name+"_b"
	schema := mariadbtest.SchemaFile("seafile.sql")
	must(t, srv.CreateDatabase(e.PrimaryDBName, schema))
	must(t, srv.CreateDatabase(e.BackupDBName, schema))
	var err error
	e.PrimaryDB, err = srv.Open(e.PrimaryDBName)
	must(t, err)
	e.BackupDB, err = srv.Open(e.BackupDBName)
	must(t, err)
	t.Cleanup(func() { e.PrimaryDB.Close(); e.BackupDB.Close() })
	e.Store, err = store.NewFS(e.BackupDir, store.Batch)
	must(t, err)
	e.State, err = state.Open(e.StateDir)
	must(t, err)
	e.Catalog = primary.NewDB(e.PrimaryDB)
	e.Objects, err = primary.NewDir(e.PrimaryDir)
	must(t, err)
	return e
}

// Engine wires a sync engine between this primary and this backup.
func (e *Env) Engine(force bool) *seafsync.Engine {
	return &seafsync.Engine{
		Source:   e.Source(),
		Store:    e.Store,
		Rows:     store.NewRows(e.BackupDB),
		State:    e.State,
		Parallel: 4,
		Force:    force,
	}
}

// ModuleRoot is the directory holding go.mod.
func ModuleRoot(t testing.TB) string {
	dir, err := os.Getwd()
	must(t, err)
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("testenv: no go.mod above the working directory")
		}
		dir = parent
	}
}

// RealLibraryID is the library in testdata/real-library, written by real Seafile software.
const RealLibraryID = "7b89d49b-5c5c-4f42-8ded-940c84a3e206"

// LoadRealLibrary puts testdata/real-library on the primary: its objects in the data
// dir, its rows in the database.
func (e *Env) LoadRealLibrary() {
	e.T.Helper()
	src := filepath.Join(ModuleRoot(e.T), "testdata", "real-library")
	out, err := exec.Command("cp", "-a", filepath.Join(src, "storage")+"/.", filepath.Join(e.PrimaryDir, "storage")).CombinedOutput()
	if err != nil {
		e.T.Fatalf("copy real library: %v: %s", err, out)
	}
	rows, err := os.ReadFile(filepath.Join(src, "rows.sql"))
	must(e.T, err)
	for _, stmt := range strings.Split(string(rows), ";\n") {
		if strings.TrimSpace(stmt) == "" || strings.HasPrefix(strings.TrimSpace(stmt), "--") && !strings.Contains(stmt, "INSERT") {
			continue
		}
		if _, err := e.PrimaryDB.Exec(stmt); err != nil {
			e.T.Fatalf("load rows.sql: %v\n%s", err, stmt)
		}
	}
}

// ObjectKey names one object in a store.
type ObjectKey struct {
	Kind    object.Kind
	StoreID string
	ID      string
}

// Reachable lists every object reachable from head through the whole history, reading
// the seafile-data directory at dataDir. Missing objects are reported in missing.
func Reachable(t testing.TB, dataDir, repoID, storeID, head string) (found map[ObjectKey]bool, missing []ObjectKey) {
	t.Helper()
	found = map[ObjectKey]bool{}
	keys := object.Keys{RepoID: repoID, StoreID: storeID}
	key := func(kind object.Kind, id string) ObjectKey { return ObjectKey{kind, keys.For(kind), id} }
	read := func(k ObjectKey) []byte {
		data, err := os.ReadFile(filepath.Join(dataDir, "storage", string(k.Kind), k.StoreID, k.ID[:2], k.ID[2:]))
		if os.IsNotExist(err) {
			missing = append(missing, k)
			return nil
		}
		must(t, err)
		found[k] = true
		return data
	}
	seenFS := map[string]bool{}
	var walkFS func(id string)
	walkFS = func(id string) {
		if id == object.EmptyID || seenFS[id] {
			return
		}
		seenFS[id] = true
		raw := read(key(object.KindFS, id))
		if raw == nil {
			return
		}
		fs, err := object.ParseFS(id, raw)
		must(t, err)
		for _, d := range fs.Dirents {
			walkFS(d.ID)
		}
		for _, b := range fs.BlockIDs {
			k := key(object.KindBlock, b)
			if !found[k] {
				read(k)
			}
		}
	}
	seenC := map[string]bool{}
	queue := []string{head}
	for len(queue) > 0 {
		id := queue[0]
		queue = queue[1:]
		if seenC[id] {
			continue
		}
		seenC[id] = true
		raw := read(key(object.KindCommit, id))
		if raw == nil {
			continue
		}
		c, err := object.ParseCommit(raw, id, repoID)
		must(t, err)
		walkFS(c.RootID)
		queue = append(queue, c.Parents()...)
	}
	return found, missing
}

// CompareWithPrimary checks that everything reachable from head on the primary is in
// the backup with the same bytes, and that the backup has nothing the primary lacks.
func (e *Env) CompareWithPrimary(repoID, storeID, head string) {
	e.T.Helper()
	want, wantMissing := Reachable(e.T, e.PrimaryDir, repoID, storeID, head)
	got, gotMissing := Reachable(e.T, e.BackupDir, repoID, storeID, head)
	if len(wantMissing) > 0 {
		e.T.Fatalf("test setup: the primary itself lacks %v", wantMissing)
	}
	if len(gotMissing) > 0 {
		e.T.Fatalf("backup of %s at %s lacks %d objects, e.g. %v", repoID, head, len(gotMissing), gotMissing[0])
	}
	if len(got) != len(want) {
		e.T.Fatalf("backup reaches %d objects, primary %d", len(got), len(want))
	}
	for k := range want {
		a, err := os.ReadFile(filepath.Join(e.PrimaryDir, "storage", string(k.Kind), k.StoreID, k.ID[:2], k.ID[2:]))
		must(e.T, err)
		b, err := os.ReadFile(filepath.Join(e.BackupDir, "storage", string(k.Kind), k.StoreID, k.ID[:2], k.ID[2:]))
		must(e.T, err)
		if string(a) != string(b) {
			e.T.Fatalf("%s %s differs between primary and backup", k.Kind, k.ID)
		}
	}
}

// TreeText renders the tree of a backed-up commit in the format of
// testdata/real-library/trees/*.txt, reading every block from the backup.
func (e *Env) TreeText(repoID, storeID, commit string) string {
	e.T.Helper()
	ctx := context.Background()
	lib := restore.Library{RepoID: repoID, StoreID: storeID}
	c, err := restore.Commit(ctx, e.Store, lib, commit)
	must(e.T, err)
	var lines []string
	err = restore.Walk(ctx, e.Store, lib, c.RootID, func(en restore.Entry) error {
		if en.Dir {
			lines = append(lines, fmt.Sprintf("dir  -  %s/", en.Path))
			return nil
		}
		h := sha256.New()
		if err := restore.CopyFile(ctx, e.Store, lib, en, h); err != nil {
			return err
		}
		lines = append(lines, fmt.Sprintf("%s  %d  %s", hex.EncodeToString(h.Sum(nil)), en.Size, en.Path))
		return nil
	})
	must(e.T, err)
	sort.Slice(lines, func(i, j int) bool { return treePath(lines[i]) < treePath(lines[j]) })
	if len(lines) == 0 {
		return ""
	}
	return strings.Join(lines, "\n") + "\n"
}

func treePath(line string) string {
	parts := strings.SplitN(line, "  ", 3)
	return parts[len(parts)-1]
}

// BackupHead reads the library's master head from the backup database ("" if none).
func (e *Env) BackupHead(repoID string) string {
	e.T.Helper()
	var head string
	err := e.BackupDB.QueryRow("SELECT commit_id FROM Branch WHERE repo_id = ? AND name = 'master'", repoID).Scan(&head)
	if err == sql.ErrNoRows {
		return ""
	}
	must(e.T, err)
	return head
}

// CopyFile copies a file (used to corrupt or repair objects in tests).
func CopyFile(t testing.TB, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	must(t, err)
	defer in.Close()
	out, err := os.Create(to)
	must(t, err)
	_, err = io.Copy(out, in)
	must(t, err)
	must(t, out.Close())
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
