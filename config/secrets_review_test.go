package config

import (
	"strings"
	"testing"
)

// An address refused by the config check must not be echoed when it carries a password:
// the message goes to cron mail and the journal.
func TestRefusedAddressesDoNotEchoPasswords(t *testing.T) {
	t.Setenv(EnvJWTPrivateKey, "")
	t.Setenv(EnvJWTPrivateKey+"_FILE", "")
	t.Setenv(EnvS3SecretKey, "")
	t.Setenv(EnvS3SecretKey+"_FILE", "")
	const pw = "Pa55w0rdXYZ"
	withURL := strings.Replace(good, "  data_dir: /mnt/primary/seafile-data\n",
		"  url: https://seafile.example.com/seafhttp\n  sync_token: 0123456789abcdef0123\n", 1)
	s3 := strings.Replace(good, "  data_dir: /srv/seafile-backup/seafile-data\n",
		"  store: s3\n  s3:\n    endpoint: \"https://AKIAEXAMPLE:"+pw+"@s3.example.com\"\n    commit_bucket: c-bucket\n    fs_bucket: f-bucket\n    block_bucket: b-bucket\n", 1)
	for name, text := range map[string]string{
		// url.Parse fails (bad port), so the "user or password" branch is not taken.
		"notification_url, bad port": strings.Replace(withURL, "primary:\n", "primary:\n  notification_url: \"ws://me:"+pw+"@h:80x/\"\n", 1),
		// url.Parse fails (bad escape in the password).
		"notification_url, bad escape":          strings.Replace(withURL, "primary:\n", "primary:\n  notification_url: \"ws://me:"+pw+"%zz@h/\"\n", 1),
		"s3 endpoint as a URL with credentials": s3,
	} {
		_, err := Parse("seafbak.yml", []byte(text))
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		if strings.Contains(err.Error(), pw) {
			t.Errorf("%s: the error repeats the password: %v", name, err)
		}
	}
}

// seafbak's own files (state, dumps, the metrics file) inside the primary's seafile-data
// would be written into the primary, as backup.data_dir there would: refused the same way.
func TestOwnFilesInsideThePrimaryDataDirAreRefused(t *testing.T) {
	for key, text := range map[string]string{
		"state":    strings.Replace(good, "state: /var/lib/seafbak/state", "state: /mnt/primary/seafile-data/seafbak-state", 1),
		"dump.dir": good + "dump:\n  dir: /mnt/primary/seafile-data/dumps\n",
	} {
		if _, err := Parse("seafbak.yml", []byte(text)); err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("%s inside primary.data_dir: %v", key, err)
		}
	}
}
