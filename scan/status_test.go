package scan_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"seafbak/internal/seafgen"
)

// status --json lists every library with its backed-up head, last success and lag; its
// lists are [] when empty; the text names the library longest behind the primary.
func TestStatusLagAndEmptyLists(t *testing.T) {
	f := newFixture(t, 2)
	ctx := context.Background()
	rep, _ := f.status(t)
	js, err := json.Marshal(rep)
	must(t, err)
	for _, list := range []string{"syncing_libraries", "failed_libraries", "holes", "truncated", "deleted"} {
		if !strings.Contains(string(js), `"`+list+`":[]`) {
			t.Errorf("%s is not [] in %s", list, js)
		}
	}
	if _, err := f.scanner(false).Run(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	changed := f.libs[1]
	_, err = changed.Commit("edit", seafgen.Put("a.txt", []byte("changed")))
	must(t, err)
	must(t, changed.InsertRows(ctx, f.env.PrimaryDB))

	rep, text := f.status(t)
	byID := map[string]int{}
	for i, l := range rep.Libraries {
		byID[l.RepoID] = i
	}
	same, behind := rep.Libraries[byID[f.libs[0].ID]], rep.Libraries[byID[changed.ID]]
	if same.State != "synchronized" || same.LagSeconds == nil || *same.LagSeconds != 0 || same.LastSuccess == nil || same.Head != f.libs[0].Head {
		t.Fatalf("synchronized library: %+v", same)
	}
	if behind.State != "waiting" || behind.LagSeconds == nil || *behind.LagSeconds < 0.02 || behind.PrimaryHead != changed.Head || behind.Head == changed.Head {
		t.Fatalf("library behind the primary: %+v", behind)
	}
	if rep.Behind == nil || rep.Behind.RepoID != changed.ID || !strings.Contains(text, "Longest behind the primary: "+changed.ID+" lib1, last backed up ") {
		t.Fatalf("behind: %+v\n%s", rep.Behind, text)
	}
}
