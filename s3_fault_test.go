package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	gosync "sync"
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
	cfg, b := writeS3Config(t, env, srv, endpoint, "")
	c, err := config.Load(cfg)
	must(t, err)
	st, err := state.Open(c.State)
	must(t, err)
	return &s3Side{env: env, srv: srv, cfg: cfg, buckets: b, endpoint: endpoint, state: st, client: srv.Client(t)}
}

// realOnS3 is the real library on a fresh primary of its own (and a backup database of
// its own), backed up to fresh buckets on s3 reached through endpoint.
func realOnS3(t *testing.T, s3 *s3test.Server, endpoint string) *s3Side {
	t.Helper()
	env := testenv.New(t, srv) // srv: the MariaDB server
	env.LoadRealLibrary()
	return newS3Side(t, env, s3, endpoint)
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
	present := map[object.Kind]map[string][]byte{object.KindCommit: {}, object.KindFS: {}, object.KindBlock: {}}
	objects := s3StoreObjects(t, s.srv, s.buckets)
	for kindKey, data := range objects {
		kind, key, _ := strings.Cut(kindKey, "/") // key: <store id>/<object id>
		k := object.Kind(kind)
		storeID, id, ok := strings.Cut(key, "/")
		want := lib.StoreID
		if k == object.KindCommit {
			want = lib.ID
		}
		if !ok || storeID != want {
			t.Fatalf("%s: unexpected key %s in the %s bucket", stage, key, k)
		}
		orig, err := os.ReadFile(filepath.Join(s.env.PrimaryDir, "storage", kind, storeID, id[:2], id[2:]))
		if err != nil {
			t.Fatalf("%s: %s %s is in S3 but not on the primary: %v", stage, k, key, err)
		}
		if !bytes.Equal(data, orig) {
			t.Fatalf("%s: %s %s in S3 (%d bytes) differs from the primary's (%d bytes): a partial object is visible", stage, k, key, len(data), len(orig))
		}
		present[k][id] = data
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
	return len(objects)
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
	for _, k := range s.buckets.byKind() {
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
	s.completeAt(t, stage, lib.ID, lib.StoreID, lib.Head)
}

func (s *s3Side) completeAt(t *testing.T, stage, id, storeID, head string) {
	t.Helper()
	want, _ := testenv.Reachable(t, s.env.PrimaryDir, id, storeID, head)
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
	bin, _, side, lib := bigOnS3(t, 500, 50<<20)

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
	side.resync(t, bin, "after the kill", lib)
}

// bigOnS3 starts a test that catches a real `seafbak sync` mid-way (skipped with
// -short): the binary, an S3 server of the test's own, a fresh primary with a big
// library (files, bytes) and a config on fresh buckets.
func bigOnS3(t *testing.T, files int, bytes int64) (string, *s3test.Server, *s3Side, *seafgen.Library) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binary and copies a large library")
	}
	bin := buildBinary(t)
	s3 := s3test.Start(t)
	env := testenv.New(t, srv)
	side := newS3Side(t, env, s3, s3.Endpoint)
	return bin, s3, side, bigLibrary(t, env, files, bytes)
}

// resync runs the binary's sync of lib to its end, which must succeed (exit 0, synced
// to lib's head), then checks that the backup has settled there.
func (s *s3Side) resync(t *testing.T, bin, stage string, lib *seafgen.Library) {
	t.Helper()
	r := runProc(t, bin, "--config", s.cfg, "sync", lib.ID)
	if r.exitCode() != 0 || !strings.Contains(r.out.String(), "synced to "+lib.Head) {
		t.Fatalf("%s: sync: %d\n%s", stage, r.exitCode(), r.out.String())
	}
	s.settled(t, bin, stage, lib)
}

// settled checks that state and the backup database are at lib's head, that verify
// (the binary) is clean and that the buckets hold exactly what the head reaches.
func (s *s3Side) settled(t *testing.T, bin, stage string, lib *seafgen.Library) {
	t.Helper()
	s.atHead(t, stage, lib)
	s.verifyCLI(t, bin, stage)
	s.complete(t, stage, lib)
}

