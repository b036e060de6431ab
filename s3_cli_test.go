package main

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/minio/minio-go/v7"

	"seafbak/internal/s3test"
	"seafbak/internal/testenv"
)

// s3Buckets names one test's three buckets.
type s3Buckets struct{ commits, fs, blocks string }

var s3Seq atomic.Int64

// writeS3Config writes a config for env whose backup store is three fresh buckets on
// srv, reached through endpoint (the server's, or a fault proxy's), with its own state
// directory. The keys are the ones an admin writes (backup.store: s3, backup.s3.*).
func writeS3Config(t testing.TB, env *testenv.Env, srv *s3test.Server, endpoint string) (string, s3Buckets) {
	t.Helper()
	n := s3Seq.Add(1)
	b := s3Buckets{fmt.Sprintf("c%d-commits", n), fmt.Sprintf("c%d-fs", n), fmt.Sprintf("c%d-blocks", n)}
	srv.MakeBuckets(t, b.commits, b.fs, b.blocks)
	objects := "data_dir: " + env.PrimaryDir
	if env.FileServer != nil {
		objects = fmt.Sprintf("url: %s\n  sync_token: %s", env.FileServer.URL(), testenv.SyncToken)
	}
	p := filepath.Join(t.TempDir(), "seafbak-s3.yml")
	text := fmt.Sprintf(`primary:
  db: "root@unix(%[1]s)/%[2]s"
  %[3]s
backup:
  store: s3
  s3:
    endpoint: %[4]s
    region: %[5]s
    commit_bucket: %[6]s
    fs_bucket: %[7]s
    block_bucket: %[8]s
    path_style: true
    use_https: false
    access_key: %[9]s
    secret_key: %[10]s
  db: "root@unix(%[1]s)/%[11]s"
state: %[12]s
`, srv0(), env.PrimaryDBName, objects, endpoint, s3test.Region, b.commits, b.fs, b.blocks,
		s3test.AccessKey, s3test.SecretKey, env.BackupDBName, filepath.Join(t.TempDir(), "state"))
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p, b
}

func srv0() string { return srv.Socket }

