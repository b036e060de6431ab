package jsonout

import (
	"bytes"
	"encoding/json"
	"testing"
)

type item struct {
	ID    string   `json:"id"`
	Heads []string `json:"heads,omitempty"`
	Inner *item    `json:"inner,omitempty"`
}

type report struct {
	Items []item `json:"libraries"`
	Total int    `json:"total"`
}

// The items' key first, in a report embedded beside other fields (as verify --json
// writes it): the same bytes as the encoder's.
func TestWriteIndentedIsTheEncodersDocument(t *testing.T) {
	items := []item{
		{ID: `"libraries": null`, Heads: []string{"a", "<b>"}},
		{ID: "Ärger\n", Inner: &item{ID: "x", Heads: []string{}}},
	}
	for name, its := range map[string][]item{"nil": nil, "empty": {}, "one": items[:1], "two": items} {
		full := struct {
			*report
			Extra []string `json:"extra,omitempty"`
			Holes int      `json:"with_holes"`
		}{&report{Items: its, Total: len(its)}, []string{"e"}, 2}
		var want, got bytes.Buffer
		enc := json.NewEncoder(&want)
		enc.SetIndent("", "  ")
		if err := enc.Encode(full); err != nil {
			t.Fatal(err)
		}
		rest := *full.report
		rest.Items = nil
		doc := full
		doc.report = &rest
		if err := WriteIndented(&got, doc, "libraries", its); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Bytes(), want.Bytes()) {
			t.Errorf("%s: wrote\n%s\nthe encoder\n%s", name, got.Bytes(), want.Bytes())
		}
	}
}

// Items with nowhere to go (the key renamed, or made omitempty) are an error, not a
// document silently without them.
func TestWriteIndentedRefusesAMissingSlot(t *testing.T) {
	var out bytes.Buffer
	if err := WriteIndented(&out, report{}, "items", []item{{ID: "a"}}); err == nil {
		t.Fatalf("wrote %s", out.Bytes())
	}
	type omitting struct {
		Items []item `json:"libraries,omitempty"`
	}
	if err := WriteIndented(&out, omitting{}, "libraries", []item{{ID: "a"}}); err == nil {
		t.Fatal("an omitempty slot passed")
	}
	if err := WriteIndented(&out, omitting{}, "libraries", []item(nil)); err != nil {
		t.Fatalf("no items, no slot needed: %v", err)
	}
}
