package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"seafbak/config"
	"seafbak/internal/s3test"
	"seafbak/internal/seafgen"
	"seafbak/internal/testenv"
	"seafbak/restore"
	"seafbak/state"
	"seafbak/sync/object"
	"seafbak/sync/store"
)

// s3Side is one test's backup on S3: the server, the config (three fresh buckets, its
// own state dir) and the endpoint the config names (the server's or a proxy's).
type s3Side struct {
	env      *testenv.Env
	srv      *s3test.Server
	cfg      string
	buckets  s3Buckets
	endpoint string
	state    *state.Dir
	client   *minio.Client // straight to the server, for checks
}

func newS3Side(t *testing.T, env *testenv.Env, srv *s3test.Server, endpoint string) *s3Side {
	t.Helper()
	cfg, b := writeS3Config(t, env, srv, endpoint)
	c, err := config.Load(cfg)
	must(t, err)
	st, err := state.Open(c.State)
	must(t, err)
	return &s3Side{env: env, srv: srv, cfg: cfg, buckets: b, endpoint: endpoint, state: st, client: srv.Client(t)}
}

// store opens the buckets straight on the server (not through a proxy), for checks.
func (s *s3Side) store(t *testing.T) *store.S3 {
	t.Helper()
	st, err := store.NewS3(context.Background(), store.S3Options{
		Endpoint: s.srv.Endpoint, Region: s3test.Region, PathStyle: true,
		Buckets:   store.S3Buckets{Commits: s.buckets.commits, FS: s.buckets.fs, Blocks: s.buckets.blocks},
		AccessKey: s3test.AccessKey, SecretKey: s3test.SecretKey,
	})
	must(t, err)
	return st
}

func (s *s3Side) stateHead(t *testing.T, id string) string {
	t.Helper()
	rec, _, err := s.state.Load(id)
	must(t, err)
	return rec.Head
}

// countKeys counts the keys under prefix in bucket, stopping at limit.
func (s *s3Side) countKeys(bucket, prefix string, limit int) int {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n := 0
	for o := range s.client.ListObjects(ctx, bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if o.Err != nil {
			return n
		}
		if n++; n >= limit {
			return n
		}
	}
	return n
}

// checkObjects checks what is in the buckets, whatever a fault left: every object is
// byte for byte the primary's (so whole: present means complete), and every object's
// references are there too (written bottom-up): a commit's root tree, a dir's entries,
// a file's blocks. It returns the number of objects.
func (s *s3Side) checkObjects(t *testing.T, stage string, lib *seafgen.Library) int {
	t.Helper()
	c := s.client
	ctx := context.Background()
	present := map[object.Kind]map[string][]byte{}
	total := 0
	for _, k := range []struct {
		kind   object.Kind
		bucket string
	}{{object.KindCommit, s.buckets.commits}, {object.KindFS, s.buckets.fs}, {object.KindBlock, s.buckets.blocks}} {
		present[k.kind] = map[string][]byte{}
		for o := range c.ListObjects(ctx, k.bucket, minio.ListObjectsOptions{Recursive: true}) {
			must(t, o.Err)
			storeID, id, ok := strings.Cut(o.Key, "/")
			want := lib.StoreID
			if k.kind == object.KindCommit {
				want = lib.ID
			}
			if !ok || storeID != want {
				t.Fatalf("%s: unexpected key %s in %s", stage, o.Key, k.bucket)
			}
			r, err := c.GetObject(ctx, k.bucket, o.Key, minio.GetObjectOptions{})
			must(t, err)
			data, err := io.ReadAll(r)
			r.Close()
			must(t, err)
			orig, err := os.ReadFile(filepath.Join(s.env.PrimaryDir, "storage", string(k.kind), storeID, id[:2], id[2:]))
			if err != nil {
				t.Fatalf("%s: %s %s is in S3 but not on the primary: %v", stage, k.kind, o.Key, err)
			}
			if !bytes.Equal(data, orig) {
				t.Fatalf("%s: %s %s in S3 (%d bytes) differs from the primary's (%d bytes): a partial object is visible", stage, k.kind, o.Key, len(data), len(orig))
			}
			present[k.kind][id] = data
			total++
		}
	}
	for id, raw := range present[object.KindCommit] {
		cm, err := object.ParseCommit(raw, id, lib.ID)
		must(t, err)
		if _, ok := present[object.KindFS][cm.RootID]; !ok && cm.RootID != object.EmptyID {
			t.Fatalf("%s: commit %s is in S3 without its root tree %s", stage, id, cm.RootID)
		}
	}
	for id, raw := range present[object.KindFS] {
		fs, err := object.ParseFS(id, raw)
		must(t, err)
		for _, d := range fs.Dirents {
			if _, ok := present[object.KindFS][d.ID]; !ok && d.ID != object.EmptyID {
				t.Fatalf("%s: fs object %s is in S3 without its entry %s (%s)", stage, id, d.Name, d.ID)
			}
		}
		for _, b := range fs.BlockIDs {
			if _, ok := present[object.KindBlock][b]; !ok {
				t.Fatalf("%s: file %s is in S3 without its block %s", stage, id, b)
			}
		}
	}
	return total
}

