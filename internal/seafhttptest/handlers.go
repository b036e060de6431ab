package seafhttptest

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
)

// Handlers, one per route, in the order and with the answers of
// fileserver/sync_api.go and fileserver/fileserver.go.

func (s *Server) protocolVersion(w http.ResponseWriter, r *http.Request, _ []string) *appError {
	io.WriteString(w, `{"version": 2}`)
	return nil
}

var errNotImplemented = &appError{msg: "not implemented by seafhttptest", code: http.StatusNotImplemented}

// headCommitOper: GET reads the head; PUT (updating the branch) is not
// implemented here; any other method is 400.
func (s *Server) headCommitOper(w http.ResponseWriter, r *http.Request, vars []string) *appError {
	switch r.Method {
	case http.MethodGet:
		return s.getHeadCommit(w, r, vars[0])
	case http.MethodPut:
		return errNotImplemented
	}
	return &appError{code: http.StatusBadRequest}
}

// getHeadCommit: the Repo row is checked before the token (no row: 444); a
// database error answers 200 {"is_corrupted": 1}; only the token is checked,
// not the permission; no master branch: 400.
func (s *Server) getHeadCommit(w http.ResponseWriter, r *http.Request, repoID string) *appError {
	ctx, cancel := dbCtx()
	defer cancel()
	var exists bool
	if err := s.db.QueryRowContext(ctx, "SELECT EXISTS(SELECT 1 FROM Repo WHERE repo_id=?)", repoID).Scan(&exists); err != nil {
		if !errors.Is(err, sql.ErrNoRows) {
			s.logf("DB error when check repo %s existence: %v", repoID, err)
			w.WriteHeader(http.StatusOK)
			w.Write([]byte(`{"is_corrupted": 1}`))
			return nil
		}
	}
	if !exists {
		return &appError{code: 444}
	}
	if _, e := s.validateToken(r, repoID, false); e != nil {
		return e
	}
	var commitID string
	if err := s.db.QueryRowContext(ctx, "SELECT commit_id FROM Branch WHERE name='master' AND repo_id=?", repoID).Scan(&commitID); err != nil {
		if !errors.Is(err, sql.ErrNoRows) {
			s.logf("DB error when get branch master: %v", err)
			w.WriteHeader(http.StatusOK)
			w.Write([]byte(`{"is_corrupted": 1}`))
			return nil
		}
	}
	if commitID == "" {
		return &appError{code: http.StatusBadRequest}
	}
	w.WriteHeader(http.StatusOK)
	fmt.Fprintf(w, "{\"is_corrupted\": 0, \"head_commit_id\": \"%s\"}", commitID)
	return nil
}

func (s *Server) commitOper(w http.ResponseWriter, r *http.Request, vars []string) *appError {
	switch r.Method {
	case http.MethodGet:
		return s.getCommit(w, r, vars[0], vars[1])
	case http.MethodPut:
		return errNotImplemented
	}
	return &appError{code: http.StatusBadRequest}
}

// getCommit: token, read permission, then the raw bytes from the library's
// own commit store (not the origin's for a virtual library); missing: 404.
func (s *Server) getCommit(w http.ResponseWriter, r *http.Request, repoID, commitID string) *appError {
	user, e := s.validateToken(r, repoID, false)
	if e != nil {
		return e
	}
	if e := s.checkPermission(repoID, user, "download", false); e != nil {
		return e
	}
	if !s.objectExists(kindCommits, repoID, commitID) {
		return &appError{code: http.StatusNotFound}
	}
	data, err := s.readObject(kindCommits, repoID, commitID)
	if err != nil {
		return &appError{err: fmt.Errorf("Failed to read commit %s:%s: %w", repoID, commitID, err), code: http.StatusInternalServerError}
	}
	data = s.served(commitID, data)
	w.Header().Set("Content-Length", strconv.Itoa(len(data)))
	w.WriteHeader(http.StatusOK)
	w.Write(data)
	return nil
}

func (s *Server) blockOper(w http.ResponseWriter, r *http.Request, vars []string) *appError {
	switch r.Method {
	case http.MethodGet:
		return s.getBlock(w, r, vars[0], vars[1])
	case http.MethodPut:
		return errNotImplemented
	}
	return &appError{code: http.StatusBadRequest}
}

