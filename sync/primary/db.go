package primary

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/go-sql-driver/mysql"

	"seafbak/sync/object"
)

// DB is a Catalog reading the primary's seafile database. It only reads.
type DB struct {
	db *sql.DB
	// listed is how many libraries the last listing had: the next one's sizes.
	listed atomic.Int64
}

var _ Catalog = (*DB)(nil)

// NewDB reads libraries through db, a connection to the primary's seafile database.
func NewDB(db *sql.DB) *DB { return &DB{db: db} }

// libraryQuery joins what a library is made of on the primary. A virtual library takes
// its store and its owner from its origin (the file server checks the origin owner's
// token permission for it).
const libraryQuery = `SELECT r.repo_id, b.commit_id,
	COALESCE(v.origin_repo, ''),
	COALESCE(i.name, ''),
	COALESCE(vo.owner_id, vorg.user, o.owner_id, org.user, ''),
	COALESCE(vs.timestamp, 0),
	COALESCE(i.is_encrypted, 0),
	COALESCE(i.version, 1),
	COALESCE(i.update_time, 0),
	CASE WHEN o.owner_id IS NULL AND org.user IS NOT NULL THEN COALESCE(org.org_id, 0) ELSE 0 END
FROM Repo r
JOIN Branch b ON b.repo_id = r.repo_id AND b.name = 'master'
LEFT JOIN VirtualRepo v ON v.repo_id = r.repo_id
LEFT JOIN RepoInfo i ON i.repo_id = r.repo_id
LEFT JOIN RepoOwner o ON o.repo_id = r.repo_id
LEFT JOIN OrgRepo org ON org.repo_id = r.repo_id
LEFT JOIN RepoOwner vo ON vo.repo_id = v.origin_repo
LEFT JOIN OrgRepo vorg ON vorg.repo_id = v.origin_repo
LEFT JOIN RepoValidSince vs ON vs.repo_id = r.repo_id`

func (d *DB) Library(ctx context.Context, id string) (Library, error) {
	if err := object.CheckRepoID(id); err != nil {
		return Library{}, err
	}
	row := d.db.QueryRowContext(ctx, libraryQuery+" WHERE r.repo_id = ?", id)
	lib, err := scanLibrary(row)
	if errors.Is(err, sql.ErrNoRows) {
		return Library{}, fmt.Errorf("library %s: %w", id, ErrLibraryGone)
	}
	return lib, err
}

type scanner interface{ Scan(dest ...any) error }

// scanLibrary reads one row of libraryQuery and checks it.
func scanLibrary(s scanner) (Library, error) {
	var lib Library
	var origin string
	var encrypted int
	var updated int64
	if err := s.Scan(&lib.ID, &lib.Head, &origin, &lib.Name, &lib.Owner, &lib.ValidSince, &encrypted, &lib.Version, &updated, &lib.OrgID); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return lib, err
		}
		return lib, fmt.Errorf("primary db: read library: %w", dbErr(err))
	}
	lib.Encrypted = encrypted != 0
	if updated > 0 {
		lib.HeadTime = time.Unix(updated, 0).UTC()
	}
	lib.StoreID = lib.ID
	if origin != "" {
		lib.StoreID = origin
	}
	return checkLibrary(lib)
}

// checkLibrary checks the ids of a library read from the database: store paths are
// built from them. A Repo row whose id is not one is an error (nothing can be said of
// that library). A bad head or origin fails that library alone: it comes back with
// HeadError set (and its own id as store id, no head), which the engine reports,
// naming it, before anything else; the other libraries are listed and backed up.
func checkLibrary(lib Library) (Library, error) {
	if err := object.CheckRepoID(lib.ID); err != nil {
		return lib, fmt.Errorf("primary db: Repo row: %w", err)
	}
	if err := object.CheckRepoID(lib.StoreID); err != nil {
		lib.HeadError = fmt.Errorf("primary db: VirtualRepo row of %s: %w", lib.ID, err)
		lib.StoreID = lib.ID
	}
	if err := object.CheckID(lib.Head); err != nil {
		lib.HeadError = errors.Join(lib.HeadError, fmt.Errorf("primary db: Branch row of %s: %w", lib.ID, err))
		lib.Head = ""
	}
	return lib, nil
}

// dbErr says what the driver's bare "invalid connection" means here: the server did not
// answer within the connection's deadline (the config's db_timeout) or dropped it.
func dbErr(err error) error {
	if errors.Is(err, mysql.ErrInvalidConn) {
		return fmt.Errorf("%w: the database server did not answer within db_timeout or closed the connection; check that it is up and responsive", err)
	}
	return err
}
