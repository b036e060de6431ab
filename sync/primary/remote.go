package primary

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"

	"seafbak/internal/dbconn"
	"seafbak/sync/object"
)

// Remote is a primary reached over the network: libraries from its database, objects
// over HTTP. Heads come from both and must agree; library tokens are provisioned in the
// database (RepoUserToken) before a library's objects are asked for.
type Remote struct {
	*HTTP
	db        *DB
	sqlDB     *sql.DB
	syncToken string
	// prepared maps a library's id to the owner its token row was seen or made for
	// by this process. A row the file server then refuses is forgotten (see NewRemote).
	prepared sync.Map

	agreedMu sync.Mutex
	// agreed is each listed library's head that the database and the file server
	// agreed on at the last listing.
	agreed map[string]string
}

var _ Source = (*Remote)(nil)

// NewRemote joins the primary's seafile database and its file server.
//
// A token the file server refuses (403) makes the next Prepare of its library read the
// row again: deleted on the primary meanwhile (its owner's tokens removed by an admin,
// say), it is made again, where a long-running watch would otherwise fail that library
// until restarted. The file server caches tokens for a while, so a row deleted is refused
// only later, and a refusal costs one SELECT at the library's next attempt.
func NewRemote(db *sql.DB, h *HTTP, syncToken string) *Remote {
	r := &Remote{HTTP: h, db: NewDB(db), sqlDB: db, syncToken: syncToken}
	h.refused = func(repoID string) { r.prepared.Delete(repoID) }
	return r
}

// Libraries lists the libraries from the database and checks each head against the file
// server's (head-commits-multi). A disagreement left after asking both again is reported
// on that library, not guessed at: one of them is mid-update, or they are not the same
// server. A head the two agreed on at this Remote's last listing is not asked about
// again: the file server reads the same Branch rows, so they agree until the database
// moves it. A watch lists every 2 s; on a server of 10 000 libraries, asking about each
// was 10 requests a poll, for nothing, and as much work for the file server.
func (r *Remote) Libraries(ctx context.Context) ([]Library, error) {
	libs, err := r.db.Libraries(ctx)
	if err != nil {
		return nil, err
	}
	return r.agree(ctx, libs)
}

// LibrariesSince is Libraries unless the database's Print still equals since (see the
// package function).
func (r *Remote) LibrariesSince(ctx context.Context, since Print) ([]Library, Print, bool, error) {
	libs, p, changed, err := r.db.LibrariesSince(ctx, since)
	if err != nil || !changed {
		return nil, p, false, err
	}
	libs, err = r.agree(ctx, libs)
	if err != nil {
		return nil, Print{}, false, err
	}
	return libs, p, true, nil
}

// agree checks the listed heads against the file server's.
func (r *Remote) agree(ctx context.Context, libs []Library) ([]Library, error) {
	r.agreedMu.Lock()
	before := r.agreed
	r.agreedMu.Unlock()
	agreed := make(map[string]string, len(libs))
	var ids []string
	var ask []int // indexes in libs of the libraries asked about
	for i, l := range libs {
		if l.HeadError != nil {
			continue // the database's row is bad already: nothing to compare
		}
		if head, ok := before[l.ID]; ok && head == l.Head {
			agreed[l.ID] = head
			continue
		}
		ids = append(ids, l.ID)
		ask = append(ask, i)
	}
	heads, err := r.Heads(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("primary file server: %w", err)
	}
	for _, i := range ask {
		if heads[libs[i].ID] != libs[i].Head {
			libs[i] = r.recheck(ctx, libs[i], heads[libs[i].ID])
		}
		if libs[i].HeadError == nil {
			agreed[libs[i].ID] = libs[i].Head
		}
	}
	r.agreedMu.Lock()
	r.agreed = agreed
	r.agreedMu.Unlock()
	return libs, nil
}

