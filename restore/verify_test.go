package restore_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"seafbak/internal/seafgen"
	"seafbak/internal/testenv"
	"seafbak/restore"
	"seafbak/sync/object"
)

func countFiles(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n++
		}
		return nil
	})
	return n
}

// fileAt returns the fs id and blocks of a file of a backed-up commit.
func fileAt(t *testing.T, env *testenv.Env, lib *seafgen.Library, commitID, p string) (string, []string) {
	t.Helper()
	rl := restore.Library{RepoID: lib.ID, StoreID: lib.StoreID}
	c, err := restore.Commit(context.Background(), env.Store, rl, commitID)
	must(t, err)
	var id string
	var blocks []string
	must(t, restore.Walk(context.Background(), env.Store, rl, c.RootID, func(e restore.Entry) error {
		if e.Path == p {
			id, blocks = e.FileID, e.Blocks
		}
		return nil
	}))
	if id == "" {
		t.Fatalf("no %s at %s", p, commitID)
	}
	return id, blocks
}

func libReport(t *testing.T, rep *restore.VerifyReport, id string) *restore.LibraryReport {
	t.Helper()
	for i := range rep.Libraries {
		if rep.Libraries[i].RepoID == id {
			return &rep.Libraries[i]
		}
	}
	t.Fatalf("no report for %s in %+v", id, rep)
	return nil
}

func findProblem(ps []restore.Problem, kind object.Kind, id string) *restore.Problem {
	for i := range ps {
		if ps[i].Kind == kind && ps[i].ID == id {
			return &ps[i]
		}
	}
	return nil
}

func dbHeads(env *testenv.Env, libs ...*seafgen.Library) map[string]string {
	m := map[string]string{}
	for _, l := range libs {
		m[l.ID] = env.BackupHead(l.ID)
	}
	return m
}

