package notiftest

import (
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

const repo = "0e4d2a66-1b2c-4d5e-8f90-123456789abc"

var key = []byte("k")

func dial(t *testing.T, url string) *websocket.Conn {
	t.Helper()
	c, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func readFrame(t *testing.T, c *websocket.Conn) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	_, data, err := c.ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// The stand-in answers as the real server was read to: routes, event auth, jwt-expired
// per bad token, events to subscribers only, drop without close frame on a bad type.
func TestStandInBehaviour(t *testing.T) {
	s := &Server{Key: key}
	url, err := s.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	base := "http://" + strings.TrimSuffix(strings.TrimPrefix(url, "ws://"), "/")
	for path, want := range map[string]int{"/ping": 200, "/ping/": 200, "/other": 404, "/": 400} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want || (want == 200 && string(body) != "{\"ret\": \"pong\"}\n") {
			t.Errorf("GET %s: %d %q", path, resp.StatusCode, body)
		}
	}
	// /events without a valid token: 400, nothing delivered.
	req, _ := http.NewRequest(http.MethodPost, base+"/events", strings.NewReader(`{"type":"repo-update","content":{"repo_id":"`+repo+`"}}`))
	req.Header.Set("Authorization", "Token "+Token([]byte("other"), repo, "", time.Now().Add(time.Minute)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 400 || string(body) != "Notification token not match\n" {
		t.Fatalf("bad event token: %d %q", resp.StatusCode, body)
	}

	c := dial(t, url)
	good := Token(key, repo, "u", time.Now().Add(time.Hour))
	other := "1e4d2a66-1b2c-4d5e-8f90-123456789abc"
	if err := c.WriteJSON(map[string]any{"type": "subscribe", "content": map[string]any{"repos": []map[string]string{
		{"id": repo, "jwt_token": good}, {"id": other, "jwt_token": good}}}}); err != nil {
		t.Fatal(err)
	}
	if f := readFrame(t, c); f != `{"type":"jwt-expired","content":{"repo_id":"`+other+`"}}`+"\n" {
		t.Fatalf("frame %q", f)
	}
	for s.Subscribed(repo) != 1 {
		time.Sleep(10 * time.Millisecond)
	}
	if s.Subscribed(other) != 0 {
		t.Fatal("a token for another repo subscribed it")
	}
	if err := PostEvent(url, key, repo, strings.Repeat("c", 40)); err != nil {
		t.Fatal(err)
	}
	if f := readFrame(t, c); !strings.HasPrefix(f, `{"type":"repo-update","content":{"repo_id":"`+repo+`","commit_id":"`) || !strings.HasSuffix(f, "}}\n") {
		t.Fatalf("event frame %q", f)
	}
	// An unknown type drops the connection without a close frame.
	if err := c.WriteJSON(map[string]any{"type": "hello", "content": map[string]any{}}); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	_, _, err = c.ReadMessage()
	var ce *websocket.CloseError
	var ne net.Error
	if err == nil || (errors.As(err, &ce) && ce.Code != websocket.CloseAbnormalClosure) || (errors.As(err, &ne) && ne.Timeout()) {
		t.Fatalf("after an unknown type: %v", err)
	}
}
