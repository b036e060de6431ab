package scan_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"seafbak/internal/seafgen"
	"seafbak/internal/testenv"
	"seafbak/scan"
	"seafbak/state"
	"seafbak/sync/store"
)

// BenchmarkFirstScan is the first scan of many new one-file libraries in process (the
// whole-binary figure is scripts/bench.sh -only firstscan): for profiles of where a
// scan's time goes between copying and durability. SEAFBAK_SCAN_LIBRARIES sets how many
// (default 1000).
//
//	go test -run '^$' -bench FirstScan -benchtime 1x -cpuprofile cpu.out ./scan/
func BenchmarkFirstScan(b *testing.B) {
	n := 1000
	if v := os.Getenv("SEAFBAK_SCAN_LIBRARIES"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			b.Fatal(err)
		}
	}
	env := testenv.New(b, srv)
	g := seafgen.New(env.PrimaryDir)
	t0 := time.Now()
	for i := range n {
		lib, err := g.NewLibrary(seafgen.LibraryOptions{Name: fmt.Sprint("lib", i)})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := lib.Commit("file", seafgen.Put("readme.txt", []byte(fmt.Sprint("library ", i)))); err != nil {
			b.Fatal(err)
		}
		if err := lib.InsertRows(context.Background(), env.PrimaryDB); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("generated %d libraries in %s", n, time.Since(t0))
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		// A fresh backup each round: a new store, state and backup database.
		dir := b.TempDir()
		st, err := state.Open(dir + "/state")
		if err != nil {
			b.Fatal(err)
		}
		fs, err := store.NewFS(dir+"/data", store.Batch)
		if err != nil {
			b.Fatal(err)
		}
		if i > 0 {
			if _, err := env.BackupDB.Exec("DELETE FROM Branch"); err != nil {
				b.Fatal(err)
			}
		}
		eng := env.Engine(false)
		eng.Store, eng.State = fs, st
		b.StartTimer()
		sum, err := (&scan.Scanner{Engine: eng, Catalog: eng.Source, State: st, Parallel: 4}).Run(context.Background())
		if err != nil || sum.Synced != n {
			b.Fatalf("%+v %v", sum, err)
		}
	}
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N)/float64(n)*1e3, "ms/library")
}
