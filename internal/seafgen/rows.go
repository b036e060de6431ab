package seafgen

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"seafbak/internal/dbconn"
)

// InsertRows writes the rows of Seafile's database (MySQL/MariaDB schema of
// scripts/sql/mysql/seafile.sql) that define the library, as seaf-server's
// library creation and later head updates leave them: Repo, Branch
// ("master" -> Head), RepoHead, RepoOwner, RepoInfo (name, update_time =
// Head's ctime, version, is_encrypted, last_modifier = owner), VirtualRepo
// for a virtual library and RepoValidSince when ValidSince > 0 (a stale
// RepoValidSince row is removed when ValidSince is 0). It is an idempotent
// upsert in one transaction, so it can be called again after Commit, SetHead
// or TruncateBefore to move the primary's state.
func (l *Library) InsertRows(ctx context.Context, db *sql.DB) error {
	l.st.mu.Lock()
	head, validSince, version := l.Head, l.ValidSince, l.Version
	var updateTime int64
	if m, err := l.metaOf(head); err == nil {
		updateTime = m.ctime
	}
	l.st.mu.Unlock()
	if head == "" {
		return errors.New("seafgen: InsertRows: library has no head")
	}
	encrypted := 0
	if l.Encrypted {
		encrypted = 1
	}

	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	stmts := []struct {
		q    string
		args []any
	}{
		{"INSERT INTO Repo (repo_id) VALUES (?) ON DUPLICATE KEY UPDATE repo_id = repo_id",
			[]any{l.ID}},
		{"INSERT INTO Branch (name, repo_id, commit_id) VALUES ('master', ?, ?) ON DUPLICATE KEY UPDATE commit_id = ?",
			[]any{l.ID, head, head}},
		{"INSERT INTO RepoHead (repo_id, branch_name) VALUES (?, 'master') ON DUPLICATE KEY UPDATE branch_name = 'master'",
			[]any{l.ID}},
		{"INSERT INTO RepoOwner (repo_id, owner_id) VALUES (?, ?) ON DUPLICATE KEY UPDATE owner_id = ?",
			[]any{l.ID, l.Owner, l.Owner}},
		{"INSERT INTO RepoInfo (repo_id, name, update_time, version, is_encrypted, last_modifier, status, type) VALUES (?, ?, ?, ?, ?, ?, 0, NULL) " +
			"ON DUPLICATE KEY UPDATE name = ?, update_time = ?, version = ?, is_encrypted = ?, last_modifier = ?",
			[]any{l.ID, l.Name, updateTime, version, encrypted, l.Owner, l.Name, updateTime, version, encrypted, l.Owner}},
	}
	for _, s := range stmts {
		if _, err := tx.ExecContext(ctx, s.q, s.args...); err != nil {
			return fmt.Errorf("seafgen: InsertRows %s: %w", l.ID, err)
		}
	}
	if l.OriginID != "" {
		if _, err := tx.ExecContext(ctx,
			"INSERT INTO VirtualRepo (repo_id, origin_repo, path, base_commit) VALUES (?, ?, ?, ?) "+
				"ON DUPLICATE KEY UPDATE origin_repo = ?, path = ?, base_commit = ?",
			l.ID, l.OriginID, l.OriginPath, l.BaseCommit, l.OriginID, l.OriginPath, l.BaseCommit); err != nil {
			return fmt.Errorf("seafgen: InsertRows %s: %w", l.ID, err)
		}
	}
	if validSince > 0 {
		if _, err := tx.ExecContext(ctx,
			"INSERT INTO RepoValidSince (repo_id, timestamp) VALUES (?, ?) ON DUPLICATE KEY UPDATE timestamp = ?",
			l.ID, validSince, validSince); err != nil {
			return fmt.Errorf("seafgen: InsertRows %s: %w", l.ID, err)
		}
	} else if _, err := tx.ExecContext(ctx, "DELETE FROM RepoValidSince WHERE repo_id = ?", l.ID); err != nil && !noSuchTable(err) {
		return fmt.Errorf("seafgen: InsertRows %s: %w", l.ID, err)
	}
	return tx.Commit()
}

