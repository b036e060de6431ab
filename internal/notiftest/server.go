// Package notiftest is a test stand-in for Seafile's notification server
// (haiwen/seafile-server, notification-server/: server.go, client.go, event.go),
// written from seafile-format.md §5 and that source, over a real websocket
// (gorilla/websocket, as the real one). It behaves as the real server was read and
// seen to:
//
//   - "/" (exact path; any method) upgrades to a websocket; "/events[/]" takes the
//     file server's POSTed events, authorized by "Authorization: Token <jwt>" signed
//     with the key (else 400 "Notification token not match"); "/ping[/]" answers
//     {"ret": "pong"}; any other path is 404.
//   - A client subscribes with {"type":"subscribe","content":{"repos":[{"id","jwt_token"}]}}
//     and unsubscribes likewise. A token that fails (signature, repo_id, exp) gets a
//     jwt-expired frame for that repo and the rest of the frame stands. Any other type,
//     or a frame that is not JSON, drops the connection without a close frame.
//   - Events go to every connection subscribed to the repo, as JSON frames ending in
//     "\n"; nothing is stored or replayed.
//   - It pings every second; a client silent for 5 s (no pong) is given up: no more
//     pings or events, yet the socket stays open until the client next writes.
//   - Subscribed tokens' expiry is checked every TokenCheck (an hour on the real one):
//     expired ones are unsubscribed with a jwt-expired frame.
package notiftest

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"
)

// The real server's timings (client.go).
const (
	writeWait  = time.Second
	pongWait   = 5 * time.Second
	pingPeriod = time.Second
)

// message is the real server's Message: every frame it writes.
type message struct {
	Type    string          `json:"type"`
	Content json.RawMessage `json:"content"`
}

// Server is one notification server. Start it, Stop it (every connection dropped, as
// a restart does), Start it again on the same address.
type Server struct {
	Key []byte // JWT_PRIVATE_KEY
	// TokenCheck is how often subscribed tokens' expiry is checked (default 1 h).
	TokenCheck time.Duration

	mu      sync.Mutex
	addr    string
	ln      net.Listener
	srv     *http.Server
	clients map[*client]bool
	events  int
	conns   int
}

type client struct {
	s      *Server
	conn   *websocket.Conn
	connMu sync.Mutex // one writer at a time, as the real server's connMutex
	wch    chan []byte
	mu     sync.Mutex
	repos  map[string]int64 // repo id -> token exp
	alive  time.Time
	closed chan struct{}
	once   sync.Once
	// silenced: given up (missed pongs, or Silence): no pings, no events.
	silenced bool
}

// Start listens (on the previous address after a Stop) and returns the websocket URL.
func (s *Server) Start() (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	addr := s.addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	var ln net.Listener
	var err error
	for range 50 { // the old port may linger briefly after Stop
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		return "", err
	}
	s.ln, s.addr = ln, ln.Addr().String()
	if s.clients == nil {
		s.clients = map[*client]bool{}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/", s.route)
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go s.srv.Serve(ln)
	return "ws://" + s.addr + "/", nil
}

// URL is the websocket address (valid across Stop and Start).
func (s *Server) URL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return "ws://" + s.addr + "/"
}

// Stop closes the listener and drops every connection at once, as a killed server.
func (s *Server) Stop() {
	s.mu.Lock()
	srv := s.srv
	clients := s.clients
	s.clients = map[*client]bool{}
	s.srv = nil
	s.mu.Unlock()
	if srv != nil {
		srv.Close()
	}
	for c := range clients {
		c.conn.Close()
		c.stop()
	}
}

// Silence makes the server give up on every current connection as it does on a client
// that missed its pongs: no more pings or events, the socket left open.
func (s *Server) Silence() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.clients {
		c.mu.Lock()
		c.silenced = true
		c.mu.Unlock()
	}
}

// Subscribed reports how many current connections are subscribed to repoID.
func (s *Server) Subscribed(repoID string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for c := range s.clients {
		c.mu.Lock()
		if _, ok := c.repos[repoID]; ok && !c.silenced {
			n++
		}
		c.mu.Unlock()
	}
	return n
}

// Connections is how many websockets were accepted since New.
func (s *Server) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns
}

