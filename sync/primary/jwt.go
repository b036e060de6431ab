package primary

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// ErrNotificationsOff is wrapped when the file server does not hand out notification
// tokens: it answers jwt-token with 404 unless it runs with ENABLE_NOTIFICATION_SERVER=true
// and INNER_NOTIFICATION_SERVER_URL set.
var ErrNotificationsOff = errors.New("the primary's file server hands out no notification tokens (HTTP 404 on jwt-token): set ENABLE_NOTIFICATION_SERVER=true and INNER_NOTIFICATION_SERVER_URL for it, or give seafbak primary.jwt_private_key (JWT_PRIVATE_KEY of the Seafile server) to mint them")

// NotificationToken asks the file server for a JWT with which the notification server
// lets this host subscribe to lib (GET /repo/<id>/jwt-token, with the library's token).
// The file server signs it for 72 hours.
func (h *HTTP) NotificationToken(ctx context.Context, lib Library) (string, error) {
	resp, err := h.do(ctx, request{method: "GET", path: "/repo/" + lib.ID + "/jwt-token", repoID: lib.ID})
	if err != nil {
		var se *statusError
		if errors.As(err, &se) && se.code == http.StatusNotFound {
			return "", ErrNotificationsOff
		}
		return "", fmt.Errorf("library %s: notification token: %w", lib.ID, h.libraryError(lib, err))
	}
	data, err := readAll(resp, 4096)
	if err != nil {
		return "", fmt.Errorf("library %s: notification token: %w", lib.ID, err)
	}
	var v struct {
		Token string `json:"jwt_token"`
	}
	// Three base64url parts; the notification server checks the rest.
	if json.Unmarshal(data, &v) != nil || strings.Count(v.Token, ".") != 2 || len(v.Token) > 2048 {
		return "", fmt.Errorf("library %s: notification token: jwt-token answered %q, not {\"jwt_token\": \"<jwt>\"}", lib.ID, truncate(string(data)))
	}
	return v.Token, nil
}

// NotificationToken makes sure the library's token exists on the primary, then asks the
// file server for a notification token with it.
func (r *Remote) NotificationToken(ctx context.Context, lib Library) (string, error) {
	if err := r.Prepare(ctx, lib); err != nil {
		return "", err
	}
	return r.HTTP.NotificationToken(ctx, lib)
}
