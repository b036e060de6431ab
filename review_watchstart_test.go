package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"seafbak/internal/testenv"
)

// Found by review: watch's exit code for SIGTERM is 0 ("stopped as asked", README; systemd
// counts anything else as a failure), but a SIGTERM while watch is still starting (its
// primary database slow to answer: a server restarting, the case where systemd keeps
// restarting seafbak-watch) exits 143: systemctl stop then leaves the unit failed.
func TestWatchStoppedWhileStartingExits0(t *testing.T) {
	env := testenv.New(t, srv)
	cfg := writeConfig(t, env)
	// A database socket that accepts and never answers.
	sock := filepath.Join(t.TempDir(), "hung.sock")
	ln, err := net.Listen("unix", sock)
	must(t, err)
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	hung := filepath.Join(t.TempDir(), "hung.yml")
	must(t, os.WriteFile(hung, []byte(strings.Replace(mustRead(t, cfg), srv.Socket, sock, 1)), 0o600))
	ctx, cancel := context.WithCancelCause(context.Background())
	var out, errb bytes.Buffer
	done := make(chan int, 1)
	go func() { done <- runContext(ctx, []string{"--config", hung, "watch", "--poll", "100ms"}, &out, &errb) }()
	time.Sleep(500 * time.Millisecond)
	cancel(interrupt{sig: syscall.SIGTERM})
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("watch stopped by SIGTERM while starting: exit %d, want 0\n%s%s", code, out.String(), errb.String())
		}
	case <-time.After(40 * time.Second):
		t.Fatal("watch did not stop")
	}
}
