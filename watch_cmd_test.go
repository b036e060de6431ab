package main

import (
	"bytes"
	"context"
	"strings"
	"syscall"
	"testing"
	"time"

	"seafbak/internal/seafgen"
	"seafbak/internal/testenv"
)

// watch runs until a signal, its normal stop: exit 0, not 130 or 143.
func TestWatchCommandExits0OnSignal(t *testing.T) {
	env := testenv.New(t, srv)
	gen := seafgen.New(env.PrimaryDir)
	l, err := gen.NewLibrary(seafgen.LibraryOptions{Name: "w", Owner: "u@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	testenv.Commit(t, l, "files", seafgen.Put("a.txt", []byte("a")))
	env.Publish(l)
	cfg := writeConfig(t, env)
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		ctx, cancel := context.WithCancelCause(context.Background())
		var out, errb bytes.Buffer
		done := make(chan int, 1)
		go func() {
			done <- runContext(ctx, []string{"--config", cfg, "-v", "watch", "--poll", "100ms"}, &out, &errb)
		}()
		testenv.Commit(t, l, "edit "+sigName(sig), seafgen.Put("a.txt", []byte(sigName(sig))))
		env.Publish(l)
		deadline := time.Now().Add(20 * time.Second)
		for env.BackupHead(l.ID) != l.Head {
			if time.Now().After(deadline) {
				cancel(nil)
				<-done
				t.Fatalf("not backed up within 20 s:\n%s", errb.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
		cancel(interrupt{sig: sig})
		select {
		case code := <-done:
			if code != 0 || !strings.Contains(errb.String(), "change backed up") {
				t.Fatalf("%s: exit %d\n%s", sigName(sig), code, errb.String())
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("watch did not stop on %s", sigName(sig))
		}
	}
	env.CompareWithPrimary(l.ID, l.StoreID, l.Head)
	if code, _, errb := seafbak("--config", cfg, "watch", "--poll", "0s"); code != 2 {
		t.Fatalf("--poll 0s: exit %d\n%s", code, errb)
	}
}
