// Command demo shows seafbak's main job end to end, as a terminal transcript: a private
// MariaDB and a generated primary Seafile server (database rows and seafile-data in
// Seafile's exact format), then the real seafbak binary run step by step against it --
// status, scan, a change on the primary, sync, status, verify, restore library (at the
// head and at an older commit, each compared file by file with the primary's), dump --
// and finally the libraries read back from the backup alone and compared, file by file,
// with what was written.
//
// Run it with scripts/demo.sh, or from the repository root (Seafile's schema is found by
// walking up to go.mod):
//
//	go build -o /tmp/seafbak . && go run ./scripts/demo -seafbak /tmp/seafbak
//
// The transcript goes to stdout, the demo's own progress to stderr. It exits 1 when a
// step does not do what it should, 2 on bad flags, 130 when interrupted; the private
// MariaDB and the demo's files are removed in every case.
package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"seafbak/internal/mariadbtest"
	"seafbak/internal/seafgen"
	"seafbak/restore"
	"seafbak/scan"
	"seafbak/sync/object"
	"seafbak/sync/store"
)

const (
	primaryDB = "seafile_primary"
	backupDB  = "seafile_backup"
	ccnetDB   = "ccnet_primary"  // the primary's ccnet and seahub databases, for dump
	seahubDB  = "seahub_primary" // (a Seafile server keeps all three on one server)
	owner     = "alice@example.com"

	bulkFiles = 2000
	bulkBytes = 50 << 20
	bulkSeed  = 1
)

func main() {
	bin := flag.String("seafbak", "", "the seafbak binary to run (required)")
	dir := flag.String("dir", "", "a directory, not existing yet, for the demo's files; it is removed at the end (default: a new temporary directory)")
	flag.Usage = func() {
		fmt.Fprintln(flag.CommandLine.Output(), "usage: demo -seafbak BINARY [-dir DIR]")
		flag.PrintDefaults()
	}
	flag.Parse()
	if *bin == "" || flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	start := time.Now()
	err := run(ctx, *bin, *dir)
	stop()
	if errors.Is(err, context.Canceled) {
		fmt.Fprintln(os.Stderr, "\ndemo: interrupted; cleaned up")
		os.Exit(130)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "\ndemo: FAILED: %v\n", err)
		os.Exit(1)
	}
	logf("done in %.1fs", time.Since(start).Seconds())
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "demo: "+format+"\n", args...)
}

// say prints a line of the transcript.
func say(format string, args ...any) { fmt.Printf(format+"\n", args...) }