// getBlock: token, read permission, store id; a block that cannot be
// stat'ed (missing) or is empty is 500, not 404. The body is streamed with
// the stat'ed size as Content-Length.
func (s *Server) getBlock(w http.ResponseWriter, r *http.Request, repoID, blockID string) *appError {
	user, e := s.validateToken(r, repoID, false)
	if e != nil {
		return e
	}
	if e := s.checkPermission(repoID, user, "download", false); e != nil {
		return e
	}
	store, err := s.storeID(repoID)
	if err != nil {
		return &appError{err: fmt.Errorf("Failed to get repo store id by repo id %s: %w", repoID, err), code: http.StatusInternalServerError}
	}
	size, err := s.objectSize(kindBlocks, store, blockID)
	if err != nil {
		return &appError{err: err, code: http.StatusInternalServerError}
	}
	if size <= 0 {
		return &appError{err: fmt.Errorf("block %.8s:%s size invalid", store, blockID), code: http.StatusInternalServerError}
	}
	if s.isCorrupted(blockID) {
		data, err := s.readObject(kindBlocks, store, blockID)
		if err != nil {
			s.logf("failed to read block %s: %v", blockID, err)
			return nil
		}
		data = s.served(blockID, data)
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		w.Write(data)
		return nil
	}
	w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
	f, err := os.Open(s.objPath(kindBlocks, store, blockID))
	if err != nil {
		// Headers are not sent yet, but the file server returns nil here
		// too: net/http then answers 200 with an empty body.
		s.logf("failed to read block %s: %v", blockID, err)
		return nil
	}
	defer f.Close()
	if _, err := io.Copy(w, f); err != nil && !errors.Is(err, errCut) {
		s.logf("failed to read block %s: %v", blockID, err)
	}
	return nil
}

// fsIDList: the head parameters are checked (400) before the token; the
// library must load (repomgr.Get: Repo row, master branch, loadable head
// commit) or it is 500; any failure of the tree diff, including an unknown
// client-head or a missing fs object, is 500 with an empty body.
func (s *Server) fsIDList(w http.ResponseWriter, r *http.Request, vars []string) *appError {
	select {
	case s.fsIDSem <- struct{}{}:
		defer func() { <-s.fsIDSem }()
	case <-s.closed:
		return &appError{code: http.StatusServiceUnavailable}
	}
	repoID := vars[0]
	q := r.URL.Query()
	serverHead := q.Get("server-head")
	if !isObjectID(serverHead) {
		return &appError{msg: "Invalid server-head parameter.", code: http.StatusBadRequest}
	}
	clientHead := q.Get("client-head")
	if clientHead != "" && !isObjectID(clientHead) {
		return &appError{msg: "Invalid client-head parameter.", code: http.StatusBadRequest}
	}
	dirOnly := q.Get("dir-only") != ""
	user, e := s.validateToken(r, repoID, false)
	if e != nil {
		return e
	}
	if e := s.checkPermission(repoID, user, "download", false); e != nil {
		return e
	}
	repo := s.getRepo(repoID)
	if repo == nil {
		return &appError{err: fmt.Errorf("Failed to find repo %.8s", repoID), code: http.StatusInternalServerError}
	}
	ids, err := s.sendObjectList(r.Context(), repo.id, repo.storeID, serverHead, clientHead, dirOnly)
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return &appError{code: http.StatusInternalServerError}
		}
		return &appError{err: fmt.Errorf("Failed to get fs id list: %w", err), code: http.StatusInternalServerError}
	}
	data := []byte("[]")
	if ids != nil {
		data, _ = json.Marshal(ids)
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(data)))
	w.WriteHeader(http.StatusOK)
	w.Write(data)
	return nil
}

