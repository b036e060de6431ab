package storecopy

import (
	"encoding/json"
	"strings"
	"testing"
)

// store copy --json lists no libraries as [], never null.
func TestResultJSONEmptyListIsEmpty(t *testing.T) {
	if b, _ := json.Marshal(Result{}); !strings.Contains(string(b), `"libraries":[]`) {
		t.Errorf("no libraries: %s", b)
	}
}
