package restore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"

	"seafbak/dump"
	"seafbak/internal/dbconn"
	"seafbak/state"
	"seafbak/sync/object"
	"seafbak/sync/store"
)

// liveTablesSQL creates the three tables sync keeps live, as Seafile's schema has them,
// for a backup database that was not kept live (the dump leaves them out).
var liveTablesSQL = []string{
	"CREATE TABLE IF NOT EXISTS `Repo` (`id` bigint(20) NOT NULL AUTO_INCREMENT, `repo_id` char(37) DEFAULT NULL, PRIMARY KEY (`id`), UNIQUE KEY `repo_id` (`repo_id`)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
	"CREATE TABLE IF NOT EXISTS `Branch` (`id` bigint(20) NOT NULL AUTO_INCREMENT, `name` varchar(10) DEFAULT NULL, `repo_id` char(41) DEFAULT NULL, `commit_id` char(41) DEFAULT NULL, PRIMARY KEY (`id`), UNIQUE KEY `repo_id` (`repo_id`,`name`)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
	"CREATE TABLE IF NOT EXISTS `RepoHead` (`id` bigint(20) NOT NULL AUTO_INCREMENT, `repo_id` char(37) DEFAULT NULL, `branch_name` varchar(10) DEFAULT NULL, PRIMARY KEY (`id`), UNIQUE KEY `repo_id` (`repo_id`)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
}

// EnsureLiveTables creates Repo, Branch and RepoHead in the backup's seafile database if
// they are missing.
func EnsureLiveTables(ctx context.Context, db *sql.DB) error {
	for _, q := range liveTablesSQL {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("backup db: create live tables: %w", err)
		}
	}
	return nil
}

// RowsResult says what WriteLiveRows changed.
type RowsResult struct {
	Set, Deleted, Unchanged int
	// Earlier are the libraries whose backed-up head Seafile could not serve (it holds
	// holes), with the commit their rows name instead.
	Earlier []ServedEarlier

	heads           map[string]string // every library's head in the rows, as written
	sharedAfterDump []NewerThanDump   // shared folders given no rows (see writeLiveRows)
}

// ServedEarlier is a library whose backed-up head holds holes: objects a sync --force
// skipped because the primary could not give them. The folders above a hole are not in
// the store (present means complete), so the head's root is missing and Seafile would
// fail the whole library. Its rows name the newest commit on the head's first-parent
// chain (the heads the primary served, newest first) whose tree is whole; with none,
// the library gets no rows and is not served.
type ServedEarlier struct {
	RepoID, Name string
	Head         string // the backed-up head, not servable
	Served       string // the commit the rows name; "" if no commit of the chain is whole
	ServedCtime  int64  // Served's ctime (seconds)
}

// WriteLiveRows makes the backup database's Repo/Branch/RepoHead rows say what the
// state says: every backed-up library at its backed-up head (or, if that holds holes,
// the newest whole commit before it: see ServedEarlier), libraries deleted on the
// primary absent. Only the state's heads are known to be complete in the store.
func WriteLiveRows(ctx context.Context, s store.Store, st *state.Dir, db *sql.DB, log *slog.Logger) (RowsResult, error) {
	recs, err := state.Whole(st.All())
	if err != nil {
		return RowsResult{}, err
	}
	return writeLiveRows(ctx, s, recs, db, nil, log)
}

