package main

import (
	"fmt"
	"os"
	"runtime/metrics"
	"runtime/pprof"
	"strings"
	"time"
)

// startProfiles writes the profiles the benchmarks' figures were explained with (README,
// Performance), for `go tool pprof`: a CPU profile of the whole run to
// $SEAFBAK_CPUPROFILE, and to $SEAFBAK_HEAPPROFILE the heap profile taken when the live
// heap was at its largest, which is what peak RSS follows (a profile at exit shows only
// what is left).
func startProfiles() (stop func()) {
	stopCPU := startCPUProfile(os.Getenv("SEAFBAK_CPUPROFILE"))
	stopHeap := startPeakHeapProfile(os.Getenv("SEAFBAK_HEAPPROFILE"))
	return func() { stopHeap(); stopCPU() }
}

func startCPUProfile(path string) (stop func()) {
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err == nil {
		err = pprof.StartCPUProfile(f)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "seafbak: SEAFBAK_CPUPROFILE: %v\n", err)
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}

// startPeakHeapProfile rewrites path each time a GC finds the live heap 5% above its
// earlier peak. The heap profile is as of the last GC, so it is the peak's own. Beside
// it, path.memory lists the runtime's memory classes then (stacks, free heap, ...):
// what RSS holds beside the live heap.
func startPeakHeapProfile(path string) (stop func()) {
	if path == "" {
		return func() {}
	}
	done, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
		var peak uint64
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			metrics.Read(sample)
			if live := sample[0].Value.Uint64(); live > peak+peak/20 {
				peak = live
				err := writeHeapProfile(path)
				if err == nil {
					err = writeMemoryClasses(path + ".memory")
				}
				if err != nil {
					fmt.Fprintf(os.Stderr, "seafbak: SEAFBAK_HEAPPROFILE: %v\n", err)
					return
				}
			}
		}
	}()
	return func() { close(done); <-finished }
}

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func writeMemoryClasses(path string) error {
	var samples []metrics.Sample
	for _, d := range metrics.All() {
		if strings.HasPrefix(d.Name, "/memory/classes/") || d.Name == "/gc/heap/live:bytes" || d.Name == "/gc/heap/goal:bytes" ||
			d.Name == "/sched/goroutines:goroutines" {
			samples = append(samples, metrics.Sample{Name: d.Name})
		}
	}
	metrics.Read(samples)
	var b strings.Builder
	for _, s := range samples {
		fmt.Fprintf(&b, "%s %d\n", s.Name, s.Value.Uint64())
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}
