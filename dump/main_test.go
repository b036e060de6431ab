package dump

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"seafbak/internal/mariadbtest"
)

var srv *mariadbtest.Server

// helperEnv makes the test binary a dump process (see runHelper) instead of a test run.
const helperEnv = "SEAFBAK_DUMP_TEST_HELPER"

func TestMain(m *testing.M) {
	if arg := os.Getenv(helperEnv); arg != "" {
		runHelper(arg)
		return
	}
	mariadbtest.Main(m, &srv)
}

// helperArgs tell a helper process what to dump.
type helperArgs struct {
	Dir  string            `json:"dir"`
	DSNs map[string]string `json:"dsns"`
}

// runHelper runs one dump and exits: 0 when a set was made. Tests kill it mid-way.
func runHelper(arg string) {
	var a helperArgs
	if err := json.Unmarshal([]byte(arg), &a); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	opts := Options{Dir: a.Dir, Databases: map[Role]*mysql.Config{}}
	for role, dsn := range a.DSNs {
		cfg, err := mysql.ParseDSN(dsn)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(3)
		}
		opts.Databases[Role(role)] = cfg
	}
	set, err := Run(context.Background(), opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(set.Name)
	os.Exit(0)
}

// ---- databases with data ----

// seahubSchema is a small stand-in for Seahub's Django database: a foreign key, binary
// and JSON columns, microsecond datetimes, decimals, doubles.
const seahubSchema = "" +
	"CREATE TABLE `auth_user` (`id` int(11) NOT NULL AUTO_INCREMENT, `password` varchar(128) NOT NULL," +
	" `last_login` datetime(6) DEFAULT NULL, `is_superuser` tinyint(1) NOT NULL, `username` varchar(150) NOT NULL," +
	" PRIMARY KEY (`id`), UNIQUE KEY `username` (`username`)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;\n" +
	"CREATE TABLE `base_profile` (`id` int(11) NOT NULL AUTO_INCREMENT, `user_id` int(11) NOT NULL," +
	" `nickname` varchar(64) NOT NULL, `intro` longtext NOT NULL, `avatar_png` longblob DEFAULT NULL," +
	" `digest` binary(32) DEFAULT NULL, `token` varbinary(40) DEFAULT NULL, `balance` decimal(12,4) DEFAULT NULL," +
	" `score` double DEFAULT NULL, `settings` json DEFAULT NULL, `created_at` timestamp(6) NULL DEFAULT NULL," +
	" `birthday` date DEFAULT NULL, PRIMARY KEY (`id`), KEY `user_id` (`user_id`)," +
	" CONSTRAINT `base_profile_user_fk` FOREIGN KEY (`user_id`) REFERENCES `auth_user` (`id`))" +
	" ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;\n" +
	"CREATE TABLE `django_session` (`session_key` varchar(40) NOT NULL, `session_data` longtext NOT NULL," +
	" `expire_date` datetime(6) NOT NULL, PRIMARY KEY (`session_key`), KEY `django_session_expire_date` (`expire_date`))" +
	" ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;\n"

// primary is a test's ccnet, seafile and seahub databases, filled with rows.
type primary struct {
	dbs map[Role]string // role -> database name
}

var userCounter atomic.Int64

// newPrimary creates the three databases with rows rows in every table.
func newPrimary(t *testing.T, rows int) primary {
	t.Helper()
	p := primary{dbs: map[Role]string{}}
	for _, role := range Roles {
		name := mariadbtest.DBName(t) + "_" + string(role)
		var err error
		switch role {
		case Ccnet:
			err = srv.CreateDatabase(name, mariadbtest.SchemaFile("ccnet.sql"))
		case Seafile:
			err = srv.CreateDatabase(name, mariadbtest.SchemaFile("seafile.sql"))
		case Seahub:
			err = srv.CreateDatabase(name, writeTemp(t, "seahub.sql", seahubSchema))
		}
		if err != nil {
			t.Fatal(err)
		}
		p.dbs[role] = name
		fillAll(t, name, rows, "primary")
	}
	return p
}