// writeLiveRows is WriteLiveRows from records already read. shared, when not nil, is
// the databases' VirtualRepo (shared folder → its origin): a shared folder it lacks was
// shared after the dump, and Seafile would look for its files under its own id, where
// there are none, so it gets no rows (its files are in its origin).
func writeLiveRows(ctx context.Context, s store.Store, recs []state.Library, db *sql.DB, shared map[string]string, log *slog.Logger) (RowsResult, error) {
	var res RowsResult
	rows := store.NewRows(db)
	heads, err := rows.Heads(ctx)
	if err != nil {
		return res, err
	}
	set := map[string]string{}
	var deleted, withdrawn []string
	for _, rec := range recs {
		if rec.Deleted != nil {
			if _, ok := heads[rec.ID]; ok {
				deleted = append(deleted, rec.ID)
			}
			continue
		}
		if rec.Head == "" {
			continue // never completed a sync: nothing to serve
		}
		if shared != nil && rec.StoreID != "" && rec.StoreID != rec.ID && shared[rec.ID] == "" {
			res.sharedAfterDump = append(res.sharedAfterDump, NewerThanDump{RepoID: rec.ID, Name: rec.Name, Owner: rec.Owner, StoreID: rec.StoreID, Withdrawn: true})
			if _, ok := heads[rec.ID]; ok {
				withdrawn = append(withdrawn, rec.ID)
			}
			continue
		}
		head := rec.Head
		if len(rec.Holes) > 0 {
			e, err := servableHead(ctx, s, rec)
			if err != nil {
				return res, fmt.Errorf("library %s: %w", rec.ID, err)
			}
			if e.Served != rec.Head {
				res.Earlier = append(res.Earlier, e)
				if log != nil {
					log.Warn("backed-up head holds holes: rows name the newest whole commit before it", "repo", rec.ID, "name", rec.Name, "head", rec.Head, "served", e.Served)
				}
				head = e.Served
			}
		}
		switch {
		case head == "":
			if _, ok := heads[rec.ID]; ok {
				withdrawn = append(withdrawn, rec.ID) // rows naming a tree Seafile cannot read
			}
		case heads[rec.ID] == head:
			res.Unchanged++
		default:
			set[rec.ID] = head
		}
	}
	if err := rows.DeleteMany(ctx, append(deleted, withdrawn...)); err != nil {
		return res, err
	}
	res.Deleted = len(deleted)
	if err := rows.SetHeads(ctx, set); err != nil {
		return res, err
	}
	res.Set = len(set)
	for _, id := range append(deleted, withdrawn...) {
		delete(heads, id)
	}
	maps.Copy(heads, set)
	res.heads = heads
	if log != nil {
		log.Info("live rows written from state", "set", res.Set, "deleted", res.Deleted, "unchanged", res.Unchanged)
	}
	return res, nil
}

// servableHead finds, for a library with holes, the commit Seafile can serve: the head
// if its root is in the store (a present dir has its whole subtree), else the newest
// commit on its first-parent chain whose root is. The chain ends at the library's first
// commit, or at one the store lacks.
func servableHead(ctx context.Context, s store.Store, rec state.Library) (ServedEarlier, error) {
	lib := LibraryOf(rec)
	e := ServedEarlier{RepoID: rec.ID, Name: rec.Name, Head: rec.Head}
	seen := map[string]bool{}
	for id := rec.Head; id != "" && !seen[id]; {
		seen[id] = true
		c, err := readCommit(ctx, s, lib, id)
		if errors.Is(err, store.ErrNotExist) {
			return e, nil
		}
		if err != nil {
			return e, fmt.Errorf("commit %s: %w", id, err)
		}
		whole := c.RootID == object.EmptyID
		if !whole {
			if whole, err = s.Has(ctx, object.KindFS, lib.StoreID, c.RootID); err != nil {
				return e, fmt.Errorf("commit %s: root %s: %w", id, c.RootID, err)
			}
		}
		if whole {
			e.Served, e.ServedCtime = id, c.Ctime
			return e, nil
		}
		id = c.ParentID
	}
	return e, nil
}

// ErrHoldsData is returned when a target database already holds Seafile data.
var ErrHoldsData = errors.New("already holds Seafile data")

// schemaRows are the tables that hold rows as soon as a role's schema is loaded, before
// anyone used Seafile: the seafile database's live tables (sync writes them on the
// backup, and a restore rewrites them from the state) and the rows Seahub's schema
// (seahub/sql/mysql.sql, or its migrations) puts in Django's own bookkeeping. A dump
// replaces them all; none of them is anyone's data.
var schemaRows = map[dump.Role][]string{
	dump.Seafile: dump.LiveTables,
	dump.Seahub:  {"django_migrations", "django_content_type", "auth_permission"},
}