func run(ctx context.Context, bin, dir string) (err error) {
	if bin, err = filepath.Abs(bin); err != nil {
		return err
	}
	if fi, err := os.Stat(bin); err != nil || fi.IsDir() {
		return fmt.Errorf("-seafbak %s: not a binary (build one with: go build -o %s .)", bin, bin)
	}
	schema, err := schemaFile("seafile.sql")
	if err != nil {
		return err
	}
	ccnetSchema, err := schemaFile("ccnet.sql")
	if err != nil {
		return err
	}
	if dir == "" {
		if dir, err = os.MkdirTemp("", "seafbak-demo-"); err != nil {
			return err
		}
	} else if err = os.Mkdir(dir, 0o700); err != nil {
		return fmt.Errorf("-dir: %w (give a directory that does not exist yet: it is removed at the end)", err)
	}
	defer os.RemoveAll(dir)
	if dir, err = filepath.Abs(dir); err != nil {
		return err
	}

	logf("starting a private MariaDB")
	t0 := time.Now()
	srv, err := mariadbtest.Start()
	if err != nil {
		return err
	}
	defer func() {
		if serr := srv.Stop(); serr != nil && err == nil {
			err = serr
		}
	}()
	logf("MariaDB ready in %.1fs, socket %s", time.Since(t0).Seconds(), srv.Socket)
	dbs := map[string]*sql.DB{}
	for _, name := range []string{primaryDB, backupDB} {
		if err := srv.CreateDatabase(name, schema); err != nil {
			return err
		}
		db, err := srv.Open(name)
		if err != nil {
			return err
		}
		defer db.Close()
		dbs[name] = db
	}
	pdb, bdb := dbs[primaryDB], dbs[backupDB]
	if err := userDatabases(ctx, srv, ccnetSchema); err != nil {
		return err
	}

	primaryDir := filepath.Join(dir, "primary", "seafile-data")
	backupDir := filepath.Join(dir, "backup", "seafile-data")
	stateDir := filepath.Join(dir, "backup", "state")
	dumpDir := filepath.Join(dir, "backup", "dumps")
	logf("generating the primary's libraries")
	t0 = time.Now()
	p, err := generate(ctx, primaryDir, pdb)
	if err != nil {
		return err
	}
	logf("generated in %.1fs", time.Since(t0).Seconds())
	if err := ctx.Err(); err != nil {
		return err
	}

	say("# A primary Seafile server: database %s, seafile-data %s (%s), 4 libraries:",
		primaryDB, primaryDir, scan.HumanBytes(dirSize(primaryDir)))
	docsTree, err := p.docs.Tree(p.docs.Head)
	if err != nil {
		return err
	}
	say("#   %s  Documents  %d commits, %d files: non-ASCII names, nested folders, a rename, a %d-block file",
		p.docs.ID, len(p.docs.Commits()), countFiles(docsTree), p.bigBlocks)
	say("#   %s  Projets    virtual library: the folder %s of Documents", p.virt.ID, p.virt.OriginPath)
	say("#   %s  Secret     encrypted library", p.secret.ID)
	say("#   %s  Archives   %d files, %s in one commit", p.bulk.ID, bulkFiles, scan.HumanBytes(bulkBytes))
	say("")

	cfgPath := filepath.Join(dir, "seafbak.yml")
	cfg := fmt.Sprintf(`primary:
  db: "root@unix(%[1]s)/%[2]s"
  ccnet_db: %[7]s
  seahub_db: %[8]s
  data_dir: %[3]s
backup:
  db: "root@unix(%[1]s)/%[4]s"
  data_dir: %[5]s
state: %[6]s
dump:
  dir: %[9]s
  keep: 7
`, srv.Socket, primaryDB, primaryDir, backupDB, backupDir, stateDir, ccnetDB, seahubDB, dumpDir)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return err
	}
	sh := &shell{ctx: ctx, bin: bin, config: cfgPath}
	say("$ export SEAFBAK_CONFIG=%s", cfgPath)
	say("$ cat $SEAFBAK_CONFIG")
	fmt.Print(cfg)

	// Nothing backed up yet: every library is waiting.
	if err := sh.status(4, 0, 4); err != nil {
		return err
	}
	// What cron runs every few minutes: back up every new or changed library.
	out, err := sh.step("scan")
	if err != nil {
		return err
	}
	if !strings.Contains(out, "4 libraries checked, 4 synced, 0 failed") {
		return fmt.Errorf("scan: expected 4 libraries synced")
	}
	if err := sh.status(4, 4, 0); err != nil {
		return err
	}

	// A user edits a file on the primary: a new commit, and the head moves in the database.
	before := p.docs.Head
	edit := []byte("Alice Martin\nIngénieure système, Zürich\n\nExpérience :\n- 2020-2024 : sauvegardes Seafile en temps réel\n")
	if _, err := p.docs.Commit(`Modified "Résumé.txt"`, seafgen.Put("Résumé.txt", edit)); err != nil {
		return err
	}
	if err := p.docs.InsertRows(ctx, pdb); err != nil {
		return err
	}
	say("")
	say("# On the primary, %s edits Documents/Résumé.txt (%d bytes):", owner, len(edit))
	say("# Documents' head moves from %.12s to %.12s", before, p.docs.Head)
	if err := sh.status(4, 3, 1); err != nil {
		return err
	}
	// What the primary's change hook runs.
	out, err = sh.step("sync", p.docs.ID)
	if err != nil {
		return err
	}
	if !strings.Contains(out, "synced to "+p.docs.Head) {
		return fmt.Errorf("sync: expected Documents synced to %s", p.docs.Head)
	}
	if err := sh.status(4, 4, 0); err != nil {
		return err
	}
	if err := sh.statusJSON(); err != nil {
		return err
	}

	// The nightly check: every object of every backed-up head's history, hashed.
	out, err = sh.step("verify")
	if err != nil {
		return err
	}
	if !strings.Contains(out, "seafbak verify: 4 libraries, 0 failed") {
		return fmt.Errorf("verify: expected 4 libraries, 0 failed")
	}

	// Getting files back: Documents as backed up last, and as it was before the edit,
	// each compared file by file (names, sizes, contents) with the primary's commit.
	restoreDir := filepath.Join(dir, "restore")
	say("")
	say("# A user wants Documents back, and the Résumé.txt of before the edit:")
	if _, err := sh.step("restore", "library", p.docs.ID, "--list"); err != nil {
		return err
	}
	for _, r := range []struct {
		commit string
		args   []string
	}{
		{p.docs.Head, nil},
		{before, []string{"--commit", before}},
	} {
		to := filepath.Join(restoreDir, fmt.Sprintf("Documents-%.8s", r.commit))
		out, err := sh.step(append([]string{"restore", "library", p.docs.ID, "--to", to}, r.args...)...)
		if err != nil {
			return err
		}
		if !strings.Contains(out, "restored commit "+r.commit) {
			return fmt.Errorf("restore library: expected commit %s restored", r.commit)
		}
		if err := compareRestored(p.docs, r.commit, to); err != nil {
			return fmt.Errorf("restore library of Documents at %.12s: %w", r.commit, err)
		}
	}
	old, err := os.ReadFile(filepath.Join(restoreDir, fmt.Sprintf("Documents-%.8s", before), "Résumé.txt"))
	if err != nil {
		return err
	}
	say("")
	say("$ cat %s", filepath.Join(restoreDir, fmt.Sprintf("Documents-%.8s", before), "Résumé.txt"))
	fmt.Print(string(old))

	// The nightly dump of the databases seafbak does not keep live (users, shares,
	// Seahub's settings): what restore server loads on failover.
	say("")
	say("# The primary's ccnet and seahub databases (users, groups, shares, Seahub) and the")
	say("# rest of its seafile database go into a nightly dump:")
	out, err = sh.step("dump")
	if err != nil {
		return err
	}
	if !strings.Contains(out, "seafbak dump: "+dumpDir+"/") {
		return fmt.Errorf("dump: expected a set under %s", dumpDir)
	}
	if err := listDumps(dumpDir); err != nil {
		return err
	}
	out, err = sh.step("status")
	if err != nil {
		return err
	}
	if !strings.Contains(out, "Last database dump: ") {
		return fmt.Errorf("status: expected the last dump")
	}
	// What cron runs after every scan: silent (exit 0) while the health does not change.
	say("")
	say("# cron's health check after each scan prints (and so mails) only a change of health:")
	if out, err = sh.step("status", "--if-changed"); err != nil {
		return err
	}
	if out != "" {
		return fmt.Errorf("status --if-changed: expected nothing printed, all healthy")
	}
	say("$ echo $?")
	say("0")

	// The backup must be usable on its own: read the files back from the backup's
	// seafile-data and its database, and compare with what the generator wrote.
	say("")
	say("# Restore check: every file read back from the backup alone, blocks verified, SHA-256 compared:")
	bs, err := store.NewFS(backupDir, store.Batch)
	if err != nil {
		return err
	}
	total := 0
	for _, c := range []struct {
		lib  *seafgen.Library
		list bool
	}{{p.docs, true}, {p.virt, false}, {p.secret, false}, {p.bulk, false}} {
		n, err := verify(ctx, bs, bdb, c.lib, c.list)
		if err != nil {
			return fmt.Errorf("restore check of %s (%s): %w", c.lib.Name, c.lib.ID, err)
		}
		total += n
	}
	say("backup matches the primary: %d files", total)
	return nil
}

