package notify

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"seafbak/internal/notiftest"
	"seafbak/internal/testenv"
	"seafbak/sync/primary"
)

var key = []byte("0123456789abcdef0123456789abcdef")

func lib(i int) primary.Library {
	return primary.Library{ID: fmt.Sprintf("%08d-0000-4000-8000-000000000000", i), Owner: "u@example.com"}
}

// shortTokens issues tokens valid for ttl, counting them.
type shortTokens struct {
	key   atomic.Pointer[[]byte]
	ttl   time.Duration
	calls atomic.Int32
}

func newTokens(key []byte, ttl time.Duration) *shortTokens {
	s := &shortTokens{ttl: ttl}
	s.key.Store(&key)
	return s
}

func (s *shortTokens) Token(_ context.Context, l primary.Library) (string, error) {
	s.calls.Add(1)
	return notiftest.Token(*s.key.Load(), l.ID, l.Owner, time.Now().Add(s.ttl)), nil
}

// harness runs a Client against a stand-in server and records what it reports.
type harness struct {
	t         *testing.T
	srv       *notiftest.Server
	c         *Client
	logs      *testenv.LockedBuffer
	mu        sync.Mutex
	changed   map[string]int
	connected atomic.Int32
	cancel    context.CancelFunc
	done      chan struct{}
}