// atHead checks that the state and the backup database are both at the library's head.
func (s *s3Side) atHead(t *testing.T, stage string, lib *seafgen.Library) {
	t.Helper()
	if st, db := s.stateHead(t, lib.ID), s.env.BackupHead(lib.ID); st != lib.Head || db != lib.Head {
		t.Fatalf("%s: state head %q, backup db head %q; want %s", stage, st, db, lib.Head)
	}
}

// secondSyncMidway backs up lib to S3 with the binary (its first head), adds a larger
// commit on the primary and starts a sync of it, returning once 80 more blocks are in
// the bucket (the test is skipped if the sync ends first, before what can happen). It
// returns the first head and the running sync.
func secondSyncMidway(t *testing.T, bin string, side *s3Side, lib *seafgen.Library, what string) (string, *proc) {
	t.Helper()
	r := runProc(t, bin, "--config", side.cfg, "sync", lib.ID)
	if r.exitCode() != 0 {
		t.Fatalf("first sync: %d\n%s", r.exitCode(), r.out.String())
	}
	first := lib.Head
	_, err := lib.CommitBulk("more", 200, 20<<20, 2)
	must(t, err)
	must(t, lib.InsertRows(context.Background(), side.env.PrimaryDB))
	before := side.countKeys(side.buckets.blocks, lib.StoreID+"/", 1<<30)
	p := startProc(t, bin, "--config", side.cfg, "sync", lib.ID)
	if !side.waitBlocks(t, p, lib.StoreID, before+80) {
		t.Skipf("sync finished before the %s (exit %d): machine too fast\n%s", what, p.exitCode(), p.out.String())
	}
	return first, p
}

// The S3 server killed and restarted on the same port and data while a sync uploads:
// the sync either rides it out (PUTs are retried) and completes, or fails with an error
// naming the endpoint and leaves the previous head; the next sync completes, verify
// is clean and the buckets hold exactly the primary's objects.
func TestS3ServerRestartMidSync(t *testing.T) {
	bin, s3, side, lib := bigOnS3(t, 60, 6<<20)
	first, p := secondSyncMidway(t, bin, side, lib, "restart")
	s3.Restart(t)
	code, out := p.exitCode(), p.out.String()
	t.Logf("sync across the restart: exit %d\n%s", code, out)
	switch code {
	case 0:
		side.settled(t, bin, "sync across the restart", lib)
	case 1:
		if !strings.Contains(out, "s3 store http://"+s3.Endpoint) {
			t.Fatalf("sync across the restart failed without naming the endpoint %s:\n%s", s3.Endpoint, out)
		}
		side.checkHeads(t, "after the failed sync", lib.ID, first)
		side.checkObjects(t, "after the failed sync", lib)
		side.resync(t, bin, "sync after the restart", lib)
	default:
		t.Fatalf("sync across the restart: exit %d\n%s", code, out)
	}
}

// The S3 server down for longer than the retries last, mid-sync: the sync fails (exit
// 1) with an error naming the endpoint, the previous head stays in state and the
// backup database, and what reached the buckets is whole and bottom-up; once the
// server is back, the next sync completes and verify is clean.
func TestS3ServerDownMidSync(t *testing.T) {
	bin, s3, side, lib := bigOnS3(t, 60, 6<<20)
	first, p := secondSyncMidway(t, bin, side, lib, "stop")
	s3.Stop()
	start := time.Now()
	select {
	case <-p.done:
	case <-time.After(40 * time.Second):
		t.Fatalf("sync still running 40 s after the S3 server went away:\n%s", p.out.String())
	}
	code, out := p.exitCode(), p.out.String()
	t.Logf("sync with the server gone: exit %d after %s\n%s", code, time.Since(start).Round(time.Millisecond), out)
	if code != 1 || !strings.Contains(out, "s3 store http://"+s3.Endpoint) || !strings.Contains(out, "hint: the S3 server (backup.s3.endpoint) did not answer") {
		t.Fatalf("sync with the S3 server gone: exit %d, want 1 and an error naming http://%s, with the hint:\n%s", code, s3.Endpoint, out)
	}
	if st, db := side.stateHead(t, lib.ID), side.env.BackupHead(lib.ID); st != first || db != first {
		t.Fatalf("after the failed sync: state head %q, backup db head %q; want the previous %s", st, db, first)
	}
	s3.Resume(t)
	side.checkHeads(t, "after the failed sync", lib.ID, first)
	side.checkObjects(t, "after the failed sync", lib)
	side.resync(t, bin, "sync once the server is back", lib)
}

