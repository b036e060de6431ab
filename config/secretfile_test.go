package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Secrets can come from files named by NAME_FILE (Docker and systemd credentials), with
// the trailing newline dropped; NAME itself wins; a missing or empty file is an error.
func TestSecretFiles(t *testing.T) {
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "pw")
	if err := os.WriteFile(pwFile, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(EnvPrimaryPassword, "")
	t.Setenv(EnvPrimaryPassword+"_FILE", pwFile)
	c, err := Parse("seafbak.yml", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if c.Primary.DB.Passwd != "from-file" {
		t.Fatalf("password %q, want the file's without its newline", c.Primary.DB.Passwd)
	}
	t.Setenv(EnvPrimaryPassword, "from-env")
	if c, err = Parse("seafbak.yml", []byte(good)); err != nil || c.Primary.DB.Passwd != "from-env" {
		t.Fatalf("password %q (%v), want the variable's", c.Primary.DB.Passwd, err)
	}
	t.Setenv(EnvPrimaryPassword, "")
	for _, bad := range []string{filepath.Join(dir, "missing"), filepath.Join(dir, "empty")} {
		os.WriteFile(filepath.Join(dir, "empty"), nil, 0o600)
		t.Setenv(EnvPrimaryPassword+"_FILE", bad)
		if _, err := Parse("seafbak.yml", []byte(good)); err == nil || !strings.Contains(err.Error(), EnvPrimaryPassword+"_FILE") {
			t.Fatalf("%s: got %v, want an error naming the variable", bad, err)
		}
	}
}
