package restore_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"seafbak/dump"
	"seafbak/internal/mariadbtest"
	"seafbak/internal/seafgen"
	"seafbak/internal/testenv"
	"seafbak/restore"
	"seafbak/state"
	"seafbak/sync/object"
	"seafbak/sync/store"
)

// realHead is the head of testdata/real-library.
const realHead = "5715208e10e33de4ac89cd441c52d948df77125b"

// dbConfig is root's config for database db on s.
func dbConfig(t *testing.T, s *mariadbtest.Server, db string) *mysql.Config {
	t.Helper()
	c, err := mysql.ParseDSN(s.DSN(db))
	must(t, err)
	return c
}

// failoverPrimary is a primary (on srv) with the real library backed up and ccnet and
// seahub databases holding a little data, dumped into a set.
type failoverPrimary struct {
	env     *testenv.Env
	dumpDir string
	set     dump.Set
}

func newFailoverPrimary(t *testing.T) *failoverPrimary {
	t.Helper()
	ctx := context.Background()
	env := testenv.New(t, srv)
	env.LoadRealLibrary()
	testenv.SyncOK(t, env.Engine(false), testenv.RealLibraryID)

	ccnet, seahub := env.PrimaryDBName+"_ccnet", env.PrimaryDBName+"_seahub"
	must(t, srv.CreateDatabase(ccnet, mariadbtest.SchemaFile("ccnet.sql")))
	must(t, srv.CreateDatabase(seahub))
	runSQL(t, srv, ccnet, "INSERT INTO EmailUser (email, passwd, is_staff, is_active, ctime) VALUES ('zoë@example.com', 'PBKDF2SHA256$x', 0, 1, 1700000000)")
	runSQL(t, srv, seahub, "CREATE TABLE base_userstarredfiles (id int PRIMARY KEY AUTO_INCREMENT, email varchar(255), repo_id char(36), path longtext)",
		"INSERT INTO base_userstarredfiles (email, repo_id, path) VALUES ('zoë@example.com', '"+testenv.RealLibraryID+"', '/a')")

	p := &failoverPrimary{env: env, dumpDir: filepath.Join(t.TempDir(), "dumps")}
	var err error
	p.set, err = dump.Run(ctx, dump.Options{Dir: p.dumpDir, Databases: map[dump.Role]*mysql.Config{
		dump.Seafile: dbConfig(t, srv, env.PrimaryDBName),
		dump.Ccnet:   dbConfig(t, srv, ccnet),
		dump.Seahub:  dbConfig(t, srv, seahub),
	}})
	must(t, err)
	return p
}

