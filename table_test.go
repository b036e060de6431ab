package main

import (
	"strings"
	"testing"
)

// Columns line up in terminal cells, CJK names (two cells a character) included.
func TestTableAlignsWideNames(t *testing.T) {
	var tw table
	tw.row("NAME", "SIZE", "NOTE")
	tw.row("日本語のファイル", "12", "x")
	tw.row("plain", "3", "")
	var b strings.Builder
	if err := tw.write(&b); err != nil {
		t.Fatal(err)
	}
	want := "NAME              SIZE  NOTE\n" +
		"日本語のファイル  12    x\n" +
		"plain             3\n"
	if b.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", b.String(), want)
	}
}