// A clean backup verifies, every object read once; then a flipped byte in a block, a
// missing fs object and a missing commit in the BACKUP are each found and placed.
func TestVerifyFindsDamage(t *testing.T) {
	env, g := primaryWithGenerator(t)
	lib, rc := richLibrary(t, g)
	virt, err := g.NewVirtualLibrary(lib, "folder", "Folder")
	must(t, err)
	enc, err := g.NewLibrary(seafgen.LibraryOptions{Name: "Secret", Encrypted: true})
	must(t, err)
	testenv.Commit(t, enc, "Added", seafgen.Put("plan.txt", testenv.RandomBytes(10000, 3)), seafgen.Put("one.txt", []byte("x")))
	env.Publish(lib, virt, enc)
	for _, l := range []*seafgen.Library{lib, virt, enc} {
		testenv.SyncOK(t, env.Engine(false), l.ID)
	}
	ctx := context.Background()
	var prog countingProgress
	rep, err := restore.Verify(ctx, restore.VerifyOptions{Store: env.Store, State: env.State, DBHeads: dbHeads(env, lib, virt, enc), Parallel: 3, Progress: &prog})
	must(t, err)
	if !rep.OK() || len(rep.Libraries) != 3 {
		t.Fatalf("clean backup: %+v", rep)
	}
	storage := filepath.Join(env.BackupDir, "storage")
	if rep.Commits != countFiles(t, filepath.Join(storage, "commits")) || rep.FSObjects != countFiles(t, filepath.Join(storage, "fs")) ||
		rep.Blocks != countFiles(t, filepath.Join(storage, "blocks")) || rep.BlocksHashed != rep.Blocks {
		t.Fatalf("every object once: %+v", rep)
	}
	if prog.todoObj != prog.doneObj || prog.todoBytes != prog.doneBytes || prog.doneBytes != rep.Bytes {
		t.Fatalf("progress %+v, report %+v", prog, rep)
	}
	for _, lr := range rep.Libraries {
		if len(lr.Heads) != 2 || !lr.Heads[0].Complete || lr.Heads[1].From != restore.FromDB || !lr.Heads[1].Complete {
			t.Fatalf("heads of %s: %+v", lr.RepoID, lr.Heads)
		}
	}
	if lr := libReport(t, rep, lib.ID); lr.Commits != 6 || lr.StoreID != lib.ID {
		t.Fatalf("library report %+v", lr)
	}
	if lr := libReport(t, rep, virt.ID); lr.StoreID != lib.ID {
		t.Fatalf("virtual library report %+v", lr)
	}

	// Damage the backup.
	_, headBlocks := fileAt(t, env, lib, lib.Head, "big.bin")
	flipped := headBlocks[1]
	p := testenv.ObjectPath(env.BackupDir, object.KindBlock, lib.StoreID, flipped)
	b, err := os.ReadFile(p)
	must(t, err)
	b[100] ^= 0x01
	must(t, os.WriteFile(p, b, 0o644))
	oldBig, _ := fileAt(t, env, lib, rc.first, "big.bin")
	must(t, os.Remove(testenv.ObjectPath(env.BackupDir, object.KindFS, lib.StoreID, oldBig)))
	must(t, os.Remove(testenv.ObjectPath(env.BackupDir, object.KindCommit, lib.ID, rc.renamed)))

	rep, err = restore.Verify(ctx, restore.VerifyOptions{Store: env.Store, State: env.State, DBHeads: dbHeads(env, lib, virt, enc)})
	must(t, err)
	if rep.OK() {
		t.Fatal("damaged backup verified OK")
	}
	lr := libReport(t, rep, lib.ID)
	if lr.OK() || len(lr.Problems) != 3 || len(lr.Expected) != 0 {
		t.Fatalf("problems: %+v", lr)
	}
	if pr := findProblem(lr.Problems, object.KindBlock, flipped); pr == nil || pr.Missing || pr.Path != "/big.bin" || pr.Commit != lib.Head || !strings.Contains(pr.Error, "hashes to") {
		t.Errorf("flipped block: %+v", pr)
	}
	if pr := findProblem(lr.Problems, object.KindFS, oldBig); pr == nil || !pr.Missing || pr.Path != "/big.bin" || pr.Commit != rc.first {
		t.Errorf("missing fs object: %+v", pr)
	}
	if pr := findProblem(lr.Problems, object.KindCommit, rc.renamed); pr == nil || !pr.Missing || pr.Commit != rc.merge {
		t.Errorf("missing commit: %+v", pr)
	}
	for _, h := range lr.Heads {
		if h.Complete || h.Expected || !strings.Contains(h.Error, flipped) {
			t.Errorf("head with a damaged block: %+v", h)
		}
	}
	if lr.Commits != 5 {
		t.Errorf("%d commits read, want 5 (one missing)", lr.Commits)
	}
	// The virtual library shares the store but not the damaged objects.
	if lr := libReport(t, rep, virt.ID); !lr.OK() {
		t.Errorf("virtual library: %+v", lr)
	}
	if lr := libReport(t, rep, enc.ID); !lr.OK() {
		t.Errorf("encrypted library: %+v", lr)
	}
	// The JSON form carries it all.
	js, err := json.Marshal(rep)
	must(t, err)
	for _, want := range []string{`"kind":"blocks"`, `"kind":"fs"`, `"kind":"commits"`, `"missing":true`, `"path":"/big.bin"`, `"from":"db"`} {
		if !strings.Contains(string(js), want) {
			t.Errorf("JSON lacks %s: %s", want, js)
		}
	}

	// Only the libraries asked for; an unknown one is reported, not fatal.
	unknown := "11111111-2222-4333-8444-555555555555"
	rep, err = restore.Verify(ctx, restore.VerifyOptions{Store: env.Store, State: env.State, Libraries: []string{enc.ID, unknown}})
	must(t, err)
	if len(rep.Libraries) != 2 || !libReport(t, rep, enc.ID).OK() || libReport(t, rep, unknown).Error == "" || rep.OK() {
		t.Fatalf("selected libraries: %+v", rep)
	}

	// A database head whose commit the backup lacks.
	ghost := strings.Repeat("f", 40)
	rep, err = restore.Verify(ctx, restore.VerifyOptions{Store: env.Store, State: env.State, Libraries: []string{enc.ID}, DBHeads: map[string]string{enc.ID: ghost}})
	must(t, err)
	le := libReport(t, rep, enc.ID)
	if le.OK() || len(le.Heads) != 2 || !le.Heads[0].Complete || le.Heads[1].Complete || le.Heads[1].From != restore.FromDB || !strings.Contains(le.Heads[1].Error, ghost) {
		t.Fatalf("ghost db head: %+v", le)
	}
	if pr := findProblem(le.Problems, object.KindCommit, ghost); pr == nil || !pr.Missing || pr.Commit != "" {
		t.Fatalf("ghost db head problem: %+v", le.Problems)
	}
}

