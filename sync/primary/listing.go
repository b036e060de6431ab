package primary

import (
	"context"
	"database/sql"
	"fmt"
	"hash/crc32"
	"strconv"
	"time"
)

// Libraries lists every library with a master branch: what libraryQuery says of each,
// read a table at a time in one read-only snapshot and joined here.
//
// MariaDB answers libraryQuery with a nested loop of index lookups, some 3 µs each, eight
// per library: 2.24 s for 100 000 libraries, which every scan, status and poll of a
// watch paid. Reading the seven tables whole and joining them here takes 0.57 s
// (BenchmarkLibraries). The snapshot (repeatable read) makes the seven reads one view of
// the database, as one query was.
func (d *DB) Libraries(ctx context.Context) ([]Library, error) {
	libs, _, err := d.list(ctx)
	return libs, err
}

// Print sums up what a listing depends on: the rows of Repo and RepoInfo (how many),
// of VirtualRepo (how many, and a CRC-32 of each id and origin, XORed together) and
// every master Branch row (how many, and two CRC-32s of each library's id and head). A
// library added, removed, made virtual or moved to a new head changes it; a rename or a
// new owner alone does not. The zero Print matches none.
type Print struct {
	valid          bool
	repos, infos   int64
	virtuals       int64
	idOrigin       uint32
	branches       int64
	idHead, headID uint32
}

// printQuery computes a Print in the database, as the listing does from the rows.
const printQuery = `SELECT (SELECT COUNT(*) FROM Repo), (SELECT COUNT(*) FROM RepoInfo),
	(SELECT COUNT(*) FROM VirtualRepo), (SELECT COALESCE(BIT_XOR(CRC32(CONCAT(repo_id, origin_repo))), 0) FROM VirtualRepo),
	COUNT(*), COALESCE(BIT_XOR(CRC32(CONCAT(repo_id, commit_id))), 0), COALESCE(BIT_XOR(CRC32(CONCAT(commit_id, repo_id))), 0)
FROM Branch WHERE name = 'master'`

// LibrariesSince lists the libraries unless the primary's Print still equals since (a
// Print it returned): then it lists nothing and reports changed false. Computing the
// Print costs three counts and a scan of the Branch table in the database, 132 ms at
// 100 000 libraries against 0.57 s for a listing, so a watch polling a quiet server
// every 2 s does not list it all each time. A catalog that cannot tell (not the
// primary's database) always lists.
func LibrariesSince(ctx context.Context, c Catalog, since Print) (libs []Library, p Print, changed bool, err error) {
	if cl, ok := c.(sinceLister); ok {
		return cl.LibrariesSince(ctx, since)
	}
	libs, err = c.Libraries(ctx)
	return libs, Print{}, true, err
}

// sinceLister is a Catalog that can tell whether its libraries changed since a Print.
// The catalogs that can are held to it here, so that a changed signature fails the build
// rather than quietly list everything at every poll.
type sinceLister interface {
	LibrariesSince(ctx context.Context, since Print) ([]Library, Print, bool, error)
}

var (
	_ sinceLister = (*DB)(nil)
	_ sinceLister = (*Remote)(nil)
	_ sinceLister = combined{}
)

// LibrariesSince is the package function's, for the primary's database.
func (d *DB) LibrariesSince(ctx context.Context, since Print) ([]Library, Print, bool, error) {
	if since.valid {
		p := Print{valid: true}
		err := d.db.QueryRowContext(ctx, printQuery).Scan(&p.repos, &p.infos, &p.virtuals, &p.idOrigin, &p.branches, &p.idHead, &p.headID)
		if err != nil {
			return nil, Print{}, false, fmt.Errorf("primary db: list libraries: %w", dbErr(err))
		}
		if p == since {
			return nil, since, false, nil
		}
	}
	libs, p, err := d.list(ctx)
	return libs, p, err == nil, err
}

