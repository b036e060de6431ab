package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"seafbak/internal/seafgen"
	"seafbak/internal/testenv"
)

// A backup disk that fills up: the scan that meets it stops starting syncs (each would
// fail the same way) and says so with the admin's next step; every library keeps its
// previous head; each failed library records one text for the full store, so status
// --if-changed mails once, not at every scan; and once there is room, the next scan
// backs up everything, verify passes and a restore gives the bytes back.
func TestBackupDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounts a small tmpfs as the backup disk: needs root")
	}
	env := testenv.New(t, srv)
	gen := seafgen.New(env.PrimaryDir)
	const libraries = 100 // more than a scan starts at once with parallel: 1
	var libs []*seafgen.Library
	for i := range libraries {
		l, err := gen.NewLibrary(seafgen.LibraryOptions{Name: fmt.Sprintf("lib%03d", i), Owner: "u@example.com"})
		if err != nil {
			t.Fatal(err)
		}
		testenv.Commit(t, l, "files", seafgen.Put("data.bin", testenv.RandomBytes(64<<10, uint64(i))), seafgen.Put("dir/ö.txt", []byte(l.ID)))
		libs = append(libs, l)
	}
	env.Publish(libs...)
	// Room for a few libraries of the hundred.
	mnt := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatalf("mount a tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(mnt, unix.MNT_DETACH) })
	env.BackupDir = filepath.Join(mnt, "seafile-data")
	cfg := writeConfig(t, env)
	text, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, append(text, "parallel: 1\n"...), 0o600); err != nil {
		t.Fatal(err)
	}

	code, out, errs := seafbak("--config", cfg, "scan")
	notTried := regexp.MustCompile(`the backup store is full: (\d+) libraries not tried`).FindStringSubmatch(out)
	if code != 1 || notTried == nil || notTried[1] == "0" ||
		!strings.Contains(errs, "hint: free space or inodes on the backup disk") {
		t.Fatalf("scan onto a full disk: %d\n%s%s", code, out, errs)
	}
	t.Logf("first scan: %s", strings.TrimSpace(out))
	if ents, err := os.ReadDir(filepath.Join(env.BackupDir, "seafbak-tmp")); err != nil || len(ents) != 0 {
		t.Errorf("temp files left on the full disk: %v %v", ents, err)
	}
	// The hook's sync says the same.
	var untried string
	for _, l := range libs {
		if env.BackupHead(l.ID) == "" {
			untried = l.ID
		}
	}
	if code, out, errs := seafbak("--config", cfg, "sync", untried); code != 1 ||
		!strings.Contains(errs, "the backup store's filesystem is full at "+env.BackupDir) || !strings.Contains(errs, "hint: free space or inodes") {
		t.Errorf("sync onto the full disk: %d\n%s%s", code, out, errs)
	}
	// Every library that failed recorded the same text, naming the store, not an object.
	_, status, _ := seafbak("--config", cfg, "status")
	want := "the backup store's filesystem is full at " + env.BackupDir + ": no space left on device"
	failedLines := 0
	for _, line := range strings.Split(status, "\n") {
		if strings.Contains(line, "sync ") {
			failedLines++
			if !strings.HasSuffix(line, want) {
				t.Errorf("a failed library's error: %q, want it to end %q", line, want)
			}
		}
	}
	if failedLines == 0 {
		t.Fatalf("no failed library in the status:\n%s", status)
	}
	// Mailed once: the next scan fails other libraries the same way.
	if code, out, _ := seafbak("--config", cfg, "status", "--if-changed"); code != 1 || out == "" {
		t.Fatalf("status --if-changed when the disk filled: %d %q", code, out)
	}
	if code, out, errs := seafbak("--config", cfg, "scan"); code != 1 || !strings.Contains(out, "the backup store is full") {
		t.Fatalf("second scan onto the full disk: %d\n%s%s", code, out, errs)
	}
	if code, out, _ := seafbak("--config", cfg, "status", "--if-changed"); code != 0 || out != "" {
		t.Errorf("status --if-changed after another scan onto the same full disk: %d\n%s", code, out)
	}
	// Nothing recorded a head it does not hold.
	for _, l := range libs {
		if h := env.BackupHead(l.ID); h != "" && h != l.Head {
			t.Errorf("library %s: backup head %s, neither none nor the primary's %s", l.ID, h, l.Head)
		}
	}

	// Room again: everything is backed up, whole.
	if err := unix.Mount("tmpfs", mnt, "tmpfs", unix.MS_REMOUNT, "size=64m"); err != nil {
		t.Fatal(err)
	}
	if code, out, errs := seafbak("--config", cfg, "scan"); code != 0 || !strings.Contains(out, "failed, ") || strings.Contains(out, " 0 synced") {
		t.Fatalf("scan with room again: %d\n%s%s", code, out, errs)
	}
	for _, l := range libs {
		if h := env.BackupHead(l.ID); h != l.Head {
			t.Fatalf("library %s not backed up once there was room: %q", l.ID, h)
		}
	}
	if code, out, errs := seafbak("--config", cfg, "verify"); code != 0 {
		t.Fatalf("verify: %d\n%s%s", code, out, errs)
	}
	if code, out, _ := seafbak("--config", cfg, "status", "--if-changed"); code != 1 || out == "" {
		t.Errorf("status --if-changed once healthy again: %d %q", code, out)
	}
	for _, i := range []int{0, libraries - 1} {
		dir := filepath.Join(t.TempDir(), "out")
		if code, out, errs := seafbak("--config", cfg, "restore", "library", libs[i].ID, "--to", dir); code != 0 {
			t.Fatalf("restore: %d\n%s%s", code, out, errs)
		}
		b, err := os.ReadFile(filepath.Join(dir, "data.bin"))
		if err != nil || !bytes.Equal(b, testenv.RandomBytes(64<<10, uint64(i))) {
			t.Errorf("library %d restored with other bytes (%v)", i, err)
		}
	}
}
