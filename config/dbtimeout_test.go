package config

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// db_timeout becomes the driver's connect, read and write deadlines on both databases,
// 30 s when the file does not say, and a DSN's own deadlines win.
func TestDBTimeout(t *testing.T) {
	check := func(name string, text string, primary, backup [3]time.Duration) {
		t.Helper()
		c, err := Parse("seafbak.yml", []byte(text))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		p := [3]time.Duration{c.Primary.DB.Timeout, c.Primary.DB.ReadTimeout, c.Primary.DB.WriteTimeout}
		b := [3]time.Duration{c.Backup.DB.Timeout, c.Backup.DB.ReadTimeout, c.Backup.DB.WriteTimeout}
		if p != primary || b != backup {
			t.Errorf("%s: primary %v backup %v, want %v and %v", name, p, b, primary, backup)
		}
	}
	d := DefaultDBTimeout
	if d != 30*time.Second {
		t.Fatalf("default %s", d)
	}
	check("default", good, [3]time.Duration{d, d, d}, [3]time.Duration{d, d, d})
	two := 2 * time.Second
	check("set", good+"db_timeout: 2s\n", [3]time.Duration{two, two, two}, [3]time.Duration{two, two, two})
	// Given before the sections it applies to, too.
	check("set first", "db_timeout: 1m30s\n"+good, [3]time.Duration{90 * time.Second, 90 * time.Second, 90 * time.Second}, [3]time.Duration{90 * time.Second, 90 * time.Second, 90 * time.Second})
	own := strings.Replace(good, "/seafile_db\"\n  data_dir", "/seafile_db?readTimeout=5m&timeout=7s\"\n  data_dir", 1)
	check("the DSN's own", own+"db_timeout: 2s\n", [3]time.Duration{7 * time.Second, 5 * time.Minute, two}, [3]time.Duration{two, two, two})
}

func TestDBTimeoutErrors(t *testing.T) {
	for _, v := range []string{"30", "0s", "500ms", "2h", "-5s", "soon", "", "[1s]", "{a: 1}"} {
		_, err := Parse("seafbak.yml", []byte(good+"db_timeout: "+v+"\n"))
		var cerr *Error
		if !errors.As(err, &cerr) || cerr.Key != "db_timeout" || cerr.Line != 8 ||
			!strings.Contains(err.Error(), "seafbak.yml:8: db_timeout: must be a duration from 1s to 1h, written like 30s or 2m") {
			t.Errorf("db_timeout: %q: got %v", v, err)
		}
	}
	if _, err := Parse("seafbak.yml", []byte(good+"backup_timeout: 2s\n")); err == nil || !strings.Contains(err.Error(), "unknown key") || !strings.Contains(err.Error(), "db_timeout") {
		t.Errorf("unknown key: got %v", err)
	}
	if _, err := Parse("seafbak.yml", []byte(good+"db_timeout: 2s\ndb_timeout: 3s\n")); err == nil || !strings.Contains(err.Error(), "seafbak.yml:9: db_timeout: given twice") {
		t.Errorf("twice: got %v", err)
	}
}

// A password variable that is set but empty (an unfilled template, "=$UNSET") leaves the
// file's password alone instead of silently replacing it with nothing.
func TestEmptyPasswordEnvironmentIsUnset(t *testing.T) {
	text := strings.Replace(good, `"seafbak@unix(`, `"seafbak:backup-secret@unix(`, 1)
	t.Setenv(EnvPrimaryPassword, "")
	t.Setenv(EnvBackupPassword, "")
	c, err := Parse("seafbak.yml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	if c.Primary.DB.Passwd != "secret" || c.Backup.DB.Passwd != "backup-secret" {
		t.Fatalf("passwords %q, %q: want the file's", c.Primary.DB.Passwd, c.Backup.DB.Passwd)
	}
	// A non-empty one still replaces the file's.
	t.Setenv(EnvBackupPassword, "from-env")
	if c, err = Parse("seafbak.yml", []byte(text)); err != nil {
		t.Fatal(err)
	}
	if c.Primary.DB.Passwd != "secret" || c.Backup.DB.Passwd != "from-env" {
		t.Fatalf("passwords %q, %q", c.Primary.DB.Passwd, c.Backup.DB.Passwd)
	}
}