// primaryLibs are the generated libraries.
type primaryLibs struct {
	docs, virt, secret, bulk *seafgen.Library
	bigBlocks                int
}

// generate writes the primary's libraries into dataDir and their rows into db.
func generate(ctx context.Context, dataDir string, db *sql.DB) (*primaryLibs, error) {
	g := seafgen.New(dataDir)
	g.BlockSize = 64 << 10 // small blocks: multi-block files cheaply
	p := &primaryLibs{}
	var err error
	commit := func(l *seafgen.Library, desc string, changes ...seafgen.Change) {
		if err == nil {
			_, err = l.Commit(desc, changes...)
		}
	}

	if p.docs, err = g.NewLibrary(seafgen.LibraryOptions{Name: "Documents", Owner: owner}); err != nil {
		return nil, err
	}
	commit(p.docs, `Added "Résumé.txt" and 3 more files.`,
		seafgen.Put("Résumé.txt", []byte("Alice Martin\nIngénieure système\n")),
		seafgen.Put("日本語のメモ.md", []byte("# メモ\n\nバックアップを確認すること。\n")),
		seafgen.Put("Brouillon – rapport.txt", []byte("Premier jet du rapport annuel.\n")),
		seafgen.Put("Projets/2024/plan.md", []byte("# Plan 2024\n\n1. Sauvegarde en temps réel\n2. Restauration testée\n")),
	)
	big := pseudoRandom(7, 300<<10+123) // 5 blocks of 64 KiB
	p.bigBlocks = (len(big) + g.BlockSize - 1) / g.BlockSize
	commit(p.docs, `Added "vacances.jpg".`,
		seafgen.Put("Photos/Été 2024/vacances.jpg", big),
		seafgen.Put("Photos/Été 2024/Ελληνικά.txt", []byte("Καλημέρα από την Κρήτη\n")),
	)
	commit(p.docs, `Moved "Brouillon – rapport.txt".`,
		seafgen.Rename("Brouillon – rapport.txt", "Projets/2024/Rapport final.txt"))
	commit(p.docs, `Modified "日本語のメモ.md".`,
		seafgen.Put("日本語のメモ.md", []byte("# メモ\n\nバックアップを確認した。✅\n")))
	if err != nil {
		return nil, err
	}
	if p.virt, err = g.NewVirtualLibrary(p.docs, "/Projets", "Projets"); err != nil {
		return nil, err
	}

	if p.secret, err = g.NewLibrary(seafgen.LibraryOptions{Name: "Secret", Owner: owner, Encrypted: true, Password: "correct horse battery staple"}); err != nil {
		return nil, err
	}
	commit(p.secret, `Added "coffre.kdbx" and 1 more file.`,
		seafgen.Put("coffre.kdbx", pseudoRandom(11, 150<<10)),
		seafgen.Put("Clés/serveur.txt", []byte("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDemoDemoDemo alice@example.com\n")),
	)
	if err != nil {
		return nil, err
	}

	if p.bulk, err = g.NewLibrary(seafgen.LibraryOptions{Name: "Archives", Owner: owner}); err != nil {
		return nil, err
	}
	if _, err = p.bulk.CommitBulk(fmt.Sprintf("Added %d files.", bulkFiles), bulkFiles, bulkBytes, bulkSeed); err != nil {
		return nil, err
	}

	for _, l := range []*seafgen.Library{p.docs, p.virt, p.secret, p.bulk} {
		if err := l.InsertRows(ctx, db); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// pseudoRandom returns n reproducible, incompressible bytes.
func pseudoRandom(seed uint64, n int) []byte {
	var s [32]byte
	s[0] = byte(seed)
	b := make([]byte, n)
	rand.NewChaCha8(s).Read(b)
	return b
}

// shell runs the seafbak binary and prints what a terminal would show.
type shell struct {
	ctx    context.Context
	bin    string
	config string
}

// exec runs seafbak with args and returns its exit code, stdout and stderr.
func (sh *shell) exec(args ...string) (code int, stdout, stderr string, err error) {
	cmd := exec.CommandContext(sh.ctx, sh.bin, args...)
	cmd.Env = append(os.Environ(), "SEAFBAK_CONFIG="+sh.config)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	if cerr := sh.ctx.Err(); cerr != nil {
		return 0, "", "", cerr
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), out.String(), errb.String(), nil
	}
	if err != nil {
		return 0, "", "", fmt.Errorf("seafbak %s: %w", strings.Join(args, " "), err)
	}
	return 0, out.String(), errb.String(), nil
}

// step prints the command line, runs it and prints its output; anything but exit 0
// with a quiet stderr is a failure (cron mails whatever reaches stderr).
func (sh *shell) step(args ...string) (string, error) {
	say("")
	say("$ seafbak %s", strings.Join(args, " "))
	code, out, errs, err := sh.exec(args...)
	if err != nil {
		return "", err
	}
	fmt.Print(out)
	fmt.Print(errs)
	if code != 0 {
		return "", fmt.Errorf("seafbak %s: exit code %d, want 0", strings.Join(args, " "), code)
	}
	if errs != "" {
		return "", fmt.Errorf("seafbak %s: wrote to stderr", strings.Join(args, " "))
	}
	return out, nil
}

// status runs seafbak status and checks its counts.
func (sh *shell) status(total, synced, waiting int) error {
	out, err := sh.step("status")
	if err != nil {
		return err
	}
	for _, want := range []string{
		fmt.Sprintf("Total number of libraries: %d\n", total),
		fmt.Sprintf("Number of synchronized libraries: %d\n", synced),
		fmt.Sprintf("Number of libraries waiting for sync: %d\n", waiting),
		"Number of libraries failed to sync: 0\n",
	} {
		if !strings.Contains(out, want) {
			return fmt.Errorf("seafbak status: expected %q", strings.TrimSpace(want))
		}
	}
	return nil
}

// statusJSON runs seafbak status --json, checks it and prints its counts (the lists,
// all empty here, are left out).
func (sh *shell) statusJSON() error {
	say("")
	say("$ seafbak status --json | head -7")
	code, out, errs, err := sh.exec("status", "--json")
	if err != nil {
		return err
	}
	if code != 0 || errs != "" {
		return fmt.Errorf("seafbak status --json: exit code %d, stderr %q", code, errs)
	}
	var rep scan.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		return fmt.Errorf("seafbak status --json: %w", err)
	}
	if rep.Total != 4 || rep.Synchronized != 4 || rep.Waiting != 0 || rep.FailedCount != 0 || len(rep.Holes) != 0 || len(rep.Truncated) != 0 || len(rep.Deleted) != 0 {
		return fmt.Errorf("seafbak status --json: unexpected report:\n%s", out)
	}
	lines := strings.SplitAfter(out, "\n")
	fmt.Print(strings.Join(lines[:min(7, len(lines))], ""))
	return nil
}