// recheck asks the database and the file server again about one library whose heads
// disagreed.
func (r *Remote) recheck(ctx context.Context, lib Library, httpHead string) Library {
	again, err := r.db.Library(ctx, lib.ID)
	if err != nil {
		lib.HeadError = err
		return lib
	}
	heads, err := r.Heads(ctx, []string{lib.ID})
	if err != nil {
		again.HeadError = err
		return again
	}
	switch got := heads[lib.ID]; {
	case got == again.Head:
	case got == "":
		again.HeadError = fmt.Errorf("the primary's database says head %s but its file server gives no valid head for the library; if this persists, primary.db and primary.url point at different servers, or its Branch row is damaged", again.Head)
	default:
		again.HeadError = fmt.Errorf("the primary's database says head %s but its file server says %q; if this persists, primary.db and primary.url point at different servers", again.Head, got)
	}
	return again
}

// Library describes one library and checks its head with the library's own token,
// which also proves the token works.
func (r *Remote) Library(ctx context.Context, id string) (Library, error) {
	lib, err := r.db.Library(ctx, id)
	if err != nil {
		return lib, err
	}
	if err := r.Prepare(ctx, lib); err != nil {
		return lib, err
	}
	head, err := r.Head(ctx, lib)
	if err != nil {
		return lib, fmt.Errorf("library %s: %w", id, err)
	}
	if head != lib.Head {
		return r.recheck(ctx, lib, head), nil
	}
	return lib, nil
}

// Prepare makes sure the library's token exists in RepoUserToken for its owner, the
// user the file server checks read permission for: it inserts a missing row, and moves
// a row naming a former owner. It is PrepareMany's work for one library, plus what a
// batch leaves to it.
func (r *Remote) Prepare(ctx context.Context, lib Library) error {
	if lib.Owner == "" {
		return fmt.Errorf("library %s has no owner in RepoOwner or OrgRepo (nor its origin): the file server would refuse any token for it", lib.ID)
	}
	// A hook's sync prepares the library in Library and again before reading objects:
	// one database round trip is enough per process.
	if r.isPrepared(lib) {
		return nil
	}
	stale, err := r.prepareBatch(ctx, []Library{lib})
	if len(stale) > 0 || dbconn.ErrorNumber(err) == dbconn.ErDupEntry {
		// The row names a former owner, or another seafbak inserted it between the two
		// statements: the unique key is (repo_id, token).
		err = r.setTokenOwner(ctx, lib)
	}
	return err
}

// setTokenOwner points the library's existing token row at its owner.
func (r *Remote) setTokenOwner(ctx context.Context, lib Library) error {
	_, err := r.sqlDB.ExecContext(ctx, "UPDATE RepoUserToken SET email = ? WHERE repo_id = ? AND token = ?", lib.Owner, lib.ID, Token(r.syncToken, lib.ID))
	if err != nil {
		return fmt.Errorf("primary db: set the library token's owner in RepoUserToken: %w%s", err, grantHint(err))
	}
	r.prepared.Store(lib.ID, lib.Owner)
	return nil
}

// isPrepared reports whether lib's token row was seen or made for its present owner: a
// new owner needs the row moved.
func (r *Remote) isPrepared(lib Library) bool {
	owner, ok := r.prepared.Load(lib.ID)
	return ok && owner == lib.Owner
}

// prepareBatch is how many libraries one statement of PrepareMany covers: 500 rows of
// three values stay far below MySQL's 65 535 placeholders and its smallest packet size.
const prepareBatch = 500

