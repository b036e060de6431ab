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
	pctx, cancel := context.WithTimeout(ctx, max(15*time.Second, c.Timeout+c.ReadTimeout))
	defer cancel()
	if err := db.PingContext(pctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("%s database %s at %s: %w", what, c.DBName, c.Addr, err)
	}
	return db, nil
}
