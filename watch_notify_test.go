package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"seafbak/internal/seafgen"
	"seafbak/internal/testenv"
)

// seafbak watch with a notification server and a poll interval far too long to matter:
// events alone bring changes over in well under a second; a change made while the
// notification server was down is backed up by the full head check after reconnecting;
// a library created after watch started is subscribed to once a listing finds it.
// Subscription tokens come from the file server's jwt-token (no key in the config).
func TestWatchFollowsNotificationServer(t *testing.T) {
	env := testenv.New(t, srv)
	notif, fs := env.StartNotifications()
	gen := seafgen.New(env.PrimaryDir)
	a, err := gen.NewLibrary(seafgen.LibraryOptions{Name: "a", Owner: "u@example.com"})
	must(t, err)
	testenv.Commit(t, a, "files", seafgen.Put("a.txt", []byte("a")))
	env.Publish(a)
	cfg := writeConfig(t, env)
	text, err := os.ReadFile(cfg)
	must(t, err)
	text = bytes.Replace(text, []byte("primary:\n"), []byte("primary:\n  notification_url: "+notif.URL()+"\n"), 1)
	text = append(text, "watch:\n  poll: 10m\n"...)
	must(t, os.WriteFile(cfg, text, 0o600))

	ctx, cancel := context.WithCancel(context.Background())
	var out bytes.Buffer
	errb := &testenv.LockedBuffer{}
	done := make(chan int, 1)
	go func() { done <- runContext(ctx, []string{"--config", cfg, "--debug", "watch"}, &out, errb) }()
	defer func() {
		cancel()
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("watch exit %d", code)
			}
		case <-time.After(20 * time.Second):
			t.Error("watch did not stop")
		}
		if t.Failed() {
			t.Log(errb.String())
		}
	}()
	backedUp := func(what string, l *seafgen.Library, limit time.Duration) time.Duration {
		t.Helper()
		start := time.Now()
		for env.BackupHead(l.ID) != l.Head {
			if time.Since(start) > limit {
				t.Fatalf("%s: not backed up within %s", what, limit)
			}
			time.Sleep(5 * time.Millisecond)
		}
		return time.Since(start)
	}
	backedUp("first backup", a, 20*time.Second)
	testenv.WaitFor(t, "subscribed", 10*time.Second, func() bool { return notif.Subscribed(a.ID) == 1 })

	// A commit, announced as the file server does: backed up long before any poll.
	var took []time.Duration
	for i := range 5 {
		testenv.Commit(t, a, "edit", seafgen.Put("a.txt", []byte(strings.Repeat("x", i+1))))
		env.Publish(a)
		must(t, fs.BranchUpdated(a.ID, a.Head))
		took = append(took, backedUp("announced change", a, 5*time.Second))
	}
	t.Logf("event to durable: %v", took)

	// Down: the event is lost; after the restart the full check finds the change, and
	// a library created meanwhile (never announced: the listing finds it), which is
	// then backed up and subscribed, and its events count.
	notif.Stop()
	testenv.Commit(t, a, "while down", seafgen.Put("down.txt", []byte("down")))
	env.Publish(a)
	if err := fs.BranchUpdated(a.ID, a.Head); err == nil {
		t.Fatal("event delivered to a stopped notification server")
	}
	b, err := gen.NewLibrary(seafgen.LibraryOptions{Name: "b", Owner: "u@example.com"})
	must(t, err)
	testenv.Commit(t, b, "files", seafgen.Put("b.txt", []byte("b")))
	env.Publish(b)
	time.Sleep(time.Second)
	if _, err := notif.Start(); err != nil {
		t.Fatal(err)
	}
	backedUp("change made while the notification server was down", a, 15*time.Second)
	backedUp("library created while the notification server was down", b, 5*time.Second)
	testenv.WaitFor(t, "new library subscribed", 10*time.Second, func() bool { return notif.Subscribed(b.ID) == 1 })
	testenv.Commit(t, b, "edit", seafgen.Put("b.txt", []byte("bb")))
	env.Publish(b)
	must(t, fs.BranchUpdated(b.ID, b.Head))
	backedUp("new library's change", b, 5*time.Second)
	env.CompareWithPrimary(a.ID, a.StoreID, a.Head)
	env.CompareWithPrimary(b.ID, b.StoreID, b.Head)
	if text := errb.String(); !strings.Contains(text, "connected to the notification server") ||
		!strings.Contains(text, "notification server connection lost") {
		t.Fatalf("connection changes not logged:\n%s", text)
	}
}
