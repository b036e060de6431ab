package dbconn

import (
	"context"
	"sync"
	"testing"

	"github.com/go-sql-driver/mysql"

	"seafbak/internal/mariadbtest"
)

var srv *mariadbtest.Server

func TestMain(m *testing.M) { mariadbtest.Main(m, &srv) }

// Many queries at once (a scan's syncs each ask for their library's head) share at most
// MaxConns connections, kept between queries: the server's count of connections made
// grows by no more than that. Unbounded, 200 queries opened about 200, and a server
// with the default max_connections (151) refused some with Error 1040.
func TestOpenSharesABoundedPool(t *testing.T) {
	ctx := context.Background()
	name := mariadbtest.DBName(t)
	if err := srv.CreateDatabase(name); err != nil {
		t.Fatal(err)
	}
	observer, err := srv.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer observer.Close()
	observer.SetMaxOpenConns(1)
	made := func() int {
		var variable string
		var n int
		if err := observer.QueryRowContext(ctx, "SHOW GLOBAL STATUS LIKE 'Connections'").Scan(&variable, &n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	cfg, err := mysql.ParseDSN(srv.DSN(name))
	if err != nil {
		t.Fatal(err)
	}
	before := made()
	db, err := Open(ctx, "backup", cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for round := range 3 {
		var wg sync.WaitGroup
		errs := make(chan error, 200)
		for range 200 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var slept int
				errs <- db.QueryRowContext(ctx, "SELECT SLEEP(0.01)").Scan(&slept)
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		}
	}
	if n := made() - before; n > MaxConns {
		t.Fatalf("600 queries, 200 at a time, made %d connections, want at most %d", n, MaxConns)
	}
}
