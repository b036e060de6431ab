package main

import (
	"encoding/json"
	"testing"

	"seafbak/internal/seafgen"
	"seafbak/internal/testenv"
	"seafbak/scan"
)

// status --json reads the backed-up head's time from the backup store: a library the
// primary moved ahead of its backup is behind by the difference of the commit times.
func TestStatusBehindSeconds(t *testing.T) {
	env := testenv.New(t, srv)
	l, err := seafgen.New(env.PrimaryDir).NewLibrary(seafgen.LibraryOptions{Name: "b", Owner: "u@example.com"})
	must(t, err)
	testenv.Commit(t, l, "files", seafgen.Put("a.txt", []byte("a")))
	env.Publish(l)
	cfg := writeConfig(t, env)
	if code, _, errb := seafbak("--config", cfg, "sync", l.ID); code != 0 {
		t.Fatalf("sync: %d\n%s", code, errb)
	}
	testenv.Commit(t, l, "edit", seafgen.Put("a.txt", []byte("b")))
	env.Publish(l)
	_, out, errb := seafbak("--config", cfg, "status", "--json")
	var rep scan.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil || len(rep.Libraries) != 1 {
		t.Fatalf("status --json: %v\n%s%s", err, out, errb)
	}
	ls := rep.Libraries[0]
	if ls.HeadTime == nil || ls.PrimaryHeadTime == nil || ls.BehindSeconds == nil ||
		*ls.BehindSeconds != ls.PrimaryHeadTime.Sub(*ls.HeadTime).Seconds() || *ls.BehindSeconds <= 0 {
		t.Fatalf("library behind the primary: %+v", ls)
	}
}
