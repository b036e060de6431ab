package main

import (
	"fmt"
	"os"
	"runtime/metrics"
	"runtime/pprof"
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
// earlier peak. The heap profile is as of the last GC, so it is the peak's own.
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
				if err := writeHeapProfile(path); err != nil {
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
