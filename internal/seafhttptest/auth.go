package seafhttptest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// dbOpTimeout is the file server's default DB operation timeout
// (option.DBOpTimeout). Like the file server, queries do not follow the
// request's context: a client hanging up does not cancel them.
const dbOpTimeout = 60 * time.Second

func dbCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), dbOpTimeout)
}

// appError is what a handler returns instead of writing an answer; it is
// written with http.Error(w, msg, code) as the file server's appHandler does
// (so an empty msg gives the body "\n").
type appError struct {
	err  error // logged for 500s, never sent
	msg  string
	code int
}

// ttlCache is a map with per-entry expiry. The file server keeps its token,
// permission and virtual-repo caches in sync.Maps whose entries a sweeper
// removes every 5 minutes once expired (so they live 2 h to 2 h 5 min); here
// an entry is simply invalid from its expiry on. A TTL <= 0 disables
// storing.
type ttlCache[T any] struct {
	mu sync.Mutex
	m  map[string]ttlEntry[T]
}

type ttlEntry[T any] struct {
	v      T
	expire time.Time
}

func (c *ttlCache[T]) get(key string, now time.Time) (T, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[key]
	if !ok {
		var zero T
		return zero, false
	}
	if !now.Before(e.expire) {
		delete(c.m, key)
		var zero T
		return zero, false
	}
	return e.v, true
}

// touch extends an entry's life (the virtual-repo cache does this on a hit).
func (c *ttlCache[T]) touch(key string, expire time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.m[key]; ok {
		e.expire = expire
		c.m[key] = e
	}
}

func (c *ttlCache[T]) set(key string, v T, expire time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[string]ttlEntry[T])
	}
	c.m[key] = ttlEntry[T]{v: v, expire: expire}
}

func (c *ttlCache[T]) del(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, key)
}

func (c *ttlCache[T]) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m = nil
}

type tokenInfo struct {
	repoID, email string
}

// cacheExpiry returns when an entry stored now expires and whether to store
// it at all.
func (s *Server) cacheExpiry() (time.Time, bool) {
	ttl := time.Duration(s.cacheTTL.Load())
	if ttl <= 0 {
		return time.Time{}, false
	}
	return s.now().Add(ttl), true
}

// requestToken is how validateToken finds the token: the Seafile-Repo-Token
// header, else the second space-separated word of Authorization (any
// scheme: utils.GetAuthorizationToken only splits on " ").
func requestToken(r *http.Request) string {
	if t := r.Header.Get("Seafile-Repo-Token"); t != "" {
		return t
	}
	parts := strings.Split(r.Header.Get("Authorization"), " ")
	if len(parts) > 1 {
		return parts[1]
	}
	return ""
}

// validateToken is sync_api.go's validateToken: the token is looked up in
// RepoUserToken for this repo; the cache is keyed by the token alone, so a
// cached token presented for another library is refused ("Invalid token").
func (s *Server) validateToken(r *http.Request, repoID string, skipCache bool) (string, *appError) {
	token := requestToken(r)
	if token == "" {
		return "", &appError{msg: "token is null", code: http.StatusBadRequest}
	}
	if !skipCache {
		if info, ok := s.tokenCache.get(token, s.now()); ok {
			if info.repoID != repoID {
				return "", &appError{msg: "Invalid token", code: http.StatusForbidden}
			}
			return info.email, nil
		}
	}
	email, err := s.emailByToken(repoID, token)
	if err != nil {
		s.tokenCache.del(token)
		return email, &appError{err: err, code: http.StatusInternalServerError}
	}
	if email == "" {
		s.tokenCache.del(token)
		return email, &appError{msg: fmt.Sprintf("Failed to get email by token %s", token), code: http.StatusForbidden}
	}
	if exp, ok := s.cacheExpiry(); ok {
		s.tokenCache.set(token, tokenInfo{repoID: repoID, email: email}, exp)
	}
	return email, nil
}

func (s *Server) emailByToken(repoID, token string) (string, error) {
	ctx, cancel := dbCtx()
	defer cancel()
	var email string
	err := s.db.QueryRowContext(ctx, "SELECT email FROM RepoUserToken WHERE repo_id = ? AND token = ?", repoID, token).Scan(&email)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return email, err
	}
	return email, nil
}

