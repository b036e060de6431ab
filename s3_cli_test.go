package main

import (
	"bytes"
	"context"
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
	"seafbak/sync/object"
)

// s3Buckets names one test's three buckets.
type s3Buckets struct{ commits, fs, blocks string }

// byKind pairs each object kind with its bucket.
func (b s3Buckets) byKind() []struct {
	kind   object.Kind
	bucket string
} {
	return []struct {
		kind   object.Kind
		bucket string
	}{{object.KindCommit, b.commits}, {object.KindFS, b.fs}, {object.KindBlock, b.blocks}}
}

var s3Seq atomic.Int64

// writeStoreConfig writes a config for env whose backup store is storeYAML (the backup
// section's store keys, indented) and whose state directory is state.
func writeStoreConfig(t testing.TB, env *testenv.Env, storeYAML, state string) string {
	t.Helper()
	objects := "data_dir: " + env.PrimaryDir
	if env.FileServer != nil {
		objects = fmt.Sprintf("url: %s\n  sync_token: %s", env.FileServer.URL(), testenv.SyncToken)
	}
	p := filepath.Join(t.TempDir(), "seafbak-store.yml")
	text := fmt.Sprintf(`primary:
  db: "root@unix(%[1]s)/%[2]s"
  %[3]s
backup:
%[4]s
  db: "root@unix(%[1]s)/%[5]s"
state: %[6]s
`, srv.Socket, env.PrimaryDBName, objects, storeYAML, env.BackupDBName, state)
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// writeS3Config writes a config for env whose backup store is three fresh buckets on
// srv, reached through endpoint (the server's, or a fault proxy's). The keys are the
// ones an admin writes (backup.store: s3, backup.s3.*). state is the state directory:
// "" for one of its own (a second backup beside env's), env.StateDir for the config an
// admin switches to after copying the store.
func writeS3Config(t testing.TB, env *testenv.Env, srv *s3test.Server, endpoint, state string) (string, s3Buckets) {
	t.Helper()
	n := s3Seq.Add(1)
	b := s3Buckets{fmt.Sprintf("c%d-commits", n), fmt.Sprintf("c%d-fs", n), fmt.Sprintf("c%d-blocks", n)}
	srv.MakeBuckets(t, b.commits, b.fs, b.blocks)
	if state == "" {
		state = filepath.Join(t.TempDir(), "state")
	}
	return writeStoreConfig(t, env, fmt.Sprintf(`  store: s3
  s3:
    endpoint: %s
    region: %s
    commit_bucket: %s
    fs_bucket: %s
    block_bucket: %s
    path_style: true
    use_https: false
    access_key: %s
    secret_key: %s`, endpoint, s3test.Region, b.commits, b.fs, b.blocks, s3test.AccessKey, s3test.SecretKey), state), b
}

// fsStoreObjects reads every object of a filesystem store (the files under storage/),
// keyed kind/store/id; any other file there fails the test.
func fsStoreObjects(t *testing.T, dataDir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	root := filepath.Join(dataDir, "storage")
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		parts := strings.Split(filepath.ToSlash(rel), "/") // kind/store/xx/rest
		if len(parts) != 4 || len(parts[2]) != 2 {
			t.Fatalf("unexpected file in the store: %s", rel)
		}
		data, err := os.ReadFile(p)
		out[parts[0]+"/"+parts[1]+"/"+parts[2]+parts[3]] = data
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// s3StoreObjects reads every object of the three buckets (Seafile's S3 keys,
// <store id>/<object id>), keyed kind/store/id as fsStoreObjects keys them.
func s3StoreObjects(t *testing.T, s3 *s3test.Server, b s3Buckets) map[string][]byte {
	t.Helper()
	c := s3.Client(t)
	out := map[string][]byte{}
	for _, k := range b.byKind() {
		for _, key := range s3.Keys(t, k.bucket) {
			o, err := c.GetObject(context.Background(), k.bucket, key, minio.GetObjectOptions{})
			if err != nil {
				t.Fatal(err)
			}
			data, err := io.ReadAll(o)
			o.Close()
			if err != nil {
				t.Fatal(err)
			}
			out[string(k.kind)+"/"+key] = data
		}
	}
	return out
}

// sameStoreObjects fails the test unless got holds exactly want's objects, byte for byte.
func sameStoreObjects(t *testing.T, what string, want, got map[string][]byte) {
	t.Helper()
	var diffs []string
	for k, w := range want {
		if g, ok := got[k]; !ok {
			diffs = append(diffs, "missing "+k)
		} else if !bytes.Equal(g, w) {
			diffs = append(diffs, "differs "+k)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			diffs = append(diffs, "extra "+k)
		}
	}
	if len(diffs) > 0 {
		sort.Strings(diffs)
		t.Fatalf("%s: %d of %d objects differ: %s", what, len(diffs), len(want), strings.Join(diffs[:min(20, len(diffs))], "\n"))
	}
}

// Everything that reads or writes the backup works on S3 as on the filesystem: sync,
// scan, status (with the backed-up head's time read from the buckets), verify, restore
// library; and the S3 backup holds exactly the filesystem backup's objects, byte for
// byte, under Seafile's S3 keys (<store id>/<object id>, one bucket per kind).
func TestCLIOnS3(t *testing.T) {
	s3 := s3test.Start(t)
	side := realOnS3(t, s3, s3.Endpoint)
	env, cfgS3, buckets, id := side.env, side.cfg, side.buckets, testenv.RealLibraryID
	cfgFS := writeConfig(t, env)

	if code, out, errs := seafbak("--config", cfgFS, "sync", id); code != 0 {
		t.Fatalf("sync to the filesystem: %d\n%s%s", code, out, errs)
	}
	code, out, errs := seafbak("--config", cfgS3, "sync", id)
	if code != 0 || !strings.Contains(out, id+" Shared: synced to 5715208e10e33de4ac89cd441c52d948df77125b: 7 commits, 19 fs objects, 12 blocks") || errs != "" {
		t.Fatalf("sync to S3: %d\n%s%s", code, out, errs)
	}
	want, got := fsStoreObjects(t, env.BackupDir), s3StoreObjects(t, s3, buckets)
	sameStoreObjects(t, "S3 objects against the filesystem store's", want, got)
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
	sameStoreObjects(t, "after repair, S3 objects against the filesystem store's", want, s3StoreObjects(t, s3, buckets))
}

// SEAFBAK_S3_SECRET_KEY is read by every config seafbak loads: from one S3 store to
// another it would silently replace the destination's own secret_key. Refused, naming
// the variable.
func TestCLIStoreCopyS3ToS3RefusesTheEnvironmentsSecret(t *testing.T) {
	env := testenv.New(t, srv)
	s3 := s3test.Start(t)
	from, _ := writeS3Config(t, env, s3, s3.Endpoint, "")
	to, _ := writeS3Config(t, env, s3, s3.Endpoint, "")
	t.Setenv("SEAFBAK_S3_SECRET_KEY", s3test.SecretKey)
	code, _, errs := seafbak("--config", from, "store", "copy", "--to", to)
	if code != 2 || !strings.Contains(errs, "SEAFBAK_S3_SECRET_KEY is set") || !strings.Contains(errs, to) {
		t.Fatalf("S3 to S3 with the secret in the environment: %d %s", code, errs)
	}
}