// checkHeads checks that the state and the backup database record only heads in
// allowed, that each recorded head's commit is in the buckets, and that whatever they
// record verifies there (the whole history of each: commits, trees, blocks, hashed). It
// returns the state's head.
func (s *s3Side) checkHeads(t *testing.T, stage, id string, allowed ...string) string {
	t.Helper()
	rec, dbHead := s.stateHead(t, id), s.env.BackupHead(id)
	ok := func(h string) bool {
		for _, a := range allowed {
			if h == a {
				return true
			}
		}
		return false
	}
	if !ok(rec) || !ok(dbHead) {
		t.Fatalf("%s: state head %q, backup db head %q; want one of %q", stage, rec, dbHead, allowed)
	}
	if rec == "" && dbHead == "" {
		return ""
	}
	st := s.store(t)
	for _, h := range []string{rec, dbHead} {
		if h == "" {
			continue
		}
		if has, err := st.Has(context.Background(), object.KindCommit, id, h); err != nil || !has {
			t.Fatalf("%s: head %s is recorded but its commit is not in bucket %s (%v)", stage, h, s.buckets.commits, err)
		}
	}
	rep, err := restore.Verify(context.Background(), restore.VerifyOptions{
		Store: st, State: s.state, Libraries: []string{id}, DBHeads: map[string]string{id: dbHead},
	})
	must(t, err)
	if !rep.OK() {
		t.Fatalf("%s: verify of the recorded heads failed: %+v", stage, rep.Libraries)
	}
	return rec
}

// verifyCLI runs `seafbak verify` (the binary: the race detector would make it slow)
// on the S3 config: exit 0, one library, nothing failed.
func (s *s3Side) verifyCLI(t *testing.T, bin, stage string) {
	t.Helper()
	p := runProc(t, bin, "--config", s.cfg, "verify")
	if p.exitCode() != 0 || !strings.Contains(p.out.String(), "1 libraries, 0 failed") {
		t.Fatalf("%s: verify: %d\n%s", stage, p.exitCode(), p.out.String())
	}
}

// keys lists the keys of the three buckets as "kind key".
func (s *s3Side) keys(t *testing.T) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, k := range []struct {
		kind   object.Kind
		bucket string
	}{{object.KindCommit, s.buckets.commits}, {object.KindFS, s.buckets.fs}, {object.KindBlock, s.buckets.blocks}} {
		for _, key := range s.srv.Keys(t, k.bucket) {
			out[string(k.kind)+" "+key] = true
		}
	}
	return out
}

// complete checks that the buckets hold exactly the objects the primary's head reaches
// (their bytes are checked by verify, which hashes every one).
func (s *s3Side) complete(t *testing.T, stage string, lib *seafgen.Library) {
	t.Helper()
	want, _ := testenv.Reachable(t, s.env.PrimaryDir, lib.ID, lib.StoreID, lib.Head)
	got := s.keys(t)
	for k := range want {
		if !got[string(k.Kind)+" "+k.StoreID+"/"+k.ID] {
			t.Fatalf("%s: %s %s/%s is not in S3", stage, k.Kind, k.StoreID, k.ID)
		}
	}
	if len(got) != len(want) {
		t.Fatalf("%s: %d objects in S3, the primary's head reaches %d", stage, len(got), len(want))
	}
}

