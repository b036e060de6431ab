// Package notify follows Seafile's notification server: one websocket subscribed to
// every library, whose repo-update events tell `seafbak watch` at once that a library
// changed. It is a trigger only: nothing is stored or replayed by the server, events are
// lost while the socket is down, and an event's commit id is not always the head, so the
// watcher reads heads itself and keeps polling. See seafile-format.md §5.
package notify

import (
	"cmp"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	gosync "sync"
	"time"

	"github.com/gorilla/websocket"

	"seafbak/sync/object"
	"seafbak/sync/primary"
)

// Defaults of the Client's zero fields.
const (
	// DefaultPingTimeout: the server pings every second; one that stops (a frozen or
	// vanished server, a half-open connection, or a server that gave up on us after
	// missed pongs and then sends nothing yet keeps the socket open) is dead after this.
	DefaultPingTimeout = 3 * time.Second
	// DefaultRenewBefore is how long before its expiry a token is replaced (tokens last
	// 72 hours; the server checks subscribed tokens' expiry only hourly).
	DefaultRenewBefore = 6 * time.Hour
	// subscribeBatch is how many libraries one subscribe frame carries.
	subscribeBatch = 200
	// fetchParallel is how many tokens are asked of the file server at once.
	fetchParallel = 8
	// minRetry and maxRetry bound the waits between connection attempts, and before a
	// refused library's token is asked again.
	minRetry = time.Second
	maxRetry = time.Minute
	// houseKeeping is how often tokens near expiry are looked for.
	houseKeeping = time.Minute
	maxFrame     = 64 << 10
)

// Client keeps one websocket to the notification server subscribed to the libraries it
// was last told of (SetLibraries). Run it in its own goroutine.
type Client struct {
	// URL is the notification server's websocket: ws://host:8083/ or
	// wss://host/notification (behind Seafile's usual proxy). http(s) is taken as ws(s).
	URL    string
	Tokens Tokens
	TLS    *tls.Config
	Log    *slog.Logger
	// Changed is called with a library's id for each repo-update event. It runs on the
	// reading goroutine and must not block.
	Changed func(repoID string)
	// Connected is called once per connection, after the libraries known at connect time
	// were subscribed: events sent before then were lost, so the caller checks every
	// head. It must not block.
	Connected   func()
	PingTimeout time.Duration // default DefaultPingTimeout
	RenewBefore time.Duration // default DefaultRenewBefore
	// Housekeeping is how often tokens near expiry and refused ones due for a retry
	// are looked at (default 1 min).
	Housekeeping time.Duration
	Now          func() time.Time

	mu      gosync.Mutex
	subs    map[string]*sub
	dropped []string // libraries gone since the last pass: unsubscribe them
	wake    chan struct{}
	once    gosync.Once
	stats   Stats
	refused int // tokens refused in a row, for the warning's pacing
}

// sub is one library and its token.
type sub struct {
	lib     primary.Library
	token   string
	exp     time.Time
	fetched time.Time
	// sent: subscribed on the current connection with token.
	sent     bool
	failures int // tokens refused or not obtained, reset once one is kept a minute
	retryAt  time.Time
}

// Stats count what the client did, for logs and tests.
type Stats struct {
	Connects   int // connections made
	Subscribed int // libraries subscribed on the current connection
	Events     int // repo-update events received
	Refused    int // tokens the server refused (jwt-expired right after subscribing)
}

// Stats returns the counts so far.
func (c *Client) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats
}

func (c *Client) init() {
	c.once.Do(func() {
		c.wake = make(chan struct{}, 1)
		if c.subs == nil {
			c.subs = map[string]*sub{}
		}
	})
}

func (c *Client) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c *Client) log() *slog.Logger {
	if c.Log != nil {
		return c.Log
	}
	return slog.New(slog.DiscardHandler)
}