// HoldsSeafileData reports whether role's database holds data a restore would overwrite:
// a row in any table but the schemaRows of its role. A database with only empty tables
// (Seafile's schema loaded, nothing used yet) holds none.
func HoldsSeafileData(ctx context.Context, db *sql.DB, role dump.Role) (bool, error) {
	rows, err := db.QueryContext(ctx, "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE() AND table_type = 'BASE TABLE'")
	if err != nil {
		return false, fmt.Errorf("list tables: %w", err)
	}
	var tables []string
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			rows.Close()
			return false, fmt.Errorf("list tables: %w", err)
		}
		tables = append(tables, t)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return false, fmt.Errorf("list tables: %w", err)
	}
	for _, t := range tables {
		// EqualFold: with lower_case_table_names the server reports "repo" for Repo.
		if slices.ContainsFunc(schemaRows[role], func(s string) bool { return strings.EqualFold(s, t) }) {
			continue
		}
		var one int
		err := db.QueryRowContext(ctx, "SELECT 1 FROM `"+strings.ReplaceAll(t, "`", "``")+"` LIMIT 1").Scan(&one)
		if err == nil {
			return true, nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return false, fmt.Errorf("table %s: %w", t, err)
		}
	}
	return false, nil
}

// NewerThanDump is a library the failover serves from seafbak's state that the loaded
// dump does not know: made (or shared) after the dump was taken, so the dump has no
// RepoOwner (or OrgRepo) row for it, and for a shared folder no VirtualRepo row.
// Without an owner no one's library list in Seahub shows it.
type NewerThanDump struct {
	RepoID, Name, Owner string
	// OrgID is the organisation it was given back to (an OrgRepo row), 0 for none.
	OrgID int64
	// OwnerSet: RepoOwner (OrgRepo for an organisation's library) was written with the
	// owner seafbak recorded from the primary.
	OwnerSet bool
	// Withdrawn: a shared folder (a virtual library) whose VirtualRepo row the dump
	// lacks. Seafile would look for its files under its own id, where there are none,
	// so its rows were removed; its files are in StoreID, the library it was shared from.
	Withdrawn bool
	StoreID   string
}

// adoptOwners gives each library with live rows (heads) that the loaded databases
// own in neither RepoOwner nor OrgRepo, made after the dump, the owner seafbak
// recorded: without one no one's library list shows it. An organisation's library goes
// back to its organisation (OrgRepo), where Seahub lists it; one recorded by a seafbak
// that did not yet keep the organisation becomes its user's own. Shared folders are
// writeLiveRows' to leave out.
func adoptOwners(ctx context.Context, db *sql.DB, recs []state.Library, heads map[string]string) ([]NewerThanDump, error) {
	owned := map[string]bool{}
	for _, q := range []string{"SELECT repo_id FROM RepoOwner", "SELECT repo_id FROM OrgRepo"} {
		if err := readIDs(ctx, db, q, owned); err != nil {
			return nil, err
		}
	}
	var newer []NewerThanDump
	for _, rec := range recs {
		if _, served := heads[rec.ID]; !served || rec.Deleted != nil || owned[rec.ID] || rec.StoreID != "" && rec.StoreID != rec.ID {
			continue
		}
		n := NewerThanDump{RepoID: rec.ID, Name: rec.Name, Owner: rec.Owner, OrgID: rec.OrgID, StoreID: rec.StoreID}
		if rec.Owner != "" {
			var err error
			if rec.OrgID != 0 {
				_, err = db.ExecContext(ctx, "INSERT INTO OrgRepo (org_id, repo_id, user) VALUES (?, ?, ?)", rec.OrgID, rec.ID, rec.Owner)
			} else {
				_, err = db.ExecContext(ctx, "INSERT INTO RepoOwner (repo_id, owner_id) VALUES (?, ?)", rec.ID, rec.Owner)
			}
			if err != nil {
				return nil, fmt.Errorf("backup db: owner of %s: %w", rec.ID, err)
			}
			n.OwnerSet = true
		}
		newer = append(newer, n)
	}
	return newer, nil
}

// readIDs adds the ids query returns to into; a table the schema lacks adds none.
func readIDs(ctx context.Context, db *sql.DB, query string, into map[string]bool) error {
	r, err := db.QueryContext(ctx, query)
	if dbconn.NoSuchTable(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("backup db: %s: %w", query, err)
	}
	defer r.Close()
	for r.Next() {
		var id string
		if err := r.Scan(&id); err != nil {
			return fmt.Errorf("backup db: %s: %w", query, err)
		}
		into[id] = true
	}
	if err := r.Err(); err != nil {
		return fmt.Errorf("backup db: %s: %w", query, err)
	}
	return nil
}
