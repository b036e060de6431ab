package primary

import (
	"strings"
	"testing"
)

// The token is hex(HMAC-SHA1(sync_token, repo_id)), as documented for admins; the
// expected value was computed independently (Python's hmac module).
func TestToken(t *testing.T) {
	got := Token("seafbak-test-sync-token-0123456789", "7b89d49b-5c5c-4f42-8ded-940c84a3e206")
	if got != "6b41fb1d49537fcf6fffddf0836b56e3664e9f43" {
		t.Fatalf("token %s", got)
	}
}

func TestNewHTTPRefusesBadSettings(t *testing.T) {
	for _, o := range []HTTPOptions{
		{URL: "ftp://host/seafhttp", SyncToken: "x"},
		{URL: "https:///seafhttp", SyncToken: "x"},
		{URL: "https://host/seafhttp"},
		{URL: "https://host/seafhttp", SyncToken: "x", CAFile: "/nonexistent/ca.pem"},
	} {
		if _, err := NewHTTP(o); err == nil {
			t.Errorf("%+v accepted", o)
		} else if o.SyncToken != "" && strings.Contains(err.Error(), o.SyncToken+"@") {
			t.Errorf("error shows the token: %v", err)
		}
	}
}
