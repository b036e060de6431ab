package dump

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"seafbak/internal/mariadbtest"
)

// TestTiming (SEAFBAK_DUMP_TIMING=1) times Run and Load next to the bare tools in a
// shell pipeline (mariadb-dump | gzip, gunzip | mariadb) on the same databases:
// median [min..max] of 3.
func TestTiming(t *testing.T) {
	if os.Getenv("SEAFBAK_DUMP_TIMING") == "" {
		t.Skip("set SEAFBAK_DUMP_TIMING=1")
	}
	p := newPrimary(t, testRows())
	dir := t.TempDir()
	var runs, loads, shDumps, shLoads []time.Duration
	var set Set
	flags := joinFlags(dumpFlagsOf(t))
	for i := range 3 {
		// Alternate who goes first: the server's flushing after one load slows the next.
		bare := func() {
			t0 := time.Now()
			for _, role := range Roles {
				out := filepath.Join(dir, string(role)+".sh.sql.gz")
				args := "mariadb-dump --no-defaults -uroot -S " + srv.Socket + " " + flags
				if role == Seafile {
					for _, lt := range LiveTables {
						args += " --ignore-table=" + p.dbs[role] + "." + lt
					}
				}
				sh(t, args+" "+p.dbs[role]+" | gzip > "+out)
			}
			shDumps = append(shDumps, time.Since(t0))

			t0 = time.Now()
			for _, role := range Roles {
				target := mariadbtest.DBName(t)
				must(t, srv.CreateDatabase(target))
				sh(t, "gunzip -c "+filepath.Join(dir, string(role)+".sh.sql.gz")+" | mariadb --no-defaults -uroot -S "+srv.Socket+" --binary-mode --default-character-set=utf8mb4 "+target)
			}
			shLoads = append(shLoads, time.Since(t0))
		}
		if i%2 == 1 {
			bare()
		}
		t0 := time.Now()
		s, err := Run(context.Background(), Options{Dir: dir, Keep: 1, Databases: p.databases("", "")})
		must(t, err)
		runs = append(runs, time.Since(t0))
		set = s

		t0 = time.Now()
		for _, role := range Roles {
			target := mariadbtest.DBName(t)
			must(t, srv.CreateDatabase(target))
			must(t, Load(context.Background(), set, role, rootConfig(target)))
		}
		loads = append(loads, time.Since(t0))

		if i%2 == 0 {
			bare()
		}
	}
	var sql, gz int64
	for _, f := range set.Manifest.Files {
		sql += f.SQLSize
		gz += f.Size
	}
	t.Logf("%d rows per table, %d B SQL, %d B gz", testRows(), sql, gz)
	t.Logf("Run           %s", stats(runs))
	t.Logf("mariadb-dump|gzip %s", stats(shDumps))
	t.Logf("Load          %s", stats(loads))
	t.Logf("gunzip|mariadb %s", stats(shLoads))
}

func dumpFlagsOf(t *testing.T) []string {
	tl, err := findTool(context.Background(), "", "mariadb-dump")
	must(t, err)
	return tl.dumpFlags()
}

func joinFlags(f []string) string {
	s := ""
	for _, x := range f {
		s += " " + x
	}
	return s
}

func sh(t *testing.T, cmd string) {
	t.Helper()
	out, err := exec.Command("bash", "-c", "set -o pipefail; "+cmd).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", cmd, err, out)
	}
}

func stats(d []time.Duration) string {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2].Round(time.Millisecond).String() + " [" + s[0].Round(time.Millisecond).String() + ".." + s[len(s)-1].Round(time.Millisecond).String() + "]"
}
