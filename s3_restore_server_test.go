package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"seafbak/internal/s3test"
	"seafbak/internal/testenv"
)

// Failover with the backup on S3: restore server loads the dump into a fresh database
// server, writes the backed-up head, verifies the buckets and prints the three
// seafile.conf backend sections that point Seafile Pro at them (the buckets, the
// endpoint, path style, no TLS, the access key id), with a placeholder where the secret
// goes: the secret itself is printed nowhere, whether it came from the config file or
// from SEAFBAK_S3_SECRET_KEY.
func TestRestoreServerOnS3(t *testing.T) {
	s3 := s3test.Start(t)
	side := realOnS3(t, s3, s3.Endpoint)
	env, cfg, b, id := side.env, side.cfg, side.buckets, testenv.RealLibraryID
	dumpDir := filepath.Join(t.TempDir(), "dumps")
	appendConfig(t, cfg, fmt.Sprintf("dump:\n  dir: %s\n", dumpDir), nil)
	if code, out, errs := seafbak("--config", cfg, "sync", id); code != 0 {
		t.Fatalf("sync: %d %s%s", code, out, errs)
	}
	if code, out, errs := seafbak("--config", cfg, "dump"); code != 0 {
		t.Fatalf("dump: %d %s%s", code, out, errs)
	}

	other, err := startOwnServer(t)
	must(t, err)
	text := strings.Replace(mustRead(t, cfg), fmt.Sprintf("root@unix(%s)/%s", srv.Socket, env.BackupDBName), fmt.Sprintf("root@unix(%s)/seafile_db", other.Socket), 1)
	failover := filepath.Join(t.TempDir(), "failover.yml")
	must(t, os.WriteFile(failover, []byte(text), 0o600))

	section := func(name, bucket string) string {
		return fmt.Sprintf("[%s]\n       name = s3\n       bucket = %s\n       key_id = %s\n       key = <secret key>\n       host = %s\n       use_https = false\n       path_style_request = true\n       aws_region = %s\n       use_v4_signature = true\n",
			name, bucket, s3test.AccessKey, s3.Endpoint, s3test.Region)
	}
	check := func(stage, out, errs string) {
		t.Helper()
		if !strings.Contains(out, "To start Seafile on it:") ||
			!strings.Contains(out, "Point Seafile at the backup's buckets (Seafile Pro's S3 backend)") ||
			strings.Contains(out, "seafile-data directory") {
			t.Fatalf("%s: restore server on S3 does not say how to serve the buckets:\n%s%s", stage, out, errs)
		}
		for _, want := range []string{
			section("commit_object_backend", b.commits), section("fs_object_backend", b.fs), section("block_backend", b.blocks),
		} {
			if !strings.Contains(out, want) {
				t.Fatalf("%s: restore server's output lacks\n%s\nin\n%s", stage, want, out)
			}
		}
		if strings.Contains(out+errs, s3test.SecretKey) {
			t.Fatalf("%s: restore server printed the secret key:\n%s%s", stage, out, errs)
		}
		var head string
		db, err := other.Open("seafile_db")
		must(t, err)
		defer db.Close()
		must(t, db.QueryRow("SELECT commit_id FROM Branch WHERE repo_id = ? AND name = 'master'", id).Scan(&head))
		if head != realHead {
			t.Fatalf("%s: restored head %s, want %s", stage, head, realHead)
		}
	}
	code, out, errs := seafbak("--config", failover, "restore", "server")
	t.Log(out)
	if code != 0 {
		t.Fatalf("restore server: %d\n%s%s", code, out, errs)
	}
	check("secret in the config", out, errs)

	// The secret from the environment instead of the file: still never printed.
	must(t, os.WriteFile(failover, []byte(strings.Replace(text, "    secret_key: "+s3test.SecretKey+"\n", "", 1)), 0o600))
	if strings.Contains(mustRead(t, failover), s3test.SecretKey) {
		t.Fatal("test setup: the secret is still in the config")
	}
	t.Setenv("SEAFBAK_S3_SECRET_KEY", s3test.SecretKey)
	code, out, errs = seafbak("--config", failover, "restore", "server", "--yes")
	if code != 0 {
		t.Fatalf("restore server --yes, secret from the environment: %d\n%s%s", code, out, errs)
	}
	check("secret from the environment", out, errs)
}
