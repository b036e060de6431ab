package dbconn

import (
	"errors"

	"github.com/go-sql-driver/mysql"
)

// MariaDB's (and MySQL's) error numbers that seafbak tells apart.
const (
	ErDBAccessDenied           = 1044 // ER_DBACCESS_DENIED_ERROR
	ErAccessDenied             = 1045 // ER_ACCESS_DENIED_ERROR
	ErAccessDeniedNoPassword   = 1698 // ER_ACCESS_DENIED_NO_PASSWORD_ERROR
	ErDupEntry                 = 1062 // ER_DUP_ENTRY
	ErTableAccessDenied        = 1142 // ER_TABLEACCESS_DENIED_ERROR
	ErColumnAccessDenied       = 1143 // ER_COLUMNACCESS_DENIED_ERROR
	ErNoSuchTable              = 1146 // ER_NO_SUCH_TABLE
	ErUnknownSystemVariable    = 1193 // ER_UNKNOWN_SYSTEM_VARIABLE
	ErCollationCharsetMismatch = 1253 // ER_COLLATION_CHARSET_MISMATCH
	ErUnknownCollation         = 1273 // ER_UNKNOWN_COLLATION
)

// ErrorNumber is the server's error number err carries, 0 for none.
func ErrorNumber(err error) uint16 {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return me.Number
	}
	return 0
}

// NoSuchTable reports whether err is the server's "table doesn't exist".
func NoSuchTable(err error) bool { return ErrorNumber(err) == ErNoSuchTable }