// runSQL runs statements in database db of s.
func runSQL(t *testing.T, s *mariadbtest.Server, db string, stmts ...string) {
	t.Helper()
	h, err := s.Open(db)
	must(t, err)
	defer h.Close()
	for _, q := range stmts {
		if _, err := h.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// targets names the three backup databases prefix_seafile, prefix_ccnet and
// prefix_seahub on s.
func targets(t *testing.T, s *mariadbtest.Server, prefix string) map[dump.Role]*mysql.Config {
	return map[dump.Role]*mysql.Config{
		dump.Seafile: dbConfig(t, s, prefix+"_seafile"),
		dump.Ccnet:   dbConfig(t, s, prefix+"_ccnet"),
		dump.Seahub:  dbConfig(t, s, prefix+"_seahub"),
	}
}

// options are Failover's options for p into dbs, recording the stages it reports.
func (p *failoverPrimary) options(dbs map[dump.Role]*mysql.Config, yes bool, stages *[]restore.FailoverStage) restore.FailoverOptions {
	return restore.FailoverOptions{
		DumpDir:   p.dumpDir,
		Databases: dbs,
		Store:     p.env.Store,
		State:     p.env.State,
		Yes:       yes,
		Progress: func(fp restore.FailoverProgress) {
			if stages != nil {
				*stages = append(*stages, fp.Stage)
			}
		},
	}
}

// checkFailedOver checks that the failover into prefix's databases on s loaded the dump
// and wrote the backed-up head.
func checkFailedOver(t *testing.T, s *mariadbtest.Server, prefix string, res *restore.FailoverResult, set dump.Set) {
	t.Helper()
	if res.Set.Name != set.Name {
		t.Errorf("set %s, want %s", res.Set.Name, set.Name)
	}
	want := map[dump.Role]string{dump.Seafile: prefix + "_seafile", dump.Ccnet: prefix + "_ccnet", dump.Seahub: prefix + "_seahub"}
	for role, name := range want {
		if res.Loaded[role] != name {
			t.Errorf("%s loaded into %q, want %q", role, res.Loaded[role], name)
		}
	}
	if res.Rows.Set+res.Rows.Unchanged != 1 || res.Rows.Deleted != 0 {
		t.Errorf("rows: %+v, want the one library", res.Rows)
	}
	if res.Verify == nil || !res.Verify.OK() || len(res.Verify.Libraries) != 1 {
		t.Fatalf("verify: %+v", res.Verify)
	}
	st := res.Start
	if st.Net != "unix" || st.Addr != s.Socket || st.SeafileDB != want[dump.Seafile] || st.CcnetDB != want[dump.Ccnet] || st.SeahubDB != want[dump.Seahub] {
		t.Errorf("start steps: %+v", st)
	}
	db, err := s.Open(prefix + "_seafile")
	must(t, err)
	defer db.Close()
	var head string
	must(t, db.QueryRow("SELECT commit_id FROM Branch WHERE repo_id = ? AND name = 'master'", testenv.RealLibraryID).Scan(&head))
	if head != realHead {
		t.Errorf("restored head %s, want %s", head, realHead)
	}
	cdb, err := s.Open(prefix + "_ccnet")
	must(t, err)
	defer cdb.Close()
	var email string
	must(t, cdb.QueryRow("SELECT email FROM EmailUser").Scan(&email))
	if email != "zoë@example.com" {
		t.Errorf("ccnet EmailUser: %q", email)
	}
}

func TestFailover(t *testing.T) {
	ctx := context.Background()
	p := newFailoverPrimary(t)
	other, err := mariadbtest.Start()
	must(t, err)
	t.Cleanup(func() { other.Stop() })
	if p.env.BackupDir != p.env.Store.Root() {
		t.Fatalf("store root %s, backup dir %s", p.env.Store.Root(), p.env.BackupDir)
	}

	t.Run("refused over the primary", func(t *testing.T) {
		var stages []restore.FailoverStage
		prefix := mariadbtest.DBName(t)
		_, err := restore.Failover(ctx, p.options(targets(t, srv, prefix), true, &stages))
		var rp *restore.RefusedPrimaryError
		if !errors.Is(err, restore.ErrRefusedPrimary) || !errors.As(err, &rp) || rp.Set != p.set.Name {
			t.Fatalf("failover onto the primary's server: %v", err)
		}
		if len(stages) != 0 {
			t.Errorf("stages reported: %v", stages)
		}
		// Refused before creating anything.
		root, err := srv.Open("")
		must(t, err)
		defer root.Close()
		var n int
		must(t, root.QueryRow("SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name LIKE ?", prefix+"%").Scan(&n))
		if n != 0 {
			t.Errorf("%d databases created on the primary's server", n)
		}
		if rp.SameUUID {
			t.Errorf("MariaDB has no server_uuid, yet the refusal says it is shared")
		}
	})

	// On the operator's word (a backup host cloned from the primary's VM only looks
	// like it) the identity check passes; here that server is the dump's own, so the
	// dump loads into new databases beside the primary's.
	t.Run("not the primary, on the operator's word", func(t *testing.T) {
		prefix := mariadbtest.DBName(t)
		opts := p.options(targets(t, srv, prefix), false, nil)
		opts.NotThePrimary = true
		res, err := restore.Failover(ctx, opts)
		must(t, err)
		checkFailedOver(t, srv, prefix, res, p.set)
	})

	t.Run("no dump", func(t *testing.T) {
		opts := p.options(targets(t, other, mariadbtest.DBName(t)), false, nil)
		opts.DumpDir = t.TempDir()
		_, err := restore.Failover(ctx, opts)
		if !errors.Is(err, restore.ErrNoDump) || !errors.Is(err, restore.ErrNotStarted) || !errors.Is(err, dump.ErrNoSet) {
			t.Fatalf("failover without a dump: %v", err)
		}
		opts.DumpDir, opts.DumpSet = p.dumpDir, "1999-01-01T00-00-00Z"
		if _, err := restore.Failover(ctx, opts); !errors.Is(err, restore.ErrNoDump) {
			t.Fatalf("failover with an unknown set: %v", err)
		}
	})

	// A dump from a primary on a newer server (or MySQL) whose tables use a collation
	// the backup's server lacks: refused before anything is created or loaded, naming
	// the collation, rather than a load that stops at the first such table.
	t.Run("collation the server lacks", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "dumps")
		out, err := exec.Command("cp", "-a", p.dumpDir, dir).CombinedOutput()
		if err != nil {
			t.Fatalf("cp: %v\n%s", err, out)
		}
		set := dump.Set{Name: p.set.Name, Dir: filepath.Join(dir, p.set.Name)}
		rewriteDump(t, set, dump.Seafile, func(sql string) string {
			// MySQL 8's default, which MariaDB before 11.4 does not know.
			return strings.ReplaceAll(sql, "COLLATE=utf8mb4_general_ci", "COLLATE=utf8mb4_0900_ai_ci")
		})
		prefix := mariadbtest.DBName(t)
		opts := p.options(targets(t, other, prefix), true, nil)
		opts.DumpDir = dir
		_, err = restore.Failover(ctx, opts)
		var mc *restore.MissingCollationError
		if !errors.As(err, &mc) || !errors.Is(err, restore.ErrNotStarted) || !slices.Equal(mc.Collations, []string{"utf8mb4_0900_ai_ci"}) || !strings.Contains(err.Error(), "nothing was loaded") {
			t.Fatalf("failover of a dump with a collation the server lacks: %v", err)
		}
		root, err := other.Open("")
		must(t, err)
		defer root.Close()
		var n int
		must(t, root.QueryRow("SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name LIKE ?", prefix+"%").Scan(&n))
		if n != 0 {
			t.Errorf("%d databases created", n)
		}
	})

	t.Run("missing database", func(t *testing.T) {
		dbs := targets(t, other, mariadbtest.DBName(t))
		delete(dbs, dump.Seahub)
		_, err := restore.Failover(ctx, p.options(dbs, false, nil))
		var md *restore.MissingDatabaseError
		if !errors.As(err, &md) || md.Role != dump.Seahub || md.Set != p.set.Name || !errors.Is(err, restore.ErrNotStarted) {
			t.Fatalf("failover without a seahub target: %v", err)
		}
	})

	t.Run("bad options", func(t *testing.T) {
		for name, opts := range map[string]restore.FailoverOptions{
			"no databases": {DumpDir: p.dumpDir, Store: p.env.Store, State: p.env.State},
			"no store":     {DumpDir: p.dumpDir, Databases: targets(t, other, "x"), State: p.env.State},
			"two servers": {DumpDir: p.dumpDir, Store: p.env.Store, State: p.env.State, Databases: map[dump.Role]*mysql.Config{
				dump.Seafile: dbConfig(t, other, "x_seafile"), dump.Ccnet: dbConfig(t, srv, "x_ccnet")}},
		} {
			if _, err := restore.Failover(ctx, opts); !errors.Is(err, restore.ErrNotStarted) {
				t.Errorf("%s: %v", name, err)
			}
		}
	})

	// A damaged state record is found before anything is created or loaded: the
	// failover has not started, rather than stopping half done.
	t.Run("damaged state", func(t *testing.T) {
		stateDir := filepath.Join(t.TempDir(), "state")
		out, err := exec.Command("cp", "-a", p.env.State.Root(), stateDir).CombinedOutput()
		if err != nil {
			t.Fatalf("copy state: %v %s", err, out)
		}
		must(t, os.WriteFile(filepath.Join(stateDir, "libraries", testenv.RealLibraryID+".json"), []byte("{\"id\": "), 0o600))
		st, err := state.Open(stateDir)
		must(t, err)
		prefix := mariadbtest.DBName(t)
		opts := p.options(targets(t, other, prefix), true, nil)
		opts.State = st
		_, err = restore.Failover(ctx, opts)
		if !errors.Is(err, restore.ErrNotStarted) || !strings.Contains(err.Error(), testenv.RealLibraryID) ||
			!strings.Contains(err.Error(), "move it aside to fail over without that record") || strings.Contains(err.Error(), "state: state:") {
			t.Fatalf("failover with a damaged state record: %v", err)
		}
		root, err := other.Open("")
		must(t, err)
		defer root.Close()
		var n int
		must(t, root.QueryRow("SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name LIKE ?", prefix+"%").Scan(&n))
		if n != 0 {
			t.Errorf("%d databases created", n)
		}
	})

	// A fresh backup server: loaded, rows written, verify ok; again it refuses (the
	// databases hold data now) unless Yes.
	prefix := mariadbtest.DBName(t)
	t.Run("success", func(t *testing.T) {
		var stages []restore.FailoverStage
		res, err := restore.Failover(ctx, p.options(targets(t, other, prefix), false, &stages))
		if err != nil {
			t.Fatal(err)
		}
		checkFailedOver(t, other, prefix, res, p.set)
		want := []restore.FailoverStage{restore.FailoverLoading, restore.FailoverLoaded, restore.FailoverLoaded, restore.FailoverLoaded, restore.FailoverRowsWritten, restore.FailoverVerifying}
		if !slices.Equal(stages, want) {
			t.Errorf("stages %v, want %v", stages, want)
		}
		if res.Start.DataDir != p.env.BackupDir {
			t.Errorf("data dir %s, want %s", res.Start.DataDir, p.env.BackupDir)
		}
	})

	t.Run("refused not empty, accepted with yes", func(t *testing.T) {
		var stages []restore.FailoverStage
		_, err := restore.Failover(ctx, p.options(targets(t, other, prefix), false, &stages))
		var ne *restore.RefusedNotEmptyError
		if !errors.Is(err, restore.ErrRefusedNotEmpty) || !errors.Is(err, restore.ErrHoldsData) || !errors.As(err, &ne) {
			t.Fatalf("second failover: %v", err)
		}
		if ne.Role != dump.Ccnet || ne.Database != prefix+"_ccnet" || ne.Set != p.set.Name {
			t.Errorf("refusal: %+v", ne)
		}
		if len(stages) != 0 {
			t.Errorf("stages reported: %v", stages)
		}
		res, err := restore.Failover(ctx, p.options(targets(t, other, prefix), true, nil))
		if err != nil {
			t.Fatal(err)
		}
		checkFailedOver(t, other, prefix, res, p.set)
	})

	// Databases made from Seafile's schema, never used, hold no data: no Yes needed.
	t.Run("empty schema accepted", func(t *testing.T) {
		prefix := mariadbtest.DBName(t)
		must(t, other.CreateDatabase(prefix+"_seafile", mariadbtest.SchemaFile("seafile.sql")))
		must(t, other.CreateDatabase(prefix+"_ccnet", mariadbtest.SchemaFile("ccnet.sql")))
		must(t, other.CreateDatabase(prefix+"_seahub"))
		seahubSchema(t, other, prefix+"_seahub")
		res, err := restore.Failover(ctx, p.options(targets(t, other, prefix), false, nil))
		if err != nil {
			t.Fatal(err)
		}
		checkFailedOver(t, other, prefix, res, p.set)
	})

	t.Run("damaged dump", func(t *testing.T) {
		dir := t.TempDir()
		out, err := exec.Command("cp", "-a", p.set.Dir, dir).CombinedOutput()
		if err != nil {
			t.Fatalf("copy set: %v %s", err, out)
		}
		f := filepath.Join(dir, p.set.Name, p.set.Manifest.Files[dump.Ccnet].Name)
		b, err := os.ReadFile(f)
		must(t, err)
		b[len(b)/2] ^= 0xff
		must(t, os.WriteFile(f, b, 0o600))
		opts := p.options(targets(t, other, mariadbtest.DBName(t)), false, nil)
		opts.DumpDir = dir
		if _, err := restore.Failover(ctx, opts); !errors.Is(err, restore.ErrDumpDamaged) || errors.Is(err, restore.ErrNotStarted) {
			t.Fatalf("failover from a damaged dump: %v", err)
		}
	})

	// Last: it damages the store.
	t.Run("store problems", func(t *testing.T) {
		var block string
		must(t, filepath.WalkDir(filepath.Join(p.env.BackupDir, "storage", "blocks"), func(path string, d fs.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() && block == "" {
				block = path
			}
			return err
		}))
		if block == "" {
			t.Fatal("no block in the backup")
		}
		must(t, os.Remove(block))
		res, err := restore.Failover(ctx, p.options(targets(t, other, prefix), true, nil))
		if !errors.Is(err, restore.ErrStoreProblems) || res == nil || res.Verify == nil || res.Verify.OK() {
			t.Fatalf("failover with a damaged store: %v %+v", err, res)
		}
		if res.Rows.Set+res.Rows.Unchanged != 1 || res.Loaded[dump.Seafile] != prefix+"_seafile" {
			t.Errorf("result: %+v", res)
		}
	})
}