func start(t *testing.T, srv *notiftest.Server, tokens Tokens, tune func(*Client)) *harness {
	t.Helper()
	if _, err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	h := &harness{t: t, srv: srv, logs: &testenv.LockedBuffer{}, changed: map[string]int{}, done: make(chan struct{})}
	h.c = &Client{
		URL: srv.URL(), Tokens: tokens,
		Log:       slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Changed:   func(id string) { h.mu.Lock(); h.changed[id]++; h.mu.Unlock() },
		Connected: func() { h.connected.Add(1) },
	}
	if tune != nil {
		tune(h.c)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { defer close(h.done); h.c.Run(ctx) }()
	t.Cleanup(h.stop)
	return h
}

func (h *harness) stop() {
	h.cancel()
	select {
	case <-h.done:
	case <-time.After(5 * time.Second):
		h.t.Error("Run did not return within 5 s of its context ending")
	}
}

func (h *harness) events(id string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.changed[id]
}

// post sends an event as the file server does, retrying until a subscriber got it.
func (h *harness) post(l primary.Library) {
	h.t.Helper()
	before := h.events(l.ID)
	if err := notiftest.PostEvent(h.srv.URL(), key, l.ID, strings.Repeat("a", 40)); err != nil {
		h.t.Fatal(err)
	}
	testenv.WaitFor(h.t, "event for "+l.ID, 3*time.Second, func() bool { return h.events(l.ID) > before })
}

func TestSubscribeEventsAndNewLibraries(t *testing.T) {
	srv := &notiftest.Server{Key: key}
	h := start(t, srv, Minter{Key: key}, nil)
	libs := []primary.Library{lib(1), lib(2), lib(3)}
	h.c.SetLibraries(libs)
	testenv.WaitFor(t, "subscribed", 5*time.Second, func() bool {
		return srv.Subscribed(libs[0].ID) == 1 && srv.Subscribed(libs[2].ID) == 1
	})
	testenv.WaitFor(t, "Connected called", time.Second, func() bool { return h.connected.Load() == 1 })
	for _, l := range libs {
		h.post(l)
	}
	if h.events(libs[0].ID) != 1 || h.c.Stats().Events != 3 {
		t.Fatalf("events: %v, stats %+v", h.changed, h.c.Stats())
	}
	// A library the primary lists later is subscribed; one it stops listing is not.
	h.c.SetLibraries([]primary.Library{libs[1], libs[2], lib(4)})
	testenv.WaitFor(t, "new library subscribed, gone one unsubscribed", 5*time.Second, func() bool {
		return srv.Subscribed(lib(4).ID) == 1 && srv.Subscribed(libs[0].ID) == 0
	})
	h.post(lib(4))
	// Other event types and junk are ignored; the connection stays.
	if s := h.c.Stats(); s.Connects != 1 || s.Subscribed != 3 {
		t.Fatalf("stats %+v", s)
	}
}

func TestRefusedTokensBackOffAndPollingGoesOn(t *testing.T) {
	srv := &notiftest.Server{Key: key}
	tokens := newTokens([]byte("not-the-server-key-0123456789abc"), time.Hour)
	h := start(t, srv, tokens, func(c *Client) { c.Housekeeping = 100 * time.Millisecond })
	h.c.SetLibraries([]primary.Library{lib(1), lib(2)})
	testenv.WaitFor(t, "refusals", 5*time.Second, func() bool { return h.c.Stats().Refused >= 2 })
	time.Sleep(3 * time.Second)
	// Backoff: 2 s after the first refusal, then 4 s: at most 2 tokens per library in 3 s.
	if n := tokens.calls.Load(); n > 4 {
		t.Fatalf("%d tokens asked for 2 refused libraries in ~3 s: no backoff", n)
	}
	if s := h.c.Stats(); s.Subscribed != 0 || s.Connects != 1 {
		t.Fatalf("stats %+v", s)
	}
	if !strings.Contains(h.logs.String(), "refused library tokens") {
		t.Fatalf("refusal not logged:\n%s", h.logs.String())
	}
	// The connection itself stays: the server's key fixed, the next retry subscribes.
	tokens.key.Store(&key)
	testenv.WaitFor(t, "subscribed once the key is right", 15*time.Second, func() bool { return srv.Subscribed(lib(1).ID) == 1 })
}

func TestExpiredTokensAreRenewed(t *testing.T) {
	// Tokens valid 2 s; the server checks expiry every 300 ms: it unsubscribes with
	// jwt-expired, and the client subscribes again with a fresh token at once.
	srv := &notiftest.Server{Key: key, TokenCheck: 300 * time.Millisecond}
	tokens := newTokens(key, 2*time.Second)
	h := start(t, srv, tokens, func(c *Client) { c.RenewBefore = time.Millisecond })
	h.c.SetLibraries([]primary.Library{lib(1)})
	testenv.WaitFor(t, "subscribed", 5*time.Second, func() bool { return srv.Subscribed(lib(1).ID) == 1 })
	testenv.WaitFor(t, "renewed after expiry", 10*time.Second, func() bool { return tokens.calls.Load() >= 3 })
	testenv.WaitFor(t, "subscribed again", 5*time.Second, func() bool { return srv.Subscribed(lib(1).ID) == 1 })
	h.post(lib(1))
	if s := h.c.Stats(); s.Refused != 0 || s.Connects != 1 {
		t.Fatalf("an expired token counted as refused, or the connection dropped: %+v", s)
	}
}

func TestRenewedBeforeExpiry(t *testing.T) {
	srv := &notiftest.Server{Key: key} // checks expiry hourly: it would never tell
	tokens := newTokens(key, 3*time.Second)
	h := start(t, srv, tokens, func(c *Client) {
		c.RenewBefore = 2500 * time.Millisecond
		c.Housekeeping = 100 * time.Millisecond
	})
	h.c.SetLibraries([]primary.Library{lib(1)})
	// Renewed in the last quarter of its 3 s life, long before a 2.5 s RenewBefore.
	took := testenv.WaitFor(t, "renewed before expiry", 5*time.Second, func() bool { return tokens.calls.Load() >= 2 })
	if took < 2*time.Second || took > 3*time.Second {
		t.Errorf("renewed %s after the first token; want between 2.25 s and 3 s", took)
	}
	if s := h.c.Stats(); s.Refused != 0 || s.Subscribed != 1 {
		t.Fatalf("stats %+v", s)
	}
}

func TestSilentServerIsLeftAndRejoined(t *testing.T) {
	srv := &notiftest.Server{Key: key}
	h := start(t, srv, Minter{Key: key}, nil)
	h.c.SetLibraries([]primary.Library{lib(1)})
	testenv.WaitFor(t, "subscribed", 5*time.Second, func() bool { return srv.Subscribed(lib(1).ID) == 1 })
	// The server gives up on the connection (as after missed pongs): no pings, no
	// events, the socket open. The client must notice and connect again.
	srv.Silence()
	took := testenv.WaitFor(t, "reconnected", 10*time.Second, func() bool { return h.c.Stats().Connects == 2 && srv.Subscribed(lib(1).ID) == 1 })
	t.Logf("silent server noticed and rejoined in %s", took.Round(time.Millisecond))
	testenv.WaitFor(t, "Connected called again", time.Second, func() bool { return h.connected.Load() == 2 })
	h.post(lib(1))
}

func TestServerRestart(t *testing.T) {
	srv := &notiftest.Server{Key: key}
	h := start(t, srv, Minter{Key: key}, nil)
	h.c.SetLibraries([]primary.Library{lib(1)})
	testenv.WaitFor(t, "subscribed", 5*time.Second, func() bool { return srv.Subscribed(lib(1).ID) == 1 })
	srv.Stop()
	// An event while it is down is lost (the file server's POST fails).
	if err := notiftest.PostEvent(srv.URL(), key, lib(1).ID, strings.Repeat("b", 40)); err == nil {
		t.Fatal("event posted to a stopped server")
	}
	time.Sleep(1500 * time.Millisecond)
	if _, err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	took := testenv.WaitFor(t, "reconnected after restart", 15*time.Second, func() bool { return h.connected.Load() == 2 && srv.Subscribed(lib(1).ID) == 1 })
	t.Logf("reconnected %s after the restart", took.Round(time.Millisecond))
	h.post(lib(1))
	if !strings.Contains(h.logs.String(), "notification server connection lost") {
		t.Fatalf("loss not logged:\n%s", h.logs.String())
	}
}

func TestWebsocketURL(t *testing.T) {
	for in, want := range map[string]string{
		"ws://h:8083":                  "ws://h:8083/",
		"https://h/notification":       "wss://h/notification",
		"http://10.0.0.2:8083/":        "ws://10.0.0.2:8083/",
		"wss://seafile.example.com/ws": "wss://seafile.example.com/ws",
	} {
		u, err := WebsocketURL(in)
		if err != nil || u.String() != want {
			t.Errorf("WebsocketURL(%q) = %v, %v; want %s", in, u, err, want)
		}
	}
	for _, bad := range []string{"", "h:8083", "ftp://h/", "ws://u:p@h/", "ws://h/?q=1", "ws:///x"} {
		if _, err := WebsocketURL(bad); err == nil {
			t.Errorf("WebsocketURL(%q) accepted", bad)
		}
	}
}