// checkPermission is sync_api.go's checkPermission: any permission ("r" or
// "rw") allows "download"; "upload" also needs a normal repo status and
// "rw". Grants are cached per repo:user:op.
func (s *Server) checkPermission(repoID, user, op string, skipCache bool) *appError {
	key := repoID + ":" + user + ":" + op
	if !skipCache {
		if _, ok := s.permCache.get(key, s.now()); ok {
			return nil
		}
	}
	s.permCache.del(key)
	if op == "upload" {
		status, err := s.repoStatus(repoID)
		if err != nil {
			return &appError{msg: fmt.Sprintf("Failed to get repo status by repo id %s: %v", repoID, err), code: http.StatusForbidden}
		}
		if status != 0 && status != -1 {
			return &appError{code: http.StatusForbidden}
		}
	}
	perm := s.checkPerm(repoID, user)
	if perm != "" {
		if perm == "r" && op == "upload" {
			return &appError{code: http.StatusForbidden}
		}
		if exp, ok := s.cacheExpiry(); ok {
			s.permCache.set(key, perm, exp)
		}
		return nil
	}
	return &appError{code: http.StatusForbidden}
}

// repoStatus is repomgr.GetRepoStatus: the origin's RepoInfo.status for a
// virtual library, else the library's own, -1 when there is none.
func (s *Server) repoStatus(repoID string) (int, error) {
	ctx, cancel := dbCtx()
	defer cancel()
	status := -1
	err := s.db.QueryRowContext(ctx, "SELECT i.status FROM VirtualRepo v LEFT JOIN RepoInfo i "+
		"ON i.repo_id=v.origin_repo WHERE v.repo_id=? AND i.repo_id IS NOT NULL", repoID).Scan(&status)
	if err != nil {
		if !errors.Is(err, sql.ErrNoRows) {
			return status, err
		}
		status = -1
	}
	if status >= 0 {
		return status, nil
	}
	err = s.db.QueryRowContext(ctx, "SELECT status FROM RepoInfo WHERE repo_id=?", repoID).Scan(&status)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return status, err
	}
	return status, nil
}

// checkPerm is share.CheckPerm.
func (s *Server) checkPerm(repoID, user string) string {
	origin, vpath, ok := s.virtualRepoInfo(repoID)
	if ok {
		return s.checkVirtualRepoPerm(origin, user, vpath)
	}
	return s.checkRepoSharePerm(repoID, user)
}

// virtualRepoInfo is repomgr.GetVirtualRepoInfo; a row with NULLs fails to
// scan there and so counts as "not virtual", as here.
func (s *Server) virtualRepoInfo(repoID string) (origin, vpath string, ok bool) {
	ctx, cancel := dbCtx()
	defer cancel()
	var id, base string
	err := s.db.QueryRowContext(ctx, "SELECT repo_id, origin_repo, path, base_commit FROM VirtualRepo WHERE repo_id = ?", repoID).
		Scan(&id, &origin, &vpath, &base)
	if err != nil {
		if !errors.Is(err, sql.ErrNoRows) {
			s.logf("get virtual repo info of %s: %v", repoID, err)
		}
		return "", "", false
	}
	return origin, vpath, true
}

// checkVirtualRepoPerm: the ORIGIN's owner has "rw"; otherwise folder shares
// of the origin covering the virtual library's path (to the user, then to
// the user's groups); otherwise the user's permission on the origin. The
// virtual library's own RepoOwner row is not consulted.
func (s *Server) checkVirtualRepoPerm(originID, user, vpath string) string {
	owner := s.repoOwner(originID)
	if owner != "" && owner == user {
		return "rw"
	}
	if perm := s.checkPermOnParentRepo(originID, user, vpath); perm != "" {
		return perm
	}
	return s.checkRepoSharePerm(originID, user)
}

// repoOwner is repomgr.GetRepoOwner: RepoOwner only. OrgRepo is not read by
// the Go file server's permission check.
func (s *Server) repoOwner(repoID string) string {
	ctx, cancel := dbCtx()
	defer cancel()
	var owner string
	err := s.db.QueryRowContext(ctx, "SELECT owner_id FROM RepoOwner WHERE repo_id=?", repoID).Scan(&owner)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		s.logf("get repo owner of %s: %v", repoID, err)
		return ""
	}
	return owner
}

