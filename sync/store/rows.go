package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	gosync "sync"

	"github.com/go-sql-driver/mysql"
)

// Rows keeps the backup database's Repo, Branch and RepoHead rows: the three tables that
// tell a Seafile server which libraries exist and where their heads are. Everything else
// in the database travels by dump.
type Rows struct {
	db *sql.DB

	// SetHead is a group commit: the heads set while one transaction runs go together
	// in the next one (a scan of many small libraries moves hundreds at a time).
	mu      gosync.Mutex
	running bool
	idle    *gosync.Cond // on mu: the running transaction ended
	next    *headRound   // the round callers join now; nil until one asks
}

type headRound struct {
	heads []libraryHead
	done  chan struct{}
	err   error
}

type libraryHead struct{ repoID, head string }

// maxHeadRound bounds the libraries of one transaction (three placeholders a row).
const maxHeadRound = 1000

// NewRows uses db, a connection to the backup's seafile database.
func NewRows(db *sql.DB) *Rows { return &Rows{db: db} }

// SetHead points the library's master branch at head, creating its rows if needed, in
// one transaction so a Seafile server never sees a library without its branch. Heads
// set at the same time by other syncs of this process share the transaction; if it
// fails, each is set alone, so one library's error is not another's.
func (r *Rows) SetHead(ctx context.Context, repoID, head string) error {
	r.mu.Lock()
	if r.idle == nil {
		r.idle = gosync.NewCond(&r.mu)
	}
	if rd := r.next; rd != nil && len(rd.heads) < maxHeadRound {
		rd.heads = append(rd.heads, libraryHead{repoID, head})
		r.mu.Unlock()
		// Not cut short by ctx: the transaction may move this head, and the caller
		// must not believe it did not (it is bounded by db_timeout).
		<-rd.done
		if rd.err != nil {
			return r.setHeads(ctx, []libraryHead{{repoID, head}})
		}
		return nil
	}
	rd := &headRound{heads: []libraryHead{{repoID, head}}, done: make(chan struct{})}
	r.next = rd
	for r.running {
		r.idle.Wait() // callers arriving meanwhile join rd
	}
	r.running = true
	if r.next == rd {
		r.next = nil
	}
	heads := rd.heads
	r.mu.Unlock()
	rd.err = r.setHeads(ctx, heads)
	close(rd.done)
	r.mu.Lock()
	r.running = false
	r.idle.Broadcast()
	r.mu.Unlock()
	if rd.err != nil && len(heads) > 1 {
		return r.setHeads(ctx, heads[:1]) // this caller's own; the others retry theirs
	}
	return rd.err
}

// SetHeads sets many libraries' heads (repo id → head) as SetHead does, a thousand to a
// transaction: a restore server writing 100 000 libraries' rows one at a time made
// 100 000 commits, each a flush of the database's log on a server that keeps
// innodb_flush_log_at_trx_commit at 1, its default. They go in id order, so a failure
// names the same libraries when the same restore is run again.
func (r *Rows) SetHeads(ctx context.Context, heads map[string]string) error {
	all := make([]libraryHead, 0, len(heads))
	for id, head := range heads {
		all = append(all, libraryHead{id, head})
	}
	slices.SortFunc(all, func(a, b libraryHead) int { return strings.Compare(a.repoID, b.repoID) })
	for batch := range slices.Chunk(all, maxHeadRound) {
		if err := r.setHeads(ctx, batch); err != nil {
			return err
		}
	}
	return nil
}