func (c *Client) poke() {
	c.init()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// SetLibraries tells the client every library the primary lists now: new ones are
// subscribed, those no longer listed unsubscribed. The notification server never
// announces a new library, so this is how one created after watch started is followed.
// Cheap when nothing changed; the watcher calls it after every listing.
func (c *Client) SetLibraries(libs []primary.Library) {
	c.init()
	c.mu.Lock()
	changed := false
	for _, lib := range libs {
		if s, ok := c.subs[lib.ID]; ok {
			s.lib = tokenFields(lib)
			continue
		}
		c.subs[lib.ID] = &sub{lib: tokenFields(lib)}
		changed = true
	}
	// Listed ids are distinct: more subscriptions than listed libraries means some are
	// gone. Only then is the listing made a set, so a poll with nothing new or gone
	// allocates nothing here.
	if len(c.subs) > len(libs) {
		listed := make(map[string]bool, len(libs))
		for _, lib := range libs {
			listed[lib.ID] = true
		}
		for id, s := range c.subs {
			if !listed[id] {
				if s.sent {
					c.dropped = append(c.dropped, id)
					c.stats.Subscribed--
				}
				delete(c.subs, id)
				changed = true
			}
		}
	}
	c.mu.Unlock()
	if changed {
		c.poke()
	}
}

// tokenFields keeps of a library what asking for its token needs (the file server's
// token row is made for the owner of the library or its origin), so that the client's
// memory at 10 000 libraries does not hold every name and head of the last listing.
func tokenFields(lib primary.Library) primary.Library {
	return primary.Library{ID: lib.ID, StoreID: lib.StoreID, Owner: lib.Owner}
}

// Run connects, subscribes and reads events until ctx ends, reconnecting with backoff
// (1 s doubling to 1 min, with jitter) whenever the connection fails or goes silent.
// It returns nil when ctx ends.
func (c *Client) Run(ctx context.Context) error {
	c.init()
	u, err := WebsocketURL(c.URL)
	if err != nil {
		return err
	}
	wait := minRetry
	failures := 0
	for ctx.Err() == nil {
		start := c.now()
		err := c.connection(ctx, u)
		if ctx.Err() != nil {
			return nil
		}
		if c.now().Sub(start) > maxRetry {
			wait, failures = minRetry, 0 // it had been up a while: a fresh outage
		}
		failures++
		lvl := slog.LevelInfo
		if failures >= 5 {
			lvl = slog.LevelWarn
		}
		c.log().Log(ctx, lvl, "notification server connection lost; polling alone until it is back", "url", u.Redacted(), "retry_in", wait.String(), "failures_in_a_row", failures, "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait/2 + rand.N(wait/2+1)):
		}
		wait = min(wait*2, maxRetry)
	}
	return nil
}

// WebsocketURL checks a notification_url and turns http(s) into ws(s).
func WebsocketURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("notification url %q is not a ws(s)://host[:port][/path] address", raw)
	}
	switch u.Scheme {
	case "ws", "wss":
	case "http":
		u.Scheme = "ws"
	case "https":
		u.Scheme = "wss"
	default:
		return nil, fmt.Errorf("notification url %q: scheme must be ws, wss, http or https", raw)
	}
	if u.Path == "" {
		u.Path = "/"
	}
	return u, nil
}

// message is a frame in either direction.
type message struct {
	Type    string          `json:"type"`
	Content json.RawMessage `json:"content"`
}

// connection runs one websocket until it fails or ctx ends.
func (c *Client) connection(ctx context.Context, u *url.URL) error {
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second, TLSClientConfig: c.TLS, Proxy: http.ProxyFromEnvironment}
	conn, resp, err := d.DialContext(ctx, u.String(), nil)
	if err != nil {
		if resp != nil {
			return fmt.Errorf("dial %s: HTTP %d (is this the notification server's websocket? behind a proxy, the /notification prefix must lead to its root path)", u.Redacted(), resp.StatusCode)
		}
		return fmt.Errorf("dial %s: %w", u.Redacted(), err)
	}
	defer conn.Close()
	conn.SetReadLimit(maxFrame)
	c.mu.Lock()
	c.stats.Connects++
	c.stats.Subscribed = 0
	for _, s := range c.subs {
		s.sent = false
	}
	c.dropped = nil
	c.mu.Unlock()
	c.log().Info("connected to the notification server", "url", u.Redacted())

	cctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go func() { cancel(c.read(conn)) }()
	go func() {
		// Unblocks the reader when the writer side gives up or ctx ends.
		<-cctx.Done()
		conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
		conn.Close()
	}()
	first := true
	tick := time.NewTicker(cmp.Or(c.Housekeeping, houseKeeping))
	defer tick.Stop()
	for {
		if err := c.pass(cctx, conn); err != nil {
			cancel(err)
		}
		if cctx.Err() != nil {
			return context.Cause(cctx)
		}
		if first {
			first = false
			if c.Connected != nil {
				c.Connected()
			}
		}
		select {
		case <-cctx.Done():
			return context.Cause(cctx)
		case <-c.wake:
		case <-tick.C:
		}
	}
}

