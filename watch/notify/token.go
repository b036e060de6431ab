package notify

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"seafbak/sync/primary"
)

// Tokens hands out the JWT that lets this host subscribe to one library. Seafile's
// notification server has no wildcard: every library needs its own token, whose
// repo_id claim names it.
type Tokens interface {
	Token(ctx context.Context, lib primary.Library) (string, error)
}

// Fetcher is a Tokens that asks the primary's file server (GET jwt-token with the
// library's sync token): it needs no secret of the Seafile server, only that the file
// server runs with ENABLE_NOTIFICATION_SERVER=true.
type Fetcher interface {
	NotificationToken(ctx context.Context, lib primary.Library) (string, error)
}

// Fetched adapts a Fetcher (primary.Remote) to Tokens.
type Fetched struct{ Fetcher }

func (f Fetched) Token(ctx context.Context, lib primary.Library) (string, error) {
	return f.NotificationToken(ctx, lib)
}

// MintTTL is how long a minted token is valid: what the file server gives its own.
const MintTTL = 72 * time.Hour

// Minter signs tokens itself with the Seafile server's JWT_PRIVATE_KEY, as the file
// server does (HS256; claims exp, repo_id, username). It spares one request per library
// and works with the data_dir source, where there is no file server to ask.
type Minter struct {
	Key []byte
	Now func() time.Time // default time.Now
}

func (m Minter) Token(_ context.Context, lib primary.Library) (string, error) {
	if len(m.Key) == 0 {
		return "", errors.New("notification token: no JWT private key")
	}
	now := time.Now
	if m.Now != nil {
		now = m.Now
	}
	// The username claim matters only for folder-permission events, which seafbak
	// ignores; the owner is the user the file server would name too.
	t := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"exp":      now().Add(MintTTL).Unix(),
		"repo_id":  lib.ID,
		"username": lib.Owner,
	})
	s, err := t.SignedString(m.Key)
	if err != nil {
		return "", fmt.Errorf("library %s: sign notification token: %w", lib.ID, err)
	}
	return s, nil
}

// expiry reads a token's exp claim without checking its signature (seafbak need not
// know the key of a fetched token; the notification server checks it). A token without
// a readable exp is taken to last an hour: it is renewed then, or when the server says
// it expired.
func expiry(token string, now time.Time) time.Time {
	claims := jwt.MapClaims{}
	if _, _, err := jwt.NewParser().ParseUnverified(token, claims); err == nil {
		if exp, err := claims.GetExpirationTime(); err == nil && exp != nil {
			return exp.Time
		}
	}
	return now.Add(time.Hour)
}
