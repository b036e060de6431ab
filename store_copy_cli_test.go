package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"seafbak/internal/s3test"
	"seafbak/internal/seafgen"
	"seafbak/internal/testenv"
	"seafbak/storecopy"
	"seafbak/sync/object"
)

func copyResult(t *testing.T, out string) storecopy.Result {
	t.Helper()
	var r storecopy.Result
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("store copy --json: %v\n%s", err, out)
	}
	return r
}

// seafbak store copy: a filesystem backup with history to S3, killed -9 midway and run
// again (only what was missing is copied), compared byte for byte and verified through
// a config on the S3 store; back from S3 into a fresh filesystem store; the same store
// refused; a corrupt block named and not copied (exit 1).
func TestCLIStoreCopy(t *testing.T) {
	s3 := s3test.Start(t)
	env := testenv.New(t, srv)
	g := seafgen.New(env.PrimaryDir)
	g.BlockSize = 4096
	lib, err := g.NewLibrary(seafgen.LibraryOptions{Name: "Big", Owner: "u@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	testenv.Commit(t, lib, "files", seafgen.Put("a/b/c.txt", []byte("c")), seafgen.Put("empty", nil), seafgen.Put("multi.bin", testenv.RandomBytes(20000, 3)))
	if _, err := lib.CommitBulk("bulk", 2000, 8<<20, 7); err != nil {
		t.Fatal(err)
	}
	testenv.Commit(t, lib, "edit", seafgen.Put("multi.bin", testenv.RandomBytes(9000, 4)), seafgen.Delete("a/b"))
	small, err := g.NewLibrary(seafgen.LibraryOptions{Name: "Small", Owner: "u@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	testenv.Commit(t, small, "one", seafgen.Put("x/y.txt", []byte("y")))
	env.Publish(lib, small)
	cfgFS := writeConfig(t, env)
	if code, out, errs := seafbak("--config", cfgFS, "scan"); code != 0 {
		t.Fatalf("scan: %d\n%s%s", code, out, errs)
	}
	want := fsStoreObjects(t, env.BackupDir)
	cfgS3, buckets := writeS3Config(t, env, s3, s3.Endpoint, env.StateDir)

	// Killed -9 once a few hundred blocks are in the bucket.
	bin := buildBinary(t)
	cmd := exec.Command(bin, "--config", cfgFS, "store", "copy", "--to", cfgS3)
	var killedOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &killedOut, &killedOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := s3.Client(t)
	killed := false
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		n := 0
		for range c.ListObjects(context.Background(), buckets.blocks, minio.ListObjectsOptions{Recursive: true}) {
			n++
		}
		if n >= 300 {
			killed = cmd.Process.Signal(syscall.SIGKILL) == nil
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	werr := cmd.Wait()
	if !killed || werr == nil {
		t.Fatalf("the copy was not killed midway (%v): %s", werr, killedOut.String())
	}
	time.Sleep(300 * time.Millisecond) // a PUT cut by the kill may still land
	mid := s3StoreObjects(t, s3, buckets)
	for k, v := range mid {
		if !bytes.Equal(want[k], v) {
			t.Fatalf("killed copy left %s wrong or foreign", k)
		}
	}
	code, out, errs := seafbak("--config", cfgFS, "store", "copy", "--to", cfgS3, "--json")
	if code != 0 {
		t.Fatalf("store copy after kill -9: %d\n%s%s", code, out, errs)
	}
	res := copyResult(t, out)
	t.Logf("kill -9 after %d of %d objects; the rerun copied %d (%d present) in %.2fs", len(mid), len(want), res.Copied.Objects(), res.Present.Objects(), res.Seconds)
	if int(res.Copied.Objects())+len(mid) != len(want) || len(res.Libraries) != 2 || res.Failed != 0 {
		t.Fatalf("rerun copied %d objects, %d were there, the source has %d: %+v", res.Copied.Objects(), len(mid), len(want), res)
	}
	sameStoreObjects(t, "fs → s3", want, s3StoreObjects(t, s3, buckets))
	if code, out, errs := seafbak("--config", cfgS3, "verify"); code != 0 || !strings.Contains(out, "2 libraries, 0 failed") {
		t.Fatalf("verify of the S3 copy: %d\n%s%s", code, out, errs)
	}

	// A whole copy, S3 back to a fresh filesystem store, in text.
	back := filepath.Join(t.TempDir(), "seafile-data")
	cfgBack := writeStoreConfig(t, env, "  data_dir: "+back, env.StateDir)
	code, out, errs = seafbak("--config", cfgS3, "store", "copy", "--to", cfgBack)
	if code != 0 || !strings.Contains(out, "seafbak store copy: 2 libraries, 0 failed; copied ") || errs != "" {
		t.Fatalf("s3 → fs: %d\n%s%s", code, out, errs)
	}
	t.Logf("s3 → fs: %s", strings.TrimSpace(out))
	sameStoreObjects(t, "s3 → fs", want, fsStoreObjects(t, back))
	if code, out, errs := seafbak("--config", cfgBack, "verify"); code != 0 {
		t.Fatalf("verify of the copy back: %d\n%s%s", code, out, errs)
	}

	// A lost block below a present file (a power loss in a filesystem store): the plain
	// rerun trusts presence, --recheck finds it and copies it alone.
	var lost string
	for k := range want {
		if strings.HasPrefix(k, "blocks/"+lib.StoreID+"/") {
			lost = k[strings.LastIndex(k, "/")+1:]
			break
		}
	}
	if err := os.Remove(testenv.ObjectPath(back, object.KindBlock, lib.StoreID, lost)); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{}, {"--recheck"}} {
		code, out, errs = seafbak(append([]string{"--config", cfgFS, "store", "copy", "--to", cfgBack, "--json"}, args...)...)
		if code != 0 {
			t.Fatalf("store copy %v: %d\n%s%s", args, code, out, errs)
		}
		r := copyResult(t, out)
		if wantN := int64(len(args)); r.Copied.Objects() != wantN || r.Copied.Blocks != wantN {
			t.Fatalf("store copy %v copied %+v, want %d block", args, r.Copied, wantN)
		}
	}
	sameStoreObjects(t, "rechecked", want, fsStoreObjects(t, back))

	if code, out, errs := seafbak("--config", cfgFS, "store", "copy", "--to", cfgFS); code != 2 || !strings.Contains(errs, "names the backup store this config already uses") {
		t.Fatalf("copy onto itself: %d\n%s%s", code, out, errs)
	}
	// The same store through a symlink (found by review: "4 objects already there").
	link := filepath.Join(t.TempDir(), "linked-seafile-data")
	if err := os.Symlink(env.BackupDir, link); err != nil {
		t.Fatal(err)
	}
	if code, out, errs := seafbak("--config", cfgFS, "store", "copy", "--to", writeStoreConfig(t, env, "  data_dir: "+link, env.StateDir)); code != 2 || !strings.Contains(errs, "names the backup store this config already uses") {
		t.Fatalf("copy onto itself through a symlink: %d\n%s%s", code, out, errs)
	}

	// A corrupt block in the source: named, not copied, exit 1; the other library copied.
	var victim string
	for k := range want {
		if strings.HasPrefix(k, "blocks/"+lib.StoreID+"/") {
			victim = k
			break
		}
	}
	id := victim[strings.LastIndex(victim, "/")+1:]
	p := testenv.ObjectPath(env.BackupDir, object.KindBlock, lib.StoreID, id)
	if err := os.WriteFile(p, append(bytes.Clone(want[victim]), 'x'), 0o644); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(t.TempDir(), "seafile-data")
	code, out, errs = seafbak("--config", cfgFS, "store", "copy", "--to", writeStoreConfig(t, env, "  data_dir: "+bad, env.StateDir))
	if code != 1 || !strings.Contains(out, lib.ID+" Big: FAILED: ") || !strings.Contains(out, "block "+id) || !strings.Contains(out, "corrupt in the source store") || !strings.Contains(out, "1 failed") {
		t.Fatalf("copy of a corrupt block: %d\n%s%s", code, out, errs)
	}
	if _, err := os.Stat(testenv.ObjectPath(bad, object.KindBlock, lib.StoreID, id)); !os.IsNotExist(err) {
		t.Fatalf("the corrupt block was copied: %v", err)
	}
}

// SIGTERM stops a copy into a filesystem store with exit 143, what was written made
// durable; the rerun finishes it.
func TestCLIStoreCopySIGTERM(t *testing.T) {
	env := testenv.New(t, srv)
	g := seafgen.New(env.PrimaryDir)
	g.BlockSize = 4096
	lib, err := g.NewLibrary(seafgen.LibraryOptions{Name: "Big", Owner: "u@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lib.CommitBulk("bulk", 1500, 6<<20, 9); err != nil {
		t.Fatal(err)
	}
	env.Publish(lib)
	cfgFS := writeConfig(t, env)
	if code, out, errs := seafbak("--config", cfgFS, "scan"); code != 0 {
		t.Fatalf("scan: %d\n%s%s", code, out, errs)
	}
	want := fsStoreObjects(t, env.BackupDir)
	dest := filepath.Join(t.TempDir(), "seafile-data")
	cfgDest := writeStoreConfig(t, env, "  data_dir: "+dest, env.StateDir)
	cmd := exec.Command(buildBinary(t), "--config", cfgFS, "store", "copy", "--to", cfgDest)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "100 blocks copied", 60*time.Second, func() bool {
		n := 0
		filepath.WalkDir(filepath.Join(dest, "storage", "blocks"), func(_ string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				n++
			}
			return nil
		})
		return n >= 100
	})
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != 143 || !strings.Contains(out.String(), "interrupted by SIGTERM; what was copied stays") {
		t.Fatalf("SIGTERM: exit %d (%v)\n%s", code, err, out.String())
	}
	mid := fsStoreObjects(t, dest)
	code, o, errs := seafbak("--config", cfgFS, "store", "copy", "--to", cfgDest, "--json")
	if code != 0 {
		t.Fatalf("rerun: %d\n%s%s", code, o, errs)
	}
	res := copyResult(t, o)
	t.Logf("SIGTERM after %d of %d objects; the rerun copied %d", len(mid), len(want), res.Copied.Objects())
	if int(res.Copied.Objects())+len(mid) != len(want) {
		t.Fatalf("rerun copied %d, %d were there, the source has %d", res.Copied.Objects(), len(mid), len(want))
	}
	sameStoreObjects(t, "after SIGTERM", want, fsStoreObjects(t, dest))
}
