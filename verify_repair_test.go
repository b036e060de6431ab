package main

import (
	"encoding/json"
	"os"
	"path/filepath"
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
	// The primary unreachable: the repair cannot run, and the report that names the
	// damage is still printed (valid JSON with --json), exit 1.
	text, err := os.ReadFile(cfg)
	must(t, err)
	noPrimary := filepath.Join(t.TempDir(), "seafbak.yml")
	must(t, os.WriteFile(noPrimary, []byte(strings.Replace(string(text), "root@unix("+srv.Socket+")/"+env.PrimaryDBName, "root@unix(/nonexistent/mysqld.sock)/"+env.PrimaryDBName, 1)), 0o600))
	code, out, errs = seafbak("--config", noPrimary, "verify", "--repair", "--json")
	var doc struct {
		RepairError string `json:"repair_error"`
		Libraries   []struct {
			RepoID string `json:"repo_id"`
		} `json:"libraries"`
	}
	if jerr := json.Unmarshal([]byte(out), &doc); code != 1 || jerr != nil || !strings.Contains(doc.RepairError, "nonexistent") || len(doc.Libraries) != 1 || doc.Libraries[0].RepoID != lib.ID {
		t.Fatalf("verify --repair --json, the primary unreachable: %d (%v)\n%s%s", code, jerr, out, errs)
	}
	code, out, errs = seafbak("--config", noPrimary, "verify", "--repair")
	if code != 1 || !strings.Contains(out, lib.ID+" Rot: FAILED") || !strings.Contains(errs, "--repair") || !strings.Contains(errs, "1 libraries with objects missing or damaged") {
		t.Fatalf("verify --repair, the primary unreachable: %d\n%s%s", code, out, errs)
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
