package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"seafbak/internal/testenv"
)

// --to "" is a script's unset variable, as --commit "" and --at "" are: it must be
// refused, not taken as the current directory (with --force, restoring over whatever
// is there).
func TestRestoreToEmptyIsRefused(t *testing.T) {
	env := testenv.New(t, srv)
	env.LoadRealLibrary()
	cfg := writeConfig(t, env)
	id := testenv.RealLibraryID
	if code, out, errs := seafbak("--config", cfg, "sync", id); code != 0 {
		t.Fatalf("sync: %d %s%s", code, out, errs)
	}
	cwd := t.TempDir()
	t.Chdir(cwd)
	os.WriteFile(filepath.Join(cwd, "keep-me.txt"), []byte("mine"), 0o600)
	code, out, errs := seafbak("--config", cfg, "restore", "library", id, "--to", "", "--force")
	entries, _ := os.ReadDir(cwd)
	if code != 2 || len(entries) != 1 || !strings.Contains(errs, "--to") {
		t.Fatalf("restore --to \"\" --force: exit %d, the current directory now holds %d entries\n%s%s", code, len(entries), out, errs)
	}
}

// backup.data_dir naming a file (a wrong path, a mount point replaced by a file) has no
// storage/ directory: status, a command that reads the backup, must refuse it (exit 2,
// naming the path) as it refuses a store directory without storage/, not report every
// library healthy.
func TestStatusRefusesABackupDataDirThatIsAFile(t *testing.T) {
	env := testenv.New(t, srv)
	env.LoadRealLibrary()
	cfg := writeConfig(t, env)
	id := testenv.RealLibraryID
	if code, out, errs := seafbak("--config", cfg, "sync", id); code != 0 {
		t.Fatalf("sync: %d %s%s", code, out, errs)
	}
	file := filepath.Join(t.TempDir(), "not-a-dir")
	os.WriteFile(file, []byte("x"), 0o600)
	bad := filepath.Join(t.TempDir(), "bad.yml")
	os.WriteFile(bad, []byte(strings.Replace(mustRead(t, cfg), env.BackupDir, file, 1)), 0o600)
	for _, args := range [][]string{{"status"}, {"status", "--offline"}} {
		code, out, errs := seafbak(append([]string{"--config", bad}, args...)...)
		if code != 2 || !strings.Contains(errs, file) {
			t.Errorf("%v with backup.data_dir a file: exit %d\n%s%s", args, code, out, errs)
		}
	}
}

// A database refusing the account (wrong password, wrong user) is a configuration
// error: the message must name the key to fix (primary.db / backup.db, or the password
// variable), and never the password.
func TestWrongDatabaseCredentialsNameTheKey(t *testing.T) {
	env := testenv.New(t, srv)
	cfg := writeConfig(t, env)
	const pw = "Sup3rSecretPw"
	bad := filepath.Join(t.TempDir(), "bad.yml")
	os.WriteFile(bad, []byte(strings.Replace(mustRead(t, cfg), "root@unix", "nobody:"+pw+"@unix", 1)), 0o600)
	for _, args := range [][]string{{"scan"}, {"sync", testenv.RealLibraryID}, {"status"}} {
		code, out, errs := seafbak(append([]string{"--config", bad}, args...)...)
		if strings.Contains(out+errs, pw) {
			t.Errorf("%v printed the password: %s%s", args, out, errs)
		}
		if code != 2 || !strings.Contains(errs, "primary.db") {
			t.Errorf("%v with a wrong database account: exit %d, no key named\n%s%s", args, code, out, errs)
		}
	}
	// Nor does a database server that is not there (a wrong socket or host).
	os.WriteFile(bad, []byte(strings.Replace(mustRead(t, cfg), srv.Socket, "/nonexistent/mysqld.sock", 1)), 0o600)
	if code, out, errs := seafbak("--config", bad, "scan"); code != 2 || !strings.Contains(errs, "primary.db") {
		t.Errorf("scan with primary.db's server not there: exit %d, no key named\n%s%s", code, out, errs)
	}
}

// store copy's destination is a store the backup host writes: inside the primary's
// seafile-data (this config's primary.data_dir) it must be refused, as backup.data_dir
// is, whatever primary the --to file names (README: nothing else of that file is used).
func TestStoreCopyRefusesADestinationInsideThePrimary(t *testing.T) {
	env := testenv.New(t, srv)
	env.LoadRealLibrary()
	cfg := writeConfig(t, env)
	if code, out, errs := seafbak("--config", cfg, "sync", testenv.RealLibraryID); code != 0 {
		t.Fatalf("sync: %d %s%s", code, out, errs)
	}
	dest := filepath.Join(env.PrimaryDir, "copy")
	to := filepath.Join(t.TempDir(), "to.yml")
	os.WriteFile(to, []byte(strings.NewReplacer(env.BackupDir, dest, "data_dir: "+env.PrimaryDir, "data_dir: /elsewhere/seafile-data").Replace(mustRead(t, cfg))), 0o600)
	code, out, errs := seafbak("--config", cfg, "store", "copy", "--to", to)
	if _, err := os.Stat(filepath.Join(dest, "storage")); err == nil || code != 2 {
		t.Fatalf("store copy into the primary's data dir: exit %d, %s/storage made: %v\n%s%s", code, dest, err == nil, out, errs)
	}
}

