package watch

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"seafbak/sync/primary"
)

// BenchmarkSchedulerFirstRound is the scheduler's own share of a watch's first round:
// n libraries asked for at once, 256 running at a time, each job returning at once.
// The queue's cost per dispatch must not grow with the libraries still waiting.
//
//	go test -run '^$' -bench SchedulerFirstRound ./watch/
func BenchmarkSchedulerFirstRound(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		ids := make([]string, n)
		for i := range ids {
			ids[i] = fmt.Sprintf("%08x-0000-4000-8000-000000000000", i)
		}
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			for range b.N {
				s := newScheduler(func(context.Context, job) error { return nil }, 256, time.Second, time.Second, slog.New(slog.DiscardHandler))
				ctx := context.Background()
				for _, id := range ids {
					s.want(ctx, job{lib: primary.Library{ID: id, Head: "h"}})
				}
				s.wait()
			}
		})
	}
}
