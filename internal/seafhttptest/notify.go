package seafhttptest

import (
	"fmt"
	"net/http"
	"time"

	"seafbak/internal/notiftest"
)

// jwtToken is the file server's getJWTTokenCB: 404 (empty body) unless notifications
// are enabled; then the library token is validated (no permission check) and a 72-hour
// HS256 token for the repo and the token's user is returned.
func (s *Server) jwtToken(w http.ResponseWriter, r *http.Request, vars []string) *appError {
	if s.opts.NotificationURL == "" || len(s.opts.JWTKey) == 0 {
		return &appError{code: http.StatusNotFound}
	}
	repoID := vars[0]
	user, e := s.validateToken(r, repoID, false)
	if e != nil {
		return e
	}
	token := notiftest.Token(s.opts.JWTKey, repoID, user, time.Now().Add(72*time.Hour))
	fmt.Fprintf(w, "{\"jwt_token\":\"%s\"}", token)
	return nil
}

// BranchUpdated does what the file server does after it moved a library's branch
// (fileop.go onBranchUpdated): with notifications enabled it POSTs a repo-update event
// to the notification server, from the caller's goroutine (the real one posts from
// inside the upload request). Tests call it after writing a commit and its Branch row.
// Without notifications it does nothing.
func (s *Server) BranchUpdated(repoID, commitID string) error {
	if s.opts.NotificationURL == "" || len(s.opts.JWTKey) == 0 {
		return nil
	}
	return notiftest.PostEvent(s.opts.NotificationURL, s.opts.JWTKey, repoID, commitID)
}