// seahubSchema makes a seahub database as Seahub's schema (seahub/sql/mysql.sql) leaves
// it: Django's bookkeeping tables with their rows, Seahub's own tables empty.
func seahubSchema(t *testing.T, s *mariadbtest.Server, db string) {
	t.Helper()
	runSQL(t, s, db,
		"CREATE TABLE django_migrations (id int PRIMARY KEY AUTO_INCREMENT, app varchar(255) NOT NULL, name varchar(255) NOT NULL, applied datetime NOT NULL)",
		"INSERT INTO django_migrations (app, name, applied) VALUES ('contenttypes', '0001_initial', '2019-11-25 14:33:59')",
		"CREATE TABLE django_content_type (id int PRIMARY KEY AUTO_INCREMENT, app_label varchar(100) NOT NULL, model varchar(100) NOT NULL)",
		"INSERT INTO django_content_type (app_label, model) VALUES ('contenttypes', 'contenttype')",
		"CREATE TABLE auth_permission (id int PRIMARY KEY AUTO_INCREMENT, name varchar(255) NOT NULL, content_type_id int NOT NULL, codename varchar(100) NOT NULL)",
		"INSERT INTO auth_permission (name, content_type_id, codename) VALUES ('Can add content type', 1, 'add_contenttype')",
		"CREATE TABLE base_userstarredfiles (id int PRIMARY KEY AUTO_INCREMENT, email varchar(255), repo_id char(36), path longtext)",
	)
}