// read reads frames until the connection fails or falls silent, answering pings.
func (c *Client) read(conn *websocket.Conn) error {
	timeout := cmp.Or(c.PingTimeout, DefaultPingTimeout)
	alive := func() { conn.SetReadDeadline(time.Now().Add(timeout)) }
	alive()
	conn.SetPingHandler(func(data string) error {
		alive()
		err := conn.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
		if errors.Is(err, websocket.ErrCloseSent) {
			return nil
		}
		return err
	})
	for {
		kind, data, err := conn.ReadMessage()
		if err != nil {
			var ne interface{ Timeout() bool }
			if errors.As(err, &ne) && ne.Timeout() {
				return fmt.Errorf("no ping from the server for %s", timeout)
			}
			return fmt.Errorf("read: %w", err)
		}
		alive()
		if kind != websocket.TextMessage {
			continue
		}
		var m message
		if err := json.Unmarshal(data, &m); err != nil {
			c.log().Debug("notification server sent a frame that is not JSON; ignored", "frame", truncate(string(data)))
			continue
		}
		var content struct {
			RepoID string `json:"repo_id"`
		}
		if json.Unmarshal(m.Content, &content) != nil || !object.ValidRepoID(content.RepoID) {
			continue // file-lock-changed and the like carry one too; junk does not
		}
		switch m.Type {
		case "repo-update":
			c.mu.Lock()
			c.stats.Events++
			c.mu.Unlock()
			if c.Changed != nil {
				c.Changed(content.RepoID)
			}
		case "jwt-expired":
			c.expired(content.RepoID)
		}
	}
}

// expired handles the server's jwt-expired for a library: its token expired, or the
// server refused it (a bad key, a wrong repo id). A fresh token is asked for; one the
// server refuses again soon after backs off, so a wrong key does not loop.
func (c *Client) expired(repoID string) {
	c.mu.Lock()
	s, ok := c.subs[repoID]
	if !ok {
		c.mu.Unlock()
		return
	}
	now := c.now()
	// A token still valid by its own exp was refused (a wrong key, a token for another
	// server); an expired one is simply renewed.
	refused := s.exp.After(now)
	if s.sent {
		c.stats.Subscribed--
	}
	s.sent, s.token = false, ""
	var warn bool
	if refused {
		s.failures++
		s.retryAt = now.Add(backoff(s.failures))
		c.stats.Refused++
		c.refused++
		warn = c.refused&(c.refused-1) == 0 // the first, then at doublings
	}
	n := c.refused
	c.mu.Unlock()
	if warn {
		c.log().Warn("the notification server refused library tokens; those libraries are followed by polling only (check primary.jwt_private_key against the server's JWT_PRIVATE_KEY)", "repo", repoID, "refused_so_far", n)
	}
	c.poke()
}

func backoff(failures int) time.Duration {
	d := minRetry << min(failures, 12)
	return min(d, time.Hour)
}