const realHead = "5715208e10e33de4ac89cd441c52d948df77125b"

// 503 SlowDown on some PUTs, and PUTs that land but whose answer is lost (the proxy
// forwards them, then answers 500): each is retried, the sync succeeds, the buckets
// hold exactly the library's objects, verify is clean.
func TestS3TransientPutFaults(t *testing.T) {
	s3 := s3test.Start(t)
	id := testenv.RealLibraryID
	for _, c := range []struct {
		name  string
		fault s3test.Fault
	}{{"SlowDown", s3test.SlowDown}, {"FailAfter", s3test.FailAfter}} {
		t.Run(c.name, func(t *testing.T) {
			proxy := s3test.NewProxy(t, s3.Endpoint)
			side := realOnS3(t, s3, proxy.Endpoint) // a backup database of its own
			// The first 4 PUTs into the blocks bucket and the first 7 into the commits
			// bucket (retries included): fewer than a PUT's 10 attempts.
			proxy.Inject(firstNEach(map[string]int{side.buckets.blocks: 4, side.buckets.commits: 7}, c.fault))
			code, out, errs := seafbak("--config", side.cfg, "sync", id)
			if code != 0 || !strings.Contains(out, "synced to "+realHead) {
				t.Fatalf("sync with %s on some PUTs: %d\n%s%s", c.name, code, out, errs)
			}
			if n := proxy.Injected(c.fault); n != 11 {
				t.Fatalf("%d PUTs got %s, want 11", n, c.name)
			}
			if st, db := side.stateHead(t, id), side.env.BackupHead(id); st != realHead || db != realHead {
				t.Fatalf("heads after the sync: state %q, db %q", st, db)
			}
			side.realComplete(t, c.name)
		})
	}
}

// realComplete checks that the buckets hold exactly the objects the real library's
// head reaches, and that `seafbak verify` is clean.
func (s *s3Side) realComplete(t *testing.T, stage string) {
	t.Helper()
	id := testenv.RealLibraryID
	s.completeAt(t, stage, id, id, realHead)
	if code, out, errs := seafbak("--config", s.cfg, "verify"); code != 0 || !strings.Contains(out, "1 libraries, 0 failed") {
		t.Fatalf("%s: verify: %d\n%s%s", stage, code, out, errs)
	}
}

// firstNEach gives fault f to the first n[bucket] PUTs into each bucket.
func firstNEach(n map[string]int, f s3test.Fault) func(r *http.Request) s3test.Fault {
	var mu gosync.Mutex
	return func(r *http.Request) s3test.Fault {
		if !s3test.IsPut(r) {
			return s3test.Pass
		}
		bucket, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
		mu.Lock()
		defer mu.Unlock()
		if n[bucket] > 0 {
			n[bucket]--
			return f
		}
		return s3test.Pass
	}
}

