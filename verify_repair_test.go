package main

import (
	"os"
	"strings"
	"testing"

	"seafbak/internal/seafgen"
	"seafbak/internal/testenv"
	"seafbak/sync/object"
)

// Bytes flipped in the backup store (bit rot): verify finds them, verify --repair fetches
// them again from the primary, and verify is clean after. A library with holes keeps
// verify at exit 1 until the primary is repaired.
func TestCLIVerifyRepair(t *testing.T) {
	env := testenv.New(t, srv)
	g := seafgen.New(env.PrimaryDir)
	g.BlockSize = 4096
	lib, err := g.NewLibrary(seafgen.LibraryOptions{Name: "Rot", Owner: "rot@example.com"})
	must(t, err)
	testenv.Commit(t, lib, "files", seafgen.Put("big.bin", testenv.RandomBytes(20000, 61)), seafgen.Put("d/small.txt", []byte("small")))
	testenv.Commit(t, lib, "more", seafgen.Put("d/more.txt", []byte("more")))
	holed, err := g.NewLibrary(seafgen.LibraryOptions{Name: "Holed", Owner: "rot@example.com"})
	must(t, err)
	testenv.Commit(t, holed, "files", seafgen.Put("lost.bin", testenv.RandomBytes(9000, 62)))
	env.Publish(lib, holed)
	cfg := writeConfig(t, env)

	if code, out, errs := seafbak("--config", cfg, "sync", lib.ID); code != 0 {
		t.Fatalf("sync: %d\n%s%s", code, out, errs)
	}
	_, blocks := env.PrimaryFile(lib, "big.bin")
	for _, b := range blocks[:2] {
		p := testenv.ObjectPath(env.BackupDir, object.KindBlock, lib.StoreID, b)
		data, err := os.ReadFile(p)
		must(t, err)
		data[100] ^= 0x01
		must(t, os.WriteFile(p, data, 0o644))
	}
	code, out, errs := seafbak("--config", cfg, "verify")
	if code != 1 || !strings.Contains(out, lib.ID+" Rot: FAILED") || !strings.Contains(out, blocks[0]) {
		t.Fatalf("verify of a damaged store: %d\n%s%s", code, out, errs)
	}
	code, out, errs = seafbak("--config", cfg, "verify", "--repair")
	if code != 0 || !strings.Contains(out, lib.ID+" Rot: repaired from the primary (2 objects fetched again)") || !strings.Contains(out, "1 libraries, 0 failed") {
		t.Fatalf("verify --repair: %d\n%s%s", code, out, errs)
	}
	if code, out, errs = seafbak("--config", cfg, "verify"); code != 0 {
		t.Fatalf("verify after repair: %d\n%s%s", code, out, errs)
	}
	env.CompareWithPrimary(lib.ID, lib.StoreID, lib.Head)

	// A block the primary lost: sync --force records the hole, and verify says so (exit 1).
	_, lost := env.PrimaryFile(holed, "lost.bin")
	lostPath := testenv.ObjectPath(env.PrimaryDir, object.KindBlock, holed.StoreID, lost[0])
	saved, err := os.ReadFile(lostPath)
	must(t, err)
	must(t, os.Remove(lostPath))
	if code, out, errs := seafbak("--config", cfg, "sync", "--force", holed.ID); code != 0 || !strings.Contains(out, "1 holes recorded") {
		t.Fatalf("sync --force: %d\n%s%s", code, out, errs)
	}
	code, out, errs = seafbak("--config", cfg, "verify")
	if code != 1 || !strings.Contains(out, "1 libraries have holes") {
		t.Fatalf("verify with a hole: %d\n%s%s", code, out, errs)
	}
	must(t, os.WriteFile(lostPath, saved, 0o644))
	if code, out, errs := seafbak("--config", cfg, "sync", holed.ID); code != 0 {
		t.Fatalf("sync after the primary was repaired: %d\n%s%s", code, out, errs)
	}
	if code, out, errs = seafbak("--config", cfg, "verify"); code != 0 {
		t.Fatalf("verify once the hole is filled: %d\n%s%s", code, out, errs)
	}
}