func TestFailoverHoldsSeafileData(t *testing.T) {
	ctx := context.Background()
	base := mariadbtest.DBName(t)
	holds := func(role dump.Role, db string) bool {
		t.Helper()
		h, err := srv.Open(db)
		must(t, err)
		defer h.Close()
		got, err := restore.HoldsSeafileData(ctx, h, role)
		must(t, err)
		return got
	}
	check := func(what string, got, want bool) {
		t.Helper()
		if got != want {
			t.Errorf("%s: holds data %v, want %v", what, got, want)
		}
	}

	seafile := base + "_seafile"
	must(t, srv.CreateDatabase(seafile, mariadbtest.SchemaFile("seafile.sql")))
	check("seafile schema, no rows", holds(dump.Seafile, seafile), false)
	runSQL(t, srv, seafile, "INSERT INTO Repo (repo_id) VALUES ('"+testenv.RealLibraryID+"')",
		"INSERT INTO Branch (name, repo_id, commit_id) VALUES ('master', '"+testenv.RealLibraryID+"', '"+realHead+"')")
	check("seafile, rows only in the live tables sync keeps", holds(dump.Seafile, seafile), false)
	runSQL(t, srv, seafile, "INSERT INTO RepoOwner (repo_id, owner_id) VALUES ('"+testenv.RealLibraryID+"', 'zoë@example.com')")
	check("seafile with a RepoOwner row", holds(dump.Seafile, seafile), true)

	ccnet := base + "_ccnet"
	must(t, srv.CreateDatabase(ccnet, mariadbtest.SchemaFile("ccnet.sql")))
	check("ccnet schema, no rows", holds(dump.Ccnet, ccnet), false)
	runSQL(t, srv, ccnet, "INSERT INTO EmailUser (email, passwd, is_staff, is_active, ctime) VALUES ('zoë@example.com', 'x', 0, 1, 1700000000)")
	check("ccnet with an EmailUser row", holds(dump.Ccnet, ccnet), true)

	seahub := base + "_seahub"
	must(t, srv.CreateDatabase(seahub))
	check("seahub with no tables", holds(dump.Seahub, seahub), false)
	seahubSchema(t, srv, seahub)
	check("seahub schema (Django's bookkeeping rows only)", holds(dump.Seahub, seahub), false)
	// Django's bookkeeping is exempt in seahub only.
	check("the same tables as the ccnet role", holds(dump.Ccnet, seahub), true)
	runSQL(t, srv, seahub, "INSERT INTO base_userstarredfiles (email, repo_id, path) VALUES ('zoë@example.com', '"+testenv.RealLibraryID+"', '/a')")
	check("seahub with a starred file", holds(dump.Seahub, seahub), true)
}