// PrepareMany does most of Prepare's work for many libraries in a few statements, ahead
// of their syncs: one SELECT and at most one multi-row INSERT per prepareBatch libraries.
// A first scan of a server with 10 000 libraries otherwise inserts their tokens one
// autocommit at a time, each a commit MariaDB must flush (bench, 2026-11-28: 34.8 s and
// 6.4 CPU-s of MariaDB, against 29.1 s and 2.5 with batches). It settles only what is
// plainly missing or present: a library it leaves (no owner, a token row naming
// another owner, a batch that failed or raced with another seafbak) goes through
// Prepare at its sync, which reports that library's own error. So its error is only
// for the log.
func (r *Remote) PrepareMany(ctx context.Context, libs []Library) error {
	var todo []Library
	for _, lib := range libs {
		if lib.Owner == "" || object.CheckRepoID(lib.ID) != nil {
			continue
		}
		if !r.isPrepared(lib) {
			todo = append(todo, lib)
		}
	}
	var errs []error
	for len(todo) > 0 {
		n := min(len(todo), prepareBatch)
		if _, err := r.prepareBatch(ctx, todo[:n]); err != nil {
			errs = append(errs, err)
			if ctx.Err() != nil {
				break
			}
		}
		todo = todo[n:]
	}
	return errors.Join(errs...)
}

// prepareBatch reads the token rows of libs and inserts the missing ones in one
// statement. It returns the libraries whose row names another owner, untouched.
func (r *Remote) prepareBatch(ctx context.Context, libs []Library) (stale []Library, err error) {
	marks := strings.Repeat(",?", len(libs))[1:]
	tokens := make([]string, len(libs))
	args := make([]any, 2*len(libs))
	for i, lib := range libs {
		tokens[i] = Token(r.syncToken, lib.ID)
		args[i], args[len(libs)+i] = lib.ID, tokens[i]
	}
	// UNIQUE(repo_id, token) answers it from the index; the token too, so that the
	// desktop clients' rows (one per device and library) stay out of the answer.
	rows, err := r.sqlDB.QueryContext(ctx, "SELECT repo_id, token, email FROM RepoUserToken WHERE repo_id IN ("+marks+") AND token IN ("+marks+")", args...)
	if err != nil {
		return nil, fmt.Errorf("primary db: read RepoUserToken: %w%s", err, grantHint(err))
	}
	type row struct{ repo, token string }
	have := make(map[row]string, len(libs)) // the email of each (repo, token) row
	for rows.Next() {
		var k row
		var email string
		if err := rows.Scan(&k.repo, &k.token, &email); err != nil {
			rows.Close()
			return nil, fmt.Errorf("primary db: read RepoUserToken: %w", err)
		}
		have[k] = email
	}
	if err := rows.Err(); err != nil {
		rows.Close()
		return nil, fmt.Errorf("primary db: read RepoUserToken: %w", err)
	}
	rows.Close()
	var add []Library
	values := make([]any, 0, 3*len(libs))
	for i, lib := range libs {
		token := tokens[i]
		email, found := have[row{lib.ID, token}]
		switch {
		case !found:
			add = append(add, lib)
			values = append(values, lib.ID, lib.Owner, token)
		case email == lib.Owner:
			r.prepared.Store(lib.ID, lib.Owner)
		default:
			stale = append(stale, lib)
		}
	}
	if len(add) == 0 {
		return stale, nil
	}
	// One statement is one commit, and all or nothing: a row another seafbak inserted
	// meanwhile fails the whole batch (1062), and those libraries prepare one by one.
	_, err = r.sqlDB.ExecContext(ctx, "INSERT INTO RepoUserToken (repo_id, email, token) VALUES "+strings.Repeat(",(?,?,?)", len(add))[1:], values...)
	if err != nil {
		return stale, fmt.Errorf("primary db: create library tokens in RepoUserToken (%d): %w%s", len(add), err, grantHint(err))
	}
	for _, lib := range add {
		r.prepared.Store(lib.ID, lib.Owner)
	}
	return stale, nil
}

func grantHint(err error) string {
	if n := dbconn.ErrorNumber(err); n == dbconn.ErTableAccessDenied || n == dbconn.ErColumnAccessDenied || n == dbconn.ErDBAccessDenied {
		return " (grant seafbak SELECT and INSERT on RepoUserToken: see the README's MySQL grants)"
	}
	if strings.Contains(err.Error(), "denied") {
		return " (see the README's MySQL grants)"
	}
	return ""
}
