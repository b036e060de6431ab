package restore_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"seafbak/internal/seafgen"
	"seafbak/internal/testenv"
	"seafbak/restore"
)

// The primary's head A (c1 <- c2 <- A) is reset to c1 and a user commits Y on it; a
// sync sees A -> Y (A kept as an old head, the move recorded). Then Z on Y, synced:
// no move (a fast-forward). --at a time when the primary served A's line (after c2,
// before A's ctime... any time before the reset) must restore c2; pickAt's walk-back
// only applies a move whose To is the current head, so with Z on top of Y it never
// applies, A's line is skipped as "moved", and c1 is restored.
func TestRestoreAtResetThenNewCommit(t *testing.T) {
	env, g := primaryWithGenerator(t)
	next := int64(1_000_000)
	g.Now = func() int64 { next += 1000; return next }
	lib, err := g.NewLibrary(seafgen.LibraryOptions{Name: "ResetThenWork"})
	must(t, err)
	c1 := testenv.Commit(t, lib, "one", seafgen.Put("f.txt", []byte("1")))  // 1_002_000
	c2 := testenv.Commit(t, lib, "two", seafgen.Put("f.txt", []byte("2")))  // 1_003_000
	a := testenv.Commit(t, lib, "three", seafgen.Put("f.txt", []byte("3"))) // 1_004_000
	env.Publish(lib)
	testenv.SyncOK(t, env.Engine(false), lib.ID)
	lib.SetHead(c1)
	y := testenv.Commit(t, lib, "after the reset", seafgen.Put("g.txt", []byte("y")))
	env.Publish(lib)
	if res := testenv.SyncOK(t, env.Engine(false), lib.ID); !res.OldHeadKept {
		t.Fatalf("old head not kept: %+v", res)
	}
	z := testenv.Commit(t, lib, "more work", seafgen.Put("h.txt", []byte("z")))
	env.Publish(lib)
	testenv.SyncOK(t, env.Engine(false), lib.ID)
	rec, _, err := env.State.Load(lib.ID)
	must(t, err)
	t.Logf("c1 %s c2 %s a %s y %s z %s; head %s old %+v moves %+v", c1[:6], c2[:6], a[:6], y[:6], z[:6], rec.Head[:6], rec.OldHeads, rec.HeadMoves)
	at := time.Unix(1_003_500, 0) // after c2, before A; the primary served A's line then
	res, err := restore.RestoreLibrary(context.Background(), restore.LibraryOptions{Store: env.Store, State: env.State, RepoID: lib.ID, Dir: filepath.Join(t.TempDir(), "out"), At: at})
	must(t, err)
	if res.Commit != c2 {
		t.Fatalf("--at %s restored %s (%q), want c2 %s", at.UTC(), res.Commit, res.Description, c2)
	}
}