// The live rows follow the state: a backed-up head is written, a library deleted on the
// primary loses its rows (a thousand to a transaction, with any other branches), and a
// library never synced, or deleted with no rows, is left alone.
func TestWriteLiveRowsFollowsTheState(t *testing.T) {
	ctx := context.Background()
	db := srv.TestDB(t, mariadbtest.SchemaFile("seafile.sql"))
	st, err := state.Open(t.TempDir())
	must(t, err)
	id := func(i int) string { return fmt.Sprintf("%08d-0000-4000-8000-000000000000", i) }
	head := func(i int) string { return fmt.Sprintf("%040x", i) }
	now := time.Now()
	const deleted = 1100
	var repoRows, branchRows, headRows []string
	for i := range deleted {
		must(t, st.Save(state.Library{ID: id(i), Head: head(i + 1), Deleted: &now}))
		repoRows = append(repoRows, fmt.Sprintf("('%s')", id(i)))
		branchRows = append(branchRows, fmt.Sprintf("('master', '%s', '%s'), ('other', '%s', '%s')", id(i), head(i+1), id(i), head(i+1)))
		headRows = append(headRows, fmt.Sprintf("('%s', 'master')", id(i)))
	}
	for _, q := range []string{
		"INSERT INTO Repo (repo_id) VALUES " + strings.Join(repoRows, ", "),
		"INSERT INTO Branch (name, repo_id, commit_id) VALUES " + strings.Join(branchRows, ", "),
		"INSERT INTO RepoHead (repo_id, branch_name) VALUES " + strings.Join(headRows, ", "),
	} {
		_, err := db.ExecContext(ctx, q)
		must(t, err)
	}
	must(t, st.Save(state.Library{ID: id(deleted), Head: head(1), Deleted: &now})) // no rows
	must(t, st.Save(state.Library{ID: id(deleted + 1), Head: head(2)}))            // live
	must(t, st.Save(state.Library{ID: id(deleted + 2)}))                           // never synced
	s, err := store.NewFS(t.TempDir(), store.Batch)                                // no holes: the store is not read
	must(t, err)
	res, err := restore.WriteLiveRows(ctx, s, st, db, nil)
	must(t, err)
	if res.Set != 1 || res.Deleted != deleted || res.Unchanged != 0 || len(res.Earlier) != 0 {
		t.Errorf("result %+v, want 1 set and %d deleted", res, deleted)
	}
	var repos, branches, repoHeads int
	must(t, db.QueryRow("SELECT (SELECT COUNT(*) FROM Repo), (SELECT COUNT(*) FROM Branch), (SELECT COUNT(*) FROM RepoHead)").Scan(&repos, &branches, &repoHeads))
	if repos != 1 || branches != 1 || repoHeads != 1 {
		t.Errorf("%d Repo, %d Branch and %d RepoHead rows left, want the live library's one each", repos, branches, repoHeads)
	}
	var got string
	must(t, db.QueryRow("SELECT commit_id FROM Branch WHERE repo_id = ? AND name = 'master'", id(deleted+1)).Scan(&got))
	if got != head(2) {
		t.Errorf("live library's head %s, want %s", got, head(2))
	}
	res, err = restore.WriteLiveRows(ctx, s, st, db, nil)
	must(t, err)
	if res.Set != 0 || res.Deleted != 0 || res.Unchanged != 1 || len(res.Earlier) != 0 {
		t.Errorf("written again: %+v, want the live library unchanged", res)
	}
}

