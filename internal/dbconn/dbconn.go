// Package dbconn opens seafbak's connections to MariaDB/MySQL servers from checked
// configs (package config sets their socket deadlines from db_timeout).
package dbconn

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/go-sql-driver/mysql"
)

// MaxConns bounds the connections of each pool Open returns. A scan or a watch round
// runs hundreds of syncs at once, and each asks the backup database for its library's
// head: unbounded, they opened a connection each, and past the server's
// max_connections (151 by default) syncs failed with "Error 1040: Too many
// connections". The primary's database is Seafile's own, which must keep connections
// for Seafile. Queries wait for one of these connections instead; all of them are kept
// between queries (database/sql keeps 2 by default), so a busy round does not connect
// anew for each query.
const MaxConns = 8

// maxIdle is how long a pooled connection may stay unused before it is closed: after a
// burst, a long-running watch keeps only what its polls use.
const maxIdle = time.Minute

// Open connects with c and pings; errors name what the database is for (what, e.g.
// "primary") and never show the password. Every query on the pool is bounded by c's
// socket deadlines, so a server that stops answering fails the query instead of hanging
// it (and a library lock its caller holds); the first ping is bounded by them too, but
// at least 15 s, so a server that is starting up is not mistaken for a dead one.
func Open(ctx context.Context, what string, c *mysql.Config) (*sql.DB, error) {
	conn, err := mysql.NewConnector(c)
	if err != nil {
		return nil, fmt.Errorf("%s database: %w", what, err)
	}
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(MaxConns)
	db.SetMaxIdleConns(MaxConns)
	db.SetConnMaxIdleTime(maxIdle)
	pctx, cancel := context.WithTimeout(ctx, max(15*time.Second, c.Timeout+c.ReadTimeout))
	defer cancel()
	if err := db.PingContext(pctx); err != nil {
		db.Close()
		if c.DBName == "" { // a connection to the server, to create databases
			return nil, &ConnectError{What: what, Err: fmt.Errorf("%s database server at %s: %w", what, c.Addr, err)}
		}
		return nil, &ConnectError{What: what, Err: fmt.Errorf("%s database %s at %s: %w", what, c.DBName, c.Addr, err)}
	}
	return db, nil
}

// ConnectError is a database that could not be reached, or refused the account: What
// names it ("primary", "backup") for the hint that names the config key to fix.
type ConnectError struct {
	What string
	Err  error
}

func (e *ConnectError) Error() string { return e.Err.Error() }
func (e *ConnectError) Unwrap() error { return e.Err }

// AccessDenied reports whether the server refused the account (a wrong user or
// password; 1698: a socket-authenticated user given a password).
func AccessDenied(err error) bool {
	n := ErrorNumber(err)
	return n == ErAccessDenied || n == ErAccessDeniedNoPassword
}