// storedObjects lists a backup store's objects as "kind store/id sha-of-bytes": the
// filesystem store's files under storage/, or the S3 store's keys, so the two can be
// compared object for object and byte for byte.
func fsObjects(t *testing.T, dataDir string) []string {
	t.Helper()
	var out []string
	root := filepath.Join(dataDir, "storage")
	err := filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		parts := strings.Split(rel, string(filepath.Separator)) // kind/store/xx/rest
		if len(parts) != 4 {
			t.Fatalf("unexpected file in the store: %s", rel)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		out = append(out, fmt.Sprintf("%s %s/%s%s %x", parts[0], parts[1], parts[2], parts[3], sha(data)))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

func s3Objects(t *testing.T, srv *s3test.Server, b s3Buckets) []string {
	t.Helper()
	c := srv.Client(t)
	var out []string
	for _, k := range []struct{ kind, bucket string }{{"commits", b.commits}, {"fs", b.fs}, {"blocks", b.blocks}} {
		for o := range c.ListObjects(context.Background(), k.bucket, minio.ListObjectsOptions{Recursive: true}) {
			if o.Err != nil {
				t.Fatal(o.Err)
			}
			obj, err := c.GetObject(context.Background(), k.bucket, o.Key, minio.GetObjectOptions{})
			if err != nil {
				t.Fatal(err)
			}
			data, err := io.ReadAll(obj)
			obj.Close()
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, fmt.Sprintf("%s %s %x", k.kind, o.Key, sha(data)))
		}
	}
	sort.Strings(out)
	return out
}

// Everything that reads or writes the backup works on S3 as on the filesystem: sync,
// scan, status (with the backed-up head's time read from the buckets), verify, restore
// library; and the S3 backup holds exactly the filesystem backup's objects, byte for
// byte, under Seafile's S3 keys (<store id>/<object id>, one bucket per kind).
func TestCLIOnS3(t *testing.T) {
	s3 := s3test.Start(t)
	env := testenv.New(t, srv)
	env.LoadRealLibrary()
	id := testenv.RealLibraryID
	cfgFS := writeConfig(t, env)
	cfgS3, buckets := writeS3Config(t, env, s3, s3.Endpoint)

	if code, out, errs := seafbak("--config", cfgFS, "sync", id); code != 0 {
		t.Fatalf("sync to the filesystem: %d\n%s%s", code, out, errs)
	}
	code, out, errs := seafbak("--config", cfgS3, "sync", id)
	if code != 0 || !strings.Contains(out, id+" Shared: synced to 5715208e10e33de4ac89cd441c52d948df77125b: 7 commits, 19 fs objects, 12 blocks") || errs != "" {
		t.Fatalf("sync to S3: %d\n%s%s", code, out, errs)
	}
	want, got := fsObjects(t, env.BackupDir), s3Objects(t, s3, buckets)
	if strings.Join(want, "\n") != strings.Join(got, "\n") {
		t.Fatalf("S3 objects differ from the filesystem store's:\nS3:\n%s\nfilesystem:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if len(got) != 7+19+12 {
		t.Fatalf("%d objects in S3, want 38", len(got))
	}
	code, out, errs = seafbak("--config", cfgS3, "sync", id)
	if code != 0 || !strings.Contains(out, "up to date") {
		t.Fatalf("second sync: %d %s%s", code, out, errs)
	}
	code, out, errs = seafbak("--config", cfgS3, "scan")
	if code != 0 || !strings.HasPrefix(out, "seafbak scan: 1 libraries checked, 0 synced, 0 failed") {
		t.Fatalf("scan: %d\n%s%s", code, out, errs)
	}
	code, out, errs = seafbak("--config", cfgS3, "status", "--json")
	var rep struct {
		Synchronized int
		Libraries    []struct {
			HeadTime *string `json:"head_time"`
		}
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != 0 || rep.Synchronized != 1 || len(rep.Libraries) != 1 || rep.Libraries[0].HeadTime == nil {
		t.Fatalf("status --json: %d %v\n%s%s", code, err, out, errs)
	}
	code, out, errs = seafbak("--config", cfgS3, "verify")
	if code != 0 || !strings.Contains(out, "1 libraries, 0 failed") {
		t.Fatalf("verify: %d\n%s%s", code, out, errs)
	}
	code, out, errs = seafbak("--config", cfgS3, "restore", "library", id, "--list")
	if code != 0 || strings.Count(out, "\n") != 8 || !strings.Contains(out, "backed-up head") {
		t.Fatalf("--list: %d\n%s%s", code, out, errs)
	}
	for _, commit := range []string{"5715208e10e33de4ac89cd441c52d948df77125b", "7407786e9f8c103e1cfd253ea4a9f238d4aa524f"} {
		dir := filepath.Join(t.TempDir(), "restored")
		code, out, errs = seafbak("--config", cfgS3, "restore", "library", id, "--commit", commit, "--to", dir)
		if code != 0 || !strings.Contains(out, "restored commit "+commit) {
			t.Fatalf("restore %s: %d\n%s%s", commit, code, out, errs)
		}
		if got, want := dirTree(t, dir), mustRead(t, filepath.Join(testenv.ModuleRoot(t), "testdata/real-library/trees", commit+".txt")); got != want {
			t.Fatalf("restored tree of %s from S3:\n%s\nwant\n%s", commit, got, want)
		}
	}

	// A damaged object in the bucket is found by verify and fetched again by --repair.
	c := s3.Client(t)
	var victim string
	for o := range c.ListObjects(context.Background(), buckets.blocks, minio.ListObjectsOptions{Recursive: true}) {
		victim = o.Key
	}
	if _, err := c.PutObject(context.Background(), buckets.blocks, victim, bytes.NewReader([]byte("rot")), 3, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	code, out, _ = seafbak("--config", cfgS3, "verify")
	if code != 1 || !strings.Contains(out, victim[strings.Index(victim, "/")+1:]) {
		t.Fatalf("verify of a damaged block: %d\n%s", code, out)
	}
	code, out, errs = seafbak("--config", cfgS3, "verify", "--repair")
	if code != 0 {
		t.Fatalf("verify --repair: %d\n%s%s", code, out, errs)
	}
	if got := s3Objects(t, s3, buckets); strings.Join(want, "\n") != strings.Join(got, "\n") {
		t.Fatalf("after repair, S3 objects differ from the filesystem store's")
	}
}

func sha(b []byte) [20]byte { return sha1.Sum(b) }