// list reads the libraries and their Print in one snapshot.
func (d *DB) list(ctx context.Context) ([]Library, Print, error) {
	tx, err := d.db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
	if err != nil {
		return nil, Print{}, fmt.Errorf("primary db: list libraries: %w", dbErr(err))
	}
	defer tx.Rollback() // read only: nothing to commit
	n := int(d.listed.Load()) + 64
	j := &listJoin{libs: make([]Library, 0, n), at: make(map[string]int, n), rows: make([]joinRow, 0, n), origins: map[string]*owners{}}
	for _, t := range []struct {
		table, query string
		row          func(cols []sql.RawBytes) error
	}{
		{"Branch", "SELECT repo_id, commit_id FROM Branch WHERE name = 'master'", j.branch},
		{"Repo", "SELECT repo_id FROM Repo", j.repo},
		{"VirtualRepo", "SELECT repo_id, origin_repo FROM VirtualRepo", j.virtual},
		{"RepoInfo", "SELECT repo_id, name, is_encrypted, version, update_time FROM RepoInfo", j.info},
		{"RepoOwner", "SELECT repo_id, owner_id FROM RepoOwner", j.owner},
		{"OrgRepo", "SELECT repo_id, user, org_id FROM OrgRepo", j.orgOwner},
		{"RepoValidSince", "SELECT repo_id, timestamp FROM RepoValidSince", j.validSince},
	} {
		if err := eachRow(ctx, tx, t.query, t.row); err != nil {
			return nil, Print{}, fmt.Errorf("primary db: list libraries: read %s: %w", t.table, dbErr(err))
		}
	}
	libs, err := j.libraries()
	d.listed.Store(int64(len(j.libs)))
	j.print.valid = true
	return libs, j.print, err
}

// owners are a library's RepoOwner and OrgRepo rows, when it has them.
type owners struct {
	owner, orgUser       string
	hasOwner, hasOrgUser bool
	org                  int64 // OrgRepo's org_id, with orgUser
}

// first is the owner libraryQuery's COALESCE gives: RepoOwner's, else OrgRepo's.
func (o *owners) first() (string, bool) {
	switch {
	case o == nil:
		return "", false
	case o.hasOwner:
		return o.owner, true
	case o.hasOrgUser:
		return o.orgUser, true
	}
	return "", false
}

// listJoin joins the tables' rows by repo_id, as libraryQuery's joins do.
type listJoin struct {
	print Print
	libs  []Library
	at    map[string]int // repo_id → index in libs and rows
	rows  []joinRow
	// origins are the origins of virtual libraries, listed or not: a virtual library
	// takes its owner from its origin's rows.
	origins map[string]*owners
}

type joinRow struct {
	inRepo bool // Repo has the library (libraryQuery joins Repo and Branch)
	origin string
	owners owners
}

func (j *listJoin) find(id []byte) (int, bool) {
	i, ok := j.at[string(id)] // no allocation: the compiler looks the bytes up as they are
	return i, ok
}

func (j *listJoin) branch(c []sql.RawBytes) error {
	j.print.branches++
	if c[0] == nil {
		return nil // joins nothing
	}
	if c[1] != nil { // CONCAT of a NULL is NULL, which BIT_XOR passes over
		j.print.idHead ^= crc32.Update(crc32.ChecksumIEEE(c[0]), crc32.IEEETable, c[1])
		j.print.headID ^= crc32.Update(crc32.ChecksumIEEE(c[1]), crc32.IEEETable, c[0])
	}
	// A NULL commit_id stays "": the check of the head then names the library.
	lib := Library{ID: string(c[0]), Head: string(c[1]), Version: 1}
	j.at[lib.ID] = len(j.libs)
	j.libs = append(j.libs, lib)
	j.rows = append(j.rows, joinRow{})
	return nil
}

func (j *listJoin) repo(c []sql.RawBytes) error {
	j.print.repos++
	if i, ok := j.find(c[0]); ok {
		j.rows[i].inRepo = true
	}
	return nil
}

func (j *listJoin) virtual(c []sql.RawBytes) error {
	j.print.virtuals++
	if c[0] != nil && c[1] != nil {
		j.print.idOrigin ^= crc32.Update(crc32.ChecksumIEEE(c[0]), crc32.IEEETable, c[1])
	}
	i, ok := j.find(c[0])
	if !ok || c[1] == nil {
		return nil
	}
	origin := string(c[1])
	j.rows[i].origin = origin
	if j.origins[origin] == nil {
		j.origins[origin] = &owners{}
	}
	return nil
}

