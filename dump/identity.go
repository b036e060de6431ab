package dump

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"seafbak/internal/dbconn"
)

// Identity is what tells one MariaDB/MySQL server from another. A restore compares the
// server it is about to write to with the primary's, and refuses when Same says they
// are one server.
//
// No single variable identifies a server on both MariaDB and MySQL:
//   - MySQL (5.6+) has @@server_uuid, generated once per datadir (auto.cnf). A copied
//     datadir keeps it; deleting auto.cnf changes it.
//   - MariaDB has no server_uuid. Its @@server_uid is a hash of a MAC address and the
//     TCP port, so two servers on one host with networking off (port 0) share it.
//   - @@server_id is a replication setting that defaults to 1 everywhere: useless here.
//
// So Identity keeps all of them plus @@hostname, @@port and @@datadir, and Same leans to
// "same" (see there): wrongly refusing a restore is recoverable, restoring over the
// primary is not.
type Identity struct {
	ServerUUID string `json:"server_uuid,omitempty"` // MySQL's @@server_uuid
	ServerUID  string `json:"server_uid,omitempty"`  // MariaDB's @@server_uid
	Hostname   string `json:"hostname"`              // @@hostname: the OS host name of the server
	Port       int    `json:"port"`                  // @@port (0 with skip-networking)
	Datadir    string `json:"datadir"`               // @@datadir
	Version    string `json:"version"`               // @@version, e.g. 10.11.19-MariaDB-0+deb12u1
}

// ServerIdentity asks the server behind db who it is. Any account can read these
// variables; no privilege is needed.
func ServerIdentity(ctx context.Context, db *sql.DB) (Identity, error) {
	var id Identity
	var host, datadir, version sql.NullString
	var port sql.NullInt64
	err := db.QueryRowContext(ctx, "SELECT @@hostname, @@port, @@datadir, @@version").Scan(&host, &port, &datadir, &version)
	if err != nil {
		return id, fmt.Errorf("server identity: %w", err)
	}
	id.Hostname, id.Port, id.Datadir, id.Version = host.String, int(port.Int64), datadir.String, version.String
	if id.ServerUUID, err = optionalVariable(ctx, db, "server_uuid"); err != nil {
		return id, err
	}
	if id.ServerUID, err = optionalVariable(ctx, db, "server_uid"); err != nil {
		return id, err
	}
	return id, nil
}

// optionalVariable reads a global variable this server may not have ("" then).
func optionalVariable(ctx context.Context, db *sql.DB, name string) (string, error) {
	var v sql.NullString
	err := db.QueryRowContext(ctx, "SELECT @@GLOBAL."+name).Scan(&v)
	if dbconn.ErrorNumber(err) == dbconn.ErUnknownSystemVariable {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("server identity: @@%s: %w", name, err)
	}
	return v.String, nil
}

// Same reports whether a and b may be the same server. It is true when
//   - both have the same @@server_uuid (MySQL), or
//   - they have the same @@datadir and either the same @@hostname and @@port, or the
//     same @@server_uid (MariaDB: a renamed host keeps its MAC address and port).
//
// Two different machines with the same host name, port and datadir count as the same
// (a false "same"; a restore should let an operator override it). A server that kept
// neither its host name, datadir, uuid nor MAC address counts as a different one.
func (a Identity) Same(b Identity) bool {
	if a.ServerUUID != "" && a.ServerUUID == b.ServerUUID {
		return true
	}
	if a.Datadir == "" || a.Datadir != b.Datadir {
		return false
	}
	if a.Hostname != "" && a.Hostname == b.Hostname && a.Port == b.Port {
		return true
	}
	return a.ServerUID != "" && a.ServerUID == b.ServerUID
}

// String names the server for messages, e.g. "vm:3306 /var/lib/mysql/ (10.11.19-MariaDB)".
func (a Identity) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s:%d %s", a.Hostname, a.Port, a.Datadir)
	if a.ServerUUID != "" {
		fmt.Fprintf(&b, " uuid %s", a.ServerUUID)
	}
	if a.Version != "" {
		fmt.Fprintf(&b, " (%s)", a.Version)
	}
	return b.String()
}

// MissingCollations returns those of names the server behind db does not know. Each
// is asked of the server itself, which also resolves its aliases (MariaDB 11.4 knows
// MySQL 8's utf8mb4_0900_ai_ci as one). names must be letters, digits and '_', as
// VerifyCollations gives them.
func MissingCollations(ctx context.Context, db *sql.DB, names []string) ([]string, error) {
	var missing []string
	for _, name := range names {
		if name == "" || strings.Trim(name, "abcdefghijklmnopqrstuvwxyz0123456789_") != "" {
			return nil, fmt.Errorf("collation %q: not a collation name", name)
		}
		var v sql.NullString
		err := db.QueryRowContext(ctx, "SELECT _utf8mb4'' COLLATE `"+name+"`").Scan(&v) // quoted: binary is a keyword
		switch dbconn.ErrorNumber(err) {
		case 0:
			if err != nil {
				return nil, fmt.Errorf("collation %s: %w", name, err)
			}
		case dbconn.ErCollationCharsetMismatch: // known, for another charset
		case dbconn.ErUnknownCollation:
			missing = append(missing, name)
		default:
			return nil, fmt.Errorf("collation %s: %w", name, err)
		}
	}
	return missing, nil
}