// checkRepoSharePerm is share.checkRepoSharePerm: owner (RepoOwner, exact
// string comparison) -> "rw"; else SharedRepo to the user; else the best
// RepoGroup permission of the user's groups; else, unless CloudMode,
// InnerPubRepo.
func (s *Server) checkRepoSharePerm(repoID, user string) string {
	owner := s.repoOwner(repoID)
	if owner != "" && owner == user {
		return "rw"
	}
	ctx, cancel := dbCtx()
	defer cancel()
	var perm string
	err := s.db.QueryRowContext(ctx, "SELECT permission FROM SharedRepo WHERE repo_id=? AND to_email=?", repoID, user).Scan(&perm)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		s.logf("check shared repo permission: %v", err)
		perm = ""
	}
	if perm != "" {
		return perm
	}
	perm, err = s.checkGroupPermByUser(repoID, user)
	if err != nil {
		s.logf("get group permission by user %s: %v", user, err)
	}
	if perm != "" {
		return perm
	}
	if !s.opts.CloudMode {
		err := s.db.QueryRowContext(ctx, "SELECT permission FROM InnerPubRepo WHERE repo_id=?", repoID).Scan(&perm)
		if err != nil {
			if !errors.Is(err, sql.ErrNoRows) {
				s.logf("get inner public repo permission of %s: %v", repoID, err)
			}
			return ""
		}
		return perm
	}
	return ""
}

type group struct{ id int }

// groupsByUser is share.getGroupsByUser(user, false), on the ccnet database.
// Rows that fail to scan (e.g. a NULL parent_group_id) are skipped, as there.
func (s *Server) groupsByUser(user string) ([]group, error) {
	if s.opts.CcnetDB == nil {
		return nil, errors.New("no ccnet database configured (Options.CcnetDB)")
	}
	ctx, cancel := dbCtx()
	defer cancel()
	q := fmt.Sprintf("SELECT g.group_id, group_name, creator_name, timestamp, parent_group_id FROM "+
		"`%s` g, GroupUser u WHERE g.group_id = u.group_id AND user_name=? ORDER BY g.group_id DESC", s.groupTable)
	rows, err := s.opts.CcnetDB.QueryContext(ctx, q, user)
	if err != nil {
		return nil, fmt.Errorf("Failed to get groups by user %s: %w", user, err)
	}
	defer rows.Close()
	var groups []group
	for rows.Next() {
		var (
			g                   group
			name, creator       string
			timestamp, parentID int64
		)
		if err := rows.Scan(&g.id, &name, &creator, &timestamp, &parentID); err == nil {
			groups = append(groups, g)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return groups, nil
}

func groupIDList(groups []group) string {
	ids := make([]string, len(groups))
	for i, g := range groups {
		ids[i] = strconv.Itoa(g.id)
	}
	return strings.Join(ids, ",")
}

// checkGroupPermByUser: "rw" from any group wins over "r".
func (s *Server) checkGroupPermByUser(repoID, user string) (string, error) {
	groups, err := s.groupsByUser(user)
	if err != nil {
		return "", err
	}
	if len(groups) == 0 {
		return "", nil
	}
	ctx, cancel := dbCtx()
	defer cancel()
	rows, err := s.db.QueryContext(ctx, "SELECT permission FROM RepoGroup WHERE repo_id = ? AND group_id IN ("+groupIDList(groups)+")", repoID)
	if err != nil {
		return "", err
	}
	defer rows.Close()
	var best string
	for rows.Next() {
		var perm string
		if err := rows.Scan(&perm); err == nil {
			if perm == "rw" {
				best = perm
			} else if perm == "r" && best == "" {
				best = perm
			}
		}
	}
	return best, rows.Err()
}

// checkPermOnParentRepo is share.checkPermOnParentRepo.
func (s *Server) checkPermOnParentRepo(originID, user, vpath string) string {
	userPerms, err := s.sharedDirs("SELECT v.path, s.permission FROM SharedRepo s, VirtualRepo v WHERE "+
		"s.repo_id = v.repo_id AND s.to_email = ? AND v.origin_repo = ?", user, originID)
	if err != nil {
		s.logf("get shared folder perms of %s for %s: %v", originID, user, err)
		return ""
	}
	if len(userPerms) > 0 {
		if perm := dirPerm(userPerms, vpath); perm != "" {
			return perm
		}
	}
	groups, err := s.groupsByUser(user)
	if err != nil {
		s.logf("get groups of %s: %v", user, err)
	}
	if len(groups) == 0 {
		return ""
	}
	groupPerms, err := s.sharedDirs("SELECT v.path, s.permission FROM RepoGroup s, VirtualRepo v WHERE "+
		"s.repo_id = v.repo_id AND v.origin_repo = ? AND s.group_id in ("+groupIDList(groups)+")", originID)
	if err != nil {
		s.logf("get group shared folder perms of %s: %v", originID, err)
		return ""
	}
	if len(groupPerms) == 0 {
		return ""
	}
	return dirPerm(groupPerms, vpath)
}

func (s *Server) sharedDirs(q string, args ...any) (map[string]string, error) {
	ctx, cancel := dbCtx()
	defer cancel()
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	dirs := make(map[string]string)
	for rows.Next() {
		var p, perm string
		if err := rows.Scan(&p, &perm); err == nil {
			dirs[p] = perm
		}
	}
	return dirs, rows.Err()
}

// dirPerm is share.getDirPerm: the permission of the nearest shared folder
// at or above p.
func dirPerm(perms map[string]string, p string) string {
	for t := p; t != "/" && t != "." && t != ""; t = filepath.Dir(t) {
		if perm, ok := perms[t]; ok {
			return perm
		}
	}
	return ""
}

// storeID is sync_api.go's getRepoStoreID: the origin for a virtual library
// (cached, the cache entry's life extended on each hit), else the library.
func (s *Server) storeID(repoID string) (string, error) {
	if st, ok := s.vrepoCache.get(repoID, s.now()); ok {
		if exp, ok := s.cacheExpiry(); ok {
			s.vrepoCache.touch(repoID, exp)
		}
		if st != "" {
			return st, nil
		}
		return repoID, nil
	}
	ctx, cancel := dbCtx()
	defer cancel()
	var id, origin sql.NullString
	err := s.db.QueryRowContext(ctx, "SELECT repo_id, origin_repo FROM VirtualRepo where repo_id = ?", repoID).Scan(&id, &origin)
	if err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			if exp, ok := s.cacheExpiry(); ok {
				s.vrepoCache.set(repoID, repoID, exp)
			}
			return repoID, nil
		}
		return "", err
	}
	if !id.Valid || !origin.Valid {
		return "", nil
	}
	if exp, ok := s.cacheExpiry(); ok {
		s.vrepoCache.set(repoID, origin.String, exp)
	}
	return origin.String, nil
}