// Holes the state knows and history the primary truncated are reported as expected,
// not as failures; an unrelated missing object in the same library still fails it.
func TestVerifyHolesAndTruncation(t *testing.T) {
	env, g := primaryWithGenerator(t)
	ctx := context.Background()

	trunc, err := g.NewLibrary(seafgen.LibraryOptions{Name: "Limited"})
	must(t, err)
	testenv.Commit(t, trunc, "old", seafgen.Put("old.bin", testenv.RandomBytes(9000, 5)), seafgen.Put("keep.txt", []byte("k")))
	testenv.Commit(t, trunc, "older edit", seafgen.Put("old.bin", testenv.RandomBytes(9000, 6)))
	keep := testenv.Commit(t, trunc, "new", seafgen.Delete("old.bin"), seafgen.Put("new.txt", []byte("n")))
	testenv.Commit(t, trunc, "newest", seafgen.Put("new.txt", []byte("nn")))
	must(t, trunc.TruncateBefore(keep))

	holey, err := g.NewLibrary(seafgen.LibraryOptions{Name: "Holey"})
	must(t, err)
	testenv.Commit(t, holey, "files", seafgen.Put("big.bin", testenv.RandomBytes(30000, 7)), seafgen.Put("ok.txt", []byte("fine")), seafgen.Put("d/e.txt", []byte("e")))
	env.Publish(trunc, holey)
	testenv.SyncOK(t, env.Engine(false), trunc.ID)

	// Corrupt a block of big.bin on the primary; sync --force records the hole.
	rootID, err := holey.RootID(holey.Head)
	must(t, err)
	primBlocks := primaryBlocks(env, holey, "big.bin")
	bad := testenv.ObjectPath(env.PrimaryDir, object.KindBlock, holey.StoreID, primBlocks[1])
	good, err := os.ReadFile(bad)
	must(t, err)
	must(t, os.WriteFile(bad, append([]byte{good[0] ^ 0xff}, good[1:]...), 0o644))
	res, err := env.Engine(true).Sync(ctx, holey.ID)
	must(t, err)
	if len(res.Holes) != 1 {
		t.Fatalf("force sync: %+v", res)
	}

	rep, err := restore.Verify(ctx, restore.VerifyOptions{Store: env.Store, State: env.State})
	must(t, err)
	if !rep.OK() {
		js, _ := json.MarshalIndent(rep, "", " ")
		t.Fatalf("holes and truncation failed verify:\n%s", js)
	}
	lt := libReport(t, rep, trunc.ID)
	if len(lt.Truncated) == 0 || len(lt.Expected) == 0 || len(lt.Problems) != 0 || !lt.Heads[0].Complete {
		t.Fatalf("truncated library: %+v", lt)
	}
	for _, e := range lt.Expected {
		if !e.Missing || !strings.Contains(e.Reason, "truncated") {
			t.Errorf("truncation explained wrongly: %+v", e)
		}
	}
	lh := libReport(t, rep, holey.ID)
	if len(lh.Holes) != 1 || lh.Heads[0].Complete || !lh.Heads[0].Expected {
		t.Fatalf("holey library: %+v", lh)
	}
	// The engine did not write the dirs above the hole, so the root is all there is to
	// see of that commit; the hole itself is in the state's records.
	if lh.Holes[0].ID != primBlocks[1] {
		t.Errorf("holes %+v", lh.Holes)
	}
	if e := findProblem(lh.Expected, object.KindFS, rootID); e == nil || e.Path != "/" || !strings.Contains(e.Reason, "above the known hole") || len(lh.Expected) != 1 {
		t.Errorf("the root above the hole: %+v", lh.Expected)
	}

	// Something the hole does not explain. Below a missing dir nothing can be seen, so
	// the library moves on to a commit without big.bin (its tree is whole again), and a
	// block of another file vanishes from the backup.
	testenv.Commit(t, holey, "removed big.bin", seafgen.Delete("big.bin"))
	env.Publish(holey)
	testenv.SyncOK(t, env.Engine(false), holey.ID)
	okBlocks := primaryBlocks(env, holey, "ok.txt")
	must(t, os.Remove(testenv.ObjectPath(env.BackupDir, object.KindBlock, holey.StoreID, okBlocks[0])))
	rep, err = restore.Verify(ctx, restore.VerifyOptions{Store: env.Store, State: env.State, Libraries: []string{holey.ID}})
	must(t, err)
	lh = libReport(t, rep, holey.ID)
	if rep.OK() || len(lh.Problems) != 1 || lh.Problems[0].ID != okBlocks[0] || lh.Problems[0].Path != "/ok.txt" || lh.Problems[0].Commit != holey.Head {
		js, _ := json.MarshalIndent(lh, "", " ")
		t.Fatalf("unexplained missing block:\n%s", js)
	}
	if len(lh.Expected) == 0 || lh.Heads[0].Complete {
		t.Fatalf("the hole is still expected, the head broken: %+v", lh)
	}
}