// pass sends what the connection lacks: unsubscribes of dropped libraries, and
// subscribes of libraries not yet subscribed or whose token is near expiry (asking for
// fresh tokens first).
func (c *Client) pass(ctx context.Context, conn *websocket.Conn) error {
	renew := cmp.Or(c.RenewBefore, DefaultRenewBefore)
	now := c.now()
	c.mu.Lock()
	dropped := c.dropped
	c.dropped = nil
	var todo []primary.Library
	for _, s := range c.subs {
		if s.sent && s.failures > 0 && now.Sub(s.fetched) > time.Minute {
			s.failures = 0 // the server kept this token: it was accepted
		}
		if now.Before(s.retryAt) {
			continue
		}
		// Renew before expiry, but never in the first three quarters of a token's life:
		// a server that hands out tokens shorter than RenewBefore must not be asked for
		// a new one at every pass.
		due := s.token != "" && now.After(s.exp.Add(-min(renew, s.exp.Sub(s.fetched)/4)))
		if due {
			s.token = ""
		}
		if !s.sent || due {
			todo = append(todo, s.lib)
		}
	}
	c.mu.Unlock()
	if len(dropped) > 0 {
		if err := send(conn, "unsubscribe", dropped, nil); err != nil {
			return err
		}
	}
	if len(todo) == 0 {
		return nil
	}
	ready := make(chan string, subscribeBatch)
	go c.fetch(ctx, todo, ready)
	var batch []string
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		tokens := make([]string, len(batch))
		c.mu.Lock()
		for i, id := range batch {
			if s, ok := c.subs[id]; ok {
				tokens[i] = s.token
			}
		}
		c.mu.Unlock()
		if err := send(conn, "subscribe", batch, tokens); err != nil {
			return err
		}
		c.mu.Lock()
		for i, id := range batch {
			// A jwt-expired that came back already cleared the token: not subscribed.
			if s, ok := c.subs[id]; ok && !s.sent && s.token == tokens[i] && s.token != "" {
				s.sent = true
				c.stats.Subscribed++
			}
		}
		c.mu.Unlock()
		batch = batch[:0]
		return nil
	}
	for id := range ready {
		batch = append(batch, id)
		if len(batch) == subscribeBatch {
			if err := flush(); err != nil {
				go drain(ready)
				return err
			}
		}
	}
	return flush()
}

func drain(ch <-chan string) {
	for range ch {
	}
}

// fetch gets the missing tokens of libs, fetchParallel at a time, and sends the ids of
// libraries ready to subscribe on ready, which it closes when done.
func (c *Client) fetch(ctx context.Context, libs []primary.Library, ready chan<- string) {
	defer close(ready)
	sem := make(chan struct{}, fetchParallel)
	var wg gosync.WaitGroup
	var mu gosync.Mutex
	var failed int
	var firstErr error
	for _, lib := range libs {
		c.mu.Lock()
		s, ok := c.subs[lib.ID]
		have := ok && s.token != ""
		c.mu.Unlock()
		if !ok {
			continue
		}
		if have {
			ready <- lib.ID
			continue
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			token, err := c.Tokens.Token(ctx, lib)
			now := c.now()
			c.mu.Lock()
			s, ok := c.subs[lib.ID]
			if ok && err == nil {
				s.token, s.exp, s.fetched, s.retryAt = token, expiry(token, now), now, time.Time{}
			} else if ok {
				s.failures++
				s.retryAt = now.Add(backoff(s.failures))
			}
			c.mu.Unlock()
			if err != nil {
				mu.Lock()
				failed++
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
				return
			}
			if ok {
				ready <- lib.ID
			}
		}()
	}
	wg.Wait()
	if failed > 0 && ctx.Err() == nil {
		c.log().Warn("could not get notification tokens; those libraries are followed by polling only until a retry works", "libraries", failed, "first_err", firstErr)
	}
}

// send writes one subscribe or unsubscribe frame.
func send(conn *websocket.Conn, kind string, ids, tokens []string) error {
	type repo struct {
		ID    string `json:"id"`
		Token string `json:"jwt_token,omitempty"`
	}
	repos := make([]repo, len(ids))
	for i, id := range ids {
		repos[i].ID = id
		if tokens != nil {
			repos[i].Token = tokens[i]
		}
	}
	content, err := json.Marshal(struct {
		Repos []repo `json:"repos"`
	}{repos})
	if err != nil {
		return err
	}
	conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if err := conn.WriteJSON(message{Type: kind, Content: content}); err != nil {
		return fmt.Errorf("%s: %w", kind, err)
	}
	return nil
}

func truncate(s string) string {
	s = strings.ToValidUTF8(s, "?")
	if len(s) > 120 {
		return s[:120] + "..."
	}
	return s
}