func (j *listJoin) info(c []sql.RawBytes) error {
	j.print.infos++
	i, ok := j.find(c[0])
	if !ok {
		return nil
	}
	lib := &j.libs[i]
	lib.Name = string(c[1])
	encrypted, err := intOr(c[2], 0)
	if err != nil {
		return fmt.Errorf("row of %s: is_encrypted: %w", lib.ID, err)
	}
	lib.Encrypted = encrypted != 0
	version, err := intOr(c[3], 1)
	if err != nil {
		return fmt.Errorf("row of %s: version: %w", lib.ID, err)
	}
	lib.Version = int(version)
	updated, err := intOr(c[4], 0)
	if err != nil {
		return fmt.Errorf("row of %s: update_time: %w", lib.ID, err)
	}
	if updated > 0 {
		lib.HeadTime = time.Unix(updated, 0).UTC()
	}
	return nil
}

func (j *listJoin) owner(c []sql.RawBytes) error {
	return j.setOwner(c, func(o *owners, v string) { o.owner, o.hasOwner = v, true })
}

func (j *listJoin) orgOwner(c []sql.RawBytes) error {
	org, err := intOr(c[2], 0)
	if err != nil {
		return fmt.Errorf("OrgRepo row of %s: org_id: %w", c[0], err)
	}
	return j.setOwner(c, func(o *owners, v string) { o.orgUser, o.hasOrgUser, o.org = v, true, org })
}

func (j *listJoin) setOwner(c []sql.RawBytes, set func(*owners, string)) error {
	if c[1] == nil {
		return nil // a NULL owner is passed over by COALESCE
	}
	i, listed := j.find(c[0])
	origin := j.origins[string(c[0])]
	if !listed && origin == nil {
		return nil
	}
	v := string(c[1])
	if listed {
		set(&j.rows[i].owners, v)
	}
	if origin != nil {
		set(origin, v)
	}
	return nil
}

func (j *listJoin) validSince(c []sql.RawBytes) error {
	i, ok := j.find(c[0])
	if !ok {
		return nil
	}
	ts, err := intOr(c[1], 0)
	if err != nil {
		return fmt.Errorf("row of %s: timestamp: %w", j.libs[i].ID, err)
	}
	j.libs[i].ValidSince = ts
	return nil
}

// libraries completes the join: the libraries Repo has, their stores and owners, each
// checked as scanLibrary checks a row of libraryQuery; a Repo row whose id is not a
// library id is left out.
func (j *listJoin) libraries() ([]Library, error) {
	libs := j.libs[:0]
	for i, lib := range j.libs {
		r := &j.rows[i]
		if !r.inRepo {
			continue
		}
		lib.StoreID = lib.ID
		owner, ok := "", false
		if r.origin != "" {
			lib.StoreID = r.origin
			owner, ok = j.origins[r.origin].first()
		}
		if !ok {
			owner, _ = r.owners.first()
		}
		lib.Owner = owner
		if !r.owners.hasOwner && r.owners.hasOrgUser {
			lib.OrgID = r.owners.org
		}
		lib, err := checkLibrary(lib)
		if err != nil {
			// Not a library Seafile could serve either: left out, not the listing.
			continue
		}
		libs = append(libs, lib)
	}
	clear(j.libs[len(libs):]) // drop what the dropped libraries' strings hold
	return libs, nil
}

// eachRow runs query and gives each row's columns to row, as bytes valid until the
// next row (nil for NULL).
func eachRow(ctx context.Context, tx *sql.Tx, query string, row func([]sql.RawBytes) error) error {
	rows, err := tx.QueryContext(ctx, query)
	if err != nil {
		return err
	}
	defer rows.Close()
	names, err := rows.Columns()
	if err != nil {
		return err
	}
	cols := make([]sql.RawBytes, len(names))
	dest := make([]any, len(cols))
	for i := range cols {
		dest[i] = &cols[i]
	}
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return err
		}
		if err := row(cols); err != nil {
			return err
		}
	}
	return rows.Err()
}

// intOr parses an integer column, or gives def for NULL.
func intOr(b []byte, def int64) (int64, error) {
	if b == nil {
		return def, nil
	}
	return strconv.ParseInt(string(b), 10, 64)
}
