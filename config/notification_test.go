package config

import (
	"strings"
	"testing"
)

// primary.notification_url is off unless set; set, it needs tokens from somewhere:
// primary.jwt_private_key (or SEAFBAK_JWT_PRIVATE_KEY), or the file server (primary.url).
func TestNotificationKeys(t *testing.T) {
	t.Setenv(EnvJWTPrivateKey, "")
	t.Setenv(EnvJWTPrivateKey+"_FILE", "")
	withURL := strings.Replace(good, "  data_dir: /mnt/primary/seafile-data\n",
		"  url: https://seafile.example.com/seafhttp\n  sync_token: 0123456789abcdef0123\n", 1)
	primaryKeys := func(base, extra string) string {
		return strings.Replace(base, "primary:\n", "primary:\n"+extra, 1)
	}
	for _, tc := range []struct {
		text, want string // want: "" = accepted, else part of the error
	}{
		{good, ""},
		{primaryKeys(withURL, "  notification_url: ws://seafile-host:8083/\n"), ""},
		{primaryKeys(withURL, "  notification_url: https://seafile.example.com/notification\n"), ""},
		{primaryKeys(good, "  notification_url: ws://h:8083\n  jwt_private_key: k3y\n"), ""},
		{primaryKeys(good, "  notification_url: ws://h:8083\n"), "needs primary.jwt_private_key"},
		{primaryKeys(good, "  jwt_private_key: k3y\n"), "only applies with primary.notification_url"},
		{primaryKeys(withURL, "  notification_url: h:8083\n"), "is not a ws(s)://"},
		{primaryKeys(withURL, "  notification_url: ftp://h/\n"), "is not a ws(s)://"},
		{primaryKeys(withURL, "  notification_url: ws://h/?token=x\n"), "is not a ws(s)://"},
		{primaryKeys(withURL, "  notification_url: ws://me:pa55w0rd@h/\n"), "an address with a user or password in it is not a ws(s)://"},
		{primaryKeys(withURL, "  notification_url: ws://h/\n  jwt_private_key: \"\"\n"), "is empty"},
	} {
		c, err := Parse("seafbak.yml", []byte(tc.text))
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%q: %v", tc.text, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%q: got %v, want an error with %q", tc.text, err, tc.want)
		case err != nil && strings.Contains(err.Error(), "pa55w0rd"):
			t.Errorf("%q: the error repeats the password: %v", tc.text, err)
		case err == nil && strings.Contains(tc.text, "k3y") && c.Primary.JWTPrivateKey != "k3y":
			t.Errorf("%q: key %q", tc.text, c.Primary.JWTPrivateKey)
		}
	}
	// The environment gives the key, and wins over the file.
	t.Setenv(EnvJWTPrivateKey, "from-env")
	c, err := Parse("seafbak.yml", []byte(primaryKeys(good, "  notification_url: ws://h:8083\n  jwt_private_key: k3y\n")))
	if err != nil || c.Primary.JWTPrivateKey != "from-env" {
		t.Fatalf("env: %+v, %v", c, err)
	}
	if _, err := Parse("seafbak.yml", []byte(primaryKeys(good, "  notification_url: ws://h:8083\n"))); err != nil {
		t.Fatalf("key from env only: %v", err)
	}
}
