package sync_test

import (
	"context"
	"os"
	"strings"
	"testing"

	"seafbak/internal/seafgen"
	"seafbak/internal/testenv"
	"seafbak/restore"
	seafsync "seafbak/sync"
	"seafbak/sync/object"
)

// Bit rot and a lost sector in the backup: a repair (Engine.Recheck, what verify --repair
// runs) fetches every damaged or missing object again from the primary, verified as
// always, across the whole history; what the primary no longer has is reported.
func TestRepairDamagedBackup(t *testing.T) { bothSources(t, testRepairDamagedBackup) }

// The same with a re-check cache of one entry, forgotten at every second object: the
// cache only saves reads, so the repair must come out the same.
func TestRepairWithTinyRecheckCache(t *testing.T) {
	defer seafsync.SetRecheckCacheLimit(1)()
	bothSources(t, testRepairDamagedBackup)
}

func testRepairDamagedBackup(t *testing.T, env *testenv.Env, g *seafgen.Generator) {
	lib := richLibrary(t, g)
	env.Publish(lib)
	testenv.SyncOK(t, env.Engine(false), lib.ID)

	// Damage one object of each kind, some only in old history.
	var first, firstRoot string
	for _, c := range lib.Commits() { // the oldest commit with a tree
		root, err := lib.RootID(c)
		must(t, err)
		if root != object.EmptyID && c != lib.Head {
			first, firstRoot = c, root
			break
		}
	}
	_, blocks := env.PrimaryFile(lib, "big.bin")
	flip := func(kind object.Kind, store, id string) {
		p := testenv.ObjectPath(env.BackupDir, kind, store, id)
		data, err := os.ReadFile(p)
		must(t, err)
		data[len(data)/2] ^= 0x10
		must(t, os.WriteFile(p, data, 0o644))
	}
	flip(object.KindBlock, lib.StoreID, blocks[0])
	flip(object.KindFS, lib.StoreID, firstRoot)
	// A commit's id is not recomputed from its bytes (the server re-encodes them), so
	// damage to one shows as a commit that no longer parses: a sector of zeros.
	commitPath := testenv.ObjectPath(env.BackupDir, object.KindCommit, lib.ID, first)
	data, err := os.ReadFile(commitPath)
	must(t, err)
	clear(data[len(data)/2:])
	must(t, os.WriteFile(commitPath, data, 0o644))
	must(t, os.Remove(testenv.ObjectPath(env.BackupDir, object.KindBlock, lib.StoreID, blocks[len(blocks)-1])))

	verify := func() *restore.VerifyReport {
		rep, err := restore.Verify(context.Background(), restore.VerifyOptions{Store: env.Store, State: env.State, Libraries: []string{lib.ID}})
		must(t, err)
		return rep
	}
	// The damaged root hides behind the damaged commit until that is repaired.
	if rep := verify(); rep.OK() || len(rep.Libraries[0].Problems) < 3 {
		t.Fatalf("verify missed the damage: %+v", rep.Libraries[0].Problems)
	}

	eng := env.Engine(false)
	eng.Recheck = true
	res := testenv.SyncOK(t, eng, lib.ID)
	if !res.Rechecked {
		t.Fatalf("%+v: want a re-check", res)
	}
	if rep := verify(); !rep.OK() {
		t.Fatalf("after repair: %+v", rep.Libraries[0].Problems)
	}
	env.CompareWithPrimary(lib.ID, lib.StoreID, lib.Head)
	checkTrees(t, env, lib)

	// Damage the primary lost as well cannot be repaired: reported, nothing invented.
	flip(object.KindBlock, lib.StoreID, blocks[0])
	must(t, os.Remove(testenv.ObjectPath(env.PrimaryDir, object.KindBlock, lib.StoreID, blocks[0])))
	_, err = eng.Sync(context.Background(), lib.ID)
	if err == nil || !strings.Contains(err.Error(), blocks[0]) || !strings.Contains(err.Error(), "missing on the primary") {
		t.Fatalf("repair of an object the primary lost: %v", err)
	}
	if rep := verify(); rep.OK() {
		t.Fatal("verify passes with a damaged block nobody could repair")
	}
	rec, _, _ := env.State.Load(lib.ID)
	if rec.Head != lib.Head || env.BackupHead(lib.ID) != lib.Head {
		t.Fatalf("failed repair moved the head: %q / %q", rec.Head, env.BackupHead(lib.ID))
	}
}
