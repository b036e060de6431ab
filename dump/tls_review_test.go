package dump

import (
	"strings"
	"testing"

	"github.com/go-sql-driver/mysql"
)

// Found by review: a primary.db DSN without tls= makes the Go driver connect in plain text,
// and every check (server identity, live tables) passes that way; but defaultsText
// then says nothing about TLS, leaving it to the client's default. MariaDB's clients
// from 11.4 on (Debian 13's mariadb-client is 11.8) default to ssl with
// ssl-verify-server-cert, and against a primary without TLS (Seafile's stock
// mariadb:10.11 container) fail every connection with "ERROR 2026: TLS/SSL error: SSL
// is required, but the server does not support it": every nightly dump fails (exit 1),
// and so does restore server's load over TCP. The tools must connect as the Go driver
// does: no tls= is tls=false.
func TestNoTLSInTheDSNIsNoTLSForTheTools(t *testing.T) {
	mariadb := &tool{path: "mariadb-dump", mariadb: true}
	cfg, err := mysql.ParseDSN("seafbak:pw@tcp(db:3306)/seafile_db")
	must(t, err)
	text, err := defaultsText(cfg, mariadb)
	must(t, err)
	if !strings.Contains(text, "skip-ssl") {
		t.Errorf("defaults for a DSN the Go driver reads as plain text (no tls=) leave TLS to the client's default (on, verified, from MariaDB 11.4):\n%s", text)
	}
}