// A head synced with --force over a damaged block holds a hole: the folders above it are
// not in the store, so Seafile could not read the head's tree at all. The failover's
// rows name the newest whole commit before it instead, and say so.
func TestFailoverServesTheNewestWholeCommitOfAHeadWithHoles(t *testing.T) {
	ctx := context.Background()
	p := newFailoverPrimary(t)
	env := p.env
	g := seafgen.New(env.PrimaryDir)
	g.BlockSize = 4096
	lib, err := g.NewLibrary(seafgen.LibraryOptions{Name: "Holey"})
	must(t, err)
	whole := testenv.Commit(t, lib, "fine", seafgen.Put("ok.txt", []byte("fine")))
	env.Publish(lib)
	testenv.SyncOK(t, env.Engine(false), lib.ID)
	testenv.Commit(t, lib, "damaged later", seafgen.Put("big.bin", testenv.RandomBytes(30000, 7)))
	env.Publish(lib)
	bad := testenv.ObjectPath(env.PrimaryDir, object.KindBlock, lib.StoreID, primaryBlocks(env, lib, "big.bin")[1])
	good, err := os.ReadFile(bad)
	must(t, err)
	must(t, os.WriteFile(bad, append([]byte{good[0] ^ 0xff}, good[1:]...), 0o644))
	if res, err := env.Engine(true).Sync(ctx, lib.ID); err != nil || len(res.Holes) != 1 || res.Head != lib.Head {
		t.Fatalf("sync --force: %+v, %v", res, err)
	}

	other, err := mariadbtest.Start()
	must(t, err)
	t.Cleanup(func() { other.Stop() })
	prefix := mariadbtest.DBName(t)
	res, err := restore.Failover(ctx, p.options(targets(t, other, prefix), false, nil))
	must(t, err)
	want := []restore.ServedEarlier{{RepoID: lib.ID, Name: "Holey", Head: lib.Head, Served: whole}}
	if ct, err := lib.Ctime(whole); err == nil {
		want[0].ServedCtime = ct
	}
	if !reflect.DeepEqual(res.Rows.Earlier, want) {
		t.Errorf("served earlier: %+v, want %+v", res.Rows.Earlier, want)
	}
	db, err := other.Open(prefix + "_seafile")
	must(t, err)
	defer db.Close()
	var head string
	must(t, db.QueryRow("SELECT commit_id FROM Branch WHERE repo_id = ? AND name = 'master'", lib.ID).Scan(&head))
	if head != whole {
		t.Errorf("Branch row names %s, want the whole commit %s (the head %s holds a hole)", head, whole, lib.Head)
	}
	if res.Verify == nil || !res.Verify.OK() {
		t.Errorf("verify: %+v", res.Verify)
	}
}

