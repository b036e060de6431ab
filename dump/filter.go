package dump

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
)

// sandboxLine is what MariaDB 10.11's mariadb-dump (and later) writes as the first line
// of every dump. MariaDB's own client switches into sandbox mode on it; MySQL's client
// and older MariaDB clients reject it ("Unknown command '\-'"), so sets never contain it.
const sandboxLine = `/*M!999999\- enable the sandbox mode */`

// trailerPrefix starts the last line of a dump that mariadb-dump and mysqldump finished
// (with comments on, as Run asks for).
const trailerPrefix = "-- Dump completed"

// headMax is how much of each line the filter looks at.
const headMax = 160

// sqlFilter passes a dump's SQL through to an io.Writer, line by line:
//   - it drops the sandbox line when it is the first line;
//   - it refuses any line that would switch database (USE, CREATE DATABASE), so a dump
//     only ever loads into the database it is given;
//   - it refuses statements about the protected tables (the seafile database's live
//     Repo, Branch, RepoHead), so no dump can drop or fill them;
//   - it keeps the end of the stream, so Close can check the dump's closing comment.
//
// Only the first headMax bytes of each line are inspected; the rest (the long extended
// INSERT lines) streams through untouched. A mariadb-dump/mysqldump line never starts
// inside a string value: newlines in values are written as \n.
type sqlFilter struct {
	out     *bufio.Writer
	protect []string // table names, compared case-insensitively
	head    []byte   // the start of the current line, not yet passed on
	midLine bool     // the current line's head was inspected and passed on
	lines   int64
	n       int64  // bytes read from the dump
	dropped int64  // bytes of the dropped sandbox line
	tail    []byte // the last bytes read
	err     error
	// collations are those the dump's CREATE TABLEs name (columns, table options), as
	// far as each line's head shows: a server without one cannot load the dump.
	collations map[string]bool
}

func newSQLFilter(w io.Writer, protect []string) *sqlFilter {
	return &sqlFilter{out: bufio.NewWriterSize(w, 64<<10), protect: protect, head: make([]byte, 0, headMax)}
}

func (f *sqlFilter) Write(p []byte) (int, error) {
	if f.err != nil {
		return 0, f.err
	}
	n := len(p)
	f.n += int64(n)
	f.keepTail(p)
	for len(p) > 0 {
		if f.midLine {
			i := bytes.IndexByte(p, '\n')
			if i < 0 {
				if _, err := f.out.Write(p); err != nil {
					f.err = err
					return 0, err
				}
				return n, nil
			}
			if _, err := f.out.Write(p[:i+1]); err != nil {
				f.err = err
				return 0, err
			}
			p = p[i+1:]
			f.midLine = false
			continue
		}
		chunk := p
		if i := bytes.IndexByte(p, '\n'); i >= 0 {
			chunk = p[:i+1]
		}
		if room := headMax - len(f.head); len(chunk) > room {
			chunk = chunk[:room]
		}
		f.head = append(f.head, chunk...)
		p = p[len(chunk):]
		ended := f.head[len(f.head)-1] == '\n'
		if !ended && len(f.head) < headMax {
			return n, nil // need more of this line
		}
		if err := f.flushHead(ended); err != nil {
			f.err = err
			return 0, err
		}
	}
	return n, nil
}

// flushHead inspects the buffered start of a line and passes it on.
func (f *sqlFilter) flushHead(ended bool) error {
	f.lines++
	line := f.head
	if f.lines == 1 && ended && strings.TrimSpace(string(line)) == sandboxLine {
		f.dropped += int64(len(line))
		f.head = f.head[:0]
		return nil
	}
	if err := f.check(line, !ended); err != nil {
		return err
	}
	if _, err := f.out.Write(line); err != nil {
		return err
	}
	f.head = f.head[:0]
	f.midLine = !ended
	return nil
}

