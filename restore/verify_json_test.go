package restore_test

import (
	"encoding/json"
	"strings"
	"testing"

	"seafbak/restore"
)

// Empty lists are [] in verify --json, never null (jq '.libraries[]' fails on null):
// no library to verify, or an unknown one with no heads.
func TestVerifyJSONEmptyListsAreEmpty(t *testing.T) {
	b, err := json.Marshal(restore.VerifyReport{Libraries: []restore.LibraryReport{{RepoID: "x"}}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"heads":[]`) {
		t.Errorf("a library without heads: %s", b)
	}
}