// A library the state knows but never backed up (created just before the primary went)
// has nothing to serve: the failover goes on and names it, rather than failing.
func TestFailoverNamesANeverBackedUpLibraryAndGoesOn(t *testing.T) {
	ctx := context.Background()
	p := newFailoverPrimary(t)
	const never = "0badc0de-0000-4000-8000-0000000000aa"
	must(t, p.env.State.Save(state.Library{ID: never, Name: "New", LastError: "primary unreachable"}))
	other, err := mariadbtest.Start()
	must(t, err)
	t.Cleanup(func() { other.Stop() })
	prefix := mariadbtest.DBName(t)
	res, err := restore.Failover(ctx, p.options(targets(t, other, prefix), false, nil))
	must(t, err)
	checkFailedOver(t, other, prefix, res, p.set)
	if len(res.NeverBackedUp) != 1 || res.NeverBackedUp[0].RepoID != never || !strings.Contains(res.NeverBackedUp[0].Error, "primary unreachable") {
		t.Errorf("never backed up: %+v", res.NeverBackedUp)
	}
	if f, err := p.env.State.LastFailover(); err != nil || f == nil || f.DumpSet != p.set.Name || f.At.IsZero() {
		t.Errorf("failover recorded in the state: %+v %v", f, err)
	}
}