// guarded are the statement starts that name a table first; the dump writes each of
// them at the start of a line (ALTER TABLE inside /*!40000 ... */).
var guarded = []string{
	"DROP TABLE", "CREATE OR REPLACE TABLE", "CREATE TABLE", "INSERT IGNORE INTO", "INSERT INTO", "REPLACE INTO",
	"LOCK TABLES", "ALTER TABLE", "TRUNCATE TABLE", "TRUNCATE", "RENAME TABLE", "DELETE FROM", "UPDATE",
}

// check refuses a line that switches database or touches a protected table.
//
// What it can see is each line's head, as mariadb-dump and mysqldump write it: one
// statement a line, names in backticks, rows on the line of their INSERT. A line it is
// not sure of (a name unquoted or qualified, a guarded statement without its name,
// several statements) is refused; what a row's strings hold is not looked at. It is a
// guard against a dump of the wrong database or tables, not against a set rewritten on
// purpose: that is the SHA-256s of the manifest, in a directory only seafbak's user
// can write.
func (f *sqlFilter) check(line []byte, cut bool) error {
	s := strings.TrimLeft(string(line), " \t")
	if s != "" && (s[0] == ')' || s[0] == '`') {
		f.noteCollations(s, cut) // a column of a CREATE TABLE, or its options
		return nil
	}
	if s == "" || s[0] == '(' || s[0] == '-' {
		return nil // a row of an INSERT, a comment
	}
	if hasPrefixFold(s, "INSERT") || hasPrefixFold(s, "REPLACE") {
		return f.checkStatement(s) // its rows follow on the line, strings and all
	}
	for part := range strings.SplitSeq(s, ";") {
		if err := f.checkStatement(part); err != nil {
			return err
		}
	}
	return nil
}

// checkStatement checks one statement of a line (see check).
func (f *sqlFilter) checkStatement(s string) error {
	s = strings.TrimLeft(s, " \t\r\n")
	// A versioned comment: /*!40000 ALTER TABLE `x` DISABLE KEYS */ or /*M!100101 ...
	if rest, ok := strings.CutPrefix(s, "/*!"); ok {
		s = strings.TrimLeft(rest, "0123456789 ")
	} else if rest, ok := strings.CutPrefix(s, "/*M!"); ok {
		s = strings.TrimLeft(rest, "0123456789 ")
	}
	if hasPrefixFold(s, "USE") && (len(s) == 3 || !isNameByte(s[3])) || hasPrefixFold(s, "CREATE DATABASE") || hasPrefixFold(s, "CREATE SCHEMA") {
		return fmt.Errorf("line %d switches database (%.60q); a dump must load into the database it is given", f.lines, strings.TrimSpace(s))
	}
	if len(f.protect) == 0 {
		return nil
	}
	for _, g := range guarded {
		if !hasPrefixFold(s, g) || len(s) > len(g) && isNameByte(s[len(g)]) {
			continue
		}
		rest := strings.TrimLeft(s[len(g):], " \t")
		for _, skip := range []string{"IF EXISTS", "IF NOT EXISTS", "IGNORE"} {
			if hasPrefixFold(rest, skip) {
				rest = strings.TrimLeft(rest[len(skip):], " \t")
			}
		}
		unsure := func(why string) error {
			return fmt.Errorf("line %d: %s (%.60q), which mariadb-dump does not write; a dump must not touch Repo, Branch or RepoHead, and this line may", f.lines, why, strings.TrimSpace(s))
		}
		live := func(table string) error {
			for _, p := range f.protect {
				if strings.EqualFold(table, p) {
					return fmt.Errorf("line %d touches the live table %s (%.60q); Repo, Branch and RepoHead must never be in a dump", f.lines, table, strings.TrimSpace(s))
				}
			}
			return nil
		}
		if rest == "" {
			return unsure("a table name not on the line")
		}
		if rest[0] != '`' {
			// Unquoted: trigger and routine bodies are dumped as they were written.
			n := 0
			for n < len(rest) && isNameByte(rest[n]) {
				n++
			}
			if n < len(rest) && rest[n] == '.' {
				return unsure("a name qualified by its database")
			}
			return live(rest[:n])
		}
		// Every name in backticks on the line: RENAME TABLE names several.
		for q := rest; ; {
			i := strings.IndexByte(q, '`')
			if i < 0 {
				break
			}
			j := strings.IndexByte(q[i+1:], '`')
			if j < 0 {
				break
			}
			table := q[i+1 : i+1+j]
			q = q[i+1+j+1:]
			if strings.HasPrefix(q, ".") {
				return unsure("a name qualified by its database")
			}
			if err := live(table); err != nil {
				return err
			}
			if g != "RENAME TABLE" {
				break
			}
		}
		return nil
	}
	return nil
}