// verify reads library l at its head from the backup alone -- the head from the backup
// database, every object from the backup's seafile-data -- and compares its tree with
// what the generator wrote. It prints the files when list is set, else one line.
// Encrypted files are checked block by block (ids and sizes), since their contents
// are ciphertext without the password.
func verify(ctx context.Context, bs *store.FS, bdb *sql.DB, l *seafgen.Library, list bool) (int, error) {
	var head string
	err := bdb.QueryRowContext(ctx, "SELECT commit_id FROM Branch WHERE repo_id = ? AND name = 'master'", l.ID).Scan(&head)
	if err != nil {
		return 0, fmt.Errorf("head in the backup database: %w", err)
	}
	if head != l.Head {
		return 0, fmt.Errorf("backup database has head %s, the primary %s", head, l.Head)
	}
	want, err := l.Tree(head)
	if err != nil {
		return 0, err
	}
	lib := restore.Library{RepoID: l.ID, StoreID: l.StoreID}
	c, err := restore.Commit(ctx, bs, lib, head)
	if err != nil {
		return 0, err
	}
	var got []seafgen.Entry
	err = restore.Walk(ctx, bs, lib, c.RootID, func(e restore.Entry) error {
		if e.Dir {
			got = append(got, seafgen.Entry{Path: e.Path + "/", Dir: true})
			return nil
		}
		ge := seafgen.Entry{Path: e.Path, Size: e.Size}
		if l.Encrypted {
			if err := checkBlocks(ctx, bs, lib, e); err != nil {
				return err
			}
		} else {
			h := sha256.New()
			if err := restore.CopyFile(ctx, bs, lib, e, h); err != nil {
				return err
			}
			ge.SHA256 = hex.EncodeToString(h.Sum(nil))
		}
		got = append(got, ge)
		return nil
	})
	if err != nil {
		return 0, err
	}
	if l.Encrypted { // names and sizes only: the contents are ciphertext
		for i := range want {
			want[i].SHA256 = ""
		}
	}
	slices.SortFunc(got, func(a, b seafgen.Entry) int { return strings.Compare(a.Path, b.Path) })
	if g, w := seafgen.FormatTree(got), seafgen.FormatTree(want); g != w {
		return 0, fmt.Errorf("the backup's tree differs from the primary's:\n--- backup\n%s--- primary\n%s", g, w)
	}
	n := countFiles(got)
	switch {
	case list:
		say("%s at %.12s: %d files, all identical to the primary's:", l.Name, head, n)
		for _, e := range got {
			if !e.Dir {
				say("  %.16s  %7d  %s", e.SHA256, e.Size, e.Path)
			}
		}
	case l.Encrypted:
		say("%s at %.12s: %d files, names, sizes and every encrypted block identical", l.Name, head, n)
	default:
		say("%s at %.12s: %d files, all identical to the primary's", l.Name, head, n)
	}
	return n, nil
}