// A damaged record moved aside, with the backup database sync keeps live: the library's
// rows are there, and its database head is verified on its own and served.
func TestFailoverWithARecordMovedAsideVerifiesTheDatabaseHead(t *testing.T) {
	ctx := context.Background()
	p := newFailoverPrimary(t)
	other, err := mariadbtest.Start()
	must(t, err)
	t.Cleanup(func() { other.Stop() })
	prefix := mariadbtest.DBName(t)
	// The backup database as sync keeps it: the schema, the library's live rows.
	_, err = restore.Failover(ctx, p.options(targets(t, other, prefix), false, nil))
	must(t, err)

	stateDir := filepath.Join(t.TempDir(), "state")
	if out, err := exec.Command("cp", "-a", p.env.State.Root(), stateDir).CombinedOutput(); err != nil {
		t.Fatalf("copy state: %v %s", err, out)
	}
	rec := filepath.Join(stateDir, "libraries", testenv.RealLibraryID+".json")
	must(t, os.Rename(rec, rec+".damaged"))
	st, err := state.Open(stateDir)
	must(t, err)
	opts := p.options(targets(t, other, prefix), true, nil)
	opts.State = st
	res, err := restore.Failover(ctx, opts)
	must(t, err)
	if len(res.Verify.Libraries) != 1 || !res.Verify.Libraries[0].Unrecorded || !res.Verify.OK() {
		t.Fatalf("verify: %+v", res.Verify.Libraries)
	}
	if h := res.Verify.Libraries[0].Heads; len(h) != 1 || h[0].Commit != realHead || h[0].From != restore.FromDB || !h[0].Complete {
		t.Errorf("heads checked: %+v", h)
	}
	// A database head whose tree is not whole still fails it.
	must(t, os.Remove(testenv.ObjectPath(p.env.BackupDir, object.KindCommit, testenv.RealLibraryID, realHead)))
	res, err = restore.Failover(ctx, opts)
	if !errors.Is(err, restore.ErrStoreProblems) || res.Verify.OK() {
		t.Fatalf("failover over a missing database head: %v", err)
	}
}

// rewriteDump rewrites role's SQL in set with edit, and its manifest entry to match, as
// if the dump tool had written the result.
func rewriteDump(t *testing.T, set dump.Set, role dump.Role, edit func(string) string) {
	t.Helper()
	mpath := filepath.Join(set.Dir, dump.ManifestName)
	raw, err := os.ReadFile(mpath)
	must(t, err)
	var m dump.Manifest
	must(t, json.Unmarshal(raw, &m))
	f := m.Files[role]
	zpath := filepath.Join(set.Dir, f.Name)
	zraw, err := os.ReadFile(zpath)
	must(t, err)
	zr, err := gzip.NewReader(bytes.NewReader(zraw))
	must(t, err)
	sqlText, err := io.ReadAll(zr)
	must(t, err)
	edited := edit(string(sqlText))
	if edited == string(sqlText) {
		t.Fatalf("the edit changed nothing in %s", f.Name)
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, err = zw.Write([]byte(edited))
	must(t, err)
	must(t, zw.Close())
	must(t, os.WriteFile(zpath, buf.Bytes(), 0o640))
	sum := sha256.Sum256(buf.Bytes())
	f.Size, f.SQLSize, f.SHA256 = int64(buf.Len()), int64(len(edited)), hex.EncodeToString(sum[:])
	m.Files[role] = f
	raw, err = json.Marshal(m)
	must(t, err)
	must(t, os.WriteFile(mpath, raw, 0o640))
}
