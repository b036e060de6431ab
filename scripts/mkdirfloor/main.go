// Command mkdirfloor times what the directories of a first scan cost the filesystem
// under DIR, apart from seafbak: the 8 directories Seafile's layout needs for each of
// -libraries one-file libraries (storage/{commits,fs,blocks}/<id>/<2 hex>), made with
// bare mkdir(2), 4 at a time. Every tool that writes that layout pays this (README,
// Performance, twelfth session).
//
//	go run ./scripts/mkdirfloor -dir /mnt/bench/floor
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

func main() {
	dir := flag.String("dir", "", "an empty or absent directory on the filesystem to measure (removed afterwards)")
	libraries := flag.Int("libraries", 10000, "libraries whose directories to make")
	flag.Parse()
	if *dir == "" {
		log.Fatal("give -dir")
	}
	for _, k := range []string{"commits", "fs", "blocks"} {
		if err := os.MkdirAll(filepath.Join(*dir, k), 0o755); err != nil {
			log.Fatal(err)
		}
	}
	defer os.RemoveAll(*dir)
	var before, after syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &before)
	start := time.Now()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := w; i < *libraries; i += 4 {
				id := fmt.Sprintf("%08x-0000-4000-8000-000000000000", i)
				for j, k := range []string{"commits", "fs", "blocks"} {
					lib := filepath.Join(*dir, k, id)
					subs := []string{fmt.Sprintf("%02x", (i+j)%256), fmt.Sprintf("%02x", (i+j+7)%256)}
					if k == "blocks" {
						subs = subs[:1] // one block: 3 + 3 + 2 = 8 directories a library
					}
					if err := syscall.Mkdir(lib, 0o755); err != nil {
						log.Fatal(err)
					}
					for _, s := range subs {
						if err := syscall.Mkdir(filepath.Join(lib, s), 0o755); err != nil {
							log.Fatal(err)
						}
					}
				}
			}
		})
	}
	wg.Wait()
	wall := time.Since(start)
	syscall.Getrusage(syscall.RUSAGE_SELF, &after)
	cpu := time.Duration(after.Utime.Nano() + after.Stime.Nano() - before.Utime.Nano() - before.Stime.Nano())
	n := *libraries * 8
	fmt.Printf("%d directories: %v wall, %v CPU (%.1f µs CPU each)\n", n, wall.Round(time.Millisecond), cpu.Round(time.Millisecond), float64(cpu.Microseconds())/float64(n))
}
