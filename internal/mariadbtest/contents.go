package mariadbtest

import (
	"database/sql"
	"slices"
	"strconv"
	"strings"
)

// Tables lists the base tables of db's current database, sorted.
func Tables(db *sql.DB) ([]string, error) {
	rows, err := db.Query("SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE() AND table_type = 'BASE TABLE' ORDER BY table_name")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		names = append(names, n)
	}
	return names, rows.Err()
}

// TableRows reads every row of a table as one line of quoted values (NULL apart from
// the text "NULL"), sorted, so two databases' tables compare as string slices.
func TableRows(db *sql.DB, table string) ([]string, error) {
	rows, err := db.Query("SELECT * FROM `" + strings.ReplaceAll(table, "`", "``") + "`")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	var out []string
	vals := make([]sql.NullString, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		var b strings.Builder
		for _, v := range vals {
			if v.Valid {
				b.WriteString(strconv.Quote(v.String))
			} else {
				b.WriteString("NULL")
			}
			b.WriteByte(',')
		}
		out = append(out, b.String())
	}
	slices.Sort(out)
	return out, rows.Err()
}
