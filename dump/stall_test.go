package dump

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

// freezeProxy relays unix-socket connections to the test server until frozen is set;
// then it stops passing bytes on, as a primary whose host froze does (no reset).
func freezeProxy(t *testing.T) (path string, frozen *atomic.Bool) {
	path = filepath.Join(t.TempDir(), "proxy.sock")
	ln, err := net.Listen("unix", path)
	must(t, err)
	t.Cleanup(func() { ln.Close() })
	frozen = new(atomic.Bool)
	pipe := func(dst, src net.Conn) {
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			for frozen.Load() {
				time.Sleep(20 * time.Millisecond)
			}
			if n > 0 {
				if _, werr := dst.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				dst.Close()
				return
			}
		}
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("unix", srv.Socket)
			if err != nil {
				c.Close()
				continue
			}
			go pipe(s, c)
			go pipe(c, s)
		}
	}()
	return path, frozen
}

// A primary that stops answering in the middle of a dump (its host frozen: no reset)
// left the dump tool waiting for ever, holding the dump directory's lock that restore
// server needs. The tool is now stopped after StallAfter with nothing sent: the dump
// fails, no set appears, and the lock is free.
func TestAStalledDumpIsStoppedAndFreesTheLock(t *testing.T) {
	p := newPrimary(t, 3)
	u := user(t, "pw", "SELECT, SHOW VIEW, TRIGGER", p.dbs[Seafile])
	sock, frozen := freezeProxy(t)
	defer frozen.Store(false)
	cfg := config(u, "pw", p.dbs[Seafile])
	cfg.Net, cfg.Addr = "unix", sock
	cfg.Timeout = 5 * time.Second
	dir := t.TempDir()
	unlock := blockDump(t, p.dbs[Seafile])
	done := make(chan error, 1)
	go func() {
		_, err := Run(context.Background(), Options{Dir: dir, StallAfter: 2 * time.Second, Databases: map[Role]*mysql.Config{Seafile: cfg}})
		done <- err
	}()
	waitConns(t, u, true, 1)
	frozen.Store(true)
	unlock()
	select {
	case err := <-done:
		if !errors.Is(err, ErrStalled) {
			t.Fatalf("stalled dump: %v, want ErrStalled", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the dump still waits on a primary that stopped answering")
	}
	release, err := LockForLoad(dir)
	if err != nil {
		t.Fatalf("restore server after the stalled dump: %v", err)
	}
	release()
	if sets, err := List(dir); err != nil || len(sets) != 0 {
		t.Fatalf("sets after a stalled dump: %v %v", sets, err)
	}
}