func writeTemp(t *testing.T, name, text string) string {
	t.Helper()
	p := t.TempDir() + "/" + name
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func openTestDB(t *testing.T, name string) *sql.DB {
	t.Helper()
	db, err := srv.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

type column struct {
	name, dataType, columnType string
	maxLen                     sql.NullInt64
	nullable, autoInc          bool
}

func columns(t *testing.T, db *sql.DB, dbName, table string) []column {
	t.Helper()
	rows, err := db.Query(`SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, CHARACTER_MAXIMUM_LENGTH, IS_NULLABLE, EXTRA
		FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION`, dbName, table)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var cols []column
	for rows.Next() {
		var c column
		var nullable, extra string
		if err := rows.Scan(&c.name, &c.dataType, &c.columnType, &c.maxLen, &nullable, &extra); err != nil {
			t.Fatal(err)
		}
		c.nullable = nullable == "YES"
		c.autoInc = strings.Contains(extra, "auto_increment")
		cols = append(cols, c)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return cols
}

func tables(t *testing.T, db *sql.DB) []string {
	t.Helper()
	names, err := mariadbtest.Tables(db)
	if err != nil {
		t.Fatal(err)
	}
	return names
}

var samples = []string{
	"Ünïcødé ✓ 中文 😀 עברית Ελληνικά",
	`quote ' dq " bs \ pct % us _ bq ` + "`",
	"line1\nline2\r\nline3\ttab",
	"x\n'; DROP TABLE `Repo`; --\nDROP TABLE `Repo`;",
	"nul \x00 ctrl-z \x1a end",
	"/*M!999999\\- enable the sandbox mode */",
}

// value is row i's value for column c; tag makes different databases' rows differ.
func value(c column, i int, tag string) any {
	if i == 0 && c.nullable {
		return nil
	}
	base := int64(i) + 1
	switch c.dataType {
	case "bigint":
		if strings.Contains(c.columnType, "unsigned") {
			return uint64(1<<64-1) - uint64(i)
		}
		return base * 1_000_000_007
	case "int", "mediumint":
		return base * 7919
	case "smallint":
		return base
	case "tinyint":
		if c.columnType == "tinyint(1)" {
			return i % 2
		}
		return i % 100
	case "decimal":
		return fmt.Sprintf("%d.%04d", -base*37, i%10000)
	case "double", "float":
		return float64(base) * 3.141592653589793
	case "datetime", "timestamp":
		return time.Date(2020+i%5, time.Month(1+i%12), 1+i%28, i%24, i%60, i%60, (i*7919%1000000)*1000, time.UTC).Format("2006-01-02 15:04:05.000000")
	case "date":
		return time.Date(1990+i%30, time.Month(1+i%12), 1+i%28, 0, 0, 0, 0, time.UTC).Format("2006-01-02")
	case "blob", "longblob", "mediumblob", "varbinary", "binary":
		n := 300
		if c.maxLen.Valid && c.maxLen.Int64 < int64(n) {
			n = int(c.maxLen.Int64)
		}
		b := make([]byte, n)
		if i == 1 && n >= 256 {
			for j := range 256 {
				b[j] = byte(j)
			}
		} else {
			rand.Read(b)
		}
		return b
	case "longtext", "mediumtext", "text":
		if strings.Contains(c.name, "settings") { // the json column
			v, _ := json.Marshal(map[string]any{"k": samples[i%len(samples)], "n": i, "tag": tag})
			return string(v)
		}
		return fmt.Sprintf("%d:%s:%s", i, tag, strings.Repeat(samples[i%len(samples)], 40))
	case "char", "varchar":
		s := []rune(fmt.Sprintf("%d:%s:%s", i, tag, samples[i%len(samples)]))
		if c.maxLen.Valid && int64(len(s)) > c.maxLen.Int64 {
			s = s[:c.maxLen.Int64]
		}
		return string(s)
	}
	panic("no test value for column type " + c.columnType)
}

// fillAll puts rows rows in every table of database name.
func fillAll(t *testing.T, name string, rows int, tag string) {
	t.Helper()
	db := openTestDB(t, name)
	for _, table := range tables(t, db) {
		fill(t, db, name, table, rows, tag)
	}
}

func fill(t *testing.T, db *sql.DB, dbName, table string, rows int, tag string) {
	t.Helper()
	cols := columns(t, db, dbName, table)
	names := make([]string, len(cols))
	marks := make([]string, len(cols))
	for i, c := range cols {
		names[i] = "`" + c.name + "`"
		marks[i] = "?"
	}
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "SET FOREIGN_KEY_CHECKS=0"); err != nil {
		t.Fatal(err)
	}
	q := "INSERT INTO `" + table + "` (" + strings.Join(names, ",") + ") VALUES (" + strings.Join(marks, ",") + ")"
	for i := range rows {
		args := make([]any, len(cols))
		for j, c := range cols {
			args[j] = value(c, i, tag)
		}
		if _, err := conn.ExecContext(ctx, q, args...); err != nil {
			t.Fatalf("fill %s.%s row %d: %v", dbName, table, i, err)
		}
	}
	if _, err := conn.ExecContext(ctx, "SET FOREIGN_KEY_CHECKS=1"); err != nil {
		t.Fatal(err)
	}
}

// tableState is a table's definition and rows, sorted, for comparison.
type tableState struct {
	create string
	rows   []string
}

func snapshot(t *testing.T, db *sql.DB, table string) tableState {
	t.Helper()
	var name, create string
	if err := db.QueryRow("SHOW CREATE TABLE `"+table+"`").Scan(&name, &create); err != nil {
		t.Fatal(err)
	}
	rows, err := mariadbtest.TableRows(db, table)
	if err != nil {
		t.Fatal(err)
	}
	return tableState{create: create, rows: rows}
}

func (a tableState) diff(b tableState) string {
	if a.create != b.create {
		return fmt.Sprintf("definitions differ:\n%s\n---\n%s", a.create, b.create)
	}
	if len(a.rows) != len(b.rows) {
		return fmt.Sprintf("%d rows, want %d", len(b.rows), len(a.rows))
	}
	for i := range a.rows {
		if a.rows[i] != b.rows[i] {
			return fmt.Sprintf("row %d differs:\n%.300s\n---\n%.300s", i, a.rows[i], b.rows[i])
		}
	}
	return ""
}

func digest(rows []string) string {
	h := sha256.New()
	for _, r := range rows {
		h.Write([]byte(r))
	}
	return fmt.Sprintf("%x", h.Sum(nil))[:12]
}

// ---- accounts ----

// user makes a password account (unique name) with grants on the given databases, and
// returns configs for it, by database.
func user(t *testing.T, password, privileges string, dbs ...string) (name string) {
	t.Helper()
	name = "u" + strconv.FormatInt(userCounter.Add(1), 10) + "_" + strconv.Itoa(os.Getpid()%10000)
	var grants []string
	for _, db := range dbs {
		grants = append(grants, privileges+" ON `"+db+"`.*")
	}
	if err := srv.CreateUser(name, password, grants...); err != nil {
		t.Fatal(err)
	}
	return name
}

func config(user, password, db string) *mysql.Config {
	cfg, err := mysql.ParseDSN(srv.UserDSN(user, password, db))
	if err != nil {
		panic(err)
	}
	return cfg
}

func rootConfig(db string) *mysql.Config {
	cfg, err := mysql.ParseDSN(srv.DSN(db))
	if err != nil {
		panic(err)
	}
	return cfg
}

// databases is Options.Databases for p, logging in as user.
func (p primary) databases(user, password string) map[Role]*mysql.Config {
	m := map[Role]*mysql.Config{}
	for role, db := range p.dbs {
		if user == "" {
			m[role] = rootConfig(db)
		} else {
			m[role] = config(user, password, db)
		}
	}
	return m
}

func testLogger(t *testing.T) *slogWriter { return &slogWriter{t: t} }

type slogWriter struct{ t *testing.T }

func (w *slogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