// headCommitsMulti: no token; the body is a JSON list of library ids; an
// empty list or an id that is not a UUID is 400 (empty body); the answer
// maps each id that has a master branch to its head, compact JSON with
// sorted keys. Libraries without a master branch are absent.
func (s *Server) headCommitsMulti(w http.ResponseWriter, r *http.Request, _ []string) *appError {
	var ids []string
	if err := json.NewDecoder(r.Body).Decode(&ids); err != nil {
		return &appError{err: err, code: http.StatusBadRequest}
	}
	if len(ids) == 0 {
		return &appError{code: http.StatusBadRequest}
	}
	var in strings.Builder
	for i, id := range ids {
		if !isValidUUID(id) {
			return &appError{code: http.StatusBadRequest}
		}
		// The ids are spliced into the query in quotes exactly as the file
		// server does: isValidUUID leaves at most the two ends of a
		// 38-character id free.
		if i > 0 {
			in.WriteByte(',')
		}
		fmt.Fprintf(&in, "'%s'", id)
	}
	ctx, cancel := dbCtx()
	defer cancel()
	rows, err := s.db.QueryContext(ctx, "SELECT repo_id, commit_id FROM Branch WHERE name='master' AND "+
		"repo_id IN ("+in.String()+") LOCK IN SHARE MODE")
	if err != nil {
		return &appError{err: fmt.Errorf("Failed to get commit id: %w", err), code: http.StatusInternalServerError}
	}
	defer rows.Close()
	heads := make(map[string]string)
	for rows.Next() {
		var repoID, commitID string
		if err := rows.Scan(&repoID, &commitID); err == nil {
			heads[repoID] = commitID
		}
	}
	if err := rows.Err(); err != nil {
		return &appError{err: fmt.Errorf("Failed to get commit id: %w", err), code: http.StatusInternalServerError}
	}
	data, err := json.Marshal(heads)
	if err != nil {
		return &appError{err: err, code: http.StatusInternalServerError}
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(data)))
	w.WriteHeader(http.StatusOK)
	w.Write(data)
	return nil
}

// packFS: token, read permission, store id, then the body (a JSON list of
// fs ids; undecodable: 400 with the decoder's message). Records are 40 ascii
// id bytes, a 4-byte big-endian length and the object exactly as stored.
// An invalid id is 400 and an unreadable object 500, for the whole request,
// when reached: the server stops adding objects as soon as the objects
// (headers not counted) reach MaxPackSize, so ids after that point are
// neither read nor checked.
func (s *Server) packFS(w http.ResponseWriter, r *http.Request, vars []string) *appError {
	repoID := vars[0]
	user, e := s.validateToken(r, repoID, false)
	if e != nil {
		return e
	}
	if e := s.checkPermission(repoID, user, "download", false); e != nil {
		return e
	}
	store, err := s.storeID(repoID)
	if err != nil {
		return &appError{err: fmt.Errorf("Failed to get repo store id by repo id %s: %w", repoID, err), code: http.StatusInternalServerError}
	}
	var ids []string
	if err := json.NewDecoder(r.Body).Decode(&ids); err != nil {
		return &appError{msg: err.Error(), code: http.StatusBadRequest}
	}
	var (
		buf       bytes.Buffer
		total     int
		lastStart = -1
		lastLen   int
	)
	for _, id := range ids {
		if !isObjectID(id) {
			return &appError{msg: fmt.Sprintf("Invalid fs id %s", id), code: http.StatusBadRequest}
		}
		obj, err := s.readObject(kindFS, store, id)
		if err != nil {
			return &appError{err: fmt.Errorf("Failed to read fs %s:%s: %w", store, id, err), code: http.StatusInternalServerError}
		}
		obj = s.served(id, obj)
		lastStart, lastLen = buf.Len(), len(obj)
		buf.WriteString(id)
		var n [4]byte
		binary.BigEndian.PutUint32(n[:], uint32(len(obj)))
		buf.Write(n[:])
		buf.Write(obj)
		total += len(obj)
		if total >= s.maxPack {
			break
		}
	}
	data := buf.Bytes()
	if lastStart >= 0 && s.takeTruncate() {
		data = data[:lastStart+44+lastLen/2]
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(data)))
	w.WriteHeader(http.StatusOK)
	w.Write(data)
	return nil
}

func (s *Server) checkFS(w http.ResponseWriter, r *http.Request, vars []string) *appError {
	return s.checkExist(w, r, vars[0], kindFS)
}