// bigLibrary is a library large enough that a sync to S3 can be caught mid-way: files
// of several 64 KiB blocks each.
func bigLibrary(t *testing.T, env *testenv.Env, files int, bytes int64) *seafgen.Library {
	t.Helper()
	g := seafgen.New(env.PrimaryDir)
	g.BlockSize = 64 << 10
	lib, err := g.NewLibrary(seafgen.LibraryOptions{Name: "Big", Owner: "u@example.com"})
	must(t, err)
	_, err = lib.CommitBulk("bulk", files, bytes, 1)
	must(t, err)
	must(t, lib.InsertRows(context.Background(), env.PrimaryDB))
	return lib
}

// proc is a real seafbak process, killed if still running when the test ends.
type proc struct {
	cmd  *exec.Cmd
	out  *testenv.LockedBuffer
	done chan struct{}
	err  error
}

func startProc(t *testing.T, bin string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(bin, args...), out: &testenv.LockedBuffer{}, done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	must(t, p.cmd.Start())
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
	})
	return p
}

// runProc runs the binary to its end.
func runProc(t *testing.T, bin string, args ...string) *proc {
	t.Helper()
	p := startProc(t, bin, args...)
	<-p.done
	return p
}

func (p *proc) exitCode() int {
	<-p.done
	if p.err == nil {
		return 0
	}
	if ee, ok := p.err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	return -1
}

// waitBlocks waits until the blocks bucket holds at least n blocks of storeID; false
// if p ended first.
func (s *s3Side) waitBlocks(t *testing.T, p *proc, storeID string, n int) bool {
	t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	for s.countKeys(s.buckets.blocks, storeID+"/", n) < n {
		select {
		case <-p.done:
			return false
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no progress in 45 s:\n%s", p.out.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	return true
}

// kill -9 of a real `seafbak sync` mid-way through a first backup to S3: after the
// kill, no head is recorded (in state or the backup database) that the buckets lack,
// every object in the buckets is whole and has what it references; the next sync
// completes (exit 0), verify is clean and the buckets hold the primary's objects.
func TestS3Kill9DuringFirstSync(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and copies a large library")
	}
	bin := buildBinary(t)
	s3 := s3test.Start(t)
	env := testenv.New(t, srv)
	side := newS3Side(t, env, s3, s3.Endpoint)
	lib := bigLibrary(t, env, 500, 50<<20)

	p := startProc(t, bin, "--config", side.cfg, "sync", lib.ID)
	if !side.waitBlocks(t, p, lib.StoreID, 150) {
		t.Skipf("sync finished before 150 blocks were seen (exit %d): machine too fast to kill mid-sync\n%s", p.exitCode(), p.out.String())
	}
	must(t, p.cmd.Process.Signal(syscall.SIGKILL))
	<-p.done
	if h := side.checkHeads(t, "after the kill", lib.ID, "", lib.Head); h != "" {
		t.Fatalf("after the kill: state head %s recorded by a first sync killed mid-way", h)
	}
	n := side.checkObjects(t, "after the kill", lib)
	t.Logf("after the kill: %d objects in S3", n)

	r := runProc(t, bin, "--config", side.cfg, "sync", lib.ID)
	if r.exitCode() != 0 || !strings.Contains(r.out.String(), "synced to "+lib.Head) {
		t.Fatalf("sync after the kill: %d\n%s", r.exitCode(), r.out.String())
	}
	side.atHead(t, "after the resync", lib)
	side.verifyCLI(t, bin, "after the resync")
	side.complete(t, "after the resync", lib)
}

// atHead checks that the state and the backup database are both at the library's head.
func (s *s3Side) atHead(t *testing.T, stage string, lib *seafgen.Library) {
	t.Helper()
	if st, db := s.stateHead(t, lib.ID), s.env.BackupHead(lib.ID); st != lib.Head || db != lib.Head {
		t.Fatalf("%s: state head %q, backup db head %q; want %s", stage, st, db, lib.Head)
	}
}
