package seafhttptest

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"seafbak/internal/notiftest"
)

func TestJWTToken(t *testing.T) {
	t.Parallel()
	// Without notifications: 404 with an empty body, before the token is looked at.
	f := newFixture(t, Options{})
	f.want(f.get(repoPath(realRepo, "jwt-token")), 404, "\n")

	n := &notiftest.Server{Key: []byte("k")}
	url, err := n.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer n.Stop()
	f = newFixture(t, Options{NotificationURL: url, JWTKey: []byte("k")})
	f.want(f.do(http.MethodGet, repoPath(realRepo, "jwt-token"), nil, "Seafile-Repo-Token", "bad"), 403, "Failed to get email by token bad\n")
	r := f.get(repoPath(realRepo, "jwt-token/"))
	var v struct {
		Token string `json:"jwt_token"`
	}
	if r.code != 200 || json.Unmarshal(r.body, &v) != nil {
		t.Fatalf("got %d %q", r.code, r.body)
	}
	claims := jwt.MapClaims{}
	if _, err := jwt.ParseWithClaims(v.Token, claims, func(*jwt.Token) (any, error) { return []byte("k"), nil }); err != nil {
		t.Fatal(err)
	}
	exp, _ := claims.GetExpirationTime()
	if claims["repo_id"] != realRepo || claims["username"] != realOwner || exp == nil || time.Until(exp.Time) < 71*time.Hour {
		t.Fatalf("claims %v", claims)
	}
	if n := f.srv.Requests(RouteJWTToken); n != 2 {
		t.Errorf("Requests(jwt-token) = %d", n)
	}
	// BranchUpdated posts the event the notification server accepts.
	if err := f.srv.BranchUpdated(realRepo, realHead); err != nil {
		t.Fatal(err)
	}
}
