package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const good = `primary:
  db: "seafbak:secret@tcp(primary-db:3306)/seafile_db"
  data_dir: /mnt/primary/seafile-data
backup:
  data_dir: /srv/seafile-backup/seafile-data
  db: "seafbak@unix(/run/mysqld/mysqld.sock)/seafile_db"
state: /var/lib/seafbak/state
`

func TestGood(t *testing.T) {
	c, err := Parse("seafbak.yml", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if c.Primary.DB.DBName != "seafile_db" || c.Primary.DB.Passwd != "secret" || c.Backup.DB.Addr != "/run/mysqld/mysqld.sock" ||
		c.Primary.DataDir != "/mnt/primary/seafile-data" || c.State != "/var/lib/seafbak/state" || c.Parallel != 4 || c.Backup.PerObjectFsync {
		t.Fatalf("%+v", c)
	}
}

func TestURLSource(t *testing.T) {
	text := strings.Replace(good, "  data_dir: /mnt/primary/seafile-data\n", "  url: https://seafile.example.com/seafhttp\n  ca_file: /etc/seafbak/ca.pem\n", 1)
	t.Setenv(EnvSyncToken, "0123456789abcdef0123")
	c, err := Parse("seafbak.yml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	if c.Primary.URL != "https://seafile.example.com/seafhttp" || c.Primary.SyncToken != "0123456789abcdef0123" || c.Primary.CAFile != "/etc/seafbak/ca.pem" || c.Primary.DataDir != "" {
		t.Fatalf("%+v", c.Primary)
	}
}

func TestPasswordFromEnvironment(t *testing.T) {
	t.Setenv(EnvPrimaryPassword, "from-env")
	c, err := Parse("seafbak.yml", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if c.Primary.DB.Passwd != "from-env" {
		t.Fatalf("password %q", c.Primary.DB.Passwd)
	}
}

func TestErrorsNameKeyFileAndLine(t *testing.T) {
	cases := []struct {
		name, text, want string
	}{
		{"unknown key", strings.Replace(good, "state:", "stat:", 1), `seafbak.yml:7: stat: unknown key; did you mean state?`},
		{"typo in section", strings.Replace(good, "  data_dir: /mnt", "  datadir: /mnt", 1), `seafbak.yml:3: primary.datadir: unknown key; did you mean primary.data_dir?`},
		{"missing", strings.Replace(good, "state: /var/lib/seafbak/state\n", "", 1), `seafbak.yml: state: missing`},
		{"no source", strings.Replace(good, "  data_dir: /mnt/primary/seafile-data\n", "", 1), `primary: give primary.data_dir`},
		{"two sources", strings.Replace(good, "  data_dir: /mnt/primary/seafile-data\n", "  data_dir: /mnt/p\n  url: https://h/seafhttp\n", 1), `seafbak.yml:4: primary.url: give either`},
		{"token without url", strings.Replace(good, "  data_dir: /mnt/primary/seafile-data\n", "  data_dir: /mnt/p\n  sync_token: abcdefabcdefabcdef\n", 1), `primary.sync_token: only applies with primary.url`},
		{"url without token", strings.Replace(good, "  data_dir: /mnt/primary/seafile-data\n", "  url: https://h/seafhttp\n", 1), `primary.sync_token: missing or shorter`},
		{"bad url", strings.Replace(good, "  data_dir: /mnt/primary/seafile-data\n", "  url: ftp://h/\n  sync_token: abcdefabcdefabcdef\n", 1), `primary.url: is not an http(s)`},
		{"bad keep", good + "dump:\n  keep: 0\n", `dump.keep: must be a whole number`},
		{"bad parallel", good + "parallel: lots\n", `seafbak.yml:8: parallel: must be a whole number`},
		{"relative", strings.Replace(good, "state: /var", "state: var", 1), `seafbak.yml:7: state: "var/lib/seafbak/state" must be an absolute path`},
		{"bad durability", good + "backup2: 1\n", `backup2: unknown key`},
		{"not a mapping", "- a\n- b\n", `must be a mapping`},
		{"bad yaml", "primary: [\n", `not valid YAML`},
		{"empty", "", `the file is empty`},
		{"second document", good + "---\nprimray: 1\n", `seafbak.yml:9: a second YAML document`},
		{"section scalar", "primary: 3\n", `primary must be a mapping`},
		{"twice", good + "state: /x\n", `state: given twice`},
		{"backup data dir is the primary's", strings.Replace(good, "/srv/seafile-backup/seafile-data", "/mnt/primary/seafile-data/", 1), `backup.data_dir: "/mnt/primary/seafile-data/" and primary.data_dir "/mnt/primary/seafile-data" are the same directory`},
		{"backup data dir inside the primary's", strings.Replace(good, "/srv/seafile-backup/seafile-data", "/mnt/primary/seafile-data/backup", 1), `or one is inside the other`},
		{"backup data dir around the primary's", strings.Replace(good, "/srv/seafile-backup/seafile-data", "/mnt/primary", 1), `or one is inside the other`},
		{"backup db is the primary's", strings.Replace(good, `seafbak@unix(/run/mysqld/mysqld.sock)/seafile_db`, `other:pw@tcp(primary-db)/seafile_db`, 1), `seafbak.yml:6: backup.db: is the primary's seafile database`},
	}
	for _, c := range cases {
		_, err := Parse("seafbak.yml", []byte(c.text))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want it to contain %q", c.name, err, c.want)
		}
	}
}

// A password never shows up in an error about the DSN.
func TestBadDSNHidesPassword(t *testing.T) {
	text := strings.Replace(good, `"seafbak:secret@tcp(primary-db:3306)/seafile_db"`, `"seafbak:secret@tcp(primary-db:3306"`, 1)
	_, err := Parse("seafbak.yml", []byte(text))
	var cerr *Error
	if !errors.As(err, &cerr) || cerr.Key != "primary.db" || cerr.Line != 2 || strings.Contains(err.Error(), "secret") {
		t.Fatalf("got %v", err)
	}
	text = strings.Replace(good, `/seafile_db"`, `/"`, 1)
	if _, err := Parse("seafbak.yml", []byte(text)); err == nil || !strings.Contains(err.Error(), "names no database") || strings.Contains(err.Error(), "secret") {
		t.Fatalf("got %v", err)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yml"))
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("got %v", err)
	}
	p := filepath.Join(t.TempDir(), "c.yml")
	os.WriteFile(p, []byte(good), 0o600)
	if _, err := Load(p); err != nil {
		t.Fatal(err)
	}
}

func TestResolve(t *testing.T) {
	t.Setenv("SEAFBAK_CONFIG", "/env.yml")
	if Resolve("/flag.yml") != "/flag.yml" || Resolve("") != "/env.yml" {
		t.Fatal("flag or env not preferred")
	}
	t.Setenv("SEAFBAK_CONFIG", "")
	if Resolve("") != DefaultPath {
		t.Fatal("default not used")
	}
}
