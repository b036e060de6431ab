package config

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// Whatever the configuration file holds, Parse answers a *Error naming the file (and,
// where it can, the key and line) or a configuration whose paths are absolute; never a
// panic.
//
//	go test -run '^$' -fuzz FuzzParse -fuzztime 2m ./config/
func FuzzParse(f *testing.F) {
	f.Add(good)
	f.Add(strings.Replace(good, "  data_dir: /mnt/primary/seafile-data\n", "  url: https://seafile.example.com/seafhttp\n  sync_token: 0123456789abcdef0123\n", 1))
	f.Add(good + "parallel: 65\ndb_timeout: 1h1s\nwatch:\n  poll: 50ms\n")
	f.Add(good + "backup:\n  store: s3\n")
	f.Add("primary: &p\n  db: x\nbackup: *p\nstate: /s\n")
	f.Add("? {a: b}\n: c\n")
	f.Add("primary:\n  db: \"seafbak:secret@tcp(db:3306\"\nstate: /s\n")
	f.Add("- a\n- b\n")
	f.Add("")
	f.Fuzz(func(t *testing.T, text string) {
		cfg, err := Parse("seafbak.yml", []byte(text))
		if err != nil {
			var ce *Error
			if !errors.As(err, &ce) || ce.File != "seafbak.yml" {
				t.Fatalf("error of no known class: %T %v", err, err)
			}
			return
		}
		for key, p := range map[string]string{"state": cfg.State, "primary.data_dir": cfg.Primary.DataDir, "backup.data_dir": cfg.Backup.DataDir, "dump.dir": cfg.Dump.Dir} {
			if p != "" && !strings.HasPrefix(p, "/") {
				t.Fatalf("accepted %s %q, not an absolute path", key, p)
			}
		}
		if cfg.Primary.DB == nil || cfg.State == "" || cfg.Parallel < 1 || cfg.Parallel > 64 {
			t.Fatalf("accepted a configuration without its required parts: %+v", cfg)
		}
	})
}

// However a database address is written, an error about it never repeats its password
// (error messages end up in cron mail and journald).
//
//	go test -run '^$' -fuzz FuzzDatabaseAddress -fuzztime 2m ./config/
func FuzzDatabaseAddress(f *testing.F) {
	const password = "Pw0rd-Xq7z"
	for _, rest := range []string{"@tcp(db:3306)/seafile_db", "@tcp(db:3306)/", "@unix(/run/mysqld/mysqld.sock)/seafile_db?timeout=x",
		"@tcp(db:3306/seafile_db", "@tcp(db:3306)/seafile_db?readTimeout=1", ":" + password + "@/x", "@/seafile_db?tls=custom", "@"} {
		f.Add(rest)
	}
	f.Fuzz(func(t *testing.T, rest string) {
		addr, _ := json.Marshal("seafbak:" + password + rest) // a JSON string is a YAML scalar
		const other = `"seafbak@unix(/run/mysqld/mysqld.sock)/seafile_db"`
		for key, text := range map[string]string{
			"primary.db": "primary:\n  db: " + string(addr) + "\n  data_dir: /p\nbackup:\n  data_dir: /b\n  db: " + other + "\nstate: /s\n",
			"backup.db":  "primary:\n  db: " + other + "\n  data_dir: /p\nbackup:\n  data_dir: /b\n  db: " + string(addr) + "\nstate: /s\n",
		} {
			if _, err := Parse("seafbak.yml", []byte(text)); err != nil && strings.Contains(err.Error(), password) {
				t.Fatalf("%s %s: the error repeats the password: %v", key, addr, err)
			}
		}
	})
}
