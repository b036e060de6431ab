package dump

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"seafbak/internal/mariadbtest"
)

// A set made while the clock ran ahead (NTP not synced at boot, a VM restored from a
// snapshot) is named in the future. It sorted first for ever: it took a place of
// dump.keep from every newer set, and Latest kept returning it. Now it is kept but not
// counted, and LatestBefore(now) passes over it (restore server's default).
func TestASetDatedInTheFutureTakesNoPlaceOfNewerOnes(t *testing.T) {
	db := mariadbtest.DBName(t)
	must(t, srv.CreateDatabase(db, mariadbtest.SchemaFile("seafile.sql")))
	fillAll(t, db, 2, "k")
	dir := t.TempDir()
	opts := Options{Dir: dir, Keep: 2, Databases: map[Role]*mysql.Config{Seafile: rootConfig(db)}}
	a, err := Run(context.Background(), opts)
	must(t, err)
	const future = "2099-06-01T00-00-00Z"
	must(t, os.Rename(a.Dir, filepath.Join(dir, future)))
	var made []string
	for range 3 {
		s, err := Run(context.Background(), opts)
		must(t, err)
		made = append(made, s.Name)
	}
	want := []string{made[1], made[2], future}
	if got := dirNames(t, dir); !slices.Equal(got, want) {
		t.Errorf("dir holds %v, want the two newest sets and the future one %v", got, want)
	}
	s, ahead, err := LatestBefore(dir, time.Now().Add(5*time.Minute))
	must(t, err)
	if s.Name != made[2] || len(ahead) != 1 || ahead[0].Name != future {
		t.Errorf("LatestBefore: %s, passing over %v; want %s, passing over %s", s.Name, ahead, made[2], future)
	}
}
