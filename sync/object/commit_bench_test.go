package object

import (
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
