package watch

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"seafbak/state"
	"seafbak/sync/primary"
)

// listCatalog lists fixed libraries.
type listCatalog struct {
	primary.Catalog
	libs []primary.Library
}

func (c *listCatalog) Libraries(context.Context) ([]primary.Library, error) { return c.libs, nil }

// BenchmarkPoll10000 is one poll of 10 000 libraries, all backed up: a full comparison
// (every state record read, as every poll did before) and a poll between full
// comparisons (only what moved is read).
//
//	go test -run '^$' -bench Poll10000 -benchtime 20x ./watch/
func BenchmarkPoll10000(b *testing.B) {
	st, err := state.Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	var libs []primary.Library
	for i := range 10000 {
		id := fmt.Sprintf("%08x-0000-4000-8000-000000000000", i)
		head := fmt.Sprintf("%040x", i)
		if err := st.Save(state.Library{ID: id, StoreID: id, Name: "lib", Head: head, LastSuccess: time.Now()}); err != nil {
			b.Fatal(err)
		}
		libs = append(libs, primary.Library{ID: id, StoreID: id, Name: "lib", Head: head})
	}
	for _, c := range []struct {
		name string
		full time.Duration
	}{{"full", time.Nanosecond}, {"between", time.Hour}} {
		b.Run(c.name, func(b *testing.B) {
			w := &Watcher{Engine: noEngine{}, Catalog: &listCatalog{libs: libs}, State: st, FullEvery: c.full}
			s := newScheduler(w.do, 1, time.Second, time.Second, slog.New(slog.DiscardHandler))
			ctx := context.Background()
			if err := w.poll(ctx, s); err != nil { // the first poll is always full
				b.Fatal(err)
			}
			b.ResetTimer()
			for range b.N {
				if err := w.poll(ctx, s); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
