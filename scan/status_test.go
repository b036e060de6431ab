package scan_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"seafbak/internal/seafgen"
	"seafbak/internal/testenv"
	"seafbak/scan"
	"seafbak/sync/object"
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

	// With the backed-up heads' times: how far behind in commit time.
	ctime := func(dataDir, repoID, id string) time.Time {
		raw, err := os.ReadFile(testenv.ObjectPath(dataDir, object.KindCommit, repoID, id))
		must(t, err)
		c, err := object.ParseCommit(raw, id, repoID)
		must(t, err)
		return time.Unix(c.Ctime, 0)
	}
	timer := func(repoID, id string) (time.Time, bool) { return ctime(f.env.BackupDir, repoID, id), true }
	rep, err = scan.StatusTimed(ctx, f.env.Catalog, f.env.State, timer)
	must(t, err)
	var buf bytes.Buffer
	must(t, rep.WriteText(&buf))
	same, behind = rep.Libraries[byID[f.libs[0].ID]], rep.Libraries[byID[changed.ID]]
	newTime, oldTime := ctime(f.env.PrimaryDir, changed.ID, changed.Head), ctime(f.env.BackupDir, changed.ID, behind.Head)
	if same.BehindSeconds == nil || *same.BehindSeconds != 0 || same.PrimaryHeadTime == nil {
		t.Fatalf("synchronized library: %+v", same)
	}
	if behind.BehindSeconds == nil || *behind.BehindSeconds != newTime.Sub(oldTime).Seconds() || *behind.BehindSeconds <= 0 ||
		!behind.PrimaryHeadTime.Equal(newTime) || !behind.HeadTime.Equal(oldTime) {
		t.Fatalf("library behind the primary: %+v (primary head at %s, backed-up head at %s)", behind, newTime, oldTime)
	}
	if !strings.Contains(buf.String(), "its backed-up head was committed ") {
		t.Fatalf("text:\n%s", buf.String())
	}
}