// checkBlocks verifies that every block of an encrypted file is in the backup, intact.
func checkBlocks(ctx context.Context, bs *store.FS, lib restore.Library, e restore.Entry) error {
	for _, b := range e.Blocks {
		rc, err := bs.Open(ctx, object.KindBlock, lib.StoreID, b)
		if err != nil {
			return fmt.Errorf("%s: %w", e.Path, err)
		}
		h := object.NewBlockHasher(b)
		_, err = io.Copy(h, rc)
		rc.Close()
		if err == nil {
			err = h.Check()
		}
		if err != nil {
			return fmt.Errorf("%s: %w", e.Path, err)
		}
	}
	return nil
}

func countFiles(es []seafgen.Entry) int {
	n := 0
	for _, e := range es {
		if !e.Dir {
			n++
		}
	}
	return n
}

func dirSize(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// schemaFile is mariadbtest.SchemaFile(name), with an error instead of a panic when the
// demo is run from outside the module.
func schemaFile(name string) (path string, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v (run the demo from the seafbak repository, e.g. with scripts/demo.sh)", r)
		}
	}()
	path = mariadbtest.SchemaFile(name)
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("Seafile's schema: %w (run the demo from the seafbak repository, e.g. with scripts/demo.sh)", err)
	}
	return path, nil
}

