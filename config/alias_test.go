package config

import (
	"testing"
)

// An alias stands for its anchor's value, as YAML says (found by review: "ccnet_db:
// *c" was refused as "must be a string").
func TestAliasIsItsAnchorsValue(t *testing.T) {
	text := good + "dump:\n  dir: &dumps /var/backups/seafbak\n  keep: &keep 3\nparallel: *keep\n"
	c, err := Parse("seafbak.yml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	if c.Parallel != 3 || c.Dump.Keep != 3 {
		t.Fatalf("parallel %d, dump.keep %d: want the anchored 3", c.Parallel, c.Dump.Keep)
	}
}