// Token signs a subscription token for repoID as the file server does.
func Token(key []byte, repoID, user string, exp time.Time) string {
	t := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"exp": exp.Unix(), "repo_id": repoID, "username": user})
	s, err := t.SignedString(key)
	if err != nil {
		panic(err) // HS256 with a []byte key cannot fail
	}
	return s
}

// PostEvent posts a repo-update event to url's /events as the file server does when a
// branch moves (fileop.go notifRepoUpdate: a 300 s token with an empty username).
func PostEvent(url string, key []byte, repoID, commitID string) error {
	// Field order as the file server's notifEvent and repoUpdateEvent structs.
	body, _ := json.Marshal(struct {
		Type    string `json:"type"`
		Content struct {
			RepoID   string `json:"repo_id"`
			CommitID string `json:"commit_id"`
		} `json:"content"`
	}{Type: "repo-update", Content: struct {
		RepoID   string `json:"repo_id"`
		CommitID string `json:"commit_id"`
	}{repoID, commitID}})
	base := strings.TrimSuffix(strings.Replace(url, "ws://", "http://", 1), "/")
	req, err := http.NewRequest(http.MethodPost, base+"/events", strings.NewReader(string(body)))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Token "+Token(key, repoID, "", time.Now().Add(300*time.Second)))
	cl := &http.Client{Timeout: 45 * time.Second}
	resp, err := cl.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("POST /events: HTTP %d", resp.StatusCode)
	}
	return nil
}

func (s *Server) route(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/":
		s.accept(w, r)
	case "/events", "/events/":
		s.event(w, r)
	case "/ping", "/ping/":
		fmt.Fprintln(w, `{"ret": "pong"}`)
	default:
		http.NotFound(w, r)
	}
}

// claims are the real server's myClaims.
type claims struct {
	Exp    int64  `json:"exp"`
	RepoID string `json:"repo_id"`
	User   string `json:"username"`
	jwt.RegisteredClaims
}

// check is the real checkToken: a valid signature (any HMAC method the library takes
// with the key), and for a subscription the repo id, and exp in the future.
func (s *Server) check(token, repoID string) (int64, bool) {
	if token == "" {
		return 0, false
	}
	var c claims
	t, err := jwt.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return s.Key, nil })
	if err != nil || !t.Valid {
		return 0, false
	}
	if (repoID != "" && c.RepoID != repoID) || c.Exp <= time.Now().Unix() {
		return 0, false
	}
	return c.Exp, true
}

func (s *Server) event(w http.ResponseWriter, r *http.Request) {
	auth := strings.Split(r.Header.Get("Authorization"), " ")
	if len(auth) < 2 {
		http.Error(w, "Notification token not match", http.StatusBadRequest)
		return
	}
	if _, ok := s.check(auth[1], ""); !ok {
		http.Error(w, "Notification token not match", http.StatusBadRequest)
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "", http.StatusInternalServerError)
		return
	}
	var m message
	if err := json.Unmarshal(body, &m); err != nil {
		http.Error(w, "", http.StatusInternalServerError)
		return
	}
	var ev struct {
		RepoID string `json:"repo_id"`
	}
	switch m.Type {
	case "repo-update", "file-lock-changed", "folder-perm-changed", "comment-update":
		if json.Unmarshal(m.Content, &ev) != nil {
			return
		}
	default:
		return
	}
	frame, _ := json.Marshal(m)
	frame = append(frame, '\n') // gorilla's WriteJSON: json.Encoder
	s.mu.Lock()
	s.events++
	var to []*client
	for c := range s.clients {
		c.mu.Lock()
		if _, ok := c.repos[ev.RepoID]; ok {
			to = append(to, c)
		}
		c.mu.Unlock()
	}
	s.mu.Unlock()
	go func() {
		for _, c := range to {
			select {
			case c.wch <- frame:
			case <-c.closed:
			}
		}
	}()
}

