package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"seafbak/internal/mariadbtest"
	"seafbak/internal/s3test"
	"seafbak/internal/seafgen"
	"seafbak/internal/testenv"
)

var srv *mariadbtest.Server

// TestMain runs the tests with one MariaDB server; in the child that s3test.Start runs,
// it is the S3 server instead.
func TestMain(m *testing.M) {
	s3test.ServeIfChild()
	mariadbtest.Main(m, &srv)
}

// writeConfig writes a config for env and returns its path.
func writeConfig(t testing.TB, env *testenv.Env) string {
	t.Helper()
	return writeConfigFor(t, env, srv.Socket)
}

// startOwnServer starts a MariaDB server for one test that kills or stops it.
func startOwnServer(t *testing.T) (*mariadbtest.Server, error) {
	s, err := mariadbtest.Start()
	if err == nil {
		t.Cleanup(func() { s.Stop() })
	}
	return s, err
}

func writeConfigFor(t testing.TB, env *testenv.Env, socket string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "seafbak.yml")
	objects := "data_dir: " + env.PrimaryDir
	if env.FileServer != nil {
		objects = fmt.Sprintf("url: %s\n  sync_token: %s", env.FileServer.URL(), testenv.SyncToken)
	}
	text := fmt.Sprintf(`primary:
  db: "root@unix(%[1]s)/%[2]s"
  %[3]s
backup:
  data_dir: %[4]s
  db: "root@unix(%[1]s)/%[5]s"
state: %[6]s
`, socket, env.PrimaryDBName, objects, env.BackupDir, env.BackupDBName, env.StateDir)
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// seafbak runs the CLI in-process and returns exit code, stdout, stderr.
func seafbak(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestCLIEndToEnd(t *testing.T) {
	env := testenv.New(t, srv)
	env.LoadRealLibrary()
	cfg := writeConfig(t, env)
	id := testenv.RealLibraryID

	code, out, errs := seafbak("--config", cfg, "status")
	if code != 0 || !strings.Contains(out, "Number of libraries waiting for sync: 1\n") {
		t.Fatalf("status before sync: %d\n%s%s", code, out, errs)
	}
	code, out, errs = seafbak("--config", cfg, "sync", id)
	if code != 0 || !strings.Contains(out, id+" Shared: synced to 5715208e10e33de4ac89cd441c52d948df77125b: 7 commits, 19 fs objects, 12 blocks") {
		t.Fatalf("sync: %d\n%s%s", code, out, errs)
	}
	if errs != "" {
		t.Fatalf("sync wrote to stderr (cron would mail it): %q", errs)
	}
	code, out, _ = seafbak("--config", cfg, "sync", id)
	if code != 0 || !strings.Contains(out, "up to date") {
		t.Fatalf("second sync: %d %s", code, out)
	}
	code, out, _ = seafbak("--config", cfg, "status")
	want := `Total number of libraries: 1
Number of synchronized libraries: 1
Number of libraries waiting for sync: 0
Number of libraries syncing: 0
Number of libraries failed to sync: 0
List of syncing libraries:
List of libraries failed to sync:
Number of libraries synchronized with holes: 0
List of libraries with holes:
`
	if code != 0 || out != want {
		t.Fatalf("status after sync: %d\n%s", code, out)
	}
	code, out, _ = seafbak("--config", cfg, "status", "--json", "--offline")
	var rep struct {
		Total, Synchronized int
		Offline             bool
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != 0 || rep.Total != 1 || rep.Synchronized != 1 || !rep.Offline {
		t.Fatalf("status --json --offline: %d %v %s", code, err, out)
	}
	code, out, errs = seafbak("--config", cfg, "scan")
	if code != 0 || !strings.HasPrefix(out, "seafbak scan: 1 libraries checked, 0 synced, 0 failed") {
		t.Fatalf("scan: %d\n%s%s", code, out, errs)
	}

	// verify, then get the library back at its head and at an older commit.
	code, out, errs = seafbak("--config", cfg, "verify")
	if code != 0 || !strings.Contains(out, "1 libraries, 0 failed") {
		t.Fatalf("verify: %d\n%s%s", code, out, errs)
	}
	code, out, errs = seafbak("--config", cfg, "verify", "--json")
	var vrep struct {
		Libraries []struct {
			RepoID string `json:"repo_id"`
			Heads  []struct{ Complete bool }
		}
		WithHoles *int `json:"with_holes"`
	}
	if err := json.Unmarshal([]byte(out), &vrep); err != nil || code != 0 || len(vrep.Libraries) != 1 || vrep.Libraries[0].RepoID != id ||
		len(vrep.Libraries[0].Heads) == 0 || !vrep.Libraries[0].Heads[0].Complete || vrep.WithHoles == nil || *vrep.WithHoles != 0 {
		t.Fatalf("verify --json: %d %v\n%s%s", code, err, out, errs)
	}
	code, out, _ = seafbak("--config", cfg, "restore", "library", id, "--list")
	if code != 0 || strings.Count(out, "\n") != 8 || !strings.Contains(out, "5715208e10e33de4ac89cd441c52d948df77125b") || !strings.Contains(out, "backed-up head") || !strings.Contains(out, "Auto merge by system") {
		t.Fatalf("--list: %d\n%s", code, out)
	}
	for _, c := range []struct {
		args []string
		tree string
	}{
		{nil, "5715208e10e33de4ac89cd441c52d948df77125b"},
		{[]string{"--commit", "7407786e9f8c103e1cfd253ea4a9f238d4aa524f"}, "7407786e9f8c103e1cfd253ea4a9f238d4aa524f"},
	} {
		dir := filepath.Join(t.TempDir(), "restored")
		code, out, errs = seafbak(append([]string{"--config", cfg, "restore", "library", id, "--to", dir}, c.args...)...)
		if code != 0 || !strings.Contains(out, "restored commit "+c.tree) {
			t.Fatalf("restore %v: %d\n%s%s", c.args, code, out, errs)
		}
		want := mustRead(t, filepath.Join(testenv.ModuleRoot(t), "testdata/real-library/trees", c.tree+".txt"))
		if got := dirTree(t, dir); got != want {
			t.Fatalf("restored tree of %s:\n%s\nwant\n%s", c.tree, got, want)
		}
		// A non-empty directory is refused.
		if code, _, errs := seafbak("--config", cfg, "restore", "library", id, "--to", dir); code != 2 || !strings.Contains(errs, "--force") {
			t.Fatalf("non-empty dir: %d %s", code, errs)
		}
	}
}

// dirTree renders a restored directory in the format of testdata/real-library/trees.
func dirTree(t *testing.T, root string) string {
	t.Helper()
	var lines []string
	err := filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil || p == root {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if fi.IsDir() {
			lines = append(lines, "dir  -  "+rel+"/")
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		lines = append(lines, fmt.Sprintf("%x  %d  %s", sha256.Sum256(data), len(data), rel))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Slice(lines, func(i, j int) bool { return treeKey(lines[i]) < treeKey(lines[j]) })
	return strings.Join(lines, "\n") + "\n"
}

func treeKey(line string) string {
	parts := strings.SplitN(line, "  ", 3)
	return parts[2]
}

func TestCLIFailures(t *testing.T) {
	env := testenv.New(t, srv)
	cfg := writeConfig(t, env)

	// A library nobody knows fails with exit 1 and says which.
	unknown := "11111111-2222-4333-8444-555555555555"
	code, _, errs := seafbak("--config", cfg, "sync", unknown)
	if code != 1 || !strings.Contains(errs, unknown) || !strings.Contains(errs, "never backed up") {
		t.Fatalf("unknown library: %d %s", code, errs)
	}
	// A malformed id is refused (2, like restore library) before anything is touched,
	// the good ids given with it too.
	for _, args := range [][]string{{"../../etc"}, {"not-a-uuid"}, {unknown, "7B89D49B-5C5C-4F42-8DED-940C84A3E206"}} {
		code, out, errs := seafbak(append([]string{"--config", cfg, "sync"}, args...)...)
		bad := args[len(args)-1]
		if code != 2 || out != "" || !strings.Contains(errs, "seafbak sync: ") || !strings.Contains(errs, "bad library id \""+bad+"\"") || strings.Contains(errs, unknown) {
			t.Fatalf("sync %v: %d %s%s", args, code, out, errs)
		}
	}
	if code, _, errs := seafbak("--config", cfg, "restore", "library", "not-a-uuid", "--list"); code != 2 || !strings.Contains(errs, "bad library id") {
		t.Fatalf("restore library of a bad id: %d %s", code, errs)
	}
	// Config problems exit 2 and name the key.
	bad := filepath.Join(t.TempDir(), "bad.yml")
	os.WriteFile(bad, []byte("primary:\n  dbx: x\n"), 0o600)
	code, _, errs = seafbak("--config", bad, "scan")
	if code != 2 || !strings.Contains(errs, "bad.yml:2: primary.dbx: unknown key") {
		t.Fatalf("bad config: %d %s", code, errs)
	}
	code, _, errs = seafbak("--config", filepath.Join(t.TempDir(), "none.yml"), "status")
	if code != 2 || !strings.Contains(errs, "no such file") || !strings.Contains(errs, "SEAFBAK_CONFIG") {
		t.Fatalf("missing config: %d %s", code, errs)
	}
	// An unreachable primary: status cannot tell (2) unless --offline.
	os.WriteFile(bad, []byte(strings.Replace(mustRead(t, cfg), srv.Socket, "/nonexistent/mysqld.sock", 2)), 0o600)
	code, _, errs = seafbak("--config", bad, "status")
	if code != 2 || !strings.Contains(errs, "--offline") {
		t.Fatalf("unreachable primary: %d %s", code, errs)
	}
	// --offline reports from the state alone; a state that records nothing is no
	// report (a state directory made anew on a disk that did not mount).
	code, out, errs := seafbak("--config", bad, "status", "--offline")
	if code != 2 || !strings.Contains(errs, "records no library") {
		t.Fatalf("offline, nothing recorded: %d %s%s", code, out, errs)
	}
	env.LoadRealLibrary()
	if code, out, errs := seafbak("--config", cfg, "sync", testenv.RealLibraryID); code != 0 {
		t.Fatalf("sync: %d %s%s", code, out, errs)
	}
	code, out, errs = seafbak("--config", bad, "status", "--offline")
	if code != 0 || !strings.Contains(out, "Total number of libraries: 1") {
		t.Fatalf("offline: %d %s%s", code, out, errs)
	}
	// Usage errors exit 2.
	if code, _, _ := seafbak("frobnicate"); code != 2 {
		t.Fatalf("unknown command: %d", code)
	}
	if code, out, _ := seafbak("--help"); code != 0 || !strings.Contains(out, "seafbak") {
		t.Fatalf("--help: %d %s", code, out)
	}
}

func mustRead(t *testing.T, p string) string {
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// buildBinary builds seafbak for tests that need a real process (kill -9, concurrency).
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "seafbak")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// A damaged state record fails its own library in scan and status (exit 1, the file and
// the fix named) while the other libraries are still backed up.
func TestCLIDamagedRecord(t *testing.T) {
	env := testenv.New(t, srv)
	env.LoadRealLibrary()
	g := seafgen.New(env.PrimaryDir)
	lib, err := g.NewLibrary(seafgen.LibraryOptions{Name: "Other", Owner: "u@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	testenv.Commit(t, lib, "files", seafgen.Put("a.txt", []byte("one")))
	env.Publish(lib)
	cfg := writeConfig(t, env)
	if code, out, errs := seafbak("--config", cfg, "scan"); code != 0 || !strings.Contains(out, "2 synced") {
		t.Fatalf("first scan: %d\n%s%s", code, out, errs)
	}
	path := filepath.Join(env.StateDir, "libraries", testenv.RealLibraryID+".json")
	if err := os.WriteFile(path, nil, 0o640); err != nil { // truncated to nothing
		t.Fatal(err)
	}
	testenv.Commit(t, lib, "edit", seafgen.Put("a.txt", []byte("two")))
	env.Publish(lib)

	code, out, errs := seafbak("--config", cfg, "scan")
	if code != 1 || !strings.HasPrefix(out, "seafbak scan: 2 libraries checked, 1 synced, 1 failed") ||
		!strings.Contains(errs, path) || !strings.Contains(errs, "seafbak sync "+testenv.RealLibraryID) {
		t.Fatalf("scan with a damaged record: %d\n%s%s", code, out, errs)
	}
	env.CompareWithPrimary(lib.ID, lib.StoreID, lib.Head)
	code, out, errs = seafbak("--config", cfg, "status")
	if code != 1 || !strings.Contains(out, "Number of libraries failed to sync: 1\n") ||
		!strings.Contains(out, "\n"+testenv.RealLibraryID+" Shared - state: library "+testenv.RealLibraryID+": record "+path+" is damaged") {
		t.Fatalf("status: %d\n%s%s", code, out, errs)
	}
	code, out, errs = seafbak("--config", cfg, "sync", testenv.RealLibraryID)
	if code != 1 || out != "" || !strings.Contains(errs, "mv "+path+" "+path+".damaged") {
		t.Fatalf("sync of the damaged library: %d\n%s%s", code, out, errs)
	}
	if data, err := os.ReadFile(path); err != nil || len(data) != 0 {
		t.Fatalf("damaged record changed: %v %q", err, data)
	}
	// verify and store copy fail that library alone and go on with the others (they
	// refused everything, exit 2, found by review).
	code, out, errs = seafbak("--config", cfg, "verify")
	if code != 1 || !strings.Contains(out, path) || !strings.Contains(out, "2 libraries, 1 failed") || !strings.Contains(errs, "1 libraries with objects missing or damaged") {
		t.Fatalf("verify with a damaged record: %d\n%s%s", code, out, errs)
	}
	dest := filepath.Join(t.TempDir(), "seafile-data")
	code, out, errs = seafbak("--config", cfg, "store", "copy", "--to", writeStoreConfig(t, env, "  data_dir: "+dest, env.StateDir), "--json")
	if code != 1 {
		t.Fatalf("store copy with a damaged record: %d\n%s%s", code, out, errs)
	}
	if r := copyResult(t, out); r.Failed != 1 || len(r.Libraries) != 2 || r.Copied.Blocks == 0 {
		t.Fatalf("store copy with a damaged record: %+v", r)
	}
	// The fix the message gives.
	if err := os.Rename(path, path+".damaged"); err != nil {
		t.Fatal(err)
	}
	if code, out, errs := seafbak("--config", cfg, "sync", testenv.RealLibraryID); code != 0 || !strings.Contains(out, "synced to 5715208e10e33de4ac89cd441c52d948df77125b") {
		t.Fatalf("sync after the record was moved aside: %d\n%s%s", code, out, errs)
	}
	if code, out, errs := seafbak("--config", cfg, "status"); code != 0 || !strings.Contains(out, "Number of synchronized libraries: 2\n") {
		t.Fatalf("status after the fix: %d\n%s%s", code, out, errs)
	}
}
