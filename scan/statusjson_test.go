package scan_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"testing"
	"time"

	"seafbak/scan"
	"seafbak/state"
)

// WriteJSON writes, byte for byte, what json.Encoder with a two-space indent writes,
// whatever the report holds.
func TestWriteJSONIsTheEncodersDocument(t *testing.T) {
	now := time.Date(2026, 11, 28, 22, 0, 0, 0, time.UTC)
	lag := 12.5
	libs := []scan.LibraryState{
		{RepoID: "7b89d49b-5c5c-4f42-8ded-940c84a3e206", Name: `"libraries": null`, State: "synchronized", Head: "0123", LastSuccess: &now, LagSeconds: new(float64)},
		{RepoID: "0c1e3a3e-6c3b-4f0e-9a53-2a4c1f6f0e11", Name: "Fotos <2026> & Ärger", State: "waiting", PrimaryHead: "4567", LagSeconds: &lag, Holes: 2},
		{RepoID: "11111111-2222-4333-8444-555555555555", Name: "\n\t\u2028", State: "failed"},
	}
	full := &scan.Report{
		Total: 3, Synchronized: 1, Waiting: 1, FailedCount: 1, WithHoles: 1,
		SyncingList: []scan.Entry{}, FailedList: []scan.Entry{{RepoID: libs[2].RepoID, Name: libs[2].Name, Error: "primary unreachable", LastAttempt: &now}},
		Holes:     []scan.Entry{{RepoID: libs[1].RepoID, Holes: []state.Hole{{ID: "89ab", Kind: "blocks"}}}},
		Truncated: []scan.Entry{}, Deleted: []scan.Entry{},
		LastDump:  &state.Dump{},
		Libraries: libs, Behind: &libs[1],
	}
	for name, rep := range map[string]*scan.Report{
		"full":            full,
		"no libraries":    {Libraries: []scan.LibraryState{}},
		"libraries nil":   {},
		"one library":     {Total: 1, Libraries: libs[:1]},
		"behind, offline": {Offline: true, Libraries: libs[1:2], Behind: &libs[1]},
	} {
		var want, got bytes.Buffer
		enc := json.NewEncoder(&want)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			t.Fatal(err)
		}
		if err := rep.WriteJSON(&got); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Bytes(), want.Bytes()) {
			t.Errorf("%s: WriteJSON wrote\n%s\nthe encoder\n%s", name, got.Bytes(), want.Bytes())
		}
	}
}

// BenchmarkStatusJSON writes the JSON status of 100 000 libraries, as status --json
// did (json.Encoder, indented) and does (WriteJSON); B/op is what each allocates.
//
//	go test -run '^$' -bench StatusJSON -benchmem ./scan/
func BenchmarkStatusJSON(b *testing.B) {
	now := time.Now()
	rep := &scan.Report{Total: 100000, Synchronized: 100000}
	for i := range 100000 {
		rep.Libraries = append(rep.Libraries, scan.LibraryState{
			RepoID: fmt.Sprintf("%08x-0000-4000-8000-000000000000", i), Name: fmt.Sprint("library ", i), State: "synchronized",
			Head: fmt.Sprintf("%040x", i), PrimaryHead: fmt.Sprintf("%040x", i), LastSuccess: &now, LastAttempt: &now,
			LagSeconds: new(float64), PrimaryHeadTime: &now, HeadTime: &now, BehindSeconds: new(float64),
		})
	}
	b.Run("encoder", func(b *testing.B) {
		for range b.N {
			enc := json.NewEncoder(io.Discard)
			enc.SetIndent("", "  ")
			if err := enc.Encode(rep); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("WriteJSON", func(b *testing.B) {
		for range b.N {
			if err := rep.WriteJSON(io.Discard); err != nil {
				b.Fatal(err)
			}
		}
	})
}
