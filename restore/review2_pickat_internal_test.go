package restore

import (
	"strings"
	"testing"
	"time"

	"seafbak/state"
)

// A head reset to an older commit (A -> Y, Y on c1's line), then a plain commit Z on
// top of Y: the move's To (Y) is no longer rec.Head (Z), so the walk-back never
// applies it, A's line is skipped as "moved", and --at before the reset restores c1
// instead of c2 (the commit the primary served then, on A's line).
func TestPickAtMoveThenFastForward(t *testing.T) {
	id := func(c byte) string { return strings.Repeat(string(c), 40) }
	c1, c2, a, y, z := id('1'), id('2'), id('a'), id('b'), id('c')
	u := func(s int64) time.Time { return time.Unix(s, 0).UTC() }
	hist := []HistoryEntry{
		{ID: z, Time: u(700), Parents: []string{y}},
		{ID: y, Time: u(500), Parents: []string{c1}},
		{ID: a, Time: u(300), Parents: []string{c2}},
		{ID: c2, Time: u(200), Parents: []string{c1}},
		{ID: c1, Time: u(100)},
	}
	rec := state.Library{
		Head:      z,
		OldHeads:  []state.OldHead{{Head: a, Replaced: u(600)}},
		HeadMoves: []state.HeadMove{{From: a, To: y, At: u(600)}},
	}
	got, err := pickAt(hist, rec, u(250))
	if err != nil {
		t.Fatal(err)
	}
	if got != c2 {
		t.Fatalf("--at 250 picked %s, want c2 %s (A's line was served until 600)", got[:1], c2[:1])
	}
}
