package object

import (
	"bytes"
	"compress/zlib"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
)

// What parsing one commit costs: every sync parses its new commits, and a re-check or
// verify every commit of a library's history.
func BenchmarkParseCommit(b *testing.B) {
	id := strings.Repeat("c", 40)
	raw := []byte(`{"commit_id": "` + id + `", "root_id": "` + strings.Repeat("a", 40) + `", "repo_id": "` + realRepo +
		`", "creator_name": "Alice Example <alice@example.com>", "creator": "` + strings.Repeat("0", 40) +
		`", "description": "Added \"Report Q3.xlsx\" and 2 more files.", "ctime": 1764300001, "parent_id": "` + strings.Repeat("b", 40) +
		`", "second_parent_id": null, "repo_name": "Projects", "repo_desc": "", "repo_category": null, "device_name": "laptop", "client_version": "8.0.10", "version": 1}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseCommit(raw, id, realRepo); err != nil {
			b.Fatal(err)
		}
	}
}

// What parsing one fs object costs: a first backup parses every dir and file object of
// a library, and a re-check or verify every one its history holds.
func BenchmarkParseFS(b *testing.B) {
	var entries []string
	for i := range 100 {
		entries = append(entries, fmt.Sprintf(`{"id": "%040x", "mode": 33188, "modifier": "alice@example.com", "mtime": 1764300001, "name": "Report %d.xlsx", "size": 48213}`, i+1, i))
	}
	objects := map[string]string{
		"dir of 100 entries": `{"dirents": [` + strings.Join(entries, ", ") + `], "type": 3, "version": 1}`,
		"file of 4 blocks":   `{"block_ids": ["` + strings.Repeat("a", 40) + `", "` + strings.Repeat("b", 40) + `", "` + strings.Repeat("c", 40) + `", "` + strings.Repeat("d", 40) + `"], "size": 33554432, "type": 1, "version": 1}`,
	}
	for name, plain := range objects {
		var buf bytes.Buffer
		w := zlib.NewWriter(&buf)
		w.Write([]byte(plain))
		w.Close()
		sum := sha1.Sum([]byte(plain))
		id := hex.EncodeToString(sum[:])
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := ParseFS(id, buf.Bytes()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
