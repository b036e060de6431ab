package object

import (
	"strings"
	"testing"
)

// encoding/json folds keys the Unicode way: a long s (U+017F) is an s, a Kelvin sign
// (U+212A) a k, and an escape is decoded before matching. jansson matches none of
// them, so each makes seafbak and Seafile read different objects from the same bytes.
func TestParseCommitRefusesFoldedKeys(t *testing.T) {
	a, b := strings.Repeat("a", 40), strings.Repeat("b", 40)
	id := strings.Repeat("c", 40)
	for name, extra := range map[string]string{
		"long s":                 `"ſecond_parent_id": "` + b + `"`,
		"escaped upper-case":     `"root_i\u0044": "` + b + `"`,
		"ASCII upper-case (old)": `"ROOT_ID": "` + b + `"`,
	} {
		raw := []byte(`{"commit_id": "` + id + `", "repo_id": "` + realRepo + `", "root_id": "` + a +
			`", "parent_id": null, "second_parent_id": null, "version": 1, "ctime": 1, ` + extra + `}`)
		if c, err := ParseCommit(raw, id, realRepo); err == nil {
			t.Errorf("%s: commit with %s parsed (root %s, second parent %v); want it refused", name, extra, c.RootID, c.SecondParentID)
		}
	}
	// Keys Seafile writes, and values with any letters, still parse.
	raw := []byte(`{"commit_id": "` + id + `", "repo_id": "` + realRepo + `", "root_id": "` + a +
		`", "parent_id": null, "second_parent_id": null, "version": 1, "ctime": 1, "description": "Some \u0041 ſtuff", "repo_name": "Kelvin K"}`)
	if _, err := ParseCommit(raw, id, realRepo); err != nil {
		t.Errorf("a commit with non-ASCII and escaped values: %v", err)
	}
}

func TestParseFSRefusesFoldedKeys(t *testing.T) {
	a, b := strings.Repeat("a", 40), strings.Repeat("b", 40)
	entry := func(extra string) string {
		return `{"id": "` + a + `", "mode": 33188, "modifier": "", "mtime": 1, "name": "a.txt", "size": 1` + extra + `}`
	}
	for name, plain := range map[string]string{
		"entry id in upper case":       `{"dirents": [` + entry(`, "ID": "`+b+`"`) + `], "type": 3, "version": 1}`,
		"entry size with a long s":     `{"dirents": [` + entry(`, "ſize": 9`) + `], "type": 3, "version": 1}`,
		"block_ids with a Kelvin sign": `{"block_ids": ["` + a + `"], "bloc\u212a_ids": ["` + b + `"], "size": 1, "type": 1, "version": 1}`,
		"escaped type":                 `{"block_ids": [], "size": 0, "type": 1, "\u0054ype": 3, "version": 1}`,
	} {
		compressed, id := deflate(t, []byte(plain))
		if f, err := ParseFS(id, compressed); err == nil {
			t.Errorf("%s: %s parsed as %+v; want it refused", name, plain, f)
		}
	}
	plain := `{"dirents": [` + entry("") + `, {"id": "` + b + `", "mode": 16384, "modifier": "Ķelvin", "mtime": 1, "name": "Süß \u0041", "size": 0}], "type": 3, "version": 1}`
	compressed, id := deflate(t, []byte(plain))
	if _, err := ParseFS(id, compressed); err != nil {
		t.Errorf("a dir with non-ASCII and escaped names: %v", err)
	}
}