// Sampling hashes a share of the blocks, the same share for the same seed, but still
// finds a missing block it did not sample.
func TestVerifySample(t *testing.T) {
	env, g := primaryWithGenerator(t)
	lib, err := g.NewLibrary(seafgen.LibraryOptions{Name: "Many blocks"})
	must(t, err)
	testenv.Commit(t, lib, "blocks", seafgen.Put("a.bin", testenv.RandomBytes(400*4096, 11)), seafgen.Put("b.bin", testenv.RandomBytes(100*4096+7, 12)))
	env.Publish(lib)
	testenv.SyncOK(t, env.Engine(false), lib.ID)
	ctx := context.Background()

	if _, err := restore.Verify(ctx, restore.VerifyOptions{Store: env.Store, State: env.State, Sample: 1.5}); err == nil {
		t.Fatal("sample 1.5 accepted")
	}
	rep, err := restore.Verify(ctx, restore.VerifyOptions{Store: env.Store, State: env.State, Sample: 0.25, Seed: 42})
	must(t, err)
	if !rep.OK() || rep.Blocks != 501 || rep.BlocksHashed < 75 || rep.BlocksHashed > 175 {
		t.Fatalf("sample of 25%%: %d of %d blocks hashed", rep.BlocksHashed, rep.Blocks)
	}
	again, err := restore.Verify(ctx, restore.VerifyOptions{Store: env.Store, State: env.State, Sample: 0.25, Seed: 42})
	must(t, err)
	if again.BlocksHashed != rep.BlocksHashed || again.Bytes != rep.Bytes {
		t.Fatalf("same seed, other sample: %d vs %d", again.BlocksHashed, rep.BlocksHashed)
	}

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := restore.Verify(cctx, restore.VerifyOptions{Store: env.Store, State: env.State}); err != context.Canceled {
		t.Fatalf("cancelled verify: %v", err)
	}

	blocks := primaryBlocks(env, lib, "b.bin")
	must(t, os.Remove(testenv.ObjectPath(env.BackupDir, object.KindBlock, lib.StoreID, blocks[50])))
	rep, err = restore.Verify(ctx, restore.VerifyOptions{Store: env.Store, State: env.State, Sample: 0.001})
	must(t, err)
	lr := libReport(t, rep, lib.ID)
	if rep.OK() || len(lr.Problems) != 1 || lr.Problems[0].ID != blocks[50] || !lr.Problems[0].Missing || lr.Problems[0].Path != "/b.bin" {
		t.Fatalf("missing block with a tiny sample: %+v", lr)
	}
}

// primaryBlocks returns the blocks of a file at the root of the library's head.
func primaryBlocks(env *testenv.Env, lib *seafgen.Library, name string) []string {
	_, blocks := env.PrimaryFile(lib, name)
	return blocks
}
