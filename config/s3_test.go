package config

import (
	"fmt"
	"strings"
	"testing"
)

// backup.store selects the filesystem (the default, backup.data_dir) or S3
// (backup.s3.*); each store's keys are refused with the other, and a secret key comes
// from the file or SEAFBAK_S3_SECRET_KEY(_FILE), never printed.
func TestS3StoreKeys(t *testing.T) {
	t.Setenv(EnvS3SecretKey, "")
	t.Setenv(EnvS3SecretKey+"_FILE", "")
	const s3 = "  store: s3\n  s3:\n    endpoint: minio.internal:9000\n    commit_bucket: sf-commits\n    fs_bucket: sf-fs\n    block_bucket: sf-blocks\n"
	noDir := strings.Replace(good, "  data_dir: /srv/seafile-backup/seafile-data\n", "", 1)
	backup := func(base, extra string) string { return strings.Replace(base, "backup:\n", "backup:\n"+extra, 1) }
	for _, tc := range []struct {
		text, want string // want: "" = accepted, else part of the error
	}{
		{good, ""},
		{backup(good, "  store: fs\n"), ""},
		{backup(noDir, s3), ""},
		{backup(noDir, s3+"    path_style: true\n    use_https: false\n    region: eu-west-1\n    access_key: AK\n    secret_key: s3cr3t\n"), ""},
		{noDir, "backup.data_dir: missing"},
		{backup(noDir, "  store: swift\n"), `"swift" is not one of fs, s3`},
		{backup(good, s3), "backup.data_dir: only applies with backup.store: fs"},
		{backup(noDir, s3+"  durability: per-object\n"), "backup.durability: only applies with backup.store: fs"},
		{backup(good, "  s3:\n    endpoint: h:9000\n"), "backup.s3.endpoint: only applies with backup.store: s3"},
		{backup(noDir, "  store: s3\n  s3:\n    endpoint: h:9000\n"), "backup.s3.commit_bucket: missing"},
		{backup(noDir, strings.Replace(s3, "minio.internal:9000", "https://minio.internal:9000", 1)), "give no scheme"},
		{backup(noDir, strings.Replace(s3, "minio.internal:9000", "h:99999", 1)), "is not a host[:port]"},
		{backup(noDir, strings.Replace(s3, "sf-fs", "sf-commits", 1)), "is the same bucket as backup.s3.commit_bucket"},
		{backup(noDir, strings.Replace(s3, "sf-fs", "SF_fs", 1)), "is not a bucket name"},
		{backup(noDir, s3+"    use_https: yes\n"), "must be true or false"},
		{backup(noDir, s3+"    use_https: false\n    ca_file: /etc/ca.pem\n"), "only applies with backup.s3.use_https: true"},
		{backup(noDir, s3+"    ca_file: etc/ca.pem\n"), "must be an absolute path"},
		{backup(noDir, s3+"    access_key: AK\n"), "go together"},
		{backup(noDir, s3+"    bukkit: x\n"), "backup.s3.bukkit: unknown key"},
		// An address cannot carry <bucket>. in front (found by review: "no such host").
		{backup(noDir, strings.Replace(s3, "minio.internal:9000", "10.0.0.5:9000", 1)), "add backup.s3.path_style: true"},
		{backup(noDir, strings.Replace(s3, "minio.internal:9000", `"[fd00::5]:9000"`, 1)), "add backup.s3.path_style: true"},
	} {
		c, err := Parse("seafbak.yml", []byte(tc.text))
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%q: %v", tc.text, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%q: got %v, want an error with %q", tc.text, err, tc.want)
		case err == nil && strings.Contains(tc.text, "store: s3") && (c.Backup.Store != StoreS3 || c.Backup.S3.Endpoint != "minio.internal:9000"):
			t.Errorf("%q: parsed %+v", tc.text, c.Backup)
		}
	}
	if _, err := Parse("seafbak.yml", []byte(backup(noDir, strings.Replace(s3, "minio.internal:9000", "10.0.0.5:9000", 1)+"    path_style: true\n"))); err != nil {
		t.Errorf("an IP endpoint with path_style: %v", err)
	}
	c, err := Parse("seafbak.yml", []byte(backup(noDir, s3)))
	if err != nil {
		t.Fatal(err)
	}
	if !c.Backup.S3.UseHTTPS || c.Backup.S3.PathStyle {
		t.Errorf("defaults: use_https %v path_style %v, want true, false", c.Backup.S3.UseHTTPS, c.Backup.S3.PathStyle)
	}
	// The environment gives the secret, and wins over the file; it is never printed.
	t.Setenv(EnvS3SecretKey, "from-env-secret")
	c, err = Parse("seafbak.yml", []byte(backup(noDir, s3+"    access_key: AK\n    secret_key: s3cr3t\n")))
	if err != nil || c.Backup.S3.SecretKey != "from-env-secret" {
		t.Fatalf("env: %v, %v", c, err)
	}
	for _, s := range []string{fmt.Sprint(c.Backup.S3), fmt.Sprintf("%+v", c.Backup), fmt.Sprintf("%#v", c.Backup.S3)} {
		if strings.Contains(s, "from-env-secret") {
			t.Errorf("secret printed: %s", s)
		}
	}
}