// isNameByte reports whether b can continue an unquoted SQL name.
func isNameByte(b byte) bool {
	return b == '_' || b == '$' || b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b >= 0x80
}

// maxCollations bounds what one dump can make the filter keep.
const maxCollations = 64

// noteCollations keeps the collation names a CREATE TABLE line gives: "COLLATE
// utf8mb4_bin" on a column, "COLLATE=utf8mb4_uca1400_ai_ci" in the table's options.
// Only names of letters, digits and '_' are kept; they go into a query later. It reads
// up to the line's first string (a COMMENT or DEFAULT may say anything), and when the
// head it sees is cut short (cut), not a name that runs into its end: a failover
// refused for a collation "utf8mb4_un" could never be mended.
func (f *sqlFilter) noteCollations(s string, cut bool) {
	if i := strings.IndexByte(s, '\''); i >= 0 {
		s, cut = s[:i], false
	}
	for {
		i := strings.Index(s, "COLLATE")
		if i < 0 {
			return
		}
		after := s[i+len("COLLATE"):]
		if i > 0 && s[i-1] != ' ' || after != "" && after[0] != ' ' && after[0] != '=' {
			s = after // part of another word
			continue
		}
		s = strings.TrimLeft(after, " =")
		n := 0
		for n < len(s) && (s[n] == '_' || s[n] >= 'a' && s[n] <= 'z' || s[n] >= 'A' && s[n] <= 'Z' || s[n] >= '0' && s[n] <= '9') {
			n++
		}
		if cut && n == len(s) {
			return
		}
		if n > 0 && n <= 64 && len(f.collations) < maxCollations {
			if f.collations == nil {
				f.collations = map[string]bool{}
			}
			f.collations[strings.ToLower(s[:n])] = true
		}
		s = s[n:]
	}
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// size is how many bytes the filter passed on (or will, once closed).
func (f *sqlFilter) size() int64 { return f.n - f.dropped }

func (f *sqlFilter) keepTail(p []byte) {
	const keep = 256
	if len(p) >= keep {
		f.tail = append(f.tail[:0], p[len(p)-keep:]...)
		return
	}
	f.tail = append(f.tail, p...)
	if len(f.tail) > keep {
		f.tail = append(f.tail[:0], f.tail[len(f.tail)-keep:]...)
	}
}

// errNoTrailer means the stream ended without the dump tool's closing comment.
var errNoTrailer = errors.New("the dump does not end with \"" + trailerPrefix + "\": it is incomplete")

// Close passes on what is buffered and checks that the dump ended with the dump tool's
// closing comment. It does not close the underlying writer.
func (f *sqlFilter) Close() error {
	if f.err != nil {
		return f.err
	}
	if len(f.head) > 0 {
		if err := f.flushHead(false); err != nil {
			f.err = err
			return err
		}
	}
	if err := f.out.Flush(); err != nil {
		f.err = err
		return err
	}
	t := bytes.TrimRight(f.tail, " \t\r\n")
	if i := bytes.LastIndexByte(t, '\n'); i >= 0 {
		t = t[i+1:]
	}
	if !bytes.HasPrefix(t, []byte(trailerPrefix)) {
		f.err = errNoTrailer
		return f.err
	}
	return nil
}