// repoRow is what repomgr.Get / GetEx read: the library joined with its
// master branch and VirtualRepo row.
type repoRow struct {
	id, head, storeID string
	corrupted         bool
}

const repoQuery = "SELECT r.repo_id, b.commit_id, v.origin_repo, v.path, v.base_commit FROM " +
	"Repo r LEFT JOIN Branch b ON r.repo_id = b.repo_id " +
	"LEFT JOIN VirtualRepo v ON r.repo_id = v.repo_id " +
	"WHERE r.repo_id = ? AND b.name = 'master'"

// getRepoEx is repomgr.GetEx: nil when there is no Repo row with a master
// branch; corrupted when the database fails, the head is empty or the head
// commit cannot be loaded.
func (s *Server) getRepoEx(repoID string) *repoRow {
	ctx, cancel := dbCtx()
	defer cancel()
	r := new(repoRow)
	rows, err := s.db.QueryContext(ctx, repoQuery, repoID)
	if err != nil {
		r.corrupted = true
		return r
	}
	defer rows.Close()
	var origin, vpath, base sql.NullString
	if rows.Next() {
		if err := rows.Scan(&r.id, &r.head, &origin, &vpath, &base); err != nil {
			r.corrupted = true
			return r
		}
	} else if rows.Err() != nil {
		r.corrupted = true
		return r
	} else {
		return nil
	}
	if origin.Valid {
		r.storeID = origin.String
	} else {
		r.storeID = r.id
	}
	if r.head == "" {
		r.corrupted = true
		return r
	}
	if _, err := s.loadCommit(r.id, r.head); err != nil {
		s.logf("failed to load commit %s/%s : %v", r.id, r.head, err)
		r.corrupted = true
	}
	return r
}

// getRepo is repomgr.Get: like getRepoEx but nil for a corrupted library.
func (s *Server) getRepo(repoID string) *repoRow {
	r := s.getRepoEx(repoID)
	if r == nil || r.corrupted {
		return nil
	}
	return r
}