// setHeads moves the heads of libraries in one transaction.
func (r *Rows) setHeads(ctx context.Context, heads []libraryHead) error {
	what := heads[0].repoID
	if len(heads) > 1 {
		what = fmt.Sprintf("%s and %d other libraries", heads[0].repoID, len(heads)-1)
	}
	tx, err := r.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("backup db: set head of %s: %w", what, dbErr(err))
	}
	defer tx.Rollback()
	n := len(heads)
	repos := make([]any, 0, n)
	branches := make([]any, 0, 2*n)
	for _, h := range heads {
		repos = append(repos, h.repoID)
		branches = append(branches, h.repoID, h.head)
	}
	values := func(row string) string { return strings.TrimSuffix(strings.Repeat(row+", ", n), ", ") }
	stmts := []struct {
		q    string
		args []any
	}{
		{"INSERT INTO Repo (repo_id) VALUES " + values("(?)") + " ON DUPLICATE KEY UPDATE repo_id = VALUES(repo_id)", repos},
		{"INSERT INTO Branch (name, repo_id, commit_id) VALUES " + values("('master', ?, ?)") + " ON DUPLICATE KEY UPDATE commit_id = VALUES(commit_id)", branches},
		{"INSERT INTO RepoHead (repo_id, branch_name) VALUES " + values("(?, 'master')") + " ON DUPLICATE KEY UPDATE branch_name = VALUES(branch_name)", repos},
	}
	for _, s := range stmts {
		if _, err := tx.ExecContext(ctx, s.q, s.args...); err != nil {
			return fmt.Errorf("backup db: set head of %s: %w", what, dbErr(err))
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("backup db: set head of %s: commit: %w", what, dbErr(err))
	}
	return nil
}

// Delete removes a library's rows, mirroring a deletion on the primary. Its objects stay
// in the store.
func (r *Rows) Delete(ctx context.Context, repoID string) error {
	return r.deleteLibraries(ctx, []string{repoID})
}

// DeleteMany removes many libraries' rows as Delete does, a thousand to a transaction
// and in id order, as SetHeads writes: a restore server of a primary with years of
// deleted libraries made a commit, a flush of the database's log, for each.
func (r *Rows) DeleteMany(ctx context.Context, repoIDs []string) error {
	ids := slices.Sorted(slices.Values(repoIDs))
	for batch := range slices.Chunk(ids, maxHeadRound) {
		if err := r.deleteLibraries(ctx, batch); err != nil {
			return err
		}
	}
	return nil
}

// deleteLibraries removes the rows of libraries in one transaction.
func (r *Rows) deleteLibraries(ctx context.Context, repoIDs []string) error {
	what := repoIDs[0]
	if len(repoIDs) > 1 {
		what = fmt.Sprintf("%s and %d other libraries", repoIDs[0], len(repoIDs)-1)
	}
	tx, err := r.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("backup db: delete %s: %w", what, dbErr(err))
	}
	defer tx.Rollback()
	args := make([]any, len(repoIDs))
	for i, id := range repoIDs {
		args[i] = id
	}
	in := "(" + strings.TrimSuffix(strings.Repeat("?, ", len(repoIDs)), ", ") + ")"
	for _, table := range []string{"RepoHead", "Branch", "Repo"} {
		if _, err := tx.ExecContext(ctx, "DELETE FROM "+table+" WHERE repo_id IN "+in, args...); err != nil {
			return fmt.Errorf("backup db: delete %s: %w", what, dbErr(err))
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("backup db: delete %s: commit: %w", what, dbErr(err))
	}
	return nil
}

// Head is the library's master head in the backup database ("" if it has none).
func (r *Rows) Head(ctx context.Context, repoID string) (string, error) {
	var head string
	err := r.db.QueryRowContext(ctx, "SELECT commit_id FROM Branch WHERE repo_id = ? AND name = 'master'", repoID).Scan(&head)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("backup db: head of %s: %w", repoID, dbErr(err))
	}
	return head, nil
}

// Heads lists every library's master head in the backup database.
func (r *Rows) Heads(ctx context.Context) (map[string]string, error) {
	rows, err := r.db.QueryContext(ctx, `SELECT r.repo_id, b.commit_id FROM Repo r
		JOIN Branch b ON b.repo_id = r.repo_id AND b.name = 'master'`)
	if err != nil {
		return nil, fmt.Errorf("backup db: list heads: %w", dbErr(err))
	}
	defer rows.Close()
	heads := map[string]string{}
	for rows.Next() {
		var id, head string
		if err := rows.Scan(&id, &head); err != nil {
			return nil, fmt.Errorf("backup db: list heads: %w", dbErr(err))
		}
		heads[id] = head
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("backup db: list heads: %w", dbErr(err))
	}
	return heads, nil
}

// dbErr says what the driver's bare "invalid connection" means here: the server did not
// answer within the connection's deadline (the config's db_timeout) or dropped it.
func dbErr(err error) error {
	if errors.Is(err, mysql.ErrInvalidConn) {
		return fmt.Errorf("%w: the database server did not answer within db_timeout or closed the connection; check that it is up and responsive", err)
	}
	return err
}