func (s *Server) checkBlocks(w http.ResponseWriter, r *http.Request, vars []string) *appError {
	return s.checkExist(w, r, vars[0], kindBlocks)
}

// checkExist answers check-fs and check-blocks: the ids of the list that
// the server does NOT have. Ids that are not valid are skipped silently (not
// 400); the empty fs id counts as present. Only read permission is needed.
func (s *Server) checkExist(w http.ResponseWriter, r *http.Request, repoID, kind string) *appError {
	user, e := s.validateToken(r, repoID, false)
	if e != nil {
		return e
	}
	if e := s.checkPermission(repoID, user, "download", false); e != nil {
		return e
	}
	store, err := s.storeID(repoID)
	if err != nil {
		return &appError{err: fmt.Errorf("Failed to get repo store id by repo id %s: %w", repoID, err), code: http.StatusInternalServerError}
	}
	var ids []string
	if err := json.NewDecoder(r.Body).Decode(&ids); err != nil {
		return &appError{msg: err.Error(), code: http.StatusBadRequest}
	}
	var needed []string
	for _, id := range ids {
		if !isObjectID(id) {
			continue
		}
		var ok bool
		if kind == kindFS && id == emptyID {
			ok = true
		} else {
			ok = s.objectExists(kind, store, id)
		}
		if !ok {
			needed = append(needed, id)
		}
	}
	data := []byte("[]")
	if needed != nil {
		data, _ = json.Marshal(needed)
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(data)))
	w.WriteHeader(http.StatusOK)
	w.Write(data)
	return nil
}

// permissionCheck: op must be download or upload, client_id 40 characters
// if given, client_ver three dot-separated integers if given; then the
// library (no Repo row with a master branch: 444 "repo was deleted";
// unloadable head or database error: 445 "repo was corrupted"), then the
// token and the permission, both without cache. 200 with an empty body.
func (s *Server) permissionCheck(w http.ResponseWriter, r *http.Request, vars []string) *appError {
	repoID := vars[0]
	q := r.URL.Query()
	op := q.Get("op")
	if op != "download" && op != "upload" {
		return &appError{msg: "op is invalid", code: http.StatusBadRequest}
	}
	if clientID := q.Get("client_id"); clientID != "" && len(clientID) != 40 {
		return &appError{msg: "client_id is invalid", code: http.StatusBadRequest}
	}
	if ver := q.Get("client_ver"); ver != "" && !validClientVer(ver) {
		return &appError{msg: "client_ver is invalid", code: http.StatusBadRequest}
	}
	repo := s.getRepoEx(repoID)
	if repo == nil {
		return &appError{msg: "repo was deleted", code: 444}
	}
	if repo.corrupted {
		return &appError{msg: "repo was corrupted", code: 445}
	}
	user, e := s.validateToken(r, repoID, true)
	if e != nil {
		return e
	}
	if e := s.checkPermission(repoID, user, op, true); e != nil {
		return e
	}
	if clientIP(r) == "" {
		return &appError{err: errors.New("failed to get client ip"), code: http.StatusInternalServerError}
	}
	return nil
}

func validClientVer(v string) bool {
	parts := strings.Split(v, ".")
	if len(parts) != 3 {
		return false
	}
	for _, p := range parts {
		if _, err := strconv.Atoi(p); err != nil {
			return false
		}
	}
	return true
}

// clientIP is getClientIPAddr: X-Forwarded-For, X-Real-Ip, then the peer.
func clientIP(r *http.Request) string {
	addr := strings.TrimSpace(strings.Split(r.Header.Get("X-Forwarded-For"), ",")[0])
	if ip := net.ParseIP(addr); ip != nil {
		return ip.String()
	}
	if ip := net.ParseIP(strings.TrimSpace(r.Header.Get("X-Real-Ip"))); ip != nil {
		return ip.String()
	}
	if host, _, err := net.SplitHostPort(strings.TrimSpace(r.RemoteAddr)); err == nil {
		if ip := net.ParseIP(host); ip != nil {
			return ip.String()
		}
	}
	return ""
}