func (s *Server) accept(w http.ResponseWriter, r *http.Request) {
	up := websocket.Upgrader{ReadBufferSize: 4096, WriteBufferSize: 1024, CheckOrigin: func(*http.Request) bool { return true }}
	conn, err := up.Upgrade(w, r, nil)
	if err != nil {
		return // Upgrade answered with an HTTP error
	}
	c := &client{s: s, conn: conn, wch: make(chan []byte, 10), repos: map[string]int64{}, alive: time.Now(), closed: make(chan struct{})}
	s.mu.Lock()
	if s.srv == nil { // stopped meanwhile
		s.mu.Unlock()
		conn.Close()
		return
	}
	s.clients[c] = true
	s.conns++
	s.mu.Unlock()
	conn.SetPongHandler(func(string) error {
		c.mu.Lock()
		c.alive = time.Now()
		c.mu.Unlock()
		return nil
	})
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); c.read() }()
	go func() { defer wg.Done(); c.write() }()
	go func() { defer wg.Done(); c.keepAlive() }()
	go c.checkTokens()
	wg.Wait()
	conn.Close() // no close frame, as the real server
	s.mu.Lock()
	delete(s.clients, c)
	s.mu.Unlock()
}

func (c *client) stop() { c.once.Do(func() { close(c.closed) }) }

func (c *client) read() {
	defer c.stop()
	for {
		select {
		case <-c.closed:
			return
		default:
		}
		var m struct {
			Type    string          `json:"type"`
			Content json.RawMessage `json:"content"`
		}
		if err := c.conn.ReadJSON(&m); err != nil {
			return
		}
		if err := c.handle(m.Type, m.Content); err != nil {
			return
		}
		if c.isSilenced() {
			return // the real reader notices it was given up only now
		}
	}
}

func (c *client) handle(kind string, content json.RawMessage) error {
	var list struct {
		Repos []struct {
			ID    string `json:"id"`
			Token string `json:"jwt_token"`
		} `json:"repos"`
	}
	switch kind {
	case "subscribe":
		if err := json.Unmarshal(content, &list); err != nil {
			return err
		}
		for _, r := range list.Repos {
			exp, ok := c.s.check(r.Token, r.ID)
			if !ok {
				c.expired(r.ID)
				continue
			}
			c.mu.Lock()
			c.repos[r.ID] = exp
			c.mu.Unlock()
		}
	case "unsubscribe":
		if err := json.Unmarshal(content, &list); err != nil {
			return err
		}
		c.mu.Lock()
		for _, r := range list.Repos {
			delete(c.repos, r.ID)
		}
		c.mu.Unlock()
	default:
		return errors.New("recv unexpected type of message: " + kind)
	}
	return nil
}

func (c *client) expired(repoID string) {
	frame, _ := json.Marshal(message{Type: "jwt-expired", Content: json.RawMessage(fmt.Sprintf(`{"repo_id":"%s"}`, repoID))})
	select {
	case c.wch <- append(frame, '\n'):
	case <-c.closed:
	}
}

func (c *client) write() {
	for {
		select {
		case frame := <-c.wch:
			if c.isSilenced() {
				continue // given up: the event is lost
			}
			if err := c.send(websocket.TextMessage, frame); err != nil {
				c.stop()
				return
			}
		case <-c.closed:
			return
		}
	}
}

// send writes one frame, one writer at a time, within writeWait as the real server.
func (c *client) send(kind int, data []byte) error {
	c.connMu.Lock()
	defer c.connMu.Unlock()
	c.conn.SetWriteDeadline(time.Now().Add(writeWait))
	return c.conn.WriteMessage(kind, data)
}

func (c *client) isSilenced() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.silenced
}

func (c *client) keepAlive() {
	t := time.NewTicker(pingPeriod)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			c.mu.Lock()
			if time.Since(c.alive) > pongWait {
				c.silenced = true
			}
			silenced := c.silenced
			c.mu.Unlock()
			if silenced {
				// The real server's keepAlive and writer return here; its reader
				// stays blocked until the client writes, so the socket stays open.
				continue
			}
			if err := c.send(websocket.PingMessage, nil); err != nil {
				c.stop()
				return
			}
		case <-c.closed:
			return
		}
	}
}

func (c *client) checkTokens() {
	period := c.s.TokenCheck
	if period <= 0 {
		period = time.Hour
	}
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			now := time.Now().Unix()
			var gone []string
			c.mu.Lock()
			for id, exp := range c.repos {
				if exp < now {
					gone = append(gone, id)
					delete(c.repos, id)
				}
			}
			c.mu.Unlock()
			for _, id := range gone {
				c.expired(id)
			}
		case <-c.closed:
			return
		}
	}
}
