package main

import (
	"os"
	"strings"
	"testing"

	"seafbak/internal/testenv"
)

// The backup disk not mounted: the state still says every library is backed up, but
// the store is an empty directory. status cannot tell the libraries' standing and says
// why (exit 2), as every other command refuses that store; --if-changed says so once.
func TestStatusRefusesAStoreThatIsNotThere(t *testing.T) {
	env := testenv.New(t, srv)
	env.LoadRealLibrary()
	cfg := writeConfig(t, env)
	if code, _, errb := seafbak("--config", cfg, "scan"); code != 0 {
		t.Fatalf("scan: %d %s", code, errb)
	}
	if code, out, errb := seafbak("--config", cfg, "status", "--if-changed"); code != 0 {
		t.Fatalf("status --if-changed, healthy: %d %s %s", code, out, errb)
	}
	must(t, os.Rename(env.BackupDir, env.BackupDir+".away"))
	must(t, os.MkdirAll(env.BackupDir, 0o755))
	for _, args := range [][]string{{"status"}, {"status", "--offline"}, {"status", "--json"}} {
		code, out, errb := seafbak(append([]string{"--config", cfg}, args...)...)
		if code != 2 || !strings.Contains(out+errb, "no storage/ directory") {
			t.Errorf("%v with the store not there: %d\n%s%s", args, code, out, errb)
		}
	}
	if code, out, errb := seafbak("--config", cfg, "status", "--if-changed"); code != 2 || !strings.Contains(out+errb, "no storage/ directory") {
		t.Errorf("status --if-changed with the store not there: %d\n%s%s", code, out, errb)
	}
	if code, out, errb := seafbak("--config", cfg, "status", "--if-changed"); code != 0 || out+errb != "" {
		t.Errorf("status --if-changed again, nothing new: %d\n%s%s", code, out, errb)
	}
}