// DeleteRows deletes a library from the database as seaf-server's
// seaf_repo_manager_del_repo does: it adds a RepoTrash row (name from
// RepoInfo, head from Branch, owner from RepoOwner, size from RepoSize,
// org_id -1, del_time = now), then removes the library's rows from Repo,
// Branch, RepoHead, RepoOwner, RepoInfo, VirtualRepo and the other per-repo
// tables, and the rows of its virtual libraries (which, as in Seafile, get
// no RepoTrash row). As in Seafile, a library without a master branch is
// taken as already deleted (nothing happens), and one without an owner
// gets no RepoTrash row. Tables other than Repo, Branch, RepoHead,
// RepoOwner, RepoInfo and RepoTrash may be absent from the schema. All in
// one transaction.
func DeleteRows(ctx context.Context, db *sql.DB, repoID string) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()

	var head string
	err = tx.QueryRowContext(ctx, "SELECT commit_id FROM Branch WHERE name = 'master' AND repo_id = ?", repoID).Scan(&head)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("seafgen: DeleteRows %s: %w", repoID, err)
	}
	var owner, name sql.NullString
	if err := tx.QueryRowContext(ctx, "SELECT owner_id FROM RepoOwner WHERE repo_id = ?", repoID).Scan(&owner); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("seafgen: DeleteRows %s: %w", repoID, err)
	}
	if err := tx.QueryRowContext(ctx, "SELECT name FROM RepoInfo WHERE repo_id = ?", repoID).Scan(&name); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("seafgen: DeleteRows %s: %w", repoID, err)
	}
	var size sql.NullInt64
	if err := tx.QueryRowContext(ctx, "SELECT size FROM RepoSize WHERE repo_id = ?", repoID).Scan(&size); err != nil &&
		!errors.Is(err, sql.ErrNoRows) && !noSuchTable(err) {
		return fmt.Errorf("seafgen: DeleteRows %s: %w", repoID, err)
	}
	if owner.Valid {
		now := time.Now().Unix()
		if _, err := tx.ExecContext(ctx,
			"INSERT INTO RepoTrash (repo_id, repo_name, head_id, owner_id, size, org_id, del_time) VALUES (?, ?, ?, ?, ?, -1, ?) "+
				"ON DUPLICATE KEY UPDATE repo_name = ?, head_id = ?, owner_id = ?, size = ?, org_id = -1, del_time = ?",
			repoID, name.String, head, owner.String, size.Int64, now,
			name.String, head, owner.String, size.Int64, now); err != nil {
			return fmt.Errorf("seafgen: DeleteRows %s: %w", repoID, err)
		}
	}

	var vrepos []string
	rows, err := tx.QueryContext(ctx, "SELECT repo_id FROM VirtualRepo WHERE origin_repo = ?", repoID)
	switch {
	case err == nil:
		for rows.Next() {
			var v string
			if err := rows.Scan(&v); err != nil {
				rows.Close()
				return fmt.Errorf("seafgen: DeleteRows %s: %w", repoID, err)
			}
			vrepos = append(vrepos, v)
		}
		err = rows.Close()
		if err == nil {
			err = rows.Err()
		}
		if err != nil {
			return fmt.Errorf("seafgen: DeleteRows %s: %w", repoID, err)
		}
	case !noSuchTable(err):
		return fmt.Errorf("seafgen: DeleteRows %s: %w", repoID, err)
	}

	for _, id := range append([]string{repoID}, vrepos...) {
		if err := deleteRepoRows(ctx, tx, id); err != nil {
			return fmt.Errorf("seafgen: DeleteRows %s: %w", repoID, err)
		}
	}
	if _, err := tx.ExecContext(ctx, "DELETE FROM VirtualRepo WHERE repo_id = ? OR origin_repo = ?", repoID, repoID); err != nil && !noSuchTable(err) {
		return fmt.Errorf("seafgen: DeleteRows %s: %w", repoID, err)
	}
	return tx.Commit()
}

// deleteRepoRows removes one library's per-repo rows (the statements of
// seaf_repo_manager_del_repo and remove_virtual_repo_ondisk).
func deleteRepoRows(ctx context.Context, tx *sql.Tx, id string) error {
	required := []string{
		"DELETE FROM Repo WHERE repo_id = ?",
		"DELETE FROM RepoHead WHERE repo_id = ?",
		"DELETE FROM Branch WHERE repo_id = ?",
		"DELETE FROM RepoOwner WHERE repo_id = ?",
		"DELETE FROM RepoInfo WHERE repo_id = ?",
	}
	optional := []string{
		"DELETE FROM SharedRepo WHERE repo_id = ?",
		"DELETE FROM RepoGroup WHERE repo_id = ?",
		"DELETE FROM InnerPubRepo WHERE repo_id = ?",
		// Seafile deletes tokens joined with their peer info only.
		"DELETE t.*, i.* FROM RepoUserToken t, RepoTokenPeerInfo i WHERE t.token = i.token AND t.repo_id = ?",
		"DELETE FROM RepoHistoryLimit WHERE repo_id = ?",
		"DELETE FROM RepoValidSince WHERE repo_id = ?",
		"DELETE FROM RepoSize WHERE repo_id = ?",
	}
	for _, q := range required {
		if _, err := tx.ExecContext(ctx, q, id); err != nil {
			return err
		}
	}
	for _, q := range optional {
		if _, err := tx.ExecContext(ctx, q, id); err != nil && !noSuchTable(err) {
			return err
		}
	}
	return nil
}

var noSuchTable = dbconn.NoSuchTable
