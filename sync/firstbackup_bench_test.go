package sync_test

import (
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"strconv"
	"testing"
	"time"

	"seafbak/internal/seafgen"
	"seafbak/internal/testenv"
	"seafbak/state"
	seafsync "seafbak/sync"
	"seafbak/sync/store"
)

// BenchmarkFirstBackupSmallFiles is the first backup of one library of many 4 KiB files
// from the data dir, in process, so that allocations and the live heap can be read, and
// profiled:
//
//	SEAFBAK_BENCH_FILES=100000 go test -run '^$' -bench FirstBackupSmallFiles -benchtime 1x \
//	    -cpuprofile cpu.out -memprofile mem.out ./sync/
//
// peak-heap-MiB is the largest live heap seen (sampled every 5 ms) above what the
// generator holds: it must not grow with the number of files.
func BenchmarkFirstBackupSmallFiles(b *testing.B) {
	env, lib, files := smallFilesLibrary(b)
	b.ReportAllocs()
	b.ResetTimer()
	var peak uint64
	for range b.N {
		b.StopTimer()
		eng := freshBackup(b, env)
		stop := sampleHeap(&peak)
		b.StartTimer()
		res := testenv.SyncOK(b, eng, lib.ID)
		b.StopTimer()
		stop()
		if res.Blocks != files {
			b.Fatalf("%d blocks copied, want %d", res.Blocks, files)
		}
	}
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
}

// smallFilesLibrary publishes a library of SEAFBAK_BENCH_FILES (default 20 000) files of
// 4 KiB on a fresh primary.
func smallFilesLibrary(b *testing.B) (*testenv.Env, *seafgen.Library, int) {
	files := 20_000
	if s := os.Getenv("SEAFBAK_BENCH_FILES"); s != "" {
		var err error
		if files, err = strconv.Atoi(s); err != nil {
			b.Fatal(err)
		}
	}
	env := testenv.New(b, srv)
	lib, err := seafgen.New(env.PrimaryDir).NewLibrary(seafgen.LibraryOptions{Name: "many"})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := lib.CommitBulk("bulk", files, int64(files)*4096, 3); err != nil {
		b.Fatal(err)
	}
	env.Publish(lib)
	return env, lib, files
}

// freshBackup is an engine from env's primary into a new, empty backup (batch durability).
func freshBackup(b *testing.B, env *testenv.Env) *seafsync.Engine {
	root := b.TempDir()
	st, err := store.NewFS(filepath.Join(root, "seafile-data"), store.Batch)
	if err != nil {
		b.Fatal(err)
	}
	sd, err := state.Open(filepath.Join(root, "state"))
	if err != nil {
		b.Fatal(err)
	}
	return &seafsync.Engine{Source: env.Source(), Store: st, State: sd, Parallel: 4}
}

// sampleHeap records into peak the largest live heap (what a GC found reachable, so
// garbage not yet collected does not count) above what was live when it was called
// (the generated library's bookkeeping, in this same process), until stop is called.
func sampleHeap(peak *uint64) (stop func()) {
	runtime.GC()
	base := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(base)
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			metrics.Read(s)
			if v := s[0].Value.Uint64(); v > base[0].Value.Uint64() {
				*peak = max(*peak, v-base[0].Value.Uint64())
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() { close(done); <-finished }
}

// BenchmarkRecheckSmallFiles is a re-check (Engine.Recheck: what verify --repair and a
// dead marker run) of a library of many 4 KiB files already backed up: every object is
// read and hashed again. peak-heap-MiB must not grow with the number of files
// (SEAFBAK_BENCH_FILES as above).
func BenchmarkRecheckSmallFiles(b *testing.B) {
	env, lib, _ := smallFilesLibrary(b)
	eng := freshBackup(b, env)
	testenv.SyncOK(b, eng, lib.ID)
	eng.Recheck = true
	b.ReportAllocs()
	b.ResetTimer()
	var peak uint64
	for range b.N {
		stop := sampleHeap(&peak)
		res := testenv.SyncOK(b, eng, lib.ID)
		stop()
		if !res.Rechecked {
			b.Fatal("no re-check")
		}
	}
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
}