// store copy only reads this config's backup: a state directory that is not there (its
// disk not mounted) must be refused (exit 2), not made anew, empty, on the mount point,
// and a copy of nothing reported as done.
func TestStoreCopyRefusesAStateNotThere(t *testing.T) {
	env := testenv.New(t, srv)
	env.LoadRealLibrary()
	cfg := writeConfig(t, env)
	if code, out, errs := seafbak("--config", cfg, "sync", testenv.RealLibraryID); code != 0 {
		t.Fatalf("sync: %d %s%s", code, out, errs)
	}
	missing := filepath.Join(t.TempDir(), "unmounted", "state")
	from := filepath.Join(t.TempDir(), "from.yml")
	os.WriteFile(from, []byte(strings.Replace(mustRead(t, cfg), env.StateDir, missing, 1)), 0o600)
	to := filepath.Join(t.TempDir(), "to.yml")
	os.WriteFile(to, []byte(strings.Replace(mustRead(t, cfg), env.BackupDir, filepath.Join(t.TempDir(), "copy"), 1)), 0o600)
	code, out, errs := seafbak("--config", from, "store", "copy", "--to", to)
	_, statErr := os.Stat(missing)
	if code != 2 || statErr == nil {
		t.Fatalf("store copy with the state not there: exit %d, state made: %v\n%s%s", code, statErr == nil, out, errs)
	}
}

// --list lists the whole history: a restore flag given with it (a bad --commit, --to,
// --at, --force) is refused as --path is, not silently ignored with exit 0.
func TestRestoreListRefusesRestoreFlags(t *testing.T) {
	env := testenv.New(t, srv)
	env.LoadRealLibrary()
	cfg := writeConfig(t, env)
	id := testenv.RealLibraryID
	if code, out, errs := seafbak("--config", cfg, "sync", id); code != 0 {
		t.Fatalf("sync: %d %s%s", code, out, errs)
	}
	for _, extra := range [][]string{{"--commit", "zz"}, {"--at", "yesterday"}, {"--to", t.TempDir(), "--force"}} {
		code, out, errs := seafbak(append([]string{"--config", cfg, "restore", "library", id, "--list"}, extra...)...)
		if code != 2 || !strings.Contains(errs, extra[0]) {
			t.Errorf("--list %v: exit %d\n%.200s%s", extra, code, out, errs)
		}
	}
}

// restore library --to the backup store itself (backup.data_dir), --force: the backup
// store is written by sync alone; a restore into it must be refused, not mix the
// library's files with the store's own layout.
func TestRestoreIntoTheBackupStoreIsRefused(t *testing.T) {
	env := testenv.New(t, srv)
	env.LoadRealLibrary()
	cfg := writeConfig(t, env)
	id := testenv.RealLibraryID
	if code, out, errs := seafbak("--config", cfg, "sync", id); code != 0 {
		t.Fatalf("sync: %d %s%s", code, out, errs)
	}
	before, _ := os.ReadDir(env.BackupDir)
	code, out, errs := seafbak("--config", cfg, "restore", "library", id, "--to", env.BackupDir, "--force")
	after, _ := os.ReadDir(env.BackupDir)
	if code != 2 || len(after) != len(before) {
		t.Fatalf("restore --to backup.data_dir --force: exit %d, store root %d entries -> %d\n%s%s", code, len(before), len(after), out, errs)
	}
}

// --log-format json: every message on stderr is a JSON record, as the final error is
// (a log shipper reads them): bad arguments and the metrics file's failure too.
func TestLogFormatJSONForEveryError(t *testing.T) {
	env := testenv.New(t, srv)
	env.LoadRealLibrary()
	cfg := writeConfig(t, env)
	for _, args := range [][]string{
		{"--log-format", "json", "--config", cfg, "sync"},
		{"--log-format", "json", "--config", cfg, "verify", "--sample", "abc"},
		{"--log-format", "json", "--config", cfg, "--metrics-file", "/nonexistent/dir/x.prom", "sync", testenv.RealLibraryID},
	} {
		_, _, errs := seafbak(args...)
		for _, line := range strings.Split(strings.TrimSpace(errs), "\n") {
			if !strings.HasPrefix(line, "{") {
				t.Errorf("%v: a line on stderr that is not JSON: %q", args, line)
			}
		}
	}
}