// PUTs that keep failing: every PUT of the head commit lands but its answer is lost
// (500 after the upload), or every PUT gets 503 SlowDown. The sync fails (exit 1) once
// the retries are spent, with an error naming the endpoint, the bucket and the cause;
// no head is recorded, even though the head commit is in the bucket; the next sync,
// faults gone, completes and verify is clean.
func TestS3PersistentPutFaults(t *testing.T) {
	s3 := s3test.Start(t)
	id := testenv.RealLibraryID
	for _, c := range []struct {
		name   string
		fault  s3test.Fault
		bucket func(s3Buckets) string
		cause  string
	}{
		{"FailAfterOnCommits", s3test.FailAfter, func(b s3Buckets) string { return b.commits }, "InternalError, HTTP 500"},
		{"SlowDownOnBlocks", s3test.SlowDown, func(b s3Buckets) string { return b.blocks }, "SlowDown, HTTP 503"},
	} {
		t.Run(c.name, func(t *testing.T) {
			proxy := s3test.NewProxy(t, s3.Endpoint)
			side := realOnS3(t, s3, proxy.Endpoint) // a backup database of its own
			bucket := c.bucket(side.buckets)
			proxy.Inject(firstNEach(map[string]int{bucket: 1 << 30}, c.fault))
			code, out, errs := seafbak("--config", side.cfg, "sync", id)
			t.Logf("sync: exit %d\n%s%s", code, out, errs)
			if code != 1 || !strings.Contains(errs, "s3 store http://"+proxy.Endpoint) || !strings.Contains(errs, "put "+bucket+"/") || !strings.Contains(errs, c.cause) ||
				!strings.Contains(errs, "hint: the S3 server (backup.s3.endpoint) did not answer or kept failing after retries") {
				t.Fatalf("sync with every PUT into %s failing: exit %d, want 1 and an error naming http://%s, the bucket and %q:\n%s%s", bucket, code, proxy.Endpoint, c.cause, out, errs)
			}
			if proxy.Injected(c.fault) < 2 {
				t.Fatalf("the failing PUT was not retried: %d attempts", proxy.Injected(c.fault))
			}
			if st, db := side.stateHead(t, id), side.env.BackupHead(id); st != "" || db != "" {
				t.Fatalf("heads after a failed first sync: state %q, db %q", st, db)
			}
			if c.fault == s3test.FailAfter {
				// The commit whose PUT failed is in the bucket all the same.
				_, rest, _ := strings.Cut(errs, "put "+bucket+"/"+id+"/")
				commit, _, _ := strings.Cut(rest, ":")
				if has, err := side.store(t).Has(context.Background(), object.KindCommit, id, commit); err != nil || !has {
					t.Fatalf("commit %q did not land in %s (%v): the fault did not happen after the upload", commit, bucket, err)
				}
			}
			proxy.Inject(nil)
			code, out, errs = seafbak("--config", side.cfg, "sync", id)
			if code != 0 || !strings.Contains(out, "synced to "+realHead) {
				t.Fatalf("sync with the faults gone: %d\n%s%s", code, out, errs)
			}
			side.realComplete(t, c.name)
		})
	}
}