// userDatabases creates the primary's ccnet database (Seafile's schema, the owner as a
// user) and a small seahub database (one of Seahub's tables, a starred file), for dump.
func userDatabases(ctx context.Context, srv *mariadbtest.Server, ccnetSchema string) error {
	if err := srv.CreateDatabase(ccnetDB, ccnetSchema); err != nil {
		return err
	}
	if err := srv.CreateDatabase(seahubDB); err != nil {
		return err
	}
	for name, stmts := range map[string][]string{
		ccnetDB: {"INSERT INTO EmailUser (email, passwd, is_staff, is_active, ctime) VALUES ('" + owner + "', 'PBKDF2SHA256$10000$demo', 1, 1, 1700000000000000)"},
		seahubDB: {
			"CREATE TABLE base_userstarredfiles (id int PRIMARY KEY AUTO_INCREMENT, email varchar(255) NOT NULL, org_id int NOT NULL, repo_id varchar(36) NOT NULL, path longtext NOT NULL, is_dir tinyint(1) NOT NULL)",
			"INSERT INTO base_userstarredfiles (email, org_id, repo_id, path, is_dir) VALUES ('" + owner + "', -1, '', '/Photos/Été 2024/vacances.jpg', 0)",
		},
	} {
		db, err := srv.Open(name)
		if err != nil {
			return err
		}
		for _, q := range stmts {
			if _, err := db.ExecContext(ctx, q); err != nil {
				db.Close()
				return fmt.Errorf("%s: %w", name, err)
			}
		}
		db.Close()
	}
	return nil
}

// compareRestored compares a directory written by restore library with the library's
// tree at commit on the primary: the same directories, and files with the same size
// and SHA-256.
func compareRestored(l *seafgen.Library, commit, dir string) error {
	want, err := l.Tree(commit)
	if err != nil {
		return err
	}
	var got []seafgen.Entry
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			got = append(got, seafgen.Entry{Path: rel + "/", Dir: true})
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(data)
		got = append(got, seafgen.Entry{Path: rel, Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:])})
		return nil
	})
	if err != nil {
		return err
	}
	if g, w := seafgen.FormatTree(got), seafgen.FormatTree(want); g != w {
		return fmt.Errorf("the restored files differ from the primary's:\n--- restored\n%s--- primary\n%s", g, w)
	}
	say("# %s: %d files and %d folders, identical to the primary's commit %.12s", dir, countFiles(got), len(got)-countFiles(got), commit)
	return nil
}

// listDumps prints the dump sets under dir, as ls -R would, with sizes.
func listDumps(dir string) error {
	say("")
	say("$ ls -l %s/*", dir)
	sets, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, set := range sets {
		if !set.IsDir() {
			continue
		}
		files, err := os.ReadDir(filepath.Join(dir, set.Name()))
		if err != nil {
			return err
		}
		say("%s/%s:", dir, set.Name())
		for _, f := range files {
			fi, err := f.Info()
			if err != nil {
				return err
			}
			say("  %8d  %s", fi.Size(), f.Name())
		}
	}
	return nil
}
