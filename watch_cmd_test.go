package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
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
	for _, poll := range []string{"0s", "50ms", "11m"} {
		if code, _, errb := seafbak("--config", cfg, "watch", "--poll", poll); code != 2 || !strings.Contains(errb, "--poll must be from 100ms to 10m0s") {
			t.Fatalf("--poll %s: exit %d\n%s", poll, code, errb)
		}
	}
}

// watch rewrites the metrics file (metrics.file of the config here) after the rounds in
// which something was synced, so a library's current timestamp follows its changes
// while watch runs, and one that does not change is current as of watch's last
// comparison of every head; and it polls every watch.poll of the config.
func TestWatchCommandRewritesMetrics(t *testing.T) {
	env := testenv.New(t, srv)
	gen := seafgen.New(env.PrimaryDir)
	l, err := gen.NewLibrary(seafgen.LibraryOptions{Name: "m", Owner: "u@example.com"})
	must(t, err)
	testenv.Commit(t, l, "files", seafgen.Put("a.txt", []byte("a")))
	idle, err := gen.NewLibrary(seafgen.LibraryOptions{Name: "idle", Owner: "u@example.com"})
	must(t, err)
	testenv.Commit(t, idle, "files", seafgen.Put("a.txt", []byte("i")))
	env.Publish(l, idle)
	_, err = env.Engine(false).Sync(context.Background(), idle.ID) // backed up before watch starts
	must(t, err)
	prom := filepath.Join(t.TempDir(), "seafbak.prom")
	cfg := writeConfig(t, env)
	f, err := os.OpenFile(cfg, os.O_APPEND|os.O_WRONLY, 0)
	must(t, err)
	_, err = fmt.Fprintf(f, "watch:\n  poll: 100ms\nmetrics:\n  file: %s\n", prom)
	must(t, err)
	must(t, f.Close())
	defer func(d time.Duration) { watchMetricsEvery = d }(watchMetricsEvery)
	watchMetricsEvery = 300 * time.Millisecond

	ctx, cancel := context.WithCancelCause(context.Background())
	var out bytes.Buffer
	var errb testenv.LockedBuffer
	done := make(chan int, 1)
	go func() { done <- runContext(ctx, []string{"--config", cfg, "-v", "watch"}, &out, &errb) }()
	stopped := false
	defer func() {
		if !stopped {
			cancel(nil)
			<-done
		}
	}()
	// metric reads one sample of the file, 0 if the file or the sample is not there.
	metric := func(name, label, value string) float64 {
		data, err := os.ReadFile(prom)
		if err != nil {
			return 0
		}
		prefix := fmt.Sprintf("%s{", name)
		for _, line := range strings.Split(string(data), "\n") {
			if strings.HasPrefix(line, prefix) && strings.Contains(line, fmt.Sprintf("%s=%q", label, value)) {
				var v float64
				fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &v)
				return v
			}
		}
		return 0
	}
	current := func() float64 { return metric("seafbak_library_current_timestamp_seconds", "repo_id", l.ID) }
	waitUntil := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				data, _ := os.ReadFile(prom)
				t.Fatalf("%s: not within 20 s\n%s\n%s", what, data, errb.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitUntil("the first backup in the metrics file", func() bool { return current() > 0 })
	first := current()
	// The library that did not change is current as of watch's first comparison, as of
	// a scan's: it looked behind (SeafbakLibraryBehind) where no cron scan runs.
	var lastScan float64
	for _, line := range strings.Split(string(must1(os.ReadFile(prom))), "\n") {
		if v, ok := strings.CutPrefix(line, "seafbak_last_scan_timestamp_seconds "); ok {
			fmt.Sscan(v, &lastScan)
		}
	}
	idleCurrent := metric("seafbak_library_current_timestamp_seconds", "repo_id", idle.ID)
	if idleSuccess := metric("seafbak_library_last_success_timestamp_seconds", "repo_id", idle.ID); lastScan == 0 ||
		idleCurrent != lastScan || idleCurrent <= idleSuccess {
		t.Fatalf("last scan %f; the idle library current at %f, its last success %f:\n%s", lastScan, idleCurrent, idleSuccess, must1(os.ReadFile(prom)))
	}
	if metric("seafbak_run_bytes", "command", "watch") == 0 || metric("seafbak_run_exit_code", "command", "watch") != 0 {
		t.Fatalf("watch's run figures while it runs:\n%s", must1(os.ReadFile(prom)))
	}
	time.Sleep(50 * time.Millisecond) // the next success is at a later time
	testenv.Commit(t, l, "edit", seafgen.Put("a.txt", []byte("b")))
	env.Publish(l)
	waitUntil("the change in the metrics file", func() bool { return current() > first })
	cancel(interrupt{sig: syscall.SIGTERM})
	select {
	case code := <-done:
		stopped = true
		if code != 0 || !strings.Contains(errb.String(), "poll=100ms") {
			t.Fatalf("exit %d\n%s", code, errb.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("watch did not stop on SIGTERM")
	}
}

func must1[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
