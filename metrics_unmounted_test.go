package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// status, verify and restore make nothing on a state disk that is not mounted, their
// metrics file included: writing it opened the state with state.Open, which made
// libraries/, locks/ and dirty/ on the mount point (found by review).
func TestMetricsFileMakesNoStateOnAnUnmountedDisk(t *testing.T) {
	mnt := filepath.Join(t.TempDir(), "mnt")
	if err := os.MkdirAll(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	prom := filepath.Join(t.TempDir(), "seafbak.prom")
	cfg := filepath.Join(t.TempDir(), "seafbak.yml")
	text := "primary:\n  db: \"root@unix(/nonexistent.sock)/seafile\"\n  data_dir: " + t.TempDir() + "\n" +
		"backup:\n  data_dir: " + filepath.Join(mnt, "seafile-data") + "\n" +
		"state: " + filepath.Join(mnt, "state") + "\n"
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"status", "--offline"}, {"verify"}} {
		code, out, errs := seafbak(append([]string{"--config", cfg, "--metrics-file", prom}, args...)...)
		if code != 2 || !strings.Contains(errs, "no seafbak state there") {
			t.Errorf("%v: exit %d\n%s%s", args, code, out, errs)
		}
		if ents, err := os.ReadDir(mnt); err != nil || len(ents) != 0 {
			t.Errorf("%v with a metrics file made %v in the empty mount point (%v)\n%s", args, ents, err, errs)
		}
	}
}