// A wrong secret, an unknown access key, a missing bucket: every command that opens the
// store stops before any work with exit 2 and a message naming the endpoint, the bucket
// and what to fix, and never the secret (neither the configured one nor the right one).
func TestS3WrongCredentialsAndMissingBucket(t *testing.T) {
	s3 := s3test.Start(t)
	side := realOnS3(t, s3, s3.Endpoint)
	id := testenv.RealLibraryID
	good := mustRead(t, side.cfg)
	const wrongSecret = "wrong-secret-do-not-print-0123456789"
	for _, c := range []struct {
		name, from, to string
		want           []string
	}{
		{"wrong secret", "secret_key: " + s3test.SecretKey, "secret_key: " + wrongSecret,
			[]string{"bucket " + side.buckets.commits, "SignatureDoesNotMatch", "hint: the S3 server refused the credentials: check backup.s3.access_key and backup.s3.secret_key"}},
		// VersityGW answers an unknown key with its own code (AWS: InvalidAccessKeyId).
		{"unknown access key", "access_key: " + s3test.AccessKey, "access_key: nobody-knows-me",
			[]string{"bucket " + side.buckets.commits, "XAdminUserNotFound", "hint: the S3 server refused the credentials: check backup.s3.access_key and backup.s3.secret_key"}},
		{"missing bucket", "fs_bucket: " + side.buckets.fs, "fs_bucket: no-such-bucket-here",
			[]string{"bucket no-such-bucket-here does not exist", "make the three"}},
	} {
		t.Run(strings.ReplaceAll(c.name, " ", "_"), func(t *testing.T) {
			if !strings.Contains(good, c.from) {
				t.Fatalf("config has no %q", c.from)
			}
			must(t, os.WriteFile(side.cfg, []byte(strings.Replace(good, c.from, c.to, 1)), 0o600))
			t.Cleanup(func() { os.WriteFile(side.cfg, []byte(good), 0o600) })
			for _, args := range [][]string{
				{"sync", id}, {"scan"}, {"verify"}, {"restore", "library", id, "--list"}, {"status"},
			} {
				code, out, errs := seafbak(append([]string{"--config", side.cfg}, args...)...)
				cmd := strings.Join(args, " ")
				t.Logf("%s: exit %d\n%s%s", cmd, code, out, errs)
				if cmd == "status" {
					// status reads the state and the primary; the store only for the
					// backed-up heads' times, which it leaves out when it cannot (cmd_status.go).
					// The scan just before could not run: status says so (exit 1).
					if code != 1 || !strings.Contains(out, "The last scan could not run") ||
						strings.Contains(out+errs, s3test.SecretKey) || strings.Contains(out+errs, wrongSecret) {
						t.Errorf("status with a %s: exit %d\n%s%s", c.name, code, out, errs)
					}
					continue
				}
				if code != 2 {
					t.Errorf("%s with a %s: exit %d, want 2", cmd, c.name, code)
				}
				for _, w := range append([]string{"http://" + s3.Endpoint}, c.want...) {
					if !strings.Contains(errs, w) {
						t.Errorf("%s with a %s: the message lacks %q:\n%s", cmd, c.name, w, errs)
					}
				}
				for _, secret := range []string{s3test.SecretKey, wrongSecret} {
					if strings.Contains(out+errs, secret) {
						t.Errorf("%s with a %s printed a secret key:\n%s%s", cmd, c.name, out, errs)
					}
				}
			}
			// Nothing was recorded.
			if st, db := side.stateHead(t, id), side.env.BackupHead(id); st != "" || db != "" {
				t.Fatalf("heads after a refused sync: state %q, db %q", st, db)
			}
		})
	}
	// The right config works.
	if code, out, errs := seafbak("--config", side.cfg, "sync", id); code != 0 {
		t.Fatalf("sync with the right config: %d\n%s%s", code, out, errs)
	}

	// Nothing listening at the endpoint: exit 2 after the retries, naming it.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	closed := l.Addr().String()
	l.Close()
	must(t, os.WriteFile(side.cfg, []byte(strings.Replace(good, "endpoint: "+s3.Endpoint, "endpoint: "+closed, 1)), 0o600))
	code, out, errs := seafbak("--config", side.cfg, "sync", id)
	if code != 2 || !strings.Contains(errs, "s3 store http://"+closed) || !strings.Contains(errs, "hint: the S3 server (backup.s3.endpoint) did not answer") {
		t.Fatalf("sync with nothing at the endpoint: exit %d, want 2, the endpoint and the hint:\n%s%s", code, out, errs)
	}
	must(t, os.WriteFile(side.cfg, []byte(good), 0o600))
}

// An HTTPS endpoint whose certificate is from a private CA: without backup.s3.ca_file
// the certificate is refused (exit 2, the hint names ca_file); with it, sync works.
func TestS3PrivateCA(t *testing.T) {
	s3 := s3test.StartTLS(t)
	id := testenv.RealLibraryID
	cfg := realOnS3(t, s3, s3.Endpoint).cfg
	text := strings.Replace(mustRead(t, cfg), "use_https: false", "use_https: true", 1)
	must(t, os.WriteFile(cfg, []byte(text), 0o600))
	code, out, errs := seafbak("--config", cfg, "sync", id)
	if code != 2 || !strings.Contains(errs, "s3 store https://"+s3.Endpoint) || !strings.Contains(errs, "set backup.s3.ca_file") {
		t.Fatalf("sync to a private CA's endpoint without ca_file: exit %d, want 2, the endpoint and the ca_file hint:\n%s%s", code, out, errs)
	}
	must(t, os.WriteFile(cfg, []byte(strings.Replace(text, "use_https: true", "use_https: true\n    ca_file: "+s3.CAFile, 1)), 0o600))
	if code, out, errs := seafbak("--config", cfg, "sync", id); code != 0 || !strings.Contains(out, "synced to "+realHead) {
		t.Fatalf("sync with ca_file: %d\n%s%s", code, out, errs)
	}
}
