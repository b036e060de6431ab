package main

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"seafbak/internal/seafgen"
	"seafbak/internal/testenv"
)

// BenchmarkWatchSyncInProcessVsSpawned measures what watch pays per changed library for
// running the sync in its own process (what it does) against spawning `seafbak sync
// <repo>` (the binary, as a hook would): a one-file change to a 200-file library, then
// the sync that backs it up. The spawned figure adds the child's start, config, two
// database connections and its CPU (reported as child-cpu-ms/op).
//
//	go test -run '^$' -bench WatchSyncInProcessVsSpawned -benchtime 30x .
func BenchmarkWatchSyncInProcessVsSpawned(b *testing.B) {
	env := testenv.New(b, srv)
	gen := seafgen.New(env.PrimaryDir)
	l, err := gen.NewLibrary(seafgen.LibraryOptions{Name: "bench", Owner: "u@example.com"})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := l.CommitBulk("files", 200, 200*4096, 1); err != nil {
		b.Fatal(err)
	}
	env.Publish(l)
	eng := env.Engine(false)
	ctx := context.Background()
	testenv.SyncOK(b, eng, l.ID)
	bin := filepath.Join(b.TempDir(), "seafbak")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	cfg := writeConfig(b, env)
	n := 0
	change := func() {
		n++
		testenv.Commit(b, l, "edit", seafgen.Put(fmt.Sprintf("d/e%d.txt", n%7), []byte(fmt.Sprint("change ", n))))
		env.Publish(l)
	}
	b.Run("in-process", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			change()
			b.StartTimer()
			lib, err := env.Catalog.Library(ctx, l.ID)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := eng.SyncListed(ctx, lib); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("spawned", func(b *testing.B) {
		var cpu time.Duration
		for b.Loop() {
			b.StopTimer()
			change()
			b.StartTimer()
			cmd := exec.Command(bin, "--config", cfg, "-q", "sync", l.ID)
			if out, err := cmd.CombinedOutput(); err != nil {
				b.Fatalf("seafbak sync: %v\n%s", err, out)
			}
			if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
				cpu += time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
			}
		}
		b.ReportMetric(float64(cpu.Milliseconds())/float64(b.N), "child-cpu-ms/op")
	})
	if env.BackupHead(l.ID) != l.Head {
		b.Fatal("last change not backed up")
	}
}
